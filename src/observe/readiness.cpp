#include "haco/readiness.hpp"

#include <fcntl.h>
#include <sched.h>
#include <sys/socket.h>

#include <fmt/format.h>

#include <algorithm>
#include <boost/asio.hpp>
#include <cctype>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "haco/error.hpp"

namespace haco::observe {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

bool valid_http_path(std::string_view path) {
  if (path.empty() || path.front() != '/') return false;
  return std::none_of(path.begin(), path.end(), [](unsigned char c) { return c <= ' ' || c == 0x7f; });
}

std::string seconds_text(Clock::duration d) {
  return fmt::format("{:.1f} s", std::chrono::duration<double>(d).count());
}

std::string endpoint_text(const tcp::endpoint& ep) {
  if (ep.address().is_v6()) return fmt::format("[{}]:{}", ep.address().to_string(), ep.port());
  return fmt::format("{}:{}", ep.address().to_string(), ep.port());
}

// Parses "HTTP/1.1 200 OK" into 200; 0 when the line is not a status line.
int status_code(std::string_view line) {
  if (line.substr(0, 5) != "HTTP/") return 0;
  auto space = line.find(' ');
  if (space == std::string_view::npos || line.size() < space + 4) return 0;
  int code = 0;
  for (std::size_t i = space + 1; i < space + 4; ++i) {
    if (!std::isdigit(static_cast<unsigned char>(line[i]))) return 0;
    code = code * 10 + (line[i] - '0');
  }
  if (line.size() > space + 4 && line[space + 4] != ' ') return 0;
  return code;
}

// A thread that creates sockets inside other network namespaces. setns()
// changes the namespace of the calling thread only, so this thread alone
// moves between namespaces while the io_context's thread stays in the
// caller's; a socket keeps the namespace it was created in, so the fd can be
// used by Asio on any thread.
class NetnsSocketFactory {
 public:
  // The fd of a new socket, or the errno and the call that failed.
  struct Outcome {
    std::shared_ptr<UniqueFd> socket;
    int error = 0;
    const char* call = "";
  };
  using Completion = std::function<void(Outcome)>;

  explicit NetnsSocketFactory(asio::io_context& io) : io_(io), thread_([this] { run(); }) {}
  ~NetnsSocketFactory() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_one();
    thread_.join();
  }

  // Creates a socket of `family` in the namespace of `netns`; `done` runs on
  // the io_context's thread.
  void request(std::shared_ptr<UniqueFd> netns, int family, Completion done) {
    {
      std::lock_guard lock(mutex_);
      jobs_.push_back({std::move(netns), family, std::move(done)});
    }
    wake_.notify_one();
  }

 private:
  struct Job {
    std::shared_ptr<UniqueFd> netns;
    int family;
    Completion done;
  };

  void run() {
    for (;;) {
      Job job;
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
        if (stopping_) return;
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      Outcome outcome;
      if (::setns(job.netns->get(), CLONE_NEWNET) != 0) {
        outcome.error = errno;
        outcome.call = "setns";
      } else {
        int fd = ::socket(job.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
          outcome.error = errno;
          outcome.call = "socket";
        } else {
          outcome.socket = std::make_shared<UniqueFd>(fd);
        }
      }
      asio::post(io_, [done = std::move(job.done), outcome = std::move(outcome)]() mutable {
        done(std::move(outcome));
      });
    }
  }

  asio::io_context& io_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Job> jobs_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace

ReadySpec parse_ready_spec(std::string_view text) {
  if (text == "tcp") return {ProbeKind::tcp, {}};
  constexpr std::string_view http_prefix = "http:";
  if (text.substr(0, http_prefix.size()) == http_prefix) {
    auto path = text.substr(http_prefix.size());
    if (!valid_http_path(path))
      throw InputError(fmt::format(
          "--ready {:?}: the path after \"http:\" must start with '/' and contain no spaces or control characters "
          "(e.g. http:/ or http:/index.php)",
          std::string(text)));
    return {ProbeKind::http, std::string(path)};
  }
  throw InputError(fmt::format("--ready {:?}: expected \"tcp\" or \"http:/PATH\"", std::string(text)));
}

std::string format_ready_spec(const ReadySpec& spec) {
  return spec.kind == ProbeKind::tcp ? std::string("tcp") : "http:" + spec.http_path;
}

ProbeSpec probe_spec(const ReadySpec& ready, std::uint16_t port, int netns_fd) {
  ProbeSpec spec;
  spec.kind = ready.kind;
  spec.port = port;
  if (ready.kind == ProbeKind::http) spec.http_path = ready.http_path;
  spec.netns_fd = netns_fd;
  return spec;
}

UniqueFd open_netns(int pid) {
  std::string path = fmt::format("/proc/{}/ns/net", pid);
  return UniqueFd(static_cast<int>(check_sys(::open(path.c_str(), O_RDONLY | O_CLOEXEC), "open", path)));
}

struct ReadinessProber::Impl : std::enable_shared_from_this<ReadinessProber::Impl> {
  struct Watch {
    explicit Watch(asio::io_context& io) : socket(io), timer(io) {}
    InstanceId id = 0;
    ProbeSpec spec;
    tcp::endpoint endpoint;
    std::shared_ptr<UniqueFd> netns;
    Clock::time_point started;
    Clock::time_point deadline;
    ProbeCallback callback;
    tcp::socket socket;
    // Waits out the backoff between attempts, then bounds the attempt.
    asio::steady_timer timer;
    std::chrono::milliseconds backoff{};
    unsigned attempts = 0;
    // Completions of an earlier attempt carry an older number and are ignored.
    unsigned attempt_serial = 0;
    bool done = false;
    std::string request;
    std::string response;
    std::string last_error;
  };
  using WatchPtr = std::shared_ptr<Watch>;

  Impl(asio::io_context& io_context, ProbeOptions opts) : io(io_context), options(opts) {}

  void watch(InstanceId id, const ProbeSpec& spec, Clock::time_point deadline, ProbeCallback callback) {
    auto w = std::make_shared<Watch>(io);
    w->id = id;
    w->spec = spec;
    boost::system::error_code ec;
    auto address = asio::ip::make_address(spec.address, ec);
    if (ec) throw Error(fmt::format("readiness probe of instance {}: {:?} is not an IP address", id, spec.address));
    if (spec.port == 0) throw Error(fmt::format("readiness probe of instance {}: no port to probe", id));
    if (spec.kind == ProbeKind::http && !valid_http_path(spec.http_path))
      throw Error(fmt::format("readiness probe of instance {}: {:?} is not an HTTP path", id, spec.http_path));
    w->endpoint = tcp::endpoint(address, spec.port);
    if (spec.netns_fd >= 0) {
      int copy = ::fcntl(spec.netns_fd, F_DUPFD_CLOEXEC, 0);
      check_sys(copy, "fcntl(F_DUPFD_CLOEXEC)", fmt::format("network namespace fd {}", spec.netns_fd));
      w->netns = std::make_shared<UniqueFd>(copy);
      if (!factory) factory = std::make_unique<NetnsSocketFactory>(io);
    }
    if (spec.kind == ProbeKind::http)
      w->request = fmt::format("GET {} HTTP/1.0\r\nHost: {}\r\nUser-Agent: haco-fleet\r\nConnection: close\r\n\r\n",
                               spec.http_path, endpoint_text(w->endpoint));
    w->started = Clock::now();
    w->deadline = deadline;
    w->callback = std::move(callback);
    w->backoff = options.initial_backoff;
    if (auto old = watches.find(id); old != watches.end()) cancel_watch(old->second);
    watches[id] = w;
    start_attempt(w);
  }

  // By value: `w` may be the map's own entry, which stop() erases.
  void cancel_watch(WatchPtr w) {
    stop(w);
    asio::post(io, [w] { w->callback(w->id, ProbeResult{false, "cancelled", Clock::now(), w->attempts}); });
  }

  // Ends the watch without a report: no further attempt, nothing pending.
  void stop(const WatchPtr& w) {
    w->done = true;
    ++w->attempt_serial;
    boost::system::error_code ignored;
    w->socket.close(ignored);
    w->timer.cancel();
    if (auto it = watches.find(w->id); it != watches.end() && it->second == w) watches.erase(it);
  }

  void report(const WatchPtr& w, bool ready, std::string error) {
    stop(w);
    w->callback(w->id, ProbeResult{ready, std::move(error), Clock::now(), w->attempts});
  }

  bool current(const WatchPtr& w, unsigned serial) const { return !w->done && w->attempt_serial == serial; }

  void start_attempt(const WatchPtr& w) {
    if (w->attempts > 0 && Clock::now() >= w->deadline) {
      report(w, false, fmt::format("not ready after {}: {}", seconds_text(w->deadline - w->started), w->last_error));
      return;
    }
    ++w->attempts;
    const unsigned serial = ++w->attempt_serial;
    // The deadline may cut the last attempt short.
    const auto now = Clock::now();
    const auto limit = std::min(now + options.attempt_timeout, std::max(now, w->deadline)) - now;
    w->timer.expires_after(limit);
    w->timer.async_wait([self = shared_from_this(), w, serial, limit](const boost::system::error_code& ec) {
      if (ec || !self->current(w, serial)) return;
      // An attempt cut short by the deadline says less than the one before.
      if (limit < self->options.attempt_timeout && !w->last_error.empty())
        return self->attempt_failed(w, w->last_error);
      self->attempt_failed(w, fmt::format("{}: no answer within {} ms", self->step_name(w),
                                          std::chrono::duration_cast<std::chrono::milliseconds>(limit).count()));
    });
    const auto protocol = w->endpoint.protocol();
    if (!w->netns) {
      boost::system::error_code ec;
      w->socket.open(protocol, ec);
      if (ec) return attempt_failed(w, fmt::format("socket: {}", ec.message()));
      return connect(w, serial);
    }
    factory->request(w->netns, protocol.family(),
                     [self = shared_from_this(), w, serial, protocol](NetnsSocketFactory::Outcome outcome) {
                       if (!self->current(w, serial)) return;
                       if (outcome.error != 0)
                         return self->attempt_failed(
                             w, Error::from_errno(outcome.call, "in the instance's network namespace", outcome.error)
                                    .what());
                       boost::system::error_code ec;
                       w->socket.assign(protocol, outcome.socket->get(), ec);
                       if (ec) return self->attempt_failed(w, fmt::format("socket: {}", ec.message()));
                       outcome.socket->release();
                       self->connect(w, serial);
                     });
  }

  std::string step_name(const WatchPtr& w) const {
    if (w->spec.kind == ProbeKind::http) return fmt::format("GET {} from {}", w->spec.http_path, endpoint_text(w->endpoint));
    return fmt::format("connect {}", endpoint_text(w->endpoint));
  }

  void connect(const WatchPtr& w, unsigned serial) {
    w->socket.async_connect(w->endpoint, [self = shared_from_this(), w, serial](const boost::system::error_code& ec) {
      if (!self->current(w, serial)) return;
      if (ec) return self->attempt_failed(w, fmt::format("connect {}: {}", endpoint_text(w->endpoint), ec.message()));
      if (w->spec.kind == ProbeKind::tcp) return self->report(w, true, {});
      self->send_request(w, serial);
    });
  }

  void send_request(const WatchPtr& w, unsigned serial) {
    asio::async_write(w->socket, asio::buffer(w->request),
                      [self = shared_from_this(), w, serial](const boost::system::error_code& ec, std::size_t) {
                        if (!self->current(w, serial)) return;
                        if (ec) return self->attempt_failed(w, fmt::format("{}: {}", self->step_name(w), ec.message()));
                        self->read_status(w, serial);
                      });
  }

  void read_status(const WatchPtr& w, unsigned serial) {
    constexpr std::size_t kMaxStatusLine = 1024;
    w->response.clear();
    asio::async_read_until(
        w->socket, asio::dynamic_buffer(w->response, kMaxStatusLine), "\r\n",
        [self = shared_from_this(), w, serial](const boost::system::error_code& ec, std::size_t length) {
          if (!self->current(w, serial)) return;
          if (ec && ec != asio::error::eof && ec != asio::error::not_found)
            return self->attempt_failed(w, fmt::format("{}: {}", self->step_name(w), ec.message()));
          std::string_view line(w->response);
          if (ec) {
            // No CRLF: the peer closed (or sent too much) before the status
            // line was complete, so even "HTTP/1.0 200" is not taken as one.
            line = line.substr(0, 80);
            return self->attempt_failed(
                w, line.empty() ? fmt::format("{}: connection closed before a status line", self->step_name(w))
                                : fmt::format("{}: incomplete status line: {:?}", self->step_name(w), std::string(line)));
          }
          line = line.substr(0, length - 2);
          const int code = status_code(line);
          if (code >= 200 && code <= 299) return self->report(w, true, {});
          if (code == 0)
            return self->attempt_failed(w, fmt::format("{}: not an HTTP status line: {:?}", self->step_name(w),
                                                       std::string(line.substr(0, 80))));
          self->attempt_failed(w, fmt::format("{}: {}", self->step_name(w), std::string(line.substr(line.find(' ') + 1))));
        });
  }

  // Records why the attempt failed and schedules the next one after the
  // backoff, or reports the instance as not ready at its deadline.
  void attempt_failed(const WatchPtr& w, std::string error) {
    w->last_error = std::move(error);
    const unsigned serial = ++w->attempt_serial;
    boost::system::error_code ignored;
    w->socket.close(ignored);
    const auto now = Clock::now();
    if (now >= w->deadline) {
      report(w, false, fmt::format("not ready after {}: {}", seconds_text(w->deadline - w->started), w->last_error));
      return;
    }
    w->timer.expires_at(std::min(now + w->backoff, w->deadline));
    w->backoff = std::min(options.max_backoff, w->backoff + w->backoff / 2 + std::chrono::milliseconds(1));
    w->timer.async_wait([self = shared_from_this(), w, serial](const boost::system::error_code& ec) {
      if (ec || !self->current(w, serial)) return;
      self->start_attempt(w);
    });
  }

  void shutdown() {
    auto all = watches;
    for (auto& [id, w] : all) stop(w);
    factory.reset();
  }

  asio::io_context& io;
  ProbeOptions options;
  std::unordered_map<InstanceId, WatchPtr> watches;
  std::unique_ptr<NetnsSocketFactory> factory;
};

ReadinessProber::ReadinessProber(asio::io_context& io, ProbeOptions options)
    : impl_(std::make_shared<Impl>(io, options)) {}

ReadinessProber::~ReadinessProber() { impl_->shutdown(); }

void ReadinessProber::watch(InstanceId id, const ProbeSpec& spec, Clock::time_point deadline, ProbeCallback callback) {
  impl_->watch(id, spec, deadline, std::move(callback));
}

void ReadinessProber::cancel(InstanceId id) {
  if (auto it = impl_->watches.find(id); it != impl_->watches.end()) impl_->cancel_watch(it->second);
}

void ReadinessProber::cancel_all() {
  auto all = impl_->watches;
  for (auto& [id, w] : all) impl_->cancel_watch(w);
}

std::size_t ReadinessProber::pending() const { return impl_->watches.size(); }

}  // namespace haco::observe
