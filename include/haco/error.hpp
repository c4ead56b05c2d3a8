// One error type for the whole project: the failing call, the path it acted
// on, errno, and a chain of context added by each layer on the way up. It is
// printed once, at the top, as one sentence.
#pragma once

#include <cerrno>
#include <stdexcept>
#include <string>
#include <vector>

namespace haco {

class Error : public std::exception {
 public:
  // A failure with a message only (bad input, a broken invariant).
  explicit Error(std::string message);
  // A failed system call: `call` names it ("openat2"), `path` what it acted on
  // (may be empty), `err` is the errno it left.
  static Error from_errno(std::string call, std::string path, int err);
  static Error from_errno(std::string call, int err) { return from_errno(std::move(call), {}, err); }

  // Adds a layer of context, outermost last: "preparing rootfs of web-1".
  Error& with_context(std::string context) &;
  Error&& with_context(std::string context) &&;

  // The full sentence: "preparing rootfs of web-1: creating /x: mkdirat: Permission denied".
  const char* what() const noexcept override { return rendered_.c_str(); }
  // The innermost message without context.
  const std::string& message() const { return message_; }
  const std::string& call() const { return call_; }
  const std::string& path() const { return path_; }
  int sys_errno() const { return errno_; }
  const std::vector<std::string>& context() const { return context_; }

 private:
  void render();

  std::string message_;
  std::string call_;
  std::string path_;
  int errno_ = 0;
  std::vector<std::string> context_;
  std::string rendered_;
};

// Bad input from the user (a definition, a port range, a flag): the command
// exits with status 2 and nothing was started.
class InputError : public Error {
 public:
  using Error::Error;
  explicit InputError(Error e) : Error(std::move(e)) {}
};

// Throws Error::from_errno(call, path, errno) when `result` is negative (-1
// with errno, or a negative errno as liburing returns). Returns `result`.
long check_sys(long result, const char* call, const std::string& path = {});

// Runs `fn`; an Error escaping it gets `context` added.
template <typename Fn>
auto with_context(const std::string& context, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (Error& e) {
    e.with_context(context);
    throw;
  }
}

}  // namespace haco
