// The commands a definition's bootstrap runs (`b.code`, backticks, system):
// `/bin/sh -c CODE`, in a process group of its own with stdin from
// /dev/null, so that stopping it reaches every process it started, not only
// the shell.
#pragma once

#include <atomic>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace haco {

struct ShellOptions {
  // KEY=VALUE entries; nullopt: this process's environment.
  std::optional<std::vector<std::string>> environment;
  // Whether stdout is captured (returned) or inherited.
  bool capture_stdout = false;
  // Polled while the command runs: once true, the process group gets SIGINT
  // (as from a terminal's Ctrl-C), then SIGKILL after `stop_grace`.
  const std::atomic<bool>* cancel = nullptr;
  std::chrono::milliseconds stop_grace{2000};
};

struct ShellResult {
  int exit_code = 0;       // the shell's exit status; 128 + N when killed by signal N
  std::string output;      // stdout, when captured
  bool cancelled = false;  // stopped because `cancel` became true
};

// Runs `code`. Throws haco::Error when the shell cannot be started; a
// command that fails is reported in exit_code.
ShellResult run_shell(const std::string& code, const ShellOptions& options);

}  // namespace haco
