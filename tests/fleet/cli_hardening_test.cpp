// The command line against hostile input: names that would become paths
// outside the state and data roots, definitions that try to run commands or
// never end, definitions without a user namespace. Each is refused with exit
// status 2 before anything is created.
#include <cstdlib>
#include <filesystem>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "test_support.hpp"

namespace haco {
namespace {

using testing::run_command;
using testing::TempDir;

// Everything under `dir`, relative, sorted.
std::vector<std::string> tree(const std::filesystem::path& dir) {
  std::vector<std::string> found;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir))
    found.push_back(std::filesystem::relative(e.path(), dir).string());
  std::sort(found.begin(), found.end());
  return found;
}

// A temporary directory holding a definition; the state root and data root
// are two levels down in it (not created), so that a name escaping either
// lands inside the directory, where the test sees it.
class Hostile : public ::testing::Test {
 protected:
  void SetUp() override {
    definition_ = dir_.file("defs/ok.haco", R"(Haconiwa.define do |config|
  config.name = ENV['HACO_TEST_NAME'] || "ok-#{ENV['PORT']}"
  config.init_command = "/bin/true"
  config.chroot_to "/nonexistent/haco-test/ok-#{ENV['PORT']}"
  config.namespace.set_uid_mapping min: 0, max: 9, offset: 3000000000 + ENV['PORT'].to_i * 10
  config.namespace.set_gid_mapping min: 0, max: 9, offset: 3000000000 + ENV['PORT'].to_i * 10
end
)");
    before_ = tree(dir_.path());
  }
  void TearDown() override { ::unsetenv("HACO_TEST_NAME"); }

  std::string haco() const {
    return std::string(HACO_BINARY) + " --root " + (dir_.path() / "s/state").string() + " --data-root " +
           (dir_.path() / "d/data").string();
  }
  void expect_nothing_created(const std::string& what) const { EXPECT_EQ(tree(dir_.path()), before_) << what; }

  TempDir dir_;
  std::string definition_;
  std::vector<std::string> before_;
};

const std::vector<std::string>& hostile_names() {
  static const std::vector<std::string> names = {
      "../x", "../../evil", "a/b", ".", "..", "", std::string(64, 'n'), "-x", "--all", ".hidden",
      "a\x1b[31mred", "tab\there", "new\nline", "a..b"};
  return names;
}

TEST_F(Hostile, FleetNamesAreRefusedByEveryCommand) {
  for (const auto& name : hostile_names()) {
    ::setenv("HACO_TEST_NAME_FLAG", name.c_str(), 1);
    for (const std::string& command :
         {"expand --ports 1 " + definition_, "up --ports 1 --timeout 1 " + definition_, std::string("ps"),
          std::string("down --purge --timeout 1")}) {
      auto r = run_command(haco() + " " + command + " --name=\"$HACO_TEST_NAME_FLAG\"");
      EXPECT_EQ(r.status, 2) << command << " --name '" << name << "': " << r.output;
      // An empty value is refused by the option parser itself.
      EXPECT_NE(r.output.find(name.empty() ? "--name: 1 required" : "--name: fleet name '"), std::string::npos)
          << command << ": " << r.output;
      EXPECT_EQ(r.output.find('\x1b'), std::string::npos) << "raw ESC printed: " << r.output;
      expect_nothing_created(command + " --name '" + name + "'");
    }
  }
  ::unsetenv("HACO_TEST_NAME_FLAG");
}

TEST_F(Hostile, InstanceNamesFromTheDefinitionAreRefused) {
  for (const auto& name : hostile_names()) {
    ::setenv("HACO_TEST_NAME", name.c_str(), 1);
    for (const std::string command : {"expand --ports 1 ", "up --ports 1 --timeout 1 "}) {
      auto r = run_command(haco() + " " + command + definition_);
      EXPECT_EQ(r.status, 2) << command << "config.name '" << name << "': " << r.output;
      EXPECT_NE(r.output.find("config.name '"), std::string::npos) << r.output;
      EXPECT_EQ(r.output.find('\x1b'), std::string::npos) << "raw ESC printed: " << r.output;
      expect_nothing_created(command + "config.name '" + name + "'");
    }
  }
}

TEST_F(Hostile, AFileNameThatIsNoFleetNameNeedsName) {
  std::string odd = dir_.file("defs/my fleet.haco", "");
  auto r = run_command(haco() + " expand --ports 1 '" + odd + "'");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("fleet name (the definition's file name; --name gives another) 'my fleet'"), std::string::npos)
      << r.output;
}

// `down --purge` of a name reaching out of the roots used to remove what the
// name pointed at; now it touches nothing.
TEST_F(Hostile, DownPurgeCannotReachOutOfTheDataRoot) {
  dir_.file("victim/fleet.json",
            R"({"schema":1,"fleet":"x","definition":"","restart_policy":"no","created_at_unix_ms":0,)"
            R"("supervisor":{"pid":-1,"start_time":0},"spawners":[],"instances":[]})");
  dir_.file("d/victim/precious", "keep me");
  // The roots as earlier runs leave them.
  dir_.file("d/data/logs/other/a.log", "");
  std::filesystem::create_directories(dir_.path() / "s/state");
  auto before = tree(dir_.path());
  auto r = run_command(haco() + " down --purge --timeout 1 --name ../../victim");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_EQ(tree(dir_.path()), before);
}

TEST_F(Hostile, DefinitionsRunNoCommandDuringExpand) {
  std::string marker = (dir_.path() / "ran").string();
  std::string path = dir_.file("defs/routes.haco", R"(
[-> { Haconiwa.__shell("touch )" + marker + R"(-hook") },
 -> { Haconiwa.send(:__shell, "touch )" + marker + R"(-send") },
 -> { Kernel.send(:`, "touch )" + marker + R"(-kernel") },
 -> { Haconiwa.__reset({}, true); `touch )" + marker + R"(-reset` },
 -> { IO.popen("touch )" + marker + R"(-popen") },
 -> { open("|touch )" + marker + R"(-open") },
 -> { system("touch )" + marker + R"(-system") }].each { |a| begin; a.call; rescue Exception; end }
Haconiwa.instance_variable_set(:@running_bootstrap, false)
Haconiwa.define do |config|
  config.name = "routes"
  config.init_command = "/bin/true"
  config.chroot_to "/nonexistent/routes"
  config.namespace.set_uid_mapping min: 0, max: 9, offset: 3000000000
  config.namespace.set_gid_mapping min: 0, max: 9, offset: 3000000000
  config.bootstrap { |b| `touch )" + marker + R"(-bootstrap` }
end
)");
  auto before = tree(dir_.path());
  auto r = run_command(haco() + " expand --ports 1 --json " + path + " 2>/dev/null");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(nlohmann::json::parse(r.output).at("instances").at(0).at("bootstrap").at("strategy"), "block");
  EXPECT_EQ(tree(dir_.path()), before);
}

TEST_F(Hostile, ADefinitionThatNeverEndsIsStopped) {
  std::string path = dir_.file("defs/forever.haco", "");
  auto before = tree(dir_.path());
  for (const char* body : {"loop {}\n", "while true; end\n"}) {
    dir_.file("defs/forever.haco", body);
    auto started = std::chrono::steady_clock::now();
    auto r = run_command(haco() + " expand --ports 1-3 --eval-timeout 0.5 " + path);
    EXPECT_EQ(r.status, 2) << r.output;
    EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(4));
    EXPECT_EQ(r.output, "haco-fleet: port 1: " + path +
                            ": evaluating the definition took longer than 0.5 s and was stopped (a loop that never "
                            "ends?); --eval-timeout sets the limit\n");
  }
  auto r = run_command(haco() + " up --ports 1 --eval-timeout 0.5 " + path);
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("took longer than 0.5 s"), std::string::npos) << r.output;
  for (const char* bad : {"0", "0.05", "3601", "-1", "nan"}) {
    auto out = run_command(haco() + " expand --ports 1 --eval-timeout " + bad + " " + definition_);
    EXPECT_EQ(out.status, 2) << bad << ": " << out.output;
  }
  EXPECT_EQ(tree(dir_.path()), before);
}

// Every numeric option has a range, stated in --help; a value outside it
// (too large, negative, not a number, written in another notation) ends with
// exit status 2 and one line naming the option, the range and the value,
// before anything is read or created.
TEST_F(Hostile, NumericOptionsOutsideTheirRangeAreRefused) {
  struct Case {
    std::string command;  // the subcommand and what it needs besides the option
    std::string option;
    std::string range;  // as the message and --help say it
    std::vector<std::string> refused;
  };
  const std::string def = " " + definition_;
  const std::vector<Case> cases = {
      {"up --ports 1" + def, "--parallel", "a whole number from 1 to 256", {"0", "257", "100000", "-1", "1.5", "x"}},
      {"up --ports 1" + def, "--stagger", "a whole number from 0 to 60000", {"60001", "-5", "99999999999999999999"}},
      {"up --ports 1" + def, "--timeout", "seconds from 0.1 to 86400", {"0", "-1", "86401", "1e9", "nan", "inf"}},
      {"up --ports 1" + def, "--log-max-bytes", "a whole number from 4096 to 1099511627776",
       {"4095", "1099511627777", "-1", "0x10000"}},
      {"up --ports 1" + def, "--eval-timeout", "seconds from 0.1 to 3600", {"0.05", "3601"}},
      {"expand --ports 1" + def, "--eval-timeout", "seconds from 0.1 to 3600", {"0", "-1", "nan"}},
      {"expand --ports 1" + def, "--pids-max", "max or a whole number from 1 to 4194304", {"0", "4194305", "lots"}},
      {"down", "--timeout", "seconds from 0 to 86400", {"-1", "-0.5", "86401", "1e9", "inf"}},
      {"supervise --name x", "--spawners", "a whole number from 1 to 256", {"0", "257", "-1"}},
      {"supervise --name x", "--stagger", "a whole number from 0 to 60000", {"60001"}},
      {"supervise --name x", "--log-max-bytes", "a whole number from 4096 to 1099511627776", {"1"}},
  };
  for (const auto& c : cases) {
    for (const auto& value : c.refused) {
      auto r = run_command(haco() + " " + c.command + " " + c.option + " " + value);
      EXPECT_EQ(r.status, 2) << c.command << " " << c.option << " " << value << ": " << r.output;
      EXPECT_EQ(r.output, "haco-fleet: " + c.option + ": expected " + c.range + ", got '" + value + "'\n")
          << c.command;
    }
    if (c.command.rfind("supervise", 0) == 0) continue;  // hidden: no help text
    std::string subcommand = c.command.substr(0, c.command.find(' '));
    auto help = run_command(haco() + " " + subcommand + " --help");
    std::string range = c.range.substr(c.range.find("from ") + 5);
    auto at = help.output.find(c.option + " ");
    ASSERT_NE(at, std::string::npos) << help.output;
    EXPECT_NE(help.output.substr(at, help.output.find("\n  -", at + 1) - at).find(range), std::string::npos)
        << subcommand << " --help does not give the range of " << c.option << ": " << help.output;
  }
  expect_nothing_created("options outside their range");
  // The bounds themselves are accepted: `up` goes on to the definition, whose
  // rootfs does not exist.
  auto r = run_command(haco() + " up --ports 1 --parallel 256 --stagger 60000 --timeout 86400 --log-max-bytes "
                                "1099511627776 --eval-timeout 3600 --pids-max 4194304" + def);
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("does not exist and the definition has no bootstrap"), std::string::npos) << r.output;
  r = run_command(haco() + " up --ports 1 --parallel 1 --stagger 0 --timeout 0.1 --log-max-bytes 4096" + def);
  EXPECT_NE(r.output.find("does not exist and the definition has no bootstrap"), std::string::npos) << r.output;
  expect_nothing_created("options at the bounds of their range");
}

TEST_F(Hostile, HostRootNeedsTheFlag) {
  std::string previous = testing::seed_file("phpinfo-test-previous.haco");
  auto r = run_command(haco() + " up --ports 10001 --timeout 1 " + previous);
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("'haconiwa-2d057697-10001' has no user namespace"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("--allow-host-root"), std::string::npos) << r.output;
  expect_nothing_created("up of a host-root definition");

  auto table = run_command(haco() + " expand --ports 10001 " + previous);
  EXPECT_EQ(table.status, 0) << table.output;
  EXPECT_NE(table.output.find("host root    YES: no user namespace"), std::string::npos) << table.output;
  auto doc = run_command(haco() + " expand --json --ports 10001 " + previous + " 2>/dev/null");
  EXPECT_EQ(nlohmann::json::parse(doc.output).at("instances").at(0).at("runs_as_host_root"), true);
  auto mapped = run_command(haco() + " expand --json --ports 1 " + definition_ + " 2>/dev/null");
  EXPECT_EQ(nlohmann::json::parse(mapped.output).at("instances").at(0).at("runs_as_host_root"), false);
}

}  // namespace
}  // namespace haco
