#include "haco/trace.hpp"

#include <algorithm>

#include "haco/atomic_file.hpp"
#include "haco/error.hpp"

namespace haco::observe {

namespace {

// Every event shares one process; each instance is a thread track.
constexpr int kTracePid = 1;

double microseconds(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

}  // namespace

nlohmann::json chrome_trace(const LatencyRecorder& recorder, const std::string& process_name) {
  const auto now = Clock::now();
  const auto start = recorder.start_time();
  const auto intervals = recorder.intervals();
  const auto tracks = recorder.instances();

  std::vector<InstanceId> ids;
  for (const auto& t : tracks) ids.push_back(t.id);
  for (const auto& i : intervals) {
    if (std::find(ids.begin(), ids.end(), i.instance) == ids.end()) ids.push_back(i.instance);
  }

  nlohmann::json events = nlohmann::json::array();
  events.push_back({{"ph", "M"}, {"name", "process_name"}, {"pid", kTracePid}, {"tid", 0},
                    {"args", {{"name", process_name}}}});
  for (InstanceId id : ids) {
    events.push_back({{"ph", "M"}, {"name", "thread_name"}, {"pid", kTracePid}, {"tid", id},
                      {"args", {{"name", instance_name(tracks, id)}}}});
    events.push_back({{"ph", "M"}, {"name", "thread_sort_index"}, {"pid", kTracePid}, {"tid", id},
                      {"args", {{"sort_index", id}}}});
  }
  for (const auto& i : intervals) {
    const auto end = i.finished ? i.end : now;
    nlohmann::json args = nlohmann::json::object();
    if (!i.finished) args["unfinished"] = true;
    if (i.finished && !i.ok) {
      args["ok"] = false;
      args["error"] = i.error;
    }
    events.push_back({{"ph", "X"},
                      {"name", i.phase},
                      {"cat", "phase"},
                      {"pid", kTracePid},
                      {"tid", i.instance},
                      {"ts", microseconds(i.start - start)},
                      {"dur", microseconds(end - i.start)},
                      {"args", std::move(args)}});
  }
  return {{"traceEvents", std::move(events)}, {"displayTimeUnit", "ms"}};
}

void write_chrome_trace(const LatencyRecorder& recorder, const std::string& process_name, const std::string& path) {
  with_context("writing the trace " + path,
               [&] { write_file_atomically(path, chrome_trace(recorder, process_name).dump() + "\n", 0644); });
}

}  // namespace haco::observe
