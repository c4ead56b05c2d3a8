// Small real servers on 127.0.0.1 ephemeral ports for the probe tests, run on
// the same io_context as the prober.
#pragma once

#include <boost/asio.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace haco::observe::testing {

namespace asio = boost::asio;
using asio::ip::tcp;

// Accepts connections and keeps them open without a word.
class SilentServer {
 public:
  explicit SilentServer(asio::io_context& io) : acceptor_(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    accept();
  }
  std::uint16_t port() const { return acceptor_.local_endpoint().port(); }
  std::size_t accepted() const { return held_.size(); }

 private:
  void accept() {
    acceptor_.async_accept([this](const boost::system::error_code& ec, tcp::socket socket) {
      if (ec) return;
      held_.push_back(std::make_unique<tcp::socket>(std::move(socket)));
      accept();
    });
  }
  tcp::acceptor acceptor_;
  std::vector<std::unique_ptr<tcp::socket>> held_;
};

// Answers every request with the status line `status_for(n)` for the n-th
// request (0-based), e.g. "200 OK", and records each request's head.
class HttpServer {
 public:
  HttpServer(asio::io_context& io, std::function<std::string(std::size_t)> status_for)
      : acceptor_(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)), status_for_(std::move(status_for)) {
    accept();
  }
  std::uint16_t port() const { return acceptor_.local_endpoint().port(); }
  const std::vector<std::string>& requests() const { return requests_; }

 private:
  struct Exchange {
    explicit Exchange(tcp::socket s) : socket(std::move(s)) {}
    tcp::socket socket;
    std::string head;
    std::string reply;
  };

  void accept() {
    acceptor_.async_accept([this](const boost::system::error_code& ec, tcp::socket socket) {
      if (ec) return;
      serve(std::make_shared<Exchange>(std::move(socket)));
      accept();
    });
  }

  void serve(std::shared_ptr<Exchange> x) {
    asio::async_read_until(x->socket, asio::dynamic_buffer(x->head), "\r\n\r\n",
                           [this, x](const boost::system::error_code& ec, std::size_t) {
                             if (ec) return;
                             const std::size_t n = requests_.size();
                             requests_.push_back(x->head);
                             x->reply = "HTTP/1.0 " + status_for_(n) + "\r\nContent-Length: 0\r\n\r\n";
                             asio::async_write(x->socket, asio::buffer(x->reply),
                                               [x](const boost::system::error_code&, std::size_t) {
                                                 boost::system::error_code ignored;
                                                 x->socket.shutdown(tcp::socket::shutdown_both, ignored);
                                               });
                           });
  }

  tcp::acceptor acceptor_;
  std::function<std::string(std::size_t)> status_for_;
  std::vector<std::string> requests_;
};

// Reads what the client sends first (if `wait_for_request`), writes `reply`
// verbatim and closes: for malformed or truncated answers.
class RawServer {
 public:
  RawServer(asio::io_context& io, std::string reply, bool wait_for_request = true)
      : acceptor_(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)),
        reply_(std::move(reply)),
        wait_for_request_(wait_for_request) {
    accept();
  }
  std::uint16_t port() const { return acceptor_.local_endpoint().port(); }

 private:
  struct Exchange {
    explicit Exchange(tcp::socket s) : socket(std::move(s)) {}
    tcp::socket socket;
    std::string head;
  };

  void accept() {
    acceptor_.async_accept([this](const boost::system::error_code& ec, tcp::socket socket) {
      if (ec) return;
      auto x = std::make_shared<Exchange>(std::move(socket));
      if (wait_for_request_)
        asio::async_read_until(x->socket, asio::dynamic_buffer(x->head), "\r\n\r\n",
                               [this, x](const boost::system::error_code&, std::size_t) { answer(x); });
      else
        answer(x);
      accept();
    });
  }

  void answer(std::shared_ptr<Exchange> x) {
    asio::async_write(x->socket, asio::buffer(reply_), [x](const boost::system::error_code&, std::size_t) {
      boost::system::error_code ignored;
      x->socket.shutdown(tcp::socket::shutdown_both, ignored);
    });
  }

  tcp::acceptor acceptor_;
  std::string reply_;
  bool wait_for_request_;
};

// A port on 127.0.0.1 that refuses connections for as long as this object
// lives: bound (so nobody else gets it) but not listening.
class RefusingPort {
 public:
  explicit RefusingPort(asio::io_context& io) : socket_(io) {
    socket_.open(tcp::v4());
    socket_.bind(tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  }
  std::uint16_t port() const { return socket_.local_endpoint().port(); }

 private:
  tcp::socket socket_;
};

}  // namespace haco::observe::testing
