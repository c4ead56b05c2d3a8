// The compiled filters, installed in a forked child with no_new_privs (no
// root needed): what each denied call returns there, against the same call
// in a child without the filter. Only calls that cannot change the host
// whatever the filter does are made.
#include <gtest/gtest.h>
#include <linux/capability.h>
#include <linux/keyctl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/timex.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <functional>
#include <vector>

#include "haco/error.hpp"
#include "runtime/seccomp.hpp"
#include "runtime/seccomp_policy.hpp"

namespace haco::runtime {
namespace {

// 0, or the errno the call failed with.
long errno_of(long result) { return result < 0 ? errno : 0; }

// Runs `probes` in a forked child that first installs `programs` (none:
// unfiltered); their results, in order.
std::vector<long> in_child(const SeccompPrograms& programs, const std::vector<std::function<long()>>& probes) {
  int fds[2];
  if (::pipe(fds) != 0) throw Error::from_errno("pipe", errno);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) ::_exit(2);
    try {
      install_seccomp(programs);
    } catch (...) {
      ::_exit(3);
    }
    for (const auto& probe : probes) {
      long r = probe();
      if (::write(fds[1], &r, sizeof r) != static_cast<ssize_t>(sizeof r)) ::_exit(4);
    }
    ::_exit(0);
  }
  ::close(fds[1]);
  std::vector<long> results;
  long r = 0;
  while (::read(fds[0], &r, sizeof r) == static_cast<ssize_t>(sizeof r)) results.push_back(r);
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "probe child status " << status;
  return results;
}

SeccompPrograms default_filter(CapabilitySet caps) {
  return {std::make_shared<const SeccompProgram>(compile_default_filter(caps))};
}

long personality_errno(unsigned long value) { return errno_of(::syscall(SYS_personality, value)); }

TEST(SeccompFilter, EveryNameOfTheDefaultTableCompiles) {
  EXPECT_GT(default_denied_calls().size(), 40u);
  EXPECT_GT(compile_default_filter(default_capabilities()).code.size(), 100u);
  // Relaxing the mount and namespace rules leaves a shorter program.
  EXPECT_LT(compile_default_filter(all_known_capabilities()).code.size(),
            compile_default_filter(default_capabilities()).code.size());
}

TEST(SeccompFilter, PersonalityOnlyTakesTheHarmlessValues) {
  const std::vector<unsigned long> allowed{0, 0x8, 0x20000, 0x20008, 0xffffffff};
  const std::vector<unsigned long> denied{
      ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC, MMAP_PAGE_ZERO, ADDR_COMPAT_LAYOUT, PER_SVR4, 0x1, 0x9, 0x20009,
      0x3fff8,           0xfffffff7,        0x7fffffff,     0x80000000,         0xfffdfff7, 0x10008, 0x30000, 0x2000f};
  std::vector<std::function<long()>> probes;
  for (auto v : allowed) probes.push_back([v] { return personality_errno(v); });
  for (auto v : denied) probes.push_back([v] { return personality_errno(v); });
  auto results = in_child(default_filter(default_capabilities()), probes);
  ASSERT_EQ(results.size(), probes.size());
  for (std::size_t i = 0; i < allowed.size(); ++i) EXPECT_EQ(results[i], 0) << std::hex << allowed[i];
  for (std::size_t i = 0; i < denied.size(); ++i) EXPECT_EQ(results[allowed.size() + i], EPERM) << std::hex << denied[i];
  // Every single bit outside 0x20008, alone and beside the allowed ones.
  std::vector<std::function<long()>> bits;
  for (unsigned bit = 0; bit < 32; ++bit) {
    if (bit == 3 || bit == 17) continue;
    bits.push_back([bit] { return personality_errno(1ul << bit); });
    bits.push_back([bit] { return personality_errno((1ul << bit) | 0x20008); });
  }
  for (long r : in_child(default_filter(default_capabilities()), bits)) EXPECT_EQ(r, EPERM);
}

// Calls whose unfiltered result is not EPERM for root or any user, and which
// change nothing outside the probing child.
std::vector<std::function<long()>> harmless_denied_calls() {
  return {
      [] { return errno_of(::syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0)); },
      [] { timex t{}; return errno_of(::syscall(SYS_adjtimex, &t)); },
      [] { return errno_of(::syscall(SYS_name_to_handle_at, -1, "", nullptr, nullptr, 0)); },
      [] { return personality_errno(ADDR_NO_RANDOMIZE); },
  };
}

TEST(SeccompFilter, DeniedCallsFailWithEpermOnlyUnderTheFilter) {
  auto unfiltered = in_child({}, harmless_denied_calls());
  auto filtered = in_child(default_filter(all_known_capabilities()), harmless_denied_calls());
  ASSERT_EQ(filtered.size(), unfiltered.size());
  for (std::size_t i = 0; i < filtered.size(); ++i) {
    EXPECT_EQ(filtered[i], EPERM) << "probe " << i;
    EXPECT_NE(unfiltered[i], EPERM) << "probe " << i;
  }
}

TEST(SeccompFilter, NamespaceAndMountRulesRelaxOnlyWithSysAdmin) {
  const std::vector<std::function<long()>> probes{
      [] { return errno_of(::unshare(CLONE_NEWUSER)); },
      [] { return errno_of(::unshare(CLONE_FILES)); },
      [] { return errno_of(::syscall(SYS_clone3, nullptr, 0)); },
      [] { return errno_of(::mount(nullptr, "/nonexistent/haco-seccomp-test", "none", 0, nullptr)); },
      [] { return errno_of(::syscall(SYS_setns, -1, 0)); },
      [] {
        pid_t child = ::fork();  // clone without namespace flags
        if (child == 0) ::_exit(0);
        if (child > 0) ::waitpid(child, nullptr, 0);
        return errno_of(child);
      },
  };
  auto restricted = in_child(default_filter(default_capabilities()), probes);
  ASSERT_EQ(restricted.size(), probes.size());
  EXPECT_EQ(restricted[0], EPERM);
  EXPECT_EQ(restricted[1], 0);
  EXPECT_EQ(restricted[2], ENOSYS);
  EXPECT_EQ(restricted[3], EPERM);
  EXPECT_EQ(restricted[4], EPERM);
  EXPECT_EQ(restricted[5], 0);

  auto relaxed = in_child(default_filter(default_capabilities() | capability_bit(CAP_SYS_ADMIN)), probes);
  ASSERT_EQ(relaxed.size(), probes.size());
  // The kernel answers now: clone3 without arguments is EINVAL, the mount
  // target does not exist.
  EXPECT_EQ(relaxed[2], EINVAL);
  EXPECT_EQ(relaxed[3], ENOENT);
  EXPECT_EQ(relaxed[4], EBADF);
  EXPECT_EQ(relaxed[5], 0);
}

TEST(SeccompFilter, CloneWithANamespaceFlagIsDenied) {
  auto results = in_child(default_filter(default_capabilities()),
                          {[] {
                            long child = ::syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, nullptr, nullptr, nullptr, 0);
                            if (child == 0) ::_exit(0);
                            if (child > 0) ::waitpid(static_cast<pid_t>(child), nullptr, 0);
                            return errno_of(child);
                          }});
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0], EPERM);
}

TEST(SeccompFilter, DefinitionFilterStacksOnTheDefault) {
  ContainerSpec c;
  c.seccomp_filter = SeccompFilter{SeccompAction::allow, {{SeccompAction::allow, "keyctl", {}},
                                                          {SeccompAction::trap, "getppid", {}}}};
  SeccompPrograms programs = seccomp_programs(c);
  ASSERT_EQ(programs.size(), 2u);
  // Allowing in the definition's filter cannot undo the default's denial.
  auto results = in_child(programs, {[] { return errno_of(::syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID,
                                                                    KEY_SPEC_SESSION_KEYRING, 0)); }});
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0], EPERM);
}

TEST(SeccompFilter, ProgramsAreCompiledOncePerPolicy) {
  ContainerSpec a, b;
  b.name = "other";
  EXPECT_EQ(seccomp_programs(a).at(0), seccomp_programs(b).at(0));
  b.capabilities = all_known_capabilities();
  EXPECT_NE(seccomp_programs(a).at(0), seccomp_programs(b).at(0));
  a.seccomp_default_filter = false;
  EXPECT_TRUE(seccomp_programs(a).empty());
  a.seccomp_filter = SeccompFilter{SeccompAction::allow, {{SeccompAction::kill, "mkdir", {}}}};
  b.seccomp_filter = a.seccomp_filter;
  EXPECT_EQ(seccomp_programs(a).at(0), seccomp_programs(b).at(1));
}

TEST(SeccompFilter, AnUnknownSystemCallIsAnError) {
  SeccompFilter f{SeccompAction::allow, {{SeccompAction::kill, "no_such_call", {}}}};
  try {
    compile_definition_filter(f);
    FAIL() << "compiled";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no_such_call"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace haco::runtime
