// The one rule for fleet and instance names.
#include <gtest/gtest.h>

#include "haco/error.hpp"
#include "haco/names.hpp"

namespace haco {
namespace {

TEST(Names, TheNamesInUseAreValid) {
  for (const char* name : {"a", "0", "web-10001", "haconiwa-test-10001", "phpinfo", "A.b_c-9", "x.", "a-"})
    EXPECT_TRUE(is_valid_name(name)) << name;
  EXPECT_TRUE(is_valid_name(std::string(63, 'a')));
}

TEST(Names, HostileNamesAreRefused) {
  for (const std::string& name :
       {std::string(), std::string("."), std::string(".."), std::string("../x"), std::string("../../evil"),
        std::string("a/b"), std::string("/abs"), std::string("-x"), std::string("--all"), std::string(".hidden"),
        std::string("_x"), std::string("a..b"), std::string("x.."), std::string(64, 'a'), std::string("a b"),
        std::string("a\x1b[31m"), std::string("a\nb"), std::string("a\rb"), std::string("a\0b", 3),
        std::string("caf\xc3\xa9"), std::string("a\x9b")})
    EXPECT_FALSE(is_valid_name(name)) << name;
}

TEST(Names, CheckQuotesTheNameEscapedAndSaysWhy) {
  try {
    check_name("fleet name", "../x");
    FAIL() << "accepted";
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("fleet name '../x' is not valid: it starts with '.' (", 0), 0u) << e.what();
  }
  try {
    check_name("instance name", "a\x1b]0;pwned\x07");
    FAIL() << "accepted";
  } catch (const InputError& e) {
    std::string message = e.what();
    EXPECT_NE(message.find("'a\\x1b]0;pwned\\x07'"), std::string::npos) << message;
    EXPECT_NE(message.find("it contains \\x1b"), std::string::npos) << message;
    EXPECT_EQ(message.find('\x1b'), std::string::npos);
  }
  EXPECT_EQ(*name_problem(std::string(64, 'a')), "it is 64 characters long, more than 63");
  EXPECT_EQ(*name_problem("a..b"), "it contains \"..\"");
  EXPECT_EQ(*name_problem(""), "it is empty");
  EXPECT_NO_THROW(check_name("fleet name", "web"));
}

}  // namespace
}  // namespace haco
