#include "runtime/cgroup_keys.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <unistd.h>

#include <fmt/format.h>

#include "haco/cgroup.hpp"
#include "haco/error.hpp"

namespace haco::cgroups {
namespace {

std::optional<std::int64_t> parse_int(std::string_view s) {
  std::int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || end != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

using Check = bool (*)(std::string_view);
using Convert = std::string (*)(std::string_view);

// The kernel's own bounds: CFS quota and period (kernel/sched/core.c:
// 1 ms to 1 s for the period, at least 1 ms and at most 2^44-1 us for the
// quota), PID_MAX_LIMIT for pids.max, NR_CPUS and MAX_NUMNODES at most 8192
// and 1024 for cpusets.
constexpr std::int64_t kMinCfsUs = 1000;
constexpr std::int64_t kMaxCfsQuotaUs = (std::int64_t(1) << 44) - 1;
constexpr std::int64_t kMaxCfsPeriodUs = 1000000;
constexpr std::int64_t kMaxPids = 4194304;
constexpr std::int64_t kMaxCpusetId = 8191;

bool between(std::string_view s, std::int64_t min, std::int64_t max) {
  auto v = parse_int(s);
  return v && *v >= min && *v <= max;
}

bool quota_v1(std::string_view s) { return s == "-1" || between(s, kMinCfsUs, kMaxCfsQuotaUs); }
bool period(std::string_view s) { return between(s, kMinCfsUs, kMaxCfsPeriodUs); }
bool quota_v2(std::string_view s) { return s == "max" || between(s, kMinCfsUs, kMaxCfsQuotaUs); }
bool bytes_v1(std::string_view s) { return between(s, -1, INT64_MAX); }
bool bytes_v2(std::string_view s) { return s == "max" || between(s, 0, INT64_MAX); }
bool pids(std::string_view s) { return s == "max" || between(s, 1, kMaxPids); }
bool shares(std::string_view s) { return between(s, 2, 262144); }
bool weight_v2(std::string_view s) { return between(s, 1, 10000); }
bool blkio_weight(std::string_view s) { return between(s, 10, 1000); }

// "0-2,5" -> {0,1,2,5}; nullopt when malformed.
std::optional<std::vector<std::int64_t>> id_set(std::string_view list) {
  std::vector<std::int64_t> ids;
  std::size_t pos = 0;
  while (pos < list.size()) {
    auto end = list.find(',', pos);
    if (end == std::string_view::npos) end = list.size();
    auto part = list.substr(pos, end - pos);
    auto dash = part.find('-');
    auto lo = parse_int(part.substr(0, dash));
    auto hi = dash == std::string_view::npos ? lo : parse_int(part.substr(dash + 1));
    if (!lo || !hi || *hi < *lo || *hi - *lo > 65536) return std::nullopt;
    for (auto id = *lo; id <= *hi; ++id) ids.push_back(id);
    pos = end + 1;
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

// "0-3,8": ids and ranges of ids, each id from 0 to kMaxCpusetId.
bool id_list(std::string_view s) {
  if (s.empty() || s.back() == ',') return false;
  auto ids = id_set(s);
  return ids && !ids->empty() && ids->front() >= 0 && ids->back() <= kMaxCpusetId;
}

// What a check accepts, as error messages say it.
struct Accepts {
  Check valid;
  std::string_view text;
};

constexpr Accepts kQuotaV1{quota_v1, "-1 (no limit) or 1000 to 17592186044415 (microseconds)"};
constexpr Accepts kQuotaV2{quota_v2, "max or 1000 to 17592186044415 (microseconds)"};
constexpr Accepts kPeriod{period, "1000 to 1000000 (microseconds)"};
constexpr Accepts kBytesV1{bytes_v1, "-1 (no limit) or 0 to 9223372036854775807 (bytes)"};
constexpr Accepts kBytesV2{bytes_v2, "max or 0 to 9223372036854775807 (bytes)"};
constexpr Accepts kPids{pids, "max or 1 to 4194304"};
constexpr Accepts kShares{shares, "2 to 262144"};
constexpr Accepts kWeightV2{weight_v2, "1 to 10000"};
constexpr Accepts kBlkioWeight{blkio_weight, "10 to 1000"};
constexpr Accepts kIdList{id_list, "a list of ids and ranges from 0 to 8191, such as 0-3,8"};

std::string same(std::string_view s) { return std::string(s); }
std::string minus_one_to_max(std::string_view s) { return s == "-1" ? "max" : std::string(s); }
std::string max_to_minus_one(std::string_view s) { return s == "max" ? "-1" : std::string(s); }
// The conversions runc and crun use, so both sides agree on the scale.
std::string shares_to_weight(std::string_view s) {
  return std::to_string(1 + ((*parse_int(s) - 2) * 9999) / 262142);
}
std::string weight_to_shares(std::string_view s) {
  return std::to_string(2 + ((*parse_int(s) - 1) * 262142) / 9999);
}
std::string blkio_to_io_weight(std::string_view s) {
  return std::to_string(1 + ((*parse_int(s) - 10) * 9999) / 990);
}
std::string io_to_blkio_weight(std::string_view s) {
  return std::to_string(10 + ((*parse_int(s) - 1) * 990) / 9999);
}

// One row per v1 key. A v2 file holding several values ("cpu.max" is
// "QUOTA PERIOD") has one row per field, in field order.
struct Row {
  std::string_view v1_key;
  std::string_view v2_key;
  int field;                  // position in the v2 file's space-separated values
  std::string_view field_name;  // its name in errors, for a v2 file of several values
  std::string_view v2_default;  // the field's value when the definition omits it
  Accepts v1_accepts;
  Accepts v2_accepts;
  Convert to_v2;
  Convert to_v1;
};

constexpr std::array<Row, 9> kTable{{
    {"cpu.cfs_quota_us", "cpu.max", 0, "QUOTA", "max", kQuotaV1, kQuotaV2, minus_one_to_max, max_to_minus_one},
    {"cpu.cfs_period_us", "cpu.max", 1, "PERIOD", "100000", kPeriod, kPeriod, same, same},
    {"cpu.shares", "cpu.weight", 0, "", "", kShares, kWeightV2, shares_to_weight, weight_to_shares},
    {"memory.limit_in_bytes", "memory.max", 0, "", "", kBytesV1, kBytesV2, minus_one_to_max, max_to_minus_one},
    {"memory.soft_limit_in_bytes", "memory.low", 0, "", "", kBytesV1, kBytesV2, minus_one_to_max,
     max_to_minus_one},
    {"pids.max", "pids.max", 0, "", "", kPids, kPids, same, same},
    {"blkio.weight", "io.weight", 0, "", "", kBlkioWeight, kWeightV2, blkio_to_io_weight, io_to_blkio_weight},
    {"cpuset.cpus", "cpuset.cpus", 0, "", "", kIdList, kIdList, same, same},
    {"cpuset.mems", "cpuset.mems", 0, "", "", kIdList, kIdList, same, same},
}};

const Row* row_for_v1(std::string_view key) {
  for (const auto& r : kTable)
    if (r.v1_key == key) return &r;
  return nullptr;
}

std::vector<const Row*> rows_for_v2(std::string_view key) {
  std::vector<const Row*> rows;
  for (const auto& r : kTable)
    if (r.v2_key == key) rows.push_back(&r);
  return rows;
}

std::vector<std::string> split_fields(std::string_view value) {
  std::vector<std::string> fields;
  std::size_t pos = 0;
  while (pos < value.size()) {
    auto end = value.find(' ', pos);
    if (end == std::string_view::npos) end = value.size();
    if (end > pos) fields.emplace_back(value.substr(pos, end - pos));
    pos = end + 1;
  }
  return fields;
}

// What a v2 key accepts: its one value's range, or each field's
// ("QUOTA [PERIOD]: QUOTA max or ..., PERIOD 1000 to ...").
std::string v2_accepts_text(const std::vector<const Row*>& rows) {
  if (rows.size() == 1) return std::string(rows.front()->v2_accepts.text);
  std::string names, ranges;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    std::string_view name = rows[i]->field_name;
    names += i == 0 ? std::string(name) : fmt::format(" [{}]", name);
    ranges += fmt::format("{}{} {}", i == 0 ? "" : ", ", name, rows[i]->v2_accepts.text);
  }
  return fmt::format("\"{}\" with {}", names, ranges);
}

std::string value_problem(const CgroupSetting& s, std::string_view accepts) {
  return fmt::format("cgroup[\"{}\"] = \"{}\" is out of range or malformed: expected {}", s.key, s.value, accepts);
}

// memory+swap (v1) and swap alone (v2) are counted on top of the memory
// limit, so they translate only together with it.
constexpr std::string_view kMemswV1 = "memory.memsw.limit_in_bytes";
constexpr std::string_view kSwapV2 = "memory.swap.max";

// The memory limit in bytes (-1: none) that the settings give, if any.
std::optional<std::int64_t> memory_limit_of(const std::vector<CgroupSetting>& settings) {
  std::optional<std::int64_t> limit;
  for (const auto& s : settings)
    if (s.key == "memory.limit_in_bytes" || s.key == "memory.max")
      limit = (s.value == "max" || s.value == "-1") ? -1 : parse_int(s.value).value_or(-1);
  return limit;
}

// memsw - memory limit, as memory.swap.max.
std::string swap_from_memsw(const CgroupSetting& memsw, std::int64_t memory_limit) {
  if (memsw.value == "-1") return "max";
  std::int64_t total = *parse_int(memsw.value);
  if (memory_limit < 0 || total < memory_limit)
    throw InputError(fmt::format("cgroup[\"{}\"] = {} must be at least the memory limit ({})", memsw.key, memsw.value,
                                 memory_limit < 0 ? "unlimited" : std::to_string(memory_limit)));
  return std::to_string(total - memory_limit);
}

// memory limit + swap, as memory.memsw.limit_in_bytes.
std::string memsw_from_swap(const CgroupSetting& swap, std::int64_t memory_limit) {
  if (swap.value == "max") return "-1";
  if (memory_limit < 0)
    throw InputError(fmt::format("cgroup[\"{}\"] = {} cannot be expressed on cgroup v1 without a memory limit",
                                 swap.key, swap.value));
  return std::to_string(memory_limit + *parse_int(swap.value));
}

// The fields of a v2 setting with defaults filled in; nullopt when there are
// too few or too many, or one is out of its range.
std::optional<std::vector<std::string>> checked_v2_fields(const CgroupSetting& s,
                                                          const std::vector<const Row*>& rows) {
  auto fields = split_fields(s.value);
  if (fields.empty() || fields.size() > rows.size()) return std::nullopt;
  for (std::size_t i = fields.size(); i < rows.size(); ++i) fields.emplace_back(rows[i]->v2_default);
  for (std::size_t i = 0; i < rows.size(); ++i)
    if (!rows[i]->v2_accepts.valid(fields[i])) return std::nullopt;
  return fields;
}

std::vector<std::string> v2_fields(const CgroupSetting& s, const std::vector<const Row*>& rows) {
  auto fields = checked_v2_fields(s, rows);
  if (!fields) throw InputError(value_problem(s, v2_accepts_text(rows)));
  return *fields;
}

}  // namespace

std::string controller_of(std::string_view key) {
  return std::string(key.substr(0, key.find('.')));
}

std::optional<std::string> setting_problem(const CgroupSetting& s) {
  if (s.key == kMemswV1) {
    if (kBytesV1.valid(s.value)) return std::nullopt;
    return value_problem(s, kBytesV1.text);
  }
  if (s.key == kSwapV2) {
    if (kBytesV2.valid(s.value)) return std::nullopt;
    return value_problem(s, kBytesV2.text);
  }
  if (const Row* r = row_for_v1(s.key)) {
    if (r->v1_accepts.valid(s.value)) return std::nullopt;
    return value_problem(s, r->v1_accepts.text);
  }
  auto rows = rows_for_v2(s.key);
  if (rows.empty()) {
    std::string known;
    for (const auto& r : kTable) known += fmt::format(" {}", r.v1_key);
    known += fmt::format(" {}", kMemswV1);
    return fmt::format("unknown cgroup key \"{}\" (known v1 keys:{}; and their v2 forms)", s.key, known);
  }
  if (checked_v2_fields(s, rows)) return std::nullopt;
  return value_problem(s, v2_accepts_text(rows));
}

void validate_settings(const std::vector<CgroupSetting>& settings) {
  for (const auto& s : settings) {
    if (auto problem = setting_problem(s)) throw InputError(*problem);
    if ((s.key == kMemswV1 || s.key == kSwapV2) && !memory_limit_of(settings))
      throw InputError(fmt::format("cgroup[\"{}\"] needs a memory limit too (memory.limit_in_bytes or memory.max): "
                                   "the swap allowance is counted on top of it",
                                   s.key));
  }
}

std::vector<CgroupSetting> translate_to_v2(const std::vector<CgroupSetting>& settings) {
  validate_settings(settings);
  // v2 key -> its fields; order of first appearance is kept.
  std::vector<std::string> order;
  std::map<std::string, std::vector<std::string>> files;
  auto file_for = [&](std::string_view v2_key) -> std::vector<std::string>& {
    auto [it, inserted] = files.try_emplace(std::string(v2_key));
    if (inserted) {
      order.emplace_back(v2_key);
      for (const Row* r : rows_for_v2(v2_key)) it->second.emplace_back(r->v2_default);
    }
    return it->second;
  };
  for (const auto& s : settings) {
    if (s.key == kMemswV1 || s.key == kSwapV2) {
      file_for(kSwapV2) = {s.key == kSwapV2 ? s.value : swap_from_memsw(s, *memory_limit_of(settings))};
    } else if (const Row* r = row_for_v1(s.key)) {
      file_for(r->v2_key)[r->field] = r->to_v2(s.value);
    } else {
      file_for(s.key) = v2_fields(s, rows_for_v2(s.key));
    }
  }
  std::vector<CgroupSetting> out;
  for (const auto& key : order) {
    std::string value;
    for (const auto& f : files[key]) value.append(value.empty() ? "" : " ").append(f);
    out.push_back({key, value});
  }
  return out;
}

std::vector<CgroupSetting> translate_to_v1(const std::vector<CgroupSetting>& settings) {
  validate_settings(settings);
  std::vector<CgroupSetting> out;
  auto put = [&](std::string_view key, std::string value) {
    auto it = std::find_if(out.begin(), out.end(), [&](const CgroupSetting& s) { return s.key == key; });
    if (it != out.end())
      it->value = std::move(value);
    else
      out.push_back({std::string(key), std::move(value)});
  };
  for (const auto& s : settings) {
    if (s.key == kMemswV1 || s.key == kSwapV2) {
      put(kMemswV1, s.key == kMemswV1 ? s.value : memsw_from_swap(s, *memory_limit_of(settings)));
      continue;
    }
    if (row_for_v1(s.key)) {
      put(s.key, s.value);
      continue;
    }
    auto rows = rows_for_v2(s.key);
    auto fields = v2_fields(s, rows);
    for (std::size_t i = 0; i < rows.size(); ++i) put(rows[i]->v1_key, rows[i]->to_v1(fields[i]));
  }
  // cfs_quota_us is checked against the current period, and memsw may never
  // be below the memory limit: the period and the memory limit go first,
  // memsw last.
  auto rank = [](const CgroupSetting& s) {
    if (s.key == "cpu.cfs_period_us" || s.key == "memory.limit_in_bytes") return 0;
    return s.key == kMemswV1 ? 2 : 1;
  };
  std::stable_sort(out.begin(), out.end(),
                   [&](const CgroupSetting& a, const CgroupSetting& b) { return rank(a) < rank(b); });
  return out;
}

namespace {

std::vector<std::string> fields_of(std::string_view text) { return split_fields(text); }

bool is_memory_size(std::string_view key) {
  return key.rfind("memory.", 0) == 0 && key != "memory.oom_control" && key != "memory.swappiness";
}

}  // namespace

bool kernel_took_value(std::string_view key, std::string_view written, std::string_view read) {
  if (key == "cpuset.cpus" || key == "cpuset.mems") return id_set(written) == id_set(read);
  if (key == "io.weight") {
    // "default 100" (and per-device lines after it)
    auto fields = fields_of(read);
    return fields.size() >= 2 && fields[0] == "default" && fields[1] == written;
  }
  if (is_memory_size(key)) {
    // Limits are kept in pages; v1 shows "no limit" as the largest page
    // multiple of int64.
    constexpr std::int64_t kUnlimited = std::int64_t(1) << 62;
    auto got = parse_int(read);
    if (written == "max" || written == "-1") return read == "max" || (got && *got >= kUnlimited);
    auto want = parse_int(written);
    if (!want || !got) return false;
    std::int64_t page = ::sysconf(_SC_PAGESIZE);
    return *got == *want / page * page;
  }
  return fields_of(written) == fields_of(read);
}

}  // namespace haco::cgroups
