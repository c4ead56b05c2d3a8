#include "runtime/seccomp.hpp"

#include <linux/capability.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <map>
#include <mutex>
#include <span>
#include <string>

#include <fmt/format.h>

#include "haco/error.hpp"
#include "haco/unique_fd.hpp"
#include "runtime/seccomp_policy.hpp"

namespace haco::runtime {
namespace {

constexpr std::array<std::uint64_t, 7> kCloneNamespaceFlags{
    CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET,
};
// CLONE_NEWTIME shares its bit with clone's exit signal; unshare takes it.
constexpr std::uint64_t kCloneNewTime = 0x80;

// A libseccomp filter context, released on every path.
class FilterContext {
 public:
  explicit FilterContext(std::uint32_t default_action) : ctx_(::seccomp_init(default_action)) {
    if (!ctx_) throw Error("seccomp_init: cannot create a filter context");
    // A binary tree over the call numbers instead of a chain: at install the
    // kernel runs the program for every call number of every ABI to cache
    // the calls it always allows, and shorter paths make that (and every
    // inspected call) cheaper.
    int rc = ::seccomp_attr_set(ctx_, SCMP_FLTATR_CTL_OPTIMIZE, 2);
    if (rc < 0) throw Error::from_errno("seccomp_attr_set", "SCMP_FLTATR_CTL_OPTIMIZE", -rc);
    add_companion_abis();
  }
  ~FilterContext() { ::seccomp_release(ctx_); }
  FilterContext(const FilterContext&) = delete;
  FilterContext& operator=(const FilterContext&) = delete;

  void add_rule(std::uint32_t action, const std::string& syscall, std::span<const scmp_arg_cmp> args = {}) {
    int nr = ::seccomp_syscall_resolve_name(syscall.c_str());
    if (nr == __NR_SCMP_ERROR) throw Error(fmt::format("libseccomp does not know the system call '{}'", syscall));
    int rc = ::seccomp_rule_add_array(ctx_, action, nr, static_cast<unsigned>(args.size()), args.data());
    if (rc < 0) throw Error::from_errno("seccomp_rule_add", syscall, -rc);
  }

  SeccompProgram export_bpf() const {
    UniqueFd memory(::memfd_create("haco-seccomp", MFD_CLOEXEC));
    if (!memory) throw Error::from_errno("memfd_create", "seccomp program", errno);
    int rc = ::seccomp_export_bpf(ctx_, memory.get());
    if (rc < 0) throw Error::from_errno("seccomp_export_bpf", -rc);
    off_t size = check_sys(::lseek(memory.get(), 0, SEEK_END), "lseek", "seccomp program");
    if (size <= 0 || size % static_cast<off_t>(sizeof(sock_filter)) != 0)
      throw Error(fmt::format("seccomp_export_bpf wrote {} bytes, not a whole program", size));
    if (static_cast<std::size_t>(size) / sizeof(sock_filter) > BPF_MAXINSNS)
      throw Error(fmt::format("the seccomp program has {} instructions, more than the kernel's {}",
                              static_cast<std::size_t>(size) / sizeof(sock_filter), BPF_MAXINSNS));
    SeccompProgram program;
    program.code.resize(static_cast<std::size_t>(size) / sizeof(sock_filter));
    std::size_t done = 0;
    auto* bytes = reinterpret_cast<char*>(program.code.data());
    while (done < static_cast<std::size_t>(size)) {
      ssize_t n = ::pread(memory.get(), bytes + done, static_cast<std::size_t>(size) - done, static_cast<off_t>(done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) throw Error::from_errno("pread", "seccomp program", n < 0 ? errno : EIO);
      done += static_cast<std::size_t>(n);
    }
    return program;
  }

 private:
  // The 32-bit ABIs a 64-bit kernel also runs: without them in the filter
  // their calls would meet the bad-architecture action (kill) instead of the
  // rules, which would stop 32-bit programs altogether.
  void add_companion_abis() {
    std::uint32_t native = ::seccomp_arch_native();
    std::vector<std::uint32_t> companions;
    if (native == SCMP_ARCH_X86_64) companions = {SCMP_ARCH_X86, SCMP_ARCH_X32};
    if (native == SCMP_ARCH_AARCH64) companions = {SCMP_ARCH_ARM};
    for (auto arch : companions) {
      int rc = ::seccomp_arch_add(ctx_, arch);
      if (rc < 0 && rc != -EEXIST) throw Error::from_errno("seccomp_arch_add", -rc);
    }
  }

  scmp_filter_ctx ctx_;
};

scmp_arg_cmp arg_masked_eq(unsigned index, std::uint64_t mask, std::uint64_t value) {
  return {index, SCMP_CMP_MASKED_EQ, mask, value};
}

// One rule per flag: the rules of one call are alternatives, and a single
// comparison cannot say "any of these bits".
void deny_namespace_flags(FilterContext& ctx, std::uint32_t action, const std::string& syscall, bool with_time) {
  for (auto flag : kCloneNamespaceFlags) {
    scmp_arg_cmp cmp = arg_masked_eq(0, flag, flag);
    ctx.add_rule(action, syscall, {&cmp, 1});
  }
  if (with_time) {
    scmp_arg_cmp cmp = arg_masked_eq(0, kCloneNewTime, kCloneNewTime);
    ctx.add_rule(action, syscall, {&cmp, 1});
  }
}

// personality(2) takes 32 bits. Allowed: 0 (PER_LINUX), 0x8 (PER_LINUX32),
// 0x20000 and 0x20008 (their UNAME26 forms), 0xffffffff (the query): the
// values whose bits lie within 0x20008, and all ones. libseccomp takes one
// comparison per argument and rule, so "any other value" is written as
// alternatives, each a masked comparison of two or three bits:
//  - bit i set and bit i+1 (cyclically) clear, for every i but 3 and 17;
//  - bits e-1 and e set and bit e+1 clear, for e = 3 and 17.
// A value with a bit outside 0x20008 that is not all ones holds a run of
// set bits around that bit which ends, going up, below a clear bit; the
// run's last bit is either outside {3, 17} (first form) or is 3 or 17 with
// the bit below it in the run (second form). The allowed values match
// neither form.
void deny_unusual_personality(FilterContext& ctx, std::uint32_t action, const std::string& syscall) {
  constexpr std::uint64_t kOne = 1;
  for (unsigned bit = 0; bit < 32; ++bit) {
    if (bit == 3 || bit == 17) continue;
    scmp_arg_cmp cmp = arg_masked_eq(0, (kOne << bit) | (kOne << ((bit + 1) % 32)), kOne << bit);
    ctx.add_rule(action, syscall, {&cmp, 1});
  }
  for (unsigned bit : {3u, 17u}) {
    scmp_arg_cmp cmp = arg_masked_eq(0, std::uint64_t{7} << (bit - 1), std::uint64_t{3} << (bit - 1));
    ctx.add_rule(action, syscall, {&cmp, 1});
  }
}

std::uint32_t scmp_action(SeccompAction a) {
  switch (a) {
    case SeccompAction::allow: return SCMP_ACT_ALLOW;
    // The whole process: a thread killed alone would leave the rest of its
    // process waiting on it.
    case SeccompAction::kill: return SCMP_ACT_KILL_PROCESS;
    case SeccompAction::trap: return SCMP_ACT_TRAP;
  }
  return SCMP_ACT_KILL_PROCESS;
}

scmp_compare scmp_op(SeccompCompare c) {
  switch (c) {
    case SeccompCompare::eq: return SCMP_CMP_EQ;
    case SeccompCompare::ne: return SCMP_CMP_NE;
    case SeccompCompare::lt: return SCMP_CMP_LT;
    case SeccompCompare::le: return SCMP_CMP_LE;
    case SeccompCompare::gt: return SCMP_CMP_GT;
    case SeccompCompare::ge: return SCMP_CMP_GE;
    case SeccompCompare::masked_eq: return SCMP_CMP_MASKED_EQ;
  }
  return SCMP_CMP_EQ;
}

std::string filter_key(const SeccompFilter& f) {
  std::string key = fmt::format("definition {}", seccomp_action_name(f.default_action));
  for (const auto& r : f.rules) {
    key += fmt::format(";{} {}", seccomp_action_name(r.action), r.syscall);
    for (const auto& a : r.args)
      key += fmt::format(" {}:{}:{}:{}", a.index, seccomp_compare_name(a.op), a.value, a.mask);
  }
  return key;
}

// Compiled programs by what they depend on. A launcher process starts many
// instances of few definitions; libseccomp then runs once per definition.
class ProgramCache {
 public:
  template <typename Compile>
  std::shared_ptr<const SeccompProgram> get(const std::string& key, Compile&& compile) {
    std::lock_guard lock(mutex_);
    auto it = programs_.find(key);
    if (it != programs_.end()) return it->second;
    auto program = std::make_shared<const SeccompProgram>(compile());
    if (programs_.size() >= kMaxPrograms) programs_.clear();
    programs_.emplace(key, program);
    return program;
  }

 private:
  static constexpr std::size_t kMaxPrograms = 64;
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<const SeccompProgram>> programs_;
};

ProgramCache& program_cache() {
  static ProgramCache cache;
  return cache;
}

}  // namespace

SeccompProgram compile_default_filter(CapabilitySet capabilities) {
  bool sys_admin = capabilities & capability_bit(CAP_SYS_ADMIN);
  FilterContext ctx(SCMP_ACT_ALLOW);
  for (const auto& denied : default_denied_calls()) {
    if (denied.relaxed_by_sys_admin && sys_admin) continue;
    std::string syscall(denied.syscall);
    std::uint32_t action = SCMP_ACT_ERRNO(static_cast<std::uint32_t>(denied.error));
    switch (denied.test) {
      case ArgumentTest::any: ctx.add_rule(action, syscall); break;
      case ArgumentTest::clone_namespace_flags: deny_namespace_flags(ctx, action, syscall, false); break;
      case ArgumentTest::unshare_namespace_flags: deny_namespace_flags(ctx, action, syscall, true); break;
      case ArgumentTest::unusual_personality: deny_unusual_personality(ctx, action, syscall); break;
    }
  }
  return ctx.export_bpf();
}

SeccompProgram compile_definition_filter(const SeccompFilter& filter) {
  FilterContext ctx(scmp_action(filter.default_action));
  for (const auto& rule : filter.rules) {
    // A rule that does what the default does changes nothing, and
    // libseccomp refuses it.
    if (rule.action == filter.default_action) continue;
    std::vector<scmp_arg_cmp> args;
    for (const auto& a : rule.args) {
      if (a.op == SeccompCompare::masked_eq)
        args.push_back({a.index, SCMP_CMP_MASKED_EQ, a.mask, a.value});
      else
        args.push_back({a.index, scmp_op(a.op), a.value, 0});
    }
    with_context(fmt::format("config.seccomp.filter: rule.{} :{}", seccomp_action_name(rule.action), rule.syscall),
                 [&] { ctx.add_rule(scmp_action(rule.action), rule.syscall, args); });
  }
  return ctx.export_bpf();
}

SeccompPrograms seccomp_programs(const ContainerSpec& c) {
  SeccompPrograms programs;
  if (c.seccomp_default_filter) {
    bool sys_admin = c.capabilities & capability_bit(CAP_SYS_ADMIN);
    programs.push_back(program_cache().get(sys_admin ? "default sys_admin" : "default",
                                           [&] { return compile_default_filter(c.capabilities); }));
  }
  if (c.seccomp_filter)
    programs.push_back(program_cache().get(filter_key(*c.seccomp_filter),
                                           [&] { return compile_definition_filter(*c.seccomp_filter); }));
  return programs;
}

void install_seccomp(const SeccompPrograms& programs) {
  for (const auto& program : programs) {
    sock_fprog fprog{static_cast<unsigned short>(program->code.size()), const_cast<sock_filter*>(program->code.data())};
    check_sys(::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog), "seccomp", "SECCOMP_SET_MODE_FILTER");
  }
}

bool seccomp_needs_sys_admin(const ContainerSpec& c, const SeccompPrograms& programs) {
  return !programs.empty() && !c.no_new_privs && !(c.capabilities & capability_bit(CAP_SYS_ADMIN));
}

}  // namespace haco::runtime
