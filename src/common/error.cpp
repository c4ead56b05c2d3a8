#include "haco/error.hpp"

#include <cstring>

namespace haco {

Error::Error(std::string message) : message_(std::move(message)) { render(); }

Error Error::from_errno(std::string call, std::string path, int err) {
  Error e(path.empty() ? call : call + " " + path);
  e.call_ = std::move(call);
  e.path_ = std::move(path);
  e.errno_ = err;
  e.render();
  return e;
}

Error& Error::with_context(std::string context) & {
  context_.push_back(std::move(context));
  render();
  return *this;
}

Error&& Error::with_context(std::string context) && {
  context_.push_back(std::move(context));
  render();
  return std::move(*this);
}

void Error::render() {
  rendered_.clear();
  for (auto it = context_.rbegin(); it != context_.rend(); ++it) {
    rendered_ += *it;
    rendered_ += ": ";
  }
  rendered_ += message_;
  if (errno_ != 0) {
    rendered_ += ": ";
    rendered_ += std::strerror(errno_);
  }
}

long check_sys(long result, const char* call, const std::string& path) {
  if (result < 0) {
    int err = result == -1 ? errno : static_cast<int>(-result);
    throw Error::from_errno(call, path, err);
  }
  return result;
}

}  // namespace haco
