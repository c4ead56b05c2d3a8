// Options with a form of their own are checked by the option parser (exit
// status 2, one line naming the option); --root and --data-root take their
// defaults from the environment.
#include <gtest/gtest.h>

#include "test_support.hpp"

namespace haco {
namespace {

using testing::run_command;

TEST(CliOptions, FormsAreCheckedByTheOptionParser) {
  testing::TempDir dir;
  // A definition that does not exist: the option parser refuses first.
  std::string up = std::string(HACO_BINARY) + " --root " + dir.path().string() + " up --ports 1 " +
                   (dir.path() / "none.haco").string();
  struct Case {
    std::string args, line;
  };
  for (const Case& c : std::vector<Case>{
           {"--rootfs copy", "haco-fleet: --rootfs: copy not in {overlay,extract}\n"},
           {"--restart sometimes",
            "haco-fleet: --restart: expected no, always, on-failure or on-failure:N (N >= 1), got 'sometimes'\n"},
           {"--restart on-failure:0",
            "haco-fleet: --restart: expected no, always, on-failure or on-failure:N (N >= 1), got 'on-failure:0'\n"},
           {"--ready http:index.php",
            "haco-fleet: --ready: expected tcp or http:PATH (PATH starting with '/', without spaces or control "
            "characters), got 'http:index.php'\n"},
           {"--ready udp",
            "haco-fleet: --ready: expected tcp or http:PATH (PATH starting with '/', without spaces or control "
            "characters), got 'udp'\n"},
       }) {
    auto r = run_command(up + " " + c.args);
    EXPECT_EQ(r.status, 2) << c.args << ": " << r.output;
    EXPECT_EQ(r.output, c.line) << c.args;
  }
  // The accepted forms pass the parser (and stop at the missing definition).
  for (const std::string args : {"--rootfs extract", "--restart on-failure:3", "--restart always",
                                 "--ready http:/index.php", "--ready tcp"}) {
    auto r = run_command(up + " " + args + " --help");
    EXPECT_EQ(r.status, 0) << args << ": " << r.output;
  }
}

TEST(CliOptions, RootsComeFromTheEnvironmentUnlessGiven) {
  testing::TempDir dir;
  std::string from_env = (dir.path() / "env").string(), given = (dir.path() / "given").string();
  auto r = run_command("HACO_FLEET_ROOT=" + from_env + " " + HACO_BINARY + " ps");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output, "no fleet under " + from_env + "\n");
  r = run_command("HACO_FLEET_ROOT=" + from_env + " " + HACO_BINARY + " --root " + given + " ps");
  EXPECT_EQ(r.output, "no fleet under " + given + "\n");
  // An empty variable is no value.
  r = run_command(std::string("HACO_FLEET_ROOT= ") + HACO_BINARY + " ps --name haco-test-no-such-fleet");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_EQ(r.output, "haco-fleet: no fleet named 'haco-test-no-such-fleet' under /run/haco-fleet\n");
  r = run_command(std::string(HACO_BINARY) + " --help");
  EXPECT_NE(r.output.find("--root TEXT=/run/haco-fleet (Env:HACO_FLEET_ROOT)"), std::string::npos) << r.output;
  r = run_command("HACO_FLEET_DATA_ROOT=" + from_env + " " + HACO_BINARY + " --help");
  EXPECT_NE(r.output.find("--data-root TEXT=/var/lib/haco-fleet (Env:HACO_FLEET_DATA_ROOT)"), std::string::npos)
      << r.output;
}

}  // namespace
}  // namespace haco
