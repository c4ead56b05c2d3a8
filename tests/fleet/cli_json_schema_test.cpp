// Every JSON document of the command line carries its schema number.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "../supervisor/sample_instance.hpp"
#include "haco/state.hpp"
#include "test_support.hpp"

namespace haco {
namespace {

TEST(CliJsonSchema, PsJsonCarriesItsSchema) {
  testing::TempDir root;
  auto r = testing::run_command(std::string(HACO_BINARY) + " --root " + root.path().string() + " ps --json");
  ASSERT_EQ(r.status, 0) << r.output;
  auto doc = nlohmann::json::parse(r.output);
  EXPECT_EQ(doc.at("schema"), 1);
  EXPECT_EQ(doc.at("fleets"), nlohmann::json::array());
}

// inspect of a recorded instance that does not run: read from fleet.json
// alone, no container needed.
TEST(CliJsonSchema, InspectJsonCarriesItsSchema) {
  testing::TempDir root;
  state::FleetPaths paths{root.path().string() + "/run", root.path().string() + "/data", "web"};
  state::FleetState fleet;
  fleet.fleet = "web";
  fleet.definition = "/defs/web.haco";
  state::InstanceRecord record;
  record.spec = testing::sample_instance(10001);
  record.spec_hash = state::spec_hash(record.spec);
  record.state = state::InstanceState::exited;
  record.last_exit = state::ExitRecord{0, 0, 1700000000000};
  record.recent_exits = {{*record.last_exit, false, true}};
  fleet.instances.push_back(record);
  paths.make_directories();
  state::save_state(paths, fleet);

  auto r = testing::run_command(std::string(HACO_BINARY) + " --root " + paths.state_root + " --data-root " +
                                paths.data_root + " inspect 10001 --json");
  ASSERT_EQ(r.status, 0) << r.output;
  auto doc = nlohmann::json::parse(r.output);
  EXPECT_EQ(doc.at("schema"), 1);
  EXPECT_EQ(doc.at("instance"), "web-10001");
  EXPECT_EQ(doc.at("state"), "exited");
  EXPECT_EQ(doc.at("init").at("running"), false);
  EXPECT_TRUE(doc.at("init").at("pid").is_null());
  EXPECT_EQ(doc.at("not_running"), "not running (exited)");
  EXPECT_EQ(doc.at("spec").at("name"), "web-10001");
  ASSERT_EQ(doc.at("recent_exits").size(), 1u);
  EXPECT_EQ(doc.at("recent_exits").at(0).at("exit"), "exit 0");
  EXPECT_EQ(doc.at("recent_exits").at(0).at("stop_requested"), true);

  auto unknown = testing::run_command(std::string(HACO_BINARY) + " --root " + paths.state_root + " inspect 10002");
  EXPECT_EQ(unknown.status, 2) << unknown.output;
  EXPECT_NE(unknown.output.find("its ports: 10001"), std::string::npos) << unknown.output;
}

}  // namespace
}  // namespace haco
