// The supervisor's side of the control socket (<state root>/<fleet>/control.sock):
// the listening socket, one session per client, requests decoded (a request
// of another protocol version is answered with its reason, see
// haco/control_protocol.hpp) and handed on, replies written in order.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <string>

#include <utility>  // boost 1.74 asio/awaitable.hpp uses std::exchange without it

#include <boost/asio.hpp>

#include "haco/control_protocol.hpp"
#include "haco/unique_fd.hpp"

namespace haco::supervisor {

class ControlServer;

// One client; replies are queued and written in order. A client that went
// away loses what was queued for it.
class ControlSession : public std::enable_shared_from_this<ControlSession> {
 public:
  ControlSession(boost::asio::local::stream_protocol::socket socket, ControlServer& server)
      : socket_(std::move(socket)), server_(server) {}
  void start() { read_next(); }
  void send(const protocol::Reply& reply);

 private:
  void read_next();
  void write_next();

  boost::asio::local::stream_protocol::socket socket_;
  ControlServer& server_;
  boost::asio::streambuf input_;
  std::deque<std::string> outbox_;
  bool writing_ = false;
};

class ControlServer {
 public:
  using RequestHandler = std::function<void(const std::shared_ptr<ControlSession>&, protocol::Request)>;

  // `listener`: a listening socket (listen_on_control_socket). Every request
  // that decodes goes to `handler`, in the order each session sent them.
  // `log` gets a line when accepting fails (once per run of failures).
  ControlServer(boost::asio::io_context& io, UniqueFd listener, RequestHandler handler,
                std::function<void(const std::string&)> log = {});
  void start() { accept_next(); }
  // No more clients; sessions already open go on until their client leaves.
  void close();

 private:
  friend class ControlSession;
  void accept_next();

  boost::asio::local::stream_protocol::acceptor acceptor_;
  RequestHandler handler_;
  std::function<void(const std::string&)> log_;
  // After a failed accept (out of descriptors, say), the next one waits a
  // moment: the clients in the backlog stay queued, and a shortage that
  // lasts does not turn the loop into a spin.
  boost::asio::steady_timer retry_;
  bool failing_ = false;
};

// Binds and listens on `path` (mode 0600), replacing a socket file left there.
UniqueFd listen_on_control_socket(const std::string& path);

}  // namespace haco::supervisor
