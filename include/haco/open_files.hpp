// The open-file limit (RLIMIT_NOFILE) of the processes that hold descriptors
// per instance: the supervisor keeps a pidfd for each one, `up` a probe
// socket and the rootfs engine directory descriptors. Their soft limit
// (often 1024) is raised to the hard limit at start, as systemd advises for
// such programs; the soft limit found is kept and given back to what they
// start (the containers' inits, which may use select() or walk every
// descriptor up to the limit).
#pragma once

#include <cstdint>
#include <string>

namespace haco {

struct OpenFileLimit {
  std::uint64_t soft_before = 0;  // the soft limit this process started with
  std::uint64_t soft = 0;         // now: the hard limit, unless setrlimit refused
  std::uint64_t hard = 0;
};

// Raises this process's soft RLIMIT_NOFILE to its hard limit. Throws
// haco::Error when getrlimit or setrlimit fails.
OpenFileLimit raise_open_file_limit();

// Throws haco::InputError when `needed` descriptors, for `what` ("a fleet of
// 2000 instances"), exceed `limit.hard`, saying how to raise it.
void check_open_file_need(std::uint64_t needed, const OpenFileLimit& limit, const std::string& what);

// Descriptors this process has open now (entries of /proc/self/fd).
std::uint64_t open_descriptor_count();

}  // namespace haco
