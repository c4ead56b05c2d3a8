#include "dsl/security_builtins.hpp"

#include <seccomp.h>

#include <cstdlib>
#include <memory>
#include <string>

#include <mruby/array.h>
#include <mruby/string.h>

#include "haco/capabilities.hpp"

namespace haco::dsl {
namespace {

mrb_value name_list(mrb_state* mrb, CapabilitySet set) {
  mrb_value list = mrb_ary_new(mrb);
  for (auto name : capability_names(set))
    mrb_ary_push(mrb, list, mrb_str_new(mrb, name.data(), static_cast<mrb_int>(name.size())));
  return list;
}

bool all_digits(const std::string& text) {
  if (text.empty() || text.size() > 3) return false;
  for (char c : text)
    if (c < '0' || c > '9') return false;
  return true;
}

mrb_value capability_name_of(mrb_state* mrb, mrb_value) {
  const char* text = nullptr;
  mrb_get_args(mrb, "z", &text);
  std::string given(text);
  std::optional<int> cap;
  if (all_digits(given)) {
    int number = std::stoi(given);
    if (number <= kLastKnownCapability) cap = number;
  } else {
    cap = capability_from_name(given);
  }
  if (!cap) return mrb_nil_value();
  auto name = capability_name(*cap);
  return mrb_str_new(mrb, name.data(), static_cast<mrb_int>(name.size()));
}

mrb_value default_capability_names(mrb_state* mrb, mrb_value) { return name_list(mrb, default_capabilities()); }

mrb_value all_capability_names(mrb_state* mrb, mrb_value) { return name_list(mrb, all_known_capabilities()); }

// A name libseccomp resolves for this machine's ABI (a call that exists only
// for 32-bit programs, such as "stime", resolves too); a number is turned
// into the native ABI's name for it.
mrb_value syscall_name_of(mrb_state* mrb, mrb_value) {
  mrb_value given;
  mrb_get_args(mrb, "o", &given);
  if (mrb_integer_p(given)) {
    mrb_int number = mrb_integer(given);
    if (number < 0 || number > 0xffff) return mrb_nil_value();
    std::unique_ptr<char, decltype(&std::free)> name(
        ::seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, static_cast<int>(number)), &std::free);
    return name ? mrb_str_new_cstr(mrb, name.get()) : mrb_nil_value();
  }
  if (!mrb_string_p(given)) return mrb_nil_value();
  std::string name(RSTRING_PTR(given), static_cast<std::size_t>(RSTRING_LEN(given)));
  if (name.empty() || name.find('\0') != std::string::npos) return mrb_nil_value();
  if (::seccomp_syscall_resolve_name(name.c_str()) == __NR_SCMP_ERROR) return mrb_nil_value();
  return mrb_str_new(mrb, name.data(), static_cast<mrb_int>(name.size()));
}

}  // namespace

void define_security_builtins(mrb_state* mrb, RClass* haconiwa) {
  mrb_define_module_function(mrb, haconiwa, "__capability_name", capability_name_of, MRB_ARGS_REQ(1));
  mrb_define_module_function(mrb, haconiwa, "__default_capabilities", default_capability_names, MRB_ARGS_NONE());
  mrb_define_module_function(mrb, haconiwa, "__all_capabilities", all_capability_names, MRB_ARGS_NONE());
  mrb_define_module_function(mrb, haconiwa, "__syscall_name", syscall_name_of, MRB_ARGS_REQ(1));
}

}  // namespace haco::dsl
