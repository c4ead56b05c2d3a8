#include "haco/trace.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <string_view>

#include "haco/error.hpp"
#include "haco/unique_fd.hpp"

namespace haco::observe {

namespace {

// Every event shares one process; each instance is a thread track.
constexpr int kTracePid = 1;

double microseconds(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

std::string track_name(const std::vector<InstanceTrack>& tracks, InstanceId id) {
  for (const auto& t : tracks) {
    if (t.id == id) return t.name;
  }
  return "instance " + std::to_string(id);
}

void write_all(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    check_sys(n, "write", path);
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

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
                      {"args", {{"name", track_name(tracks, id)}}}});
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
  with_context("writing the trace " + path, [&] {
    const std::string text = chrome_trace(recorder, process_name).dump() + "\n";
    std::string temporary = path + ".XXXXXX";
    UniqueFd fd(static_cast<int>(check_sys(::mkostemp(temporary.data(), O_CLOEXEC), "mkostemp", temporary)));
    // Removes the temporary file unless the rename below put it in place.
    struct Unlinker {
      const std::string* path;
      ~Unlinker() {
        if (path) ::unlink(path->c_str());
      }
    } unlinker{&temporary};
    check_sys(::fchmod(fd.get(), 0644), "fchmod", temporary);
    write_all(fd.get(), text, temporary);
    check_sys(::fsync(fd.get()), "fsync", temporary);
    check_sys(::close(fd.release()), "close", temporary);
    check_sys(::rename(temporary.c_str(), path.c_str()), "rename", path);
    unlinker.path = nullptr;
  });
}

}  // namespace haco::observe
