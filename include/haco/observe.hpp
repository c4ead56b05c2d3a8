// Observing a fleet operation: readiness probes, phase latency and its
// summary, the Chrome trace, the samples CSV, and the progress output.
#pragma once

#include "haco/latency.hpp"
#include "haco/progress.hpp"
#include "haco/readiness.hpp"
#include "haco/samples.hpp"
#include "haco/trace.hpp"
