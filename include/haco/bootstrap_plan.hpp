// The seed's bootstrap idiom served by the rootfs engine. A definition like
// ../shared/seed/phpinfo-test.haco prepares its rootfs in a config.bootstrap
// block of shell commands:
//   mkdir -p ROOT; tar xf IMAGE -C ROOT; mknod ... ROOT/dev/...; chown -R U:G ROOT
// Evaluating the definition records the commands the block issues (nothing
// runs, docs/bootstrap.md). When every one is a command of that idiom, the
// block becomes an engine plan: the archive extracted (or cached and
// overlaid) by the rootfs engine, shared by every instance, ids shifted into
// the instance's range. Anything else is run as written.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "haco/spec.hpp"

namespace haco::fleet {

// A command split into words as /bin/sh would, for the subset of the shell
// the idiom uses: words, '...' and "..." quoting, backslash escapes, and the
// `&&` operator (a word of its own, marked). Anything that would make the
// shell do more than run one program with these words (a pipe, a redirection,
// `;`, `&`, a variable, a command substitution, a glob, a tilde, a comment, an
// assignment, a newline, braces or parentheses) makes it not a simple
// command: `reason` says which, and the result is empty.
struct ShellWord {
  std::string text;
  bool and_operator = false;  // the unquoted `&&`
};
std::vector<ShellWord> split_shell_words(const std::string& command, std::string& reason);

// mknod of the block: recorded, never made (device nodes in a rootfs are
// never usable, docs/security.md).
struct DeviceNodeRequest {
  std::string path;  // absolute, on the host
  char type = 'c';   // 'c' or 'b'
  unsigned major = 0, minor = 0;
};

struct BootstrapPlan {
  std::string archive;                      // what tar extracts
  std::string root;                         // where: the container's rootfs
  std::vector<std::string> directories;     // mkdir: the rootfs or its parents
  std::optional<std::pair<std::uint32_t, std::uint32_t>> chown;  // chown -R U:G ROOT
  std::vector<DeviceNodeRequest> device_nodes;
};

// Either a plan, or why the block's commands are not the idiom (a sentence
// naming the command).
struct BootstrapPlanResult {
  std::optional<BootstrapPlan> plan;
  std::string reason;
};

// Recognises the idiom in `commands` (in the order the block issued them) for
// the container `c` (its rootfs and id mappings decide what is allowed).
BootstrapPlanResult plan_bootstrap(const std::vector<std::string>& commands, const ContainerSpec& c);

}  // namespace haco::fleet
