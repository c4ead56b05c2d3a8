// Every phase interval as a CSV row, for plotting and for tools that want
// the raw samples rather than the percentiles. Columns:
//   instance,index,port,phase,start_ms,end_ms,duration_ms,ok,error
// start_ms and end_ms are milliseconds since the recorder's start (the
// fleet's start), with three decimals; ok is 1 or 0; error is empty unless
// the phase failed. A phase still open when the file is written ends at that
// moment with ok 0 and error "unfinished". Rows come in instance index order,
// each instance's phases in the order they started. Fields holding a comma,
// a quote or a line break are quoted as RFC 4180 says.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "haco/latency.hpp"

namespace haco::observe {

// The header line of samples_csv(), without its line break.
inline constexpr std::string_view kSamplesCsvHeader =
    "instance,index,port,phase,start_ms,end_ms,duration_ms,ok,error";

// `field` as one CSV field: unchanged, or in double quotes with inner quotes
// doubled when it holds a comma, a quote, CR or LF.
std::string csv_field(std::string_view field);

// The header and one row per interval. `ports` maps an instance index to its
// port; an index missing from it gets an empty port field.
std::string samples_csv(const LatencyRecorder& recorder, const std::map<InstanceId, std::uint16_t>& ports);

// Writes samples_csv() to `path` (mode 0644) with write_file_atomically
// (haco/atomic_file.hpp). Throws haco::Error naming the path.
void write_samples_csv(const LatencyRecorder& recorder, const std::map<InstanceId, std::uint16_t>& ports,
                       const std::string& path);

}  // namespace haco::observe
