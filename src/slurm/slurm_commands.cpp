// sbatch and scontrol, run as an operator would run them: their own error
// messages are passed on.
#include <cctype>

#include <fmt/format.h>

#include "haco/error.hpp"
#include "haco/run_program.hpp"
#include "haco/slurm.hpp"

namespace haco::slurm {
namespace {

bool is_key_start(std::string_view line, std::size_t at) {
  // " Key=" : a key is letters, digits, ':' or '/' (TRES keys are plain words).
  std::size_t eq = line.find('=', at);
  if (eq == std::string_view::npos || eq == at) return false;
  for (std::size_t i = at; i < eq; ++i) {
    char c = line[i];
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == ':' || c == '/' || c == '_')) return false;
  }
  return true;
}

std::string failure_text(const std::string& program, const ProgramResult& r) {
  std::string said = r.errors.empty() ? r.output : r.errors;
  return fmt::format("{} failed (exit {}){}", program, r.status, said.empty() ? "" : ": " + said);
}

}  // namespace

std::map<std::string, std::string> parse_scontrol_record(std::string_view line) {
  std::map<std::string, std::string> fields;
  std::size_t at = 0;
  while (at < line.size()) {
    while (at < line.size() && line[at] == ' ') ++at;
    if (at >= line.size() || !is_key_start(line, at)) break;
    std::size_t eq = line.find('=', at);
    std::string key(line.substr(at, eq - at));
    // The value runs to the next " Key=" (a Reason or a Command may hold spaces).
    std::size_t end = eq + 1;
    for (;;) {
      std::size_t space = line.find(' ', end);
      if (space == std::string_view::npos) {
        end = line.size();
        break;
      }
      std::size_t next = space;
      while (next < line.size() && line[next] == ' ') ++next;
      if (next >= line.size() || is_key_start(line, next)) {
        end = space;
        break;
      }
      end = next;
    }
    fields[key] = std::string(line.substr(eq + 1, end - eq - 1));
    at = end;
  }
  return fields;
}

std::optional<JobInfo> show_job(const std::string& job) {
  auto r = run_program({"scontrol", "-o", "show", "job", job}, false);
  if (r.status != 0) {
    if ((r.errors + r.output).find("Invalid job id") != std::string::npos) return std::nullopt;
    throw Error(failure_text("scontrol show job " + job, r));
  }
  auto f = parse_scontrol_record(r.output.substr(0, r.output.find('\n')));
  JobInfo info;
  info.id = f["JobId"];
  info.name = f["JobName"];
  info.state = f["JobState"];
  info.reason = f["Reason"];
  info.node_list = f["NodeList"];
  info.run_time = f["RunTime"];
  info.time_limit = f["TimeLimit"];
  info.exit_code = f["ExitCode"];
  info.stdout_path = f["StdOut"];
  if (!info.node_list.empty() && info.node_list != "(null)") info.nodes = expand_hostlist(info.node_list);
  return info;
}

std::vector<std::string> expand_hostlist(const std::string& list) {
  auto r = run_program({"scontrol", "show", "hostnames", list}, false);
  if (r.status != 0) throw Error(failure_text("scontrol show hostnames " + list, r));
  std::vector<std::string> names;
  std::size_t at = 0;
  while (at < r.output.size()) {
    std::size_t end = r.output.find('\n', at);
    if (end == std::string::npos) end = r.output.size();
    if (end > at) names.push_back(r.output.substr(at, end - at));
    at = end + 1;
  }
  return names;
}

std::string submit_batch(const std::vector<std::string>& sbatch_args, const std::string& command) {
  std::vector<std::string> argv{"sbatch", "--parsable"};
  argv.insert(argv.end(), sbatch_args.begin(), sbatch_args.end());
  argv.push_back("--wrap");
  argv.push_back(command);
  auto r = run_program(argv, false);
  if (r.status != 0) throw Error(failure_text("sbatch", r));
  // --parsable: "JOBID" or "JOBID;CLUSTER".
  std::string id = r.output.substr(r.output.rfind('\n') == std::string::npos ? 0 : r.output.rfind('\n') + 1);
  id = id.substr(0, id.find(';'));
  if (id.empty() || id.find_first_not_of("0123456789") != std::string::npos)
    throw Error(fmt::format("sbatch printed no job id: '{}'", r.output));
  return id;
}

std::string shell_words(const std::vector<std::string>& words) {
  std::string line;
  for (const auto& w : words) {
    if (!line.empty()) line += ' ';
    bool plain = !w.empty() && w.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
                                                   "_-./=:,+@%") == std::string::npos;
    if (plain) {
      line += w;
      continue;
    }
    line += '\'';
    for (char c : w) line += c == '\'' ? std::string("'\\''") : std::string(1, c);
    line += '\'';
  }
  return line;
}

}  // namespace haco::slurm
