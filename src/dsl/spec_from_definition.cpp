#include "dsl/spec_from_definition.hpp"

#include <vector>

#include "haco/error.hpp"
#include "haco/names.hpp"

namespace haco::dsl {
namespace {

using nlohmann::json;

std::vector<IdMapping> mappings(const json& list) {
  std::vector<IdMapping> out;
  for (const auto& m : list)
    out.push_back({m.at(0).get<std::uint32_t>(), m.at(1).get<std::uint32_t>(), m.at(2).get<std::uint32_t>()});
  return out;
}

// A target given as a host path under the rootfs (root.join("tmp")) becomes
// the path inside the container ("/tmp"); any other absolute path is already
// one.
std::string container_path(const std::string& target, const std::string& rootfs) {
  std::string normalized = normalize_absolute_path(target);
  if (normalized == rootfs) return "/";
  if (normalized.rfind(rootfs + "/", 0) == 0) return normalized.substr(rootfs.size());
  return normalized;
}

std::uint64_t argument_value(const json& v) {
  // Ruby integers are signed: -1 stands for all ones, as in C.
  return v.is_number_unsigned() ? v.get<std::uint64_t>() : static_cast<std::uint64_t>(v.get<std::int64_t>());
}

SeccompAction seccomp_action(const json& name) {
  auto action = seccomp_action_from_name(name.get<std::string>());
  if (!action) throw Error("unknown seccomp action '" + name.get<std::string>() + "'");
  return *action;
}

SeccompFilter seccomp_filter(const json& f) {
  SeccompFilter filter;
  filter.default_action = seccomp_action(f.at("default"));
  for (const auto& r : f.at("rules")) {
    SeccompRule rule;
    rule.action = seccomp_action(r.at("action"));
    rule.syscall = r.at("syscall").get<std::string>();
    for (const auto& a : r.at("args")) {
      SeccompArg arg;
      arg.index = a.at("index").get<std::uint32_t>();
      auto op = seccomp_compare_from_name(a.at("op").get<std::string>());
      if (!op) throw Error("unknown seccomp comparison '" + a.at("op").get<std::string>() + "'");
      arg.op = *op;
      arg.value = argument_value(a.at("value"));
      arg.mask = argument_value(a.at("mask"));
      rule.args.push_back(arg);
    }
    filter.rules.push_back(std::move(rule));
  }
  return filter;
}

}  // namespace

std::string normalize_absolute_path(const std::string& path) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    std::string part = path.substr(start, end - start);
    if (part == "..") {
      if (!parts.empty()) parts.pop_back();
    } else if (!part.empty() && part != ".") {
      parts.push_back(part);
    }
    start = end + 1;
  }
  std::string out;
  for (const auto& p : parts) out += "/" + p;
  return out.empty() ? "/" : out;
}

ContainerSpec spec_from_definition(const json& d, const std::string& file_name) {
  auto fail = [&](const std::string& message) { return InputError(file_name + ": " + message); };
  ContainerSpec spec;
  spec.source_file = file_name;

  if (d.at("name").is_null()) throw fail("config.name is not set");
  spec.name = d.at("name").get<std::string>();
  // It names the instance's directories, cgroup and hostname.
  with_context(file_name, [&] { check_name("config.name", spec.name); });

  // An OCI image's Entrypoint and Cmd may give it (oci::apply_image_config).
  const bool oci = d.at("bootstrap").at("strategy").get<std::string>() == "oci";
  if (d.at("command").is_null() && !oci) throw fail("config.init_command is not set");
  if (!d.at("command").is_null()) spec.command = d.at("command").get<std::vector<std::string>>();
  spec.daemonize = d.at("daemonize").get<bool>();

  if (d.at("rootfs").is_null()) throw fail("config.chroot_to is not set (the instance's root directory)");
  std::string rootfs = d.at("rootfs").get<std::string>();
  if (rootfs.empty() || rootfs.front() != '/') throw fail("config.chroot_to must be an absolute path, got '" + rootfs + "'");
  spec.rootfs = normalize_absolute_path(rootfs);
  if (spec.rootfs == "/") throw fail("config.chroot_to must not be the host's /");

  for (const auto& name : d.at("namespaces")) {
    auto ns = namespace_from_name(name.get<std::string>());
    if (ns && !spec.has_namespace(*ns)) spec.namespaces.push_back(*ns);
  }
  spec.uid_map = mappings(d.at("uid_map"));
  spec.gid_map = mappings(d.at("gid_map"));
  if (spec.uid_map.empty() != spec.gid_map.empty())
    throw fail(spec.uid_map.empty() ? "set_gid_mapping without set_uid_mapping" : "set_uid_mapping without set_gid_mapping");

  if (const auto& owner = d.at("rootfs_owner"); !owner.is_null())
    spec.rootfs_owner = Owner{owner.at(0).get<std::uint32_t>(), owner.at(1).get<std::uint32_t>()};

  for (const auto& m : d.at("mounts")) {
    MountPoint mount;
    mount.source = m.at("source").get<std::string>();
    std::string target = m.at("target").get<std::string>();
    if (target.empty() || target.front() != '/')
      throw fail("add_mount_point " + mount.source + ": to: must be an absolute path, got '" + target + "'");
    mount.target = container_path(target, spec.rootfs);
    mount.fstype = m.at("fstype").get<std::string>();
    mount.options = m.at("options").get<std::string>();
    mount.read_only = m.at("read_only").get<bool>();
    if (mount.fstype.empty() && (mount.source.empty() || mount.source.front() != '/'))
      throw fail("add_mount_point " + mount.source + ": a bind mount (no fs:) needs an absolute source path");
    spec.mounts.push_back(std::move(mount));
  }

  if (const auto& etc = d.at("network_etc"); !etc.is_null()) {
    std::string root = normalize_absolute_path(etc.at("root").get<std::string>());
    if (root != spec.rootfs)
      throw fail("mount_network_etc is given " + root + " but the rootfs (chroot_to) is " + spec.rootfs);
    std::string host_root = etc.at("host_root").get<std::string>();
    if (host_root.empty() || host_root.front() != '/')
      throw fail("mount_network_etc host_root: must be an absolute path, got '" + host_root + "'");
    spec.network_etc_host_root = normalize_absolute_path(host_root);
  }

  for (const auto& name : d.at("independent_mounts"))
    if (auto m = independent_mount_from_name(name.get<std::string>())) spec.independent_mounts.push_back(*m);

  for (const auto& pair : d.at("cgroup"))
    spec.cgroup.push_back({pair.at(0).get<std::string>(), pair.at(1).get<std::string>()});

  const auto& b = d.at("bootstrap");
  std::string strategy = b.at("strategy").get<std::string>();
  if (strategy == "tarball") {
    spec.bootstrap.kind = BootstrapKind::tarball;
    spec.bootstrap.archive_path = b.at("archive_path").get<std::string>();
    spec.bootstrap.tar_options = b.at("tar_options").get<std::vector<std::string>>();
  } else if (strategy == "oci") {
    spec.bootstrap.kind = BootstrapKind::oci;
    spec.bootstrap.image = b.at("image").get<std::string>();
  } else if (strategy == "shell") {
    spec.bootstrap.kind = BootstrapKind::shell;
    spec.bootstrap.code = b.at("code").get<std::string>();
  } else if (strategy == "block") {
    spec.bootstrap.kind = BootstrapKind::block;
    for (const auto& command : b.at("commands")) spec.bootstrap.commands.push_back(command.get<std::string>());
    if (!b.at("recording_error").is_null()) spec.bootstrap.recording_error = b.at("recording_error").get<std::string>();
  }

  for (const auto& [key, value] : d.at("environment").items()) {
    if (key.empty() || key.find('=') != std::string::npos) throw fail("environ key '" + key + "' is not a valid name");
    spec.environment.push_back(key + "=" + value.get<std::string>());
  }
  if (!d.at("workdir").is_null()) spec.workdir = d.at("workdir").get<std::string>();
  if (!d.at("user").is_null()) spec.user = d.at("user").get<std::string>();
  spec.stop_signal = d.at("stop_signal").get<int>();

  // The prelude checked every name; these lookups cannot fail for its output.
  spec.capabilities = 0;
  for (const auto& name : d.at("capabilities")) {
    auto cap = capability_from_name(name.get<std::string>());
    if (!cap) throw fail("unknown capability '" + name.get<std::string>() + "'");
    spec.capabilities |= capability_bit(*cap);
  }
  spec.no_new_privs = d.at("no_new_privs").get<bool>();
  const auto& seccomp = d.at("seccomp");
  spec.seccomp_default_filter = seccomp.at("default_filter").get<bool>();
  if (const auto& filter = seccomp.at("filter"); !filter.is_null()) spec.seccomp_filter = seccomp_filter(filter);
  return spec;
}

}  // namespace haco::dsl
