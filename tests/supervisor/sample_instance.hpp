// An instance spec for the supervisor's unit tests: a busybox httpd on
// `port` with its own user and pid namespaces and 100 ids at port*100.
#pragma once

#include <cstdint>
#include <string>

#include "haco/spec.hpp"

namespace haco::testing {

inline InstanceSpec sample_instance(std::uint16_t port) {
  InstanceSpec i;
  i.index = 3;
  i.port = port;
  i.container.name = "web-" + std::to_string(port);
  i.container.command = {"/bin/busybox", "httpd", "-f"};
  i.container.rootfs = "/tmp/rootfs/web-" + std::to_string(port);
  i.container.namespaces = {Namespace::user, Namespace::pid};
  i.container.uid_map = {{0, port * 100u, 100}};
  i.container.gid_map = {{0, port * 100u, 100}};
  i.container.cgroup = {{"pids.max", "64"}};
  return i;
}

}  // namespace haco::testing
