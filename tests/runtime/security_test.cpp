// Capabilities, no_new_privs and seccomp of real containers, read from the
// host in /proc/PID/status and from what calls inside the container return.
#include <gtest/gtest.h>
#include <linux/capability.h>
#include <signal.h>
#include <sys/wait.h>

#include <filesystem>

#include <fmt/format.h>

#include "runtime/container_fixture.hpp"

namespace haco::testing {
namespace {

using SecurityTest = RootTest;

std::uint64_t status_bits(pid_t pid, const std::string& key) { return std::stoull(status_field(pid, key), nullptr, 16); }

// A busybox container running `script`, its log at <rootfs dir>/init.log.
struct ScriptContainer {
  ScriptContainer(const std::string& name, const std::string& script) : base(test_id_base()), rootfs(base) {
    request.instance.container = busybox_spec(name, rootfs, base, script);
    request.log_path = (rootfs.dir() / "init.log").string();
  }
  ContainerSpec& spec() { return request.instance.container; }
  std::string log_until(const std::string& marker) { return wait_for_text(request.log_path, marker); }

  std::uint32_t base;
  TempRootfs rootfs;
  runtime::LaunchRequest request;
};

TEST_F(SecurityTest, DefaultCapabilitySetsAndFilterOfAnInit) {
  ScriptContainer sc("haco-rt-sec-default", "echo END; exec sleep 60");
  Container c(sc.request);
  ASSERT_NE(sc.log_until("END").find("END"), std::string::npos);
  // The documented whitelist, and every other set consistent with it.
  EXPECT_EQ(status_field(c.pid(), "CapBnd"), "00000000800405fb");
  EXPECT_EQ(status_bits(c.pid(), "CapBnd"), default_capabilities());
  EXPECT_EQ(status_bits(c.pid(), "CapPrm"), default_capabilities());
  EXPECT_EQ(status_bits(c.pid(), "CapEff"), default_capabilities());
  EXPECT_EQ(status_bits(c.pid(), "CapInh"), 0u);
  EXPECT_EQ(status_bits(c.pid(), "CapAmb"), 0u);
  EXPECT_EQ(status_field(c.pid(), "NoNewPrivs"), "0");
  EXPECT_EQ(status_field(c.pid(), "Seccomp"), "2");
  EXPECT_EQ(status_field(c.pid(), "Seccomp_filters"), "1");
}

// A nested user namespace needs no capability: without CAP_SYS_ADMIN only
// the filter stops it, and with the filter off it is made.
TEST_F(SecurityTest, DefaultFilterDeniesANestedUserNamespaceAndTheSwitchTurnsItOff) {
  const std::string script = "unshare -U true; echo unshare=$?; echo END; exec sleep 60";
  ScriptContainer filtered("haco-rt-sec-unshare", script);
  Container c(filtered.request);
  std::string log = filtered.log_until("END");
  EXPECT_NE(log.find("Operation not permitted"), std::string::npos) << log;
  EXPECT_NE(log.find("unshare=1\n"), std::string::npos) << log;

  ScriptContainer unconfined("haco-rt-sec-unconf", script);
  unconfined.spec().seccomp_default_filter = false;
  Container u(unconfined.request);
  std::string unconfined_log = unconfined.log_until("END");
  EXPECT_NE(unconfined_log.find("unshare=0\n"), std::string::npos) << unconfined_log;
  EXPECT_EQ(status_field(u.pid(), "Seccomp"), "0");
  EXPECT_EQ(status_bits(u.pid(), "CapBnd"), default_capabilities());
}

// With every capability the mount and namespace rules relax; the clock
// rules do not. adjtimex without options only reads the clock's state,
// which needs no capability: only the filter refuses it.
TEST_F(SecurityTest, AllowAllGivesTheFullSetAndRelaxesMountsButNotTheClock) {
  const std::string script =
      "unshare -U true; echo unshare=$?; mount -t tmpfs none /tmp; echo mount=$?; "
      "adjtimex >/dev/null; echo adjtimex=$?; echo END; exec sleep 60";
  ScriptContainer all("haco-rt-sec-all", script);
  all.spec().capabilities = all_known_capabilities();
  Container c(all.request);
  std::string log = all.log_until("END");
  int last_cap = std::stoi(read_file("/proc/sys/kernel/cap_last_cap"));
  EXPECT_EQ(status_bits(c.pid(), "CapBnd"), (1ull << (last_cap + 1)) - 1);
  EXPECT_EQ(status_bits(c.pid(), "CapEff"), (1ull << (last_cap + 1)) - 1);
  EXPECT_EQ(status_field(c.pid(), "Seccomp"), "2");
  EXPECT_NE(log.find("unshare=0\n"), std::string::npos) << log;
  EXPECT_NE(log.find("mount=0\n"), std::string::npos) << log;
  EXPECT_NE(log.find("adjtimex=1\n"), std::string::npos) << log;

  ScriptContainer unconfined("haco-rt-sec-all-unconf", script);
  unconfined.spec().capabilities = all_known_capabilities();
  unconfined.spec().seccomp_default_filter = false;
  Container u(unconfined.request);
  std::string unconfined_log = unconfined.log_until("END");
  EXPECT_NE(unconfined_log.find("adjtimex=0\n"), std::string::npos) << unconfined_log;
}

TEST_F(SecurityTest, DefinitionRuleKillsMkdirAndOnlyMkdir) {
  ScriptContainer killed("haco-rt-sec-kill", "");
  killed.spec().command = {"/bin/mkdir", "/tmp/made"};
  killed.spec().seccomp_filter = SeccompFilter{SeccompAction::allow, {{SeccompAction::kill, "mkdir", {}}}};
  Container c(killed.request);
  int status = c.wait_exit(std::chrono::seconds(10));
  ASSERT_TRUE(WIFSIGNALED(status)) << status;
  EXPECT_EQ(WTERMSIG(status), SIGSYS);
  EXPECT_FALSE(std::filesystem::exists(killed.rootfs.path() / "tmp/made"));

  ScriptContainer allowed("haco-rt-sec-nokill", "");
  allowed.spec().command = {"/bin/mkdir", "/tmp/made"};
  allowed.spec().seccomp_filter = SeccompFilter{SeccompAction::allow, {{SeccompAction::kill, "rmdir", {}}}};
  Container a(allowed.request);
  int allowed_status = a.wait_exit(std::chrono::seconds(10));
  ASSERT_TRUE(WIFEXITED(allowed_status)) << allowed_status;
  EXPECT_EQ(WEXITSTATUS(allowed_status), 0);
  EXPECT_TRUE(std::filesystem::exists(allowed.rootfs.path() / "tmp/made"));
}

// Seccomp::ARG(:==, 8) on personality: linux32 asks for PER_LINUX32 (8),
// linux64 for PER_LINUX (0); both pass the default filter.
TEST_F(SecurityTest, ArgumentConditionsSelectTheCallsARuleKills) {
  ScriptContainer sc("haco-rt-sec-arg", "linux64 true; echo linux64=$?; linux32 true; echo linux32=$?; "
                                        "echo END; exec sleep 60");
  sc.spec().seccomp_filter =
      SeccompFilter{SeccompAction::allow, {{SeccompAction::kill, "personality", {{0, SeccompCompare::eq, 8, 0}}}}};
  Container c(sc.request);
  std::string log = sc.log_until("END");
  EXPECT_NE(log.find("linux64=0\n"), std::string::npos) << log;
  EXPECT_NE(log.find(fmt::format("linux32={}\n", 128 + SIGSYS)), std::string::npos) << log;
  EXPECT_EQ(status_field(c.pid(), "Seccomp_filters"), "2");
}

TEST_F(SecurityTest, NoNewPrivsIsSetAndTheFiltersStillInstall) {
  ScriptContainer sc("haco-rt-sec-nnp", "echo END; exec sleep 60");
  sc.spec().no_new_privs = true;
  Container c(sc.request);
  ASSERT_NE(sc.log_until("END").find("END"), std::string::npos);
  EXPECT_EQ(status_field(c.pid(), "NoNewPrivs"), "1");
  EXPECT_EQ(status_field(c.pid(), "Seccomp"), "2");
  EXPECT_EQ(status_bits(c.pid(), "CapEff"), default_capabilities());
}

TEST_F(SecurityTest, AMinimalSetWithoutSetpcapStillStarts) {
  ScriptContainer sc("haco-rt-sec-min", "echo END; exec sleep 60");
  sc.spec().capabilities = capability_bit(CAP_KILL);
  Container c(sc.request);
  ASSERT_NE(sc.log_until("END").find("END"), std::string::npos);
  EXPECT_EQ(status_bits(c.pid(), "CapBnd"), capability_bit(CAP_KILL));
  EXPECT_EQ(status_bits(c.pid(), "CapEff"), capability_bit(CAP_KILL));
  EXPECT_EQ(status_field(c.pid(), "Seccomp"), "2");
}

}  // namespace
}  // namespace haco::testing
