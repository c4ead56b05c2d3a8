// `metrics`: fleet state and cgroup files in the Prometheus text format
// (haco/ops_metrics.hpp).
#include "haco/ops_metrics.hpp"

#include <sys/statfs.h>

#include <linux/magic.h>

#include <algorithm>
#include <charconv>
#include <fstream>

#include <fmt/format.h>

#include "haco/error.hpp"
#include "haco/ops_select.hpp"

namespace haco::ops {
namespace {

bool is_cgroup2(const std::string& dir) {
  struct statfs fs {};
  return ::statfs(dir.c_str(), &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC;
}

// The file's first line; nullopt when it cannot be read.
std::optional<std::string> read_first_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  if (!in || !std::getline(in, line)) return std::nullopt;
  return line;
}

std::optional<std::uint64_t> parse_count(std::string_view text) {
  std::uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end == text.data()) return std::nullopt;
  return value;
}

// A whole number from the first of `dirs` that has `file`.
std::optional<std::uint64_t> read_count(const std::vector<std::string>& dirs, const char* file) {
  for (const auto& dir : dirs)
    if (auto line = read_first_line(dir + "/" + file)) return parse_count(*line);
  return std::nullopt;
}

// `key`'s value in a flat-keyed file ("usage_usec 1234" lines).
std::optional<std::uint64_t> read_keyed(const std::vector<std::string>& dirs, const char* file,
                                        std::string_view key) {
  for (const auto& dir : dirs) {
    std::ifstream in(dir + "/" + file);
    if (!in) continue;
    std::string name, value;
    while (in >> name >> value)
      if (name == key) return parse_count(value);
  }
  return std::nullopt;
}

// v1 reports no limit as the largest page-aligned counter (2^63 less a page).
constexpr std::uint64_t kV1Unlimited = std::uint64_t(1) << 62;

// --- the text format ----------------------------------------------------------

// A sample value: whole numbers as such, others in the shortest form that
// reads back the same.
std::string number(double value) { return fmt::format("{}", value); }

using Labels = std::vector<std::pair<std::string_view, std::string>>;

std::string label_set(const Labels& labels) {
  if (labels.empty()) return "";
  std::string out = "{";
  for (std::size_t k = 0; k < labels.size(); ++k) {
    if (k) out += ',';
    out += fmt::format("{}=\"{}\"", labels[k].first, escape_label_value(labels[k].second));
  }
  return out + "}";
}

// One family: its HELP and TYPE lines, then its samples together; a family
// without samples is left out whole.
class Family {
 public:
  Family(std::string_view name, std::string_view type, std::string_view help)
      : name_(name), type_(type), help_(help) {}
  void sample(const Labels& labels, std::string_view value, std::string_view suffix = "") {
    body_ += fmt::format("{}{}{} {}\n", name_, suffix, label_set(labels), value);
  }
  std::string text() const {
    if (body_.empty()) return "";
    return fmt::format("# HELP {} {}\n# TYPE {} {}\n{}", name_, help_, name_, type_, body_);
  }

 private:
  std::string name_, type_, help_;
  std::string body_;
};

Labels instance_labels(const state::FleetState& fleet, const state::InstanceRecord& r) {
  return {{"fleet", fleet.fleet}, {"instance", r.name()}, {"port", std::to_string(r.spec.port)}};
}

}  // namespace

std::string escape_label_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

CgroupUsage read_cgroup_usage(const std::vector<std::string>& dirs) {
  std::vector<std::string> v1, v2;
  for (const auto& dir : dirs) (is_cgroup2(dir) ? v2 : v1).push_back(dir);
  CgroupUsage usage;
  // A hybrid host has the controllers in v1 and often only membership in v2:
  // each figure from v1 when a v1 directory has its file, else from v2
  // (cpu.stat's usage_usec is there without the cpu controller).
  if (auto ns = read_count(v1, "cpuacct.usage")) usage.cpu_seconds = double(*ns) / 1e9;
  else if (auto us = read_keyed(v2, "cpu.stat", "usage_usec")) usage.cpu_seconds = double(*us) / 1e6;
  if (auto bytes = read_count(v1, "memory.usage_in_bytes")) {
    usage.memory_bytes = bytes;
    if (auto limit = read_count(v1, "memory.limit_in_bytes"); limit && *limit < kV1Unlimited)
      usage.memory_limit_bytes = limit;
  } else if (auto current = read_count(v2, "memory.current")) {
    usage.memory_bytes = current;
    usage.memory_limit_bytes = read_count(v2, "memory.max");  // "max": not a number, none
  }
  return usage;
}

std::vector<FleetMetrics> collect_metrics(const std::string& state_root, const std::string& data_root,
                                          const std::string& fleet, std::vector<std::string>* unreadable) {
  std::vector<state::FleetPaths> chosen;
  if (!fleet.empty()) chosen.push_back(choose_fleet(state_root, data_root, fleet));
  else
    for (const auto& name : state::list_fleets(state_root)) chosen.emplace_back(state_root, data_root, name);
  std::vector<FleetMetrics> out;
  for (const auto& paths : chosen) {
    std::optional<state::FleetState> loaded;
    try {
      loaded = state::load_state(paths);
    } catch (const Error& e) {
      if (!fleet.empty()) throw;
      if (unreadable) unreadable->push_back(paths.fleet + ": " + e.what());
      continue;
    }
    if (!loaded) continue;  // taken down meanwhile
    FleetMetrics m;
    m.state = std::move(*loaded);
    m.supervised = state::is_alive(m.state.supervisor);
    for (const auto& r : m.state.instances)
      if (r.process.pid > 0 && state::is_alive(r.process)) m.usage[r.name()] = read_cgroup_usage(r.cgroup_paths);
    out.push_back(std::move(m));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.state.fleet < b.state.fleet; });
  return out;
}

std::string format_metrics(const std::vector<FleetMetrics>& fleets) {
  std::string out;
  {
    Family f("haco_fleet_instances", "gauge", "Instances of the fleet in each state, as its state file records them.");
    for (const auto& m : fleets) {
      std::map<state::InstanceState, std::size_t> by_state;
      for (const auto& r : m.state.instances) ++by_state[r.state];
      for (auto s : state::kInstanceStates)
        f.sample({{"fleet", m.state.fleet}, {"state", std::string(state::instance_state_name(s))}},
                 std::to_string(by_state[s]));
    }
    out += f.text();
  }
  {
    Family f("haco_fleet_supervisor_up", "gauge", "1 when the fleet's supervisor runs, 0 otherwise.");
    for (const auto& m : fleets) f.sample({{"fleet", m.state.fleet}}, m.supervised ? "1" : "0");
    out += f.text();
  }
  {
    Family f("haco_instance_restarts_total", "counter", "Restarts of the instance by the restart policy.");
    for (const auto& m : fleets)
      for (const auto& r : m.state.instances) f.sample(instance_labels(m.state, r), std::to_string(r.restarts));
    out += f.text();
  }
  {
    Family f("haco_start_latency_seconds", "histogram",
             "Time each phase of an instance's start took (up, start, restart, and clone_to_exec of restarts by "
             "the policy).");
    for (const auto& m : fleets) {
      std::map<std::string, state::PhaseLatency> phases;
      for (const auto& r : m.state.instances)
        for (const auto& [phase, latency] : r.start_latency) phases[phase] += latency;
      for (const auto& [phase, latency] : phases) {
        std::uint64_t cumulative = 0;
        for (std::size_t k = 0; k < state::kLatencyBoundsSeconds.size(); ++k) {
          cumulative += latency.counts[k];
          f.sample({{"fleet", m.state.fleet}, {"phase", phase}, {"le", number(state::kLatencyBoundsSeconds[k])}},
                   std::to_string(cumulative), "_bucket");
        }
        f.sample({{"fleet", m.state.fleet}, {"phase", phase}, {"le", "+Inf"}}, std::to_string(latency.count()),
                 "_bucket");
        f.sample({{"fleet", m.state.fleet}, {"phase", phase}}, number(latency.sum_seconds), "_sum");
        f.sample({{"fleet", m.state.fleet}, {"phase", phase}}, std::to_string(latency.count()), "_count");
      }
    }
    out += f.text();
  }
  // Only instances whose init runs have usage; each family lists those that
  // have its figure.
  auto usage_family = [&](std::string_view name, std::string_view type, std::string_view help, auto value_of) {
    Family f(name, type, help);
    for (const auto& m : fleets)
      for (const auto& r : m.state.instances) {
        auto it = m.usage.find(r.name());
        if (it == m.usage.end()) continue;
        if (auto value = value_of(it->second)) f.sample(instance_labels(m.state, r), *value);
      }
    out += f.text();
  };
  usage_family("haco_instance_cpu_usage_seconds_total", "counter",
               "CPU time used by the instance's cgroup (v2 cpu.stat usage_usec, v1 cpuacct.usage).",
               [](const CgroupUsage& u) -> std::optional<std::string> {
                 if (!u.cpu_seconds) return std::nullopt;
                 return number(*u.cpu_seconds);
               });
  usage_family("haco_instance_memory_bytes", "gauge",
               "Memory used by the instance's cgroup (v2 memory.current, v1 memory.usage_in_bytes).",
               [](const CgroupUsage& u) -> std::optional<std::string> {
                 if (!u.memory_bytes) return std::nullopt;
                 return std::to_string(*u.memory_bytes);
               });
  usage_family("haco_instance_memory_limit_bytes", "gauge",
               "Memory limit of the instance's cgroup (v2 memory.max, v1 memory.limit_in_bytes), when one is set.",
               [](const CgroupUsage& u) -> std::optional<std::string> {
                 if (!u.memory_limit_bytes) return std::nullopt;
                 return std::to_string(*u.memory_limit_bytes);
               });
  return out;
}

}  // namespace haco::ops
