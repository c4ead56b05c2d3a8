#include "runtime/caps.hpp"

#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <string>

#include "haco/error.hpp"

namespace haco::runtime {
namespace {

std::string capability_label(int cap) {
  auto name = capability_name(cap);
  return name.empty() ? "capability " + std::to_string(cap) : "cap_" + std::string(name);
}

bool kept(CapabilitySet set, int cap) { return cap <= kLastKnownCapability && (set & capability_bit(cap)); }

// Every capability the running kernel has, known by name here or not:
// PR_CAPBSET_READ fails with EINVAL past the kernel's last one.
void restrict_bounding_set(CapabilitySet keep) {
  for (int cap = 0; cap < 64; ++cap) {
    int present = ::prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
    if (present < 0 && errno == EINVAL) return;
    check_sys(present, "prctl PR_CAPBSET_READ", capability_label(cap));
    if (present == 1 && !kept(keep, cap))
      check_sys(::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), "prctl PR_CAPBSET_DROP", capability_label(cap));
  }
}

void restrict_process_sets(CapabilitySet keep) {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3]{};
  check_sys(::syscall(SYS_capget, &header, data), "capget");
  for (unsigned word = 0; word < _LINUX_CAPABILITY_U32S_3; ++word) {
    auto allowed = static_cast<std::uint32_t>(keep >> (32 * word));
    data[word].permitted &= allowed;
    data[word].effective = data[word].permitted;
    data[word].inheritable = 0;
  }
  check_sys(::syscall(SYS_capset, &header, data), "capset");
}

}  // namespace

void restrict_capabilities(const ContainerSpec& c, bool keep_sys_admin) {
  restrict_bounding_set(c.capabilities);
  check_sys(::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "prctl PR_CAP_AMBIENT_CLEAR_ALL");
  restrict_process_sets(c.capabilities | (keep_sys_admin ? capability_bit(CAP_SYS_ADMIN) : 0));
}

}  // namespace haco::runtime
