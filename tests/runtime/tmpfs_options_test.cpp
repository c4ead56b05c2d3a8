// The options a container's tmpfs gets from the host side: default size and
// inode count, ids translated to the host's, owned by the container's root.
#include <gtest/gtest.h>

#include "haco/error.hpp"
#include "runtime/mounts.hpp"

namespace haco::runtime {
namespace {

ContainerSpec mapped_at(std::uint32_t base) {
  ContainerSpec c;
  c.namespaces = {Namespace::user, Namespace::mount};
  c.uid_map = {{0, base, 100}};
  c.gid_map = {{0, base + 1000, 100}};
  return c;
}

TEST(TmpfsOptions, WithoutSizeGetsTheDefaultsAndTheContainersRoot) {
  EXPECT_EQ(tmpfs_options(mapped_at(500000), "mode=1777"),
            "mode=1777,size=64m,nr_inodes=65536,uid=500000,gid=501000");
}

TEST(TmpfsOptions, GivenSizeAndInodesAreKept) {
  EXPECT_EQ(tmpfs_options(mapped_at(500000), "size=1g,nr_inodes=10,ro"), "size=1g,nr_inodes=10,ro,uid=500000,gid=501000");
  EXPECT_EQ(tmpfs_options(mapped_at(500000), "nr_blocks=16"), "nr_blocks=16,nr_inodes=65536,uid=500000,gid=501000");
}

TEST(TmpfsOptions, ContainerIdsBecomeHostIds) {
  EXPECT_EQ(tmpfs_options(mapped_at(500000), "uid=33,gid=5"), "uid=500033,gid=501005,size=64m,nr_inodes=65536");
  EXPECT_THROW(tmpfs_options(mapped_at(500000), "uid=100"), Error) << "uid 100 is outside the map";
  EXPECT_THROW(tmpfs_options(mapped_at(500000), "gid=www"), Error);
}

TEST(TmpfsOptions, WithoutAUserNamespaceIdsStayAsGiven) {
  ContainerSpec c;
  c.namespaces = {Namespace::mount};
  EXPECT_EQ(tmpfs_options(c, "uid=33"), "uid=33,size=64m,nr_inodes=65536,gid=0");
}

}  // namespace
}  // namespace haco::runtime
