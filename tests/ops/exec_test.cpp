// ops::exec's decisions without a kernel: which instance, whether it can be
// entered, as whom, with which environment, and the exit status; fleet state
// is real files in a temporary directory, the entry a fake that records what
// it was asked. The command line's own refusals at the end.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>

#include <gtest/gtest.h>

#include "haco/error.hpp"
#include "haco/ops_exec.hpp"
#include "test_support.hpp"

namespace haco::ops {
namespace {

using runtime::CommandEnd;
using state::InstanceState;

class FakeEntry : public InstanceEntry {
 public:
  bool alive(const state::ProcessIdentity& init) override {
    asked_alive.push_back(init);
    return init_alive;
  }
  CommandEnd enter(const state::ProcessIdentity& init, runtime::EnterRequest request) override {
    entered.emplace_back(init, std::move(request));
    if (failure) throw *failure;
    return end;
  }

  bool init_alive = true;
  CommandEnd end;
  std::optional<Error> failure;
  std::vector<state::ProcessIdentity> asked_alive;
  std::vector<std::pair<state::ProcessIdentity, runtime::EnterRequest>> entered;
};

ContainerSpec container(const std::string& name) {
  ContainerSpec c;
  c.name = name;
  c.command = {"/bin/busybox", "httpd", "-f"};
  c.uid_map = {{0, 2000000, 100}};
  c.gid_map = {{0, 2000000, 100}};
  c.environment = {"MARK=a", "LANG=C"};
  c.workdir = "/www";
  return c;
}

class ExecTest : public ::testing::Test {
 protected:
  std::string state_root() const { return (dir_.path() / "state").string(); }
  std::string data_root() const { return (dir_.path() / "data").string(); }

  // Fleet "web": 10001 running (pid 4242), 10002 exited after SIGKILL,
  // 10003 recorded running (pid 4343).
  void record_fleet() {
    state::FleetState fleet;
    fleet.fleet = "web";
    auto add = [&](std::uint16_t port, InstanceState s, pid_t pid) {
      state::InstanceRecord r;
      r.spec.port = port;
      r.spec.container = container("web-" + std::to_string(port));
      r.state = s;
      r.process = {pid, 777};
      r.cgroup_paths = {"/sys/fs/cgroup/pids/haco-fleet/web/web-" + std::to_string(port)};
      if (s == InstanceState::exited) r.last_exit = state::ExitRecord{state::ExitRecord::kUnknown, SIGKILL, 1};
      fleet.instances.push_back(r);
    };
    add(10001, InstanceState::running, 4242);
    add(10002, InstanceState::exited, -1);
    add(10003, InstanceState::running, 4343);
    state::FleetPaths paths{state_root(), data_root(), fleet.fleet};
    paths.make_directories();
    state::save_state(paths, fleet);
  }

  ExecRequest request(const std::string& instance, std::vector<std::string> command = {"id"}) const {
    ExecRequest r;
    r.state_root = state_root();
    r.data_root = data_root();
    r.instance = instance;
    r.command = std::move(command);
    return r;
  }

  template <class E, class F>
  std::string error_of(F&& f) {
    try {
      f();
    } catch (const E& e) {
      return e.what();
    } catch (const std::exception& e) {
      return std::string("another exception: ") + e.what();
    }
    return "no exception";
  }

  haco::testing::TempDir dir_;
  FakeEntry entry_;
};

TEST(ExecIds, RootOfTheContainerByDefault) {
  EXPECT_EQ(exec_ids(container("c"), std::nullopt), (std::pair<uid_t, gid_t>{0, 0}));
}

TEST(ExecIds, AUserInsideTheMappedRangeRunsWithTheGidOfItsNumber) {
  EXPECT_EQ(exec_ids(container("c"), 99), (std::pair<uid_t, gid_t>{99, 99}));
  EXPECT_EQ(exec_ids(container("c"), 50), (std::pair<uid_t, gid_t>{50, 50}));
}

TEST(ExecIds, AUserOutsideTheRangeIsBadInputNamingTheRange) {
  try {
    exec_ids(container("c"), 100);
    FAIL() << "uid 100 accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("--user 100"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("uids 0-99"), std::string::npos) << e.what();
  }
}

TEST(ExecIds, AGidTheContainerDoesNotMapIsBadInput) {
  auto c = container("c");
  c.gid_map = {{0, 2000000, 10}};
  EXPECT_THROW(exec_ids(c, 50), InputError);
  EXPECT_NO_THROW(exec_ids(c, 9));
}

TEST(ExecIds, SeveralRangesEachCount) {
  auto c = container("c");
  c.uid_map = {{0, 2000000, 1}, {1000, 2001000, 10}};
  c.gid_map = c.uid_map;
  EXPECT_NO_THROW(exec_ids(c, 1005));
  EXPECT_THROW(exec_ids(c, 500), InputError);
  EXPECT_THROW(exec_ids(c, 1010), InputError);
}

TEST(ExecIds, WithoutMapsHostIdsAreTakenAsTheyAre) {
  auto c = container("c");
  c.uid_map.clear();
  c.gid_map.clear();
  EXPECT_EQ(exec_ids(c, 1000), (std::pair<uid_t, gid_t>{1000, 1000}));
  EXPECT_THROW(exec_ids(c, 4294967295u), InputError);
}

TEST(ExecEnvironment, TheInitsEnvironmentWithItsDefaultPath) {
  auto env = exec_environment(container("c"), {}, false, "xterm");
  EXPECT_EQ(env, (std::vector<std::string>{"MARK=a", "LANG=C",
                                           "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}));
  EXPECT_EQ(env, runtime::init_environment(container("c")));
}

TEST(ExecEnvironment, AssignmentsReplaceInPlaceOrAreAddedInOrder) {
  auto env = exec_environment(container("c"), {"NEW=1", "MARK=b", "PATH=/bin", "NEW=2", "EMPTY="}, false, "");
  EXPECT_EQ(env, (std::vector<std::string>{"MARK=b", "LANG=C", "PATH=/bin", "NEW=2", "EMPTY="}));
}

TEST(ExecEnvironment, AValueMayHoldEqualSigns) {
  auto env = exec_environment(container("c"), {"MARK=x=y"}, false, "");
  EXPECT_EQ(env.front(), "MARK=x=y");
}

TEST(ExecEnvironment, MalformedAssignmentsAreBadInput) {
  EXPECT_THROW(exec_environment(container("c"), {"NOVALUE"}, false, ""), InputError);
  EXPECT_THROW(exec_environment(container("c"), {"=1"}, false, ""), InputError);
  EXPECT_THROW(check_environment_assignment(""), InputError);
  EXPECT_NO_THROW(check_environment_assignment("K="));
}

TEST(ExecEnvironment, ATerminalGetsTheCallersTermUnlessOneIsSet) {
  auto with_tty = exec_environment(container("c"), {}, true, "xterm-256color");
  EXPECT_EQ(with_tty.back(), "TERM=xterm-256color");
  EXPECT_EQ(exec_environment(container("c"), {}, false, "xterm").size(), 3u);
  auto set = exec_environment(container("c"), {"TERM=vt100"}, true, "xterm");
  EXPECT_EQ(std::count_if(set.begin(), set.end(), [](const auto& e) { return e.rfind("TERM=", 0) == 0; }), 1);
  EXPECT_NE(std::find(set.begin(), set.end(), "TERM=vt100"), set.end());
  EXPECT_EQ(exec_environment(container("c"), {}, true, "").size(), 3u);
}

TEST(ExecStatus, TheCommandsOwnCodeSignalsAs128PlusNExecFailuresAs126Or127) {
  CommandEnd end;
  end.code = 7;
  EXPECT_EQ(exit_status(end), 7);
  end.code = 0;
  EXPECT_EQ(exit_status(end), 0);
  end.how = CommandEnd::How::signalled;
  end.signal = SIGKILL;
  EXPECT_EQ(exit_status(end), 137);
  end.signal = SIGTERM;
  EXPECT_EQ(exit_status(end), 143);
  end.how = CommandEnd::How::not_started;
  end.exec_errno = ENOENT;
  EXPECT_EQ(exit_status(end), 127);
  end.exec_errno = EACCES;
  EXPECT_EQ(exit_status(end), 126);
  end.exec_errno = ENOEXEC;
  EXPECT_EQ(exit_status(end), 126);
}

TEST_F(ExecTest, ARunningInstanceIsEnteredWithItsRecordAndTheInitsWorkdir) {
  record_fleet();
  entry_.end.code = 3;
  auto r = request("10001", {"sh", "-c", "exit 3"});
  r.environment = {"FOO=1"};
  auto result = exec(r, entry_);
  EXPECT_EQ(result.status, 3);
  ASSERT_EQ(entry_.entered.size(), 1u);
  const auto& [init, req] = entry_.entered.front();
  EXPECT_EQ(init, (state::ProcessIdentity{4242, 777}));
  EXPECT_EQ(req.instance.port, 10001);
  EXPECT_EQ(req.command, (std::vector<std::string>{"sh", "-c", "exit 3"}));
  EXPECT_EQ(req.cgroup_dirs, (std::vector<std::string>{"/sys/fs/cgroup/pids/haco-fleet/web/web-10001"}));
  EXPECT_EQ(req.workdir, "/www");
  EXPECT_EQ(req.uid, 0u);
  EXPECT_EQ(req.environment.back(), "FOO=1");
  EXPECT_FALSE(req.tty);
}

TEST_F(ExecTest, AnInstanceIsFoundByNameTooWithUserAndWorkdir) {
  record_fleet();
  auto r = request("web-10003");
  r.user = 42;
  r.workdir = "/tmp";
  r.tty = true;
  exec(r, entry_);
  ASSERT_EQ(entry_.entered.size(), 1u);
  const auto& req = entry_.entered.front().second;
  EXPECT_EQ(req.instance.port, 10003);
  EXPECT_EQ(req.uid, 42u);
  EXPECT_EQ(req.gid, 42u);
  EXPECT_EQ(req.workdir, "/tmp");
  EXPECT_TRUE(req.tty);
}

TEST_F(ExecTest, AnUnknownPortOrFleetIsBadInput) {
  record_fleet();
  auto error = error_of<InputError>([&] { exec(request("10009"), entry_); });
  EXPECT_NE(error.find("no instance on port '10009'"), std::string::npos) << error;
  EXPECT_NE(error.find("10001-10003"), std::string::npos) << error;
  auto r = request("10001");
  r.fleet = "api";
  EXPECT_THROW(exec(r, entry_), InputError);
  EXPECT_TRUE(entry_.entered.empty());
}

TEST_F(ExecTest, AnInstanceThatIsNotRunningIsRefusedWithItsStateAndLastExit) {
  record_fleet();
  auto error = error_of<NotRunningError>([&] { exec(request("10002"), entry_); });
  EXPECT_NE(error.find("web-10002"), std::string::npos) << error;
  EXPECT_NE(error.find("not running (state exited"), std::string::npos) << error;
  EXPECT_NE(error.find("signal 9"), std::string::npos) << error;
  EXPECT_TRUE(entry_.entered.empty());
}

TEST_F(ExecTest, ARecordThatSaysRunningOverADeadInitIsRefused) {
  record_fleet();
  entry_.init_alive = false;
  auto error = error_of<NotRunningError>([&] { exec(request("10003"), entry_); });
  EXPECT_NE(error.find("recorded as running"), std::string::npos) << error;
  EXPECT_NE(error.find("pid 4343"), std::string::npos) << error;
  ASSERT_EQ(entry_.asked_alive.size(), 1u);
  EXPECT_EQ(entry_.asked_alive.front(), (state::ProcessIdentity{4343, 777}));
  EXPECT_TRUE(entry_.entered.empty());
}

TEST_F(ExecTest, BadInputIsRefusedBeforeTheStateOfTheInstanceCounts) {
  record_fleet();
  auto r = request("10002");
  r.user = 100;
  EXPECT_THROW(exec(r, entry_), InputError);
  r = request("10001");
  r.workdir = "relative/dir";
  EXPECT_THROW(exec(r, entry_), InputError);
  r = request("10001", {});
  EXPECT_THROW(exec(r, entry_), InputError);
  r = request("10001");
  r.environment = {"BAD"};
  EXPECT_THROW(exec(r, entry_), InputError);
  EXPECT_TRUE(entry_.entered.empty());
}

TEST_F(ExecTest, AFailureOnTheWayInNamesTheInstance) {
  record_fleet();
  entry_.failure = Error::from_errno("setns", "pidfd of pid 4242", EPERM);
  auto error = error_of<Error>([&] { exec(request("10001"), entry_); });
  EXPECT_NE(error.find("cannot enter instance web-10001 of fleet 'web'"), std::string::npos) << error;
  EXPECT_NE(error.find("setns"), std::string::npos) << error;
}

TEST_F(ExecTest, ACommandThatCouldNotStartGivesItsStatusAndReason) {
  record_fleet();
  entry_.end.how = CommandEnd::How::not_started;
  entry_.end.exec_errno = ENOENT;
  entry_.end.error = "exec nosuch: No such file or directory";
  auto result = exec(request("10001", {"nosuch"}), entry_);
  EXPECT_EQ(result.status, 127);
  EXPECT_EQ(result.end.error, "exec nosuch: No such file or directory");
}

// The real entry never enters a process whose start time is not the
// recorded one: a pid recycled for another process is not the init.
TEST(KernelEntry, APidWithAnotherStartTimeIsNotEntered) {
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::pause();
    ::_exit(0);
  }
  auto identity = state::identify(child);
  ASSERT_TRUE(identity.has_value());
  auto entry = kernel_entry();
  EXPECT_TRUE(entry->alive(*identity));
  state::ProcessIdentity recycled{child, identity->start_time + 1};
  EXPECT_FALSE(entry->alive(recycled));
  runtime::EnterRequest request;
  request.command = {"true"};
  EXPECT_THROW(entry->enter(recycled, request), NotRunningError);
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  EXPECT_THROW(entry->enter(*identity, request), NotRunningError);
}

// The option parser's refusals, before anything is looked up (as root or not).
TEST(ExecCommandLine, MalformedOptionsExitWithStatus2) {
  haco::testing::TempDir root;
  std::string haco = std::string(HACO_BINARY) + " --root " + root.path().string() + " exec ";
  struct Case {
    std::string args, says;
  };
  for (const Case& c : {Case{"-e NOVALUE 10001 -- id", "KEY=VALUE"}, Case{"-u 4294967295 10001 -- id", "--user"},
                        Case{"-u -1 10001 -- id", "--user"}, Case{"10001", "command"},
                        Case{"--name ../x 10001 -- id", "--name"}}) {
    auto r = haco::testing::run_command(haco + c.args + " 2>&1");
    EXPECT_EQ(r.status, 2) << c.args << ": " << r.output;
    EXPECT_NE(r.output.find(c.says), std::string::npos) << c.args << ": " << r.output;
  }
}

TEST(ExecCommandLine, NoFleetIsBadInput) {
  haco::testing::TempDir root;
  auto r = haco::testing::run_command(std::string(HACO_BINARY) + " --root " + root.path().string() +
                                      " exec --name web 10001 -- id 2>&1");
  EXPECT_EQ(r.status, 2) << r.output;
}

TEST(ExecCommandLine, AnotherUserThanRootIsStoppedWithOneLine) {
  // As nobody when the tests run as root.
  std::string as_user = ::geteuid() == 0 ? "setpriv --reuid=65534 --regid=65534 --clear-groups " : "";
  auto r = haco::testing::run_command(as_user + HACO_BINARY + " --root /nonexistent exec 10001 -- id");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_EQ(r.output, "haco-fleet exec: must run as root (containers, cgroups and mounts need it)\n");
}

}  // namespace
}  // namespace haco::ops
