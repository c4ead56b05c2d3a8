#include <algorithm>
#include <map>

#include "haco/cgroup.hpp"
#include "haco/error.hpp"
#include "haco/fleet.hpp"
#include "haco/oci.hpp"

namespace haco::fleet {

dsl::Environment port_environment(dsl::Environment base, std::uint16_t port,
                                  const std::vector<std::string>& port_env_names) {
  const std::string value = std::to_string(port);
  base["PORT"] = value;
  base["APACHE_PORT"] = value;
  for (const auto& name : port_env_names) base[name] = value;
  return base;
}

dsl::Environment port_environment(const ExpandOptions& options, std::uint16_t port) {
  return port_environment(options.base_environment, port, options.port_env_names);
}

std::vector<InstanceSpec> expand(const std::string& definition_path, const std::vector<std::uint16_t>& ports,
                                 const ExpandOptions& options) {
  if (ports.empty()) throw InputError("no ports to expand");
  // Each port's evaluation in a child that can run nothing, under the time limit.
  dsl::IsolatedEvaluator evaluator(options.eval_timeout);
  std::vector<InstanceSpec> instances;
  instances.reserve(ports.size());
  // Each image's config, read once however many ports name it.
  std::map<std::string, oci::ImageConfig> image_configs;
  for (std::uint16_t port : ports) {
    std::string value = std::to_string(port);
    const dsl::Environment env = port_environment(options, port);
    InstanceSpec instance;
    instance.index = instances.size();
    instance.port = port;
    instance.container = with_context("port " + value,
                                      [&] { return evaluator.evaluate_file(definition_path, env); });
    ContainerSpec& c = instance.container;
    if (c.bootstrap.kind == BootstrapKind::oci) {
      auto config = image_configs.find(c.bootstrap.image);
      if (config == image_configs.end())
        config = image_configs
                     .emplace(c.bootstrap.image, with_context("port " + value + ": " + definition_path,
                                                              [&] { return oci::read_image(c.bootstrap.image).config; }))
                     .first;
      with_context("port " + value, [&] { oci::apply_image_config(c, config->second); });
    } else if (c.workdir.empty()) {
      c.workdir = "/";
    }
    auto& cgroup = instance.container.cgroup;
    bool sets_pids = std::any_of(cgroup.begin(), cgroup.end(), [](const CgroupSetting& s) { return s.key == "pids.max"; });
    if (!sets_pids && !options.default_pids_max.empty()) cgroup.push_back({"pids.max", options.default_pids_max});
    with_context("port " + value + ": " + definition_path, [&] { cgroups::validate_settings(cgroup); });
    instances.push_back(std::move(instance));
  }
  HostIds host = read_host_ids();
  host.reserved_uid_ranges.insert(host.reserved_uid_ranges.end(), options.reserved_uid_ranges.begin(),
                                  options.reserved_uid_ranges.end());
  host.reserved_gid_ranges.insert(host.reserved_gid_ranges.end(), options.reserved_gid_ranges.begin(),
                                  options.reserved_gid_ranges.end());
  validate_fleet(instances, host, options.allow_shared_rootfs);
  return instances;
}

std::string default_fleet_name(const std::string& definition_path) {
  std::string name = definition_path;
  if (auto slash = name.rfind('/'); slash != std::string::npos) name = name.substr(slash + 1);
  if (name.size() > 5 && name.compare(name.size() - 5, 5, ".haco") == 0) name.resize(name.size() - 5);
  return name;
}

}  // namespace haco::fleet
