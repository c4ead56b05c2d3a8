#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "haco/control_protocol.hpp"
#include "haco/error.hpp"
#include "haco/spec_json.hpp"
#include "sample_instance.hpp"

namespace haco::supervisor::protocol {
namespace {

using nlohmann::json;

using haco::testing::sample_instance;

state::InstanceRecord sample_record(std::uint16_t port) {
  state::InstanceRecord r;
  r.spec = sample_instance(port);
  r.spec_hash = state::spec_hash(r.spec);
  r.log_path = "/data/logs/web/web-" + std::to_string(port) + ".log";
  r.state = state::InstanceState::starting;
  return r;
}

// The message text with `key` removed, or set to `value`.
std::string without(const std::string& text, const char* key) {
  json j = json::parse(text);
  j.erase(key);
  return j.dump();
}
std::string with(const std::string& text, const char* key, json value) {
  json j = json::parse(text);
  j[key] = std::move(value);
  return j.dump();
}

// The message of the haco::Error that `decode` throws.
template <typename Fn>
std::string error_of(Fn&& decode) {
  try {
    decode();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no haco::Error thrown";
  return {};
}

TEST(ControlProtocol, StartRequestRoundTripsWithItsRecords) {
  StartRequest start{{sample_record(10001), sample_record(10002)}};
  auto back = decode_request(encode(Request{start}));
  auto* decoded = std::get_if<StartRequest>(&back);
  ASSERT_NE(decoded, nullptr);
  ASSERT_EQ(decoded->instances.size(), 2u);
  for (std::size_t k = 0; k < 2; ++k) {
    EXPECT_EQ(decoded->instances[k].spec, start.instances[k].spec);
    EXPECT_EQ(state::to_json(decoded->instances[k]), state::to_json(start.instances[k]));
  }
  EXPECT_EQ(request_name(back), "start");
}

TEST(ControlProtocol, StopShutdownAndPingRoundTrip) {
  auto stop = decode_request(encode(Request{StopRequest{{"web-1", "web-2"}, std::chrono::milliseconds(2500), true}}));
  ASSERT_TRUE(std::holds_alternative<StopRequest>(stop));
  EXPECT_EQ(std::get<StopRequest>(stop).instances, (std::vector<std::string>{"web-1", "web-2"}));
  EXPECT_EQ(std::get<StopRequest>(stop).timeout, std::chrono::milliseconds(2500));
  EXPECT_TRUE(std::get<StopRequest>(stop).forget);

  auto shutdown = decode_request(encode(Request{ShutdownRequest{std::chrono::milliseconds(0)}}));
  ASSERT_TRUE(std::holds_alternative<ShutdownRequest>(shutdown));
  EXPECT_EQ(std::get<ShutdownRequest>(shutdown).timeout, std::chrono::milliseconds(0));

  EXPECT_TRUE(std::holds_alternative<PingRequest>(decode_request(encode(Request{PingRequest{}}))));
}

TEST(ControlProtocol, UpdateLimitsRoundTripsAndRefusesAMalformedSetting) {
  UpdateLimitsRequest update{{{"web-1", {{"pids.max", "100"}, {"cpu.cfs_quota_us", "30000"}}}, {"web-2", {}}}};
  auto back = decode_request(encode(Request{update}));
  ASSERT_TRUE(std::holds_alternative<UpdateLimitsRequest>(back));
  EXPECT_EQ(std::get<UpdateLimitsRequest>(back).instances, update.instances);
  EXPECT_EQ(request_name(back), "update-limits");

  auto j = json::parse(encode(Request{update}));
  j["instances"][0]["cgroup"][0].erase("value");
  auto error = error_of([&] { decode_request(j.dump()); });
  EXPECT_NE(error.find("update-limits"), std::string::npos) << error;
  EXPECT_NE(error.find("'value'"), std::string::npos) << error;
}

TEST(ControlProtocol, RecordLatenciesRoundTripsAndRefusesAPhaseThatIsNotANumber) {
  RecordLatenciesRequest request{{{"web-1", {{"clone_to_exec", 0.0125}, {"exec_to_ready", 1.5}}}, {"web-2", {}}}};
  auto back = decode_request(encode(Request{request}));
  ASSERT_TRUE(std::holds_alternative<RecordLatenciesRequest>(back));
  EXPECT_EQ(std::get<RecordLatenciesRequest>(back).starts, request.starts);
  EXPECT_EQ(request_name(back), "record-latencies");

  auto j = json::parse(encode(Request{request}));
  j["starts"][0]["phases"]["rootfs"] = "fast";
  auto error = error_of([&] { decode_request(j.dump()); });
  EXPECT_NE(error.find("record-latencies"), std::string::npos) << error;
  EXPECT_NE(error.find("'rootfs'"), std::string::npos) << error;
}

TEST(ControlProtocol, EveryRequestCarriesTheVersion) {
  for (const Request& request : std::vector<Request>{StartRequest{}, StopRequest{}, ShutdownRequest{}, PingRequest{},
                                                     UpdateLimitsRequest{}, RecordLatenciesRequest{}})
    EXPECT_EQ(json::parse(encode(request)).at("version"), kControlProtocolVersion) << request_name(request);
}

TEST(ControlProtocol, EventsAndDoneRoundTrip) {
  auto started = decode_reply(encode(Reply{StartedEvent{"web-1", 4321, 998877, -5, 1234567890123}}));
  ASSERT_TRUE(std::holds_alternative<StartedEvent>(started));
  const auto& s = std::get<StartedEvent>(started);
  EXPECT_EQ(s.instance, "web-1");
  EXPECT_EQ(s.pid, 4321);
  EXPECT_EQ(s.start_time, 998877u);
  EXPECT_EQ(s.clone_started_ns, -5);
  EXPECT_EQ(s.exec_done_ns, 1234567890123);

  auto failed = decode_reply(encode(Reply{FailedEvent{"web-2", "exec /x: No such file"}}));
  ASSERT_TRUE(std::holds_alternative<FailedEvent>(failed));
  EXPECT_EQ(std::get<FailedEvent>(failed).instance, "web-2");
  EXPECT_EQ(std::get<FailedEvent>(failed).error, "exec /x: No such file");

  auto exited = decode_reply(encode(Reply{ExitedEvent{"web-3", "exit 1", true}}));
  ASSERT_TRUE(std::holds_alternative<ExitedEvent>(exited));
  EXPECT_EQ(std::get<ExitedEvent>(exited).exit, "exit 1");
  EXPECT_TRUE(std::get<ExitedEvent>(exited).restarting);

  auto done = decode_reply(encode(Reply{Done{}}));
  ASSERT_TRUE(std::holds_alternative<Done>(done));
  EXPECT_FALSE(std::get<Done>(done).error.has_value());
  EXPECT_FALSE(std::get<Done>(done).pid.has_value());
  auto refused = std::get<Done>(decode_reply(encode(Reply{Done{"the fleet is shutting down", std::nullopt}})));
  EXPECT_EQ(refused.error, "the fleet is shutting down");
  EXPECT_EQ(std::get<Done>(decode_reply(encode(Reply{Done{std::nullopt, 77}}))).pid, 77);
}

// The form `up` reads today: an event is told by "event", the end by "done".
TEST(ControlProtocol, RepliesKeepTheirWireForm) {
  auto started = json::parse(encode(Reply{StartedEvent{"web-1", 10, 20, 30, 40}}));
  EXPECT_EQ(started, (json{{"event", "started"},
                           {"instance", "web-1"},
                           {"pid", 10},
                           {"start_time", 20},
                           {"clone_started_ns", 30},
                           {"exec_done_ns", 40}}));
  EXPECT_EQ(json::parse(encode(Reply{Done{}})), (json{{"done", true}}));
  EXPECT_EQ(json::parse(encode(Reply{Done{"no", std::nullopt}})), (json{{"done", true}, {"error", "no"}}));
}

TEST(ControlProtocol, SpawnerMessagesRoundTrip) {
  SpawnRequest request{sample_instance(10003), "/data/logs/web/web-10003.log"};
  auto back = decode_spawn_request(encode(request));
  EXPECT_EQ(back.instance, request.instance);
  EXPECT_EQ(back.log_path, request.log_path);

  auto started = decode_spawn_reply(encode(SpawnReply{SpawnStarted{99, {"/sys/fs/cgroup/pids/x"}, 1, 2}}));
  ASSERT_TRUE(std::holds_alternative<SpawnStarted>(started));
  EXPECT_EQ(std::get<SpawnStarted>(started).pid, 99);
  EXPECT_EQ(std::get<SpawnStarted>(started).cgroup_paths, (std::vector<std::string>{"/sys/fs/cgroup/pids/x"}));
  EXPECT_EQ(std::get<SpawnStarted>(started).clone_started_ns, 1);
  EXPECT_EQ(std::get<SpawnStarted>(started).exec_done_ns, 2);

  auto failed = decode_spawn_reply(encode(SpawnReply{SpawnFailed{"clone3: Operation not permitted"}}));
  ASSERT_TRUE(std::holds_alternative<SpawnFailed>(failed));
  EXPECT_EQ(std::get<SpawnFailed>(failed).error, "clone3: Operation not permitted");
}

TEST(ControlProtocol, LogWriterMessagesRoundTrip) {
  auto pipe = decode_log_pipe(encode(LogPipe{42, "web-1", "/data/logs/web/web-1.log"}));
  EXPECT_EQ(pipe.id, 42u);
  EXPECT_EQ(pipe.instance, "web-1");
  EXPECT_EQ(pipe.log_path, "/data/logs/web/web-1.log");
  EXPECT_EQ(decode_pipe_drained(encode(PipeDrained{7})).id, 7u);
}

TEST(ControlProtocol, AMissingKeyNamesTheMessageAndTheKey) {
  auto stop = encode(Request{StopRequest{{"web-1"}, std::chrono::milliseconds(10), false}});
  EXPECT_EQ(error_of([&] { decode_request(without(stop, "timeout_ms")); }),
            "control request 'stop': missing key 'timeout_ms'");
  EXPECT_EQ(error_of([&] { decode_request(without(stop, "op")); }), "control request: missing key 'op'");
  auto started = encode(Reply{StartedEvent{"web-1", 10, 20, 30, 40}});
  EXPECT_EQ(error_of([&] { decode_reply(without(started, "start_time")); }),
            "control event 'started': missing key 'start_time'");
  auto spawned = encode(SpawnReply{SpawnStarted{1, {}, 2, 3}});
  EXPECT_EQ(error_of([&] { decode_spawn_reply(without(spawned, "exec_done_ns")); }),
            "spawn reply: missing key 'exec_done_ns'");
  EXPECT_EQ(error_of([&] { decode_log_pipe(without(encode(LogPipe{1, "a", "b"}), "log_path")); }),
            "log writer message 'pipe': missing key 'log_path'");
  EXPECT_EQ(error_of([&] { decode_pipe_drained("{}"); }), "log writer message 'drained': missing key 'drained'");
  // A key missing inside an instance record names the request and the record.
  json start = json::parse(encode(Request{StartRequest{{sample_record(10001)}}}));
  start["instances"][0].erase("log_path");
  auto message = error_of([&] { decode_request(start.dump()); });
  EXPECT_NE(message.find("control request 'start': instance 0"), std::string::npos) << message;
  EXPECT_NE(message.find("log_path"), std::string::npos) << message;
}

TEST(ControlProtocol, AWrongTypeNamesTheMessageAndTheKey) {
  auto stop = encode(Request{StopRequest{{"web-1"}, std::chrono::milliseconds(10), false}});
  EXPECT_EQ(error_of([&] { decode_request(with(stop, "forget", "yes")); }),
            "control request 'stop': key 'forget' has the wrong type (string)");
  EXPECT_EQ(error_of([&] { decode_request(with(stop, "timeout_ms", true)); }),
            "control request 'stop': key 'timeout_ms' has the wrong type (boolean)");
  EXPECT_EQ(error_of([&] { decode_request(with(stop, "instances", json::array({1, 2}))); }),
            "control request 'stop': key 'instances' has the wrong type (array)");
  auto started = encode(Reply{StartedEvent{"web-1", 10, 20, 30, 40}});
  EXPECT_EQ(error_of([&] { decode_reply(with(started, "pid", "10")); }),
            "control event 'started': key 'pid' has the wrong type (string)");
  EXPECT_EQ(error_of([&] { decode_reply(with(encode(Reply{Done{}}), "error", 3)); }),
            "control reply 'done': key 'error' has the wrong type (number)");
  EXPECT_EQ(error_of([&] { decode_spawn_reply(R"({"ok":1})"); }), "spawn reply: key 'ok' has the wrong type (number)");
  EXPECT_EQ(error_of([&] { decode_reply("not json"); }).rfind("control reply: not JSON", 0), 0u);
  EXPECT_EQ(error_of([&] { decode_reply(R"({"event":"rebooted"})"); }), "unknown control event 'rebooted'");
}

// A request this supervisor does not know (one a newer binary added, as
// update-limits was) is refused by name, which the control server sends
// back as Done's error: what lets `reload` tell an older supervisor apart
// without a new protocol version.
TEST(ControlProtocol, AnUnknownRequestOfThisVersionIsRefusedByName) {
  EXPECT_EQ(error_of([&] { decode_request(R"({"op":"rewind","version":1})"); }), "unknown control request 'rewind'");
}

TEST(ControlProtocol, ARequestOfAnotherVersionIsRefusedNamingBothVersions) {
  // A future request whose shape this binary does not know: the version is
  // what it is told, not a key it misses.
  json future = {{"version", kControlProtocolVersion + 1}, {"op", "start"}, {"batches", json::array()}};
  auto message = error_of([&] { decode_request(future.dump()); });
  EXPECT_NE(message.find("protocol version " + std::to_string(kControlProtocolVersion + 1)), std::string::npos)
      << message;
  EXPECT_NE(message.find("speaks version " + std::to_string(kControlProtocolVersion)), std::string::npos) << message;

  auto unversioned = error_of([&] { decode_request(R"({"op":"ping"})"); });
  EXPECT_NE(unversioned.find("without a protocol version"), std::string::npos) << unversioned;
  EXPECT_NE(unversioned.find("version " + std::to_string(kControlProtocolVersion)), std::string::npos) << unversioned;

  EXPECT_EQ(error_of([&] { decode_request(R"({"version":"1","op":"ping"})"); }),
            "control request: key 'version' has the wrong type (string)");
}

}  // namespace
}  // namespace haco::supervisor::protocol
