// The JSON form of the control, spawner and log writer messages: the only
// place that spells their keys.
#include "haco/control_protocol.hpp"

#include <type_traits>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "haco/error.hpp"
#include "haco/overloaded.hpp"
#include "haco/spec_json.hpp"

namespace haco::supervisor::protocol {
namespace {

using nlohmann::json;

// Parses `text` as one JSON object; `what` names the message in errors.
json parse_object(std::string_view text, const std::string& what) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw Error(fmt::format("{}: not JSON ({})", what, e.what()));
  }
  if (!j.is_object()) throw Error(fmt::format("{}: not a JSON object", what));
  return j;
}

// The fields of one received message; errors name the message and the key.
class Fields {
 public:
  Fields(const json& j, std::string what) : j_(j), what_(std::move(what)) {}

  template <typename T>
  T get(const char* key) const {
    return convert<T>(at(key), key);
  }

  // A nested value, not copied; `is_kind` checks its JSON type.
  const json& nested(const char* key, bool (json::*is_kind)() const noexcept) const {
    const json& value = at(key);
    if (!(value.*is_kind)()) throw wrong_type(key, value);
    return value;
  }

  template <typename T>
  std::optional<T> get_optional(const char* key) const {
    auto it = j_.find(key);
    if (it == j_.end()) return std::nullopt;
    return convert<T>(*it, key);
  }

  const std::string& what() const { return what_; }

 private:
  const json& at(const char* key) const {
    auto it = j_.find(key);
    if (it == j_.end()) throw Error(fmt::format("{}: missing key '{}'", what_, key));
    return *it;
  }

  template <typename T>
  T convert(const json& value, const char* key) const {
    // nlohmann would turn a boolean into a number: a key of another JSON
    // type is refused as such.
    bool fits;
    if constexpr (std::is_same_v<T, bool>) fits = value.is_boolean();
    else if constexpr (std::is_integral_v<T>) fits = value.is_number_integer();
    else if constexpr (std::is_same_v<T, std::string>) fits = value.is_string();
    else fits = true;
    if (!fits) throw wrong_type(key, value);
    try {
      return value.get<T>();
    } catch (const json::exception&) {
      throw wrong_type(key, value);
    }
  }

  Error wrong_type(const char* key, const json& value) const {
    return Error(fmt::format("{}: key '{}' has the wrong type ({})", what_, key, value.type_name()));
  }

  const json& j_;
  std::string what_;
};

std::string request_text(const std::string& op) { return "control request '" + op + "'"; }
std::string event_text(const std::string& event) { return "control event '" + event + "'"; }
constexpr const char* kDoneText = "control reply 'done'";
constexpr const char* kSpawnRequestText = "spawn request";
constexpr const char* kSpawnReplyText = "spawn reply";
constexpr const char* kLogPipeText = "log writer message 'pipe'";
constexpr const char* kPipeDrainedText = "log writer message 'drained'";

// A version other than ours is refused before any other key is read: its
// requests may have another shape.
void check_version(const json& j) {
  auto it = j.find("version");
  if (it == j.end())
    throw Error(fmt::format("a control request without a protocol version (from a haco-fleet older than control "
                            "protocol version {}, which this supervisor speaks): `down` the fleet and `up` it "
                            "again with one binary",
                            kControlProtocolVersion));
  if (!it->is_number_integer())
    throw Error(fmt::format("control request: key 'version' has the wrong type ({})", it->type_name()));
  if (auto version = it->get<std::int64_t>(); version != kControlProtocolVersion)
    throw Error(fmt::format("a control request of protocol version {}, but this supervisor speaks version {}: "
                            "`down` the fleet and `up` it again with one binary",
                            version, kControlProtocolVersion));
}

std::vector<state::InstanceRecord> records_from_json(const Fields& fields) {
  const json& list = fields.nested("instances", &json::is_array);
  std::vector<state::InstanceRecord> records;
  records.reserve(list.size());
  for (std::size_t k = 0; k < list.size(); ++k)
    records.push_back(with_context(fmt::format("{}: instance {}", fields.what(), k), [&] {
      try {
        return state::instance_record_from_json(list[k]);
      } catch (const json::exception& e) {
        throw Error(e.what());
      }
    }));
  return records;
}

std::vector<InstanceLimits> limits_from_json(const Fields& fields) {
  const json& list = fields.nested("instances", &json::is_array);
  std::vector<InstanceLimits> out;
  for (std::size_t k = 0; k < list.size(); ++k) {
    const std::string what = fmt::format("{}: instance {}", fields.what(), k);
    if (!list[k].is_object()) throw Error(what + ": not a JSON object");
    Fields item(list[k], what);
    InstanceLimits limits{item.get<std::string>("instance"), {}};
    const json& cgroup = item.nested("cgroup", &json::is_array);
    for (const auto& setting : cgroup) {
      if (!setting.is_object()) throw Error(what + ": a cgroup setting that is not a JSON object");
      Fields pair(setting, what + ": cgroup setting");
      limits.cgroup.push_back({pair.get<std::string>("key"), pair.get<std::string>("value")});
    }
    out.push_back(std::move(limits));
  }
  return out;
}

std::vector<MeasuredStart> starts_from_json(const Fields& fields) {
  const json& list = fields.nested("starts", &json::is_array);
  std::vector<MeasuredStart> out;
  for (std::size_t k = 0; k < list.size(); ++k) {
    const std::string what = fmt::format("{}: start {}", fields.what(), k);
    if (!list[k].is_object()) throw Error(what + ": not a JSON object");
    Fields item(list[k], what);
    MeasuredStart start{item.get<std::string>("instance"), {}};
    for (const auto& [phase, seconds] : item.nested("phases", &json::is_object).items()) {
      if (!seconds.is_number()) throw Error(fmt::format("{}: phase '{}' is not a number", what, phase));
      start.phases[phase] = seconds.get<double>();
    }
    out.push_back(std::move(start));
  }
  return out;
}

}  // namespace

std::string_view request_name(const Request& request) {
  return std::visit(Overloaded{[](const StartRequest&) { return "start"; },
                               [](const StopRequest&) { return "stop"; },
                               [](const ShutdownRequest&) { return "shutdown"; },
                               [](const PingRequest&) { return "ping"; },
                               [](const UpdateLimitsRequest&) { return "update-limits"; },
                               [](const RecordLatenciesRequest&) { return "record-latencies"; }},
                    request);
}

std::string encode(const Request& request) {
  json j = std::visit(
      Overloaded{[](const StartRequest& r) {
                   json records = json::array();
                   for (const auto& record : r.instances) records.push_back(state::to_json(record));
                   return json{{"instances", std::move(records)}};
                 },
                 [](const StopRequest& r) {
                   return json{{"instances", r.instances}, {"timeout_ms", r.timeout.count()}, {"forget", r.forget}};
                 },
                 [](const ShutdownRequest& r) { return json{{"timeout_ms", r.timeout.count()}}; },
                 [](const PingRequest&) { return json::object(); },
                 [](const UpdateLimitsRequest& r) {
                   json instances = json::array();
                   for (const auto& limits : r.instances) {
                     json cgroup = json::array();
                     for (const auto& setting : limits.cgroup)
                       cgroup.push_back({{"key", setting.key}, {"value", setting.value}});
                     instances.push_back({{"instance", limits.instance}, {"cgroup", std::move(cgroup)}});
                   }
                   return json{{"instances", std::move(instances)}};
                 },
                 [](const RecordLatenciesRequest& r) {
                   json starts = json::array();
                   for (const auto& start : r.starts)
                     starts.push_back({{"instance", start.instance}, {"phases", start.phases}});
                   return json{{"starts", std::move(starts)}};
                 }},
      request);
  j["op"] = std::string(request_name(request));
  j["version"] = kControlProtocolVersion;
  return j.dump();
}

Request decode_request(std::string_view text) {
  json j = parse_object(text, "control request");
  check_version(j);
  auto op = Fields(j, "control request").get<std::string>("op");
  Fields fields(j, request_text(op));
  if (op == "start") return StartRequest{records_from_json(fields)};
  if (op == "stop")
    return StopRequest{fields.get<std::vector<std::string>>("instances"),
                       std::chrono::milliseconds(fields.get<std::int64_t>("timeout_ms")), fields.get<bool>("forget")};
  if (op == "shutdown") return ShutdownRequest{std::chrono::milliseconds(fields.get<std::int64_t>("timeout_ms"))};
  if (op == "ping") return PingRequest{};
  if (op == "update-limits") return UpdateLimitsRequest{limits_from_json(fields)};
  if (op == "record-latencies") return RecordLatenciesRequest{starts_from_json(fields)};
  throw Error("unknown control request '" + op + "'");
}

std::string encode(const Reply& reply) {
  json j = std::visit(Overloaded{[](const StartedEvent& e) {
                                   return json{{"event", "started"},
                                               {"instance", e.instance},
                                               {"pid", e.pid},
                                               {"start_time", e.start_time},
                                               {"clone_started_ns", e.clone_started_ns},
                                               {"exec_done_ns", e.exec_done_ns}};
                                 },
                                 [](const FailedEvent& e) {
                                   return json{{"event", "failed"}, {"instance", e.instance}, {"error", e.error}};
                                 },
                                 [](const ExitedEvent& e) {
                                   return json{{"event", "exited"},
                                               {"instance", e.instance},
                                               {"exit", e.exit},
                                               {"restarting", e.restarting}};
                                 },
                                 [](const Done& d) {
                                   json out{{"done", true}};
                                   if (d.error) out["error"] = *d.error;
                                   if (d.pid) out["pid"] = *d.pid;
                                   return out;
                                 }},
                      reply);
  return j.dump();
}

Reply decode_reply(std::string_view text) {
  json j = parse_object(text, "control reply");
  if (j.contains("done")) {
    Fields fields(j, kDoneText);
    if (!fields.get<bool>("done")) throw Error(std::string(kDoneText) + ": 'done' is false");
    return Done{fields.get_optional<std::string>("error"), fields.get_optional<pid_t>("pid")};
  }
  auto event = Fields(j, "control reply").get<std::string>("event");
  Fields fields(j, event_text(event));
  if (event == "started")
    return StartedEvent{fields.get<std::string>("instance"), fields.get<pid_t>("pid"),
                        fields.get<std::uint64_t>("start_time"), fields.get<std::int64_t>("clone_started_ns"),
                        fields.get<std::int64_t>("exec_done_ns")};
  if (event == "failed") return FailedEvent{fields.get<std::string>("instance"), fields.get<std::string>("error")};
  if (event == "exited")
    return ExitedEvent{fields.get<std::string>("instance"), fields.get<std::string>("exit"),
                       fields.get<bool>("restarting")};
  throw Error("unknown control event '" + event + "'");
}

std::string encode(const SpawnRequest& request) {
  return json{{"instance", haco::to_json(request.instance)}, {"log_path", request.log_path}}.dump();
}

SpawnRequest decode_spawn_request(std::string_view text) {
  json j = parse_object(text, kSpawnRequestText);
  Fields fields(j, kSpawnRequestText);
  const json& instance = fields.nested("instance", &json::is_object);
  return SpawnRequest{with_context(std::string(kSpawnRequestText) + ": instance",
                                   [&] { return instance_spec_from_json(instance); }),
                      fields.get<std::string>("log_path")};
}

std::string encode(const SpawnReply& reply) {
  json j = std::visit(Overloaded{[](const SpawnStarted& s) {
                                   return json{{"ok", true},
                                               {"pid", s.pid},
                                               {"cgroup_paths", s.cgroup_paths},
                                               {"clone_started_ns", s.clone_started_ns},
                                               {"exec_done_ns", s.exec_done_ns}};
                                 },
                                 [](const SpawnFailed& f) { return json{{"ok", false}, {"error", f.error}}; }},
                      reply);
  return j.dump();
}

SpawnReply decode_spawn_reply(std::string_view text) {
  json j = parse_object(text, kSpawnReplyText);
  Fields fields(j, kSpawnReplyText);
  if (!fields.get<bool>("ok")) return SpawnFailed{fields.get<std::string>("error")};
  return SpawnStarted{fields.get<pid_t>("pid"), fields.get<std::vector<std::string>>("cgroup_paths"),
                      fields.get<std::int64_t>("clone_started_ns"), fields.get<std::int64_t>("exec_done_ns")};
}

std::string encode(const LogPipe& pipe) {
  return json{{"pipe", pipe.id}, {"instance", pipe.instance}, {"log_path", pipe.log_path}}.dump();
}

LogPipe decode_log_pipe(std::string_view text) {
  json j = parse_object(text, kLogPipeText);
  Fields fields(j, kLogPipeText);
  return LogPipe{fields.get<std::uint64_t>("pipe"), fields.get<std::string>("instance"),
                 fields.get<std::string>("log_path")};
}

std::string encode(const PipeDrained& drained) { return json{{"drained", drained.id}}.dump(); }

PipeDrained decode_pipe_drained(std::string_view text) {
  json j = parse_object(text, kPipeDrainedText);
  return PipeDrained{Fields(j, kPipeDrainedText).get<std::uint64_t>("drained")};
}

}  // namespace haco::supervisor::protocol
