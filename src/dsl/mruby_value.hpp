// Conversions out of mruby: plain Ruby values to JSON, exceptions to a
// message that names the definition's file and line.
#pragma once

#include <mruby.h>

#include <nlohmann/json.hpp>
#include <string>

namespace haco::dsl {

// nil, true/false, Integer, Float, String, Symbol, Array and Hash (string or
// symbol keys); anything else is an error naming its class.
nlohmann::json to_json_value(mrb_state* mrb, mrb_value value);

// "FILE:LINE: MESSAGE" for the first backtrace line in `file_name` (the
// definition), else "FILE: MESSAGE". Unknown methods are named as such.
std::string describe_exception(mrb_state* mrb, mrb_value exc, const std::string& file_name);

}  // namespace haco::dsl
