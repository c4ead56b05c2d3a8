#include "haco/spec_json.hpp"

#include "haco/error.hpp"

namespace haco {
namespace {

using nlohmann::json;

json id_map_json(const std::vector<IdMapping>& maps) {
  json out = json::array();
  for (const auto& m : maps) out.push_back({{"inside", m.inside}, {"outside", m.outside}, {"count", m.count}});
  return out;
}

template <typename T>
T field(const json& j, const char* name) {
  auto it = j.find(name);
  if (it == j.end()) throw Error(std::string("spec JSON: missing field '") + name + "'");
  try {
    return it->get<T>();
  } catch (const json::exception&) {
    throw Error(std::string("spec JSON: field '") + name + "' has the wrong type");
  }
}

std::vector<IdMapping> id_map_from_json(const json& j) {
  std::vector<IdMapping> out;
  for (const auto& m : j)
    out.push_back({field<std::uint32_t>(m, "inside"), field<std::uint32_t>(m, "outside"),
                   field<std::uint32_t>(m, "count")});
  return out;
}

json seccomp_json(const ContainerSpec& s) {
  json filter;
  if (s.seccomp_filter) {
    json rules = json::array();
    for (const auto& r : s.seccomp_filter->rules) {
      json args = json::array();
      for (const auto& a : r.args) {
        json arg = {{"index", a.index}, {"op", std::string(seccomp_compare_name(a.op))}, {"value", a.value}};
        if (a.op == SeccompCompare::masked_eq) arg["mask"] = a.mask;
        args.push_back(arg);
      }
      rules.push_back({{"action", std::string(seccomp_action_name(r.action))}, {"syscall", r.syscall}, {"args", args}});
    }
    filter = {{"default", std::string(seccomp_action_name(s.seccomp_filter->default_action))}, {"rules", rules}};
  }
  return {{"default_filter", s.seccomp_default_filter}, {"filter", filter}};
}

SeccompAction seccomp_action_from_json(const json& j, const char* name) {
  auto text = field<std::string>(j, name);
  auto action = seccomp_action_from_name(text);
  if (!action) throw Error("spec JSON: unknown seccomp action '" + text + "'");
  return *action;
}

SeccompFilter seccomp_filter_from_json(const json& j) {
  SeccompFilter f;
  f.default_action = seccomp_action_from_json(j, "default");
  for (const auto& r : field<json>(j, "rules")) {
    SeccompRule rule;
    rule.action = seccomp_action_from_json(r, "action");
    rule.syscall = field<std::string>(r, "syscall");
    for (const auto& a : field<json>(r, "args")) {
      SeccompArg arg;
      arg.index = field<std::uint32_t>(a, "index");
      auto op = field<std::string>(a, "op");
      auto compare = seccomp_compare_from_name(op);
      if (!compare) throw Error("spec JSON: unknown seccomp comparison '" + op + "'");
      arg.op = *compare;
      arg.value = field<std::uint64_t>(a, "value");
      if (arg.op == SeccompCompare::masked_eq) arg.mask = field<std::uint64_t>(a, "mask");
      rule.args.push_back(arg);
    }
    f.rules.push_back(std::move(rule));
  }
  return f;
}

// Fields added after schema 1 was first published: a document without them
// (an older fleet's state) reads as the defaults.
void security_from_json(const json& j, ContainerSpec& s) {
  if (j.contains("capabilities")) {
    s.capabilities = 0;
    for (const auto& name : field<std::vector<std::string>>(j, "capabilities")) {
      auto cap = capability_from_name(name);
      if (!cap) throw Error("spec JSON: unknown capability '" + name + "'");
      s.capabilities |= capability_bit(*cap);
    }
  }
  if (j.contains("no_new_privs")) s.no_new_privs = field<bool>(j, "no_new_privs");
  if (auto it = j.find("seccomp"); it != j.end()) {
    s.seccomp_default_filter = field<bool>(*it, "default_filter");
    if (auto f = it->find("filter"); f != it->end() && !f->is_null()) s.seccomp_filter = seccomp_filter_from_json(*f);
  }
}

}  // namespace

json to_json(const ContainerSpec& s) {
  json namespaces = json::array();
  for (auto ns : s.namespaces) namespaces.push_back(std::string(namespace_name(ns)));
  json mounts = json::array();
  for (const auto& m : s.mounts)
    mounts.push_back({{"source", m.source},
                      {"target", m.target},
                      {"fstype", m.fstype},
                      {"options", m.options},
                      {"read_only", m.read_only}});
  json independent = json::array();
  for (auto m : s.independent_mounts) independent.push_back(std::string(independent_mount_name(m)));
  json cgroup = json::array();
  for (const auto& c : s.cgroup) cgroup.push_back({{"key", c.key}, {"value", c.value}});
  json bootstrap = {{"strategy", std::string(bootstrap_kind_name(s.bootstrap.kind))}};
  if (s.bootstrap.kind == BootstrapKind::tarball) {
    bootstrap["archive_path"] = s.bootstrap.archive_path;
    bootstrap["tar_options"] = s.bootstrap.tar_options;
  }
  if (s.bootstrap.kind == BootstrapKind::shell) bootstrap["code"] = s.bootstrap.code;
  if (s.bootstrap.kind == BootstrapKind::oci) bootstrap["image"] = s.bootstrap.image;
  if (s.bootstrap.kind == BootstrapKind::block) {
    bootstrap["commands"] = s.bootstrap.commands;
    bootstrap["recording_error"] = s.bootstrap.recording_error;
  }
  json capabilities = json::array();
  for (auto name : capability_names(s.capabilities)) capabilities.push_back(std::string(name));

  json out = {
      {"name", s.name},
      {"command", s.command},
      {"daemonize", s.daemonize},
      {"rootfs", s.rootfs},
      {"namespaces", namespaces},
      {"uid_map", id_map_json(s.uid_map)},
      {"gid_map", id_map_json(s.gid_map)},
      {"rootfs_owner", s.rootfs_owner ? json{{"uid", s.rootfs_owner->uid}, {"gid", s.rootfs_owner->gid}} : json()},
      {"mounts", mounts},
      {"network_etc", s.network_etc_host_root ? json{{"host_root", *s.network_etc_host_root}} : json()},
      {"independent_mounts", independent},
      {"cgroup", cgroup},
      {"bootstrap", bootstrap},
      {"environment", s.environment},
      {"workdir", s.workdir},
      {"stop_signal", s.stop_signal},
      {"capabilities", capabilities},
      {"no_new_privs", s.no_new_privs},
      {"seccomp", seccomp_json(s)},
      {"source_file", s.source_file},
  };
  // Only when set: the hash of every instance without one stays as it was.
  if (!s.user.empty()) out["user"] = s.user;
  return out;
}

json to_json(const InstanceSpec& i) {
  json out = to_json(i.container);
  out["index"] = i.index;
  out["port"] = i.port;
  return out;
}

ContainerSpec container_spec_from_json(const json& j) {
  ContainerSpec s;
  s.name = field<std::string>(j, "name");
  s.command = field<std::vector<std::string>>(j, "command");
  s.daemonize = field<bool>(j, "daemonize");
  s.rootfs = field<std::string>(j, "rootfs");
  for (const auto& name : field<std::vector<std::string>>(j, "namespaces")) {
    auto ns = namespace_from_name(name);
    if (!ns) throw Error("spec JSON: unknown namespace '" + name + "'");
    s.namespaces.push_back(*ns);
  }
  s.uid_map = id_map_from_json(j.at("uid_map"));
  s.gid_map = id_map_from_json(j.at("gid_map"));
  if (auto it = j.find("rootfs_owner"); it != j.end() && !it->is_null())
    s.rootfs_owner = Owner{field<std::uint32_t>(*it, "uid"), field<std::uint32_t>(*it, "gid")};
  for (const auto& m : field<json>(j, "mounts"))
    s.mounts.push_back({field<std::string>(m, "source"), field<std::string>(m, "target"),
                        field<std::string>(m, "fstype"), field<std::string>(m, "options"),
                        field<bool>(m, "read_only")});
  if (auto it = j.find("network_etc"); it != j.end() && !it->is_null())
    s.network_etc_host_root = field<std::string>(*it, "host_root");
  for (const auto& name : field<std::vector<std::string>>(j, "independent_mounts")) {
    auto m = independent_mount_from_name(name);
    if (!m) throw Error("spec JSON: unknown independent mount '" + name + "'");
    s.independent_mounts.push_back(*m);
  }
  for (const auto& c : field<json>(j, "cgroup"))
    s.cgroup.push_back({field<std::string>(c, "key"), field<std::string>(c, "value")});
  const json& b = field<json>(j, "bootstrap");
  auto strategy = field<std::string>(b, "strategy");
  if (strategy == "none") s.bootstrap.kind = BootstrapKind::none;
  else if (strategy == "tarball") {
    s.bootstrap.kind = BootstrapKind::tarball;
    s.bootstrap.archive_path = field<std::string>(b, "archive_path");
    s.bootstrap.tar_options = field<std::vector<std::string>>(b, "tar_options");
  } else if (strategy == "shell") {
    s.bootstrap.kind = BootstrapKind::shell;
    s.bootstrap.code = field<std::string>(b, "code");
  } else if (strategy == "oci") {
    s.bootstrap.kind = BootstrapKind::oci;
    s.bootstrap.image = field<std::string>(b, "image");
  } else if (strategy == "block") {
    s.bootstrap.kind = BootstrapKind::block;
    if (b.contains("commands")) s.bootstrap.commands = field<std::vector<std::string>>(b, "commands");
    if (b.contains("recording_error")) s.bootstrap.recording_error = field<std::string>(b, "recording_error");
  }
  else throw Error("spec JSON: unknown bootstrap strategy '" + strategy + "'");
  s.environment = field<std::vector<std::string>>(j, "environment");
  s.workdir = field<std::string>(j, "workdir");
  // Written by every version since config.user: absent in older state.
  if (auto it = j.find("user"); it != j.end() && it->is_string()) s.user = it->get<std::string>();
  s.stop_signal = field<int>(j, "stop_signal");
  s.source_file = field<std::string>(j, "source_file");
  security_from_json(j, s);
  return s;
}

InstanceSpec instance_spec_from_json(const json& j) {
  InstanceSpec i;
  i.container = container_spec_from_json(j);
  i.index = field<std::size_t>(j, "index");
  i.port = field<std::uint16_t>(j, "port");
  return i;
}

json expand_document(const std::string& fleet_name, const std::vector<InstanceSpec>& instances) {
  json items = json::array();
  for (const auto& i : instances) {
    json item = to_json(i);
    // Without a user namespace the container's root is the host's root.
    item["runs_as_host_root"] = !i.container.has_namespace(Namespace::user);
    items.push_back(std::move(item));
  }
  return {{"schema", kExpandSchemaVersion}, {"fleet", fleet_name}, {"instances", items}};
}

}  // namespace haco
