// peer-asio: TCP echo server in the idiom of asio's async_tcp_echo_server example: a
// session owned by shared_ptr, async_read_some into a member buffer, then async_write of
// what was read, on a single-threaded io_context.
//
// The example's 1 KiB buffer is replaced by 64 KiB, the size libuv suggests and the
// epoll reference uses, so the per-read granularity is not what this peer measures.
//
// Usage: peer-asio PORT   (binds 127.0.0.1:PORT, 0 = any free port)
#include <asio.hpp>

#include <array>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <system_error>

#include "peer_port.h"

namespace {

using asio::ip::tcp;

// Enough for the 10k-connection bench points; the kernel caps it at net.core.somaxconn.
constexpr int listen_backlog = 4096;
constexpr std::size_t read_buffer_size = 64 * 1024;

// Owned by the shared_ptr copies held in its own pending handlers; it dies when the
// last handler has run without starting another operation (EOF or error).
class session : public std::enable_shared_from_this<session> {
 public:
  explicit session(tcp::socket socket) : socket_(std::move(socket)) {}

  void start() { do_read(); }

 private:
  void do_read() {
    socket_.async_read_some(asio::buffer(data_),
                            [self = shared_from_this()](std::error_code ec, std::size_t n) {
                              if (!ec) self->do_write(n);
                            });
  }

  void do_write(std::size_t n) {
    asio::async_write(socket_, asio::buffer(data_.data(), n),
                      [self = shared_from_this()](std::error_code ec, std::size_t) {
                        if (!ec) self->do_read();
                      });
  }

  tcp::socket socket_;
  std::array<char, read_buffer_size> data_;
};

class server {
 public:
  server(asio::io_context& io, unsigned short port) : acceptor_(io) {
    tcp::endpoint endpoint(asio::ip::address_v4::loopback(), port);
    acceptor_.open(endpoint.protocol());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.bind(endpoint);
    acceptor_.listen(listen_backlog);
    do_accept();
  }

  unsigned short port() const { return acceptor_.local_endpoint().port(); }
  void close() { acceptor_.close(); }

 private:
  void do_accept() {
    acceptor_.async_accept([this](std::error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted) return;
      if (ec) {
        // EMFILE and friends: report and keep serving existing connections.
        std::fprintf(stderr, "peer-asio: accept: %s\n", ec.message().c_str());
      } else {
        // All peers disable Nagle so that a partially echoed block is not held back.
        socket.set_option(tcp::no_delay(true), ec);
        std::make_shared<session>(std::move(socket))->start();
      }
      do_accept();
    });
  }

  tcp::acceptor acceptor_;
};

}  // namespace

int main(int argc, char** argv) {
  int port = peer_port(argc, argv, "peer-asio");
  if (port < 0) return 2;
  std::signal(SIGPIPE, SIG_IGN);

  try {
    // Concurrency hint 1: the documented setting for an io_context run by one thread.
    asio::io_context io(1);
    server srv(io, static_cast<unsigned short>(port));
    asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](std::error_code, int) { io.stop(); });

    std::printf("listening on tcp://127.0.0.1:%u\n", static_cast<unsigned>(srv.port()));
    std::fflush(stdout);
    io.run();
    srv.close();
  } catch (const std::system_error& e) {
    std::fprintf(stderr, "peer-asio: %s\n", e.what());
    return 1;
  }
  return 0;
}
