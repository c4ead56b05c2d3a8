// The registry of names, ports, id ranges and trees held by fleets.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "haco/error.hpp"
#include "haco/registry.hpp"
#include "haco/unique_fd.hpp"
#include "test_support.hpp"

namespace haco::registry {
namespace {

InstanceSpec instance(const std::string& name, std::uint16_t port, std::uint32_t first_id, const std::string& rootfs) {
  InstanceSpec i;
  i.port = port;
  i.container.name = name;
  i.container.rootfs = rootfs;
  i.container.uid_map = {{0, first_id, 100}};
  i.container.gid_map = {{0, first_id, 100}};
  return i;
}

class RegistryTest : public ::testing::Test {
 protected:
  std::string root() const { return dir_.path().string() + "/state"; }
  state::FleetPaths paths(const std::string& fleet) const { return {root(), dir_.path().string() + "/data", fleet}; }
  // A fleet whose `up` claimed and whose supervisor recorded a state.
  void live_fleet(const std::string& fleet, const std::vector<InstanceSpec>& instances) {
    FleetClaims claims{fleet, {}};
    for (const auto& i : instances) claims.instances.push_back(claim_of(i));
    claim(paths(fleet), claims);
    std::ofstream(paths(fleet).state_file()) << "{}";
  }
  std::string joined(const std::vector<std::string>& lines) const {
    std::string out;
    for (const auto& l : lines) out += l + "\n";
    return out;
  }

  haco::testing::TempDir dir_;
};

TEST_F(RegistryTest, EveryKindOfClashNamesTheOtherFleet) {
  live_fleet("alpha", {instance("web-1", 10001, 1000100, "/srv/a/web-1")});
  auto others = read_other_fleets(root(), "beta");
  ASSERT_EQ(others.fleets.size(), 1u);
  EXPECT_TRUE(others.unreadable.empty());

  auto name = find_clashes({claim_of(instance("web-1", 20001, 2000100, "/srv/b/web-1"))}, others);
  ASSERT_EQ(name.size(), 1u) << joined(name);
  EXPECT_NE(name[0].find("instance 'web-1' of fleet alpha"), std::string::npos) << name[0];

  auto port = find_clashes({claim_of(instance("b-1", 10001, 2000100, "/srv/b/b-1"))}, others);
  ASSERT_EQ(port.size(), 1u) << joined(port);
  EXPECT_NE(port[0].find("port 10001"), std::string::npos) << port[0];

  auto ids = find_clashes({claim_of(instance("b-1", 20001, 1000150, "/srv/b/b-1"))}, others);
  ASSERT_EQ(ids.size(), 2u) << joined(ids);  // uid and gid
  EXPECT_NE(ids[0].find("uid range 1000150-1000249"), std::string::npos) << ids[0];
  EXPECT_NE(ids[0].find("1000100-1000199, held by instance 'web-1' of fleet alpha"), std::string::npos) << ids[0];

  auto tree = find_clashes({claim_of(instance("b-1", 20001, 2000100, "/srv/a/web-1"))}, others);
  ASSERT_EQ(tree.size(), 1u) << joined(tree);
  EXPECT_NE(tree[0].find("the rootfs /srv/a/web-1"), std::string::npos) << tree[0];

  EXPECT_TRUE(find_clashes({claim_of(instance("b-1", 20001, 1000200, "/srv/b/b-1"))}, others).empty());
  try {
    claim(paths("beta"), {"beta", {claim_of(instance("b-1", 10001, 2000100, "/srv/b/b-1"))}});
    FAIL() << "a clash was claimed";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("of fleet alpha"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(paths("beta").claims_file()));
}

TEST_F(RegistryTest, OneTreeThroughASymlinkIsTheSameTree) {
  auto real = dir_.path() / "real";
  std::filesystem::create_directories(real / "web-1");
  std::filesystem::create_directory_symlink(real, dir_.path() / "link");
  live_fleet("alpha", {instance("web-1", 10001, 1000100, (real / "web-1").string())});
  auto clashes = find_clashes({claim_of(instance("b-1", 20001, 2000100, (dir_.path() / "link/web-1").string()))},
                              read_other_fleets(root(), "beta"));
  ASSERT_EQ(clashes.size(), 1u) << joined(clashes);
  EXPECT_NE(clashes[0].find("of fleet alpha"), std::string::npos) << clashes[0];
}

TEST_F(RegistryTest, ACorruptFleetIsReportedAndDoesNotBlockTheOthers) {
  live_fleet("alpha", {instance("web-1", 10001, 1000100, "/srv/a/web-1")});
  live_fleet("broken", {instance("x-1", 30001, 3000100, "/srv/x/x-1")});
  std::ofstream(paths("broken").claims_file()) << "{ not json";
  auto others = read_other_fleets(root(), "beta");
  ASSERT_EQ(others.fleets.size(), 1u);
  EXPECT_EQ(others.fleets[0].fleet, "alpha");
  ASSERT_EQ(others.unreadable.size(), 1u);
  EXPECT_NE(others.unreadable[0].find("fleet 'broken'"), std::string::npos) << others.unreadable[0];
  EXPECT_NE(others.unreadable[0].find("not valid JSON"), std::string::npos) << others.unreadable[0];
  EXPECT_NO_THROW(claim(paths("beta"), {"beta", {claim_of(instance("b-1", 20001, 2000100, "/srv/b/b-1"))}}));
  EXPECT_TRUE(std::filesystem::exists(paths("beta").claims_file()));
}

TEST_F(RegistryTest, ClaimsOfAnUpThatDiedBeforeItsStateAreStale) {
  claim(paths("gone"), {"gone", {claim_of(instance("web-1", 10001, 1000100, "/srv/a/web-1"))}});
  // Its lock held: an `up` in progress, the claims count.
  {
    UniqueFd lock(::open(paths("gone").lock_file().c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    ASSERT_TRUE(lock);
    ASSERT_EQ(::flock(lock.get(), LOCK_EX), 0);
    EXPECT_EQ(read_other_fleets(root(), "beta").fleets.size(), 1u);
  }
  // Lock free and no fleet.json: dropped.
  EXPECT_TRUE(read_other_fleets(root(), "beta").fleets.empty());
  EXPECT_FALSE(std::filesystem::exists(paths("gone").claims_file()));
}

TEST_F(RegistryTest, AFleetRecordedWithoutClaimsIsReadFromItsState) {
  state::FleetState old;
  old.fleet = "old";
  state::InstanceRecord r;
  r.spec = instance("web-1", 10001, 1000100, "/srv/a/web-1");
  old.instances.push_back(r);
  paths("old").make_directories();
  state::save_state(paths("old"), old);
  auto others = read_other_fleets(root(), "beta");
  ASSERT_EQ(others.fleets.size(), 1u);
  EXPECT_EQ(find_clashes({claim_of(instance("b-1", 10001, 2000100, "/srv/b/b-1"))}, others).size(), 1u);
}

TEST_F(RegistryTest, ReleaseDropsTheClaims) {
  live_fleet("alpha", {instance("web-1", 10001, 1000100, "/srv/a/web-1")});
  release(paths("alpha"));
  EXPECT_FALSE(std::filesystem::exists(paths("alpha").claims_file()));
  EXPECT_NO_THROW(release(paths("alpha")));
}

}  // namespace
}  // namespace haco::registry
