#include "cli/rootfs_messages.hpp"

namespace haco::cli {
namespace {

class ReportingRootfs : public ops::RootfsPreparer {
 public:
  ReportingRootfs(std::unique_ptr<ops::RootfsPreparer> engine, ProgressSink& sink)
      : engine_(std::move(engine)), sink_(sink) {}

  bool exists(const std::string& rootfs) override { return engine_->exists(rootfs); }

  std::vector<rootfs::PreparedRootfs> prepare_images(const std::vector<rootfs::InstanceRootfs>& images,
                                                     const rootfs::PrepareOptions& options) override {
    rootfs::PrepareOptions reporting = options;
    if (!reporting.progress)
      reporting.progress = [this](const std::string& instance, std::string_view line) {
        if (instance.empty()) sink_.say(LogLevel::info, "haco-fleet: " + std::string(line));
      };
    if (!reporting.warning)
      reporting.warning = [this](std::string_view line) {
        sink_.say(LogLevel::warn, "haco-fleet: " + std::string(line));
      };
    return engine_->prepare_images(images, reporting);
  }

  bool remove_incomplete(const ContainerSpec& container) override { return engine_->remove_incomplete(container); }

  void bootstrap(const InstanceSpec& instance, const dsl::Environment& env, const std::atomic<bool>* cancel) override {
    engine_->bootstrap(instance, env, cancel);
  }

 private:
  std::unique_ptr<ops::RootfsPreparer> engine_;
  ProgressSink& sink_;
};

}  // namespace

std::unique_ptr<ops::RootfsPreparer> rootfs_reporting_to(std::unique_ptr<ops::RootfsPreparer> engine,
                                                         ProgressSink& sink) {
  return std::make_unique<ReportingRootfs>(std::move(engine), sink);
}

}  // namespace haco::cli
