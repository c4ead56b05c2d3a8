// Every JSON document of the command line carries its schema number.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

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

}  // namespace
}  // namespace haco
