#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "supervisor/instance_log.hpp"
#include "test_support.hpp"

namespace haco::supervisor {
namespace {

TEST(InstanceLog, RotatesPastTheCapAndTheWriterGoesOn) {
  testing::TempDir dir;
  std::string log = dir.path().string() + "/logs/web/web-1.log";
  prepare_instance_log(log);
  ASSERT_TRUE(std::filesystem::exists(log));
  // The init's descriptor: O_APPEND, kept open across the rotation.
  int fd = ::open(log.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  std::string first(100, 'a');
  ASSERT_EQ(::write(fd, first.data(), first.size()), 100);
  EXPECT_FALSE(rotate_instance_log(log, 100));  // at the cap, not past it
  ASSERT_EQ(::write(fd, "b", 1), 1);
  EXPECT_TRUE(rotate_instance_log(log, 100));
  EXPECT_EQ(std::filesystem::file_size(log + ".1"), 101u);
  EXPECT_EQ(std::filesystem::file_size(log), 0u);
  ASSERT_EQ(::write(fd, "after", 5), 5);
  ::close(fd);
  // Written at the new end, not at the old offset (no hole).
  EXPECT_EQ(std::filesystem::file_size(log), 5u);
  // The next rotation replaces the previous generation.
  EXPECT_FALSE(rotate_instance_log(log, 100));
  EXPECT_TRUE(rotate_instance_log(log, 2));
  EXPECT_EQ(std::filesystem::file_size(log + ".1"), 5u);
}

TEST(InstanceLog, LogsAreForRootOnly) {
  testing::TempDir dir;
  std::string log = dir.path().string() + "/logs/web/web-1.log";
  ::umask(0);
  prepare_instance_log(log);
  ::umask(022);
  struct stat st {};
  ASSERT_EQ(::stat(log.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  ASSERT_EQ(::stat((dir.path().string() + "/logs/web").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  // A log an older run made readable is tightened, and so is its rotation.
  ASSERT_EQ(::chmod(log.c_str(), 0644), 0);
  prepare_instance_log(log);
  ASSERT_EQ(::stat(log.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  int fd = ::open(log.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  ASSERT_EQ(::write(fd, "xyz", 3), 3);
  ::close(fd);
  EXPECT_TRUE(rotate_instance_log(log, 1));
  ASSERT_EQ(::stat((log + ".1").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
}

TEST(InstanceLog, MissingLogIsNotRotated) {
  testing::TempDir dir;
  EXPECT_FALSE(rotate_instance_log(dir.path().string() + "/none.log", 1));
}

}  // namespace
}  // namespace haco::supervisor
