// The haconiwa DSL on embedded mruby: a .haco file evaluated into a
// ContainerSpec. One Evaluator keeps one mruby state with the prelude loaded,
// so evaluating the same definition for many ports is cheap.
#pragma once

#include <atomic>
#include <chrono>
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
  // exits non-zero is reported in the returned log, like haconiwa did. When
  // `cancel` becomes true, the running command's process group is stopped
  // (SIGINT, then SIGKILL), no further command runs and this throws.
  std::string run_bootstrap_block(const std::string& path, const Environment& env,
                                  const std::atomic<bool>* cancel = nullptr);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// How long one evaluation of a definition may take by default (expand and up
// --eval-timeout), and the range a user may choose.
inline constexpr std::chrono::milliseconds kDefaultEvalTimeout{5000};
inline constexpr std::chrono::milliseconds kMinEvalTimeout{100};
inline constexpr std::chrono::milliseconds kMaxEvalTimeout{3600 * 1000};

// Evaluates definitions the way `expand` (and so `up`) does: in a child
// process forked on first use, holding an Evaluator, that
//   - can run no command, open no file, make no socket and start no process
//     whatever the definition calls: a seccomp filter lets it only compute,
//     look at paths (stat) and talk to this process over its pipes, every
//     other system call fails with EPERM;
//   - is killed when one evaluation takes longer than `time_limit` (mruby
//     cannot be interrupted from inside): haco::InputError naming the file;
//   - writes what the definition prints (puts, p) to stderr, never into the
//     output of `expand --json`.
// The process that uses it must not have other threads when it forks (the
// child runs mruby, which allocates).
class IsolatedEvaluator {
 public:
  explicit IsolatedEvaluator(std::chrono::milliseconds time_limit = kDefaultEvalTimeout);
  ~IsolatedEvaluator();  // ends and reaps the child
  IsolatedEvaluator(const IsolatedEvaluator&) = delete;
  IsolatedEvaluator& operator=(const IsolatedEvaluator&) = delete;

  // As Evaluator::evaluate_file, in the child. The file is read here.
  ContainerSpec evaluate_file(const std::string& path, const Environment& env);

 private:
  struct Child;
  std::chrono::milliseconds time_limit_;
  std::unique_ptr<Child> child_;
};

}  // namespace haco::dsl
