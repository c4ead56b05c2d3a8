// config.user and an image's User, resolved as the container's files say.
#include <gtest/gtest.h>

#include "haco/error.hpp"
#include "runtime/container_user.hpp"

namespace haco::runtime {
namespace {

const std::string kPasswd = "root:x:0:0:root:/root:/bin/sh\nwww:x:33:33:www:/www:/bin/false\n# comment\nweird:x:abc:1::/:\n";
const std::string kGroup = "root:x:0:\nwww:x:33:\nstaff:x:50:www,other\nbig:x:70000:www\n";
const std::vector<IdMapping> kMap{{0, 100000, 65536}};

TEST(ContainerUser, ResolvesNamesAndNumbers) {
  EXPECT_EQ(resolve_container_user("www", kPasswd, kGroup, kMap, kMap), (ContainerUser{33, 33, {50}}));
  EXPECT_EQ(resolve_container_user("33", kPasswd, kGroup, kMap, kMap), (ContainerUser{33, 33, {50}}));
  EXPECT_EQ(resolve_container_user("1000", kPasswd, kGroup, kMap, kMap), (ContainerUser{1000, 1000, {}}))
      << "a uid without a passwd entry takes its own number as gid";
  EXPECT_EQ(resolve_container_user("www:staff", kPasswd, kGroup, kMap, kMap), (ContainerUser{33, 50, {}}));
  EXPECT_EQ(resolve_container_user("33:0", kPasswd, kGroup, kMap, kMap), (ContainerUser{33, 0, {50}}));
}

TEST(ContainerUser, RefusesUnknownNamesAndIdsOutsideTheMapping) {
  EXPECT_THROW(resolve_container_user("nobody", kPasswd, kGroup, kMap, kMap), Error);
  EXPECT_THROW(resolve_container_user("www:nogroup", kPasswd, kGroup, kMap, kMap), Error);
  EXPECT_THROW(resolve_container_user("weird", kPasswd, kGroup, kMap, kMap), Error);
  EXPECT_THROW(resolve_container_user("www:", kPasswd, kGroup, kMap, kMap), Error);
  try {
    resolve_container_user("70000", kPasswd, kGroup, kMap, kMap);
    FAIL() << "a uid outside the mapping was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("outside the instance's uid mapping"), std::string::npos) << e.what();
  }
  EXPECT_THROW(resolve_container_user("33:70000", kPasswd, kGroup, kMap, kMap), Error);
  EXPECT_EQ(resolve_container_user("70000", kPasswd, kGroup, {}, {}).uid, 70000u) << "no user namespace: any id";
}

}  // namespace
}  // namespace haco::runtime
