// The messages between `up`/`down` and a fleet's supervisor, and between the
// supervisor and its spawners and log writer, each documented once here.
// Their JSON form is in src/supervisor/control_protocol.cpp and nowhere else:
// every other file builds and reads these structs.
//
// Control socket (<state root>/<fleet>/control.sock, SOCK_STREAM): one JSON
// object per line each way. A client sends one Request; the supervisor
// answers with zero or more events and ends the answer with Done.
//
//   StartRequest    -> StartedEvent or FailedEvent per instance, then Done;
//                      afterwards, for as long as the connection stays open,
//                      an ExitedEvent whenever one of those instances ends.
//   StopRequest     -> Done once every named instance has exited.
//   ShutdownRequest -> Done once every instance has exited; the supervisor,
//                      its spawners and its log writer then end.
//   PingRequest     -> Done carrying the supervisor's pid.
//   UpdateLimitsRequest (`reload`)
//                   -> a FailedEvent for each named instance whose limits
//                      were not applied (with why: not running, being
//                      started or stopped, a value the kernel refused, a
//                      controller its cgroup does not have), then Done. Every
//                      other instance had each setting written into its
//                      cgroup and read back (a running one), or taken for
//                      its next launch (one waiting to restart), and its
//                      record (spec and spec_hash) holds them.
//   RecordLatenciesRequest (after `up`, `start`, `restart` measured starts)
//                   -> a FailedEvent for each named instance the fleet does
//                      not have, or whose phase was refused (a bad name, a
//                      negative duration, too many phases), then Done once
//                      the others are added to their records' start_latency
//                      and fleet.json is written.
//
// A supervisor from before UpdateLimitsRequest answers it with a Done whose
// error is "unknown control request 'update-limits'" (the requests are
// decoded by name after the version check), so the version stays 1: the
// client turns that answer into a sentence of its own. RecordLatenciesRequest
// was added the same way; a client that gets that answer goes without.
//
// Every request carries kControlProtocolVersion. The supervisor answers a
// request of another version (or without one: from a haco-fleet older than
// versions) with a Done whose error names both versions, before it looks at
// anything else in the request; the supervisor that started a fleet is the
// binary that serves it until `down`, so a newer `up` reaching it gets that
// sentence rather than a complaint about a key.
//
// Spawner socket (SOCK_SEQPACKET, one message per datagram): SpawnRequest
// with the write end of the instance's output pipe attached (SCM_RIGHTS),
// answered by a SpawnReply with the init's pidfd attached when it started.
//
// Log writer socket (SOCK_SEQPACKET): LogPipe with the read end of the pipe
// attached, supervisor -> writer; PipeDrained, writer -> supervisor.
//
// The spawners and the log writer are forks of the supervisor (the same
// binary), so their messages carry no version.
//
// Every decode_* function throws haco::Error naming the message and the key
// for a missing key or one of the wrong type, and for text that is not JSON.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>


#include "haco/spec.hpp"
#include "haco/state.hpp"

namespace haco::supervisor::protocol {

// Raised whenever a message of the control socket changes shape.
inline constexpr int kControlProtocolVersion = 1;

// --- requests: client -> supervisor -----------------------------------------

// Start these instances (their records as `up` prepared them: spec, rootfs,
// log path). An instance already running is answered with a FailedEvent.
struct StartRequest {
  std::vector<state::InstanceRecord> instances;
};

// Stop these instances: their stop signal, then SIGKILL to their cgroups
// after `timeout`. With `forget`, their records leave the fleet's state once
// they are stopped.
struct StopRequest {
  std::vector<std::string> instances;
  std::chrono::milliseconds timeout{10000};
  bool forget = false;
};

// Stop every instance (as StopRequest, after `timeout` SIGKILL), then end the
// supervisor.
struct ShutdownRequest {
  std::chrono::milliseconds timeout{10000};
};

// Is the supervisor there, and which process is it?
struct PingRequest {};

// One instance's cgroup settings as its definition now gives them, in the
// definition's keys (v1 or v2, translated by the runtime).
struct InstanceLimits {
  std::string instance;
  std::vector<CgroupSetting> cgroup;
  bool operator==(const InstanceLimits&) const = default;
};

// Apply new cgroup limits to running instances without restarting them
// (`reload`): each instance's `cgroup` replaces its recorded settings.
struct UpdateLimitsRequest {
  std::vector<InstanceLimits> instances;
};

// One start of one instance as a client measured it: phase -> seconds
// (observe::phase names).
struct MeasuredStart {
  std::string instance;
  std::map<std::string, double> phases;
  bool operator==(const MeasuredStart&) const = default;
};

// Keep these measured starts in the instances' records (state::PhaseLatency),
// so that `metrics` finds them after the command that measured them ended.
struct RecordLatenciesRequest {
  std::vector<MeasuredStart> starts;
};

using Request = std::variant<StartRequest, StopRequest, ShutdownRequest, PingRequest, UpdateLimitsRequest,
                             RecordLatenciesRequest>;

// The request's name on the wire ("start", "stop", ...), for messages.
std::string_view request_name(const Request& request);

// --- replies: supervisor -> client ------------------------------------------

// An instance of a StartRequest runs: its init's pid and start time (its
// identity, /proc/PID/stat field 22), and the CLOCK_MONOTONIC instants
// (nanoseconds, comparable across processes) at which the spawner began its
// clone and saw its exec.
struct StartedEvent {
  std::string instance;
  pid_t pid = -1;
  std::uint64_t start_time = 0;
  std::int64_t clone_started_ns = 0;
  std::int64_t exec_done_ns = 0;
};

// An instance of a StartRequest did not start, and why.
struct FailedEvent {
  std::string instance;
  std::string error;
};

// An instance started on this connection ended: how (state::describe_exit of
// its exit record, "exit 1" or "signal 9 (Killed)"), and whether the restart
// policy starts it again. Sent once what the init wrote is in its log.
struct ExitedEvent {
  std::string instance;
  std::string exit;
  bool restarting = false;
};

// The last line of every answer: the request failed as a whole when `error`
// is set. `pid`: the supervisor's, in answer to PingRequest.
struct Done {
  std::optional<std::string> error;
  std::optional<pid_t> pid;
};

using Reply = std::variant<StartedEvent, FailedEvent, ExitedEvent, Done>;

// --- spawner: supervisor <-> spawner ----------------------------------------

// Launch this instance, its log at `log_path`.
struct SpawnRequest {
  InstanceSpec instance;
  std::string log_path;
};

// The container runs: its init's pid, the cgroup directories it was put in,
// and the CLOCK_MONOTONIC instants of clone and exec (as StartedEvent).
struct SpawnStarted {
  pid_t pid = -1;
  std::vector<std::string> cgroup_paths;
  std::int64_t clone_started_ns = 0;
  std::int64_t exec_done_ns = 0;
};

// The launch failed: the error as one sentence.
struct SpawnFailed {
  std::string error;
};

using SpawnReply = std::variant<SpawnStarted, SpawnFailed>;

// --- log writer: supervisor <-> writer --------------------------------------

// One launch's output pipe, handed to the writer with its read end.
struct LogPipe {
  std::uint64_t id = 0;  // unique in the supervisor's life
  std::string instance;
  std::string log_path;
};

// The pipe `id` reached end-of-file and all it carried is in its log.
struct PipeDrained {
  std::uint64_t id = 0;
};

// --- the JSON form ----------------------------------------------------------

// One message as text: one line without its newline (the control socket
// adds it), or one datagram.
std::string encode(const Request& request);
std::string encode(const Reply& reply);
std::string encode(const SpawnRequest& request);
std::string encode(const SpawnReply& reply);
std::string encode(const LogPipe& pipe);
std::string encode(const PipeDrained& drained);

// The inverse of encode. decode_request checks the version first (see above).
Request decode_request(std::string_view text);
Reply decode_reply(std::string_view text);
SpawnRequest decode_spawn_request(std::string_view text);
SpawnReply decode_spawn_reply(std::string_view text);
LogPipe decode_log_pipe(std::string_view text);
PipeDrained decode_pipe_drained(std::string_view text);

}  // namespace haco::supervisor::protocol
