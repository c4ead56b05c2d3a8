#include <gtest/gtest.h>

#include "haco/error.hpp"
#include "haco/fleet.hpp"
#include "haco/spec_json.hpp"
#include "test_support.hpp"

namespace haco::fleet {
namespace {

TEST(Expand, SeedDefinitionGivesOneHundredInstances) {
  auto instances = expand(testing::seed_file("phpinfo-test.haco"), parse_port_range("10001-10100"), {});
  ASSERT_EQ(instances.size(), 100u);
  for (size_t i = 0; i < instances.size(); ++i) {
    const auto& inst = instances[i];
    std::uint16_t port = static_cast<std::uint16_t>(10001 + i);
    EXPECT_EQ(inst.index, i);
    EXPECT_EQ(inst.port, port);
    EXPECT_EQ(inst.container.name, "haconiwa-test-" + std::to_string(port));
    EXPECT_EQ(inst.container.rootfs, "/var/lib/haconiwa/haconiwa-test-" + std::to_string(port));
    EXPECT_EQ(inst.container.uid_map, (std::vector<IdMapping>{{0, port * 100u, 100}}));
    EXPECT_EQ(inst.container.gid_map, (std::vector<IdMapping>{{0, port * 100u, 100}}));
  }
}

TEST(Expand, PortReachesTheDefinitionUnderEveryName) {
  testing::TempDir dir;
  std::string path = dir.file("w.haco", R"(Haconiwa.define do |config|
  config.name = "w-#{ENV['PORT']}-#{ENV['APACHE_PORT']}-#{ENV['MY_PORT']}-#{ENV['HACO_TEST_PASSTHROUGH']}"
  config.init_command = "/bin/true"
  config.chroot_to "/srv/w-#{ENV['PORT']}"
end
)");
  ExpandOptions options;
  options.port_env_names = {"MY_PORT"};
  options.base_environment = {{"HACO_TEST_PASSTHROUGH", "kept"}, {"PORT", "overridden"}};
  auto instances = expand(path, {7, 9}, options);
  ASSERT_EQ(instances.size(), 2u);
  EXPECT_EQ(instances[0].container.name, "w-7-7-7-kept");
  EXPECT_EQ(instances[1].container.name, "w-9-9-9-kept");
}

// `up` evaluates a bootstrap block again, for real, when it prepares the
// rootfs: with port_environment of the same options, a name given by
// --port-env reads the same value there as during the expansion.
TEST(Expand, ABootstrapBlockSeesThePortEnvNamesTheExpansionSaw) {
  testing::TempDir dir;
  const std::string seen = (dir.path() / "seen-by-the-block").string();
  std::string path = dir.file("w.haco", R"(Haconiwa.define do |config|
  config.name = "w-#{ENV['MY_PORT']}"
  config.init_command = "/bin/true"
  config.chroot_to "/srv/w-#{ENV['PORT']}"
  config.bootstrap do |b|
    `printf %s #{ENV['MY_PORT'] || 'unset'} > )" + seen + R"(`
  end
end
)");
  ExpandOptions options;
  options.port_env_names = {"MY_PORT"};
  options.base_environment = {{"PATH", "/usr/bin:/bin"}};
  auto instances = expand(path, {7}, options);
  ASSERT_EQ(instances.size(), 1u);
  EXPECT_EQ(instances[0].container.name, "w-7");

  dsl::Evaluator evaluator;
  evaluator.run_bootstrap_block(path, port_environment(options, instances[0].port));
  EXPECT_EQ(testing::read_text_file(seen), "7");
  EXPECT_EQ(port_environment(options, 7).at("MY_PORT"), "7");
}

TEST(Expand, PreviousSeedNeedsTheSharedRootfsFlagOverARange) {
  std::string previous = testing::seed_file("phpinfo-test-previous.haco");
  EXPECT_EQ(expand(previous, {10001}, {}).size(), 1u);
  try {
    expand(previous, parse_port_range("10001-10003"), {});
    FAIL() << "a shared unmapped rootfs was accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("share the rootfs /var/lib/haconiwa/2d057697"), std::string::npos);
  }
  ExpandOptions allow;
  allow.allow_shared_rootfs = true;
  EXPECT_EQ(expand(previous, parse_port_range("10001-10003"), allow).size(), 3u);
}

TEST(Expand, ErrorsNameThePort) {
  testing::TempDir dir;
  std::string path = dir.file("bad.haco", "Haconiwa.define do |config|\n  raise 'no' if ENV['PORT'] == '8'\n  "
                                          "config.name = 'b'\nend\n");
  try {
    expand(path, {8}, {});
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("port 8: "), std::string::npos) << e.what();
  }
}

TEST(Expand, DefaultFleetName) {
  EXPECT_EQ(default_fleet_name("templates/phpinfo.haco"), "phpinfo");
  EXPECT_EQ(default_fleet_name("web"), "web");
}

TEST(ExpandJson, DocumentShapeIsPinned) {
  auto instances = expand(testing::seed_file("phpinfo-test.haco"), {10001}, {});
  auto doc = expand_document("phpinfo-test", instances);
  EXPECT_EQ(doc.at("schema"), 1);
  EXPECT_EQ(doc.at("fleet"), "phpinfo-test");
  const auto& item = doc.at("instances").at(0);
  EXPECT_EQ(item.at("name"), "haconiwa-test-10001");
  EXPECT_EQ(item.at("port"), 10001);
  EXPECT_EQ(item.at("rootfs"), "/var/lib/haconiwa/haconiwa-test-10001");
  EXPECT_EQ(item.at("uid_map"), nlohmann::json::parse(R"([{"inside":0,"outside":1000100,"count":100}])"));
  EXPECT_EQ(item.at("gid_map"), nlohmann::json::parse(R"([{"inside":0,"outside":1000100,"count":100}])"));
  EXPECT_EQ(item.at("namespaces"), nlohmann::json::parse(R"(["ipc","uts","mount","pid","user"])"));
  EXPECT_EQ(item.at("mounts"), nlohmann::json::parse(
                                   R"([{"source":"tmpfs","target":"/tmp","fstype":"tmpfs","options":"","read_only":false}])"));
  EXPECT_EQ(item.at("cgroup"), nlohmann::json::parse(
                                   R"([{"key":"cpu.cfs_period_us","value":"100000"},{"key":"cpu.cfs_quota_us","value":"30000"},)"
                                   R"({"key":"pids.max","value":"512"}])"));
  EXPECT_EQ(item.at("command").at(3), "/usr/sbin/httpd");
  EXPECT_EQ(item.at("network_etc").at("host_root"), "/etc");
  EXPECT_EQ(item.at("bootstrap").at("strategy"), "block");
  EXPECT_EQ(item.at("rootfs_owner"), nlohmann::json::parse(R"({"uid":1000100,"gid":1000100})"));
  // The JSON form reads back into the same spec.
  EXPECT_EQ(instance_spec_from_json(item), instances[0]);
}

}  // namespace
}  // namespace haco::fleet

namespace haco::fleet {
namespace {

TEST(Expand, UnknownCgroupKeyIsRefusedBeforeAnythingStarts) {
  testing::TempDir dir;
  std::string path = dir.file("cg.haco", R"(Haconiwa.define do |config|
  config.name = "cg"
  config.init_command = "/bin/true"
  config.chroot_to "/srv/cg"
  config.cgroup["cpu.no_such_knob"] = 1
end
)");
  try {
    expand(path, {1}, {});
    FAIL() << "an unknown cgroup key was accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("cpu.no_such_knob"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("cg.haco"), std::string::npos) << e.what();
  }
}

std::string pids_definition(testing::TempDir& dir, const std::string& extra) {
  return dir.file("pids.haco", "Haconiwa.define do |config|\n  config.name = \"p\"\n  config.init_command = "
                               "\"/bin/true\"\n  config.chroot_to \"/srv/p\"\n" + extra + "end\n");
}

std::vector<CgroupSetting> pids_settings(const std::vector<CgroupSetting>& settings) {
  std::vector<CgroupSetting> out;
  for (const auto& s : settings)
    if (s.key == "pids.max") out.push_back(s);
  return out;
}

TEST(Expand, EveryInstanceGetsAPidsLimitUnlessItsDefinitionSetsOne) {
  testing::TempDir dir;
  auto plain = expand(pids_definition(dir, ""), {1}, {});
  EXPECT_EQ(pids_settings(plain[0].container.cgroup), (std::vector<CgroupSetting>{{"pids.max", "512"}}));
  auto own = expand(pids_definition(dir, "  config.cgroup[\"pids.max\"] = 64\n"), {1}, {});
  EXPECT_EQ(pids_settings(own[0].container.cgroup), (std::vector<CgroupSetting>{{"pids.max", "64"}}));
  ExpandOptions unlimited;
  unlimited.default_pids_max = "max";
  auto none = expand(pids_definition(dir, ""), {1}, unlimited);
  EXPECT_EQ(pids_settings(none[0].container.cgroup), (std::vector<CgroupSetting>{{"pids.max", "max"}}));
  ExpandOptions bad;
  bad.default_pids_max = "lots";
  EXPECT_THROW(expand(pids_definition(dir, ""), {1}, bad), InputError);
}

}  // namespace
}  // namespace haco::fleet

namespace haco::fleet {
namespace {

TEST(Expand, RangesOfOtherFleetsAreRefused) {
  ExpandOptions options;
  options.reserved_uid_ranges = {{1000150, 100, "instance 'web-3' of fleet web"}};
  try {
    expand(testing::seed_file("phpinfo-test.haco"), {10001, 10002}, options);
    FAIL() << "an overlap with another fleet was accepted";
  } catch (const InputError& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("uid range 1000100-1000199 of 'haconiwa-test-10001' (port 10001) overlaps 1000150-1000249, "
                        "instance 'web-3' of fleet web"),
              std::string::npos)
        << what;
    EXPECT_NE(what.find("'haconiwa-test-10002' (port 10002) overlaps"), std::string::npos) << what;
  }
}

}  // namespace
}  // namespace haco::fleet
