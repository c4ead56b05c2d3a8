// A busybox fleet on a host with systemd and only cgroup v2, brought up from
// each place an operator may run `up`. Whatever the caller, the fleet runs in
// a transient unit of its own, haco-fleet-<fleet>.service (Delegate=yes):
//   .../haco-fleet-<fleet>.service/supervisor          supervisor, spawners, log writer
//   .../haco-fleet-<fleet>.service/instances/<name>    one leaf per instance
// so it outlives the caller's session, and `down` leaves nothing behind.
#include <signal.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <regex>
#include <thread>

#include <fmt/format.h>

#include "haco/error.hpp"
#include "test_support.hpp"
#include "vm/busybox_fleet.hpp"
#include "vm/systemd_host.hpp"

namespace haco::vm {
namespace {

namespace fs = std::filesystem;
using FleetUnit = SystemdCgroup2Test;

constexpr const char* kPage = "served by busybox httpd";

std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += "\n  " + l;
  return out;
}

// Everything `up` must have set up, whoever called it.
void expect_fleet_in_its_own_unit(const BusyboxFleet& fleet) {
  const nlohmann::json doc = fleet.ps();
  SCOPED_TRACE("ps --json: " + doc.dump());
  EXPECT_EQ(doc.value("unit", std::string("(no \"unit\" in ps --json)")), fleet.unit());
  EXPECT_EQ(unit_property(fleet.unit(), "ActiveState"), "active");
  EXPECT_EQ(unit_property(fleet.unit(), "Delegate"), "yes");

  const fs::path top = cgroup_dir(fleet.unit_cgroup());
  const pid_t supervisor = doc.at("supervisor").at("pid").get<pid_t>();
  EXPECT_EQ(cgroup_of(supervisor), fleet.unit_cgroup() + "/supervisor") << "the supervisor (pid " << supervisor << ")";
  const pid_t log_writer = doc.at("log_writer").at("pid").get<pid_t>();
  EXPECT_EQ(cgroup_of(log_writer), fleet.unit_cgroup() + "/supervisor") << "the log writer (pid " << log_writer << ")";
  // No cgroup that distributes controllers holds processes.
  EXPECT_TRUE(cgroup_procs(top).empty()) << top;
  EXPECT_TRUE(cgroup_procs(top / "instances").empty()) << top / "instances";

  ASSERT_EQ(doc.at("instances").size(), BusyboxFleet::kInstances);
  for (const auto& instance : doc.at("instances")) {
    const std::string name = instance.at("instance");
    SCOPED_TRACE("instance " + name);
    EXPECT_EQ(instance.at("state"), "running");
    ASSERT_TRUE(instance.at("pid").is_number());
    const pid_t pid = instance.at("pid").get<pid_t>();
    const std::string leaf = fleet.unit_cgroup() + "/instances/" + name;
    EXPECT_EQ(cgroup_of(pid), leaf) << "the instance's init (pid " << pid << ")";
    std::error_code ec;
    if (!fs::is_directory(cgroup_dir(leaf), ec)) continue;
    for (const char* file : {"pids.max", "cpu.max"})
      ASSERT_TRUE(fs::exists(cgroup_dir(leaf) / file, ec)) << leaf << " has no " << file;
    EXPECT_NE(trim(read_text_file(cgroup_dir(leaf) / "pids.max")), "max") << "an instance without a pids limit";
    EXPECT_EQ(trim(read_text_file(cgroup_dir(leaf) / "cpu.max")), "10000 100000");  // the template's 10% quota
  }
  for (std::uint16_t port : fleet.ports())
    EXPECT_NE(http_get(port).find(kPage), std::string::npos) << "port " << port << " does not serve the page";
}

void expect_down_leaves_nothing(const BusyboxFleet& fleet) {
  auto down = fleet.down();
  EXPECT_EQ(down.status, 0) << down.output;
  auto left = fleet.leftovers();
  EXPECT_TRUE(left.empty()) << "after down:" << joined(left);
}

// `caller_cgroup` matches the cgroup `up` must have run in, so that the test
// checks the caller it names.
void bring_up_from(Caller caller, const std::string& caller_cgroup, const std::string& tag, std::uint16_t first_port) {
  BusyboxFleet fleet(tag, first_port);
  UpResult up = fleet.up(caller);
  ASSERT_TRUE(std::regex_match(up.caller_cgroup, std::regex(caller_cgroup)))
      << "up ran in " << up.caller_cgroup << ", not in " << caller_name(caller) << ":\n" << up.output;
  ASSERT_EQ(up.status, 0) << "up from " << caller_name(caller) << " (cgroup " << up.caller_cgroup << "):\n"
                          << up.output;
  expect_fleet_in_its_own_unit(fleet);
  expect_down_leaves_nothing(fleet);
}

// The harness runs the tests in a service with Delegate=yes; `up` runs from
// the test's own process. The fleet must leave that service's cgroup as it
// was (it is put back for the tests that follow either way).
class FleetFromOwnService : public FleetUnit {
 protected:
  void SetUp() override {
    FleetUnit::SetUp();
    if (IsSkipped() || HasFailure()) return;
    own_ = cgroup_of(::getpid());
    const std::string unit = own_.substr(own_.rfind('/') + 1);
    ASSERT_TRUE(unit.ends_with(".service")) << "not run from a service: " << own_;
    ASSERT_EQ(unit_property(unit, "Delegate"), "yes") << unit;
    own_before_ = std::make_unique<CgroupSnapshot>(cgroup_dir(own_));
  }
  void TearDown() override {
    if (!own_before_) return;
    EXPECT_TRUE(own_before_->changes().empty()) << "the fleet changed the cgroup `up` ran in:"
                                                << joined(own_before_->changes());
    own_before_->restore();
  }

  std::string own_;
  std::unique_ptr<CgroupSnapshot> own_before_;
};

TEST_F(FleetFromOwnService, UpFromAServiceWithDelegationRunsTheFleetInItsOwnUnit) {
  bring_up_from(Caller::delegated_service, own_, "svc", 24101);
}

TEST_F(FleetUnit, UpFromAScopeWithoutDelegationRunsTheFleetInItsOwnUnit) {
  bring_up_from(Caller::scope, R"(/system\.slice/run-[^/]+\.scope)", "scope", 24111);
}

TEST_F(FleetUnit, UpFromALoginSessionRunsTheFleetInItsOwnUnitThatOutlivesTheSession) {
  BusyboxFleet fleet("login", 24121);
  UpResult up = fleet.up(Caller::login_session);
  ASSERT_EQ(up.status, 0) << "up from " << caller_name(Caller::login_session) << " (cgroup " << up.caller_cgroup
                          << "):\n" << up.output;
  ASSERT_FALSE(up.session.empty()) << "su -l opened no logind session; up ran in " << up.caller_cgroup;
  ASSERT_EQ(up.caller_cgroup, "/user.slice/user-0.slice/session-" + up.session + ".scope");
  expect_fleet_in_its_own_unit(fleet);
  const pid_t supervisor = fleet.ps().at("supervisor").at("pid").get<pid_t>();

  auto end = testing::run_command("loginctl terminate-session " + up.session);
  ASSERT_EQ(end.status, 0) << end.output;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (testing::run_command("loginctl show-session " + up.session).status == 0 &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  ASSERT_NE(testing::run_command("loginctl show-session " + up.session).status, 0)
      << "session " << up.session << " still there a minute after terminate-session";
  std::this_thread::sleep_for(std::chrono::seconds(1));  // let a kill that was sent land

  EXPECT_EQ(::kill(supervisor, 0), 0) << "the supervisor died with the session";
  expect_fleet_in_its_own_unit(fleet);
  expect_down_leaves_nothing(fleet);
}

TEST_F(FleetFromOwnService, TwoFleetsBroughtUpConcurrentlyBothRunInTheirOwnUnits) {
  BusyboxFleet first("pair-a", 24131);
  BusyboxFleet second("pair-b", 24141);
  UpResult up_first, up_second;
  std::thread other([&] { up_second = second.up(Caller::delegated_service); });
  up_first = first.up(Caller::delegated_service);
  other.join();
  ASSERT_EQ(up_first.status, 0) << up_first.output;
  ASSERT_EQ(up_second.status, 0) << up_second.output;
  expect_fleet_in_its_own_unit(first);
  expect_fleet_in_its_own_unit(second);
  expect_down_leaves_nothing(first);
  expect_down_leaves_nothing(second);
}

TEST_F(FleetFromOwnService, MemorySwapAndPidsLimitsAreReadBackFromTheCgroupFiles) {
  BusyboxFleet fleet("limits", 24151,
                     "  config.cgroup[\"memory.limit_in_bytes\"] = 64 * 1024 * 1024\n"
                     "  config.cgroup[\"memory.memsw.limit_in_bytes\"] = 96 * 1024 * 1024\n"
                     "  config.cgroup[\"pids.max\"] = 64");
  UpResult up = fleet.up(Caller::delegated_service);
  ASSERT_EQ(up.status, 0) << up.output;
  expect_fleet_in_its_own_unit(fleet);
  for (std::uint16_t port : fleet.ports()) {
    const fs::path leaf = cgroup_dir(fleet.unit_cgroup() + "/instances/" + BusyboxFleet::instance_name(port));
    SCOPED_TRACE(leaf.string());
    EXPECT_EQ(trim(read_text_file(leaf / "memory.max")), "67108864");
    EXPECT_EQ(trim(read_text_file(leaf / "memory.swap.max")), "33554432");  // memsw - memory
    EXPECT_EQ(trim(read_text_file(leaf / "pids.max")), "64");
    EXPECT_EQ(trim(read_text_file(leaf / "cpu.max")), "10000 100000");
  }
  expect_down_leaves_nothing(fleet);
}

// haco-fleet@.service as cmake installs it (build/systemd/), with ExecStart
// pointing at the build's program and this fleet's state and data roots,
// installed under another name in /run/systemd/system for the test's time.
class TemplateUnit {
 public:
  explicit TemplateUnit(const BusyboxFleet& fleet)
      : fleet_(fleet), template_name_(fmt::format("haco-fleet-vmtest{}@.service", ::getpid())),
        instance_(fmt::format("haco-fleet-vmtest{}@{}.service", ::getpid(), fleet.name())),
        unit_file_("/run/systemd/system/" + template_name_),
        env_file_("/etc/haco-fleet/" + fleet.name() + ".env") {
    std::string text = read_text_file(fs::path(HACO_BUILD_DIR) / "systemd" / "haco-fleet@.service");
    const std::regex exec_start(R"((ExecStart=)\S*/haco-fleet up )");
    if (!std::regex_search(text, exec_start)) throw Error("no `ExecStart=.../haco-fleet up` in the template");
    text = std::regex_replace(text, exec_start, "$1" + fleet.haco_command("up "));
    std::ofstream(unit_file_) << text;
    fs::create_directories(env_file_.parent_path());
    std::ofstream(env_file_) << fmt::format("HACO_FLEET_PORTS={}-{}\nHACO_FLEET_DEFINITION={}\nHACO_FLEET_UP_ARGS=--timeout 300\n{}",
                                            fleet.ports().front(), fleet.ports().back(),
                                            fleet.definition().string(), fleet.environment());
    testing::run_command("systemctl daemon-reload");
  }
  ~TemplateUnit() {
    testing::run_command(fmt::format("systemctl stop '{0}'; systemctl reset-failed '{0}'; systemctl stop '{1}'",
                                     instance_, slice()));
    std::error_code ec;
    fs::remove(unit_file_, ec);
    fs::remove(env_file_, ec);
    fs::remove(env_file_.parent_path(), ec);  // only when empty
    testing::run_command("systemctl daemon-reload");
  }
  TemplateUnit(const TemplateUnit&) = delete;
  TemplateUnit& operator=(const TemplateUnit&) = delete;

  const std::string& instance() const { return instance_; }
  std::string slice() const { return "system-" + escaped_prefix() + ".slice"; }
  std::string cgroup() const { return "/system.slice/" + slice() + "/" + instance_; }

 private:
  // systemd's slice of a template's instances: "haco-fleet-vmtest123" -> "haco\x2dfleet\x2dvmtest123".
  std::string escaped_prefix() const {
    std::string prefix = template_name_.substr(0, template_name_.find('@')), out;
    for (char c : prefix) out += c == '-' ? std::string("\\x2d") : std::string(1, c);
    return out;
  }

  const BusyboxFleet& fleet_;
  std::string template_name_, instance_;
  fs::path unit_file_, env_file_;
};

TEST_F(FleetUnit, TheUnitTemplateBringsAFleetUpWithStatusAndStopTakesItDown) {
  BusyboxFleet fleet("tmpl", 24161);
  TemplateUnit unit(fleet);
  auto start = testing::run_command("systemctl start " + unit.instance());
  ASSERT_EQ(start.status, 0) << start.output << "\n"
                             << testing::run_command("journalctl -n 30 --no-pager -u " + unit.instance()).output;
  // READY=1 came after every instance was ready: systemctl start waited for it.
  EXPECT_EQ(unit_property(unit.instance(), "ActiveState"), "active");
  EXPECT_EQ(unit_property(unit.instance(), "StatusText"), "3/3 ready");

  const nlohmann::json doc = fleet.ps();
  SCOPED_TRACE("ps --json: " + doc.dump());
  const pid_t supervisor = doc.at("supervisor").at("pid").get<pid_t>();
  EXPECT_EQ(cgroup_of(supervisor), unit.cgroup() + "/supervisor");
  EXPECT_TRUE(cgroup_procs(cgroup_dir(unit.cgroup()) / "instances").empty());
  for (const auto& instance : doc.at("instances")) {
    const std::string leaf = unit.cgroup() + "/instances/" + instance.at("instance").get<std::string>();
    EXPECT_EQ(cgroup_of(instance.at("pid").get<pid_t>()), leaf);
    EXPECT_EQ(trim(read_text_file(cgroup_dir(leaf) / "cpu.max")), "10000 100000");
  }
  for (std::uint16_t port : fleet.ports())
    EXPECT_NE(http_get(port).find(kPage), std::string::npos) << "port " << port << " does not serve the page";

  auto stop = testing::run_command("systemctl stop " + unit.instance());
  ASSERT_EQ(stop.status, 0) << stop.output;
  EXPECT_EQ(unit_property(unit.instance(), "ActiveState"), "inactive");
  // A stop is `down` without --purge: no process, cgroup, mount or state is
  // left; the instances' trees are kept for the next start.
  auto left = fleet.leftovers();
  EXPECT_TRUE(left.empty()) << "after systemctl stop:" << joined(left);
  EXPECT_FALSE(fs::exists(cgroup_dir(unit.cgroup())));
}

}  // namespace
}  // namespace haco::vm
