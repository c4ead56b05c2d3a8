#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "haco/error.hpp"
#include "haco/state.hpp"
#include "sample_instance.hpp"
#include "test_support.hpp"

namespace haco::state {
namespace {

using haco::testing::sample_instance;

FleetState sample_state() {
  FleetState s;
  s.fleet = "web";
  s.definition = "/defs/web.haco";
  s.restart_policy = "on-failure:3";
  s.created_at_unix_ms = 1700000000000;
  s.supervisor = {1234, 99887766};
  s.spawners = {{1235, 99887770}, {1236, 99887771}};
  InstanceRecord r;
  r.spec = sample_instance(10001);
  r.spec_hash = spec_hash(r.spec);
  rootfs::PreparedRootfs p;
  p.instance = "web-10001";
  p.rootfs = "/tmp/rootfs/web-10001";
  p.strategy = rootfs::Strategy::overlay;
  p.upper_dir = "/data/web-10001/upper";
  p.work_dir = "/data/web-10001/work";
  p.reused = true;
  p.elapsed = std::chrono::nanoseconds(1234567);
  r.rootfs = p;
  r.log_path = "/data/logs/web/web-10001.log";
  r.cgroup_paths = {"/sys/fs/cgroup/pids/haco-fleet/web/web-10001"};
  r.process = {4321, 555};
  r.state = InstanceState::running;
  r.started_at_unix_ms = 1700000001000;
  r.restarts = 2;
  r.last_exit = ExitRecord{-1, 9, 1700000000500};
  s.instances.push_back(r);
  InstanceRecord failed;
  failed.spec = sample_instance(10002);
  failed.spec_hash = spec_hash(failed.spec);
  failed.state = InstanceState::failed;
  failed.error = "exec /x: No such file or directory";
  s.instances.push_back(failed);
  return s;
}

TEST(FleetState, RoundTripsThroughJson) {
  auto s = sample_state();
  auto back = fleet_state_from_json(nlohmann::json::parse(to_json(s).dump()));
  EXPECT_EQ(to_json(back), to_json(s));
  ASSERT_EQ(back.instances.size(), 2u);
  EXPECT_EQ(back.instances[0].spec, s.instances[0].spec);
  EXPECT_EQ(back.instances[0].rootfs->elapsed, s.instances[0].rootfs->elapsed);
  EXPECT_EQ(back.instances[0].rootfs->strategy, rootfs::Strategy::overlay);
  EXPECT_EQ(back.instances[0].last_exit, s.instances[0].last_exit);
  EXPECT_EQ(back.spawners, s.spawners);
  EXPECT_EQ(to_json(s)["schema"], kStateSchemaVersion);
}

// The restart history and the recorded expansion round-trip; a record
// written before they existed (neither key) still loads, without them.
TEST(FleetState, RecentExitsAndExpansionAreOptionalKeys) {
  auto s = sample_state();
  s.instances[0].recent_exits = {{ExitRecord{3, 0, 1700000000100}, true, false},
                                 {ExitRecord{-1, 15, 1700000000200}, false, true}};
  s.instances[0].expansion = RecordedExpansion{{"HTTP_PORT"}, "max", true};
  auto back = fleet_state_from_json(nlohmann::json::parse(to_json(s).dump()));
  EXPECT_EQ(back.instances[0].recent_exits, s.instances[0].recent_exits);
  EXPECT_EQ(back.instances[0].expansion, s.instances[0].expansion);
  EXPECT_FALSE(to_json(s)["instances"][1].contains("recent_exits"));
  EXPECT_FALSE(to_json(s)["instances"][1].contains("expansion"));

  auto older = to_json(s);
  older["instances"][0].erase("recent_exits");
  older["instances"][0].erase("expansion");
  auto loaded = fleet_state_from_json(older);
  EXPECT_TRUE(loaded.instances[0].recent_exits.empty());
  EXPECT_FALSE(loaded.instances[0].expansion.has_value());
  EXPECT_EQ(loaded.instances[0].last_exit, s.instances[0].last_exit);
}

// Start latencies round-trip as histograms; a record without them loads
// empty, and a phase kept over other bounds is left out.
TEST(FleetState, StartLatencyIsAnOptionalKeyOfFixedBounds) {
  auto s = sample_state();
  ASSERT_TRUE(add_start_latency(s.instances[0], "clone_to_exec", 0.004));
  ASSERT_TRUE(add_start_latency(s.instances[0], "clone_to_exec", 0.2));
  ASSERT_TRUE(add_start_latency(s.instances[0], "exec_to_ready", 75));
  auto back = fleet_state_from_json(nlohmann::json::parse(to_json(s).dump()));
  EXPECT_EQ(back.instances[0].start_latency, s.instances[0].start_latency);
  const auto& clone = back.instances[0].start_latency.at("clone_to_exec");
  EXPECT_EQ(clone.count(), 2u);
  EXPECT_DOUBLE_EQ(clone.sum_seconds, 0.204);
  EXPECT_EQ(clone.counts[2], 1u);  // 0.004 <= 0.005
  EXPECT_EQ(clone.counts[7], 1u);  // 0.2 <= 0.25
  EXPECT_EQ(back.instances[0].start_latency.at("exec_to_ready").counts.back(), 1u);  // above 60 s
  EXPECT_FALSE(to_json(s)["instances"][1].contains("start_latency"));

  auto other = to_json(s);
  other["instances"][0]["start_latency"]["clone_to_exec"]["le"][0] = 0.002;
  auto loaded = fleet_state_from_json(other);
  EXPECT_FALSE(loaded.instances[0].start_latency.count("clone_to_exec"));
  EXPECT_TRUE(loaded.instances[0].start_latency.count("exec_to_ready"));
}

TEST(FleetState, StartLatencyRefusesBadPhasesAndStaysBounded) {
  InstanceRecord r;
  EXPECT_FALSE(add_start_latency(r, "", 1));
  EXPECT_FALSE(add_start_latency(r, "Clone", 1));
  EXPECT_FALSE(add_start_latency(r, "a\"b", 1));
  EXPECT_FALSE(add_start_latency(r, "9lives", 1));
  EXPECT_FALSE(add_start_latency(r, std::string(kLatencyPhaseNameMax + 1, 'a'), 1));
  EXPECT_FALSE(add_start_latency(r, "rootfs", -0.5));
  EXPECT_FALSE(add_start_latency(r, "rootfs", std::nan("")));
  EXPECT_TRUE(r.start_latency.empty());
  for (std::size_t k = 0; k < kLatencyPhasesKept; ++k)
    EXPECT_TRUE(add_start_latency(r, std::string(1, static_cast<char>('a' + k)), 1));
  EXPECT_FALSE(add_start_latency(r, "one_more", 1));
  EXPECT_TRUE(add_start_latency(r, "a", 1));  // a phase it has still counts
  EXPECT_EQ(r.start_latency.size(), kLatencyPhasesKept);
  EXPECT_EQ(r.start_latency.at("a").count(), 2u);
}

TEST(FleetState, RefusesAnotherSchemaAndMissingFields) {
  auto j = to_json(sample_state());
  j["schema"] = kStateSchemaVersion + 1;
  EXPECT_THROW(fleet_state_from_json(j), Error);
  auto k = to_json(sample_state());
  k["instances"][0].erase("process");
  try {
    fleet_state_from_json(k);
    FAIL() << "a record without its process was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("process"), std::string::npos) << e.what();
  }
}

TEST(FleetState, SavedAtomicallyAndLoadedBack) {
  testing::TempDir dir;
  FleetPaths paths{dir.path().string(), dir.path().string() + "/data", "web"};
  EXPECT_FALSE(load_state(paths).has_value());
  std::filesystem::create_directories(paths.dir());
  auto s = sample_state();
  save_state(paths, s);
  auto loaded = load_state(paths);
  ASSERT_TRUE(loaded.has_value());
  EXPECT_EQ(to_json(*loaded), to_json(s));
  // No temporary file is left beside it.
  std::size_t files = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(paths.dir())) ++files;
  EXPECT_EQ(files, 1u);
  EXPECT_EQ(list_fleets(dir.path().string()), std::vector<std::string>{"web"});
}

std::string file_text(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// A supervisor writes fleet.json from the texts of its records, kept while
// they do not change: the file is the state's JSON, as a whole, all the same
// (also with a record whose strings look like the place of the records).
TEST(FleetState, SavedFromRecordTextsAsFromTheWholeState) {
  testing::TempDir dir;
  FleetPaths paths{dir.path().string(), dir.path().string() + "/data", "web"};
  std::filesystem::create_directories(paths.dir());
  auto s = sample_state();
  s.instances[1].error = "line one\n \"instances\": []\nline three";
  for (std::size_t count : {0u, 1u, 2u}) {
    FleetState part = s;
    part.instances.resize(count);
    std::vector<std::string> texts;
    for (const auto& r : part.instances) texts.push_back(instance_record_text(r));
    save_state(paths, part, std::vector<std::string_view>(texts.begin(), texts.end()));
    EXPECT_EQ(file_text(paths.state_file()), to_json(part).dump(1) + "\n") << count << " instances";
    auto loaded = load_state(paths);
    ASSERT_TRUE(loaded.has_value());
    EXPECT_EQ(to_json(*loaded), to_json(part));
    save_state(paths, part);
    EXPECT_EQ(file_text(paths.state_file()), to_json(part).dump(1) + "\n") << count << " instances";
  }
}

mode_t mode_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

// fleet.json holds the definitions' environ values: for root only, even
// when an older run left a readable state behind.
TEST(FleetState, StateIsPrivate) {
  testing::TempDir dir;
  FleetPaths paths{dir.path().string() + "/state", dir.path().string() + "/data", "web"};
  paths.make_directories();
  EXPECT_EQ(mode_of(paths.state_root), 0700u);
  EXPECT_EQ(mode_of(paths.dir()), 0700u);
  auto s = sample_state();
  s.instances[0].spec.container.environment = {"DB_PASSWORD=secret"};
  save_state(paths, s);
  EXPECT_EQ(mode_of(paths.state_file()), 0600u);
  ASSERT_EQ(::chmod(paths.state_file().c_str(), 0644), 0);
  ASSERT_EQ(::chmod(paths.dir().c_str(), 0755), 0);
  save_state(paths, s);
  EXPECT_EQ(mode_of(paths.state_file()), 0600u);
  paths.make_directories();
  EXPECT_EQ(mode_of(paths.dir()), 0700u);
}

TEST(FleetPaths, NoPathIsBuiltFromABadName) {
  for (const std::string& name :
       std::vector<std::string>{"../x", "../../evil", "a/b", ".", "..", "", "-x", std::string(64, 'a'), "a\x1b" "b"})
    EXPECT_THROW(FleetPaths("/run/haco-fleet", "/var/lib/haco-fleet", name), InputError) << name;
  FleetPaths paths{"/run/haco-fleet", "/var/lib/haco-fleet", "web"};
  EXPECT_EQ(paths.dir(), "/run/haco-fleet/web");
  EXPECT_EQ(paths.log_dir(), "/var/lib/haco-fleet/logs/web");
  EXPECT_EQ(paths.instance_log("web-1"), "/var/lib/haco-fleet/logs/web/web-1.log");
  EXPECT_THROW(paths.instance_log("../../../etc/cron.d/x"), InputError);
}

TEST(FleetState, DirectoriesWithOtherNamesAreNotFleets) {
  testing::TempDir dir;
  dir.file("web/fleet.json", "{}");
  dir.file(".hidden/fleet.json", "{}");
  dir.file("a b/fleet.json", "{}");
  EXPECT_EQ(list_fleets(dir.path().string()), std::vector<std::string>{"web"});
}

TEST(FleetState, CorruptFileIsAnErrorNamingIt) {
  testing::TempDir dir;
  FleetPaths paths{dir.path().string(), "", "web"};
  dir.file("web/fleet.json", "{not json");
  try {
    load_state(paths);
    FAIL() << "corrupt state accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(paths.state_file()), std::string::npos) << e.what();
  }
}

TEST(SpecHash, StableAndSensitiveToWhatTheInstanceIs) {
  auto a = sample_instance(10001);
  auto b = sample_instance(10001);
  EXPECT_EQ(spec_hash(a), spec_hash(b));
  EXPECT_EQ(spec_hash(a).size(), 16u);
  b.index = 7;  // position in the port list is not part of the definition
  EXPECT_EQ(spec_hash(a), spec_hash(b));
  b.container.environment = {"MARK=b"};
  EXPECT_NE(spec_hash(a), spec_hash(b));
  EXPECT_NE(spec_hash(sample_instance(10001)), spec_hash(sample_instance(10002)));
}

TEST(ProcessIdentity, TellsARecycledPidFromTheProcess) {
  auto self = identify(::getpid());
  ASSERT_TRUE(self.has_value());
  EXPECT_TRUE(is_alive(*self));
  EXPECT_FALSE(is_alive({self->pid, self->start_time + 1}));

  pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  auto identity = identify(child);
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_TRUE(identity.has_value());
  EXPECT_FALSE(is_alive(*identity));
  EXPECT_FALSE(read_start_time(child).has_value());
}

TEST(ProcessIdentity, KnowsWhichSignalsWouldBeDropped) {
  pid_t self = ::getpid();
  EXPECT_FALSE(signal_would_be_dropped(self, SIGUSR2, false));
  // As the init of a pid namespace without a handler, SIGUSR2 is dropped.
  EXPECT_TRUE(signal_would_be_dropped(self, SIGUSR2, true));
  auto previous = ::signal(SIGUSR2, [](int) {});
  EXPECT_FALSE(signal_would_be_dropped(self, SIGUSR2, true));
  ::signal(SIGUSR2, SIG_IGN);
  EXPECT_TRUE(signal_would_be_dropped(self, SIGUSR2, false));
  ::signal(SIGUSR2, previous);
}

TEST(ProcessIdentity, ReadsMemoryFromSmapsRollup) {
  auto memory = read_memory(::getpid());
  ASSERT_TRUE(memory.has_value());
  EXPECT_GT(memory->rss_kib, 0u);
  EXPECT_GT(memory->pss_kib, 0u);
  EXPECT_LE(memory->pss_kib, memory->rss_kib);
}

TEST(FleetLock, ExcludesASecondHolder) {
  testing::TempDir dir;
  FleetPaths paths{dir.path().string(), "", "web"};
  auto lock = FleetLock::acquire(paths, false);
  // Another process (flock locks belong to open files) cannot take it.
  pid_t child = ::fork();
  if (child == 0) {
    try {
      FleetLock::acquire(paths, false);
      ::_exit(0);
    } catch (const Error&) {
      ::_exit(3);
    }
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  EXPECT_EQ(WEXITSTATUS(status), 3);
  lock.release();
  child = ::fork();
  if (child == 0) {
    try {
      FleetLock::acquire(paths, false);
      ::_exit(0);
    } catch (const Error&) {
      ::_exit(3);
    }
  }
  ::waitpid(child, &status, 0);
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(ExitRecord, DescribesExitsAndSignals) {
  EXPECT_EQ(describe_exit({3, 0, 0}), "exit 3");
  EXPECT_EQ(describe_exit({-1, 9, 0}).rfind("signal 9", 0), 0u);
}

}  // namespace
}  // namespace haco::state
