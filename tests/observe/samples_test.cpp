#include "haco/samples.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "haco/error.hpp"

namespace haco::observe {
namespace {

using namespace std::chrono_literals;

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

TEST(CsvField, QuotesOnlyWhatNeedsIt) {
  EXPECT_EQ(csv_field("web-10001"), "web-10001");
  EXPECT_EQ(csv_field(""), "");
  EXPECT_EQ(csv_field("a,b"), "\"a,b\"");
  EXPECT_EQ(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(csv_field("two\nlines"), "\"two\nlines\"");
}

TEST(SamplesCsv, OneRowPerInstanceAndPhaseInIndexThenStartOrder) {
  const auto t0 = Clock::now();
  LatencyRecorder recorder(t0);
  recorder.add_instance(0, "web-10001");
  recorder.add_instance(1, "web-10002");
  // Recorded out of order: the rows come sorted by index, then start.
  recorder.record(1, phase::rootfs, t0 + 2ms, t0 + 4500us, false, "mkdirat /x, y: Permission denied");
  recorder.record(0, phase::exec_to_ready, t0 + 15ms, t0 + 327250us);
  recorder.record(0, phase::rootfs, t0 + 1ms, t0 + 13500us);
  recorder.record(0, phase::clone_to_exec, t0 + 13500us, t0 + 15ms);

  const auto csv = samples_csv(recorder, {{0, 10001}, {1, 10002}});
  const std::vector<std::string> expected{
      "instance,index,port,phase,start_ms,end_ms,duration_ms,ok,error",
      "web-10001,0,10001,rootfs,1.000,13.500,12.500,1,",
      "web-10001,0,10001,clone_to_exec,13.500,15.000,1.500,1,",
      "web-10001,0,10001,exec_to_ready,15.000,327.250,312.250,1,",
      "web-10002,1,10002,rootfs,2.000,4.500,2.500,0,\"mkdirat /x, y: Permission denied\"",
  };
  EXPECT_EQ(lines_of(csv), expected);
  EXPECT_EQ(csv.back(), '\n');
}

TEST(SamplesCsv, UnknownPortIsEmptyAndAnOpenPhaseIsUnfinished) {
  const auto t0 = Clock::now() - 50ms;
  LatencyRecorder recorder(t0);
  recorder.begin(3, phase::exec_to_ready, t0 + 10ms);
  const auto lines = lines_of(samples_csv(recorder, {}));
  ASSERT_EQ(lines.size(), 2u);
  // Unnamed instance, no port, still open: ends now (at least 50 ms in).
  EXPECT_EQ(lines[1].rfind("instance 3,3,,exec_to_ready,10.000,", 0), 0u) << lines[1];
  EXPECT_TRUE(lines[1].ends_with(",0,unfinished")) << lines[1];
  const auto end_field = lines[1].substr(std::string("instance 3,3,,exec_to_ready,10.000,").size());
  EXPECT_GE(std::stod(end_field), 50.0) << lines[1];
}

TEST(SamplesCsv, EmptyRecorderIsTheHeaderAlone) {
  LatencyRecorder recorder;
  EXPECT_EQ(samples_csv(recorder, {}), std::string(kSamplesCsvHeader) + "\n");
}

TEST(SamplesCsv, WrittenAtomicallyWithMode0644AndErrorsNameThePath) {
  std::string pattern = std::string(HACO_BUILD_DIR) + "/observe-samples-XXXXXX";
  ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
  const std::filesystem::path dir = pattern;
  struct Cleanup {
    std::filesystem::path dir;
    ~Cleanup() { std::filesystem::remove_all(dir); }
  } cleanup{dir};

  const auto t0 = Clock::now();
  LatencyRecorder recorder(t0);
  recorder.add_instance(0, "web-10001");
  recorder.record(0, phase::rootfs, t0, t0 + 2ms);
  const auto path = (dir / "samples.csv").string();
  write_samples_csv(recorder, {{0, 10001}}, path);
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str(), samples_csv(recorder, {{0, 10001}}));
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u);
  // Only the file itself in the directory: no temporary left behind.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir), std::filesystem::directory_iterator()), 1);

  const auto missing = (dir / "no-such-dir" / "samples.csv").string();
  try {
    write_samples_csv(recorder, {}, missing);
    FAIL() << "no error for " << missing;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(missing), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace haco::observe
