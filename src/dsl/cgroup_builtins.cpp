#include "dsl/cgroup_builtins.hpp"

#include <optional>
#include <string>

#include <mruby/string.h>

#include "haco/cgroup.hpp"

namespace haco::dsl {
namespace {

// The sentence is copied into a Ruby string before this returns: nothing
// of C++ is alive if the caller raises.
mrb_value cgroup_problem(mrb_state* mrb, mrb_value) {
  mrb_value key, value;
  mrb_get_args(mrb, "SS", &key, &value);
  std::optional<std::string> problem =
      cgroups::setting_problem({std::string(RSTRING_PTR(key), static_cast<std::size_t>(RSTRING_LEN(key))),
                                std::string(RSTRING_PTR(value), static_cast<std::size_t>(RSTRING_LEN(value)))});
  if (!problem) return mrb_nil_value();
  return mrb_str_new(mrb, problem->data(), static_cast<mrb_int>(problem->size()));
}

}  // namespace

void define_cgroup_builtins(mrb_state* mrb, RClass* haconiwa) {
  mrb_define_module_function(mrb, haconiwa, "__cgroup_problem", cgroup_problem, MRB_ARGS_REQ(2));
}

}  // namespace haco::dsl
