// Fault injection for the crash tests (tests/supervisor/crash_test.cpp): a
// named point in a long operation where a process may be killed. When the
// environment variable HACO_FAULT_POINT names the point, the process writes
// "haco-fleet: fault point NAME (pid PID)" to stderr and stops itself
// (SIGSTOP), so that a test can kill it with SIGKILL exactly there. Without
// the variable it does nothing.
#pragma once

namespace haco {

void fault_point(const char* name);

}  // namespace haco
