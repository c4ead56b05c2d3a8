// Cost per container of the clone engine, beside the floor the kernel sets:
// a bare clone3 into the same namespaces + uid/gid maps + exec of /bin/true.
// Every iteration starts a container whose init exits at once and reaps it.
// Run as root:  build/bench/bench_clone  (or with --benchmark_filter=...)
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "haco/cgroup.hpp"
#include "haco/error.hpp"
#include "haco/runtime.hpp"
#include "runtime/file_io.hpp"
#include "runtime/seccomp.hpp"
#include "runtime/syscalls.hpp"

namespace {

constexpr std::uint32_t kIdBase = 3900000;
constexpr unsigned long kNamespaces = CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS;

// The busybox image extracted once, owned by the id range, removed at exit.
class BenchRootfs {
 public:
  BenchRootfs() {
    char tmpl[] = "/tmp/haco-bench-clone.XXXXXX";
    if (!::mkdtemp(tmpl)) throw haco::Error::from_errno("mkdtemp", tmpl, errno);
    dir_ = tmpl;
    std::filesystem::permissions(dir_, std::filesystem::perms(0755));
    rootfs_ = dir_ + "/rootfs";
    std::string cmd = fmt::format(
        "set -e; img=$({0}/scripts/build-busybox-image.sh); mkdir {1}; tar -xzf \"$img\" -C {1}; "
        "chown -R -h {2}:{2} {1}",
        HACO_SOURCE_DIR, rootfs_, kIdBase);
    if (std::system(cmd.c_str()) != 0) throw haco::Error("preparing the bench rootfs failed: " + cmd);
  }
  ~BenchRootfs() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  const std::string& path() const { return rootfs_; }

 private:
  std::string dir_;
  std::string rootfs_;
};

const BenchRootfs* g_rootfs = nullptr;

haco::ContainerSpec minimal_spec() {
  haco::ContainerSpec c;
  c.name = "haco-bench";
  c.command = {"/bin/true"};
  c.rootfs = g_rootfs->path();
  c.namespaces = {haco::Namespace::user, haco::Namespace::pid, haco::Namespace::ipc, haco::Namespace::uts,
                  haco::Namespace::mount};
  c.uid_map = {{0, kIdBase, 100}};
  c.gid_map = {{0, kIdBase, 100}};
  return c;
}

haco::ContainerSpec template_spec() {
  haco::ContainerSpec c = minimal_spec();
  c.mounts = {{"tmpfs", "/tmp", "tmpfs", "", false}};
  c.network_etc_host_root = "/etc";
  c.independent_mounts = {haco::IndependentMount::procfs, haco::IndependentMount::sysfs,
                          haco::IndependentMount::devtmpfs, haco::IndependentMount::devpts,
                          haco::IndependentMount::shm};
  return c;
}

void reap(pid_t pid, int pidfd) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (pidfd >= 0) ::close(pidfd);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw haco::Error(fmt::format("container init ended with wait status {}", status));
}

// The floor: clone3 (with a pidfd, as launch() does) into the namespaces,
// the parent writes the maps, the child waits for them on a pipe, becomes root of its user namespace (an
// init left as the unmapped host root costs about 1.5 ms more to exit) and
// execs /bin/true from the rootfs.
// With `pivot`, the child also enters the rootfs the minimal way (rprivate,
// bind, pivot_root, detach the old root) before exec: the floor of a
// container that lives in its own rootfs.
void run_floor(benchmark::State& state, bool pivot) {
  const std::string& rootfs = g_rootfs->path();
  std::string true_path = pivot ? "/bin/busybox" : rootfs + "/bin/busybox";
  std::string maps = fmt::format("0 {} 100\n", kIdBase);
  for (auto _ : state) {
    int ready[2];
    haco::check_sys(::pipe2(ready, O_CLOEXEC), "pipe2");
    haco::sys::CloneArgs args;
    int pidfd = -1;
    args.flags = kNamespaces | CLONE_PIDFD;
    args.pidfd = reinterpret_cast<std::uintptr_t>(&pidfd);
    args.exit_signal = SIGCHLD;
    long pid = haco::sys::clone3(args);
    if (pid == 0) {
      char byte;
      ::close(ready[1]);
      if (::read(ready[0], &byte, 1) != 1) ::_exit(126);
      if (::setresgid(0, 0, 0) != 0 || ::setresuid(0, 0, 0) != 0) ::_exit(124);
      if (pivot && (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
                    ::mount(rootfs.c_str(), rootfs.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0 ||
                    ::chdir(rootfs.c_str()) != 0 || haco::sys::pivot_root(".", ".") != 0 ||
                    ::umount2(".", MNT_DETACH) != 0))
        ::_exit(125);
      const char* argv[] = {"true", nullptr};
      const char* envp[] = {nullptr};
      ::execve(true_path.c_str(), const_cast<char**>(argv), const_cast<char**>(envp));
      ::_exit(127);
    }
    haco::check_sys(pid, "clone3");
    ::close(ready[0]);
    haco::write_kernel_file(fmt::format("/proc/{}/gid_map", pid), maps);
    haco::write_kernel_file(fmt::format("/proc/{}/uid_map", pid), maps);
    if (::write(ready[1], "x", 1) != 1) throw haco::Error::from_errno("write", "pipe", errno);
    ::close(ready[1]);
    reap(static_cast<pid_t>(pid), pidfd);
  }
  state.counters["containers/s"] = benchmark::Counter(static_cast<double>(state.iterations()),
                                                      benchmark::Counter::kIsRate);
}

void BM_Floor(benchmark::State& state) { run_floor(state, false); }
void BM_FloorPivot(benchmark::State& state) { run_floor(state, true); }

void run_launches(benchmark::State& state, const haco::ContainerSpec& spec,
                  const haco::cgroups::InstanceCgroup* cgroup) {
  haco::runtime::LaunchRequest req;
  req.instance.container = spec;
  req.cgroup = cgroup;
  rusage before{}, after{};
  ::getrusage(RUSAGE_CHILDREN, &before);
  for (auto _ : state) {
    auto c = haco::runtime::launch(req);
    reap(c.pid, c.pidfd);
  }
  ::getrusage(RUSAGE_CHILDREN, &after);
  state.counters["containers/s"] = benchmark::Counter(static_cast<double>(state.iterations()),
                                                      benchmark::Counter::kIsRate);
  // The CPU time of each container (its setup, exec and exit, user and
  // system), which load on the machine does not inflate as it does the
  // wall time.
  auto cpu_us = [](const rusage& r) {
    return static_cast<double>(r.ru_utime.tv_sec + r.ru_stime.tv_sec) * 1e6 +
           static_cast<double>(r.ru_utime.tv_usec + r.ru_stime.tv_usec);
  };
  state.counters["child_cpu_us"] = (cpu_us(after) - cpu_us(before)) / static_cast<double>(state.iterations());
}

// launch() with the same namespaces, the rootfs bound and pivoted into.
void BM_Launch(benchmark::State& state) { run_launches(state, minimal_spec(), nullptr); }

// launch() without the default seccomp filter: against BM_Launch, what
// installing the filter costs per start (its compilation is cached).
void BM_LaunchWithoutSeccomp(benchmark::State& state) {
  haco::ContainerSpec spec = minimal_spec();
  spec.seccomp_default_filter = false;
  run_launches(state, spec, nullptr);
}

// launch() with the default filter and a definition's filter of a few rules.
void BM_LaunchWithDefinitionFilter(benchmark::State& state) {
  haco::ContainerSpec spec = minimal_spec();
  spec.seccomp_filter = haco::SeccompFilter{haco::SeccompAction::allow,
                                            {{haco::SeccompAction::kill, "mkdir", {}},
                                             {haco::SeccompAction::kill, "fchownat", {}},
                                             {haco::SeccompAction::trap, "personality", {{0, haco::SeccompCompare::eq, 8, 0}}}}};
  run_launches(state, spec, nullptr);
}

// libseccomp's compilation of the default filter, which launch() does once
// per process and policy rather than per start.
void BM_SeccompCompileDefaultFilter(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(haco::runtime::compile_default_filter(haco::default_capabilities()));
}

// Runs `measure` in a forked child with no_new_privs set and returns the
// nanoseconds it reports: the seccomp measurements leave the bench process
// unfiltered.
template <typename Measure>
double nanoseconds_in_child(Measure&& measure) {
  int fds[2];
  haco::check_sys(::pipe2(fds, O_CLOEXEC), "pipe2");
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    double ns = ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 ? measure() : -1;
    ::_exit(::write(fds[1], &ns, sizeof ns) == sizeof ns ? 0 : 1);
  }
  haco::check_sys(pid, "fork");
  ::close(fds[1]);
  double ns = -1;
  if (::read(fds[0], &ns, sizeof ns) != sizeof ns) ns = -1;
  ::close(fds[0]);
  ::waitpid(pid, nullptr, 0);
  if (ns < 0) throw haco::Error("the measuring child failed");
  return ns;
}

double elapsed_ns(const timespec& a, const timespec& b) {
  return static_cast<double>(b.tv_sec - a.tv_sec) * 1e9 + static_cast<double>(b.tv_nsec - a.tv_nsec);
}

// The CPU time the child spends in seccomp(2) installing the default filter
// (compiled beforehand, as launch() does); CPU time, so that other load on
// the machine does not count.
void BM_SeccompInstallDefaultFilter(benchmark::State& state) {
  haco::ContainerSpec spec = minimal_spec();
  auto programs = haco::runtime::seccomp_programs(spec);
  state.counters["instructions"] = static_cast<double>(programs.at(0)->code.size());
  for (auto _ : state) {
    state.SetIterationTime(nanoseconds_in_child([&] {
      timespec a{}, b{};
      ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
      haco::runtime::install_seccomp(programs);
      ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
      return elapsed_ns(a, b);
    }) / 1e9);
  }
}

// What a call costs in a container, without (filtered:0) and with
// (filtered:1) the default filter: getppid, which the filter allows whatever
// its arguments (the kernel caches that and skips the program), and
// unshare(0) (inspected:1), whose rules read its flags, so the program runs.
// Each iteration is kCalls calls; ns_per_call is the CPU time of one.
void BM_SyscallUnderDefaultFilter(benchmark::State& state) {
  bool filtered = state.range(0) != 0;
  bool inspected = state.range(1) != 0;
  haco::ContainerSpec spec = minimal_spec();
  auto programs = haco::runtime::seccomp_programs(spec);
  constexpr int kCalls = 200000;
  double total_ns = 0;
  for (auto _ : state) {
    double ns = nanoseconds_in_child([&] {
      if (filtered) haco::runtime::install_seccomp(programs);
      timespec a{}, b{};
      ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
      for (int i = 0; i < kCalls; ++i) {
        if (inspected)
          ::syscall(SYS_unshare, 0);
        else
          ::syscall(SYS_getppid);
      }
      ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
      return elapsed_ns(a, b);
    });
    total_ns += ns;
    state.SetIterationTime(ns / 1e9);
  }
  state.counters["ns_per_call"] = total_ns / static_cast<double>(state.iterations() * kCalls);
}

// launch() with the template's mounts: tmpfs /tmp, resolv.conf and hosts,
// proc, the read-only /sys, /dev with its device binds, devpts, shm.
void BM_LaunchTemplateMounts(benchmark::State& state) { run_launches(state, template_spec(), nullptr); }

// The benchmark's fleet cgroup on the host's layout (on a v2 host the
// v2_root layout, without moving this process).
haco::cgroups::FleetCgroup bench_fleet() {
  auto layout = haco::cgroups::detect_layout();
  if (layout == haco::cgroups::Layout::v1_hybrid) return {"haco-bench", layout, "", ""};
  return haco::cgroups::prepare_fleet_cgroup({"haco-bench", haco::cgroups::Layout::v2_root, "", ""}, "", false);
}

// launch() into a cgroup (v1 limits + v2 membership on a hybrid host): the
// parent's extra writes of cgroup.procs and CLONE_INTO_CGROUP.
void BM_LaunchIntoCgroup(benchmark::State& state) {
  auto fleet = bench_fleet();
  auto cg = haco::cgroups::InstanceCgroup::create(fleet, "clone", {{"cpu.cfs_quota_us", "50000"}});
  run_launches(state, minimal_spec(), cg.get());
  cg->kill_all(std::chrono::seconds(5));
  cg->remove();
  haco::cgroups::remove_fleet_cgroups(fleet);
}

// Throughput with K single-threaded launcher processes side by side (the
// shape of the fleet's spawner pool), each starting kPerLauncher containers
// in a row. Counted per container.
constexpr int kPerLauncher = 10;
void BM_LaunchParallel(benchmark::State& state) {
  const int launchers = static_cast<int>(state.range(0));
  haco::runtime::LaunchRequest req;
  req.instance.container = minimal_spec();
  for (auto _ : state) {
    std::vector<pid_t> workers;
    for (int i = 0; i < launchers; ++i) {
      pid_t pid = ::fork();
      if (pid == 0) {
        try {
          for (int n = 0; n < kPerLauncher; ++n) {
            auto c = haco::runtime::launch(req);
            reap(c.pid, c.pidfd);
          }
        } catch (const std::exception& e) {
          std::fprintf(stderr, "launcher: %s\n", e.what());
          ::_exit(1);
        }
        ::_exit(0);
      }
      workers.push_back(static_cast<pid_t>(haco::check_sys(pid, "fork")));
    }
    for (pid_t w : workers) {
      int status = 0;
      ::waitpid(w, &status, 0);
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) state.SkipWithError("a launcher failed");
    }
  }
  state.SetItemsProcessed(state.iterations() * launchers * kPerLauncher);
  state.counters["containers/s"] = benchmark::Counter(
      static_cast<double>(state.iterations() * launchers * kPerLauncher), benchmark::Counter::kIsRate);
}

// launch() while the launcher's mount namespace holds N more mounts (as a
// host does with N instances' rootfs mounts): CLONE_NEWNS copies them all,
// and the child makes them private and detaches them with the old root.
void BM_LaunchAmongMounts(benchmark::State& state) {
  const auto extra = static_cast<int>(state.range(0));
  char tmpl[] = "/tmp/haco-bench-mounts.XXXXXX";
  if (!::mkdtemp(tmpl)) throw haco::Error::from_errno("mkdtemp", tmpl, errno);
  std::string base = tmpl;
  haco::check_sys(::mount("haco-bench", base.c_str(), "tmpfs", 0, "size=1m"), "mount", base);
  for (int i = 0; i < extra; ++i) {
    std::string dir = fmt::format("{}/{}", base, i);
    haco::check_sys(::mkdir(dir.c_str(), 0755), "mkdir", dir);
    haco::check_sys(::mount("haco-bench", dir.c_str(), "tmpfs", 0, "size=64k"), "mount", dir);
  }
  run_launches(state, minimal_spec(), nullptr);
  haco::check_sys(::umount2(base.c_str(), MNT_DETACH), "umount2", base);
  ::rmdir(base.c_str());
}

// Creating and removing one instance's cgroup (done once per instance by `up`).
void BM_CgroupCreateRemove(benchmark::State& state) {
  auto fleet = bench_fleet();
  for (auto _ : state) {
    auto cg = haco::cgroups::InstanceCgroup::create(fleet, "cg", {{"cpu.cfs_period_us", "100000"},
                                                                   {"cpu.cfs_quota_us", "30000"}});
    cg->remove();
  }
  haco::cgroups::remove_fleet_cgroups(fleet);
}

BENCHMARK(BM_Floor)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_FloorPivot)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Launch)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_LaunchWithoutSeccomp)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_LaunchWithDefinitionFilter)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_SeccompCompileDefaultFilter)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_SeccompInstallDefaultFilter)->Unit(benchmark::kMicrosecond)->UseManualTime();
BENCHMARK(BM_SyscallUnderDefaultFilter)
    ->ArgsProduct({{0, 1}, {0, 1}})
    ->ArgNames({"filtered", "inspected"})
    ->Unit(benchmark::kMillisecond)
    ->UseManualTime();
BENCHMARK(BM_LaunchTemplateMounts)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_LaunchIntoCgroup)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_LaunchParallel)->Arg(1)->Arg(2)->Arg(4)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_LaunchAmongMounts)->Arg(100)->Arg(400)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_CgroupCreateRemove)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  if (::geteuid() != 0) {
    std::fprintf(stderr, "bench_clone starts real containers: run it as root\n");
    return 1;
  }
  benchmark::Initialize(&argc, argv);
  try {
    // The bench's own mounts stay in a private copy of the mount namespace:
    // nothing it mounts is seen by, or left on, the host.
    haco::check_sys(::unshare(CLONE_NEWNS), "unshare", "mount namespace");
    haco::check_sys(::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr), "mount", "/ (rprivate)");
    BenchRootfs rootfs;
    g_rootfs = &rootfs;
    // The extraction's writeback would otherwise slow whichever benchmark runs first.
    ::sync();
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_clone: %s\n", e.what());
    return 1;
  }
  return 0;
}
