// The C function behind config.cgroup[key] = value in the prelude: the key
// and the value are checked against the cgroup key table while the
// definition runs, so that an error names its line.
#pragma once

#include <mruby.h>

namespace haco::dsl {

// Haconiwa.__cgroup_problem(key, value) -> nil, or why the setting is
//   refused (unknown key, or the value outside what the key accepts)
void define_cgroup_builtins(mrb_state* mrb, RClass* haconiwa);

}  // namespace haco::dsl
