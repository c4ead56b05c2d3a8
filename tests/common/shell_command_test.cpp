// Bootstrap commands: output, status, and a stop that reaches the whole
// process group.
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "haco/shell_command.hpp"
#include "test_support.hpp"

namespace haco {
namespace {

using namespace std::chrono_literals;
using testing::running;

TEST(ShellCommand, CapturesStdoutAndTheExitStatus) {
  ShellOptions options;
  options.capture_stdout = true;
  auto result = run_shell("echo out; echo err >&2; exit 3", options);
  EXPECT_EQ(result.output, "out\n");
  EXPECT_EQ(result.exit_code, 3);
  EXPECT_FALSE(result.cancelled);
}

TEST(ShellCommand, RunsWithTheGivenEnvironmentAndNoStdin) {
  ShellOptions options;
  options.capture_stdout = true;
  options.environment = std::vector<std::string>{"ONLY=this"};
  auto result = run_shell("echo \"$ONLY ${HOME:-nohome}\"; cat", options);
  EXPECT_EQ(result.output, "this nohome\n");
  EXPECT_EQ(result.exit_code, 0);
}

// A stop reaches what the shell started (here a background sleep and a
// foreground one), not only the shell.
TEST(ShellCommand, CancelStopsTheWholeProcessGroup) {
  testing::TempDir dir;
  std::string pids = (dir.path() / "pids").string();
  std::string after = (dir.path() / "after").string();
  std::atomic<bool> cancel{false};
  std::thread stopper([&] {
    std::this_thread::sleep_for(300ms);
    cancel = true;
  });
  ShellOptions options;
  options.cancel = &cancel;
  options.stop_grace = 500ms;
  auto started = std::chrono::steady_clock::now();
  // The shell ignores SIGINT, so only the SIGKILL after the grace ends it.
  auto result = run_shell("trap '' INT; sleep 30 & echo $! > " + pids + "; sleep 30; touch " + after, options);
  stopper.join();
  EXPECT_TRUE(result.cancelled);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
  EXPECT_FALSE(std::filesystem::exists(after));
  pid_t background = 0;
  std::ifstream(pids) >> background;
  ASSERT_GT(background, 0);
  for (int i = 0; i < 100 && running(background); ++i) std::this_thread::sleep_for(20ms);
  EXPECT_FALSE(running(background)) << "the background sleep survived";
}

}  // namespace
}  // namespace haco
