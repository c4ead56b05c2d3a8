#include "haco/bootstrap_plan.hpp"

#include <algorithm>
#include <filesystem>
#include <string_view>

#include <fmt/format.h>

#include "haco/parse_number.hpp"

namespace haco::fleet {
namespace {

namespace fs = std::filesystem;

// What an unquoted character would make the shell do, or nullptr when it is
// an ordinary character of a word.
const char* unquoted_meaning(char c) {
  switch (c) {
    case '|': return "a pipe";
    case ';': return "a `;`";
    case '&': return "`&`";
    case '<': case '>': return "a redirection";
    case '$': return "a variable or expansion";
    case '`': return "a command substitution";
    case '*': case '?': case '[': return "a glob";
    case '(': case ')': return "a subshell";
    case '{': case '}': return "braces";
    case '\n': return "more than one line";
    default: return nullptr;
  }
}

std::string normal_path(const std::string& path) {
  std::string out = fs::path(path).lexically_normal().string();
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  return out;
}

// Whether `dir` is `path` or one of its ancestors (both normal and absolute).
bool is_same_or_ancestor(const std::string& dir, const std::string& path) {
  if (dir == path || dir == "/") return true;
  return path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 && path[dir.size()] == '/';
}

bool is_inside(const std::string& path, const std::string& root) {
  return path.size() > root.size() && path.compare(0, root.size(), root) == 0 && path[root.size()] == '/';
}

std::optional<std::uint32_t> host_id_of_root(const std::vector<IdMapping>& map) {
  for (const IdMapping& m : map)
    if (m.inside == 0 && m.count > 0) return m.outside;
  return std::nullopt;
}

// The program a command runs: "tar" for "tar" and "/bin/tar" alike.
std::string program_of(const std::string& word) {
  for (const char* dir : {"/bin/", "/usr/bin/", "/sbin/", "/usr/sbin/"})
    if (word.rfind(dir, 0) == 0) return word.substr(std::string_view(dir).size());
  return word;
}

class Recogniser {
 public:
  explicit Recogniser(const ContainerSpec& c) : c_(c) { plan_.root = normal_path(c.rootfs); }

  // One command of the block (the words of one backtick or system call).
  // Returns a reason when it is not part of the idiom.
  std::string add(const std::string& command) {
    std::string reason;
    std::vector<ShellWord> words = split_shell_words(command, reason);
    if (!reason.empty()) return fmt::format("`{}`: {} is not part of the idiom", command, reason);
    if (words.empty()) return fmt::format("`{}`: an empty command", command);
    // `cd DIR && tar ...` is the one compound form: tar in DIR.
    std::optional<std::string> cd_dir;
    auto op = std::find_if(words.begin(), words.end(), [](const ShellWord& w) { return w.and_operator; });
    if (op != words.end()) {
      std::vector<ShellWord> first(words.begin(), op), rest(op + 1, words.end());
      if (first.size() != 2 || first[0].text != "cd" || rest.empty() || program_of(rest[0].text) != "tar" ||
          std::any_of(rest.begin(), rest.end(), [](const ShellWord& w) { return w.and_operator; }))
        return fmt::format("`{}`: `&&` joins commands only as `cd DIR && tar ...`", command);
      cd_dir = first[1].text;
      words = std::move(rest);
    }
    std::vector<std::string> argv;
    for (const auto& w : words) argv.push_back(w.text);
    const std::string program = program_of(argv[0]);
    std::string why;
    if (program == "mkdir") why = mkdir(argv);
    else if (program == "tar") why = tar(argv, cd_dir);
    else if (program == "chown") why = chown(argv);
    else if (program == "mknod") why = mknod(argv);
    else why = fmt::format("{} is not a command the engine knows (mkdir -p, tar, chown -R, mknod)", argv[0]);
    return why.empty() ? std::string() : fmt::format("`{}`: {}", command, why);
  }

  // After the last command: what is still missing, or "".
  std::string finish() {
    if (plan_.archive.empty()) return "the block extracts no archive into the rootfs";
    if (!c_.uid_map.empty() && !plan_.chown)
      return "no `chown -R` of the rootfs to the container root's host ids (the files would keep the image's ids)";
    return {};
  }

  BootstrapPlan plan() const { return plan_; }

 private:
  std::string absolute(const std::string& path, const char* what) {
    if (path.empty() || path[0] != '/') return fmt::format("{} {} is not an absolute path", what, path);
    return {};
  }

  std::string mkdir(const std::vector<std::string>& argv) {
    if (!plan_.archive.empty()) return "mkdir after tar";
    std::size_t i = 1;
    for (; i < argv.size() && argv[i].size() > 1 && argv[i][0] == '-'; ++i)
      if (argv[i] != "-p" && argv[i] != "--parents") return fmt::format("mkdir option {} is not known here", argv[i]);
    if (i == argv.size()) return "mkdir without a directory";
    for (; i < argv.size(); ++i) {
      if (auto r = absolute(argv[i], "mkdir's directory"); !r.empty()) return r;
      std::string dir = normal_path(argv[i]);
      if (!is_same_or_ancestor(dir, plan_.root))
        return fmt::format("mkdir of {}, which is neither the rootfs {} nor one of its parents", dir, plan_.root);
      plan_.directories.push_back(dir);
    }
    return {};
  }

  std::string tar(const std::vector<std::string>& argv, const std::optional<std::string>& cd_dir) {
    if (!plan_.archive.empty()) return "a second tar";
    bool extract = false;
    std::optional<std::string> archive, directory;
    // Letters of the short form; f and C take a value.
    auto letters = [&](std::string_view bundle, std::size_t& next, bool dashed) -> std::string {
      for (std::size_t k = 0; k < bundle.size(); ++k) {
        char l = bundle[k];
        if (l == 'x') {
          extract = true;
        } else if (l == 'f' || l == 'C') {
          std::string value;
          if (dashed && k + 1 < bundle.size()) {
            value = std::string(bundle.substr(k + 1));
            k = bundle.size();
          } else if (next < argv.size()) {
            value = argv[next++];
          } else {
            return fmt::format("tar option {} without its value", l);
          }
          (l == 'f' ? archive : directory) = value;
        } else if (std::string_view("zjJavp").find(l) == std::string_view::npos) {
          return fmt::format("tar option {} is not known here", l);
        }
      }
      return {};
    };
    std::size_t next = 1;
    // The old form: the first word is a bundle of letters without a dash.
    if (next < argv.size() && !argv[next].empty() && argv[next][0] != '-') {
      std::string_view bundle = argv[next++];
      if (auto r = letters(bundle, next, false); !r.empty()) return r;
    }
    static const std::vector<std::string> kHarmless = {
        "--gzip", "--gunzip", "--ungzip", "--bzip2", "--xz", "--lzma", "--zstd", "--auto-compress", "--verbose",
        "--numeric-owner", "--same-owner", "--preserve-permissions", "--same-permissions"};
    while (next < argv.size()) {
      const std::string word = argv[next++];
      if (word == "--extract" || word == "--get") {
        extract = true;
      } else if (word.rfind("--file=", 0) == 0) {
        archive = word.substr(7);
      } else if (word.rfind("--directory=", 0) == 0) {
        directory = word.substr(12);
      } else if (word == "--file" || word == "--directory") {
        if (next >= argv.size()) return fmt::format("tar option {} without its value", word);
        (word == "--file" ? archive : directory) = argv[next++];
      } else if (std::find(kHarmless.begin(), kHarmless.end(), word) != kHarmless.end()) {
      } else if (word.size() > 1 && word[0] == '-' && word[1] != '-') {
        if (auto r = letters(std::string_view(word).substr(1), next, true); !r.empty()) return r;
      } else if (word.rfind("--", 0) == 0) {
        return fmt::format("tar option {} is not known here", word);
      } else {
        return fmt::format("tar extracting only some members ({})", word);
      }
    }
    if (!extract) return "tar that does not extract (no x)";
    if (!archive) return "tar without an archive (no f)";
    if (auto r = absolute(*archive, "tar's archive"); !r.empty()) return r;
    std::string target;
    if (directory && cd_dir) return "tar with both cd and -C";
    if (directory) target = *directory;
    else if (cd_dir) target = *cd_dir;
    else return "tar without -C or cd extracts into the block's working directory";
    if (auto r = absolute(target, "tar's directory"); !r.empty()) return r;
    if (normal_path(target) != plan_.root)
      return fmt::format("tar extracts into {}, not the rootfs {}", normal_path(target), plan_.root);
    plan_.archive = normal_path(*archive);
    return {};
  }

  std::string chown(const std::vector<std::string>& argv) {
    if (plan_.chown) return "a second chown";
    if (plan_.archive.empty()) return "chown before tar";
    bool recursive = false;
    std::vector<std::string> operands;
    for (std::size_t i = 1; i < argv.size(); ++i) {
      if (argv[i] == "-R" || argv[i] == "--recursive") recursive = true;
      else if (argv[i].size() > 1 && argv[i][0] == '-') return fmt::format("chown option {} is not known here", argv[i]);
      else operands.push_back(argv[i]);
    }
    if (!recursive) return "chown without -R";
    if (operands.size() != 2) return "chown of more or fewer than one tree";
    const std::string& owner = operands[0];
    const std::size_t sep = owner.find_first_of(":.");
    if (sep == std::string::npos) return fmt::format("chown to {} without a group", owner);
    auto uid = parse_u32(std::string_view(owner).substr(0, sep));
    auto gid = parse_u32(std::string_view(owner).substr(sep + 1));
    if (!uid || !gid) return fmt::format("chown to {}: only numeric ids are known here", owner);
    if (auto r = absolute(operands[1], "chown's tree"); !r.empty()) return r;
    if (normal_path(operands[1]) != plan_.root)
      return fmt::format("chown -R of {}, not the rootfs {}", normal_path(operands[1]), plan_.root);
    auto root_uid = host_id_of_root(c_.uid_map), root_gid = host_id_of_root(c_.gid_map);
    if (!root_uid || !root_gid)
      return "chown -R without a user namespace mapping of the container's root";
    if (*uid != *root_uid || *gid != *root_gid)
      return fmt::format("chown -R to {}:{}, not the container root's host ids {}:{}", *uid, *gid, *root_uid,
                         *root_gid);
    plan_.chown = std::pair{*uid, *gid};
    return {};
  }

  std::string mknod(const std::vector<std::string>& argv) {
    std::vector<std::string> operands;
    for (std::size_t i = 1; i < argv.size(); ++i) {
      if (argv[i] == "-m") {
        if (++i >= argv.size()) return "mknod -m without a mode";
      } else if (argv[i].rfind("--mode=", 0) == 0 || (argv[i].rfind("-m", 0) == 0 && argv[i].size() > 2)) {
      } else if (argv[i].size() > 1 && argv[i][0] == '-') {
        return fmt::format("mknod option {} is not known here", argv[i]);
      } else {
        operands.push_back(argv[i]);
      }
    }
    if (operands.size() != 4) return "mknod other than PATH c|b MAJOR MINOR";
    if (auto r = absolute(operands[0], "mknod's path"); !r.empty()) return r;
    DeviceNodeRequest node;
    node.path = normal_path(operands[0]);
    if (!is_inside(node.path, plan_.root)) return fmt::format("mknod of {}, outside the rootfs {}", node.path, plan_.root);
    if (operands[1] != "c" && operands[1] != "u" && operands[1] != "b")
      return fmt::format("mknod of type {}", operands[1]);
    node.type = operands[1] == "b" ? 'b' : 'c';
    auto major = parse_u32(operands[2]), minor = parse_u32(operands[3]);
    if (!major || !minor) return "mknod with a device number that is not a number";
    node.major = *major;
    node.minor = *minor;
    plan_.device_nodes.push_back(node);
    return {};
  }

  const ContainerSpec& c_;
  BootstrapPlan plan_;
};

}  // namespace

std::vector<ShellWord> split_shell_words(const std::string& command, std::string& reason) {
  std::vector<ShellWord> words;
  std::string current;
  bool in_word = false;
  auto fail = [&](std::string why) {
    reason = std::move(why);
    return std::vector<ShellWord>{};
  };
  auto end_word = [&] {
    if (in_word) words.push_back({current, false});
    current.clear();
    in_word = false;
  };
  for (std::size_t i = 0; i < command.size(); ++i) {
    const char c = command[i];
    if (c == ' ' || c == '\t') {
      end_word();
    } else if (c == '\'') {
      const std::size_t close = command.find('\'', i + 1);
      if (close == std::string::npos) return fail("an unclosed quote");
      current.append(command, i + 1, close - i - 1);
      in_word = true;
      i = close;
    } else if (c == '"') {
      in_word = true;
      for (++i;; ++i) {
        if (i >= command.size()) return fail("an unclosed quote");
        const char d = command[i];
        if (d == '"') break;
        if (d == '$') return fail("a variable or expansion");
        if (d == '`') return fail("a command substitution");
        if (d == '\\' && i + 1 < command.size() && std::string_view("\"\\$`").find(command[i + 1]) != std::string_view::npos)
          ++i;
        else if (d == '\\' && i + 1 < command.size() && command[i + 1] == '\n')
          return fail("more than one line");
        current += command[i];
      }
    } else if (c == '\\') {
      if (i + 1 >= command.size()) return fail("a trailing backslash");
      if (command[i + 1] == '\n') return fail("more than one line");
      current += command[++i];
      in_word = true;
    } else if (c == '&' && i + 1 < command.size() && command[i + 1] == '&') {
      end_word();
      words.push_back({"&&", true});
      ++i;
    } else if (const char* meaning = unquoted_meaning(c)) {
      return fail(meaning);
    } else if ((c == '~' || c == '#') && !in_word) {
      return fail(c == '~' ? "a tilde expansion" : "a comment");
    } else if (c == '=' && words.empty() && in_word) {
      return fail("a variable assignment");
    } else {
      current += c;
      in_word = true;
    }
  }
  end_word();
  if (!words.empty() && (words.front().and_operator || words.back().and_operator))
    return fail("`&&` without a command on each side");
  return words;
}

BootstrapPlanResult plan_bootstrap(const std::vector<std::string>& commands, const ContainerSpec& c) {
  BootstrapPlanResult result;
  if (commands.empty()) {
    result.reason = "the block runs no command";
    return result;
  }
  Recogniser recogniser(c);
  for (const std::string& command : commands) {
    result.reason = recogniser.add(command);
    if (!result.reason.empty()) return result;
  }
  result.reason = recogniser.finish();
  if (result.reason.empty()) result.plan = recogniser.plan();
  return result;
}

}  // namespace haco::fleet
