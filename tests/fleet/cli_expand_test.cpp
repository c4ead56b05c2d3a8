// The expand command as a user runs it: exit statuses and output.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "test_support.hpp"

namespace haco {
namespace {

using testing::run_command;

// With a state root of its own, so fleets running on this machine (whose id
// ranges expand checks against) do not change the result.
std::string binary() {
  static testing::TempDir state_root;
  return std::string(HACO_BINARY) + " --root " + state_root.path().string();
}

TEST(CliExpand, SeedJsonHasOneHundredInstances) {
  auto r = run_command(binary() + " expand --ports 10001-10100 " + testing::seed_file("phpinfo-test.haco") +
                       " --json 2>/dev/null");
  ASSERT_EQ(r.status, 0) << r.output;
  auto doc = nlohmann::json::parse(r.output);
  EXPECT_EQ(doc.at("schema"), 1);
  ASSERT_EQ(doc.at("instances").size(), 100u);
  EXPECT_EQ(doc.at("instances").at(99).at("name"), "haconiwa-test-10100");
  EXPECT_EQ(doc.at("instances").at(99).at("uid_map").at(0).at("outside"), 1010000);
}

TEST(CliExpand, TableListsInstances) {
  auto r = run_command(binary() + " expand --ports 10001-10002 " + testing::seed_file("phpinfo-test.haco"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("haconiwa-test-10002  10002  /var/lib/haconiwa/haconiwa-test-10002"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("cpu.cfs_quota_us=30000"), std::string::npos);
}

TEST(CliExpand, BadInputExitsTwoWithOneLine) {
  testing::TempDir dir;
  std::string bad = dir.file("bad.haco", "Haconiwa.define do |config|\n  config.nope\nend\n");
  for (const std::string& args : {std::string("--ports 5-1 ") + testing::seed_file("phpinfo-test.haco"),
                                  "--ports 1 " + bad, std::string("--ports 1 /nonexistent.haco"),
                                  std::string("--ports 1"), std::string("--bogus")}) {
    auto r = run_command(binary() + " expand " + args);
    EXPECT_EQ(r.status, 2) << args << ": " << r.output;
    EXPECT_FALSE(r.output.empty());
  }
  auto r = run_command(binary() + " expand --ports 1 " + bad);
  EXPECT_EQ(r.output, "haco-fleet: port 1: " + bad + ":2: unknown method 'nope' (haco-fleet's haconiwa DSL has no such call)\n");
}

TEST(CliExpand, HelpTellsWhatItDoes) {
  auto r = run_command(binary() + " --help");
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.output.find("expand"), std::string::npos);
  r = run_command(binary() + " expand --help");
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.output.find("--ports"), std::string::npos);
  EXPECT_NE(r.output.find("--json"), std::string::npos);
}

}  // namespace
}  // namespace haco
