// Archives whose entry paths are very deep or very long: the reader refuses
// past PATH_MAX, naming the entry, and walks the paths it accepts without
// recursing once per component; trees deeper still are removed the same way. Each read runs in a forked child, on a
// thread with a small stack, so that a crash fails the test instead of
// ending the test program.
#include <fcntl.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>
#include <string>

#include <gtest/gtest.h>

#include "archive_builder.hpp"
#include "haco/error.hpp"
#include "haco/rootfs.hpp"
#include "rootfs/archive_reader.hpp"
#include "temp_dir.hpp"

namespace haco::rootfs {
namespace {

using testing::ArchiveBuilder;
using testing::TempDir;

constexpr std::size_t kSmallStack = 128 * 1024;

std::string repeated(const std::string& part, std::size_t times) {
  std::string out;
  out.reserve(part.size() * times);
  for (std::size_t i = 0; i < times; ++i) out += part;
  return out;
}

// Runs `body` on a thread with a 128 KiB stack in a forked child; returns
// what it returned, or "crashed" / "exited N".
std::string in_small_stack(const std::function<std::string()>& body) {
  int pipe_fds[2];
  if (::pipe(pipe_fds) != 0) return "pipe failed";
  pid_t child = ::fork();
  if (child == 0) {
    ::close(pipe_fds[0]);
    struct Job {
      const std::function<std::string()>* body;
      std::string result;
    } job{&body, {}};
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, kSmallStack);
    pthread_t thread;
    auto run = [](void* arg) -> void* {
      auto* j = static_cast<Job*>(arg);
      j->result = (*j->body)();
      return nullptr;
    };
    if (pthread_create(&thread, &attr, run, &job) != 0) ::_exit(3);
    pthread_join(thread, nullptr);
    [[maybe_unused]] auto n = ::write(pipe_fds[1], job.result.data(), job.result.size());
    ::_exit(0);
  }
  ::close(pipe_fds[1]);
  std::string result;
  char chunk[4096];
  ssize_t n;
  while ((n = ::read(pipe_fds[0], chunk, sizeof chunk)) > 0) result.append(chunk, static_cast<std::size_t>(n));
  ::close(pipe_fds[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  if (WIFSIGNALED(status)) return "crashed (signal " + std::to_string(WTERMSIG(status)) + ")";
  if (WEXITSTATUS(status) != 0) return "exited " + std::to_string(WEXITSTATUS(status));
  return result;
}

// Reads the archive; "ok N" with the number of entries, or the error.
std::string read_archive(const std::string& path) {
  try {
    ArchiveReader reader(path);
    reader.read([](std::shared_ptr<const Batch>) { return true; }, nullptr);
    return "ok " + std::to_string(reader.entries().size());
  } catch (const Error& e) {
    return e.what();
  }
}

TEST(DeepPaths, TensOfThousandsOfComponentsAreRefusedNamingTheEntry) {
  TempDir tmp;
  const std::string archive = tmp / "deep.tar";
  const std::string deep = repeated("a/", 50000) + "f";
  {
    ArchiveBuilder b(archive);
    b.file("etc/hostname", "x\n");
    b.file(deep, "x");
  }
  std::string result = in_small_stack([&] { return read_archive(archive); });
  EXPECT_EQ(result.rfind("entry 'a/a/a/a/", 0), 0u) << result;
  EXPECT_NE(result.find("(100001 bytes): longer than 4095 bytes (PATH_MAX); refused"), std::string::npos) << result;
  EXPECT_LT(result.size(), 300u) << "the message quotes the whole entry";
}

TEST(DeepPaths, TheDeepestPathPathMaxAllowsIsReadWithoutRecursion) {
  TempDir tmp;
  const std::string archive = tmp / "deepest.tar";
  // 2047 directories, none listed by the archive, and a file: 4095 bytes.
  const std::string deepest = repeated("d/", 2047) + "f";
  ASSERT_EQ(deepest.size(), 4095u);
  {
    ArchiveBuilder b(archive);
    b.file(deepest, "x");
    b.file(repeated("d/", 1000) + "g", "y");
  }
  // The root, 2047 implicit directories and two files.
  EXPECT_EQ(in_small_stack([&] { return read_archive(archive); }), "ok 2050");
}

TEST(DeepPaths, ALongComponentIsRefused) {
  TempDir tmp;
  const std::string archive = tmp / "long-name.tar";
  {
    ArchiveBuilder b(archive);
    b.file("etc/" + std::string(256, 'n'), "x");
  }
  std::string result = in_small_stack([&] { return read_archive(archive); });
  EXPECT_NE(result.find("a component longer than 255 bytes (NAME_MAX); refused"), std::string::npos) << result;
  EXPECT_EQ(result.rfind("entry 'etc/nnnn", 0), 0u) << result;
}

TEST(DeepPaths, ASymlinkTargetLongerThanPathMaxIsRefused) {
  TempDir tmp;
  const std::string archive = tmp / "long-link.tar";
  {
    ArchiveBuilder b(archive);
    b.symlink("link", repeated("x/", 3000));
  }
  std::string result = in_small_stack([&] { return read_archive(archive); });
  EXPECT_NE(result.find("entry 'link': symlink target of 6000 bytes, longer than 4095 (PATH_MAX); refused"),
            std::string::npos)
      << result;
}

// A tree deeper than PATH_MAX (as a container can make one, relative to
// each directory) is removed with a low descriptor limit and a small stack:
// one directory open at a time, no call per level.
TEST(DeepPaths, ATreeDeeperThanTheDescriptorLimitIsRemoved) {
  TempDir tmp;
  const std::string top = tmp / "tree";
  constexpr int kDepth = 5000;
  {
    ASSERT_EQ(::mkdir(top.c_str(), 0755), 0);
    int fd = ::open(top.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    for (int level = 0; level < kDepth; ++level) {
      ASSERT_EQ(::mkdirat(fd, "d", 0755), 0) << level;
      int file = ::openat(fd, "f", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
      ASSERT_GE(file, 0);
      ::close(file);
      ASSERT_EQ(::symlinkat("/", fd, "up"), 0);
      if (level % 100 == 0) {
        ASSERT_EQ(::mkdirat(fd, "side", 0755), 0);
      }
      int next = ::openat(fd, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      ::close(fd);
      ASSERT_GE(next, 0) << level;
      fd = next;
    }
    ::close(fd);
  }
  std::string result = in_small_stack([&] {
    rlimit low{64, 64};
    if (::setrlimit(RLIMIT_NOFILE, &low) != 0) return std::string("setrlimit failed");
    try {
      remove_tree(top);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("removed");
  });
  EXPECT_EQ(result, "removed");
  EXPECT_NE(::access(top.c_str(), F_OK), 0);
  EXPECT_EQ(::access("/", F_OK), 0);
}

}  // namespace
}  // namespace haco::rootfs
