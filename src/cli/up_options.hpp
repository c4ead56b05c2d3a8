// The options of `up`, shared with `slurm submit`, which checks the `up`
// options it passes to every task of its job.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>

#include "cli/expand_options.hpp"

namespace haco::cli {

struct UpOptions {
  ExpandCommandOptions expand;
  unsigned parallel = 4;
  unsigned stagger_ms = 0;
  std::string restart = "no";
  std::string ready = "tcp";
  double timeout_s = 60;
  bool no_wait = false;
  bool atomic = false;
  bool json = false;
  std::string trace;
  std::string samples;
  std::string rootfs_strategy = "overlay";
  std::string bootstrap = "auto";
  std::uint64_t log_max_bytes = 16u << 20;
  bool foreground = false;
  bool allow_host_root = false;
  bool slurm_slice = false;
};

void add_up_options(CLI::App& cmd, UpOptions& options);

}  // namespace haco::cli
