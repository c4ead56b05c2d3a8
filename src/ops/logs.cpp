// `haco-fleet logs`: the selected instances' logs read from their files and
// merged in time order, then followed (log_follow.cpp) when asked.
#include <queue>
#include <tuple>

#include <fmt/format.h>

#include "haco/error.hpp"
#include "haco/ops_logs.hpp"
#include "haco/ops_select.hpp"
#include "haco/printable.hpp"
#include "ops/log_files.hpp"

namespace haco::ops {

void PrefixedLogStream::instance(std::string_view name) { width_ = std::max(width_, name.size()); }

void PrefixedLogStream::line(std::string_view instance, std::string_view text) {
  if (prefix_) {
    out_ << instance;
    for (std::size_t i = instance.size(); i < width_; ++i) out_ << ' ';
    out_ << " | ";
  }
  // A container cannot recolour, retitle or clear the terminal, nor forge
  // a line of another instance (docs/security.md, "Terminals").
  out_ << printable(text) << '\n';
}

void PrefixedLogStream::notice(std::string_view text) {
  out_.flush();
  notices_ << text << '\n';
  notices_.flush();
}

void PrefixedLogStream::flush() { out_.flush(); }

std::vector<TimedLine> read_instance_log(const std::string& log_path, const LogWindow& window) {
  logfiles::InstanceLog log(log_path);
  logfiles::LineReader reader(log, log.start_of(window), true);
  std::vector<TimedLine> lines;
  while (auto line = reader.next()) lines.push_back(std::move(*line));
  return lines;
}

namespace {

std::string log_path_of(const state::FleetPaths& paths, const state::InstanceRecord& record) {
  return record.log_path.empty() ? paths.instance_log(record.name()) : record.log_path;
}

struct Source {
  std::string instance;
  std::string path;
  std::unique_ptr<logfiles::InstanceLog> log;
  std::unique_ptr<logfiles::LineReader> reader;
  std::optional<TimedLine> head;
};

// Every source's lines, the oldest first; a tie goes to the instance listed
// first, and an instance's own lines keep their order.
void merge(std::vector<Source>& sources, LogSink& sink) {
  using Entry = std::tuple<std::int64_t, std::size_t>;
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> heads;
  for (std::size_t i = 0; i < sources.size(); ++i)
    if ((sources[i].head = sources[i].reader->next())) heads.emplace(sources[i].head->unix_ms, i);
  while (!heads.empty()) {
    const std::size_t i = std::get<1>(heads.top());
    heads.pop();
    sink.line(sources[i].instance, sources[i].head->text);
    if ((sources[i].head = sources[i].reader->next())) heads.emplace(sources[i].head->unix_ms, i);
  }
}

}  // namespace

LogsResult logs(const LogsRequest& request, LogSink& sink) {
  const state::FleetPaths paths = choose_fleet(request.state_root, request.data_root, request.fleet);
  const state::FleetState fleet = load_fleet(paths);
  std::vector<const state::InstanceRecord*> selected;
  if (request.ports.empty())
    for (const auto& r : fleet.instances) selected.push_back(&r);
  else
    selected = instances_on_ports(fleet, request.ports);

  // Before any log is read: what a later instance's log held already.
  std::map<std::string, logfiles::LogDirEntry> at_start;
  if (request.follow) at_start = logfiles::snapshot_log_dir(paths.log_dir());

  std::vector<Source> sources;
  for (const auto* record : selected) {
    Source source;
    source.instance = record->name();
    source.path = log_path_of(paths, *record);
    source.log = with_context("reading the log of " + source.instance,
                              [&] { return std::make_unique<logfiles::InstanceLog>(source.path); });
    if (request.window.since_unix_ms && source.log->has_untimed_lines())
      sink.notice(fmt::format("{}: lines written before its log had a time index have no time; --since leaves "
                              "them out",
                              source.instance));
    source.reader = std::make_unique<logfiles::LineReader>(*source.log, source.log->start_of(request.window),
                                                           !request.follow);
    sink.instance(source.instance);
    sources.push_back(std::move(source));
  }
  with_context("reading the logs of fleet " + paths.fleet, [&] { merge(sources, sink); });
  sink.flush();
  if (!request.follow) return {LogsResult::End::read};

  std::vector<logfiles::FollowedLog> followed;
  for (auto& source : sources) {
    logfiles::FollowedLog log;
    log.instance = source.instance;
    log.path = source.path;
    const logfiles::Position tail = source.reader->tail_start();
    const bool at_current = source.log->has_current() && tail.part + 1 == source.log->parts().size();
    log.current = source.log->take_current();
    // Where reading stopped in <log>: its end, or the start of a line not
    // ended yet. (No <log>: followed from the start of the one to come.)
    log.offset = at_current ? tail.offset : log.current.size;
    followed.push_back(std::move(log));
  }
  sources.clear();
  return logfiles::follow(paths, std::move(followed), request.ports.empty(), at_start, request.stop_fd, sink);
}

}  // namespace haco::ops
