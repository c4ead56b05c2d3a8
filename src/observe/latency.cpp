#include "haco/latency.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <set>

#include "haco/error.hpp"

namespace haco::observe {

namespace {

double milliseconds(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// The summary lists the phases `up` always times in flow order, then any
// other phase in the order it first appeared.
std::vector<std::string> phase_order(const std::vector<PhaseInterval>& intervals) {
  const std::array<std::string_view, 4> known{phase::expand, phase::rootfs, phase::clone_to_exec,
                                              phase::exec_to_ready};
  std::vector<std::string> order;
  for (auto name : known) {
    if (std::any_of(intervals.begin(), intervals.end(), [&](const PhaseInterval& i) { return i.phase == name; }))
      order.emplace_back(name);
  }
  for (const auto& i : intervals) {
    if (std::find(order.begin(), order.end(), i.phase) == order.end()) order.push_back(i.phase);
  }
  return order;
}

PhaseStats phase_stats(const std::string& name, const std::vector<PhaseInterval>& intervals) {
  PhaseStats stats;
  stats.phase = name;
  std::vector<double> values;
  for (const auto& i : intervals) {
    if (i.phase != name || !i.finished) continue;
    if (!i.ok) {
      ++stats.failed;
      continue;
    }
    values.push_back(milliseconds(i.end - i.start));
  }
  stats.count = values.size();
  if (values.empty()) return stats;
  std::sort(values.begin(), values.end());
  double sum = 0;
  for (double v : values) sum += v;
  stats.min_ms = values.front();
  stats.mean_ms = sum / static_cast<double>(values.size());
  stats.p50_ms = nearest_rank_percentile(values, 50);
  stats.p95_ms = nearest_rank_percentile(values, 95);
  stats.p99_ms = nearest_rank_percentile(values, 99);
  stats.max_ms = values.back();
  return stats;
}

}  // namespace

double nearest_rank_percentile(const std::vector<double>& sorted, double percent) {
  if (sorted.empty()) throw Error("nearest_rank_percentile: no values");
  if (!(percent > 0 && percent <= 100)) throw Error(fmt::format("nearest_rank_percentile: {} is not in (0, 100]", percent));
  // The 1-based rank ceil(P/100 * N); the small slack keeps 0.95 * 100 = 95
  // from becoming 96 through floating point error.
  auto rank = static_cast<std::size_t>(std::ceil(percent / 100.0 * static_cast<double>(sorted.size()) - 1e-9));
  rank = std::clamp<std::size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

LatencyRecorder::LatencyRecorder() : LatencyRecorder(Clock::now()) {}
LatencyRecorder::LatencyRecorder(Clock::time_point start) : start_(start) {}

void LatencyRecorder::add_instance(InstanceId id, std::string name) {
  std::lock_guard lock(mutex_);
  tracks_[id] = std::move(name);
}

PhaseInterval* LatencyRecorder::take_open(InstanceId id, std::string_view phase) {
  auto it = open_.find({id, std::string(phase)});
  if (it == open_.end()) return nullptr;
  PhaseInterval* interval = &intervals_[it->second];
  open_.erase(it);
  return interval;
}

void LatencyRecorder::begin(InstanceId id, std::string_view phase, Clock::time_point at) {
  std::lock_guard lock(mutex_);
  auto [it, inserted] = open_.try_emplace({id, std::string(phase)}, intervals_.size());
  if (!inserted) {
    intervals_[it->second].start = at;
    intervals_[it->second].end = at;
    return;
  }
  PhaseInterval interval;
  interval.instance = id;
  interval.phase = std::string(phase);
  interval.start = at;
  interval.end = at;
  intervals_.push_back(std::move(interval));
}

void LatencyRecorder::end(InstanceId id, std::string_view phase, Clock::time_point at) {
  std::lock_guard lock(mutex_);
  if (auto* open = take_open(id, phase)) {
    open->end = at;
    open->finished = true;
    return;
  }
  intervals_.push_back({id, std::string(phase), at, at, true, true, {}});
}

void LatencyRecorder::fail(InstanceId id, std::string_view phase, std::string error, Clock::time_point at) {
  std::lock_guard lock(mutex_);
  if (auto* open = take_open(id, phase)) {
    open->end = at;
    open->finished = true;
    open->ok = false;
    open->error = std::move(error);
    return;
  }
  intervals_.push_back({id, std::string(phase), at, at, true, false, std::move(error)});
}

void LatencyRecorder::record(InstanceId id, std::string_view phase, Clock::time_point start, Clock::time_point end,
                             bool ok, std::string error) {
  std::lock_guard lock(mutex_);
  intervals_.push_back({id, std::string(phase), start, end, true, ok, std::move(error)});
}

void LatencyRecorder::finish(Clock::time_point at) {
  std::lock_guard lock(mutex_);
  finish_ = at;
}

std::optional<Clock::time_point> LatencyRecorder::finish_time() const {
  std::lock_guard lock(mutex_);
  return finish_;
}

std::vector<PhaseInterval> LatencyRecorder::intervals() const {
  std::lock_guard lock(mutex_);
  return intervals_;
}

std::vector<InstanceTrack> LatencyRecorder::instances() const {
  std::lock_guard lock(mutex_);
  std::vector<InstanceTrack> tracks;
  for (const auto& [id, name] : tracks_) tracks.push_back({id, name});
  return tracks;
}

LatencySummary LatencyRecorder::summary() const {
  std::vector<PhaseInterval> snapshot;
  std::set<InstanceId> ids;
  Clock::time_point end;
  {
    std::lock_guard lock(mutex_);
    snapshot = intervals_;
    for (const auto& t : tracks_) ids.insert(t.first);
    end = finish_.value_or(Clock::now());
  }
  LatencySummary summary;
  std::set<InstanceId> failed;
  for (const auto& i : snapshot) {
    ids.insert(i.instance);
    if (i.finished && !i.ok) failed.insert(i.instance);
  }
  summary.wall_seconds = std::max(0.0, std::chrono::duration<double>(end - start_).count());
  summary.instances = ids.size();
  summary.failed_instances = failed.size();
  if (summary.wall_seconds > 0)
    summary.instances_per_second =
        static_cast<double>(summary.instances - summary.failed_instances) / summary.wall_seconds;
  for (const auto& name : phase_order(snapshot)) summary.phases.push_back(phase_stats(name, snapshot));
  return summary;
}

std::string format_summary(const LatencySummary& summary) {
  std::string text = fmt::format("{} instances in {:.2f} s ({:.1f}/s)", summary.instances, summary.wall_seconds,
                                 summary.instances_per_second);
  if (summary.failed_instances > 0) text += fmt::format(", {} failed", summary.failed_instances);
  text += '\n';
  if (summary.phases.empty()) return text;
  std::size_t width = 5;
  for (const auto& p : summary.phases) width = std::max(width, p.phase.size());
  text += fmt::format("{:<{}}  {:>6} {:>6} {:>9} {:>9} {:>9} {:>9}  (ms)\n", "phase", width, "count", "failed", "p50",
                      "p95", "p99", "max");
  for (const auto& p : summary.phases) {
    if (p.count == 0) {
      text += fmt::format("{:<{}}  {:>6} {:>6} {:>9} {:>9} {:>9} {:>9}\n", p.phase, width, p.count, p.failed, "-", "-",
                          "-", "-");
      continue;
    }
    text += fmt::format("{:<{}}  {:>6} {:>6} {:>9.1f} {:>9.1f} {:>9.1f} {:>9.1f}\n", p.phase, width, p.count, p.failed,
                        p.p50_ms, p.p95_ms, p.p99_ms, p.max_ms);
  }
  return text;
}

nlohmann::json summary_to_json(const LatencySummary& summary) {
  nlohmann::json phases = nlohmann::json::array();
  for (const auto& p : summary.phases) {
    phases.push_back({{"phase", p.phase},
                      {"count", p.count},
                      {"failed", p.failed},
                      {"min_ms", p.min_ms},
                      {"mean_ms", p.mean_ms},
                      {"p50_ms", p.p50_ms},
                      {"p95_ms", p.p95_ms},
                      {"p99_ms", p.p99_ms},
                      {"max_ms", p.max_ms}});
  }
  return {{"wall_seconds", summary.wall_seconds},
          {"instances", summary.instances},
          {"failed_instances", summary.failed_instances},
          {"instances_per_second", summary.instances_per_second},
          {"percentile_method", "nearest-rank"},
          {"phases", std::move(phases)}};
}

std::string instance_name(const std::vector<InstanceTrack>& tracks, InstanceId id) {
  for (const auto& t : tracks)
    if (t.id == id) return t.name;
  return "instance " + std::to_string(id);
}

}  // namespace haco::observe
