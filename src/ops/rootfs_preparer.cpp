// The rootfs preparer of haco-fleet: the rootfs engine for images, the
// definition's own bootstrap (a shell script, or its block evaluated again)
// for the rest.
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>

#include <fmt/format.h>

#include "haco/error.hpp"
#include "haco/fault_point.hpp"
#include "haco/ops.hpp"
#include "haco/rootfs.hpp"
#include "haco/shell_command.hpp"

namespace haco::ops {
namespace {

// The definition's own shell bootstrap; `cancel` stops it (its whole process
// group).
void run_shell_bootstrap(const std::string& code, const dsl::Environment& env, const std::atomic<bool>* cancel) {
  ShellOptions options;
  options.environment.emplace();
  for (const auto& [k, v] : env) options.environment->push_back(k + "=" + v);
  options.cancel = cancel;
  std::fflush(nullptr);
  ShellResult result = run_shell(code, options);
  if (result.cancelled) throw Error("the bootstrap script was interrupted");
  if (result.exit_code != 0)
    throw Error(fmt::format("the bootstrap script failed ({})",
                            result.exit_code > 128 ? "signal " + std::to_string(result.exit_code - 128)
                                                   : "exit " + std::to_string(result.exit_code)));
}

class EngineRootfs : public RootfsPreparer {
 public:
  explicit EngineRootfs(std::string data_root) : data_root_(std::move(data_root)) {}

  bool exists(const std::string& rootfs) override { return rootfs::rootfs_populated(rootfs); }

  std::vector<rootfs::PreparedRootfs> prepare_images(const std::vector<rootfs::InstanceRootfs>& images,
                                                     const rootfs::PrepareOptions& options) override {
    return rootfs::prepare_fleet(images, options);
  }

  bool remove_incomplete(const ContainerSpec& container) override {
    if (!rootfs::rootfs_marked_incomplete(data_root_, container.name) || !rootfs::rootfs_populated(container.rootfs))
      return false;
    rootfs::remove_tree(container.rootfs);
    return true;
  }

  void bootstrap(const InstanceSpec& instance, const dsl::Environment& env, const std::atomic<bool>* cancel) override {
    const auto& c = instance.container;
    // Marked, so that a tree left by a crash is not reused.
    rootfs::mark_rootfs_incomplete(data_root_, c.name);
    if (c.bootstrap.kind == BootstrapKind::shell) {
      run_shell_bootstrap(c.bootstrap.code, env, cancel);
    } else {
      dsl::Evaluator evaluator;
      evaluator.run_bootstrap_block(c.source_file, env, cancel);
    }
    if (!rootfs::rootfs_populated(c.rootfs)) throw Error("the bootstrap did not create " + c.rootfs);
    fault_point("bootstrap-ran");
    rootfs::sync_filesystems({c.rootfs});
    rootfs::mark_rootfs_complete(data_root_, c.name);
  }

 private:
  std::string data_root_;
};

}  // namespace

std::unique_ptr<RootfsPreparer> engine_rootfs(const std::string& data_root) {
  return std::make_unique<EngineRootfs>(data_root);
}

}  // namespace haco::ops
