// haco-rootfs: the rootfs engine on its own, for benchmarks and for checking
// trees by hand.
//   haco-rootfs extract ARCHIVE DEST... [--base UID] [--range N] [--writers W] [--chown-pass] [--plain-files]
//   haco-rootfs prepare --archive A --dir D --count N [--strategy extract|overlay]
//               [--data-root R] [--parallel P] [--base UID] [--range N] --state FILE
//   haco-rootfs teardown --state FILE [--purge]
//   haco-rootfs remove PATH...
//   haco-rootfs digest FILE
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <csignal>
#include <fstream>
#include <iostream>

#include "haco/error.hpp"
#include "haco/layout.hpp"
#include "haco/rootfs.hpp"

namespace {

using namespace haco;
using namespace haco::rootfs;
using Clock = std::chrono::steady_clock;

std::atomic<bool> interrupted{false};

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::vector<IdMapping> range_map(std::uint32_t base, std::uint32_t range) {
  if (range == 0) return {};
  return {IdMapping{0, base, range}};
}

nlohmann::json to_json(const PreparedRootfs& p) {
  return {{"instance", p.instance},   {"rootfs", p.rootfs},
          {"strategy", std::string(strategy_name(p.strategy))},
          {"upper_dir", p.upper_dir}, {"work_dir", p.work_dir},
          {"reused", p.reused},       {"elapsed_ns", p.elapsed.count()}};
}

PreparedRootfs from_json(const nlohmann::json& j) {
  PreparedRootfs p;
  p.instance = j.at("instance");
  p.rootfs = j.at("rootfs");
  p.strategy = j.at("strategy") == "overlay" ? Strategy::overlay : Strategy::extract;
  p.upper_dir = j.at("upper_dir");
  p.work_dir = j.at("work_dir");
  p.reused = j.at("reused");
  return p;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"haco-fleet rootfs engine"};
  app.require_subcommand(1);
  std::uint32_t base = 100000, range = 65536;
  unsigned writers = 0;
  bool chown_pass = false, plain_files = false;
  std::string archive, dir, data_root = layout::kDefaultDataRoot, strategy = "extract", state;
  unsigned count = 1, parallel = 0;
  bool purge = false;
  std::vector<std::string> paths;

  auto* extract = app.add_subcommand("extract", "extract an archive into one or more new trees");
  extract->add_option("archive", archive)->required();
  extract->add_option("dest", paths)->required();
  extract->add_option("--base", base, "host uid/gid of the first tree's root");
  extract->add_option("--range", range, "ids per tree (0: no shift)");
  extract->add_option("--writers", writers);
  extract->add_flag("--chown-pass", chown_pass, "create as root, chown in the final pass");
  extract->add_flag("--plain-files", plain_files, "write regular files with plain calls, not io_uring");

  auto* prepare = app.add_subcommand("prepare", "prepare N instances like `up` would");
  prepare->add_option("--archive", archive)->required();
  prepare->add_option("--dir", dir, "rootfs of instance i is DIR/i")->required();
  prepare->add_option("--count", count);
  prepare->add_option("--strategy", strategy)->check(CLI::IsMember({"extract", "overlay"}));
  prepare->add_option("--data-root", data_root);
  prepare->add_option("--parallel", parallel);
  prepare->add_option("--base", base);
  prepare->add_option("--range", range);
  prepare->add_option("--state", state, "write the prepared instances here (for teardown)")->required();

  auto* teardown_cmd = app.add_subcommand("teardown", "unmount (and with --purge remove) prepared instances");
  teardown_cmd->add_option("--state", state)->required();
  teardown_cmd->add_flag("--purge", purge);
  teardown_cmd->add_option("--parallel", parallel);

  auto* remove = app.add_subcommand("remove", "remove trees (never crossing mounts)");
  remove->add_option("path", paths)->required();
  remove->add_option("--parallel", parallel);

  auto* digest = app.add_subcommand("digest", "sha256 of a file");
  digest->add_option("file", archive)->required();

  CLI11_PARSE(app, argc, argv);
  std::signal(SIGINT, [](int) { interrupted = true; });

  try {
    auto start = Clock::now();
    if (*extract) {
      std::vector<ExtractTarget> targets;
      for (std::size_t i = 0; i < paths.size(); ++i) {
        auto b = base + static_cast<std::uint32_t>(i) * range;
        targets.push_back({paths[i], IdShift(range_map(b, range), range_map(b, range), OwnershipPolicy::shift)});
      }
      ExtractStats stats = extract_archive(archive, targets, {&interrupted, writers, chown_pass, plain_files});
      for (const std::string& w : stats.warnings) fmt::print(stderr, "warning: {}\n", w);
      fmt::print("{{\"trees\": {}, \"entries\": {}, \"bytes\": {}, \"seconds\": {:.3f}}}\n", targets.size(),
                 stats.entries, stats.bytes, seconds_since(start));
    } else if (*prepare) {
      std::vector<InstanceRootfs> instances;
      for (unsigned i = 0; i < count; ++i) {
        auto b = base + i * range;
        instances.push_back({fmt::format("haco-bench-{}", i), fmt::format("{}/{}", dir, i), archive,
                             range_map(b, range), range_map(b, range), OwnershipPolicy::shift});
      }
      PrepareOptions opt;
      opt.strategy = strategy == "overlay" ? Strategy::overlay : Strategy::extract;
      opt.data_root = data_root;
      opt.parallel = parallel;
      opt.cancel = &interrupted;
      opt.progress = [](const std::string& instance, std::string_view event) {
        if (instance.empty()) fmt::print(stderr, "{}\n", event);
      };
      auto prepared = prepare_fleet(instances, opt);
      double secs = seconds_since(start);
      nlohmann::json out = nlohmann::json::array();
      for (const auto& p : prepared) out.push_back(to_json(p));
      std::ofstream(state) << out.dump(1) << "\n";
      fmt::print("{{\"instances\": {}, \"strategy\": \"{}\", \"seconds\": {:.3f}}}\n", prepared.size(),
                 prepared.empty() ? strategy : std::string(strategy_name(prepared[0].strategy)), secs);
    } else if (*teardown_cmd) {
      std::ifstream in(state);
      if (!in) throw Error::from_errno("open", state, errno);
      nlohmann::json j = nlohmann::json::parse(in);
      std::vector<PreparedRootfs> prepared;
      for (const auto& item : j) prepared.push_back(from_json(item));
      teardown_fleet(prepared, purge, parallel);
      fmt::print("{{\"instances\": {}, \"purge\": {}, \"seconds\": {:.3f}}}\n", j.size(), purge, seconds_since(start));
    } else if (*remove) {
      std::vector<PreparedRootfs> trees;
      for (const std::string& p : paths) trees.push_back(PreparedRootfs{p, p, Strategy::extract, {}, {}, false, {}});
      teardown_fleet(trees, true, parallel);
      fmt::print("{{\"trees\": {}, \"seconds\": {:.3f}}}\n", paths.size(), seconds_since(start));
    } else if (*digest) {
      fmt::print("{}\n", file_digest(archive));
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "haco-rootfs: {}\n", e.what());
    return 1;
  }
  return 0;
}
