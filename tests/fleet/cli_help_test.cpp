// Every command's --help ends with an example that the command line accepts.
#include <sstream>

#include <gtest/gtest.h>

#include "test_support.hpp"

namespace haco {
namespace {

using testing::run_command;

// The command lines below the "Example" line of a help text.
std::vector<std::string> examples(const std::string& help) {
  std::vector<std::string> found;
  std::istringstream in(help);
  bool after_example = false;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("Example", 0) == 0) after_example = true;
    else if (after_example && line.rfind("  haco-fleet ", 0) == 0) found.push_back(line.substr(2));
  }
  return found;
}

// Run from the source tree, where the examples' templates/ are.
// `global` goes before the command (--root DIR).
std::string in_source_dir(const std::string& example, const std::string& global = "") {
  return std::string("cd ") + HACO_SOURCE_DIR + " && " + HACO_BINARY + global +
         example.substr(std::string("haco-fleet").size());
}

TEST(CliHelp, EveryCommandShowsAnExampleThatParses) {
  for (const std::string verb : {"", "expand", "up", "ps", "down", "stop", "start", "restart", "exec", "inspect",
                                  "reload", "logs", "metrics", "images", "images prune", "slurm",
                                  "slurm submit", "slurm status", "slurm epilog"}) {
    auto help = run_command(std::string(HACO_BINARY) + " " + verb + " --help");
    ASSERT_EQ(help.status, 0) << verb << ": " << help.output;
    auto lines = examples(help.output);
    ASSERT_FALSE(lines.empty()) << "no example in the help of '" << verb << "': " << help.output;
    for (const auto& example : lines) {
      if (!verb.empty()) {
        EXPECT_TRUE(example == "haco-fleet " + verb || example.rfind("haco-fleet " + verb + " ", 0) == 0) << example;
      }
      // Values are converted and checked before --help is acted on.
      auto r = run_command(in_source_dir(example) + " --help");
      EXPECT_EQ(r.status, 0) << example << ": " << r.output;
      EXPECT_NE(r.output.find("Usage:"), std::string::npos) << example << ": " << r.output;
    }
  }
}

TEST(CliHelp, TheExpandExampleRuns) {
  testing::TempDir state_root;
  auto help = run_command(std::string(HACO_BINARY) + " expand --help");
  auto lines = examples(help.output);
  ASSERT_EQ(lines.size(), 1u) << help.output;
  auto r = run_command(in_source_dir(lines.front(), " --root " + state_root.path().string()));
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("fleet phpinfo: 3 instances from templates/phpinfo.haco"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace haco
