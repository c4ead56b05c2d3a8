// Runs another program (systemctl, sbatch, scontrol...) to its end with its
// output captured: stdin from /dev/null, looked up in PATH.
#pragma once

#include <string>
#include <vector>

namespace haco {

struct ProgramResult {
  int status = -1;     // exit status, or 128 + signal
  std::string output;  // stdout (and stderr with merge_stderr), trailing newlines removed
  std::string errors;  // stderr when not merged, trailing newlines removed
};

// Throws haco::Error when the program cannot be started (not found...); a
// program that fails is reported in `status`.
ProgramResult run_program(const std::vector<std::string>& argv, bool merge_stderr = true);

}  // namespace haco
