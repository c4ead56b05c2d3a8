// config.capabilities, config.no_new_privs and config.seccomp: haconiwa's
// forms, haco-fleet's defaults and extensions, and bad input.
#include <gtest/gtest.h>
#include <linux/capability.h>

#include "haco/dsl.hpp"
#include "haco/error.hpp"
#include "haco/spec_json.hpp"

namespace haco {
namespace {

// A definition whose lines 5.. are `body`.
std::string definition(const std::string& body) {
  return "Haconiwa.define do |config|\n"
         "  config.name = \"sec\"\n"
         "  config.init_command = \"/bin/true\"\n"
         "  config.chroot_to \"/srv/sec\"\n" +
         body + "end\n";
}

ContainerSpec evaluate(const std::string& body) {
  dsl::Evaluator evaluator;
  return evaluator.evaluate("sec.haco", definition(body), {});
}

std::string error_of(const std::string& body) {
  try {
    evaluate(body);
  } catch (const InputError& e) {
    return e.what();
  }
  return "(no error)";
}

CapabilitySet caps(std::initializer_list<int> list) {
  CapabilitySet set = 0;
  for (int cap : list) set |= capability_bit(cap);
  return set;
}

TEST(SecurityDsl, DefaultsAreTheDocumentedWhitelistTheDefaultFilterAndNoNoNewPrivs) {
  ContainerSpec s = evaluate("");
  EXPECT_EQ(s.capabilities, default_capabilities());
  EXPECT_EQ(s.capabilities, 0x800405fbu);
  EXPECT_EQ(s.capabilities & caps({CAP_SYS_ADMIN, CAP_SYS_MODULE, CAP_SYS_RAWIO, CAP_SYS_PTRACE, CAP_SYS_TIME,
                                   CAP_MKNOD, CAP_NET_ADMIN, CAP_NET_RAW}),
            0u);
  EXPECT_FALSE(s.no_new_privs);
  EXPECT_TRUE(s.seccomp_default_filter);
  EXPECT_FALSE(s.seccomp_filter);
}

TEST(SecurityDsl, CapabilityNamesInEveryHaconiwaForm) {
  ContainerSpec s = evaluate(
      "  config.capabilities.allow \"cap_sys_time\", \"CAP_NET_RAW\", :sys_ptrace, \"audit_write\"\n"
      "  config.capabilities.drop \"cap_kill\", :CAP_SETFCAP\n");
  EXPECT_EQ(s.capabilities, (default_capabilities() | caps({CAP_SYS_TIME, CAP_NET_RAW, CAP_SYS_PTRACE, CAP_AUDIT_WRITE})) &
                                ~caps({CAP_KILL, CAP_SETFCAP}));
}

TEST(SecurityDsl, AllowAllThenDropAsInHaconiwasSample) {
  ContainerSpec all = evaluate("  config.capabilities.allow :all\n");
  EXPECT_EQ(all.capabilities, all_known_capabilities());
  EXPECT_EQ(all.capabilities, 0x1ffffffffffu);
  ContainerSpec sample = evaluate(
      "  config.capabilities.reset_to_privileged!\n"
      "  config.capabilities.allow :all\n"
      "  config.capabilities.drop \"cap_sys_time\"\n");
  EXPECT_EQ(sample.capabilities, all_known_capabilities() & ~caps({CAP_SYS_TIME}));
  // Calls apply in order: a later allow puts back what drop removed.
  ContainerSpec reordered = evaluate(
      "  config.capabilities.drop :all\n"
      "  config.capabilities.allow \"cap_setuid\", \"cap_setgid\"\n");
  EXPECT_EQ(reordered.capabilities, caps({CAP_SETUID, CAP_SETGID}));
}

TEST(SecurityDsl, NoNewPrivsAndTheDefaultFilterSwitch) {
  ContainerSpec s = evaluate(
      "  config.no_new_privs = true\n"
      "  config.seccomp.default_filter = false\n");
  EXPECT_TRUE(s.no_new_privs);
  EXPECT_FALSE(s.seccomp_default_filter);
}

TEST(SecurityDsl, HaconiwasSeccompSampleAndArgumentConditions) {
  ContainerSpec s = evaluate(
      "  config.seccomp.filter(default: :allow) do |rule|\n"
      "    rule.kill :mkdir\n"
      "    rule.kill :fchownat\n"
      "    rule.trap \"personality\", Seccomp::ARG(:==, 8)\n"
      "    rule.kill :mmap, Seccomp::ARG(:>=, 0), Seccomp::ARG(:!=, -1), Seccomp::ARG(:=~, 0x4, 0x4)\n"
      "  end\n");
  ASSERT_TRUE(s.seccomp_filter);
  const SeccompFilter& f = *s.seccomp_filter;
  EXPECT_EQ(f.default_action, SeccompAction::allow);
  ASSERT_EQ(f.rules.size(), 4u);
  EXPECT_EQ(f.rules[0], (SeccompRule{SeccompAction::kill, "mkdir", {}}));
  EXPECT_EQ(f.rules[1], (SeccompRule{SeccompAction::kill, "fchownat", {}}));
  EXPECT_EQ(f.rules[2], (SeccompRule{SeccompAction::trap, "personality", {{0, SeccompCompare::eq, 8, 0}}}));
  EXPECT_EQ(f.rules[3], (SeccompRule{SeccompAction::kill,
                                     "mmap",
                                     {{0, SeccompCompare::ge, 0, 0},
                                      {1, SeccompCompare::ne, ~std::uint64_t{0}, 0},
                                      {2, SeccompCompare::masked_eq, 0x4, 0x4}}}));
  // The default filter stays on beside the definition's.
  EXPECT_TRUE(s.seccomp_default_filter);
}

TEST(SecurityDsl, AWhitelistFilterThatAllowsWhatTheLauncherNeeds) {
  ContainerSpec s = evaluate(
      "  config.seccomp.filter(default: :kill) do |rule|\n"
      "    %w(sendto execve exit_group read write).each { |c| rule.allow c }\n"
      "  end\n");
  ASSERT_TRUE(s.seccomp_filter);
  EXPECT_EQ(s.seccomp_filter->default_action, SeccompAction::kill);
  EXPECT_EQ(s.seccomp_filter->rules.size(), 5u);
}

TEST(SecurityDsl, SyscallNumbersBecomeNames) {
  // 83 is mkdir on x86-64; elsewhere the native ABI's name for 83.
  ContainerSpec s = evaluate("  config.seccomp.filter(default: :allow) { |rule| rule.kill 83 }\n");
  ASSERT_TRUE(s.seccomp_filter);
  ASSERT_EQ(s.seccomp_filter->rules.size(), 1u);
  EXPECT_FALSE(s.seccomp_filter->rules[0].syscall.empty());
#if defined(__x86_64__)
  EXPECT_EQ(s.seccomp_filter->rules[0].syscall, "mkdir");
#endif
}

TEST(SecurityDsl, TheNewFieldsRoundTripThroughJson) {
  ContainerSpec s = evaluate(
      "  config.capabilities.allow :sys_admin\n"
      "  config.no_new_privs = true\n"
      "  config.seccomp.filter(default: :allow) do |rule|\n"
      "    rule.kill :mkdir, Seccomp::ARG(:=~, 0xff, 1)\n"
      "  end\n");
  nlohmann::json j = to_json(s);
  EXPECT_EQ(j.at("no_new_privs"), true);
  EXPECT_EQ(j.at("seccomp").at("default_filter"), true);
  EXPECT_EQ(j.at("seccomp").at("filter").at("rules").at(0).at("syscall"), "mkdir");
  EXPECT_NE(std::find(j.at("capabilities").begin(), j.at("capabilities").end(), "sys_admin"),
            j.at("capabilities").end());
  EXPECT_EQ(container_spec_from_json(j), s);
  // A document written before these fields existed reads as the defaults.
  j.erase("capabilities");
  j.erase("no_new_privs");
  j.erase("seccomp");
  ContainerSpec old = container_spec_from_json(j);
  EXPECT_EQ(old.capabilities, default_capabilities());
  EXPECT_FALSE(old.no_new_privs);
  EXPECT_TRUE(old.seccomp_default_filter);
  EXPECT_FALSE(old.seccomp_filter);
}

TEST(SecurityDsl, BadInputNamesTheFileAndLine) {
  EXPECT_NE(error_of("  config.capabilities.allow \"cap_sys_admn\"\n")
                .find("sec.haco:5: capabilities.allow: unknown capability \"cap_sys_admn\""),
            std::string::npos);
  EXPECT_NE(error_of("  config.capabilities.drop :no_such\n").find("sec.haco:5: capabilities.drop: unknown capability :no_such"),
            std::string::npos);
  EXPECT_NE(error_of("  config.capabilities.allow\n").find("sec.haco:5: capabilities.allow needs"), std::string::npos);
  EXPECT_NE(error_of("  config.no_new_privs = \"yes\"\n").find("sec.haco:5: no_new_privs must be true or false"),
            std::string::npos);
  EXPECT_NE(error_of("  config.seccomp.default_filter = 0\n").find("sec.haco:5: seccomp.default_filter must be"),
            std::string::npos);
  std::string unknown_syscall = error_of(
      "  config.seccomp.filter(default: :allow) do |rule|\n"
      "    rule.kill :mkdir\n"
      "    rule.kill :mkdirr\n"
      "  end\n");
  EXPECT_NE(unknown_syscall.find("sec.haco:7: rule.kill: unknown system call :mkdirr"), std::string::npos)
      << unknown_syscall;
  EXPECT_NE(error_of("  config.seccomp.filter { |rule| rule.kill :mkdir }\n").find("sec.haco:5: seccomp.filter needs default:"),
            std::string::npos);
  EXPECT_NE(error_of("  config.seccomp.filter(default: :errno) { |rule| rule.kill :mkdir }\n")
                .find("the seccomp action :errno is not supported"),
            std::string::npos);
  EXPECT_NE(error_of("  config.seccomp.filter(default: :allow)\n").find("seccomp.filter needs a block"),
            std::string::npos);
  EXPECT_NE(error_of("  config.seccomp.filter(default: :allow) { |rule| rule.kill :mkdir, 3 }\n")
                .find("conditions are written Seccomp::ARG(op, value)"),
            std::string::npos);
  EXPECT_NE(error_of("  config.seccomp.filter(default: :allow) { |rule| rule.kill :mkdir, Seccomp::ARG(:===, 3) }\n")
                .find("Seccomp::ARG: unknown comparison :==="),
            std::string::npos);
  EXPECT_NE(error_of("  config.seccomp.filter(default: :allow) { |rule| rule.trace :mkdir, 1 }\n")
                .find("rule.trace is not supported"),
            std::string::npos);
  EXPECT_NE(error_of("  config.seccomp.filter(default: :allow) { |rule| rule.kill :mkdir; rule.trap :mkdir }\n")
                .find("rule.trap :mkdir contradicts rule.kill :mkdir"),
            std::string::npos);
}

TEST(SecurityDsl, AFilterThatWouldStopTheLauncherIsRefused) {
  std::string killed_exec = error_of("  config.seccomp.filter(default: :allow) { |rule| rule.kill :execve }\n");
  EXPECT_NE(killed_exec.find("sec.haco:5: seccomp.filter must allow execve"), std::string::npos) << killed_exec;
  std::string whitelist = error_of("  config.seccomp.filter(default: :kill) { |rule| rule.allow :execve }\n");
  EXPECT_NE(whitelist.find("seccomp.filter must allow sendto"), std::string::npos) << whitelist;
}

}  // namespace
}  // namespace haco
