// The rootfs engine's own lines during `up` ("image 3f2a... found in the
// cache in 0.002 s", a dropped xattr) go through the command line's progress
// sink, above the live line and at their level, instead of straight to stderr.
#pragma once

#include <memory>

#include "cli/progress_sink.hpp"
#include "haco/ops.hpp"

namespace haco::cli {

// `engine` with its fleet-wide lines sent to `sink`, as "haco-fleet: LINE":
// what it did as information, what it could not do as asked
// (PrepareOptions::warning) as warnings. Lines about one instance stay
// unprinted, as the engine leaves them.
std::unique_ptr<ops::RootfsPreparer> rootfs_reporting_to(std::unique_ptr<ops::RootfsPreparer> engine,
                                                         ProgressSink& sink);

}  // namespace haco::cli
