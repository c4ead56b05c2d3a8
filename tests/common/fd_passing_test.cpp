// Descriptors over a unix socket: what arrives, and what the receiver learns
// when the kernel cannot give it the descriptor that was sent.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "haco/error.hpp"
#include "haco/fd_passing.hpp"
#include "haco/unique_fd.hpp"

namespace haco {
namespace {

struct SocketPair {
  SocketPair() {
    int fds[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds), 0);
    a.reset(fds[0]);
    b.reset(fds[1]);
  }
  UniqueFd a, b;
};

ino_t inode_of(int fd) {
  struct stat st {};
  EXPECT_EQ(::fstat(fd, &st), 0);
  return st.st_ino;
}

TEST(FdPassing, TheDescriptorArrivesWithItsMessage) {
  SocketPair pair;
  int pipe_fds[2];
  ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
  UniqueFd read_end(pipe_fds[0]), write_end(pipe_fds[1]);
  send_with_fd(pair.a.get(), "hello", read_end.get(), "test socket");
  send_with_fd(pair.a.get(), "no descriptor", -1, "test socket");

  ReceivedMessage first = receive_with_fd(pair.b.get(), 64, "test socket");
  EXPECT_EQ(first.payload, "hello");
  ASSERT_TRUE(first.fd);
  EXPECT_FALSE(first.fd_lost);
  EXPECT_NE(first.fd.get(), read_end.get());
  EXPECT_EQ(inode_of(first.fd.get()), inode_of(read_end.get()));
  EXPECT_EQ(::fcntl(first.fd.get(), F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);

  ReceivedMessage second = receive_with_fd(pair.b.get(), 64, "test socket");
  EXPECT_EQ(second.payload, "no descriptor");
  EXPECT_FALSE(second.fd);
  EXPECT_FALSE(second.fd_lost);

  pair.a.reset();
  EXPECT_EQ(receive_with_fd(pair.b.get(), 64, "test socket").payload, "");
}

TEST(FdPassing, AMessageLongerThanExpectedIsAnError) {
  SocketPair pair;
  send_with_fd(pair.a.get(), std::string(100, 'x'), -1, "test socket");
  try {
    receive_with_fd(pair.b.get(), 10, "test socket");
    FAIL() << "a truncated message was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("larger than 10 bytes"), std::string::npos) << e.what();
  }
}

// The log writer reads its control socket without blocking: nothing there
// is EAGAIN, and the message that comes later arrives whole, with its
// descriptor.
TEST(FdPassing, ANonBlockingSocketWithNothingToReadSaysEagain) {
  SocketPair pair;
  ASSERT_EQ(::fcntl(pair.b.get(), F_SETFL, O_NONBLOCK), 0);
  try {
    receive_with_fd(pair.b.get(), 1 << 20, "test socket");
    FAIL() << "a message was received from an empty socket";
  } catch (const Error& e) {
    EXPECT_EQ(e.sys_errno(), EAGAIN) << e.what();
  }
  send_with_fd(pair.a.get(), std::string(3000, 'y'), pair.a.get(), "test socket");
  ReceivedMessage m = receive_with_fd(pair.b.get(), 1 << 20, "test socket");
  EXPECT_EQ(m.payload, std::string(3000, 'y'));
  EXPECT_TRUE(m.fd);
  EXPECT_FALSE(m.fd_lost);
}

// The receiver's descriptor table is full (its RLIMIT_NOFILE reached): the
// kernel drops the descriptor and sets MSG_CTRUNC. The message still
// arrives, and says that its descriptor was lost. Run in a forked child, so
// that the lowered limit and the full table are its own.
TEST(FdPassing, ADescriptorTheReceiverCannotTakeIsReportedLost) {
  SocketPair pair;
  send_with_fd(pair.a.get(), "pid 1234", pair.a.get(), "test socket");
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Exit statuses: 0 lost and said so, 1 the descriptor arrived anyway,
    // 2 nothing said, 3 the payload is wrong, 4 setup failed, 5 an exception.
    rlimit low{32, 32};
    rlimit hard{};
    ::getrlimit(RLIMIT_NOFILE, &hard);
    low.rlim_max = hard.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &low) != 0) ::_exit(4);
    while (::fcntl(0, F_DUPFD, 0) >= 0) {
    }
    if (errno != EMFILE) ::_exit(4);
    try {
      ReceivedMessage m = receive_with_fd(pair.b.get(), 64, "test socket");
      if (m.payload != "pid 1234") ::_exit(3);
      if (m.fd) ::_exit(1);
      ::_exit(m.fd_lost ? 0 : 2);
    } catch (...) {
      ::_exit(5);
    }
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "0 lost and said so, 1 arrived, 2 dropped silently, 3 wrong payload, "
                                       "4 setup, 5 exception";

  // With a free slot the same message brings its descriptor.
  send_with_fd(pair.a.get(), "pid 1234", pair.a.get(), "test socket");
  ReceivedMessage m = receive_with_fd(pair.b.get(), 64, "test socket");
  EXPECT_TRUE(m.fd);
  EXPECT_FALSE(m.fd_lost);
}

}  // namespace
}  // namespace haco
