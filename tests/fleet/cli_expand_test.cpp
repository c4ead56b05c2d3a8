// The expand command as a user runs it: exit statuses and output.
#include <gtest/gtest.h>

#include <algorithm>

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

// What a definition says and haco-fleet would not honour is refused by
// `expand` (and so before `up` starts anything): exit status 2, one line with
// the file, the line and both values.
TEST(CliExpand, DefinitionValuesOutsideTheirRangeExitTwo) {
  testing::TempDir dir;
  auto definition = [&](const std::string& lines) {
    return dir.file("d.haco", "Haconiwa.define do |config|\n  config.name = \"d-#{ENV['PORT']}\"\n"
                              "  config.init_command = \"/bin/true\"\n  config.chroot_to \"/srv/d-#{ENV['PORT']}\"\n"
                              "  config.namespace.set_uid_mapping min: 0, max: 9, offset: 3000000000 + ENV['PORT'].to_i * 10\n"
                              "  config.namespace.set_gid_mapping min: 0, max: 9, offset: 3000000000 + ENV['PORT'].to_i * 10\n" +
                                  lines + "end\n");
  };
  struct Case {
    std::string lines;
    std::string message;
  };
  for (const auto& c : std::vector<Case>{
           {"  config.rootfs_owner uid: 1004200, gid: 1004200\n",
            ":7: rootfs_owner uid: 1004200, gid: 1004200 does not match the mapping: the container's uid 0 is host "
            "uid 3000000010 (set_uid_mapping), which owns the rootfs, not 1004200"},
           {"  config.bootstrap do |b|\n    b.strategy = \"tarball\"\n    b.archive_path = \"/i.tar\"\n"
            "    b.tar_options = [\"--same-owner\"]\n  end\n",
            ":10: b.tar_options [\"--same-owner\"] is refused: haco-fleet's rootfs engine does not run tar"},
           {"  config.cgroup[\"cpu.cfs_quota_us\"] = 10\n",
            ":7: cgroup[\"cpu.cfs_quota_us\"] = \"10\" is out of range or malformed: expected -1 (no limit) or 1000 to "
            "17592186044415 (microseconds)"},
           {"  config.stop_signal = 100\n", ":7: stop_signal 100 is out of range: 1 to 64"},
           {"  config.add_mount_point \"tmpfs\", to: \"/tmp\", fs: \"tmpfs\", options: \"size=0\"\n",
            ":7: add_mount_point tmpfs option size=0: expected a size from 4k to 1t"}}) {
    std::string path = definition(c.lines);
    auto r = run_command(binary() + " expand --ports 1 " + path);
    EXPECT_EQ(r.status, 2) << r.output;
    EXPECT_EQ(r.output.rfind("haco-fleet: port 1: " + path + c.message, 0), 0u) << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  }
  // The seed and the templates give the owner that the mapping says.
  for (const std::string& file : {testing::seed_file("phpinfo-test.haco"),
                                  std::string(HACO_SOURCE_DIR) + "/templates/phpinfo.haco",
                                  std::string(HACO_SOURCE_DIR) + "/templates/busybox-httpd.haco"}) {
    auto r = run_command(binary() + " expand --ports 10001-10003 " + file + " 2>&1");
    EXPECT_EQ(r.status, 0) << file << ": " << r.output;
  }
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
