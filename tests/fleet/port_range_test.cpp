#include <gtest/gtest.h>

#include "haco/error.hpp"
#include "haco/fleet.hpp"

namespace haco::fleet {
namespace {

std::string error_of(const std::string& text) {
  try {
    parse_port_range(text);
  } catch (const InputError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(PortRange, RangesSinglesAndLists) {
  EXPECT_EQ(parse_port_range("10001-10003"), (std::vector<std::uint16_t>{10001, 10002, 10003}));
  EXPECT_EQ(parse_port_range("80"), (std::vector<std::uint16_t>{80}));
  EXPECT_EQ(parse_port_range("10001,10005,10010-10012"),
            (std::vector<std::uint16_t>{10001, 10005, 10010, 10011, 10012}));
  EXPECT_EQ(parse_port_range(" 10 - 12 , 15 "), (std::vector<std::uint16_t>{10, 11, 12, 15}));
  EXPECT_EQ(parse_port_range("1-65535").size(), 65535u);
  EXPECT_EQ(parse_port_range("10001-10100").size(), 100u);
}

TEST(PortRange, BadInputNamesTheToken) {
  EXPECT_NE(error_of("").find("empty"), std::string::npos);
  EXPECT_NE(error_of("   ").find("empty"), std::string::npos);
  EXPECT_NE(error_of("1,,2").find("empty part"), std::string::npos);
  EXPECT_NE(error_of("10,").find("empty part"), std::string::npos);
  EXPECT_NE(error_of("20-10").find("'20-10' is reversed"), std::string::npos);
  EXPECT_NE(error_of("0").find("'0' is outside 1..65535"), std::string::npos);
  EXPECT_NE(error_of("65530-65536").find("'65530-65536' is outside"), std::string::npos);
  EXPECT_NE(error_of("1,2,1").find("port 1"), std::string::npos);
  EXPECT_NE(error_of("5-10,8").find("port 8 in '8' is given more than once"), std::string::npos);
  EXPECT_NE(error_of("abc").find("'abc' is not a port"), std::string::npos);
  EXPECT_NE(error_of("1-2-3").find("'1-2-3'"), std::string::npos);
  EXPECT_NE(error_of("-5").find("'-5'"), std::string::npos);
  EXPECT_NE(error_of("1.5").find("'1.5'"), std::string::npos);
}

}  // namespace
}  // namespace haco::fleet
