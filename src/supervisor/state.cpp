// fleet.json: the versioned, atomically written state of one fleet.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "haco/atomic_file.hpp"
#include "haco/error.hpp"
#include "haco/layout.hpp"
#include "haco/names.hpp"
#include "haco/spec_json.hpp"
#include "haco/state.hpp"

namespace haco::state {
namespace {

using nlohmann::json;

constexpr std::array<std::pair<std::string_view, InstanceState>, 7> kStateNames{{
    {"starting", InstanceState::starting},
    {"running", InstanceState::running},
    {"restarting", InstanceState::restarting},
    {"exited", InstanceState::exited},
    {"failed", InstanceState::failed},
    {"stopping", InstanceState::stopping},
    {"stopped", InstanceState::stopped},
}};

template <typename T>
T field(const json& j, const char* name) {
  auto it = j.find(name);
  if (it == j.end()) throw Error(std::string("fleet state: missing field '") + name + "'");
  try {
    return it->get<T>();
  } catch (const json::exception&) {
    throw Error(std::string("fleet state: field '") + name + "' has the wrong type");
  }
}

json identity_json(const ProcessIdentity& p) { return {{"pid", p.pid}, {"start_time", p.start_time}}; }

ProcessIdentity identity_from_json(const json& j) {
  return {field<pid_t>(j, "pid"), field<std::uint64_t>(j, "start_time")};
}

}  // namespace

FleetPaths::FleetPaths(std::string state_root_, std::string data_root_, std::string fleet_)
    : state_root(std::move(state_root_)), data_root(std::move(data_root_)), fleet(std::move(fleet_)) {
  check_name("fleet name", fleet);
}

std::string FleetPaths::log_dir() const { return layout::DataRoot(data_root).fleet_logs(fleet); }

std::string FleetPaths::instance_log(const std::string& instance) const {
  check_name("instance name", instance);
  return log_dir() + "/" + instance + ".log";
}

void FleetPaths::make_directories() const {
  layout::make_private_directory(state_root);
  layout::make_private_directory(dir());
}

bool is_active(InstanceState s) {
  return s == InstanceState::running || s == InstanceState::starting || s == InstanceState::restarting ||
         s == InstanceState::stopping;
}

std::string_view instance_state_name(InstanceState s) {
  for (auto [name, value] : kStateNames)
    if (value == s) return name;
  return "unknown";
}

InstanceState instance_state_from_name(std::string_view name) {
  for (auto [n, value] : kStateNames)
    if (n == name) return value;
  throw Error("fleet state: unknown instance state '" + std::string(name) + "'");
}

std::string describe_exit(const ExitRecord& e) {
  if (e.signal != 0) return "signal " + std::to_string(e.signal) + " (" + ::strsignal(e.signal) + ")";
  if (e.code == ExitRecord::kUnknown) return "ended, exit status unknown";
  return "exit " + std::to_string(e.code);
}

std::uint64_t PhaseLatency::count() const {
  std::uint64_t total = 0;
  for (auto c : counts) total += c;
  return total;
}

void PhaseLatency::add(double seconds) {
  std::size_t k = 0;
  while (k < kLatencyBoundsSeconds.size() && seconds > kLatencyBoundsSeconds[k]) ++k;
  ++counts[k];
  sum_seconds += seconds;
}

PhaseLatency& PhaseLatency::operator+=(const PhaseLatency& other) {
  for (std::size_t k = 0; k < counts.size(); ++k) counts[k] += other.counts[k];
  sum_seconds += other.sum_seconds;
  return *this;
}

bool is_latency_phase_name(std::string_view phase) {
  if (phase.empty() || phase.size() > kLatencyPhaseNameMax || (phase[0] >= '0' && phase[0] <= '9')) return false;
  return std::all_of(phase.begin(), phase.end(),
                     [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'; });
}

bool add_start_latency(InstanceRecord& record, std::string_view phase, double seconds) {
  if (!is_latency_phase_name(phase) || !std::isfinite(seconds) || seconds < 0) return false;
  auto it = record.start_latency.find(std::string(phase));
  if (it == record.start_latency.end()) {
    if (record.start_latency.size() >= kLatencyPhasesKept) return false;
    it = record.start_latency.emplace(std::string(phase), PhaseLatency{}).first;
  }
  it->second.add(seconds);
  return true;
}

InstanceRecord* FleetState::find(const std::string& instance) {
  for (auto& r : instances)
    if (r.name() == instance) return &r;
  return nullptr;
}

const InstanceRecord* FleetState::find(const std::string& instance) const {
  return const_cast<FleetState*>(this)->find(instance);
}

json to_json(const rootfs::PreparedRootfs& p) {
  return {{"instance", p.instance},   {"rootfs", p.rootfs},     {"strategy", std::string(rootfs::strategy_name(p.strategy))},
          {"upper_dir", p.upper_dir}, {"work_dir", p.work_dir}, {"reused", p.reused},
          {"elapsed_ns", p.elapsed.count()}};
}

rootfs::PreparedRootfs prepared_rootfs_from_json(const json& j) {
  rootfs::PreparedRootfs p;
  p.instance = field<std::string>(j, "instance");
  p.rootfs = field<std::string>(j, "rootfs");
  auto strategy = field<std::string>(j, "strategy");
  if (strategy == rootfs::strategy_name(rootfs::Strategy::extract)) p.strategy = rootfs::Strategy::extract;
  else if (strategy == rootfs::strategy_name(rootfs::Strategy::overlay)) p.strategy = rootfs::Strategy::overlay;
  else throw Error("fleet state: unknown rootfs strategy '" + strategy + "'");
  p.upper_dir = field<std::string>(j, "upper_dir");
  p.work_dir = field<std::string>(j, "work_dir");
  p.reused = field<bool>(j, "reused");
  p.elapsed = std::chrono::nanoseconds(field<std::int64_t>(j, "elapsed_ns"));
  return p;
}

json to_json(const InstanceRecord& r) {
  json out = {
      {"spec", to_json(r.spec)},
      {"spec_hash", r.spec_hash},
      {"rootfs", r.rootfs ? to_json(*r.rootfs) : json()},
      {"log_path", r.log_path},
      {"cgroup_paths", r.cgroup_paths},
      {"process", identity_json(r.process)},
      {"state", std::string(instance_state_name(r.state))},
      {"started_at_unix_ms", r.started_at_unix_ms},
      {"restarts", r.restarts},
      {"last_exit", r.last_exit ? json{{"code", r.last_exit->code},
                                       {"signal", r.last_exit->signal},
                                       {"at_unix_ms", r.last_exit->at_unix_ms}}
                                : json()},
      {"error", r.error},
  };
  if (!r.recent_exits.empty()) {
    json exits = json::array();
    for (const auto& e : r.recent_exits)
      exits.push_back({{"code", e.exit.code},
                       {"signal", e.exit.signal},
                       {"at_unix_ms", e.exit.at_unix_ms},
                       {"restarted", e.restarted},
                       {"stop_requested", e.stop_requested}});
    out["recent_exits"] = std::move(exits);
  }
  if (r.expansion)
    out["expansion"] = {{"port_env", r.expansion->port_env_names},
                        {"default_pids_max", r.expansion->default_pids_max},
                        {"allow_shared_rootfs", r.expansion->allow_shared_rootfs}};
  if (!r.start_latency.empty()) {
    json phases = json::object();
    for (const auto& [phase, latency] : r.start_latency)
      phases[phase] = {{"le", kLatencyBoundsSeconds}, {"counts", latency.counts}, {"sum_seconds", latency.sum_seconds}};
    out["start_latency"] = std::move(phases);
  }
  return out;
}

InstanceRecord instance_record_from_json(const json& j) {
  InstanceRecord r;
  r.spec = instance_spec_from_json(field<json>(j, "spec"));
  r.spec_hash = field<std::string>(j, "spec_hash");
  if (const auto& p = field<json>(j, "rootfs"); !p.is_null()) r.rootfs = prepared_rootfs_from_json(p);
  r.log_path = field<std::string>(j, "log_path");
  r.cgroup_paths = field<std::vector<std::string>>(j, "cgroup_paths");
  r.process = identity_from_json(field<json>(j, "process"));
  r.state = instance_state_from_name(field<std::string>(j, "state"));
  r.started_at_unix_ms = field<std::int64_t>(j, "started_at_unix_ms");
  r.restarts = field<unsigned>(j, "restarts");
  if (const auto& e = field<json>(j, "last_exit"); !e.is_null())
    r.last_exit = ExitRecord{field<int>(e, "code"), field<int>(e, "signal"), field<std::int64_t>(e, "at_unix_ms")};
  r.error = field<std::string>(j, "error");
  // Both are absent from records written before they existed.
  if (auto exits = j.find("recent_exits"); exits != j.end())
    for (const auto& e : *exits)
      r.recent_exits.push_back({{field<int>(e, "code"), field<int>(e, "signal"), field<std::int64_t>(e, "at_unix_ms")},
                                field<bool>(e, "restarted"),
                                field<bool>(e, "stop_requested")});
  if (auto e = j.find("expansion"); e != j.end())
    r.expansion = RecordedExpansion{field<std::vector<std::string>>(*e, "port_env"),
                                    field<std::string>(*e, "default_pids_max"), field<bool>(*e, "allow_shared_rootfs")};
  // Absent before start latencies were kept. A phase kept with other bounds
  // (another version) cannot be merged with these and is left out.
  if (auto phases = j.find("start_latency"); phases != j.end() && phases->is_object())
    for (const auto& [phase, h] : phases->items()) {
      if (!is_latency_phase_name(phase) || r.start_latency.size() >= kLatencyPhasesKept) continue;
      const auto bounds = field<std::vector<double>>(h, "le");
      const auto counts = field<std::vector<std::uint64_t>>(h, "counts");
      if (!std::equal(bounds.begin(), bounds.end(), kLatencyBoundsSeconds.begin(), kLatencyBoundsSeconds.end()) ||
          counts.size() != PhaseLatency{}.counts.size())
        continue;
      PhaseLatency latency;
      std::copy(counts.begin(), counts.end(), latency.counts.begin());
      latency.sum_seconds = field<double>(h, "sum_seconds");
      r.start_latency.emplace(phase, latency);
    }
  return r;
}

namespace {

// Everything of the state but its instances ("instances" is an empty array).
json fleet_json_without_instances(const FleetState& s) {
  json spawners = json::array();
  for (const auto& p : s.spawners) spawners.push_back(identity_json(p));
  return {{"schema", kStateSchemaVersion},
          {"fleet", s.fleet},
          {"definition", s.definition},
          {"restart_policy", s.restart_policy},
          {"created_at_unix_ms", s.created_at_unix_ms},
          {"supervisor", identity_json(s.supervisor)},
          {"spawners", spawners},
          {"log_writer", identity_json(s.log_writer)},
          {"cgroup",
           {{"layout", cgroups::layout_name(s.cgroup.layout)}, {"dir", s.cgroup.dir}, {"unit", s.cgroup.unit}}},
          {"instances", json::array()}};
}

}  // namespace

json to_json(const FleetState& s) {
  json out = fleet_json_without_instances(s);
  json& instances = out["instances"];
  for (const auto& r : s.instances) instances.push_back(to_json(r));
  return out;
}

FleetState fleet_state_from_json(const json& j) {
  int schema = field<int>(j, "schema");
  if (schema != kStateSchemaVersion)
    throw Error("fleet state: schema " + std::to_string(schema) + " is not the one this haco-fleet reads (" +
                std::to_string(kStateSchemaVersion) + ")");
  FleetState s;
  s.fleet = field<std::string>(j, "fleet");
  s.definition = field<std::string>(j, "definition");
  s.restart_policy = field<std::string>(j, "restart_policy");
  s.created_at_unix_ms = field<std::int64_t>(j, "created_at_unix_ms");
  s.supervisor = identity_from_json(field<json>(j, "supervisor"));
  for (const auto& p : field<json>(j, "spawners")) s.spawners.push_back(identity_from_json(p));
  // A fleet recorded before it had a log writer has none.
  if (auto w = j.find("log_writer"); w != j.end()) s.log_writer = identity_from_json(*w);
  // A fleet recorded before layouts were recorded ran on the v1 layout.
  s.cgroup.fleet = s.fleet;
  if (auto c = j.find("cgroup"); c != j.end()) {
    s.cgroup.layout = cgroups::layout_from_name(field<std::string>(*c, "layout"));
    s.cgroup.dir = field<std::string>(*c, "dir");
    s.cgroup.unit = field<std::string>(*c, "unit");
  }
  for (const auto& r : field<json>(j, "instances")) s.instances.push_back(instance_record_from_json(r));
  return s;
}

std::optional<json> read_json_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    if (errno == ENOENT) return std::nullopt;
    throw Error::from_errno("open", path, errno);
  }
  std::stringstream text;
  text << in.rdbuf();
  try {
    return json::parse(text.str());
  } catch (const json::exception& e) {
    throw Error(std::string("not valid JSON: ") + e.what()).with_context("reading " + path);
  }
}

std::optional<FleetState> load_state(const FleetPaths& paths) {
  auto j = read_json_file(paths.state_file());
  if (!j) return std::nullopt;
  return with_context("reading " + paths.state_file(), [&] { return fleet_state_from_json(*j); });
}

namespace {

// fleet.json is indented by one space a level; a record is an element of
// the top level's "instances", two levels deep.
constexpr int kStateIndent = 1;
constexpr std::string_view kRecordIndent = "  ";
constexpr std::string_view kNoInstances = "\n \"instances\": []";

}  // namespace

std::string instance_record_text(const InstanceRecord& record) {
  const std::string flat = to_json(record).dump(kStateIndent);
  std::string text;
  text.reserve(flat.size() + flat.size() / 8);
  // A newline inside a JSON string is escaped: each one here starts a line.
  for (char c : flat) {
    text += c;
    if (c == '\n') text += kRecordIndent;
  }
  return text;
}

void save_state(const FleetPaths& paths, const FleetState& state, const std::vector<std::string_view>& instance_texts) {
  with_context("writing the state of fleet '" + paths.fleet + "'", [&] {
    std::string text = fleet_json_without_instances(state).dump(kStateIndent);
    if (!instance_texts.empty()) {
      // A top-level key starts a line indented once; no string holds a raw
      // newline, so this is the one "instances" of the top level.
      const std::size_t at = text.find(kNoInstances);
      if (at == std::string::npos) throw Error("fleet state: no \"instances\" to write the records into");
      std::size_t size = 0;
      for (auto t : instance_texts) size += t.size() + kRecordIndent.size() + 2;
      std::string records = "\n \"instances\": [";
      records.reserve(size + 16);
      for (std::size_t i = 0; i < instance_texts.size(); ++i) {
        records += i == 0 ? "\n" : ",\n";
        records += kRecordIndent;
        records += instance_texts[i];
      }
      records += "\n ]";
      text.replace(at, kNoInstances.size(), records);
    }
    text += "\n";
    write_file_atomically(paths.state_file(), text, 0600);
  });
}

void save_state(const FleetPaths& paths, const FleetState& state) {
  std::vector<std::string> texts;
  texts.reserve(state.instances.size());
  for (const auto& r : state.instances) texts.push_back(instance_record_text(r));
  save_state(paths, state, std::vector<std::string_view>(texts.begin(), texts.end()));
}

std::vector<std::string> list_fleets(const std::string& state_root) {
  std::vector<std::string> fleets;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(state_root, ec)) {
    if (!entry.is_directory() || !is_valid_name(entry.path().filename().string())) continue;
    if (std::filesystem::exists(entry.path() / "fleet.json")) fleets.push_back(entry.path().filename());
  }
  std::sort(fleets.begin(), fleets.end());
  return fleets;
}

std::int64_t unix_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace haco::state
