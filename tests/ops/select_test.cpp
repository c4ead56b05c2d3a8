// ops::choose_fleet, find_instance and instances_on_ports: the one rule by
// which every day-2 command finds its fleet and instances; fleet state is
// real files in a temporary directory.
#include <gtest/gtest.h>

#include "haco/error.hpp"
#include "haco/ops_select.hpp"
#include "test_support.hpp"

namespace haco::ops {
namespace {

class SelectTest : public ::testing::Test {
 protected:
  std::string state_root() const { return (dir_.path() / "state").string(); }
  std::string data_root() const { return (dir_.path() / "data").string(); }

  state::FleetState fleet_with_ports(const std::string& fleet, std::vector<std::uint16_t> ports) {
    state::FleetState state;
    state.fleet = fleet;
    for (auto port : ports) {
      state::InstanceRecord r;
      r.spec.port = port;
      r.spec.container.name = fleet + "-" + std::to_string(port);
      state.instances.push_back(r);
    }
    return state;
  }

  void record(const state::FleetState& state) {
    state::FleetPaths paths{state_root(), data_root(), state.fleet};
    paths.make_directories();
    state::save_state(paths, state);
  }

  template <class F>
  std::string input_error(F&& f) {
    try {
      f();
    } catch (const InputError& e) {
      return e.what();
    }
    return "no InputError";
  }

  haco::testing::TempDir dir_;
};

TEST_F(SelectTest, TheOnlyFleetIsChosenWithoutAName) {
  record(fleet_with_ports("web", {10001}));
  EXPECT_EQ(choose_fleet(state_root(), data_root(), "").fleet, "web");
}

TEST_F(SelectTest, SeveralFleetsWithoutANameAreListed) {
  record(fleet_with_ports("web", {10001}));
  record(fleet_with_ports("api", {11001}));
  auto error = input_error([&] { choose_fleet(state_root(), data_root(), ""); });
  EXPECT_NE(error.find("2 fleets"), std::string::npos) << error;
  EXPECT_NE(error.find("api, web"), std::string::npos) << error;
  EXPECT_NE(error.find("--name"), std::string::npos) << error;
}

TEST_F(SelectTest, AnUnknownOrMissingFleetIsBadInput) {
  EXPECT_NE(input_error([&] { choose_fleet(state_root(), data_root(), ""); }).find("no fleet under"),
            std::string::npos);
  record(fleet_with_ports("web", {10001}));
  auto error = input_error([&] { choose_fleet(state_root(), data_root(), "api"); });
  EXPECT_NE(error.find("no fleet named 'api'"), std::string::npos) << error;
  EXPECT_NE(input_error([&] { choose_fleet(state_root(), data_root(), "../x"); }), "no InputError");
}

TEST_F(SelectTest, AnInstanceIsFoundByPortOrName) {
  auto fleet = fleet_with_ports("web", {10001, 10002});
  EXPECT_EQ(find_instance(fleet, "10002").name(), "web-10002");
  EXPECT_EQ(find_instance(fleet, "web-10001").spec.port, 10001);
  auto error = input_error([&] { find_instance(fleet, "10003"); });
  EXPECT_EQ(error, "fleet 'web' has no instance on port '10003' (its ports: 10001-10002)");
  error = input_error([&] { find_instance(fleet, "web-1"); });
  EXPECT_EQ(error, "fleet 'web' has no instance named 'web-1' (its ports: 10001-10002)");
}

TEST_F(SelectTest, PortsAreSelectedInTheFleetsOrderAndMissingOnesListed) {
  auto fleet = fleet_with_ports("web", {10001, 10002, 10003, 10005});
  auto chosen = instances_on_ports(fleet, "10005,10001-10002");
  ASSERT_EQ(chosen.size(), 3u);
  EXPECT_EQ(chosen[0]->spec.port, 10001);
  EXPECT_EQ(chosen[1]->spec.port, 10002);
  EXPECT_EQ(chosen[2]->spec.port, 10005);
  auto error = input_error([&] { instances_on_ports(fleet, "10003-10007"); });
  EXPECT_EQ(error, "fleet 'web' has no instances on ports 10004,10006-10007 (its ports: 10001-10003,10005)");
  EXPECT_NE(input_error([&] { instances_on_ports(fleet, "10002-10001"); }), "no InputError");
}

}  // namespace
}  // namespace haco::ops
