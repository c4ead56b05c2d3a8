// slice.json in each slice's state root, and the submitting host's record
// of a job (STATE_ROOT/slurm/jobs/JOB.json).
#include <sys/stat.h>

#include <cerrno>
#include <filesystem>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "haco/atomic_file.hpp"
#include "haco/error.hpp"
#include "haco/slurm.hpp"

namespace haco::slurm {
namespace {

using nlohmann::json;

constexpr int kSliceSchema = 1;
constexpr int kSubmittedSchema = 1;

// Makes `dir` (and its parents) 0700 root, as every state directory.
void make_private_dir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw Error::from_errno("mkdir", dir, ec.value());
  if (::chmod(dir.c_str(), 0700) != 0) throw Error::from_errno("chmod", dir, errno);
}

template <class T>
T field(const json& j, const char* key, const std::string& path) {
  try {
    return j.at(key).get<T>();
  } catch (const json::exception&) {
    throw Error(fmt::format("{}: missing or bad \"{}\"", path, key));
  }
}

}  // namespace

void write_slice_record(const std::string& slice_root, const SliceRecord& r) {
  make_private_dir(slice_root);
  json j = {{"schema", kSliceSchema},
            {"job", r.job},
            {"index", r.index},
            {"count", r.count},
            {"node", r.node},
            {"fleet", r.fleet},
            {"ports", r.ports},
            {"state", r.state},
            {"detail", r.detail},
            {"owner", {{"pid", r.owner.pid}, {"start_time", r.owner.start_time}}},
            {"updated_unix_ms", r.updated_unix_ms}};
  write_file_atomically(slice_root + "/slice.json", j.dump(2) + "\n", 0600);
}

std::optional<SliceRecord> read_slice_record(const std::string& slice_root) {
  std::string path = slice_root + "/slice.json";
  auto j = state::read_json_file(path);
  if (!j) return std::nullopt;
  SliceRecord r;
  r.job = field<std::string>(*j, "job", path);
  r.index = field<unsigned>(*j, "index", path);
  r.count = field<unsigned>(*j, "count", path);
  r.node = field<std::string>(*j, "node", path);
  r.fleet = field<std::string>(*j, "fleet", path);
  r.ports = field<std::string>(*j, "ports", path);
  r.state = field<std::string>(*j, "state", path);
  r.detail = field<std::string>(*j, "detail", path);
  json owner = field<json>(*j, "owner", path);
  r.owner.pid = field<pid_t>(owner, "pid", path);
  r.owner.start_time = field<std::uint64_t>(owner, "start_time", path);
  r.updated_unix_ms = field<std::int64_t>(*j, "updated_unix_ms", path);
  return r;
}

std::vector<std::string> list_slice_roots(const std::string& state_root) {
  std::vector<std::string> roots;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(slices_dir(state_root), ec)) {
    if (!entry.is_directory() || entry.path().filename() == "jobs") continue;
    if (std::filesystem::exists(entry.path() / "slice.json")) roots.push_back(entry.path().string());
  }
  std::sort(roots.begin(), roots.end());
  return roots;
}

std::string submitted_job_path(const std::string& state_root, const std::string& job) {
  return slices_dir(state_root) + "/jobs/" + job + ".json";
}

void write_submitted_job(const std::string& state_root, const SubmittedJob& s) {
  make_private_dir(slices_dir(state_root) + "/jobs");
  json j = {{"schema", kSubmittedSchema},  {"job", s.job},         {"fleet", s.fleet},
            {"definition", s.definition},  {"ports", s.ports},     {"slices", s.slices},
            {"slice_ports", s.slice_ports}, {"output", s.output}, {"submitted_unix_ms", s.submitted_unix_ms}};
  write_file_atomically(submitted_job_path(state_root, s.job), j.dump(2) + "\n", 0600);
}

std::optional<SubmittedJob> read_submitted_job(const std::string& state_root, const std::string& job) {
  std::string path = submitted_job_path(state_root, job);
  auto j = state::read_json_file(path);
  if (!j) return std::nullopt;
  SubmittedJob s;
  s.job = field<std::string>(*j, "job", path);
  s.fleet = field<std::string>(*j, "fleet", path);
  s.definition = field<std::string>(*j, "definition", path);
  s.ports = field<std::string>(*j, "ports", path);
  s.slices = field<unsigned>(*j, "slices", path);
  s.slice_ports = field<std::vector<std::string>>(*j, "slice_ports", path);
  s.output = field<std::string>(*j, "output", path);
  s.submitted_unix_ms = field<std::int64_t>(*j, "submitted_unix_ms", path);
  return s;
}

}  // namespace haco::slurm
