// -q/--quiet and --log-level: what the command line's progress sink prints
// on stderr at each level.
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include <gtest/gtest.h>

#include "cli/progress_sink.hpp"
#include "cli/rootfs_messages.hpp"
#include "test_support.hpp"

namespace haco {
namespace {

using cli::LogLevel;

// What `use` writes on stderr (fd 2 and std::cerr), through a file.
template <typename Use>
std::string stderr_of(Use use) {
  testing::TempDir dir;
  std::string path = (dir.path() / "stderr").string();
  std::fflush(stderr);
  std::cerr.flush();
  int saved = ::dup(STDERR_FILENO);
  int file = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (saved < 0 || file < 0 || ::dup2(file, STDERR_FILENO) < 0) std::abort();
  ::close(file);
  use();
  std::fflush(stderr);
  std::cerr.flush();
  ::dup2(saved, STDERR_FILENO);
  ::close(saved);
  return testing::read_text_file(path);
}

// A short `up` as ops::up reports it to its sink.
std::string up_at(LogLevel level) {
  return stderr_of([level] {
    cli::ProgressSink sink("up", {"rootfs", "started", "ready"}, level);
    sink.message("bootstrap: served by the rootfs engine");
    sink.warning("'a' has no user namespace");
    sink.begin(2);
    sink.step("ready", "a", std::chrono::milliseconds(12));
    sink.failed("b", "exec /x: No such file or directory");
    sink.error("the supervisor of fleet 'f' exited");
    sink.finish();
  });
}

TEST(CliLogLevel, EachLevelPrintsItsLinesAndThoseBefore) {
  const std::string info = "bootstrap: served by the rootfs engine\n";
  const std::string warning = "haco-fleet: warning: 'a' has no user namespace\n";
  const std::string progress = "ready a in 12 ms";
  const std::string failure = "failed b: exec /x: No such file or directory\n";
  const std::string error = "haco-fleet: the supervisor of fleet 'f' exited\n";

  EXPECT_EQ(up_at(LogLevel::error), failure + error);
  EXPECT_EQ(up_at(LogLevel::warn), warning + failure + error);
  // stderr is a file here: plain lines at info as at debug.
  for (LogLevel level : {LogLevel::info, LogLevel::debug}) {
    std::string out = up_at(level);
    EXPECT_EQ(out.find(info), 0u) << out;
    EXPECT_NE(out.find(warning), std::string::npos) << out;
    EXPECT_NE(out.find(progress), std::string::npos) << out;
    EXPECT_NE(out.find(failure), std::string::npos) << out;
    EXPECT_NE(out.find(error), std::string::npos) << out;
  }
}

TEST(CliLogLevel, LevelsAreNamed) {
  EXPECT_EQ(cli::log_level_named("debug"), LogLevel::debug);
  EXPECT_EQ(cli::log_level_named("error"), LogLevel::error);
}

// An engine that reports one thing it did for the fleet, one step of an
// instance and one thing it could not do as asked.
class ReportingEngine : public ops::RootfsPreparer {
 public:
  bool exists(const std::string&) override { return true; }
  std::vector<rootfs::PreparedRootfs> prepare_images(const std::vector<rootfs::InstanceRootfs>&,
                                                     const rootfs::PrepareOptions& options) override {
    options.progress("", "image 3f2a19c0d1e2 found in the cache in 0.002 s");
    options.progress("web-1", "overlay mounted");
    options.warning("8 device node(s) of the image not created, as for every image: /dev/null");
    return {};
  }
  bool remove_incomplete(const ContainerSpec&) override { return false; }
  void bootstrap(const InstanceSpec&, const dsl::Environment&, const std::atomic<bool>*) override {}
};

std::string rootfs_lines_at(LogLevel level) {
  return stderr_of([level] {
    cli::ProgressSink sink("up", {"rootfs"}, level);
    auto engine = cli::rootfs_reporting_to(std::make_unique<ReportingEngine>(), sink);
    engine->prepare_images({}, {});
  });
}

TEST(CliLogLevel, TheRootfsEnginesWarningsShowFromWarnItsOtherFleetLinesFromInfo) {
  const std::string did = "haco-fleet: image 3f2a19c0d1e2 found in the cache in 0.002 s\n";
  const std::string could_not =
      "haco-fleet: 8 device node(s) of the image not created, as for every image: /dev/null\n";
  EXPECT_EQ(rootfs_lines_at(LogLevel::error), "");
  EXPECT_EQ(rootfs_lines_at(LogLevel::warn), could_not);
  EXPECT_EQ(rootfs_lines_at(LogLevel::info), did + could_not);
}

TEST(CliLogLevel, TheOptionsAreCheckedByTheOptionParser) {
  testing::TempDir root;
  std::string haco = std::string(HACO_BINARY) + " --root " + root.path().string();
  for (const std::string global : {"-q", "--quiet", "--log-level error", "--log-level debug"}) {
    auto r = testing::run_command(haco + " " + global + " ps");
    EXPECT_EQ(r.status, 0) << global << ": " << r.output;
  }
  auto r = testing::run_command(haco + " --log-level loud ps");
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(r.output, "haco-fleet: --log-level: loud not in {error,warn,info,debug}\n");
  r = testing::run_command(haco + " -q --log-level info ps");
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(r.output, "haco-fleet: --log-level excludes --quiet\n");
}

}  // namespace
}  // namespace haco
