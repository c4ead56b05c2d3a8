#include "runtime/caps.hpp"

#include <linux/capability.h>
#include <sys/prctl.h>

#include <array>
#include <string>

#include "haco/error.hpp"
#include "runtime/user_ns.hpp"

namespace haco::runtime {
namespace {

constexpr std::array<int, 10> kHostWide{
    CAP_SYS_MODULE, CAP_SYS_BOOT,   CAP_SYS_RAWIO,      CAP_SYS_TIME,  CAP_WAKE_ALARM,
    CAP_SYSLOG,     CAP_MAC_ADMIN,  CAP_MAC_OVERRIDE,   CAP_AUDIT_CONTROL, CAP_BLOCK_SUSPEND,
};

}  // namespace

void restrict_capabilities(const ContainerSpec& c) {
  if (wants_user_namespace(c)) return;
  for (int cap : kHostWide)
    check_sys(::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), "prctl PR_CAPBSET_DROP", std::to_string(cap));
}

}  // namespace haco::runtime
