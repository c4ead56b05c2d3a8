// A definition can run nothing while it is evaluated, whatever it calls, and
// an evaluation that does not end is stopped.
#include <dirent.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "haco/dsl.hpp"
#include "haco/error.hpp"
#include "test_support.hpp"

namespace haco {
namespace {

using namespace std::chrono_literals;
using testing::TempDir;

// Every way from Ruby to a command, a file or a socket we know of, each
// tried in turn (an error does not stop the next); the count of attempts
// made ends up in the instance's name, so the test sees they all ran.
std::string hostile_definition(const std::string& marker) {
  return R"RUBY(marker = ")RUBY" + marker + R"RUBY("
attempts = [
  -> { Haconiwa.__shell("touch #{marker}-shell") },
  -> { Haconiwa.send(:__shell, "touch #{marker}-send") },
  -> { Haconiwa.__send__(:__shell, "touch #{marker}-__send__") },
  -> { Kernel.send(:__send__, :`, "touch #{marker}-kernel-send") },
  -> { Haconiwa.method(:__shell).call("touch #{marker}-method") },
  -> { Haconiwa.instance_eval { __shell("touch #{marker}-instance-eval") } },
  -> { Haconiwa.instance_eval("__shell('touch #{marker}-instance-eval-string')") },
  -> { Haconiwa.singleton_class.send(:alias_method, :run_it, :__shell); Haconiwa.run_it("touch #{marker}-alias") },
  -> { `touch #{marker}-backticks` },
  -> { Kernel.send(:`, "touch #{marker}-kernel-backticks") },
  -> { system("touch #{marker}-system") },
  -> { exec("touch #{marker}-exec") },
  -> { spawn("touch #{marker}-spawn") },
  -> { fork { `touch #{marker}-fork` } },
  -> { IO.popen("touch #{marker}-popen").read },
  -> { IO.send(:_popen, "touch #{marker}-underscore-popen") },
  -> { File.popen("touch #{marker}-file-popen") },
  -> { open("|touch #{marker}-open-pipe") },
  -> { IO.read("|touch #{marker}-io-read") },
  -> { File.open("#{marker}-file-open", "w") { |f| f.write("x") } },
  -> { File.new("#{marker}-file-new", "w") },
  -> { IO.sysopen("#{marker}-sysopen", "w") },
  -> { IO.for_fd(2).write("") ; IO.new(1) },
  -> { UNIXSocket.new("/run/haco-fleet-no-such.sock") },
  -> { TCPSocket.new("127.0.0.1", 1) },
  -> { eval("`touch #{marker}-eval`") },
  -> { Haconiwa.__reset({}, true); `touch #{marker}-reset` },
  -> { Haconiwa.instance_variable_set(:@running_bootstrap, true); Haconiwa.__shell("touch #{marker}-ivar") },
  -> { ObjectSpace.each_object(Class) { |c| c.popen("touch #{marker}-objectspace") if c.respond_to?(:popen) } },
]
tried = 0
attempts.each do |attempt|
  begin
    attempt.call
  rescue Exception
  ensure
    tried += 1
  end
end
Haconiwa.instance_variable_set(:@running_bootstrap, false)
Haconiwa.define do |config|
  config.name = "routes-#{tried}"
  config.init_command = "/bin/true"
  config.chroot_to "/srv/routes"
  config.bootstrap do |b|
    Haconiwa.__shell("touch #{marker}-in-bootstrap")
  end
end
)RUBY";
}

constexpr const char* kAllAttempts = "routes-29";

std::vector<std::string> entries(const std::filesystem::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir)) names.push_back(e.path().filename());
  std::sort(names.begin(), names.end());
  return names;
}

TEST(DefinitionIsolation, NoRouteRunsACommandInProcess) {
  TempDir dir;
  std::string path = dir.file("routes.haco", hostile_definition((dir.path() / "ran").string()));
  dsl::Evaluator evaluator;
  ContainerSpec spec = evaluator.evaluate_file(path, {});
  EXPECT_EQ(spec.name, kAllAttempts);
  EXPECT_EQ(spec.bootstrap.kind, BootstrapKind::block);
  EXPECT_EQ(entries(dir.path()), std::vector<std::string>{"routes.haco"});
}

TEST(DefinitionIsolation, NoRouteRunsACommandInTheEvaluatorProcess) {
  TempDir dir;
  std::string path = dir.file("routes.haco", hostile_definition((dir.path() / "ran").string()));
  dsl::IsolatedEvaluator evaluator;
  ContainerSpec spec = evaluator.evaluate_file(path, {});
  EXPECT_EQ(spec.name, kAllAttempts);
  EXPECT_EQ(entries(dir.path()), std::vector<std::string>{"routes.haco"});
}

// The one hook that runs commands still works where the DSL says so.
TEST(DefinitionIsolation, TheBootstrapBlockStillRunsItsCommands) {
  TempDir dir;
  std::string marker = (dir.path() / "ran").string();
  std::string path = dir.file("routes.haco", hostile_definition(marker));
  dsl::Evaluator evaluator;
  evaluator.run_bootstrap_block(path, {});
  EXPECT_TRUE(std::filesystem::exists(marker + "-in-bootstrap"));
}

TEST(DefinitionIsolation, IsolatedEvaluationGivesTheSameSpec) {
  dsl::Evaluator in_process;
  dsl::IsolatedEvaluator isolated;
  for (int port : {10001, 10002}) {
    dsl::Environment env{{"APACHE_PORT", std::to_string(port)}, {"PORT", std::to_string(port)}, {"X", "\xff\xfe"}};
    EXPECT_EQ(isolated.evaluate_file(testing::seed_file("phpinfo-test.haco"), env),
              in_process.evaluate_file(testing::seed_file("phpinfo-test.haco"), env));
  }
}

TEST(DefinitionIsolation, ErrorsKeepTheirKindAndText) {
  TempDir dir;
  std::string path = dir.file("bad.haco", "Haconiwa.define do |config|\n  config.nope\nend\n");
  dsl::IsolatedEvaluator evaluator;
  try {
    evaluator.evaluate_file(path, {});
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()), path + ":2: unknown method 'nope' (haco-fleet's haconiwa DSL has no such call)");
  }
  EXPECT_THROW(evaluator.evaluate_file(dir.path() / "missing.haco", {}), InputError);
}

// The children of this process, from /proc.
std::vector<pid_t> children() {
  std::vector<pid_t> found;
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    std::string name = e.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(e.path() / "stat");
    std::string line;
    std::getline(stat, line);
    auto close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 2));
    char state;
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (ppid == ::getpid()) found.push_back(std::stoi(name));
  }
  return found;
}

std::string status_field(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field + ":", 0) == 0) return line.substr(line.find_first_not_of(" \t", field.size() + 1));
  return "";
}

// What the kernel says of the evaluating process: a seccomp filter, and no
// way to gain privileges.
TEST(DefinitionIsolation, TheEvaluatingProcessIsFiltered) {
  dsl::IsolatedEvaluator evaluator;
  evaluator.evaluate_file(testing::seed_file("phpinfo-test.haco"), {{"APACHE_PORT", "1"}});
  auto kids = children();
  ASSERT_EQ(kids.size(), 1u);
  EXPECT_EQ(status_field(kids[0], "Seccomp"), "2");
  EXPECT_EQ(status_field(kids[0], "NoNewPrivs"), "1");
}

TEST(DefinitionIsolation, WhatTheDefinitionPrintsGoesToStderr) {
  TempDir dir;
  std::string path = dir.file("p.haco", R"(puts "printed-by-the-definition"
Haconiwa.define do |config|
  config.name = "p"
  config.init_command = "/bin/true"
  config.chroot_to "/srv/p"
end
)");
  ::testing::internal::CaptureStdout();
  ::testing::internal::CaptureStderr();
  {
    dsl::IsolatedEvaluator evaluator;
    evaluator.evaluate_file(path, {});
  }
  std::string out = ::testing::internal::GetCapturedStdout();
  std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(out.find("printed-by-the-definition"), std::string::npos) << out;
  EXPECT_NE(err.find("printed-by-the-definition"), std::string::npos) << err;
}

TEST(DefinitionIsolation, AnEvaluationThatNeverEndsIsStopped) {
  TempDir dir;
  dsl::IsolatedEvaluator evaluator(300ms);
  for (const char* body : {"loop {}", "while true; end", "loop { begin; loop {}; rescue Exception; end }",
                           "Haconiwa.define do |config|\n  config.name = 'x'\n  loop { config.name += '' }\nend"}) {
    std::string path = dir.file("forever.haco", std::string(body) + "\n");
    auto started = std::chrono::steady_clock::now();
    try {
      evaluator.evaluate_file(path, {});
      FAIL() << body << ": ended";
    } catch (const InputError& e) {
      EXPECT_EQ(std::string(e.what()).rfind(path + ": evaluating the definition took longer than 0.3 s", 0), 0u)
          << e.what();
    }
    EXPECT_LT(std::chrono::steady_clock::now() - started, 3s) << body;
    EXPECT_TRUE(children().empty()) << "the stopped evaluator was not reaped";
  }
  // A later evaluation gets a fresh process.
  EXPECT_EQ(evaluator.evaluate_file(testing::seed_file("phpinfo-test.haco"), {{"APACHE_PORT", "7"}}).name,
            "haconiwa-test-7");
}

TEST(DefinitionIsolation, InterruptingABootstrapBlockStopsItsCommand) {
  TempDir dir;
  std::string after = (dir.path() / "after").string();
  std::string path = dir.file("slow.haco", R"(Haconiwa.define do |config|
  config.name = "slow"
  config.init_command = "/bin/true"
  config.chroot_to "/srv/slow"
  config.bootstrap do |b|
    begin
      `sleep 30`
    rescue Exception
    end
    `touch )" + after + R"(`
  end
end
)");
  std::atomic<bool> cancel{false};
  std::thread stopper([&] {
    std::this_thread::sleep_for(300ms);
    cancel = true;
  });
  auto started = std::chrono::steady_clock::now();
  dsl::Evaluator evaluator;
  try {
    evaluator.run_bootstrap_block(path, {}, &cancel);
    ADD_FAILURE() << "the interrupted block ended normally";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("interrupted"), std::string::npos) << e.what();
  }
  stopper.join();
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
  // Even a block that rescues the interruption runs no further command.
  EXPECT_FALSE(std::filesystem::exists(after));
}

}  // namespace
}  // namespace haco
