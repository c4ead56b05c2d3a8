// Runs another program (systemctl, sbatch, scontrol...) to its end with its
// output captured: stdin from /dev/null, looked up in PATH.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "haco/unique_fd.hpp"

namespace haco {

struct ProgramResult {
  int status = -1;     // exit status, or 128 + signal
  std::string output;  // stdout (and stderr with merge_stderr), trailing newlines removed
  std::string errors;  // stderr when not merged, trailing newlines removed
};

// Throws haco::Error when the program cannot be started (not found...); a
// program that fails is reported in `status`.
ProgramResult run_program(const std::vector<std::string>& argv, bool merge_stderr = true);

// A started program whose stdout (and stderr, merged or on its own pipe) the
// caller reads; the caller waits for `pid`.
struct SpawnedProgram {
  pid_t pid = -1;
  UniqueFd output;  // stdout, with stderr when merged
  UniqueFd errors;  // stderr when not merged
};
SpawnedProgram spawn_program(const std::vector<std::string>& argv, bool merge_stderr = true);

// This program's own path (/proc/self/exe), to run it again.
std::string own_program_path();

}  // namespace haco
