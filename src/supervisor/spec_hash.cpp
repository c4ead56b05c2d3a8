// The hash that tells a running instance's definition from a changed one.
#include <fmt/format.h>

#include "haco/spec_json.hpp"
#include "haco/state.hpp"

namespace haco::state {

std::string spec_hash(const InstanceSpec& instance) {
  // The index is left out: it depends on the port list given to `up`, not on
  // what the instance is. nlohmann's objects are sorted, so dump() is canonical.
  nlohmann::json canonical = {{"container", to_json(instance.container)}, {"port", instance.port}};
  // What a bootstrap block issued depends on the host's files when it was
  // evaluated (its rootfs existed or not), not on the definition.
  auto& bootstrap = canonical["container"]["bootstrap"];
  bootstrap.erase("commands");
  bootstrap.erase("recording_error");
  std::uint64_t hash = 0xcbf29ce484222325ull;
  for (unsigned char c : canonical.dump()) {
    hash ^= c;
    hash *= 0x100000001b3ull;
  }
  return fmt::format("{:016x}", hash);
}

}  // namespace haco::state
