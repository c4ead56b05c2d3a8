#include "haco/trace.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "haco/error.hpp"

namespace haco::observe {
namespace {

using namespace std::chrono_literals;

// A directory under the build tree, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string pattern = std::string(HACO_BUILD_DIR) + "/observe-trace-XXXXXX";
    if (!::mkdtemp(pattern.data())) throw Error::from_errno("mkdtemp", pattern, errno);
    path_ = pattern;
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

const nlohmann::json* find_event(const nlohmann::json& trace, std::string_view ph, std::string_view name,
                                 std::size_t tid) {
  for (const auto& e : trace.at("traceEvents")) {
    if (e.at("ph") == ph && e.at("name") == name && e.at("tid") == tid) return &e;
  }
  return nullptr;
}

TEST(ChromeTrace, OneNamedTrackPerInstanceAndCompleteEventsInMicroseconds) {
  const auto t0 = Clock::now();
  LatencyRecorder recorder(t0);
  recorder.add_instance(0, "web-10001");
  recorder.add_instance(1, "web-10002");
  recorder.record(0, phase::rootfs, t0 + 1ms, t0 + 13500us);
  recorder.record(0, phase::clone_to_exec, t0 + 13500us, t0 + 15ms);
  recorder.record(1, phase::rootfs, t0 + 2ms, t0 + 4ms, false, "mkdirat /x: Permission denied");

  const auto trace = chrome_trace(recorder, "haco-fleet up web");
  EXPECT_EQ(trace.at("displayTimeUnit"), "ms");
  const auto& events = trace.at("traceEvents");
  ASSERT_TRUE(events.is_array());

  const auto* process = find_event(trace, "M", "process_name", 0);
  ASSERT_TRUE(process);
  EXPECT_EQ(process->at("pid"), 1);
  EXPECT_EQ(process->at("args").at("name"), "haco-fleet up web");

  for (std::size_t tid : {0u, 1u}) {
    const auto* name = find_event(trace, "M", "thread_name", tid);
    ASSERT_TRUE(name) << tid;
    EXPECT_EQ(name->at("pid"), 1);
    EXPECT_EQ(name->at("args").at("name"), tid == 0 ? "web-10001" : "web-10002");
  }

  const auto* rootfs = find_event(trace, "X", "rootfs", 0);
  ASSERT_TRUE(rootfs);
  EXPECT_EQ(rootfs->at("pid"), 1);
  EXPECT_DOUBLE_EQ(rootfs->at("ts").get<double>(), 1000);
  EXPECT_DOUBLE_EQ(rootfs->at("dur").get<double>(), 12500);
  EXPECT_TRUE(rootfs->at("args").empty());

  const auto* clone = find_event(trace, "X", "clone_to_exec", 0);
  ASSERT_TRUE(clone);
  EXPECT_DOUBLE_EQ(clone->at("ts").get<double>(), 13500);
  EXPECT_DOUBLE_EQ(clone->at("dur").get<double>(), 1500);

  const auto* failed = find_event(trace, "X", "rootfs", 1);
  ASSERT_TRUE(failed);
  EXPECT_EQ(failed->at("args").at("ok"), false);
  EXPECT_EQ(failed->at("args").at("error"), "mkdirat /x: Permission denied");

  std::size_t complete = 0;
  for (const auto& e : events) complete += e.at("ph") == "X";
  EXPECT_EQ(complete, 3u);
}

TEST(ChromeTrace, OpenPhasesEndNowAndUnnamedInstancesGetATrack) {
  const auto t0 = Clock::now() - 50ms;
  LatencyRecorder recorder(t0);
  recorder.begin(7, phase::exec_to_ready, t0 + 10ms);
  const auto trace = chrome_trace(recorder, "fleet");
  const auto* open = find_event(trace, "X", "exec_to_ready", 7);
  ASSERT_TRUE(open);
  EXPECT_EQ(open->at("args").at("unfinished"), true);
  EXPECT_GE(open->at("dur").get<double>(), 40000);
  const auto* name = find_event(trace, "M", "thread_name", 7);
  ASSERT_TRUE(name);
  EXPECT_EQ(name->at("args").at("name"), "instance 7");
}

TEST(WriteChromeTrace, WritesParsableJsonAndLeavesNoTemporaryFile) {
  TempDir dir;
  const auto t0 = Clock::now();
  LatencyRecorder recorder(t0);
  recorder.add_instance(0, "web-10001");
  recorder.record(0, phase::expand, t0, t0 + 2ms);
  const auto path = (dir.path() / "up.trace.json").string();
  write_chrome_trace(recorder, "haco-fleet up web", path);
  std::ifstream in(path);
  const auto parsed = nlohmann::json::parse(in);
  EXPECT_EQ(parsed, chrome_trace(recorder, "haco-fleet up web"));
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), std::filesystem::directory_iterator()), 1);
}

TEST(WriteChromeTrace, NamesTheFileWhenItCannotWrite) {
  TempDir dir;
  LatencyRecorder recorder;
  const auto path = (dir.path() / "missing" / "t.json").string();
  try {
    write_chrome_trace(recorder, "fleet", path);
    ADD_FAILURE() << "wrote into a directory that does not exist";
  } catch (const Error& e) {
    EXPECT_EQ(e.sys_errno(), ENOENT);
    EXPECT_NE(std::string(e.what()).find("writing the trace " + path), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace haco::observe
