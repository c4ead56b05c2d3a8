// Readiness probes: many instances at once on one Boost.Asio io_context, each
// retried with a short backoff until its port answers or its deadline passes.
// An instance with its own network namespace is probed from inside it: the
// probe's socket is created by a helper thread that has entered that
// namespace (a socket keeps the namespace it was created in), then driven by
// Asio on the io_context's thread like any other.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
// Before Asio: Boost 1.74's awaitable.hpp uses std::exchange without it.
#include <utility>

#include <boost/asio/io_context.hpp>

#include "haco/unique_fd.hpp"

namespace haco::observe {

using Clock = std::chrono::steady_clock;
// An instance's index in its fleet; also its track in the Chrome trace.
using InstanceId = std::size_t;

enum class ProbeKind {
  tcp,   // the port accepts a TCP connection
  http,  // `GET path HTTP/1.0` answers with a 2xx status line
};

// What `--ready` says: "tcp" or "http:/PATH".
struct ReadySpec {
  ProbeKind kind = ProbeKind::tcp;
  std::string http_path;  // starts with '/', only for http
  bool operator==(const ReadySpec&) const = default;
};

// Parses "tcp" or "http:/PATH" (the path must start with '/' and contain no
// whitespace or control characters). Throws haco::InputError naming the text
// and what is accepted.
ReadySpec parse_ready_spec(std::string_view text);
// The inverse of parse_ready_spec: "tcp", "http:/healthz".
std::string format_ready_spec(const ReadySpec& spec);

// What to probe for one instance.
struct ProbeSpec {
  ProbeKind kind = ProbeKind::tcp;
  std::uint16_t port = 0;
  std::string http_path = "/";     // for http
  std::string address = "127.0.0.1";  // IPv4 or IPv6 literal
  // An fd of the instance's network namespace (open_netns(pid)), or -1 to
  // probe in the caller's own namespace. Borrowed: watch() duplicates it, so
  // the caller may close its fd as soon as watch() returns.
  int netns_fd = -1;
};

// Builds a ProbeSpec from a parsed --ready and a port.
ProbeSpec probe_spec(const ReadySpec& ready, std::uint16_t port, int netns_fd = -1);

// Opens /proc/PID/ns/net (O_RDONLY | O_CLOEXEC); throws haco::Error.
UniqueFd open_netns(int pid);

struct ProbeResult {
  bool ready = false;
  // Why the instance is not ready: the last attempt's failure with the
  // deadline ("not ready after 30.0 s: connect 127.0.0.1:10001: Connection
  // refused"), or "cancelled". Empty when ready.
  std::string error;
  // When the successful attempt completed (ready), or when the prober gave up.
  Clock::time_point finished_at;
  unsigned attempts = 0;
};

// Called exactly once per watch(), on the io_context's thread: ready, timed
// out, or cancelled; never from inside watch() or cancel(). Not called for
// watches still pending when the prober is destroyed.
using ProbeCallback = std::function<void(InstanceId, const ProbeResult&)>;

struct ProbeOptions {
  // Wait between failed attempts: starts at initial_backoff and grows by
  // half each time up to max_backoff (the bound on how late a ready instance
  // is noticed). Measured (bench_probe): 100 refusing ports cost about 5-7%
  // of one core at 25 ms, 10-12% at 10 ms, 4% at 50 ms.
  std::chrono::milliseconds initial_backoff{2};
  std::chrono::milliseconds max_backoff{25};
  // One attempt (connect, and for http the request and status line) is
  // abandoned after this long, so a silent peer cannot stall a probe.
  std::chrono::milliseconds attempt_timeout{1000};
};

class ReadinessProber {
 public:
  explicit ReadinessProber(boost::asio::io_context& io, ProbeOptions options = {});
  ~ReadinessProber();
  ReadinessProber(const ReadinessProber&) = delete;
  ReadinessProber& operator=(const ReadinessProber&) = delete;

  // Starts probing `id` until ready or `deadline`; `callback` reports the
  // outcome. Watching an id that is already watched replaces the old watch,
  // whose callback then reports "cancelled". Throws haco::Error when the
  // netns fd cannot be duplicated, the address is not an IP literal, the
  // port is 0 or the http path is not one.
  // Call watch() and cancel() on the io_context's thread, or before it runs.
  void watch(InstanceId id, const ProbeSpec& spec, Clock::time_point deadline, ProbeCallback callback);
  // Stops probing `id`; its callback reports "cancelled". No effect when
  // `id` is not watched.
  void cancel(InstanceId id);
  void cancel_all();
  // Watches not yet reported.
  std::size_t pending() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace haco::observe
