#include "haco/readiness.hpp"

#include <gtest/gtest.h>

#include <boost/asio.hpp>
#include <map>
#include <optional>

#include "haco/error.hpp"
#include "observe/test_servers.hpp"

namespace haco::observe {
namespace {

using namespace std::chrono_literals;
using testing::HttpServer;
using testing::RawServer;
using testing::RefusingPort;
using testing::SilentServer;

TEST(ParseReadySpec, AcceptsTcpAndHttpPaths) {
  EXPECT_EQ(parse_ready_spec("tcp"), (ReadySpec{ProbeKind::tcp, ""}));
  EXPECT_EQ(parse_ready_spec("http:/"), (ReadySpec{ProbeKind::http, "/"}));
  EXPECT_EQ(parse_ready_spec("http:/index.php?x=1"), (ReadySpec{ProbeKind::http, "/index.php?x=1"}));
  EXPECT_EQ(format_ready_spec(parse_ready_spec("http:/healthz")), "http:/healthz");
  EXPECT_EQ(format_ready_spec(parse_ready_spec("tcp")), "tcp");
}

TEST(ParseReadySpec, RefusesOtherTextWithTheTextQuoted) {
  for (std::string bad : {"", "udp", "TCP", "http", "http:", "http:index.php", "http:/a b", "http:/\x01", "tcp:"}) {
    try {
      parse_ready_spec(bad);
      ADD_FAILURE() << "accepted " << bad;
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find("--ready"), std::string::npos) << e.what();
    }
  }
  try {
    parse_ready_spec("udp");
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("\"udp\""), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("http:/PATH"), std::string::npos) << e.what();
  }
}

TEST(ProbeSpecFromReady, CarriesKindPathPortAndNamespace) {
  auto spec = probe_spec(parse_ready_spec("http:/x"), 10001, 7);
  EXPECT_EQ(spec.kind, ProbeKind::http);
  EXPECT_EQ(spec.http_path, "/x");
  EXPECT_EQ(spec.port, 10001);
  EXPECT_EQ(spec.netns_fd, 7);
  EXPECT_EQ(spec.address, "127.0.0.1");
}

// Runs the io_context until `expected` reports arrived (the test servers
// keep it busy forever), then a little longer to catch a second report.
struct ProbeRun {
  boost::asio::io_context io;
  std::map<InstanceId, ProbeResult> results;
  std::map<InstanceId, int> reports;
  std::size_t expected = 1;
  std::size_t total = 0;

  ProbeCallback collect() {
    return [this](InstanceId id, const ProbeResult& r) {
      results[id] = r;
      ++reports[id];
      if (++total >= expected) io.stop();
    };
  }
  void run(std::size_t reports_expected = 1) {
    expected = reports_expected;
    io.run_for(20s);
    io.restart();
    io.run_for(50ms);
  }
};

ProbeSpec tcp_spec(std::uint16_t port) { return probe_spec(ReadySpec{}, port); }
ProbeSpec http_spec(std::uint16_t port, std::string path) {
  return probe_spec(ReadySpec{ProbeKind::http, std::move(path)}, port);
}

TEST(ReadinessProber, TcpListenerIsReady) {
  ProbeRun run;
  boost::asio::ip::tcp::acceptor listener(run.io, {boost::asio::ip::make_address("127.0.0.1"), 0});
  ReadinessProber prober(run.io);
  const auto before = Clock::now();
  prober.watch(1, tcp_spec(listener.local_endpoint().port()), Clock::now() + 5s, run.collect());
  EXPECT_EQ(prober.pending(), 1u);
  run.run();
  ASSERT_EQ(run.reports[1], 1);
  EXPECT_TRUE(run.results[1].ready) << run.results[1].error;
  EXPECT_TRUE(run.results[1].error.empty());
  EXPECT_EQ(run.results[1].attempts, 1u);
  EXPECT_GE(run.results[1].finished_at, before);
  EXPECT_EQ(prober.pending(), 0u);
}

TEST(ReadinessProber, PortNobodyListensOnTimesOutWithTheLastError) {
  ProbeRun run;
  RefusingPort refusing(run.io);
  ReadinessProber prober(run.io);
  const auto start = Clock::now();
  prober.watch(3, tcp_spec(refusing.port()), start + 300ms, run.collect());
  run.run();
  const auto took = Clock::now() - start;
  ASSERT_EQ(run.reports[3], 1);
  const auto& r = run.results[3];
  EXPECT_FALSE(r.ready);
  EXPECT_NE(r.error.find("not ready after 0.3 s"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("connect 127.0.0.1:" + std::to_string(refusing.port()) + ": Connection refused"),
            std::string::npos)
      << r.error;
  // Retried with a backoff, neither once nor in a busy loop.
  EXPECT_GT(r.attempts, 3u);
  EXPECT_LT(r.attempts, 300u);
  EXPECT_GE(took, 300ms);
}

TEST(ReadinessProber, ListenerThatAppearsLaterIsFoundByARetry) {
  ProbeRun run;
  auto refusing = std::make_unique<RefusingPort>(run.io);
  const auto port = refusing->port();
  ReadinessProber prober(run.io);
  prober.watch(4, tcp_spec(port), Clock::now() + 5s, run.collect());
  std::optional<boost::asio::ip::tcp::acceptor> listener;
  boost::asio::steady_timer later(run.io, 100ms);
  later.async_wait([&](const boost::system::error_code&) {
    refusing.reset();
    listener.emplace(run.io, boost::asio::ip::tcp::endpoint{boost::asio::ip::make_address("127.0.0.1"), port});
  });
  const auto start = Clock::now();
  run.run();
  ASSERT_TRUE(run.results[4].ready) << run.results[4].error;
  EXPECT_GT(run.results[4].attempts, 1u);
  EXPECT_GE(run.results[4].finished_at - start, 100ms);
}

TEST(ReadinessProber, Http200IsReadyAndTheRequestIsAnHttp10GetWithHost) {
  ProbeRun run;
  HttpServer server(run.io, [](std::size_t) { return "200 OK"; });
  ReadinessProber prober(run.io);
  prober.watch(5, http_spec(server.port(), "/index.php"), Clock::now() + 5s, run.collect());
  run.run();
  ASSERT_TRUE(run.results[5].ready) << run.results[5].error;
  ASSERT_EQ(server.requests().size(), 1u);
  const auto& head = server.requests()[0];
  EXPECT_EQ(head.substr(0, head.find("\r\n")), "GET /index.php HTTP/1.0");
  EXPECT_NE(head.find("\r\nHost: 127.0.0.1:" + std::to_string(server.port()) + "\r\n"), std::string::npos) << head;
}

TEST(ReadinessProber, Http500IsNotReadyAndSaysWhy) {
  ProbeRun run;
  HttpServer server(run.io, [](std::size_t) { return "500 Internal Server Error"; });
  ReadinessProber prober(run.io);
  prober.watch(6, http_spec(server.port(), "/"), Clock::now() + 300ms, run.collect());
  run.run();
  const auto& r = run.results[6];
  EXPECT_FALSE(r.ready);
  EXPECT_NE(r.error.find("GET / from 127.0.0.1:" + std::to_string(server.port()) + ": 500 Internal Server Error"),
            std::string::npos)
      << r.error;
  EXPECT_GT(server.requests().size(), 1u);
  EXPECT_EQ(server.requests().size(), r.attempts);
}

TEST(ReadinessProber, HttpBecomesReadyWhenTheServerStartsAnswering2xx) {
  ProbeRun run;
  HttpServer server(run.io, [](std::size_t n) { return n < 3 ? "503 Service Unavailable" : "204 No Content"; });
  ReadinessProber prober(run.io);
  prober.watch(7, http_spec(server.port(), "/"), Clock::now() + 5s, run.collect());
  run.run();
  ASSERT_TRUE(run.results[7].ready) << run.results[7].error;
  EXPECT_EQ(run.results[7].attempts, 4u);
  EXPECT_EQ(server.requests().size(), 4u);
}

TEST(ReadinessProber, HttpAnswersThatAreNotStatusLinesSayWhatCame) {
  ProbeRun run;
  RawServer garbage(run.io, "SSH-2.0-OpenSSH_9.2\r\n");
  RawServer closes(run.io, "");
  RawServer no_crlf(run.io, "HTTP/1.0 200", false);
  RawServer http09(run.io, "HTTP/1.1 2000 Way OK\r\n");
  RawServer redirect(run.io, "HTTP/1.1 302 Found\r\nLocation: /x\r\n\r\n");
  ReadinessProber prober(run.io);
  const auto deadline = Clock::now() + 200ms;
  prober.watch(20, http_spec(garbage.port(), "/"), deadline, run.collect());
  prober.watch(21, http_spec(closes.port(), "/"), deadline, run.collect());
  prober.watch(22, http_spec(no_crlf.port(), "/"), deadline, run.collect());
  prober.watch(23, http_spec(http09.port(), "/"), deadline, run.collect());
  prober.watch(24, http_spec(redirect.port(), "/"), deadline, run.collect());
  run.run(5);
  for (InstanceId id = 20; id <= 24; ++id) EXPECT_FALSE(run.results[id].ready) << id;
  EXPECT_NE(run.results[20].error.find(": not an HTTP status line: \"SSH-2.0-OpenSSH_9.2\""), std::string::npos)
      << run.results[20].error;
  EXPECT_NE(run.results[21].error.find(": connection closed before a status line"), std::string::npos)
      << run.results[21].error;
  // A status line cut short is not taken for a 200.
  EXPECT_NE(run.results[22].error.find(": incomplete status line: \"HTTP/1.0 200\""), std::string::npos)
      << run.results[22].error;
  EXPECT_NE(run.results[23].error.find("not an HTTP status line"), std::string::npos) << run.results[23].error;
  EXPECT_NE(run.results[24].error.find(": 302 Found"), std::string::npos) << run.results[24].error;
}

TEST(ReadinessProber, ProbesAnIpv6Address) {
  ProbeRun run;
  boost::system::error_code ec;
  boost::asio::ip::tcp::acceptor listener(run.io);
  listener.open(boost::asio::ip::tcp::v6(), ec);
  if (!ec) listener.bind({boost::asio::ip::make_address("::1"), 0}, ec);
  if (!ec) listener.listen(16, ec);
  if (ec) GTEST_SKIP() << "no IPv6 loopback here: " << ec.message();
  ReadinessProber prober(run.io);
  auto spec = tcp_spec(listener.local_endpoint().port());
  spec.address = "::1";
  prober.watch(25, spec, Clock::now() + 5s, run.collect());
  run.run();
  EXPECT_TRUE(run.results[25].ready) << run.results[25].error;
}

TEST(ReadinessProber, TcpProbeOfAServerThatNeverAnswersIsReady) {
  ProbeRun run;
  SilentServer server(run.io);
  ReadinessProber prober(run.io);
  prober.watch(8, tcp_spec(server.port()), Clock::now() + 5s, run.collect());
  run.run();
  EXPECT_TRUE(run.results[8].ready) << run.results[8].error;
}

TEST(ReadinessProber, HttpProbeOfASilentServerGivesUpEachAttemptAfterItsTimeout) {
  ProbeRun run;
  SilentServer server(run.io);
  ProbeOptions options;
  options.attempt_timeout = 100ms;
  ReadinessProber prober(run.io, options);
  prober.watch(9, http_spec(server.port(), "/"), Clock::now() + 450ms, run.collect());
  run.run();
  const auto& r = run.results[9];
  EXPECT_FALSE(r.ready);
  EXPECT_NE(r.error.find("no answer within 100 ms"), std::string::npos) << r.error;
  EXPECT_GE(r.attempts, 3u);
  EXPECT_LE(r.attempts, 5u);
  EXPECT_EQ(server.accepted(), r.attempts);
}

TEST(ReadinessProber, CancelReportsCancelledOnceAndStopsProbing) {
  ProbeRun run;
  RefusingPort refusing(run.io);
  ReadinessProber prober(run.io);
  prober.watch(10, tcp_spec(refusing.port()), Clock::now() + 60s, run.collect());
  prober.watch(11, tcp_spec(refusing.port()), Clock::now() + 60s, run.collect());
  boost::asio::steady_timer later(run.io, 50ms);
  later.async_wait([&](const boost::system::error_code&) {
    prober.cancel(10);
    EXPECT_EQ(run.reports.count(10), 0u) << "reported from inside cancel()";
    EXPECT_EQ(prober.pending(), 1u);
    prober.cancel_all();
    EXPECT_EQ(prober.pending(), 0u);
  });
  const auto start = Clock::now();
  run.run(2);
  EXPECT_LT(Clock::now() - start, 10s);
  for (InstanceId id : {10, 11}) {
    EXPECT_EQ(run.reports[id], 1);
    EXPECT_FALSE(run.results[id].ready);
    EXPECT_EQ(run.results[id].error, "cancelled");
  }
}

TEST(ReadinessProber, WatchingAnIdAgainReplacesTheOldWatch) {
  ProbeRun run;
  RefusingPort refusing(run.io);
  boost::asio::ip::tcp::acceptor listener(run.io, {boost::asio::ip::make_address("127.0.0.1"), 0});
  ReadinessProber prober(run.io);
  std::vector<ProbeResult> seen;
  prober.watch(12, tcp_spec(refusing.port()), Clock::now() + 60s,
               [&](InstanceId, const ProbeResult& r) { seen.push_back(r); });
  prober.watch(12, tcp_spec(listener.local_endpoint().port()), Clock::now() + 5s,
               [&](InstanceId, const ProbeResult& r) { seen.push_back(r); });
  run.run();
  ASSERT_EQ(seen.size(), 2u);
  int ready = 0, cancelled = 0;
  for (const auto& r : seen) {
    ready += r.ready;
    cancelled += r.error == "cancelled";
  }
  EXPECT_EQ(ready, 1);
  EXPECT_EQ(cancelled, 1);
}

TEST(ReadinessProber, ManyInstancesAtOnceOnOneIoContext) {
  ProbeRun run;
  std::vector<std::unique_ptr<HttpServer>> servers;
  std::vector<std::unique_ptr<RefusingPort>> refusing;
  ReadinessProber prober(run.io);
  for (InstanceId id = 0; id < 60; ++id) {
    if (id % 3 == 2) {
      refusing.push_back(std::make_unique<RefusingPort>(run.io));
      prober.watch(id, tcp_spec(refusing.back()->port()), Clock::now() + 200ms, run.collect());
    } else {
      servers.push_back(std::make_unique<HttpServer>(run.io, [](std::size_t) { return "200 OK"; }));
      prober.watch(id, http_spec(servers.back()->port(), "/"), Clock::now() + 5s, run.collect());
    }
  }
  run.run(60);
  ASSERT_EQ(run.results.size(), 60u);
  for (InstanceId id = 0; id < 60; ++id) {
    EXPECT_EQ(run.reports[id], 1);
    EXPECT_EQ(run.results[id].ready, id % 3 != 2) << id << ": " << run.results[id].error;
  }
}

TEST(ReadinessProber, DestroyedProberReportsNothingAndLeavesNothingPending) {
  ProbeRun run;
  RefusingPort refusing(run.io);
  {
    ReadinessProber prober(run.io);
    prober.watch(13, tcp_spec(refusing.port()), Clock::now() + 60s, run.collect());
  }
  const auto start = Clock::now();
  run.io.run_for(5s);
  EXPECT_LT(Clock::now() - start, 5s) << "work left pending by a destroyed prober";
  EXPECT_EQ(run.reports.count(13), 0u);
}

TEST(ReadinessProber, PendingWatchesMayOutliveTheProberUntilTheIoContextGoes) {
  auto run = std::make_unique<ProbeRun>();
  {
    SilentServer silent(run->io);
    RefusingPort refusing(run->io);
    ReadinessProber prober(run->io);
    prober.watch(14, http_spec(silent.port(), "/"), Clock::now() + 60s, run->collect());
    prober.watch(15, tcp_spec(refusing.port()), Clock::now() + 60s, run->collect());
    run->io.run_for(30ms);
    prober.cancel_all();
  }
  // The cancellations were posted but never run: the io_context destroys them.
  EXPECT_TRUE(run->reports.empty());
  run.reset();
}

TEST(ReadinessProber, RefusesAnAddressThatIsNotAnIpLiteral) {
  boost::asio::io_context io;
  ReadinessProber prober(io);
  ProbeSpec spec = tcp_spec(80);
  spec.address = "localhost";
  EXPECT_THROW(prober.watch(1, spec, Clock::now() + 1s, [](InstanceId, const ProbeResult&) {}), Error);
  EXPECT_EQ(prober.pending(), 0u);
}

TEST(ReadinessProber, RefusesPortZeroAndAnHttpPathThatIsNotOne) {
  boost::asio::io_context io;
  ReadinessProber prober(io);
  auto ignore = [](InstanceId, const ProbeResult&) {};
  EXPECT_THROW(prober.watch(1, tcp_spec(0), Clock::now() + 1s, ignore), Error);
  EXPECT_THROW(prober.watch(1, http_spec(80, ""), Clock::now() + 1s, ignore), Error);
  EXPECT_THROW(prober.watch(1, http_spec(80, "/a b"), Clock::now() + 1s, ignore), Error);
  EXPECT_EQ(prober.pending(), 0u);
}

TEST(ReadinessProber, RefusesANetnsFdThatIsNotOpen) {
  boost::asio::io_context io;
  ReadinessProber prober(io);
  ProbeSpec spec = tcp_spec(80);
  spec.netns_fd = 999;
  try {
    prober.watch(1, spec, Clock::now() + 1s, [](InstanceId, const ProbeResult&) {});
    ADD_FAILURE() << "accepted a closed fd";
  } catch (const Error& e) {
    EXPECT_EQ(e.sys_errno(), EBADF) << e.what();
  }
}

TEST(OpenNetns, NamesTheProcPathWhenThePidDoesNotExist) {
  try {
    open_netns(0x3fffffff);
    ADD_FAILURE() << "opened a namespace of a pid that does not exist";
  } catch (const Error& e) {
    EXPECT_EQ(e.sys_errno(), ENOENT);
    EXPECT_EQ(e.path(), "/proc/1073741823/ns/net");
  }
  EXPECT_TRUE(open_netns(::getpid()));
}

}  // namespace
}  // namespace haco::observe
