#include "haco/spec.hpp"

#include <sched.h>

#include <algorithm>
#include <array>
#include <utility>

namespace haco {
namespace {

constexpr std::array<std::pair<std::string_view, Namespace>, 9> kNamespaceNames{{
    {"mount", Namespace::mount},
    {"mnt", Namespace::mount},
    {"ns", Namespace::mount},
    {"uts", Namespace::uts},
    {"ipc", Namespace::ipc},
    {"pid", Namespace::pid},
    {"net", Namespace::net},
    {"user", Namespace::user},
    {"cgroup", Namespace::cgroup},
}};

constexpr std::array<std::pair<std::string_view, IndependentMount>, 5> kIndependentNames{{
    {"procfs", IndependentMount::procfs},
    {"sysfs", IndependentMount::sysfs},
    {"devtmpfs", IndependentMount::devtmpfs},
    {"devpts", IndependentMount::devpts},
    {"shm", IndependentMount::shm},
}};

}  // namespace

std::optional<Namespace> namespace_from_name(std::string_view name) {
  for (const auto& [n, ns] : kNamespaceNames)
    if (n == name) return ns;
  return std::nullopt;
}

std::string_view namespace_name(Namespace ns) {
  switch (ns) {
    case Namespace::mount: return "mount";
    case Namespace::uts: return "uts";
    case Namespace::ipc: return "ipc";
    case Namespace::pid: return "pid";
    case Namespace::net: return "net";
    case Namespace::user: return "user";
    case Namespace::cgroup: return "cgroup";
  }
  return "?";
}

unsigned long namespace_clone_flag(Namespace ns) {
  switch (ns) {
    case Namespace::mount: return CLONE_NEWNS;
    case Namespace::uts: return CLONE_NEWUTS;
    case Namespace::ipc: return CLONE_NEWIPC;
    case Namespace::pid: return CLONE_NEWPID;
    case Namespace::net: return CLONE_NEWNET;
    case Namespace::user: return CLONE_NEWUSER;
    case Namespace::cgroup: return CLONE_NEWCGROUP;
  }
  return 0;
}

std::optional<IndependentMount> independent_mount_from_name(std::string_view name) {
  for (const auto& [n, m] : kIndependentNames)
    if (n == name) return m;
  return std::nullopt;
}

std::string_view independent_mount_name(IndependentMount m) {
  for (const auto& [n, value] : kIndependentNames)
    if (value == m) return n;
  return "?";
}

std::string_view bootstrap_kind_name(BootstrapKind k) {
  switch (k) {
    case BootstrapKind::none: return "none";
    case BootstrapKind::tarball: return "tarball";
    case BootstrapKind::shell: return "shell";
    case BootstrapKind::block: return "block";
    case BootstrapKind::oci: return "oci";
  }
  return "?";
}

bool ContainerSpec::has_namespace(Namespace ns) const {
  return std::find(namespaces.begin(), namespaces.end(), ns) != namespaces.end();
}

}  // namespace haco
