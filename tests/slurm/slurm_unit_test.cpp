// The pure parts of a fleet over a Slurm job: slices, port texts, the lines
// tasks report, what the batch step makes of them, scontrol's records.
#include <gtest/gtest.h>

#include <cstdlib>
#include <optional>

#include "haco/error.hpp"
#include "haco/fleet.hpp"
#include "haco/slurm.hpp"
#include "test_support.hpp"

namespace haco::slurm {
namespace {

using haco::testing::TempDir;

// Sets (or with nullptr unsets) a variable for its scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value)
      ::setenv(name, value, 1);
    else
      ::unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_)
      ::setenv(name_.c_str(), old_->c_str(), 1);
    else
      ::unsetenv(name_.c_str());
  }

 private:
  std::string name_;
  std::optional<std::string> old_;
};

std::vector<std::uint16_t> range(std::uint16_t first, std::uint16_t last) {
  std::vector<std::uint16_t> ports;
  for (unsigned p = first; p <= last; ++p) ports.push_back(static_cast<std::uint16_t>(p));
  return ports;
}

TEST(SlurmSlices, EveryPortInExactlyOneContiguousSliceOfNearlyEqualSize) {
  auto ports = range(10001, 10103);  // 103 ports
  auto slices = split_ports(ports, 4);
  ASSERT_EQ(slices.size(), 4u);
  std::vector<std::uint16_t> joined;
  for (unsigned i = 0; i < 4; ++i) {
    EXPECT_EQ(slices[i].index, i);
    EXPECT_EQ(slices[i].count, 4u);
    EXPECT_TRUE(slices[i].ports.size() == 25 || slices[i].ports.size() == 26) << slices[i].ports.size();
    joined.insert(joined.end(), slices[i].ports.begin(), slices[i].ports.end());
  }
  EXPECT_EQ(joined, ports);
  EXPECT_EQ(port_list_text(slices[0].ports), "10001-10026");
  EXPECT_EQ(port_list_text(slices[3].ports), "10079-10103");
}

TEST(SlurmSlices, RefusesZeroSlicesAndMoreSlicesThanPorts) {
  EXPECT_THROW(split_ports(range(1, 3), 0), InputError);
  EXPECT_THROW(split_ports(range(1, 3), 4), InputError);
  EXPECT_EQ(split_ports(range(1, 3), 3).back().ports, std::vector<std::uint16_t>{3});
}

TEST(SlurmSlices, PortTextRoundTripsThroughThePortRangeParser) {
  std::vector<std::uint16_t> ports{80, 81, 82, 443, 10001, 10003, 10004};
  EXPECT_EQ(port_list_text(ports), "80-82,443,10001,10003-10004");
  EXPECT_EQ(fleet::parse_port_range(port_list_text(ports)), ports);
  EXPECT_EQ(port_list_text({}), "");
}

TEST(SlurmSlices, NamesAndStateRootsAreDistinctPerJobAndSlice) {
  EXPECT_EQ(slice_fleet_name("web", "42", 1), "web-j42-s1");
  EXPECT_EQ(slice_state_root("/run/haco-fleet", "42", 1), "/run/haco-fleet/slurm/42.1");
  EXPECT_THROW(slice_fleet_name(std::string(60, 'w'), "42", 1), InputError);
}

TEST(SlurmSlices, TaskPlaceComesFromSlurmsVariablesAndIsChecked) {
  ScopedEnv job("SLURM_JOB_ID", "42"), rank("SLURM_PROCID", "1"), tasks("SLURM_NTASKS", "2"),
      node("SLURMD_NODENAME", "node2");
  auto place = task_place_from_environment();
  EXPECT_EQ(place.job, "42");
  EXPECT_EQ(place.task, 1u);
  EXPECT_EQ(place.tasks, 2u);
  EXPECT_EQ(place.node, "node2");
  {
    ScopedEnv bad("SLURM_PROCID", "2");
    EXPECT_THROW(task_place_from_environment(), InputError);
  }
  {
    ScopedEnv bad("SLURM_NTASKS", "two");
    EXPECT_THROW(task_place_from_environment(), InputError);
  }
  {
    ScopedEnv gone("SLURM_JOB_ID", nullptr);
    try {
      task_place_from_environment();
      FAIL() << "no error without SLURM_JOB_ID";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find("SLURM_JOB_ID is not set"), std::string::npos) << e.what();
    }
  }
}

SliceRecord record(unsigned index, const std::string& state, const std::string& detail) {
  SliceRecord r;
  r.job = "42";
  r.index = index;
  r.count = 2;
  r.node = "node" + std::to_string(index + 1);
  r.ports = index == 0 ? "10001-10050" : "10051-10100";
  r.state = state;
  r.detail = detail;
  return r;
}

TEST(SlurmReports, ReportLinesReadBackAsWritten) {
  auto ready = record(1, "ready", "50/50");
  std::string line = slice_report_line(ready);
  EXPECT_EQ(line, "haco-fleet slice 2/2 of job 42 on node2 (ports 10051-10100): ready 50/50");
  auto back = parse_slice_report_line(line);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->index, 1u);
  EXPECT_EQ(back->count, 2u);
  EXPECT_EQ(back->node, "node2");
  EXPECT_EQ(back->ports, "10051-10100");
  EXPECT_EQ(back->state, "ready");
  EXPECT_EQ(back->detail, "50/50");

  auto failed = parse_slice_report_line("0: " + slice_report_line(record(0, "failed", "web-10003: exited: status 1")));
  ASSERT_TRUE(failed);
  EXPECT_EQ(failed->state, "failed");
  EXPECT_EQ(failed->detail, "web-10003: exited: status 1");
  EXPECT_TRUE(parse_slice_report_line(slice_report_line(record(0, "stopped", ""))));

  EXPECT_FALSE(parse_slice_report_line("haco-fleet slice 3/2 of job 42 on node2 (ports 1-2): ready 2/2"));
  EXPECT_FALSE(parse_slice_report_line("haco-fleet slice 0/2 of job 42 on node2 (ports 1-2): ready 2/2"));
  EXPECT_FALSE(parse_slice_report_line("fleet web: 2 of 2 instances ready"));
}

TEST(SlurmReports, TheJobSaysOnceWhenEverySliceIsReady) {
  JobProgress progress(2);
  EXPECT_FALSE(progress.feed("fleet web-j42-s0: 50 of 50 instances ready"));
  EXPECT_FALSE(progress.feed(slice_report_line(record(0, "starting", ""))));
  EXPECT_FALSE(progress.feed(slice_report_line(record(0, "ready", "50/50"))));
  EXPECT_FALSE(progress.all_ready());
  auto said = progress.feed(slice_report_line(record(1, "ready", "50/50")));
  ASSERT_TRUE(said);
  EXPECT_EQ(*said, "haco-fleet job 42: the whole fleet serves: 2 slices ready on node1,node2");
  EXPECT_FALSE(progress.feed(slice_report_line(record(1, "ready", "50/50"))));
}

TEST(SlurmReports, AFailedSliceIsSaidOnceWithItsReason) {
  JobProgress progress(2);
  EXPECT_FALSE(progress.feed(slice_report_line(record(0, "ready", "50/50"))));
  auto said = progress.feed(slice_report_line(record(1, "failed", "web-10051: address in use")));
  ASSERT_TRUE(said);
  EXPECT_NE(said->find("slice 2/2 on node2 failed: web-10051: address in use"), std::string::npos) << *said;
  EXPECT_FALSE(progress.feed(slice_report_line(record(0, "failed", "stopped by Slurm"))));
  EXPECT_TRUE(progress.any_failed());
  EXPECT_FALSE(progress.all_ready());
}

TEST(SlurmCommands, ScontrolRecordsKeepValuesWithSpaces) {
  auto f = parse_scontrol_record(
      "JobId=42 JobName=haco-web UserId=root(0) JobState=PENDING Reason=ReqNodeNotAvail, UnavailableNodes:node2 "
      "Dependency=(null) NodeList=node[1-2] StdOut=/tmp/a b/out.log");
  EXPECT_EQ(f["JobId"], "42");
  EXPECT_EQ(f["JobState"], "PENDING");
  EXPECT_EQ(f["Reason"], "ReqNodeNotAvail, UnavailableNodes:node2");
  EXPECT_EQ(f["NodeList"], "node[1-2]");
  EXPECT_EQ(f["StdOut"], "/tmp/a b/out.log");
}

TEST(SlurmCommands, ShellWordsQuoteWhatTheShellWouldSplitOrExpand) {
  EXPECT_EQ(shell_words({"/usr/bin/haco-fleet", "--ports", "10001-10100", "a b", "it's", "$HOME", ""}),
            "/usr/bin/haco-fleet --ports 10001-10100 'a b' 'it'\\''s' '$HOME' ''");
}

TEST(SlurmRecords, SliceRecordsRoundTripAndAreListedBelowTheStateRoot) {
  TempDir temp;
  std::string root = temp.path().string();
  auto r = record(1, "ready", "50/50");
  r.fleet = "web-j42-s1";
  r.owner = {1234, 5678};
  r.updated_unix_ms = 99;
  write_slice_record(slice_state_root(root, "42", 1), r);
  auto back = read_slice_record(slice_state_root(root, "42", 1));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->fleet, "web-j42-s1");
  EXPECT_EQ(back->owner.pid, 1234);
  EXPECT_EQ(back->owner.start_time, 5678u);
  EXPECT_EQ(back->state, "ready");
  EXPECT_EQ(list_slice_roots(root), std::vector<std::string>{slice_state_root(root, "42", 1)});
  EXPECT_FALSE(read_slice_record(slice_state_root(root, "43", 0)));

  SubmittedJob job{"42", "web", "/srv/web.haco", "10001-10100", 2, {"10001-10050", "10051-10100"}, "/tmp/o", 7};
  write_submitted_job(root, job);
  auto job_back = read_submitted_job(root, "42");
  ASSERT_TRUE(job_back);
  EXPECT_EQ(job_back->slice_ports, job.slice_ports);
  EXPECT_EQ(job_back->output, "/tmp/o");
  // The jobs directory is not a slice.
  EXPECT_EQ(list_slice_roots(root).size(), 1u);
}

}  // namespace
}  // namespace haco::slurm
