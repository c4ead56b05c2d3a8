// Readiness probe throughput: one round probes N listeners on loopback (in
// the host's namespace, and each in its own network namespace) until all are
// ready, beside a floor of N blocking connect() calls in one thread.
#include <arpa/inet.h>
#include <benchmark/benchmark.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "haco/error.hpp"
#include "haco/readiness.hpp"
#include "haco/unique_fd.hpp"

namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using haco::UniqueFd;
using namespace haco::observe;

sockaddr_in loopback(std::uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

// A listener that answers every connection with a 200 status line and closes
// it: enough for both the tcp and the http probe. Runs forever in `fd`'s
// thread or process.
[[noreturn]] void serve_forever(int listener) {
  static constexpr std::string_view reply = "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n";
  for (;;) {
    int conn = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn < 0) continue;
    char buf[512];
    if (::read(conn, buf, sizeof buf) > 0 && ::write(conn, reply.data(), reply.size()) < 0) {
      // The probe went away first; nothing to answer.
    }
    ::close(conn);
  }
}

int listen_on_loopback(std::uint16_t port) {
  int fd = static_cast<int>(haco::check_sys(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket"));
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  auto addr = loopback(port);
  haco::check_sys(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), "bind");
  haco::check_sys(::listen(fd, 256), "listen");
  return fd;
}

std::uint16_t port_of(int fd) {
  sockaddr_in addr{};
  socklen_t len = sizeof addr;
  haco::check_sys(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), "getsockname");
  return ntohs(addr.sin_port);
}

// N server processes, each listening on 127.0.0.1 at `port`: in the host's
// namespace (each on its own port) or each in a new network namespace (all on
// one port). Killed and reaped on destruction.
class Servers {
 public:
  Servers(std::size_t n, bool own_netns) {
    const std::uint16_t shared_port = 18080;
    for (std::size_t i = 0; i < n; ++i) {
      int fds[2];
      haco::check_sys(::pipe2(fds, O_CLOEXEC), "pipe2");
      UniqueFd read_end(fds[0]), write_end(fds[1]);
      pid_t pid = static_cast<pid_t>(haco::check_sys(::fork(), "fork"));
      if (pid == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (own_netns) {
          if (::unshare(CLONE_NEWNET) != 0) ::_exit(1);
          int ctl = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
          ifreq ifr{};
          std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
          if (::ioctl(ctl, SIOCGIFFLAGS, &ifr) != 0) ::_exit(1);
          ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
          if (::ioctl(ctl, SIOCSIFFLAGS, &ifr) != 0) ::_exit(1);
        }
        int listener = listen_on_loopback(own_netns ? shared_port : 0);
        std::uint16_t port = port_of(listener);
        if (::write(write_end.get(), &port, sizeof port) != sizeof port) ::_exit(1);
        serve_forever(listener);
      }
      pids_.push_back(pid);
      write_end.reset();
      std::uint16_t port = 0;
      if (::read(read_end.get(), &port, sizeof port) != sizeof port) throw haco::Error("a probe server did not start");
      ports_.push_back(port);
      if (own_netns) netns_.push_back(open_netns(pid));
    }
  }
  ~Servers() {
    for (pid_t pid : pids_) ::kill(pid, SIGKILL);
    for (pid_t pid : pids_) ::waitpid(pid, nullptr, 0);
  }
  std::uint16_t port(std::size_t i) const { return ports_[i]; }
  int netns(std::size_t i) const { return netns_.empty() ? -1 : netns_[i].get(); }
  std::size_t size() const { return pids_.size(); }

 private:
  std::vector<pid_t> pids_;
  std::vector<std::uint16_t> ports_;
  std::vector<UniqueFd> netns_;
};

void probe_round(benchmark::State& state, const Servers& servers, const ReadySpec& ready) {
  asio::io_context io;
  ReadinessProber prober(io);
  std::size_t ready_count = 0;
  for (auto _ : state) {
    std::size_t reported = 0;
    for (std::size_t i = 0; i < servers.size(); ++i) {
      prober.watch(i, probe_spec(ready, servers.port(i), servers.netns(i)), Clock::now() + std::chrono::seconds(10),
                   [&](InstanceId, const ProbeResult& r) {
                     ready_count += r.ready;
                     if (++reported == servers.size()) io.stop();
                   });
    }
    io.restart();
    io.run();
  }
  if (ready_count != servers.size() * state.iterations()) state.SkipWithError("some probes were not ready");
  state.SetItemsProcessed(static_cast<std::int64_t>(servers.size() * state.iterations()));
}

void BM_ProbeTcpLoopback(benchmark::State& state) {
  Servers servers(static_cast<std::size_t>(state.range(0)), false);
  probe_round(state, servers, ReadySpec{});
}
BENCHMARK(BM_ProbeTcpLoopback)->Arg(100)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_ProbeHttpLoopback(benchmark::State& state) {
  Servers servers(static_cast<std::size_t>(state.range(0)), false);
  probe_round(state, servers, parse_ready_spec("http:/"));
}
BENCHMARK(BM_ProbeHttpLoopback)->Arg(100)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_ProbeTcpInOwnNetns(benchmark::State& state) {
  Servers servers(static_cast<std::size_t>(state.range(0)), true);
  probe_round(state, servers, ReadySpec{});
}
BENCHMARK(BM_ProbeTcpInOwnNetns)->Arg(100)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_ProbeHttpInOwnNetns(benchmark::State& state) {
  Servers servers(static_cast<std::size_t>(state.range(0)), true);
  probe_round(state, servers, parse_ready_spec("http:/"));
}
BENCHMARK(BM_ProbeHttpInOwnNetns)->Arg(100)->UseRealTime()->Unit(benchmark::kMillisecond);

// How late a port that starts listening range(0) ms (plus 0..50 ms at random,
// as the attempts' schedule is fixed) after the watch began is noticed: the
// backoff between refused attempts bounds it.
void BM_ReadyNoticedAfterListen(benchmark::State& state) {
  asio::io_context io;
  ReadinessProber prober(io);
  std::mt19937 random(42);
  std::uniform_int_distribution<int> jitter_us(0, 50'000);
  double total_delay_ms = 0;
  double max_delay_ms = 0;
  for (auto _ : state) {
    // Bound but not listening: refused until listen() below.
    UniqueFd fd(static_cast<int>(haco::check_sys(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket")));
    auto addr = loopback(0);
    haco::check_sys(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), "bind");
    Clock::time_point listening{};
    asio::steady_timer later(io, std::chrono::milliseconds(state.range(0)) + std::chrono::microseconds(jitter_us(random)));
    later.async_wait([&](const boost::system::error_code&) {
      haco::check_sys(::listen(fd.get(), 16), "listen");
      listening = Clock::now();
    });
    bool ready = false;
    prober.watch(0, probe_spec(ReadySpec{}, port_of(fd.get())), Clock::now() + std::chrono::seconds(10),
                 [&](InstanceId, const ProbeResult& r) {
                   ready = r.ready;
                   const double delay = std::chrono::duration<double, std::milli>(r.finished_at - listening).count();
                   total_delay_ms += delay;
                   max_delay_ms = std::max(max_delay_ms, delay);
                 });
    io.restart();
    io.run();
    if (!ready) state.SkipWithError("the port was never noticed");
  }
  state.counters["mean_delay_ms"] = total_delay_ms / static_cast<double>(state.iterations());
  state.counters["max_delay_ms"] = max_delay_ms;
}
BENCHMARK(BM_ReadyNoticedAfterListen)->Arg(0)->Arg(300)->Iterations(40)->UseRealTime()->Unit(benchmark::kMillisecond);

// What waiting costs: 100 ports that refuse for a whole second, probed with
// the backoff capped at range(0) ms. CPU time is the probing thread's.
void BM_RefusedProbesForOneSecond(benchmark::State& state) {
  asio::io_context io;
  ProbeOptions options;
  options.max_backoff = std::chrono::milliseconds(state.range(0));
  ReadinessProber prober(io, options);
  std::vector<UniqueFd> refusing;
  for (int i = 0; i < 100; ++i) {
    refusing.emplace_back(static_cast<int>(haco::check_sys(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket")));
    auto addr = loopback(0);
    haco::check_sys(::bind(refusing.back().get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), "bind");
  }
  double attempts = 0;
  for (auto _ : state) {
    const auto deadline = Clock::now() + std::chrono::seconds(1);
    for (std::size_t i = 0; i < refusing.size(); ++i)
      prober.watch(i, probe_spec(ReadySpec{}, port_of(refusing[i].get())), deadline,
                   [&](InstanceId, const ProbeResult& r) { attempts += r.attempts; });
    io.restart();
    io.run();
  }
  state.counters["attempts_per_s"] = attempts / static_cast<double>(state.iterations());
}
BENCHMARK(BM_RefusedProbesForOneSecond)->Arg(10)->Arg(25)->Arg(50)->Iterations(2)->UseRealTime()->Unit(benchmark::kMillisecond);

// The floor: N blocking connects, one after another, in this thread.
void BM_BlockingConnectFloor(benchmark::State& state) {
  Servers servers(static_cast<std::size_t>(state.range(0)), false);
  for (auto _ : state) {
    for (std::size_t i = 0; i < servers.size(); ++i) {
      UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
      auto addr = loopback(servers.port(i));
      if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        state.SkipWithError("connect failed");
        return;
      }
    }
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(servers.size() * state.iterations()));
}
BENCHMARK(BM_BlockingConnectFloor)->Arg(100)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
