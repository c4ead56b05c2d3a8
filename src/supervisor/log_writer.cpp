// The log writer process and its side of the log writer socket.
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <deque>
#include <map>
#include <memory>

#include <utility>  // boost 1.74 asio/awaitable.hpp uses std::exchange without it

#include <boost/asio.hpp>
#include <fmt/format.h>

#include "haco/error.hpp"
#include "haco/fd_passing.hpp"
#include "haco/supervisor.hpp"
#include "supervisor/instance_log.hpp"
#include "supervisor/log_writer.hpp"
#include "supervisor/supervisor_log.hpp"

namespace haco::supervisor {
namespace {

namespace asio = boost::asio;

constexpr const char* kSocketName = "log writer socket";
// A message names an instance and a log path: small.
constexpr std::size_t kMaxMessage = 64 * 1024;
constexpr int kSocketBuffer = 1 << 20;
// Bytes moved from one pipe before the others get their turn.
constexpr std::uint64_t kDrainBudget = 1 << 20;

class LogWriter {
 public:
  LogWriter(int control, std::uint64_t max_bytes) : control_(io_, control), max_bytes_(max_bytes) {}

  void run() {
    wait_for_control();
    io_.run();
  }

 private:
  struct Pipe {
    protocol::LogPipe about;
    std::unique_ptr<asio::posix::stream_descriptor> stream;
    std::shared_ptr<InstanceLogFile> log;
    bool failing = false;  // the last attempt to write its log failed (said once)
  };

  void wait_for_control() {
    control_.async_wait(asio::posix::stream_descriptor::wait_read, [this](const boost::system::error_code& ec) {
      if (!ec) on_control_readable();
    });
  }

  void on_control_readable() {
    ReceivedMessage message;
    try {
      message = receive_with_fd(control_.native_handle(), kMaxMessage, kSocketName);
    } catch (const Error& e) {
      if (e.sys_errno() == EAGAIN) {
        wait_for_control();
        return;
      }
      log_line("log writer: " + std::string(e.what()) + "; no more pipes will be received");
      message.payload.clear();
    }
    if (message.payload.empty()) {
      // The supervisor is gone (or done): the pipes held are written out.
      control_open_ = false;
      outbox_.clear();
      control_.close();
      finish_if_done();
      return;
    }
    try {
      protocol::LogPipe about = protocol::decode_log_pipe(message.payload);
      if (!message.fd)
        log_line(fmt::format("log writer: the output pipe of {} did not arrive{}; its log gets nothing more",
                             about.instance, message.fd_lost ? " (no descriptor free under the open-file limit)" : ""));
      else
        add_pipe(std::move(about), std::move(message.fd));
    } catch (const std::exception& e) {
      log_line(std::string("log writer: a message from the supervisor: ") + e.what());
    }
    wait_for_control();
  }

  void add_pipe(protocol::LogPipe about, UniqueFd read_end) {
    const std::uint64_t id = about.id;
    if (pipes_.count(id)) return;  // handed over twice: the first copy serves
    // Shared with the supervisor's duplicate, which never reads.
    int flags = static_cast<int>(check_sys(::fcntl(read_end.get(), F_GETFL), "fcntl(F_GETFL)", about.instance));
    check_sys(::fcntl(read_end.get(), F_SETFL, flags | O_NONBLOCK), "fcntl(O_NONBLOCK)",
              "the output pipe of " + about.instance);
    Pipe pipe;
    pipe.about = std::move(about);
    pipe.stream = std::make_unique<asio::posix::stream_descriptor>(io_, read_end.release());
    pipes_.emplace(id, std::move(pipe));
    wait_for_pipe(id);
  }

  void wait_for_pipe(std::uint64_t id) {
    pipes_.at(id).stream->async_wait(asio::posix::stream_descriptor::wait_read,
                                     [this, id](const boost::system::error_code& ec) {
                                       if (!ec) on_pipe_readable(id);
                                     });
  }

  // One log file per path, shared by the pipes of an instance's launches.
  std::shared_ptr<InstanceLogFile> log_for(const std::string& path) {
    if (auto open = logs_[path].lock()) return open;
    auto log = std::make_shared<InstanceLogFile>(path, max_bytes_);
    logs_[path] = log;
    return log;
  }

  void on_pipe_readable(std::uint64_t id) {
    auto& pipe = pipes_.at(id);
    const int fd = pipe.stream->native_handle();
    DrainResult drained;
    try {
      if (!pipe.log) pipe.log = log_for(pipe.about.log_path);
      drained = drain_pipe_into_log(fd, *pipe.log, peek_, kDrainBudget);
      if (auto index_error = pipe.log->take_index_error(); !index_error.empty())
        log_line(fmt::format("log writer: {}: {}; its new lines get the time of the last one indexed",
                             pipe.about.instance, index_error));
      if (pipe.failing) log_line(fmt::format("log writer: {}: writing its log again", pipe.about.instance));
      pipe.failing = false;
    } catch (const Error& e) {
      // The container must not block on a log that cannot be written: what
      // it writes meanwhile is dropped, and that is said once.
      if (!pipe.failing)
        log_line(fmt::format("log writer: {}: {}; its output is dropped until its log can be written again",
                             pipe.about.instance, e.what()));
      pipe.failing = true;
      try {
        drained = discard_pipe(fd, kDrainBudget);
      } catch (const Error& again) {
        log_line(fmt::format("log writer: {}: {}; the pipe is closed", pipe.about.instance, again.what()));
        drained.end_of_file = true;
      }
    }
    if (!drained.end_of_file) {
      wait_for_pipe(id);
      return;
    }
    const std::string path = pipe.about.log_path;
    pipes_.erase(id);
    if (auto log = logs_.find(path); log != logs_.end() && log->second.expired()) logs_.erase(log);
    tell_supervisor(protocol::encode(protocol::PipeDrained{id}));
    finish_if_done();
  }

  // Sends never block the writer: what the socket does not take now waits.
  void tell_supervisor(std::string message) {
    if (!control_open_) return;
    outbox_.push_back(std::move(message));
    if (outbox_.size() == 1) flush_outbox();
  }

  void flush_outbox() {
    while (!outbox_.empty()) {
      if (::send(control_.native_handle(), outbox_.front().data(), outbox_.front().size(),
                 MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) {
          control_.async_wait(asio::posix::stream_descriptor::wait_write,
                              [this](const boost::system::error_code& ec) {
                                if (!ec && control_open_) flush_outbox();
                              });
          return;
        }
        // The supervisor is gone: end-of-file on the socket follows.
        outbox_.clear();
        return;
      }
      outbox_.pop_front();
    }
  }

  void finish_if_done() {
    if (control_open_ || !pipes_.empty()) return;
    io_.stop();
  }

  asio::io_context io_;
  asio::posix::stream_descriptor control_;
  bool control_open_ = true;
  std::uint64_t max_bytes_;
  std::deque<std::string> outbox_;
  std::map<std::uint64_t, Pipe> pipes_;
  std::map<std::string, std::weak_ptr<InstanceLogFile>> logs_;
  PipePeek peek_;
};

[[noreturn]] void log_writer_main(const std::string& fleet, std::uint64_t max_bytes, int socket) {
  set_process_title("haco-fleet: logs " + fleet);
  // A writer forked by a running supervisor inherits its handlers, whose
  // wake-up pipes are closed here.
  ::signal(SIGTERM, SIG_DFL);
  ::signal(SIGINT, SIG_DFL);
  ::signal(SIGHUP, SIG_IGN);
  ::signal(SIGPIPE, SIG_IGN);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  int status = 0;
  try {
    LogWriter writer(socket, max_bytes);
    writer.run();
  } catch (const std::exception& e) {
    log_line(std::string("log writer failed: ") + e.what());
    status = 1;
  }
  std::fflush(nullptr);
  ::_exit(status);
}

}  // namespace

LogWriterProcess fork_log_writer(const std::string& fleet, std::uint64_t max_bytes) {
  // Nothing of the supervisor but stdio (the supervisor log) and the socket:
  // above all no pipe's write end, which would keep that pipe from ever
  // reaching end-of-file.
  return fork_child("log writer", kSocketBuffer, [&](int socket) {
    ::fcntl(socket, F_SETFL, ::fcntl(socket, F_GETFL) | O_NONBLOCK);
    log_writer_main(fleet, max_bytes, socket);
  });
}

void send_log_pipe(int socket, const protocol::LogPipe& pipe, int read_end) {
  send_with_fd(socket, protocol::encode(pipe), read_end, kSocketName);
}

std::optional<std::uint64_t> receive_drained_pipe(int socket) {
  ReceivedMessage message = receive_with_fd(socket, kMaxMessage, kSocketName);
  if (message.payload.empty()) return std::nullopt;
  return protocol::decode_pipe_drained(message.payload).id;
}

}  // namespace haco::supervisor
