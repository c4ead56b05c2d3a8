#include <gtest/gtest.h>

#include "haco/error.hpp"
#include "haco/fleet.hpp"
#include "test_support.hpp"

namespace haco::fleet {
namespace {

InstanceSpec instance(const std::string& name, std::uint16_t port, std::uint32_t id_base, std::uint32_t count = 100) {
  InstanceSpec i;
  i.port = port;
  i.container.name = name;
  i.container.rootfs = "/srv/" + name;
  if (count) {
    i.container.uid_map = {{0, id_base, count}};
    i.container.gid_map = {{0, id_base, count}};
  }
  return i;
}

std::string error_of(const std::vector<InstanceSpec>& fleet, const HostIds& host = {}, bool shared = false) {
  try {
    validate_fleet(fleet, host, shared);
  } catch (const InputError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(ValidateFleet, DisjointFleetPasses) {
  EXPECT_EQ(error_of({instance("a", 1, 100000), instance("b", 2, 100100), instance("c", 3, 100200)}), "(no error)");
}

TEST(ValidateFleet, DuplicateNamesPortsAndRootfs) {
  auto a = instance("a", 1, 100000);
  auto b = instance("a", 2, 100100);
  b.container.rootfs = a.container.rootfs;
  std::string e = error_of({a, b});
  EXPECT_NE(e.find("have the same name a"), std::string::npos) << e;
  EXPECT_NE(e.find("share the rootfs /srv/a"), std::string::npos) << e;
  auto c = instance("c", 1, 100200);
  EXPECT_NE(error_of({a, c}).find("have the same port 1"), std::string::npos);
}

TEST(ValidateFleet, ListsEveryOverlappingPair) {
  std::string e = error_of({instance("a", 1, 1000000), instance("b", 2, 1000050), instance("c", 3, 1000099)});
  // a-b, a-c, b-c for uids and again for gids.
  EXPECT_NE(e.find("6 problems"), std::string::npos) << e;
  EXPECT_NE(e.find("'a' (port 1) maps 1000000-1000099, 'b' (port 2) maps 1000050-1000149"), std::string::npos) << e;
  EXPECT_NE(e.find("'a' (port 1) maps 1000000-1000099, 'c' (port 3) maps 1000099-1000198"), std::string::npos) << e;
  EXPECT_NE(e.find("'b' (port 2) maps 1000050-1000149, 'c' (port 3)"), std::string::npos) << e;
}

TEST(ValidateFleet, AdjacentRangesDoNotConflict) {
  EXPECT_EQ(error_of({instance("a", 1, 1000000), instance("b", 2, 1000100)}), "(no error)");
}

TEST(ValidateFleet, HostUsersGroupsAndSubordinateRanges) {
  HostIds host;
  host.uids = {{1000, "user alice in /etc/passwd"}};
  host.gids = {{1050, "group staff in /etc/group"}};
  host.reserved_uid_ranges = {{200000, 65536, "the range of bob in /etc/subuid"}};
  host.reserved_gid_ranges = {};
  std::string e = error_of({instance("a", 1, 1000), instance("b", 2, 250000)}, host);
  EXPECT_NE(e.find("uid range 1000-1099 of 'a' (port 1) includes uid 1000 (user alice in /etc/passwd)"),
            std::string::npos) << e;
  EXPECT_NE(e.find("gid range 1000-1099 of 'a' (port 1) includes gid 1050 (group staff"), std::string::npos) << e;
  EXPECT_NE(e.find("overlaps 200000-265535, the range of bob in /etc/subuid"), std::string::npos) << e;
}

TEST(ValidateFleet, ReadsHostFiles) {
  testing::TempDir etc;
  etc.file("passwd", "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n");
  etc.file("group", "root:x:0:\nstaff:x:50:\n");
  etc.file("subuid", "bob:100000:65536\n");
  HostIds ids = read_host_ids(etc.path().string());
  ASSERT_EQ(ids.uids.size(), 2u);
  EXPECT_EQ(ids.uids[1].first, 1000u);
  ASSERT_EQ(ids.gids.size(), 2u);
  ASSERT_EQ(ids.reserved_uid_ranges.size(), 1u);
  EXPECT_EQ(ids.reserved_uid_ranges[0].start, 100000u);
  EXPECT_TRUE(ids.reserved_gid_ranges.empty());
}

TEST(ValidateFleet, SpecialIdsAndThirtyTwoBits) {
  EXPECT_NE(error_of({instance("a", 1, 65500)}).find("includes 65535"), std::string::npos);
  EXPECT_NE(error_of({instance("a", 1, 4294967200u, 96)}).find("does not fit below 4294967295"), std::string::npos);
  EXPECT_EQ(error_of({instance("a", 1, 4294967200u, 95)}), "(no error)");
}

TEST(ValidateFleet, SharedUnmappedRootfsNeedsTheFlag) {
  auto a = instance("a", 1, 0, 0);
  auto b = instance("b", 2, 0, 0);
  b.container.rootfs = a.container.rootfs;
  std::string e = error_of({a, b});
  EXPECT_NE(e.find("no uid/gid mapping"), std::string::npos) << e;
  EXPECT_NE(e.find("--allow-shared-rootfs"), std::string::npos) << e;
  EXPECT_EQ(error_of({a, b}, {}, true), "(no error)");
}

}  // namespace
}  // namespace haco::fleet
