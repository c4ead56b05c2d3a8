// The ranges of the numeric command-line options. A value outside its range
// is refused by the option parser (exit status 2, one line naming the option,
// the range and the value); each option's --help text states the same range.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>

#include "haco/dsl.hpp"

namespace haco::cli {

struct WholeRange {
  std::uint64_t min;
  std::uint64_t max;
};

struct SecondsRange {
  double min;
  double max;
};

// up --parallel, supervise --spawners: spawner processes. Each is a process
// of its own; a few dozen already saturate a large host.
inline constexpr WholeRange kParallelRange{1, 256};
// up --stagger, supervise --stagger: milliseconds between two starts.
inline constexpr WholeRange kStaggerMsRange{0, 60'000};
// up --log-max-bytes, supervise --log-max-bytes: one page to 1 TiB.
inline constexpr WholeRange kLogMaxBytesRange{4096, std::uint64_t(1) << 40};
// up --timeout: seconds until every instance is ready (one day at most).
inline constexpr SecondsRange kUpTimeoutRange{0.1, 86'400};
// down --timeout: seconds between the stop signal and SIGKILL; 0 kills at once.
inline constexpr SecondsRange kDownTimeoutRange{0, 86'400};
// expand/up --eval-timeout: seconds one port's evaluation may take.
inline constexpr SecondsRange kEvalTimeoutRange{dsl::kMinEvalTimeout.count() / 1000.0,
                                                dsl::kMaxEvalTimeout.count() / 1000.0};
// expand/up --pids-max: the kernel's PID_MAX_LIMIT is 4194304.
inline constexpr WholeRange kPidsMaxRange{1, 4'194'304};

// supervise --container-nofile: a soft RLIMIT_NOFILE, 0 for the
// supervisor's own; the kernel's largest (fs.nr_open) is 2147483584.
inline constexpr WholeRange kContainerOpenFilesRange{0, 2'147'483'584};

// "1 to 256", "0.1 to 86400": the range as the help text and errors show it.
std::string range_text(const WholeRange& range);
std::string range_text(const SecondsRange& range);

// Validators run on the text before CLI11 converts it: "-1" for an unsigned
// option, "1e3", "0x10", "nan" or "inf" are refused here, not wrapped or
// rounded by the conversion.
CLI::Validator whole_number_in(const WholeRange& range);
CLI::Validator seconds_in(const SecondsRange& range);
// "max" or a whole number in `range`.
CLI::Validator whole_number_or_max_in(const WholeRange& range);

}  // namespace haco::cli
