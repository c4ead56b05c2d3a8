#include <gtest/gtest.h>
#include <sys/socket.h>

#include "runtime/handshake.hpp"

namespace haco::runtime {
namespace {

struct Pair {
  Pair() {
    int sv[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    parent = std::make_unique<Channel>(UniqueFd(sv[0]));
    child = std::make_unique<Channel>(UniqueFd(sv[1]));
  }
  std::unique_ptr<Channel> parent, child;
};

TEST(Handshake, AnUnexpectedMessageNamesWhatWasExpectedAndWhatArrived) {
  Pair p;
  p.child->send(MessageType::about_to_exec);
  try {
    p.parent->expect(MessageType::maps_request);
    FAIL() << "an out-of-order message was accepted";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "handshake: expected maps_request, got about_to_exec");
  }
}

TEST(Handshake, EndOfFileBeforeTheExpectedMessageIsAnError) {
  Pair p;
  p.child.reset();
  EXPECT_THROW(p.parent->expect(MessageType::maps_request), Error);
}

TEST(Handshake, AChildFailureArrivesWithItsStepCallPathErrnoAndContext) {
  Pair p;
  Error sent = Error::from_errno("mkdirat", "/tmp/x", EACCES);
  sent.with_context("mount point /tmp/x");
  p.child->send(failure_message(ChildStep::mounts, sent));
  try {
    p.parent->expect(MessageType::about_to_exec);
    FAIL() << "a child failure was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.sys_errno(), EACCES);
    EXPECT_EQ(e.call(), "mkdirat");
    EXPECT_EQ(e.path(), "/tmp/x");
    EXPECT_STREQ(e.what(), "mounting: mount point /tmp/x: mkdirat /tmp/x: Permission denied");
  }
}

TEST(Handshake, MessagesArriveInOrderAndWhole) {
  Pair p;
  p.child->send(MessageType::maps_request);
  p.parent->send(MessageType::maps_written);
  EXPECT_EQ(p.parent->expect(MessageType::maps_request).type, MessageType::maps_request);
  EXPECT_EQ(p.child->expect(MessageType::maps_written).type, MessageType::maps_written);
}

}  // namespace
}  // namespace haco::runtime
