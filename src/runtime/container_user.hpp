// The user an init runs as (config.user or an OCI image's User): resolved
// against the container's own /etc/passwd and /etc/group once its root is
// in place, checked against the instance's mapping, and taken just before
// the working directory is entered (so that it is entered as that user).
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "haco/spec.hpp"

namespace haco::runtime {

struct ContainerUser {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary, from /etc/group
  bool operator==(const ContainerUser&) const = default;
};

// "name", "uid", "uid:gid", "name:group" (a missing gid is the passwd
// entry's, or the uid's when the uid has none). `passwd` and `group` are the
// files' text. Throws Error naming the user when a name is not found or an id
// is outside `uid_map`/`gid_map` (empty maps: no user namespace, any id).
ContainerUser resolve_container_user(const std::string& user, const std::string& passwd, const std::string& group,
                                     const std::vector<IdMapping>& uid_map, const std::vector<IdMapping>& gid_map);

// In the child: resolves c.user against /etc/passwd and /etc/group (a
// missing file reads as empty) and becomes that user, keeping the
// capabilities it has (exec of a non-root user drops them), so that the
// seccomp filter can still be installed. No-op when c.user is empty.
void take_container_user(const ContainerSpec& c);

}  // namespace haco::runtime
