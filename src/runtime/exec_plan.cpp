#include "runtime/exec_plan.hpp"

#include <signal.h>
#include <unistd.h>

#include <cerrno>

#include "haco/enter.hpp"

namespace haco::runtime {
namespace {

constexpr const char* kDefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

}  // namespace

void reset_signals() {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  for (int sig = 1; sig < NSIG; ++sig)
    if (sig != SIGKILL && sig != SIGSTOP) ::signal(sig, SIG_DFL);
}

std::vector<std::string> init_environment(const ContainerSpec& c) {
  std::vector<std::string> env = c.environment;
  bool has_path = false;
  for (const auto& e : env) has_path = has_path || e.rfind("PATH=", 0) == 0;
  if (!has_path) env.emplace_back(kDefaultPath);
  return env;
}

ExecPlan::ExecPlan(const std::vector<std::string>& command, std::vector<std::string> env)
    : command_(command), env_(std::move(env)) {
  for (const auto& a : command_) argv_.push_back(const_cast<char*>(a.c_str()));
  argv_.push_back(nullptr);
  for (const auto& e : env_) envp_.push_back(const_cast<char*>(e.c_str()));
  envp_.push_back(nullptr);
  const std::string& name = command_.front();
  if (name.find('/') != std::string::npos) {
    candidates_.push_back(name);
    direct_ = true;
    return;
  }
  std::string path;
  for (const auto& e : env_)
    if (e.rfind("PATH=", 0) == 0) path = e.substr(5);
  std::size_t pos = 0;
  while (pos <= path.size()) {
    auto end = path.find(':', pos);
    if (end == std::string::npos) end = path.size();
    candidates_.push_back((end > pos ? path.substr(pos, end - pos) : ".") + "/" + name);
    pos = end + 1;
  }
}

int ExecPlan::exec() const {
  int err = ENOENT;
  for (const auto& candidate : candidates_) {
    ::execve(candidate.c_str(), argv_.data(), envp_.data());
    if (direct_ || (errno != ENOENT && errno != ENOTDIR)) err = errno;
  }
  return err;
}

}  // namespace haco::runtime
