// `up --samples FILE.csv` on a real busybox fleet: the file holds every
// instance's phases, one exec_to_ready row per instance with its port.
#include <map>
#include <sstream>

#include "fleet_fixture.hpp"
#include "haco/samples.hpp"

namespace haco::testing {
namespace {

std::vector<std::string> split(const std::string& line, char by) {
  std::vector<std::string> fields;
  std::string field;
  std::istringstream in(line);
  while (std::getline(in, field, by)) fields.push_back(field);
  if (!line.empty() && line.back() == by) fields.emplace_back();
  return fields;
}

TEST_F(FleetTest, UpSamplesHasOneReadyRowPerInstance) {
  const auto path = (temp_->path() / "samples.csv").string();
  auto result = up(3, "--parallel 2 --samples " + path);
  ASSERT_EQ(result.status, 0) << result.output;
  EXPECT_NE(result.output.find("samples written to " + path), std::string::npos) << result.output;

  std::istringstream csv(read_text(path));
  std::string line;
  ASSERT_TRUE(std::getline(csv, line));
  EXPECT_EQ(line, observe::kSamplesCsvHeader);
  std::map<std::string, std::vector<std::string>> ready;  // instance -> its exec_to_ready row
  std::map<std::string, unsigned> phases_of;
  while (std::getline(csv, line)) {
    auto fields = split(line, ',');
    ASSERT_EQ(fields.size(), 9u) << line;
    ++phases_of[fields[0]];
    EXPECT_LE(std::stod(fields[4]), std::stod(fields[5])) << line;
    EXPECT_EQ(fields[7], "1") << line;
    if (fields[3] == "exec_to_ready") {
      EXPECT_EQ(ready.count(fields[0]), 0u) << "two exec_to_ready rows for " << fields[0];
      ready[fields[0]] = fields;
    }
  }
  ASSERT_EQ(ready.size(), 3u);
  for (unsigned i = 0; i < 3; ++i) {
    const auto port = std::to_string(port_base_ + i);
    const auto& row = ready["t-" + port];
    ASSERT_EQ(row.size(), 9u) << "no exec_to_ready row for t-" << port;
    EXPECT_EQ(row[2], port);
    EXPECT_GT(std::stod(row[5]), 0.0);
    // expand, clone_to_exec and exec_to_ready at least (rootfs too when the
    // tree was not served from the image cache).
    EXPECT_GE(phases_of["t-" + port], 3u);
  }
  EXPECT_EQ(haco("-q down --name " + fleet_).status, 0);
}

}  // namespace
}  // namespace haco::testing
