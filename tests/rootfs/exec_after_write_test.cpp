// A tree the engine has just written can be executed at once: no file it
// wrote is still open for writing when the call returns (exec of such a file
// fails with ETXTBSY). Linux before 6.4 releases files closed through
// io_uring's table up to a second late, so on this machine's kernel these
// tests pass whatever the engine does; on Debian 12's 6.1 they catch it.
#include <fcntl.h>
#include <linux/capability.h>
#include <sys/syscall.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "archive_builder.hpp"
#include "haco/error.hpp"
#include "haco/rootfs.hpp"
#include "haco/unique_fd.hpp"
#include "rootfs/image_cache.hpp"
#include "temp_dir.hpp"

namespace haco::rootfs {
namespace {

using testing::ArchiveBuilder;
using testing::TempDir;

constexpr std::uint32_t kBase = 500000;
constexpr int kRounds = 6;
constexpr int kExecFailed = 97, kTextFileBusy = 98;

std::string host_busybox() {
  std::ifstream in("/bin/busybox", std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// A static busybox as /bin/busybox, a file whose data spans batches, and
// enough small files to fill several io_uring submissions.
void write_image(const std::string& path, const std::string& busybox) {
  ArchiveBuilder b(path, "gzip");
  b.dir("./", {.mode = 0755});
  b.file("bin/busybox", busybox, {.mode = 0755});
  b.symlink("bin/sh", "busybox");
  b.file("usr/lib/big", std::string(5u << 20, 'x'), {.mode = 0755});
  for (int i = 0; i < 300; ++i)
    b.file("usr/share/doc/f" + std::to_string(i), "text " + std::to_string(i), {.mode = i % 2 ? 0755u : 0644u});
}

IdShift shift_for(int i) {
  std::uint32_t base = kBase + static_cast<std::uint32_t>(i) * 65536;
  return IdShift({{0, base, 65536}}, {{0, base, 65536}}, OwnershipPolicy::shift);
}

// Runs `chroot root /bin/busybox true` in a child; its exit status, with
// kTextFileBusy when exec failed with ETXTBSY.
int exec_in(const std::string& root) {
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    if (chroot(root.c_str()) < 0 || chdir("/") < 0) _exit(kExecFailed);
    execl("/bin/busybox", "busybox", "true", static_cast<char*>(nullptr));
    _exit(errno == ETXTBSY ? kTextFileBusy : kExecFailed);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Regular files under `root` that some file description still has open for
// writing: the kernel refuses a read lease (EAGAIN) exactly then.
std::vector<std::string> files_open_for_writing(const std::string& root) {
  std::vector<std::string> found;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root)) {
    if (!entry.is_regular_file() || entry.is_symlink()) continue;
    const std::string path = entry.path();
    UniqueFd fd(open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) {
      found.push_back(path + " (open: " + std::strerror(errno) + ")");
      continue;
    }
    if (fcntl(fd.get(), F_SETLEASE, F_RDLCK) < 0)
      found.push_back(path + " (" + std::strerror(errno) + ")");
    else
      fcntl(fd.get(), F_SETLEASE, F_UNLCK);
  }
  return found;
}

// "" when `found` is empty, else how many and the first few.
std::string first_of(const std::vector<std::string>& found) {
  if (found.empty()) return {};
  std::string s = std::to_string(found.size()) + " files, e.g.";
  for (std::size_t i = 0; i < found.size() && i < 3; ++i) s += " " + found[i];
  return s;
}

class ExecAfterExtract : public ::testing::TestWithParam<bool> {};

TEST_P(ExecAfterExtract, EveryFileIsClosedAndTheTreeRunsAtOnce) {
  TempDir tmp;
  const std::string archive = tmp / "image.tar.gz";
  write_image(archive, host_busybox());
  ExtractOptions options;
  options.writers = 2;
  options.plain_files = GetParam();
  for (int round = 0; round < kRounds; ++round) {
    const std::string a = tmp / ("a" + std::to_string(round)), b = tmp / ("b" + std::to_string(round));
    extract_archive(archive, {{a, shift_for(0)}, {b, shift_for(1)}}, options);
    ASSERT_EQ(exec_in(a), 0) << "round " << round << ": " << a << "/bin/busybox (" << kTextFileBusy
                             << " = ETXTBSY: still open for writing)";
    ASSERT_EQ(exec_in(b), 0) << "round " << round << ": " << b;
    EXPECT_EQ(first_of(files_open_for_writing(a)), "") << "round " << round << ": still open for writing";
    EXPECT_EQ(first_of(files_open_for_writing(b)), "") << "round " << round << ": still open for writing";
  }
}

INSTANTIATE_TEST_SUITE_P(FileWrites, ExecAfterExtract, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "PlainCalls" : "IoUring"; });

// Without CAP_SYS_ADMIN no private mount can be made: regular files are then
// written with plain calls, which is said once, and the trees run at once.
// In a child, as dropping a capability changes the process.
TEST(ExecAfterWrite, WithoutAPrivateMountFilesAreWrittenWithPlainCallsAndSaidOnce) {
  TempDir tmp;
  const std::string archive = tmp / "image.tar.gz";
  write_image(archive, host_busybox());
  int report_pipe[2];
  ASSERT_EQ(pipe2(report_pipe, O_CLOEXEC), 0);
  UniqueFd report_r(report_pipe[0]), report_w(report_pipe[1]);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::string report;
    try {
      __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
      __user_cap_data_struct caps[2]{};
      if (syscall(SYS_capget, &header, caps) < 0) throw Error::from_errno("capget", errno);
      caps[CAP_TO_INDEX(CAP_SYS_ADMIN)].effective &= ~CAP_TO_MASK(CAP_SYS_ADMIN);
      if (syscall(SYS_capset, &header, caps) < 0) throw Error::from_errno("capset", errno);
      const std::string a = tmp / "a", b = tmp / "b";
      ExtractStats stats = extract_archive(archive, {{a, shift_for(0)}, {b, shift_for(1)}}, {nullptr, 2, false});
      int said = 0;
      for (const std::string& w : stats.warnings) said += w.find("plain calls") != std::string::npos;
      report = "said " + std::to_string(said) + ", exec " + std::to_string(exec_in(a)) + " " +
               std::to_string(exec_in(b)) + ", open for writing: " + first_of(files_open_for_writing(a)) +
               first_of(files_open_for_writing(b));
    } catch (const std::exception& e) {
      report = e.what();
    }
    ssize_t n = write(report_w.get(), report.data(), report.size());
    _exit(n == static_cast<ssize_t>(report.size()) ? 0 : 1);
  }
  report_w.reset();
  std::string report;
  char buf[512];
  for (ssize_t n; (n = read(report_r.get(), buf, sizeof buf)) > 0;) report.append(buf, static_cast<std::size_t>(n));
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_EQ(report, "said 1, exec 0 0, open for writing: ");
}

TEST(ExecAfterWrite, TheImageCacheRunsAtOnce) {
  TempDir tmp;
  const std::string busybox = host_busybox();
  for (int round = 0; round < kRounds; ++round) {
    // A different image each round: each fills the cache anew.
    const std::string archive = tmp / ("image" + std::to_string(round) + ".tar.gz");
    write_image(archive, busybox + std::string(static_cast<std::size_t>(round) + 1, '\0'));
    CachedImage image = ensure_cached_image(archive, tmp / "data", nullptr);
    ASSERT_TRUE(image.extracted_now);
    ASSERT_EQ(exec_in(image.tree), 0) << "round " << round << ": " << image.tree << " (" << kTextFileBusy
                                      << " = ETXTBSY: still open for writing)";
    EXPECT_EQ(first_of(files_open_for_writing(image.tree)), "") << "round " << round << ": still open for writing";
  }
}

TEST(ExecAfterWrite, PreparedInstancesRunAtOnceWithEitherStrategy) {
  TempDir tmp;
  const std::string archive = tmp / "image.tar.gz";
  write_image(archive, host_busybox());
  for (Strategy strategy : {Strategy::overlay, Strategy::extract}) {
    std::vector<InstanceRootfs> instances;
    for (int i = 0; i < 2; ++i) {
      std::uint32_t base = kBase + static_cast<std::uint32_t>(i) * 65536;
      instances.push_back({"haco-exec-" + std::to_string(i),
                           tmp / (std::string(strategy_name(strategy)) + "/" + std::to_string(i)), archive,
                           {{0, base, 65536}}, {{0, base, 65536}}, OwnershipPolicy::shift});
    }
    PrepareOptions options;
    options.strategy = strategy;
    options.data_root = tmp / "data";
    options.parallel = 2;
    auto prepared = prepare_fleet(instances, options);
    for (const PreparedRootfs& p : prepared) {
      EXPECT_EQ(exec_in(p.rootfs), 0) << strategy_name(strategy) << " " << p.rootfs << " (" << kTextFileBusy
                                      << " = ETXTBSY: still open for writing)";
      // An overlay's files are the image cache's (TheImageCacheRunsAtOnce).
      if (p.strategy == Strategy::extract) {
        EXPECT_EQ(first_of(files_open_for_writing(p.rootfs)), "") << p.rootfs << ": still open for writing";
      }
    }
    teardown_fleet(prepared, true);
  }
}

}  // namespace
}  // namespace haco::rootfs
