// haco-fleet exec on real busybox containers: the command proves from the
// inside that it runs in the init's namespaces, cgroups and uid map, under
// its capabilities, no_new_privs, seccomp filters, rlimits, environment and
// root; exit statuses come through; -t gives it a terminal; bad inputs are
// refused with their exit status.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <sstream>
#include <thread>

#include "fleet_fixture.hpp"
#include "haco/pidfd.hpp"

namespace haco::testing {
namespace {

using namespace std::chrono_literals;

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char ch : s) out += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return out + "'";
}

// The lines of /proc/PID/status that start with one of `keys`.
std::string status_lines(const std::string& status, const std::vector<std::string>& keys) {
  std::istringstream in(status);
  std::string out;
  for (std::string line; std::getline(in, line);)
    for (const auto& k : keys)
      if (line.rfind(k + ":", 0) == 0) out += line + "\n";
  return out;
}

std::string ns_link(pid_t pid, const std::string& ns) {
  std::error_code ec;
  return std::filesystem::read_symlink("/proc/" + std::to_string(pid) + "/ns/" + ns, ec).string();
}

class ExecFleetTest : public FleetTest {
 protected:
  void SetUp() override {
    FleetTest::SetUp();
    ::unsetenv("HACO_TEST_HARDENED");
  }
  void TearDown() override {
    FleetTest::TearDown();
    ::unsetenv("HACO_TEST_HARDENED");
  }

  // One running instance; its init's pid.
  pid_t start_one(const std::string& extra = "") {
    auto result = up(1, extra);
    EXPECT_EQ(result.status, 0) << result.output;
    auto fleet = fleet_state();
    if (!fleet || fleet->instances.empty()) return -1;
    return fleet->instances.front().process.pid;
  }
  std::string port() const { return std::to_string(port_base_); }

  // exec with this test's roots; the command is given after --.
  CommandResult exec(const std::string& options, const std::string& command) const {
    return haco("exec --name " + fleet_ + " " + options + " -- " + command + " </dev/null");
  }
  // Only what the command wrote on stdout.
  CommandResult exec_stdout(const std::string& options, const std::string& command) const {
    return run_command("(" + haco_command("exec --name " + fleet_ + " " + options + " -- " + command) +
                       " </dev/null 2>/dev/null)");
  }
  CommandResult sh(const std::string& script, const std::string& options = "") const {
    return exec_stdout(options + " " + port(), "sh -c " + shell_quote(script));
  }
};

TEST_F(ExecFleetTest, TheCommandIsInEveryNamespaceOfTheInitAndInItsCgroups) {
  pid_t init = start_one();
  ASSERT_GT(init, 0);
  auto inside = sh("for n in cgroup ipc mnt net pid time user uts; do echo $n $(readlink /proc/self/ns/$n); done");
  ASSERT_EQ(inside.status, 0) << inside.output;
  std::string expected;
  for (const char* ns : {"cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"})
    expected += std::string(ns) + " " + ns_link(init, ns) + "\n";
  EXPECT_EQ(inside.output, expected);
  // Not the host's: exec entered them.
  EXPECT_NE(ns_link(init, "pid"), ns_link(::getpid(), "pid"));
  EXPECT_NE(ns_link(init, "user"), ns_link(::getpid(), "user"));

  auto cgroup = exec_stdout(port(), "cat /proc/self/cgroup");
  EXPECT_EQ(cgroup.output, read_text("/proc/" + std::to_string(init) + "/cgroup"));
  auto uid_map = exec_stdout(port(), "cat /proc/self/uid_map");
  EXPECT_EQ(uid_map.output, read_text("/proc/" + std::to_string(init) + "/uid_map"));
  // Inside the pid namespace: a small pid there, not the host's.
  auto pid = sh("echo $$");
  EXPECT_LT(std::stoi(pid.output), 64) << pid.output;
}

TEST_F(ExecFleetTest, TheCommandIsUnderTheInitsRestrictions) {
  pid_t init = start_one();
  ASSERT_GT(init, 0);
  const std::vector<std::string> keys = {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb",
                                         "NoNewPrivs", "Seccomp", "Seccomp_filters"};
  auto inside = exec_stdout(port(), "cat /proc/self/status");
  ASSERT_EQ(inside.status, 0) << inside.output;
  auto init_status = read_text("/proc/" + std::to_string(init) + "/status");
  EXPECT_EQ(status_lines(inside.output, keys), status_lines(init_status, keys));
  // The baseline, not the host's: a cut bounding set and a filter.
  EXPECT_EQ(status_lines(inside.output, {"Seccomp"}), "Seccomp:\t2\n");
  EXPECT_EQ(status_lines(inside.output, {"CapBnd"}).find("000001ffffffffff"), std::string::npos);

  // exec itself under other limits: the command still gets the init's.
  auto init_limits = read_text("/proc/" + std::to_string(init) + "/limits");
  auto own_limits = run_command("(ulimit -S -n 300; ulimit -S -s 1024; cat /proc/self/limits)");
  ASSERT_NE(own_limits.output, init_limits);
  auto limits = run_command("(ulimit -S -n 300; ulimit -S -s 1024; " +
                            haco_command("exec --name " + fleet_ + " " + port() + " -- cat /proc/self/limits") +
                            " </dev/null 2>/dev/null)");
  EXPECT_EQ(limits.output, init_limits);
}

TEST_F(ExecFleetTest, ADefinitionsOwnRestrictionsHoldForTheCommandToo) {
  ::setenv("HACO_TEST_HARDENED", "1", 1);
  pid_t init = start_one();
  ASSERT_GT(init, 0);
  auto init_status = read_text("/proc/" + std::to_string(init) + "/status");
  ASSERT_EQ(status_lines(init_status, {"NoNewPrivs"}), "NoNewPrivs:\t1\n");
  ASSERT_EQ(status_lines(init_status, {"Seccomp_filters"}), "Seccomp_filters:\t2\n");
  auto inside = exec_stdout(port(), "cat /proc/self/status");
  EXPECT_EQ(status_lines(inside.output, {"CapBnd", "CapEff", "NoNewPrivs", "Seccomp", "Seccomp_filters"}),
            status_lines(init_status, {"CapBnd", "CapEff", "NoNewPrivs", "Seccomp", "Seccomp_filters"}));
  // The definition's filter kills mkdir(2), for the init and for exec's command.
  EXPECT_EQ(exec(port(), "mkdir /tmp/made-by-exec").status, 128 + SIGSYS);
  EXPECT_FALSE(std::filesystem::exists(rootfs_base_ + "/t-" + port() + "/tmp/made-by-exec"));
}

TEST_F(ExecFleetTest, TheCommandHasTheInitsEnvironmentAndRoot) {
  ::setenv("HACO_TEST_MARK", "exec-env", 1);
  pid_t init = start_one();
  ASSERT_GT(init, 0);
  auto environ = exec_stdout(port(), "cat /proc/self/environ");
  EXPECT_EQ(environ.output, read_text("/proc/" + std::to_string(init) + "/environ"));
  EXPECT_NE(environ.output.find("MARK=exec-env"), std::string::npos);
  EXPECT_EQ(environ.output.find("HACO_TEST_MARK"), std::string::npos) << "the caller's environment leaked";

  auto changed = sh("echo $MARK $EXTRA", "-e MARK=changed -e EXTRA=1");
  EXPECT_EQ(changed.output, "changed 1\n");

  // The container's files, not the host's.
  std::string host_only = temp_->file("host-only", "x");
  auto root = sh("test -d /www && echo www; test -e " + host_only + " && echo host; readlink /proc/self/root; pwd");
  EXPECT_EQ(root.output, "www\n/\n/\n");
  auto workdir = sh("pwd", "-w /www");
  EXPECT_EQ(workdir.output, "/www\n");
}

TEST_F(ExecFleetTest, TheCommandsExitStatusIsExecs) {
  ASSERT_GT(start_one(), 0);
  EXPECT_EQ(exec(port(), "sh -c 'exit 7'").status, 7);
  EXPECT_EQ(exec(port(), "true").status, 0);
  EXPECT_EQ(exec(port(), "sh -c 'kill -9 $$'").status, 128 + SIGKILL);
  EXPECT_EQ(exec(port(), "sh -c 'kill -TERM $$'").status, 128 + SIGTERM);
  auto missing = exec(port(), "no-such-command");
  EXPECT_EQ(missing.status, 127) << missing.output;
  EXPECT_NE(missing.output.find("no-such-command: No such file or directory"), std::string::npos) << missing.output;
  auto not_executable = exec(port(), "/etc/passwd");
  EXPECT_EQ(not_executable.status, 126) << not_executable.output;
  auto workdir = exec("-w /no/such/dir " + port(), "true");
  EXPECT_EQ(workdir.status, 1) << workdir.output;
  EXPECT_NE(workdir.output.find("chdir /no/such/dir"), std::string::npos) << workdir.output;
}

TEST_F(ExecFleetTest, SignalsToExecReachTheCommand) {
  ASSERT_GT(start_one(), 0);
  std::string out = temp_->path().string() + "/signal-out";
  std::string script = "trap 'echo got TERM; exit 3' TERM; echo ready; while :; do sleep 0.05; done";
  auto r = run_command("(" + haco_command("exec --name " + fleet_ + " " + port() + " -- sh -c " + shell_quote(script)) +
                       " </dev/null >" + out + " & pid=$!; for i in $(seq 100); do grep -q ready " + out +
                       " && break; sleep 0.05; done; kill -TERM $pid; wait $pid; echo status=$?)");
  EXPECT_NE(r.output.find("status=3"), std::string::npos) << r.output;
  EXPECT_NE(read_text(out).find("got TERM"), std::string::npos) << read_text(out);
}

TEST_F(ExecFleetTest, AUserInsideTheRangeRunsWithoutCapabilitiesAndOneOutsideIsRefused) {
  pid_t init = start_one();
  ASSERT_GT(init, 0);
  auto inside = sh("id -u; id -g; grep -E '^Cap(Eff|Prm|Bnd)' /proc/self/status", "-u 50");
  auto bounding = status_lines(read_text("/proc/" + std::to_string(init) + "/status"), {"CapBnd"});
  EXPECT_EQ(inside.output, "50\n50\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n" + bounding);

  auto outside = exec("-u 100 " + port(), "id");
  EXPECT_EQ(outside.status, 2) << outside.output;
  EXPECT_NE(outside.output.find("maps uids 0-99 only"), std::string::npos) << outside.output;
}

// A terminal the test opens: a command runs on it (a session of its own,
// the slave as its controlling terminal) while the test reads the master.
class TestTerminal {
 public:
  TestTerminal(unsigned short rows, unsigned short cols) {
    master_.reset(::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
    if (!master_ || ::grantpt(master_.get()) != 0 || ::unlockpt(master_.get()) != 0) return;
    slave_.reset(::open(::ptsname(master_.get()), O_RDWR | O_NOCTTY | O_CLOEXEC));
    resize(rows, cols);
  }
  bool ok() const { return master_ && slave_; }
  int slave() const { return slave_.get(); }
  // The kernel sends SIGWINCH to the terminal's foreground group.
  void resize(unsigned short rows, unsigned short cols) const {
    winsize size{rows, cols, 0, 0};
    ::ioctl(slave_.get(), TIOCSWINSZ, &size);
  }

  // Runs `command` with sh on the terminal; `on_output` sees the output so
  // far each time more arrives. The exit status, or -1 after 20 s.
  int run(const std::string& command, const std::function<void(const std::string&)>& on_output = {}) {
    pid_t pid = ::fork();
    if (pid < 0) return -1;
    if (pid == 0) {
      ::setsid();
      ::ioctl(slave_.get(), TIOCSCTTY, 0);
      for (int fd : {0, 1, 2}) ::dup2(slave_.get(), fd);
      ::execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
      ::_exit(99);
    }
    int status = 0;
    auto deadline = std::chrono::steady_clock::now() + 20s;
    for (bool ended = false; !ended;) {
      ended = ::waitpid(pid, &status, WNOHANG) == pid;
      // After the end too: what is still in the pty.
      for (pollfd p{master_.get(), POLLIN, 0}; ::poll(&p, 1, ended ? 100 : 50) > 0;) {
        char buf[1024];
        ssize_t n = ::read(master_.get(), buf, sizeof buf);
        if (n <= 0) break;
        output.append(buf, static_cast<std::size_t>(n));
        if (on_output) on_output(output);
      }
      if (!ended && std::chrono::steady_clock::now() > deadline) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
        return -1;
      }
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  std::string output;

 private:
  UniqueFd master_, slave_;
};

// exec -t on a terminal the test opens: the command's stdin and stdout are a
// pseudo-terminal with the caller's window size, and the caller's terminal
// settings come back afterwards.
TEST_F(ExecFleetTest, WithATtyTheCommandGetsATerminalOfItsOwn) {
  ASSERT_GT(start_one(), 0);
  TestTerminal terminal(33, 77);
  ASSERT_TRUE(terminal.ok());
  termios before{};
  ASSERT_EQ(::tcgetattr(terminal.slave(), &before), 0);

  std::string script = "test -t 0 && test -t 1 && echo terminal; readlink /proc/self/fd/0; stty size; exit 5";
  int status = terminal.run(haco_command("exec --name " + fleet_ + " -t " + port() + " -- sh -c " + shell_quote(script)));
  EXPECT_EQ(status, 5) << terminal.output;
  EXPECT_NE(terminal.output.find("terminal"), std::string::npos) << terminal.output;
  EXPECT_NE(terminal.output.find("/dev/pts/"), std::string::npos) << terminal.output;
  EXPECT_NE(terminal.output.find("33 77"), std::string::npos) << terminal.output;
  termios after{};
  ASSERT_EQ(::tcgetattr(terminal.slave(), &after), 0);
  EXPECT_EQ(after.c_lflag, before.c_lflag);
  EXPECT_EQ(after.c_iflag, before.c_iflag);
  EXPECT_EQ(after.c_oflag, before.c_oflag);

  // Without -t the command has exec's stdin (here /dev/null), not a terminal.
  auto plain = sh("test -t 0 && echo terminal; readlink /proc/self/fd/0");
  EXPECT_EQ(plain.output, "/dev/null\n");
}

// The caller's terminal resized while the command runs: the command's
// terminal gets the new size, and the command its SIGWINCH.
TEST_F(ExecFleetTest, WithATtyAResizeReachesTheCommand) {
  ASSERT_GT(start_one(), 0);
  TestTerminal terminal(24, 80);
  ASSERT_TRUE(terminal.ok());
  std::string script = "trap 'stty size; exit 6' WINCH; echo ready; while :; do sleep 0.05; done";
  bool resized = false;
  int status = terminal.run(
      haco_command("exec --name " + fleet_ + " -t " + port() + " -- sh -c " + shell_quote(script)),
      [&](const std::string& output) {
        if (!resized && output.find("ready") != std::string::npos) {
          resized = true;
          terminal.resize(40, 100);
        }
      });
  EXPECT_EQ(status, 6) << terminal.output;
  EXPECT_NE(terminal.output.find("40 100"), std::string::npos) << terminal.output;
}

// A reader that stops early does not kill exec -t (SIGPIPE): the command
// runs to its end and its status is exec's.
TEST_F(ExecFleetTest, WithATtyAClosedStdoutLeavesTheCommandItsStatus) {
  ASSERT_GT(start_one(), 0);
  std::string status_file = temp_->path().string() + "/exec-status";
  auto r = run_command("{ " + haco_command("exec --name " + fleet_ + " -t " + port() +
                                           " -- sh -c 'yes | head -c 300000; exit 4'") +
                       " </dev/null; echo $? >" + status_file + "; } | head -c 10 >/dev/null");
  EXPECT_EQ(read_text(status_file), "4\n") << r.output;
}

TEST_F(ExecFleetTest, AnUnknownPortOrNameIsBadInput) {
  ASSERT_GT(start_one(), 0);
  auto port_result = exec(std::to_string(port_base_ + 9), "true");
  EXPECT_EQ(port_result.status, 2) << port_result.output;
  EXPECT_NE(port_result.output.find("no instance on port"), std::string::npos) << port_result.output;
  auto name_result = exec("no-such-instance", "true");
  EXPECT_EQ(name_result.status, 2) << name_result.output;
  // By name it works.
  EXPECT_EQ(exec("t-" + port(), "true").status, 0);
}

TEST_F(ExecFleetTest, AStoppedInstanceIsRefused) {
  pid_t init = start_one("--restart no");
  ASSERT_GT(init, 0);
  UniqueFd pidfd(::pidfd_open(init, 0));
  ASSERT_TRUE(pidfd);
  ASSERT_EQ(::pidfd_send_signal(pidfd.get(), SIGKILL, nullptr, 0), 0);
  for (int i = 0; i < 200; ++i) {
    auto fleet = fleet_state();
    if (fleet && fleet->instances.front().state != state::InstanceState::running) break;
    std::this_thread::sleep_for(20ms);
  }
  auto result = exec(port(), "true");
  EXPECT_EQ(result.status, 1) << result.output;
  EXPECT_NE(result.output.find("is not running"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("signal 9"), std::string::npos) << result.output;
}

TEST_F(ExecFleetTest, ADeadContainerWhoseRecordSaysRunningIsRefused) {
  pid_t init = start_one();
  ASSERT_GT(init, 0);
  auto fleet = fleet_state();
  ASSERT_TRUE(fleet.has_value());
  ASSERT_EQ(::kill(fleet->supervisor.pid, SIGKILL), 0);
  for (int i = 0; i < 100 && state::is_alive(fleet->supervisor); ++i) std::this_thread::sleep_for(20ms);
  const auto identity = fleet->instances.front().process;
  UniqueFd pidfd(::pidfd_open(init, 0));
  ASSERT_TRUE(pidfd);
  ASSERT_EQ(::pidfd_send_signal(pidfd.get(), SIGKILL, nullptr, 0), 0);
  for (int i = 0; i < 100 && state::is_alive(identity); ++i) std::this_thread::sleep_for(20ms);
  ASSERT_EQ(fleet_state()->instances.front().state, state::InstanceState::running);

  auto result = exec(port(), "true");
  EXPECT_EQ(result.status, 1) << result.output;
  EXPECT_NE(result.output.find("recorded as running"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("is gone"), std::string::npos) << result.output;
}

}  // namespace
}  // namespace haco::testing
