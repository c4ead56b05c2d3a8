// Extraction throughput of the rootfs engine: one synthetic image (a few
// thousand files in a directory tree, gzip) written into 1..N trees at once,
// with ownership through io_uring personalities or a chown pass, regular
// files through io_uring or with plain calls, against
// `tar xzf` + `chown -R` per tree for reference. Trees are removed outside
// the timed region. They are written under $HACO_BENCH_DIR (default
// /dev/shm): on tmpfs the numbers are the CPU cost of each way, free of the
// disk (removing trees from a disk mounted with `discard` takes far longer
// than writing them).
#include <archive.h>
#include <archive_entry.h>
#include <benchmark/benchmark.h>
#include <fmt/format.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <string>
#include <vector>

#include "haco/error.hpp"
#include "haco/rootfs.hpp"

namespace {

using namespace haco::rootfs;

constexpr int kDirs = 100;
constexpr int kFilesPerDir = 40;
constexpr std::size_t kFileSize = 8192;

// The image, written once per process in a temporary directory.
struct Image {
  std::string dir;
  std::string archive_path;
  std::uint64_t bytes = 0;
  std::uint64_t entries = 0;

  Image() {
    const char* base = getenv("HACO_BENCH_DIR");
    std::string tmpl = std::string(base ? base : "/dev/shm") + "/haco-bench-extract-XXXXXX";
    if (!mkdtemp(tmpl.data())) throw haco::Error::from_errno("mkdtemp", tmpl, errno);
    dir = tmpl;
    archive_path = dir + "/image.tar.gz";
    archive* a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    archive_write_add_filter_gzip(a);
    archive_write_open_filename(a, archive_path.c_str());
    std::string data(kFileSize, 'x');
    for (int d = 0; d < kDirs; ++d) {
      add(a, fmt::format("usr/share/d{}", d), AE_IFDIR, 0755, {});
      for (int f = 0; f < kFilesPerDir; ++f) {
        data[0] = static_cast<char>(f);
        add(a, fmt::format("usr/share/d{}/f{}", d, f), AE_IFREG, f % 7 ? 0644 : 04755, data);
        if (f % 10 == 0) add(a, fmt::format("usr/share/d{}/l{}", d, f), AE_IFLNK, 0777, {}, fmt::format("f{}", f));
      }
    }
    archive_write_close(a);
    archive_write_free(a);
  }
  ~Image() { remove_tree(dir); }

  void add(archive* a, const std::string& path, unsigned type, unsigned mode, const std::string& data,
           const std::string& symlink = {}) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, path.c_str());
    archive_entry_set_filetype(e, type);
    archive_entry_set_perm(e, mode);
    archive_entry_set_uid(e, path.size() % 3 == 0 ? 33 : 0);
    archive_entry_set_gid(e, path.size() % 3 == 0 ? 33 : 0);
    archive_entry_set_mtime(e, 1600000000, 0);
    archive_entry_set_size(e, static_cast<la_int64_t>(data.size()));
    if (!symlink.empty()) archive_entry_set_symlink(e, symlink.c_str());
    archive_write_header(a, e);
    if (!data.empty()) archive_write_data(a, data.data(), data.size());
    archive_entry_free(e);
    bytes += data.size();
    ++entries;
  }
};

const Image& image() {
  static Image img;
  return img;
}

std::vector<ExtractTarget> targets(int n) {
  std::vector<ExtractTarget> t;
  for (int i = 0; i < n; ++i) {
    std::uint32_t base = 1000000 + static_cast<std::uint32_t>(i) * 65536;
    t.push_back({fmt::format("{}/tree{}", image().dir, i),
                 IdShift({{0, base, 65536}}, {{0, base, 65536}}, OwnershipPolicy::shift)});
  }
  return t;
}

void report(benchmark::State& state, int trees) {
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * image().bytes * trees));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * image().entries * trees));
}

void extract(benchmark::State& state, ExtractOptions options) {
  const int n = static_cast<int>(state.range(0));
  auto t = targets(n);
  for (auto _ : state) {
    extract_archive(image().archive_path, t, options);
    state.PauseTiming();
    for (const auto& target : t) remove_tree(target.rootfs);
    state.ResumeTiming();
  }
  report(state, n);
}

void BM_ExtractPersonalities(benchmark::State& state) { extract(state, {}); }
void BM_ExtractChownPass(benchmark::State& state) { extract(state, {.chown_pass = true}); }
// The fallback where io_uring's release of files cannot be checked.
void BM_ExtractPlainFiles(benchmark::State& state) { extract(state, {.plain_files = true}); }

// The seed's way, for reference: per tree `tar xzf` then `chown -R`.
void BM_TarThenChown(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  auto t = targets(n);
  for (auto _ : state) {
    for (int i = 0; i < n; ++i) {
      std::string cmd = fmt::format("mkdir -p {0} && tar xzf {1} -C {0} && chown -R {2}:{2} {0}", t[i].rootfs,
                                    image().archive_path, 1000000 + i * 65536);
      if (std::system(cmd.c_str()) != 0) state.SkipWithError("tar or chown failed");
    }
    state.PauseTiming();
    for (const auto& target : t) remove_tree(target.rootfs);
    state.ResumeTiming();
  }
  report(state, n);
}

BENCHMARK(BM_ExtractPersonalities)->Arg(1)->Arg(4)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ExtractChownPass)->Arg(1)->Arg(4)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ExtractPlainFiles)->Arg(1)->Arg(4)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_TarThenChown)->Arg(1)->Arg(4)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
BENCHMARK_MAIN();
