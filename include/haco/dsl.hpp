// The haconiwa DSL on embedded mruby: a .haco file evaluated into a
// ContainerSpec. One Evaluator keeps one mruby state with the prelude loaded,
// so evaluating the same definition for many ports is cheap.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "haco/spec.hpp"

namespace haco::dsl {

// The environment a definition sees as ENV.
using Environment = std::map<std::string, std::string>;

// The process environment (environ) as an Environment.
Environment process_environment();

class Evaluator {
 public:
  Evaluator();
  ~Evaluator();
  Evaluator(const Evaluator&) = delete;
  Evaluator& operator=(const Evaluator&) = delete;

  // Evaluates `source` (the text of `file_name`) with `env` as ENV. A block
  // given to config.bootstrap that runs commands is stored, not run. Throws
  // haco::Error naming the file, the line and the method or message.
  ContainerSpec evaluate(const std::string& file_name, const std::string& source, const Environment& env);
  // Reads the file, then evaluates it.
  ContainerSpec evaluate_file(const std::string& path, const Environment& env);

  // Evaluates the file again with `env` and runs its config.bootstrap block
  // for real (backtick commands through /bin/sh), as haconiwa did when it
  // prepared a rootfs. Throws when a command fails to start; a command that
  // exits non-zero is reported in the returned log, like haconiwa did.
  std::string run_bootstrap_block(const std::string& path, const Environment& env);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace haco::dsl
