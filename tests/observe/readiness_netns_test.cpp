// Probes inside real network namespaces: each server is a forked child that
// unshares its own net namespace, brings its loopback up and listens on
// 127.0.0.1 at a port that refuses connections on the host.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <cstring>
#include <map>

#include "haco/error.hpp"
#include "haco/readiness.hpp"
#include "observe/test_servers.hpp"

namespace haco::observe {
namespace {

using namespace std::chrono_literals;

// Runs in the child: never returns.
[[noreturn]] void serve_in_new_netns(std::uint16_t port, int ready_fd) {
  auto die = [](const char* step) {
    std::fprintf(stderr, "netns server: %s: %s\n", step, std::strerror(errno));
    ::_exit(1);
  };
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::unshare(CLONE_NEWNET) != 0) die("unshare(CLONE_NEWNET)");
  // A new net namespace has only a loopback device, and it is down.
  int ctl = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (ctl < 0) die("socket");
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  if (::ioctl(ctl, SIOCGIFFLAGS, &ifr) != 0) die("SIOCGIFFLAGS lo");
  ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
  if (::ioctl(ctl, SIOCSIFFLAGS, &ifr) != 0) die("SIOCSIFFLAGS lo");
  ::close(ctl);
  int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listener < 0) die("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) die("bind");
  if (::listen(listener, 64) != 0) die("listen");
  if (::write(ready_fd, "r", 1) != 1) die("write");
  ::close(ready_fd);
  static constexpr std::string_view reply = "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n";
  for (;;) {
    int conn = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn < 0) continue;
    char buf[1024];
    // A TCP probe closes at once; an HTTP probe sends its request first.
    if (::read(conn, buf, sizeof buf) > 0 && ::write(conn, reply.data(), reply.size()) < 0) die("write");
    ::close(conn);
  }
}

// A child serving in its own net namespace; killed and reaped on destruction.
class NetnsServer {
 public:
  explicit NetnsServer(std::uint16_t port) {
    int fds[2];
    check_sys(::pipe2(fds, O_CLOEXEC), "pipe2");
    UniqueFd read_end(fds[0]), write_end(fds[1]);
    pid_ = static_cast<pid_t>(check_sys(::fork(), "fork"));
    if (pid_ == 0) serve_in_new_netns(port, write_end.get());
    write_end.reset();
    char c = 0;
    if (::read(read_end.get(), &c, 1) != 1) {
      stop();
      throw Error("the net namespace server did not start (see its message above)");
    }
  }
  ~NetnsServer() { stop(); }
  NetnsServer(const NetnsServer&) = delete;
  NetnsServer& operator=(const NetnsServer&) = delete;
  pid_t pid() const { return pid_; }

  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
};

class ReadinessInNetns : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "creating a network namespace needs root";
  }
};

struct Reports {
  std::map<InstanceId, ProbeResult> results;
  std::size_t expected = 0;
  boost::asio::io_context* io = nullptr;
  ProbeCallback collect() {
    return [this](InstanceId id, const ProbeResult& r) {
      results[id] = r;
      if (results.size() >= expected) io->stop();
    };
  }
};

TEST_F(ReadinessInNetns, ProbesThePortInsideTheNamespaceNotOnTheHost) {
  boost::asio::io_context io;
  // The port refuses on the host for the whole test; inside the namespace a
  // server listens on the same address and port.
  testing::RefusingPort host_port(io);
  NetnsServer server(host_port.port());
  UniqueFd netns = open_netns(server.pid());

  Reports reports{{}, 3, &io};
  ReadinessProber prober(io);
  prober.watch(0, probe_spec(ReadySpec{}, host_port.port(), netns.get()), Clock::now() + 5s, reports.collect());
  prober.watch(1, probe_spec(parse_ready_spec("http:/"), host_port.port(), netns.get()), Clock::now() + 5s,
               reports.collect());
  prober.watch(2, probe_spec(ReadySpec{}, host_port.port()), Clock::now() + 300ms, reports.collect());
  // The prober holds its own copy of the namespace fd.
  netns.reset();
  io.run_for(20s);

  ASSERT_EQ(reports.results.size(), 3u);
  EXPECT_TRUE(reports.results[0].ready) << reports.results[0].error;
  EXPECT_TRUE(reports.results[1].ready) << reports.results[1].error;
  EXPECT_FALSE(reports.results[2].ready);
  EXPECT_NE(reports.results[2].error.find("Connection refused"), std::string::npos) << reports.results[2].error;
}

TEST_F(ReadinessInNetns, ManyNamespacesWithTheSamePortAtOnce) {
  boost::asio::io_context io;
  testing::RefusingPort host_port(io);
  std::vector<std::unique_ptr<NetnsServer>> servers;
  Reports reports{{}, 8, &io};
  ReadinessProber prober(io);
  for (InstanceId id = 0; id < 8; ++id) {
    servers.push_back(std::make_unique<NetnsServer>(host_port.port()));
    UniqueFd netns = open_netns(servers.back()->pid());
    prober.watch(id, probe_spec(parse_ready_spec("http:/index.php"), host_port.port(), netns.get()),
                 Clock::now() + 5s, reports.collect());
  }
  io.run_for(20s);
  ASSERT_EQ(reports.results.size(), 8u);
  for (auto& [id, r] : reports.results) EXPECT_TRUE(r.ready) << id << ": " << r.error;
}

TEST_F(ReadinessInNetns, ANamespaceWhoseServerIsGoneTimesOut) {
  boost::asio::io_context io;
  testing::RefusingPort host_port(io);
  NetnsServer server(host_port.port());
  UniqueFd netns = open_netns(server.pid());
  server.stop();
  // The namespace lives on through the fd, with nobody listening in it.
  Reports reports{{}, 1, &io};
  ReadinessProber prober(io);
  prober.watch(0, probe_spec(ReadySpec{}, host_port.port(), netns.get()), Clock::now() + 200ms, reports.collect());
  io.run_for(20s);
  ASSERT_EQ(reports.results.size(), 1u);
  EXPECT_FALSE(reports.results[0].ready);
  EXPECT_NE(reports.results[0].error.find("not ready after 0.2 s"), std::string::npos) << reports.results[0].error;
}

}  // namespace
}  // namespace haco::observe
