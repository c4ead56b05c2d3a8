// The verbs that act on containers, cgroups and mounts need root. Run by
// another user they stop before doing anything, with one line, instead of
// failing later on whichever path came first.
#pragma once

#include <string>
#include <string_view>

namespace haco::cli {

// True when the caller is root; otherwise prints
// "haco-fleet VERB: must run as root (containers, cgroups and mounts need it)"
// on stderr and returns false (the command then exits with status 2).
bool running_as_root(std::string_view verb);

// `ps` only reads: it needs root only when the state root exists and cannot be
// read by the caller (it is 0700 root when `up` made it). Returns false after
// printing one line in that case.
bool can_read_state_root(std::string_view verb, const std::string& state_root);

// Instance logs are root's only (what a container writes may be private):
// `logs` run by another user stops with "haco-fleet VERB: must run as root
// (instance logs are readable by root only)" and returns false.
bool running_as_root_for_logs(std::string_view verb);

}  // namespace haco::cli
