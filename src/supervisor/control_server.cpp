// The supervisor's side of the control socket (control_server.hpp).
#include "supervisor/control_server.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <optional>

#include "haco/error.hpp"

namespace haco::supervisor {

namespace asio = boost::asio;

void ControlSession::send(const protocol::Reply& reply) {
  outbox_.push_back(protocol::encode(reply) + "\n");
  if (!writing_) write_next();
}

void ControlSession::write_next() {
  if (outbox_.empty()) {
    writing_ = false;
    return;
  }
  writing_ = true;
  auto self = shared_from_this();
  asio::async_write(socket_, asio::buffer(outbox_.front()), [self](const boost::system::error_code& ec, std::size_t) {
    if (ec) {
      self->outbox_.clear();
      self->writing_ = false;
      return;
    }
    self->outbox_.pop_front();
    self->write_next();
  });
}

void ControlSession::read_next() {
  auto self = shared_from_this();
  asio::async_read_until(socket_, input_, '\n', [self](const boost::system::error_code& ec, std::size_t size) {
    if (ec) return;
    std::string line(asio::buffers_begin(self->input_.data()), asio::buffers_begin(self->input_.data()) + size);
    self->input_.consume(size);
    // A request of another protocol version, or one that is not a request,
    // is answered with its reason; the connection stays open.
    std::optional<protocol::Request> request;
    try {
      request = protocol::decode_request(line);
    } catch (const std::exception& e) {
      self->send(protocol::Done{e.what(), std::nullopt});
    }
    if (request) self->server_.handler_(self, std::move(*request));
    self->read_next();
  });
}

ControlServer::ControlServer(asio::io_context& io, UniqueFd listener, RequestHandler handler,
                             std::function<void(const std::string&)> log)
    : acceptor_(io, asio::local::stream_protocol(), listener.release()),
      handler_(std::move(handler)),
      log_(std::move(log)),
      retry_(io) {}

void ControlServer::accept_next() {
  acceptor_.async_accept([this](const boost::system::error_code& ec, asio::local::stream_protocol::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
    if (ec) {
      // EMFILE, ENFILE, ENOBUFS, ENOMEM, ECONNABORTED: the socket still
      // listens; a supervisor that stopped accepting here could never be
      // told to stop its instances again.
      if (!failing_ && log_) log_("control socket: accept failed (" + ec.message() + "): trying again");
      failing_ = true;
      retry_.expires_after(std::chrono::milliseconds(100));
      retry_.async_wait([this](const boost::system::error_code& wait) {
        if (!wait) accept_next();
      });
      return;
    }
    if (failing_ && log_) log_("control socket: accepting again");
    failing_ = false;
    std::make_shared<ControlSession>(std::move(socket), *this)->start();
    accept_next();
  });
}

void ControlServer::close() {
  retry_.cancel();
  acceptor_.close();
}

UniqueFd listen_on_control_socket(const std::string& path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  if (path.size() >= sizeof(address.sun_path)) throw Error("control socket path too long: " + path);
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  // The fleet lock is held by the `up` that starts us: a socket file left
  // here belongs to a supervisor that is gone.
  ::unlink(path.c_str());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  check_sys(fd.get(), "socket");
  check_sys(::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)), "bind", path);
  ::chmod(path.c_str(), 0600);
  check_sys(::listen(fd.get(), 64), "listen", path);
  return fd;
}

}  // namespace haco::supervisor
