#include "cli/up_options.hpp"

#include "cli/option_forms.hpp"
#include "cli/option_ranges.hpp"

namespace haco::cli {

void add_up_options(CLI::App& cmd, UpOptions& options) {
  add_expand_options(cmd, options.expand);
  cmd.add_option("--parallel", options.parallel,
                  "Spawner processes, and so concurrent starts: " + range_text(kParallelRange))
      ->check(whole_number_in(kParallelRange))
      ->capture_default_str();
  cmd.add_option("--stagger", options.stagger_ms, "Milliseconds between two starts: " + range_text(kStaggerMsRange))
      ->check(whole_number_in(kStaggerMsRange))
      ->capture_default_str();
  cmd.add_option("--restart", options.restart, "Restart policy: no, on-failure[:N], always")
      ->check(restart_policy_form())
      ->capture_default_str();
  cmd.add_option("--ready", options.ready, "Readiness: tcp (the port accepts) or http:PATH (2xx)")
      ->check(ready_form())
      ->capture_default_str();
  cmd.add_option("--timeout", options.timeout_s,
                  "Seconds to wait until every instance is ready: " + range_text(kUpTimeoutRange))
      ->check(seconds_in(kUpTimeoutRange))
      ->capture_default_str();
  cmd.add_flag("--no-wait", options.no_wait, "Return once every instance started, without readiness probes");
  cmd.add_flag("--atomic", options.atomic, "All or nothing: if one instance fails, stop the others too");
  cmd.add_option("--trace", options.trace, "Write a Chrome trace (Perfetto) of every phase to this file");
  cmd.add_option("--samples", options.samples,
                  "Write every instance's phases to this CSV file, one row each (columns in docs/images.md)");
  cmd.add_flag("--json", options.json, "Print the summary as JSON");
  cmd.add_option("--rootfs", options.rootfs_strategy,
                  "Rootfs strategy for tarball images: overlay (shared image cache) or extract (a copy each)")
      ->check(CLI::IsMember({"overlay", "extract"}))
      ->capture_default_str();
  cmd.add_option("--bootstrap", options.bootstrap,
                  "A bootstrap block of mkdir/tar/chown/mknod commands: auto (served by the rootfs engine when every "
                  "command is of that idiom) or as-written (run by /bin/sh, one command at a time)")
      ->check(CLI::IsMember({"auto", "as-written"}))
      ->capture_default_str();
  cmd.add_option("--log-max-bytes", options.log_max_bytes,
                  "Size in bytes at which an instance log is rotated: " + range_text(kLogMaxBytesRange) + " (1 TiB)")
      ->check(whole_number_in(kLogMaxBytesRange))
      ->capture_default_str();
  cmd.add_flag("--foreground", options.foreground,
                "Stay in the foreground with the supervisor as a child, for a systemd unit (Type=notify, "
                "Delegate=yes: READY=1 once every instance is ready or failed) or another engine; SIGTERM or "
                "Ctrl-C then stops the fleet like `down` without --purge");
  cmd.add_flag("--allow-host-root", options.allow_host_root,
                "Accept instances without a user namespace, whose root is the host's root (warned on stderr)");
  cmd.add_flag("--slurm-slice", options.slurm_slice,
               "Run as one task of a Slurm job (`slurm submit` makes such jobs): take this task's slice of --ports "
               "(SLURM_PROCID of SLURM_NTASKS), as the fleet NAME-jJOB-sTASK with its state under ROOT/slurm/JOB.TASK, "
               "its cgroups inside the task's step, in the foreground (implies --foreground) and taken down with --purge "
               "when the task ends");
}

}  // namespace haco::cli
