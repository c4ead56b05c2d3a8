// Text from containers made safe for a terminal.
#include <gtest/gtest.h>

#include "haco/printable.hpp"

namespace haco {
namespace {

TEST(Printable, PlainTextAndUtf8AreKept) {
  EXPECT_EQ(printable("cannot bind the port 80"), "cannot bind the port 80");
  EXPECT_EQ(printable("\xe6\x97\xa5\xe6\x9c\xac caf\xc3\xa9 \xf0\x9f\x90\xb3"), "\xe6\x97\xa5\xe6\x9c\xac caf\xc3\xa9 \xf0\x9f\x90\xb3");
  EXPECT_EQ(printable("back\\slash"), "back\\slash");
}

TEST(Printable, ControlCharactersAreEscaped) {
  EXPECT_EQ(printable("\x1b[31mred\x1b[0m"), "\\x1b[31mred\\x1b[0m");
  EXPECT_EQ(printable("\x1b]0;title\x07"), "\\x1b]0;title\\x07");
  EXPECT_EQ(printable("a\rb\tc\bd\x7f"), "a\\x0db\\x09c\\x08d\\x7f");
  EXPECT_EQ(printable(std::string("nul\0", 4)), "nul\\x00");
  // C1 controls, as UTF-8 (U+009B is CSI) and as lone bytes.
  EXPECT_EQ(printable("\xc2\x9b" "2J"), "\\xc2\\x9b2J");
  EXPECT_EQ(printable("\x9b" "2J"), "\\x9b2J");
}

TEST(Printable, LineBreaksAreEscapedUnlessKept) {
  EXPECT_EQ(printable("one\ntwo"), "one\\x0atwo");
  EXPECT_EQ(printable("one\ntwo\x1b[2J", LineBreaks::keep), "one\ntwo\\x1b[2J");
}

TEST(Printable, InvalidUtf8IsEscapedBytewise) {
  EXPECT_EQ(printable("\xff\xfe"), "\\xff\\xfe");
  EXPECT_EQ(printable("\xc0\xaf"), "\\xc0\\xaf");            // overlong '/'
  EXPECT_EQ(printable("\xed\xa0\x80"), "\\xed\\xa0\\x80");   // a surrogate
  EXPECT_EQ(printable("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");  // above U+10FFFF
  EXPECT_EQ(printable("ok\xe6\x97"), "ok\\xe6\\x97");         // truncated at the end
  EXPECT_EQ(printable("\xe6" "ab"), "\\xe6" "ab");
}

TEST(Printable, IsIdempotent) {
  std::string once = printable("\x1b[31m\xff\n", LineBreaks::keep);
  EXPECT_EQ(printable(once, LineBreaks::keep), once);
}

}  // namespace
}  // namespace haco
