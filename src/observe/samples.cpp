#include "haco/samples.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "haco/atomic_file.hpp"
#include "haco/error.hpp"

namespace haco::observe {

namespace {

double milliseconds(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

}  // namespace

std::string csv_field(std::string_view field) {
  if (field.find_first_of(",\"\r\n") == std::string_view::npos) return std::string(field);
  std::string quoted = "\"";
  for (char c : field) {
    if (c == '"') quoted += '"';
    quoted += c;
  }
  quoted += '"';
  return quoted;
}

std::string samples_csv(const LatencyRecorder& recorder, const std::map<InstanceId, std::uint16_t>& ports) {
  const auto now = Clock::now();
  const auto start = recorder.start_time();
  const auto tracks = recorder.instances();
  auto intervals = recorder.intervals();
  // Stable: phases that started at the same moment keep their recording order.
  std::stable_sort(intervals.begin(), intervals.end(), [](const PhaseInterval& a, const PhaseInterval& b) {
    if (a.instance != b.instance) return a.instance < b.instance;
    return a.start < b.start;
  });

  std::string csv(kSamplesCsvHeader);
  csv += '\n';
  for (const auto& i : intervals) {
    const auto end = i.finished ? i.end : now;
    const bool ok = i.finished && i.ok;
    const std::string error = i.finished ? i.error : "unfinished";
    auto port = ports.find(i.instance);
    csv += fmt::format("{},{},{},{},{:.3f},{:.3f},{:.3f},{},{}\n", csv_field(instance_name(tracks, i.instance)),
                       i.instance, port == ports.end() ? std::string() : std::to_string(port->second),
                       csv_field(i.phase), milliseconds(i.start - start), milliseconds(end - start),
                       milliseconds(end - i.start), ok ? 1 : 0, csv_field(error));
  }
  return csv;
}

void write_samples_csv(const LatencyRecorder& recorder, const std::map<InstanceId, std::uint16_t>& ports,
                       const std::string& path) {
  with_context("writing the samples " + path,
               [&] { write_file_atomically(path, samples_csv(recorder, ports), 0644); });
}

}  // namespace haco::observe
