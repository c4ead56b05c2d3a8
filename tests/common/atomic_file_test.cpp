// Files replaced whole: the new version with exactly its mode, the previous
// one untouched (a rename, not a rewrite in place), and no temporary file
// left behind, whether the write succeeds or fails.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "haco/atomic_file.hpp"
#include "haco/error.hpp"
#include "haco/unique_fd.hpp"
#include "test_support.hpp"

namespace haco {
namespace {

using testing::TempDir;

std::vector<std::string> entries(const std::filesystem::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir)) names.push_back(e.path().filename());
  std::sort(names.begin(), names.end());
  return names;
}

struct stat stat_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return st;
}

TEST(AtomicFile, ReplacesTheFileByRenameWithExactlyTheMode) {
  TempDir dir;
  const std::string path = dir.path().string() + "/state.json";
  write_file_atomically(path, "old\n", 0600);
  EXPECT_EQ(testing::read_text_file(path), "old\n");
  EXPECT_EQ(stat_of(path).st_mode & 07777, 0600u);

  UniqueFd old(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(old);
  const ino_t old_inode = stat_of(path).st_ino;
  const mode_t previous = ::umask(0077);
  write_file_atomically(path, std::string(100000, 'n'), 0644);
  ::umask(previous);

  EXPECT_EQ(testing::read_text_file(path), std::string(100000, 'n'));
  EXPECT_EQ(stat_of(path).st_mode & 07777, 0644u);
  EXPECT_NE(stat_of(path).st_ino, old_inode);
  // A reader that opened the previous version still reads all of it.
  char text[16] = {};
  EXPECT_EQ(::pread(old.get(), text, sizeof text, 0), 4);
  EXPECT_STREQ(text, "old\n");
  EXPECT_EQ(entries(dir.path()), std::vector<std::string>{"state.json"});
}

TEST(AtomicFile, AFailedWriteLeavesNoTemporaryFileAndNamesThePath) {
  TempDir dir;
  // rename(2) does not put a file over a directory (EISDIR).
  const std::string path = dir.path().string() + "/taken";
  dir.file("taken/inside", "x");
  try {
    write_file_atomically(path, "new\n", 0600);
    ADD_FAILURE() << "replaced a directory";
  } catch (const Error& e) {
    EXPECT_EQ(e.call(), "rename");
    EXPECT_NE(e.path().find(path), std::string::npos) << e.what();
  }
  EXPECT_EQ(entries(dir.path()), std::vector<std::string>{"taken"});
  EXPECT_EQ(entries(path), std::vector<std::string>{"inside"});

  const std::string nowhere = dir.path().string() + "/missing/file";
  try {
    write_file_atomically(nowhere, "new\n", 0600);
    ADD_FAILURE() << "wrote into a directory that does not exist";
  } catch (const Error& e) {
    EXPECT_EQ(e.sys_errno(), ENOENT);
    EXPECT_NE(e.path().find(nowhere), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace haco
