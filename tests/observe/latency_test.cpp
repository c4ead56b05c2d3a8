#include "haco/latency.hpp"

#include <gtest/gtest.h>

#include <numeric>
#include <thread>

#include "haco/error.hpp"

namespace haco::observe {
namespace {

using namespace std::chrono_literals;

std::vector<double> one_to(int n) {
  std::vector<double> v(static_cast<std::size_t>(n));
  std::iota(v.begin(), v.end(), 1.0);
  return v;
}

TEST(NearestRankPercentile, PicksTheValueOfRankCeilPN) {
  EXPECT_EQ(nearest_rank_percentile({1, 2, 3, 4}, 50), 2);
  EXPECT_EQ(nearest_rank_percentile({1, 2, 3, 4}, 95), 4);
  EXPECT_EQ(nearest_rank_percentile({1, 2, 3, 4}, 25), 1);
  EXPECT_EQ(nearest_rank_percentile({1, 2, 3, 4}, 26), 2);
  EXPECT_EQ(nearest_rank_percentile(one_to(100), 50), 50);
  EXPECT_EQ(nearest_rank_percentile(one_to(100), 95), 95);
  EXPECT_EQ(nearest_rank_percentile(one_to(100), 99), 99);
  EXPECT_EQ(nearest_rank_percentile(one_to(100), 100), 100);
  EXPECT_EQ(nearest_rank_percentile(one_to(10), 50), 5);
  EXPECT_EQ(nearest_rank_percentile(one_to(10), 95), 10);
  EXPECT_EQ(nearest_rank_percentile(one_to(10), 99), 10);
  EXPECT_EQ(nearest_rank_percentile(one_to(20), 95), 19);
  EXPECT_EQ(nearest_rank_percentile(one_to(1000), 99), 990);
  EXPECT_EQ(nearest_rank_percentile({7.5}, 1), 7.5);
  EXPECT_EQ(nearest_rank_percentile({7.5}, 99), 7.5);
}

TEST(NearestRankPercentile, RefusesNoValuesAndPercentsOutsideTheRange) {
  EXPECT_THROW(nearest_rank_percentile({}, 50), Error);
  EXPECT_THROW(nearest_rank_percentile({1}, 0), Error);
  EXPECT_THROW(nearest_rank_percentile({1}, 100.5), Error);
}

TEST(LatencyRecorder, SummaryPerPhaseFromBeginAndEnd) {
  const auto t0 = Clock::now();
  LatencyRecorder recorder(t0);
  for (InstanceId id = 0; id < 100; ++id) {
    recorder.add_instance(id, "web-" + std::to_string(10001 + id));
    // rootfs takes id+1 ms: 1..100 ms.
    recorder.begin(id, phase::rootfs, t0);
    recorder.end(id, phase::rootfs, t0 + std::chrono::milliseconds(id + 1));
  }
  recorder.finish(t0 + 2s);
  const auto s = recorder.summary();
  EXPECT_DOUBLE_EQ(s.wall_seconds, 2.0);
  EXPECT_EQ(s.instances, 100u);
  EXPECT_EQ(s.failed_instances, 0u);
  EXPECT_DOUBLE_EQ(s.instances_per_second, 50.0);
  ASSERT_EQ(s.phases.size(), 1u);
  const auto& p = s.phases[0];
  EXPECT_EQ(p.phase, "rootfs");
  EXPECT_EQ(p.count, 100u);
  EXPECT_DOUBLE_EQ(p.min_ms, 1);
  EXPECT_DOUBLE_EQ(p.mean_ms, 50.5);
  EXPECT_DOUBLE_EQ(p.p50_ms, 50);
  EXPECT_DOUBLE_EQ(p.p95_ms, 95);
  EXPECT_DOUBLE_EQ(p.p99_ms, 99);
  EXPECT_DOUBLE_EQ(p.max_ms, 100);
}

TEST(LatencyRecorder, FailedIntervalsAreCountedButNotInThePercentiles) {
  const auto t0 = Clock::now();
  LatencyRecorder recorder(t0);
  recorder.record(0, phase::clone_to_exec, t0, t0 + 3ms);
  recorder.record(1, phase::clone_to_exec, t0, t0 + 5ms);
  recorder.begin(2, phase::clone_to_exec, t0);
  recorder.fail(2, phase::clone_to_exec, "exec /x: No such file or directory", t0 + 900ms);
  recorder.finish(t0 + 1s);
  const auto s = recorder.summary();
  EXPECT_EQ(s.instances, 3u);
  EXPECT_EQ(s.failed_instances, 1u);
  EXPECT_DOUBLE_EQ(s.instances_per_second, 2.0);
  ASSERT_EQ(s.phases.size(), 1u);
  EXPECT_EQ(s.phases[0].count, 2u);
  EXPECT_EQ(s.phases[0].failed, 1u);
  EXPECT_DOUBLE_EQ(s.phases[0].max_ms, 5);
  const auto intervals = recorder.intervals();
  ASSERT_EQ(intervals.size(), 3u);
  EXPECT_FALSE(intervals[2].ok);
  EXPECT_EQ(intervals[2].error, "exec /x: No such file or directory");
}

TEST(LatencyRecorder, OpenPhasesAreNotSummarisedAndKnownPhasesComeFirstInFlowOrder) {
  const auto t0 = Clock::now();
  LatencyRecorder recorder(t0);
  recorder.record(0, "pull", t0, t0 + 1ms);
  recorder.record(0, phase::exec_to_ready, t0, t0 + 1ms);
  recorder.record(0, phase::expand, t0, t0 + 1ms);
  recorder.begin(0, phase::rootfs, t0);
  recorder.record(0, "cgroup", t0, t0 + 1ms);
  const auto s = recorder.summary();
  std::vector<std::string> names;
  for (const auto& p : s.phases) names.push_back(p.phase);
  EXPECT_EQ(names, (std::vector<std::string>{"expand", "rootfs", "exec_to_ready", "pull", "cgroup"}));
  EXPECT_EQ(s.phases[1].count, 0u);
  EXPECT_EQ(s.phases[1].failed, 0u);
}

TEST(LatencyRecorder, BeginAgainMovesTheStartAndEndWithoutBeginIsAnInstant) {
  const auto t0 = Clock::now();
  LatencyRecorder recorder(t0);
  recorder.begin(0, phase::rootfs, t0);
  recorder.begin(0, phase::rootfs, t0 + 10ms);
  recorder.end(0, phase::rootfs, t0 + 15ms);
  recorder.end(1, phase::rootfs, t0 + 20ms);
  // A second interval of the same phase after the first has ended.
  recorder.begin(0, phase::rootfs, t0 + 30ms);
  recorder.end(0, phase::rootfs, t0 + 31ms);
  const auto intervals = recorder.intervals();
  ASSERT_EQ(intervals.size(), 3u);
  EXPECT_EQ(intervals[0].end - intervals[0].start, 5ms);
  EXPECT_EQ(intervals[1].end - intervals[1].start, 0ms);
  EXPECT_EQ(intervals[2].end - intervals[2].start, 1ms);
}

TEST(LatencyRecorder, RecordsFromManyThreadsAtOnce) {
  LatencyRecorder recorder;
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&recorder, t] {
      for (int i = 0; i < 500; ++i) {
        const InstanceId id = static_cast<InstanceId>(t * 500 + i);
        recorder.add_instance(id, "i" + std::to_string(id));
        recorder.begin(id, phase::clone_to_exec);
        recorder.end(id, phase::clone_to_exec);
        if (i % 50 == 0) recorder.summary();
      }
    });
  }
  for (auto& t : threads) t.join();
  recorder.finish();
  const auto s = recorder.summary();
  EXPECT_EQ(s.instances, 4000u);
  ASSERT_EQ(s.phases.size(), 1u);
  EXPECT_EQ(s.phases[0].count, 4000u);
  EXPECT_EQ(recorder.instances().size(), 4000u);
  for (const auto& i : recorder.intervals()) EXPECT_TRUE(i.finished);
}

TEST(LatencyRecorder, WallTimeRunsUntilFinish) {
  LatencyRecorder recorder;
  EXPECT_FALSE(recorder.finish_time());
  std::this_thread::sleep_for(20ms);
  EXPECT_GE(recorder.summary().wall_seconds, 0.02);
  recorder.finish(recorder.start_time() + 1500ms);
  EXPECT_DOUBLE_EQ(recorder.summary().wall_seconds, 1.5);
}

TEST(SummaryText, HeadlineAndOneRowPerPhase) {
  const auto t0 = Clock::now();
  LatencyRecorder recorder(t0);
  recorder.record(0, phase::clone_to_exec, t0, t0 + 1500us);
  recorder.record(1, phase::clone_to_exec, t0, t0 + 2500us);
  recorder.fail(2, phase::clone_to_exec, "boom", t0);
  recorder.finish(t0 + 500ms);
  const auto text = format_summary(recorder.summary());
  EXPECT_EQ(text,
            "3 instances in 0.50 s (4.0/s), 1 failed\n"
            "phase           count failed       p50       p95       p99       max  (ms)\n"
            "clone_to_exec       2      1       1.5       2.5       2.5       2.5\n");
}

TEST(SummaryJson, CarriesEveryFieldWithItsUnit) {
  const auto t0 = Clock::now();
  LatencyRecorder recorder(t0);
  recorder.record(0, phase::exec_to_ready, t0, t0 + 40ms);
  recorder.record(1, phase::exec_to_ready, t0, t0 + 60ms);
  recorder.finish(t0 + 250ms);
  const auto j = summary_to_json(recorder.summary());
  EXPECT_DOUBLE_EQ(j.at("wall_seconds").get<double>(), 0.25);
  EXPECT_EQ(j.at("instances").get<int>(), 2);
  EXPECT_EQ(j.at("failed_instances").get<int>(), 0);
  EXPECT_DOUBLE_EQ(j.at("instances_per_second").get<double>(), 8.0);
  EXPECT_EQ(j.at("percentile_method"), "nearest-rank");
  ASSERT_EQ(j.at("phases").size(), 1u);
  const auto& p = j.at("phases")[0];
  EXPECT_EQ(p.at("phase"), "exec_to_ready");
  EXPECT_EQ(p.at("count").get<int>(), 2);
  EXPECT_DOUBLE_EQ(p.at("p50_ms").get<double>(), 40);
  EXPECT_DOUBLE_EQ(p.at("p95_ms").get<double>(), 60);
  EXPECT_DOUBLE_EQ(p.at("p99_ms").get<double>(), 60);
  EXPECT_DOUBLE_EQ(p.at("max_ms").get<double>(), 60);
  EXPECT_DOUBLE_EQ(p.at("min_ms").get<double>(), 40);
  EXPECT_DOUBLE_EQ(p.at("mean_ms").get<double>(), 50);
}

}  // namespace
}  // namespace haco::observe
