// The client side of the supervisor's control socket: one JSON object per
// line each way.
#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>

#include "haco/error.hpp"
#include "haco/supervisor.hpp"

namespace haco::supervisor {

std::optional<ControlClient> ControlClient::connect(const state::FleetPaths& paths) {
  std::string path = paths.control_socket();
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof(address.sun_path)) throw Error("control socket path too long: " + path);
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  check_sys(fd.get(), "socket");
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    if (errno == ENOENT || errno == ECONNREFUSED) return std::nullopt;
    throw Error::from_errno("connect", path, errno);
  }
  return ControlClient(std::move(fd));
}

void ControlClient::send(const nlohmann::json& request) {
  std::string line = request.dump() + "\n";
  std::size_t done = 0;
  while (done < line.size()) {
    ssize_t n = ::send(fd_.get(), line.data() + done, line.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    check_sys(n, "send", "the supervisor's control socket");
    done += static_cast<std::size_t>(n);
  }
}

nlohmann::json ControlClient::receive() {
  for (;;) {
    if (auto newline = buffer_.find('\n'); newline != std::string::npos) {
      std::string line = buffer_.substr(0, newline);
      buffer_.erase(0, newline + 1);
      try {
        return nlohmann::json::parse(line);
      } catch (const nlohmann::json::exception& e) {
        throw Error(std::string("the supervisor sent a malformed message: ") + e.what());
      }
    }
    char chunk[16384];
    ssize_t n = ::recv(fd_.get(), chunk, sizeof(chunk), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) throw Error("the supervisor did not answer in time");
    check_sys(n, "recv", "the supervisor's control socket");
    if (n == 0) throw Error("the supervisor closed its control connection (see its log)");
    buffer_.append(chunk, static_cast<std::size_t>(n));
  }
}

nlohmann::json ControlClient::call(const nlohmann::json& request,
                                   const std::function<void(const nlohmann::json&)>& on_event) {
  send(request);
  for (;;) {
    auto reply = receive();
    if (reply.value("done", false)) {
      if (auto error = reply.find("error"); error != reply.end() && error->is_string())
        throw Error("the supervisor refused '" + request.value("op", std::string()) + "': " + error->get<std::string>());
      return reply;
    }
    if (on_event) on_event(reply);
  }
}

}  // namespace haco::supervisor
