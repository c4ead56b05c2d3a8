// Fault injection for the crash tests (tests/supervisor/crash_test.cpp): a
// named point in a long operation where a process may be killed. When the
// environment variable HACO_FAULT_POINT names the point, the process writes
// "haco-fleet: fault point NAME (pid PID)" to stderr and stops itself
// (SIGSTOP), so that a test can kill it with SIGKILL exactly there. Without
// the variable it does nothing.
//
// The variable reaches every process of the fleet (`up`, the supervisor,
// its spawners, `down`; a supervisor started as a systemd unit gets it too).
// With HACO_FAULT_ONCE=FILE as well, only the first process to reach the
// point stops: it creates FILE (O_EXCL) and writes its pid there, so that a
// test knows whom to kill and a replacement process does not stop again.
//
// Points: rootfs-extracted, cache-filled, cache-renamed, bootstrap-ran (in
// `up`); spawner-cloned (a spawner, its container cloned and in its cgroup,
// waiting for its maps: between clone and exec); supervisor-launched (the
// supervisor, an instance started but its pid not yet recorded); up-started
// (`up`, every instance started, before the readiness wait); down-stopped
// (`down`, the instances stopped, before their cgroups and mounts go).
#pragma once

namespace haco {

inline constexpr const char* kFaultPointVariables[] = {"HACO_FAULT_POINT", "HACO_FAULT_ONCE"};

void fault_point(const char* name);

}  // namespace haco
