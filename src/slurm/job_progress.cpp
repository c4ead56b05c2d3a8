// The lines tasks print about their slices, and what the batch step makes
// of them for the whole fleet.
#include <algorithm>
#include <regex>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "haco/parse_number.hpp"
#include "haco/slurm.hpp"

namespace haco::slurm {

std::string slice_report_line(const SliceRecord& r) {
  std::string status = r.state;
  if (!r.detail.empty()) status += (r.state == "failed" ? ": " : " ") + r.detail;
  return fmt::format("haco-fleet slice {}/{} of job {} on {} (ports {}): {}", r.index + 1, r.count, r.job, r.node,
                     r.ports, status);
}

std::optional<SliceRecord> parse_slice_report_line(std::string_view line) {
  // srun may prefix a task's lines with "N: " (--label).
  static const std::regex form(
      R"(^(?:\d+: )?haco-fleet slice (\d+)/(\d+) of job (\S+) on (\S+) \(ports ([0-9,-]+)\): (starting|ready|failed|stopping|stopped)(?:: | |$)(.*)$)");
  std::cmatch m;
  if (!std::regex_match(line.data(), line.data() + line.size(), m, form)) return std::nullopt;
  auto number = parse_u32(m[1].str());
  auto count = parse_u32(m[2].str());
  if (!number || !count || *number == 0 || *number > *count) return std::nullopt;
  SliceRecord r;
  r.index = *number - 1;
  r.count = *count;
  r.job = m[3].str();
  r.node = m[4].str();
  r.ports = m[5].str();
  r.state = m[6].str();
  r.detail = m[7].str();
  return r;
}

std::optional<std::string> JobProgress::feed(std::string_view line) {
  auto r = parse_slice_report_line(line);
  if (!r || r->count != slices_ || r->index >= slices_) return std::nullopt;
  if (r->state == "failed") {
    bool first = failed_.empty();
    failed_[r->index] = *r;
    ready_.erase(r->index);
    if (first)
      return fmt::format("haco-fleet job {}: slice {}/{} on {} failed: {}; the job ends (every slice is taken down)",
                         r->job, r->index + 1, slices_, r->node, r->detail);
    return std::nullopt;
  }
  if (r->state != "ready") return std::nullopt;
  ready_[r->index] = *r;
  if (!all_ready() || announced_ready_ || any_failed()) return std::nullopt;
  announced_ready_ = true;
  std::vector<std::string> nodes;
  for (const auto& [index, slice] : ready_)
    if (std::find(nodes.begin(), nodes.end(), slice.node) == nodes.end()) nodes.push_back(slice.node);
  return fmt::format("haco-fleet job {}: the whole fleet serves: {} slices ready on {}", r->job, slices_,
                     fmt::join(nodes, ","));
}

}  // namespace haco::slurm
