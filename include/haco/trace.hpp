// Chrome Trace Event Format (JSON object form), viewable in Perfetto and
// chrome://tracing: one process (pid 1, named after the fleet), one thread
// track per instance (tid = instance index, named after the instance), one
// complete event ("ph":"X") per phase interval with ts/dur in microseconds
// from the recorder's start.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "haco/latency.hpp"

namespace haco::observe {

// The trace of everything `recorder` holds. Phases still open end at the
// moment of the call and carry "args":{"unfinished":true}; failed ones carry
// "args":{"ok":false,"error":"..."}.
nlohmann::json chrome_trace(const LatencyRecorder& recorder, const std::string& process_name);

// Writes chrome_trace() to `path` (mode 0644) with write_file_atomically
// (haco/atomic_file.hpp). Throws haco::Error naming the path.
void write_chrome_trace(const LatencyRecorder& recorder, const std::string& process_name, const std::string& path);

}  // namespace haco::observe
