// The fleet's log writer: one single-threaded process per fleet ("haco-fleet:
// logs <fleet>"), forked by the supervisor, in the supervisor's cgroup. Each
// launch's container init writes its stdout and stderr into a pipe; the
// supervisor hands the pipe's read end to the writer (SCM_RIGHTS over a
// SOCK_SEQPACKET socketpair made at fork time) with the instance's name and
// log path, and the writer moves what arrives into the log
// (instance_log.hpp). The writer does not die with the supervisor: it exits
// once its socket reached end-of-file and every pipe it holds did too, so
// after a SIGKILL of the supervisor it goes on until the instances are gone.
// The supervisor keeps a duplicate of each read end until the writer says the
// pipe is drained, so that a writer that dies is replaced by one given the
// same pipes (what waits in them is not lost). The messages are in
// haco/control_protocol.hpp.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "haco/control_protocol.hpp"
#include "haco/unique_fd.hpp"
#include "supervisor/child_process.hpp"

namespace haco::supervisor {

using LogWriterProcess = ChildProcess;

// Forks the log writer of `fleet`, whose logs are capped at `max_bytes`. The
// child keeps its socket and stdio (the supervisor log), closes every other
// descriptor and never returns. Must be called from a single-threaded process.
LogWriterProcess fork_log_writer(const std::string& fleet, std::uint64_t max_bytes);

// Supervisor -> writer: a pipe and its read end. Throws haco::Error.
void send_log_pipe(int socket, const protocol::LogPipe& pipe, int read_end);

// Writer -> supervisor: the pipe `drained` reached end-of-file and all it
// carried is in its log; nullopt when the writer closed its socket. Throws
// haco::Error for a message that is not one.
std::optional<std::uint64_t> receive_drained_pipe(int socket);

}  // namespace haco::supervisor
