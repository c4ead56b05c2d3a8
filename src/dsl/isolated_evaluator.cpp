// Definitions evaluated in a child process: no command, file, socket or
// process is reachable from the definition, and an evaluation that does not
// end is killed.
//
// The protocol over two pipes, one message each way per evaluation, each a
// 4-byte length (host order) and a body:
//   request  strings, each a 4-byte length and its bytes (kept exactly, as
//            the environment need not be UTF-8): PATH, SOURCE, then KEY,
//            VALUE for each variable
//   reply    JSON: {"spec": CONTAINER_SPEC} or {"error": MESSAGE, "input": BOOL}
// Before the first request the child sends one empty message: it is ready
// (its interpreter made, its filter on), so that its start does not count
// against the first evaluation's time limit.
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "dsl/definition_file.hpp"
#include "haco/write_all.hpp"
#include "haco/dsl.hpp"
#include "haco/error.hpp"
#include "haco/spec_json.hpp"
#include "haco/unique_fd.hpp"

namespace haco::dsl {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

constexpr int kRequestFd = 3;  // in the child
constexpr int kReplyFd = 4;
constexpr std::uint32_t kMaxMessage = 64u << 20;
constexpr auto kStartLimit = std::chrono::seconds(30);

#if defined(__x86_64__)
constexpr std::uint32_t kAuditArch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
constexpr std::uint32_t kAuditArch = AUDIT_ARCH_AARCH64;
#else
#error "IsolatedEvaluator: seccomp architecture not known for this target"
#endif

// What an evaluation needs once the definition's source is in memory:
// memory, its two pipes (and stderr for puts), clocks, stat for Dir.exist?
// and File.exist?, and the ways a process ends. No open, no socket, no
// clone/fork/exec, no kill of another process.
constexpr int kAllowedSyscalls[] = {
    SYS_read, SYS_write, SYS_writev, SYS_close, SYS_lseek,
    SYS_brk, SYS_mmap, SYS_munmap, SYS_mremap, SYS_mprotect, SYS_madvise,
    SYS_futex, SYS_getrandom, SYS_clock_gettime, SYS_clock_getres, SYS_gettimeofday,
    SYS_newfstatat, SYS_fstat, SYS_statx, SYS_getcwd,
#ifdef SYS_stat
    SYS_stat, SYS_lstat,
#endif
    SYS_rt_sigreturn, SYS_rt_sigprocmask, SYS_getpid, SYS_gettid,
    SYS_exit, SYS_exit_group,
};

// A filter that allows the calls above and fails every other with EPERM.
// tgkill is allowed only towards this process (abort() raises SIGABRT).
void install_syscall_filter() {
  std::vector<sock_filter> program;
  auto add = [&](sock_filter f) { program.push_back(f); };
  add(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)));
  add(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kAuditArch, 1, 0));
  add(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS));
  add(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)));
  for (int nr : kAllowedSyscalls) {
    add(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<std::uint32_t>(nr), 0, 1));
    add(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
  }
  add(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_tgkill, 0, 3));
  add(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, args[0])));
  add(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<std::uint32_t>(::getpid()), 0, 1));
  add(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
  add(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)));
  sock_fprog fprog{static_cast<unsigned short>(program.size()), program.data()};
  check_sys(::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)");
  check_sys(::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog), "seccomp(SECCOMP_SET_MODE_FILTER)");
}

void append_string(std::string& out, std::string_view s) {
  std::uint32_t size = static_cast<std::uint32_t>(s.size());
  out.append(reinterpret_cast<const char*>(&size), sizeof size);
  out.append(s);
}

// The strings of a request, in order.
std::vector<std::string> split_strings(std::string_view in) {
  std::vector<std::string> out;
  while (!in.empty()) {
    std::uint32_t size = 0;
    if (in.size() < sizeof size) throw Error("definition evaluator: a truncated request");
    std::memcpy(&size, in.data(), sizeof size);
    in.remove_prefix(sizeof size);
    if (in.size() < size) throw Error("definition evaluator: a truncated request");
    out.emplace_back(in.substr(0, size));
    in.remove_prefix(size);
  }
  return out;
}

bool write_message(int fd, const std::string& text) {
  std::uint32_t size = static_cast<std::uint32_t>(text.size());
  return write_all(fd, reinterpret_cast<const char*>(&size), sizeof size) && write_all(fd, text.data(), text.size());
}

// Reads exactly `size` bytes, unless the end of file or the deadline (when
// there is one) comes first.
enum class ReadStatus { done, end_of_file, timed_out };

ReadStatus read_exact(int fd, char* data, std::size_t size, std::optional<Clock::time_point> deadline) {
  while (size > 0) {
    if (deadline) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - Clock::now()).count();
      if (left <= 0) return ReadStatus::timed_out;
      pollfd p{fd, POLLIN, 0};
      int n = ::poll(&p, 1, static_cast<int>(std::min<long>(left, 1000)));
      if (n < 0 && errno != EINTR) throw Error::from_errno("poll", "definition evaluator", errno);
      if (n <= 0) continue;
    }
    ssize_t n = ::read(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw Error::from_errno("read", "definition evaluator", errno);
    if (n == 0) return ReadStatus::end_of_file;
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return ReadStatus::done;
}

ReadStatus read_message(int fd, std::string& text, std::optional<Clock::time_point> deadline) {
  std::uint32_t size = 0;
  if (auto s = read_exact(fd, reinterpret_cast<char*>(&size), sizeof size, deadline); s != ReadStatus::done) return s;
  if (size > kMaxMessage) throw Error(fmt::format("definition evaluator: a message of {} bytes", size));
  text.assign(size, '\0');
  return read_exact(fd, text.data(), size, deadline);
}

// The child's whole life: evaluate each request, answer, end at end of file.
[[noreturn]] void serve(Evaluator& evaluator) {
  for (;;) {
    std::string request;
    try {
      if (read_message(kRequestFd, request, std::nullopt) != ReadStatus::done) ::_exit(0);
    } catch (...) {
      ::_exit(1);
    }
    std::string text;
    auto error_reply = [](const std::string& message, bool input) {
      return json{{"error", message}, {"input", input}}.dump(-1, ' ', false, json::error_handler_t::replace);
    };
    try {
      std::vector<std::string> strings = split_strings(request);
      if (strings.size() < 2 || strings.size() % 2 != 0) throw Error("definition evaluator: a malformed request");
      Environment env;
      for (std::size_t i = 2; i + 1 < strings.size(); i += 2) env[strings[i]] = strings[i + 1];
      text = json{{"spec", to_json(evaluator.evaluate(strings[0], strings[1], env))}}.dump();
    } catch (const InputError& e) {
      text = error_reply(e.what(), true);
    } catch (const json::exception& e) {
      text = error_reply(std::string(e.what()) + " (in what the definition produced)", true);
    } catch (const std::exception& e) {
      text = error_reply(e.what(), false);
    }
    if (!write_message(kReplyFd, text)) ::_exit(1);
  }
}

// Runs in the child right after fork: its pipes at fixed numbers, nothing
// else of the parent's open, stdout to stderr, the interpreter made, then
// the filter, then serve().
[[noreturn]] void child_main(int request_fd, int reply_fd, pid_t parent) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(1);
  // Above the fixed numbers first, so that the dup2s below cannot collide.
  int request = ::fcntl(request_fd, F_DUPFD, 10);
  int reply = ::fcntl(reply_fd, F_DUPFD, 10);
  int null = ::open("/dev/null", O_RDONLY);
  if (request < 0 || reply < 0 || null < 0) ::_exit(1);
  if (::dup2(null, STDIN_FILENO) < 0 || ::dup2(STDERR_FILENO, STDOUT_FILENO) < 0 ||
      ::dup2(request, kRequestFd) < 0 || ::dup2(reply, kReplyFd) < 0)
    ::_exit(1);
  ::close_range(kReplyFd + 1, ~0U, 0);
  // Ctrl-C ends it as it ends the command that started it.
  ::signal(SIGINT, SIG_DFL);
  ::signal(SIGTERM, SIG_DFL);
  ::signal(SIGPIPE, SIG_DFL);
  try {
    Evaluator evaluator;
    install_syscall_filter();
    if (!write_message(kReplyFd, "")) ::_exit(1);
    serve(evaluator);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "haco-fleet: definition evaluator: %s\n", e.what());
  }
  ::_exit(1);
}

}  // namespace

struct IsolatedEvaluator::Child {
  pid_t pid = -1;
  UniqueFd requests;  // write end
  UniqueFd replies;   // read end

  ~Child() {
    requests.reset();  // end of file: the child ends by itself
    replies.reset();
    if (pid <= 0) return;
    ::kill(pid, SIGKILL);
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
  }

  std::string describe_end() {
    int status = 0;
    pid_t done;
    while ((done = ::waitpid(pid, &status, 0)) < 0 && errno == EINTR) {
    }
    if (done == pid) pid = -1;
    if (WIFSIGNALED(status)) return fmt::format("killed by signal {} ({})", WTERMSIG(status), ::strsignal(WTERMSIG(status)));
    return fmt::format("exit {}", WEXITSTATUS(status));
  }
};

IsolatedEvaluator::IsolatedEvaluator(std::chrono::milliseconds time_limit) : time_limit_(time_limit) {}

IsolatedEvaluator::~IsolatedEvaluator() = default;

ContainerSpec IsolatedEvaluator::evaluate_file(const std::string& path, const Environment& env) {
  std::string source = read_definition_file(path);
  if (!child_) {
    int to_child[2], from_child[2];
    check_sys(::pipe2(to_child, O_CLOEXEC), "pipe2", "definition evaluator");
    UniqueFd request_read(to_child[0]), request_write(to_child[1]);
    check_sys(::pipe2(from_child, O_CLOEXEC), "pipe2", "definition evaluator");
    UniqueFd reply_read(from_child[0]), reply_write(from_child[1]);
    pid_t parent = ::getpid();
    std::fflush(nullptr);
    pid_t pid = ::fork();
    check_sys(pid, "fork", "definition evaluator");
    if (pid == 0) child_main(request_read.get(), reply_write.get(), parent);
    auto child = std::make_unique<Child>();
    child->pid = pid;
    child->requests = std::move(request_write);
    child->replies = std::move(reply_read);
    std::string ready;
    auto started = read_message(child->replies.get(), ready, Clock::now() + kStartLimit);
    if (started == ReadStatus::timed_out) throw Error("the process evaluating definitions did not start in time");
    if (started == ReadStatus::end_of_file)
      throw Error("the process evaluating definitions did not start (" + child->describe_end() + ")");
    child_ = std::move(child);
  }

  std::string request;
  append_string(request, path);
  append_string(request, source);
  for (const auto& [key, value] : env) {
    append_string(request, key);
    append_string(request, value);
  }
  // A write to a child that died fails with EPIPE, not SIGPIPE.
  struct sigaction ignore {}, previous {};
  ignore.sa_handler = SIG_IGN;
  ::sigaction(SIGPIPE, &ignore, &previous);
  bool sent = write_message(child_->requests.get(), request);
  ::sigaction(SIGPIPE, &previous, nullptr);

  std::string text;
  ReadStatus status = sent ? read_message(child_->replies.get(), text, Clock::now() + time_limit_)
                           : ReadStatus::end_of_file;
  if (status == ReadStatus::timed_out) {
    child_.reset();
    throw InputError(fmt::format("{}: evaluating the definition took longer than {:g} s and was stopped (a loop "
                                 "that never ends?); --eval-timeout sets the limit",
                                 path, std::chrono::duration<double>(time_limit_).count()));
  }
  if (status == ReadStatus::end_of_file) {
    std::string how = child_->describe_end();
    child_.reset();
    throw Error(fmt::format("{}: the process evaluating the definition ended ({})", path, how));
  }
  json reply = json::parse(text);
  if (reply.contains("error")) {
    std::string message = reply.at("error").get<std::string>();
    if (reply.value("input", false)) throw InputError(message);
    throw Error(message);
  }
  return container_spec_from_json(reply.at("spec"));
}

}  // namespace haco::dsl
