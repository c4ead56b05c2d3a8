// The floor of a fleet's `up` on this machine: N plain `busybox httpd`
// processes, no namespace, cgroup, rootfs or supervisor, started one after
// the other with posix_spawn (vfork and exec) and probed with the fleet's own
// readiness prober until every one accepts. Whatever a launcher adds to start
// the same N servers isolated comes on top of this. scripts/bench-scale.sh
// runs it beside the fleet's `up` in the same run.
//
//   HACO_PLAIN_BUSYBOX=/path/to/busybox [HACO_PLAIN_INSTANCES=N]
//   [HACO_PLAIN_BASE_PORT=P] bench_plain_start
//
// N defaults to 200 and P to 30001. Counters: the servers' own CPU time
// (user and system, read from their rusage once they are reaped) per server.
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <benchmark/benchmark.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "haco/error.hpp"
#include "haco/parse_number.hpp"
#include "haco/readiness.hpp"

extern char** environ;

namespace {

using namespace haco::observe;

struct PlainConfig {
  std::string busybox;
  unsigned instances = 200;
  unsigned base_port = 30001;
};

double cpu_seconds(const rusage& r) {
  return static_cast<double>(r.ru_utime.tv_sec + r.ru_stime.tv_sec) +
         static_cast<double>(r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
}

// Starts `busybox httpd -f -p 127.0.0.1:PORT -h DOCROOT`; returns its pid.
pid_t start_httpd(const std::string& busybox, unsigned port, const std::string& docroot) {
  std::string listen = "127.0.0.1:" + std::to_string(port);
  std::vector<char*> argv{const_cast<char*>(busybox.c_str()), const_cast<char*>("httpd"), const_cast<char*>("-f"),
                          const_cast<char*>("-p"),            listen.data(),                 const_cast<char*>("-h"),
                          const_cast<char*>(docroot.c_str()), nullptr};
  pid_t pid = 0;
  int err = ::posix_spawn(&pid, busybox.c_str(), nullptr, nullptr, argv.data(), environ);
  if (err != 0) throw haco::Error::from_errno("posix_spawn", busybox, err);
  return pid;
}

void stop_all(std::vector<pid_t>& pids) {
  for (pid_t pid : pids) ::kill(pid, SIGKILL);
  for (pid_t pid : pids) ::waitpid(pid, nullptr, 0);
  pids.clear();
}

void BM_PlainBusyboxHttpdUntilReady(benchmark::State& state, const PlainConfig& config) {
  // An empty directory to serve: only accept() is probed.
  char docroot_template[] = "/tmp/haco-plain-start.XXXXXX";
  if (::mkdtemp(docroot_template) == nullptr) {
    state.SkipWithError("mkdtemp /tmp/haco-plain-start.XXXXXX failed");
    return;
  }
  const std::string docroot = docroot_template;
  struct RemoveDir {
    const std::string& path;
    ~RemoveDir() { ::rmdir(path.c_str()); }
  } remove_docroot{docroot};
  double server_cpu = 0;
  for (auto _ : state) {
    rusage before{};
    ::getrusage(RUSAGE_CHILDREN, &before);
    std::vector<pid_t> pids;
    pids.reserve(config.instances);
    unsigned ready = 0;
    std::string first_error;
    try {
      boost::asio::io_context io;
      ReadinessProber prober(io);
      for (unsigned i = 0; i < config.instances; ++i) {
        pids.push_back(start_httpd(config.busybox, config.base_port + i, docroot));
        prober.watch(i, probe_spec(ReadySpec{}, static_cast<std::uint16_t>(config.base_port + i)),
                     Clock::now() + std::chrono::seconds(120), [&](InstanceId, const ProbeResult& r) {
                       if (r.ready) ++ready;
                       else if (first_error.empty()) first_error = r.error;
                     });
        io.poll();  // probe the ones started so far between two starts
        io.restart();  // poll() stops the context when it ran out of work
      }
      io.run();
      state.PauseTiming();
    } catch (const std::exception& e) {
      stop_all(pids);
      state.SkipWithError(e.what());
      return;
    }
    stop_all(pids);
    rusage after{};
    ::getrusage(RUSAGE_CHILDREN, &after);
    server_cpu += cpu_seconds(after) - cpu_seconds(before);
    state.ResumeTiming();
    if (ready != config.instances) {
      state.SkipWithError(
          (std::to_string(config.instances - ready) + " servers did not accept; the first: " + first_error).c_str());
      return;
    }
  }
  state.counters["servers"] = config.instances;
  state.counters["server_cpu_ms_each"] =
      1000.0 * server_cpu / (static_cast<double>(config.instances) * static_cast<double>(state.iterations()));
}

unsigned env_number(const char* name, unsigned fallback, unsigned low, unsigned high) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return fallback;
  auto value = haco::parse_u32(text);
  if (!value || *value < low || *value > high)
    throw haco::InputError(std::string(name) + "=" + text + ": a whole number from " + std::to_string(low) + " to " +
                           std::to_string(high));
  return *value;
}

}  // namespace

int main(int argc, char** argv) {
  PlainConfig config;
  try {
    const char* busybox = std::getenv("HACO_PLAIN_BUSYBOX");
    if (busybox == nullptr || *busybox == '\0')
      throw haco::InputError("set HACO_PLAIN_BUSYBOX to a busybox binary (with httpd) to start");
    config.busybox = busybox;
    config.instances = env_number("HACO_PLAIN_INSTANCES", 200, 1, 5000);
    config.base_port = env_number("HACO_PLAIN_BASE_PORT", 30001, 1024, 65535);
    if (config.base_port + config.instances - 1 > 65535)
      throw haco::InputError("HACO_PLAIN_BASE_PORT + HACO_PLAIN_INSTANCES - 1 exceeds 65535");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_plain_start: %s\n", e.what());
    return 2;
  }
  benchmark::RegisterBenchmark("BM_PlainBusyboxHttpdUntilReady", BM_PlainBusyboxHttpdUntilReady, config)
      ->Arg(static_cast<long>(config.instances))
      ->Iterations(1)
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
