// `haco-fleet logs` on real busybox fleets: prefixed lines of several
// instances, -n and --since over the log writer's time index, -f seeing a
// restart's output and an instance added by `up --ports`, ending on SIGINT
// and on `down`, reading after the supervisor was SIGKILLed, and bad input.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <sstream>
#include <thread>

#include "fleet_fixture.hpp"
#include "haco/error.hpp"
#include "haco/pidfd.hpp"

extern char** environ;

namespace haco::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string file_or_empty(const std::string& path) { return fs::exists(path) ? read_text(path) : std::string(); }

std::size_t count_of(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++n;
  return n;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// `haco-fleet logs -f ...` running in the background, its stdout and stderr
// in a file. Interrupted and reaped when the test ends, whatever happens.
class Follower {
 public:
  Follower(const std::string& command, const std::string& output) : output_(output) {
    const std::string shell = "exec " + command + " >" + output + " 2>&1";
    const char* argv[] = {"/bin/sh", "-c", shell.c_str(), nullptr};
    if (::posix_spawn(&pid_, "/bin/sh", nullptr, nullptr, const_cast<char**>(argv), environ) != 0) pid_ = -1;
  }
  ~Follower() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  bool started() const { return pid_ > 0; }
  std::string output() const { return file_or_empty(output_); }
  bool prints(const std::string& text, std::chrono::seconds timeout = 30s) const {
    return wait_for([&] { return output().find(text) != std::string::npos; }, timeout);
  }
  // Its exit status once it ended by itself (within `timeout`), or -1.
  int wait_exit(std::chrono::seconds timeout) {
    int status = 0;
    bool ended = wait_for([&] { return ::waitpid(pid_, &status, WNOHANG) == pid_; }, timeout);
    if (!ended) return -1;
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  int interrupt() {
    ::kill(pid_, SIGINT);
    return wait_exit(10s);
  }

 private:
  std::string output_;
  pid_t pid_ = -1;
};

class LogsFleetTest : public FleetTest {
 protected:
  // `count` instances from port_base_ + first running `script` (no port to wait for).
  void up_running(const std::string& script, unsigned count, const std::string& extra = "") {
    ::setenv("HACO_TEST_SH", script.c_str(), 1);
    auto result = up(count, "--no-wait " + extra);
    ::unsetenv("HACO_TEST_SH");
    ASSERT_EQ(result.status, 0) << result.output;
  }
  std::string name(unsigned i) const { return "t-" + std::to_string(port_base_ + i); }
  std::string log_of(unsigned i) const { return data_ + "/logs/" + fleet_ + "/" + name(i) + ".log"; }
  bool log_has(unsigned i, const std::string& text, std::chrono::seconds timeout = 30s) const {
    return wait_for([&] { return file_or_empty(log_of(i)).find(text) != std::string::npos; }, timeout);
  }
  std::string logs_command(const std::string& args) const { return haco_command("logs --name " + fleet_ + " " + args); }
  CommandResult logs(const std::string& args) const { return run_command(logs_command(args) + " 2>&1"); }
  std::string output_file(const std::string& name) const { return temp_->path().string() + "/" + name; }
};

const char* kThreeLines = "echo one; echo two; echo three; exec sleep 1000";

TEST_F(LogsFleetTest, LinesOfEveryInstanceWithTheirPrefixesAndTail) {
  up_running(kThreeLines, 2);
  ASSERT_TRUE(log_has(0, "three\n"));
  ASSERT_TRUE(log_has(1, "three\n"));
  EXPECT_TRUE(fs::exists(log_of(0) + ".idx"));

  auto all = logs("");
  ASSERT_EQ(all.status, 0) << all.output;
  auto lines = lines_of(all.output);
  ASSERT_EQ(lines.size(), 6u) << all.output;
  for (unsigned i : {0u, 1u}) {
    const std::string prefix = name(i) + " | ";
    std::vector<std::string> own;
    for (const auto& l : lines)
      if (l.rfind(prefix, 0) == 0) own.push_back(l.substr(prefix.size()));
    EXPECT_EQ(own, (std::vector<std::string>{"one", "two", "three"})) << all.output;
  }

  auto last = logs("-n 1");
  ASSERT_EQ(last.status, 0) << last.output;
  EXPECT_EQ(count_of(last.output, "| three\n"), 2u) << last.output;
  EXPECT_EQ(lines_of(last.output).size(), 2u) << last.output;

  auto one_port = logs("--no-prefix -n 2 " + std::to_string(port_base_ + 1));
  ASSERT_EQ(one_port.status, 0) << one_port.output;
  EXPECT_EQ(one_port.output, "two\nthree\n");
}

TEST_F(LogsFleetTest, SinceUsesTheTimesTheWriterRecorded) {
  up_running("echo early; sleep 5; echo late; exec sleep 1000", 1);
  ASSERT_TRUE(log_has(0, "late\n"));
  auto recent = logs("--no-prefix --since 3s");
  ASSERT_EQ(recent.status, 0) << recent.output;
  EXPECT_EQ(recent.output, "late\n");
  auto hour = logs("--no-prefix --since 1h");
  EXPECT_EQ(hour.output, "early\nlate\n");
  auto future = logs("--since 2099-01-01T00:00:00Z");
  ASSERT_EQ(future.status, 0) << future.output;
  EXPECT_EQ(future.output, "");
}

TEST_F(LogsFleetTest, FollowSeesARestartAndAnInstanceAddedByUp) {
  // Ends after its line and is started again (on-failure: 100 ms, then more).
  const std::string script = "echo boot $MARK; sleep 1; exit 3";
  up_running(script, 1, "--restart on-failure");
  ASSERT_TRUE(log_has(0, "boot"));
  Follower follower(logs_command("-f"), output_file("follow.out"));
  ASSERT_TRUE(follower.started());
  ASSERT_TRUE(follower.prints(name(0) + " | boot a"));
  // The next launch writes to the same log: the follower prints it.
  const auto boots = count_of(follower.output(), name(0) + " | boot a");
  ASSERT_TRUE(wait_for([&] { return count_of(follower.output(), name(0) + " | boot a") > boots; }, 30s))
      << follower.output();

  // The same definition on one more port: the fleet gets a second instance.
  up_running(script, 2, "--restart on-failure");
  ASSERT_TRUE(follower.prints(name(1) + " | boot a")) << follower.output();
  EXPECT_EQ(follower.interrupt(), 0) << follower.output();
  // Whole lines only, each with its prefix.
  for (const auto& line : lines_of(follower.output()))
    EXPECT_TRUE(line == name(0) + " | boot a" || line == name(1) + " | boot a") << line;
}

TEST_F(LogsFleetTest, FollowKeepsEveryLineAcrossRotations) {
  // About 29 KB in bursts of 50 lines, into logs capped at 4 KiB: rotated
  // seven times while followed.
  up_running("i=0; while [ $i -lt 3000 ]; do echo line-$i; i=$((i+1)); "
             "[ $((i % 50)) -eq 0 ] && usleep 50000; done; echo END; exec sleep 1000",
             1, "--log-max-bytes 4096");
  Follower follower(logs_command("-f --no-prefix"), output_file("follow.out"));
  ASSERT_TRUE(follower.prints("END\n", 60s)) << follower.output().substr(0, 300);
  EXPECT_TRUE(fs::exists(log_of(0) + ".1.idx"));
  EXPECT_EQ(follower.interrupt(), 0);
  // From the first line it printed (the instance may have rotated before it
  // started), every line once, in order.
  auto lines = lines_of(follower.output());
  ASSERT_FALSE(lines.empty());
  ASSERT_EQ(lines.back(), "END");
  lines.pop_back();
  ASSERT_FALSE(lines.empty());
  ASSERT_EQ(lines.front().rfind("line-", 0), 0u) << lines.front();
  long expected = std::stol(lines.front().substr(5));
  for (const auto& line : lines) {
    ASSERT_EQ(line, "line-" + std::to_string(expected)) << "after line-" << expected - 1;
    ++expected;
  }
  EXPECT_EQ(expected, 3000);
}

TEST_F(LogsFleetTest, FollowEndsWhenTheFleetIsTakenDown) {
  up_running(kThreeLines, 1);
  ASSERT_TRUE(log_has(0, "three\n"));
  Follower follower(logs_command("-f -n 1"), output_file("follow.out"));
  ASSERT_TRUE(follower.prints(name(0) + " | three"));
  auto down = haco("down --name " + fleet_ + " --timeout 1");
  ASSERT_EQ(down.status, 0) << down.output;
  EXPECT_EQ(follower.wait_exit(20s), 0) << follower.output();
  EXPECT_NE(follower.output().find("fleet " + fleet_ + " was taken down"), std::string::npos) << follower.output();
  EXPECT_EQ(count_of(follower.output(), "| one"), 0u) << follower.output();
}

TEST_F(LogsFleetTest, LogsAreReadAfterTheSupervisorWasKilled) {
  up_running(kThreeLines, 2);
  ASSERT_TRUE(log_has(0, "three\n"));
  ASSERT_TRUE(log_has(1, "three\n"));
  auto fleet = fleet_state();
  ASSERT_TRUE(fleet.has_value());
  UniqueFd supervisor(::pidfd_open(fleet->supervisor.pid, 0));
  ASSERT_TRUE(supervisor && state::is_alive(fleet->supervisor));
  ASSERT_EQ(::pidfd_send_signal(supervisor.get(), SIGKILL, nullptr, 0), 0);
  ASSERT_TRUE(wait_for([&] { return !state::is_alive(fleet->supervisor); }, 10s));
  auto after = logs("-n 1");
  ASSERT_EQ(after.status, 0) << after.output;
  EXPECT_EQ(lines_of(after.output).size(), 2u) << after.output;
  EXPECT_EQ(count_of(after.output, name(0) + " | three\n"), 1u) << after.output;
  EXPECT_EQ(count_of(after.output, name(1) + " | three\n"), 1u) << after.output;
}

TEST_F(LogsFleetTest, BadInputIsExitTwoAndSaysWhy) {
  up_running(kThreeLines, 1);
  auto port = logs("1");
  EXPECT_EQ(port.status, 2) << port.output;
  EXPECT_NE(port.output.find("no instance on port 1"), std::string::npos) << port.output;
  auto since = logs("--since yesterday");
  EXPECT_EQ(since.status, 2) << since.output;
  EXPECT_NE(since.output.find("--since 'yesterday'"), std::string::npos) << since.output;
  auto fleet = haco("logs --name no-such-fleet 2>&1");
  EXPECT_EQ(fleet.status, 2) << fleet.output;
  EXPECT_NE(fleet.output.find("no fleet named 'no-such-fleet'"), std::string::npos) << fleet.output;
  auto tail = logs("-n -3");
  EXPECT_EQ(tail.status, 2) << tail.output;
}

}  // namespace
}  // namespace haco::testing
