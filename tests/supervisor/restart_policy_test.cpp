#include <gtest/gtest.h>

#include "haco/error.hpp"
#include "haco/supervisor.hpp"

namespace haco::supervisor {
namespace {

using Mode = RestartPolicy::Mode;

TEST(RestartPolicy, Parses) {
  EXPECT_EQ(parse_restart_policy("no"), (RestartPolicy{Mode::no, 0}));
  EXPECT_EQ(parse_restart_policy("always"), (RestartPolicy{Mode::always, 0}));
  EXPECT_EQ(parse_restart_policy("on-failure"), (RestartPolicy{Mode::on_failure, 0}));
  EXPECT_EQ(parse_restart_policy("on-failure:5"), (RestartPolicy{Mode::on_failure, 5}));
  for (const char* bad : {"", "yes", "on-failure:", "on-failure:0", "on-failure:x", "on-failure:3x", "on-failure5",
                          "always:2"})
    EXPECT_THROW(parse_restart_policy(bad), InputError) << bad;
}

TEST(RestartPolicy, FormatsBack) {
  for (const char* text : {"no", "always", "on-failure", "on-failure:7"})
    EXPECT_EQ(format_restart_policy(parse_restart_policy(text)), text);
}

TEST(RestartPolicy, Decides) {
  state::ExitRecord ok{0, 0, 0}, failed{2, 0, 0}, killed{-1, 9, 0};
  auto no = parse_restart_policy("no");
  EXPECT_FALSE(should_restart(no, failed, 0));
  auto on_failure = parse_restart_policy("on-failure:2");
  EXPECT_FALSE(should_restart(on_failure, ok, 0));
  EXPECT_TRUE(should_restart(on_failure, failed, 0));
  EXPECT_TRUE(should_restart(on_failure, killed, 1));
  EXPECT_FALSE(should_restart(on_failure, failed, 2));
  auto unlimited = parse_restart_policy("on-failure");
  EXPECT_TRUE(should_restart(unlimited, failed, 1000));
  auto always = parse_restart_policy("always");
  EXPECT_TRUE(should_restart(always, ok, 50));
}

TEST(RestartPolicy, DelayGrowsAndIsBounded) {
  EXPECT_EQ(restart_delay(0), std::chrono::milliseconds(100));
  EXPECT_EQ(restart_delay(1), std::chrono::milliseconds(200));
  EXPECT_EQ(restart_delay(30), std::chrono::milliseconds(5000));
  for (unsigned n = 0; n < 40; ++n) EXPECT_LE(restart_delay(n), restart_delay(n + 1));
}

}  // namespace
}  // namespace haco::supervisor
