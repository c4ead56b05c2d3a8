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
    if (!reporting.progress) {
      reporting.progress = [this](const std::string& instance, std::string_view line) {
        if (instance.empty()) sink_.say(level_of_rootfs_line(line), "haco-fleet: " + std::string(line));
      };
    }
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

bool starts_with(std::string_view text, std::string_view prefix) { return text.substr(0, prefix.size()) == prefix; }

bool ends_with(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

}  // namespace

std::unique_ptr<ops::RootfsPreparer> rootfs_reporting_to(std::unique_ptr<ops::RootfsPreparer> engine,
                                                         ProgressSink& sink) {
  return std::make_unique<ReportingRootfs>(std::move(engine), sink);
}

LogLevel level_of_rootfs_line(std::string_view line) {
  if (starts_with(line, "image ") || starts_with(line, "overlay: an idmapped layer can only shift ids") ||
      ends_with(line, ": rootfs left incomplete by an interrupted run: made again"))
    return LogLevel::info;
  return LogLevel::warn;
}

}  // namespace haco::cli
