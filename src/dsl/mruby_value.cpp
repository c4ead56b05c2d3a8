#include "dsl/mruby_value.hpp"

#include <mruby/array.h>
#include <mruby/hash.h>
#include <mruby/string.h>

#include "haco/error.hpp"

namespace haco::dsl {
namespace {

std::string to_std_string(mrb_state* mrb, mrb_value value) {
  mrb_value str = mrb_obj_as_string(mrb, value);
  return std::string(RSTRING_PTR(str), static_cast<size_t>(RSTRING_LEN(str)));
}

// The first line of the backtrace that lies in the definition file.
std::string location_in(mrb_state* mrb, mrb_value exc, const std::string& file_name) {
  mrb_value backtrace = mrb_funcall(mrb, exc, "backtrace", 0);
  if (mrb->exc) mrb->exc = nullptr;
  if (!mrb_array_p(backtrace)) return {};
  std::string prefix = file_name + ":";
  for (mrb_int i = 0; i < RARRAY_LEN(backtrace); ++i) {
    mrb_value entry = mrb_ary_ref(mrb, backtrace, i);
    if (!mrb_string_p(entry)) continue;
    std::string line = to_std_string(mrb, entry);
    if (line.rfind(prefix, 0) != 0) continue;
    // "file:12:in method" -> "file:12"
    auto colon = line.find(':', prefix.size());
    return colon == std::string::npos ? line : line.substr(0, colon);
  }
  return {};
}

}  // namespace

nlohmann::json to_json_value(mrb_state* mrb, mrb_value value) {
  if (mrb_nil_p(value)) return nullptr;
  switch (mrb_type(value)) {
    case MRB_TT_TRUE: return true;
    case MRB_TT_FALSE: return false;
    case MRB_TT_INTEGER: return static_cast<long long>(mrb_integer(value));
    case MRB_TT_FLOAT: return mrb_float(value);
    case MRB_TT_STRING: return to_std_string(mrb, value);
    case MRB_TT_SYMBOL: return std::string(mrb_sym_name(mrb, mrb_symbol(value)));
    case MRB_TT_ARRAY: {
      nlohmann::json out = nlohmann::json::array();
      for (mrb_int i = 0; i < RARRAY_LEN(value); ++i) out.push_back(to_json_value(mrb, mrb_ary_ref(mrb, value, i)));
      return out;
    }
    case MRB_TT_HASH: {
      nlohmann::json out = nlohmann::json::object();
      mrb_value keys = mrb_hash_keys(mrb, value);
      for (mrb_int i = 0; i < RARRAY_LEN(keys); ++i) {
        mrb_value key = mrb_ary_ref(mrb, keys, i);
        std::string name = mrb_symbol_p(key) ? mrb_sym_name(mrb, mrb_symbol(key)) : to_std_string(mrb, key);
        out[name] = to_json_value(mrb, mrb_hash_get(mrb, value, key));
      }
      return out;
    }
    default:
      break;
  }
  // Pathname and other objects that stand for a string.
  if (mrb_respond_to(mrb, value, mrb_intern_lit(mrb, "to_str"))) return to_std_string(mrb, value);
  throw InputError(std::string("a definition value of class ") + mrb_obj_classname(mrb, value) +
                   " cannot be used here");
}

std::string describe_exception(mrb_state* mrb, mrb_value exc, const std::string& file_name) {
  std::string class_name = mrb_obj_classname(mrb, exc);
  std::string message = to_std_string(mrb, mrb_funcall(mrb, exc, "message", 0));
  if (mrb->exc) mrb->exc = nullptr;
  std::string where = location_in(mrb, exc, file_name);

  if (class_name == "NoMethodError") {
    mrb_value name = mrb_funcall(mrb, exc, "name", 0);
    if (mrb->exc) mrb->exc = nullptr;
    if (mrb_symbol_p(name))
      message = "unknown method '" + std::string(mrb_sym_name(mrb, mrb_symbol(name))) +
                "' (haco-fleet's haconiwa DSL has no such call)";
  } else if (class_name == "SyntaxError") {
    // mruby reports "line N:C: ..." without the file.
    if (message.rfind("line ", 0) == 0) {
      auto colon = message.find(':');
      where = file_name + ":" + message.substr(5, colon - 5);
      message = message.substr(message.find(':', colon + 1) == std::string::npos ? colon + 1 : message.find(':', colon + 1) + 1);
      while (!message.empty() && message.front() == ' ') message.erase(0, 1);
    }
    message = "syntax error: " + message;
  } else if (class_name != "ArgumentError" && class_name != "HacoDefinitionError" && class_name != "RuntimeError") {
    message += " (" + class_name + ")";
  }
  return (where.empty() ? file_name : where) + ": " + message;
}

}  // namespace haco::dsl
