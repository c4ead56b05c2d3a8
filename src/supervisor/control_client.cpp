// The client side of the supervisor's control socket: one message per line
// each way (haco/control_protocol.hpp).
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

void ControlClient::send(const protocol::Request& request) { send_line(protocol::encode(request)); }

void ControlClient::send_line(std::string line) {
  line += '\n';
  std::size_t done = 0;
  while (done < line.size()) {
    ssize_t n = ::send(fd_.get(), line.data() + done, line.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    check_sys(n, "send", "the supervisor's control socket");
    done += static_cast<std::size_t>(n);
  }
}

std::string ControlClient::receive_line() {
  for (;;) {
    if (auto newline = buffer_.find('\n'); newline != std::string::npos) {
      std::string line = buffer_.substr(0, newline);
      buffer_.erase(0, newline + 1);
      return line;
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

protocol::Reply ControlClient::receive() {
  return with_context("the supervisor sent a malformed message", [&] { return protocol::decode_reply(receive_line()); });
}

protocol::Done ControlClient::call(const protocol::Request& request,
                                   const std::function<void(const protocol::Reply&)>& on_event) {
  send(request);
  for (;;) {
    auto reply = receive();
    if (auto* done = std::get_if<protocol::Done>(&reply)) {
      if (done->error)
        throw Error("the supervisor refused '" + std::string(protocol::request_name(request)) + "': " + *done->error);
      return *done;
    }
    if (on_event) on_event(reply);
  }
}

}  // namespace haco::supervisor
