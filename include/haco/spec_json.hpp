// JSON form of the specs: the `expand --json` document (schema 1), and the
// form in which specs travel to the supervisor and sit in the fleet state.
#pragma once

#include <nlohmann/json.hpp>

#include "haco/spec.hpp"

namespace haco {

inline constexpr int kExpandSchemaVersion = 1;

nlohmann::json to_json(const ContainerSpec& spec);
nlohmann::json to_json(const InstanceSpec& instance);
// Inverse of to_json; throws haco::Error naming the missing or mistyped field.
ContainerSpec container_spec_from_json(const nlohmann::json& j);
InstanceSpec instance_spec_from_json(const nlohmann::json& j);

// {"schema": 1, "fleet": ..., "instances": [...]}; each instance is
// to_json(InstanceSpec) plus "runs_as_host_root" (no user namespace).
nlohmann::json expand_document(const std::string& fleet_name, const std::vector<InstanceSpec>& instances);

}  // namespace haco
