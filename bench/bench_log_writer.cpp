// Log writer throughput: a thread writes 80-byte lines into a pipe in
// writes of `chunk` bytes (Arg) while this thread drains the pipe into an
// instance log as the log writer does (poll, drain_pipe_into_log), with a
// 64 MiB cap so that logs and their time indexes rotate. The log lives in
// $TMPDIR (a tmpfs keeps the disk out of the figure).
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>

#include "haco/error.hpp"
#include "supervisor/instance_log.hpp"

namespace {

using namespace haco::supervisor;

constexpr std::uint64_t kBytesPerRound = 256ull << 20;
constexpr std::uint64_t kCap = 64ull << 20;

void BM_DrainIntoLog(benchmark::State& state) {
  const std::size_t chunk = static_cast<std::size_t>(state.range(0));
  std::string base = (std::filesystem::temp_directory_path() / "haco-bench-log-XXXXXX").string();
  if (!::mkdtemp(base.data())) throw haco::Error::from_errno("mkdtemp", base, errno);
  const std::string log = base + "/logs/bench.log";
  prepare_instance_log(log);
  std::string line(79, 'x');
  line += '\n';
  std::string block;
  while (block.size() < chunk) block += line;
  block.resize(chunk);
  block.back() = '\n';
  InstanceLogFile file(log, kCap);
  PipePeek peek;
  for (auto _ : state) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw haco::Error::from_errno("pipe2", errno);
    ::fcntl(fds[0], F_SETFL, O_NONBLOCK);
    std::thread writer([&] {
      for (std::uint64_t sent = 0; sent < kBytesPerRound; sent += chunk)
        for (std::size_t off = 0; off < block.size();) {
          ssize_t n = ::write(fds[1], block.data() + off, block.size() - off);
          if (n < 0) std::abort();
          off += static_cast<std::size_t>(n);
        }
      ::close(fds[1]);
    });
    for (;;) {
      pollfd p{fds[0], POLLIN, 0};
      ::poll(&p, 1, -1);
      if (drain_pipe_into_log(fds[0], file, peek, 1 << 20).end_of_file) break;
    }
    writer.join();
    ::close(fds[0]);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * kBytesPerRound));
  std::filesystem::remove_all(base);
}
BENCHMARK(BM_DrainIntoLog)->Arg(80)->Arg(4096)->Arg(65536)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
