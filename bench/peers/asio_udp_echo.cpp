// peer-asio-udp: UDP echo server in the idiom of asio's async_udp_echo_server example:
// async_receive_from into a member buffer and the sender's endpoint, then async_send_to of
// what arrived back to that endpoint, then the next receive; one single-threaded
// io_context. asio tries each operation at once (speculatively) and waits in epoll only
// when the socket says EAGAIN.
//
// Two changes from the example: the 1 KiB buffer is 64 KiB, so no datagram is cut, and an
// empty datagram is echoed too (the example drops it).
//
// Usage: peer-asio-udp PORT   (binds 127.0.0.1:PORT, 0 = any free port)
#include <asio.hpp>

#include <array>
#include <csignal>
#include <cstdio>
#include <string>
#include <system_error>

#include "peer_port.h"

namespace {

using asio::ip::udp;

constexpr std::size_t dgram_max = 64 * 1024;

class server {
 public:
  server(asio::io_context& io, unsigned short port)
      : socket_(io, udp::endpoint(asio::ip::address_v4::loopback(), port)) {
    do_receive();
  }

  unsigned short port() const { return socket_.local_endpoint().port(); }
  unsigned long long send_failed() const { return send_failed_; }
  void close() { socket_.close(); }

 private:
  void do_receive() {
    socket_.async_receive_from(asio::buffer(data_), sender_,
                               [this](std::error_code ec, std::size_t n) {
                                 if (ec == asio::error::operation_aborted) return;
                                 // An error for an earlier reply (ICMP): keep serving.
                                 if (ec) return do_receive();
                                 do_send(n);
                               });
  }

  void do_send(std::size_t n) {
    socket_.async_send_to(asio::buffer(data_.data(), n), sender_,
                          [this](std::error_code ec, std::size_t) {
                            if (ec == asio::error::operation_aborted) return;
                            if (ec) ++send_failed_;
                            do_receive();
                          });
  }

  udp::socket socket_;
  udp::endpoint sender_;
  std::array<char, dgram_max> data_;
  unsigned long long send_failed_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  int port = peer_port(argc, argv, "peer-asio-udp");
  if (port < 0) return 2;
  try {
    // Concurrency hint 1: the documented setting for an io_context run by one thread.
    asio::io_context io(1);
    server srv(io, static_cast<unsigned short>(port));
    asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](std::error_code, int) { io.stop(); });
    std::printf("listening on udp://127.0.0.1:%u\n", static_cast<unsigned>(srv.port()));
    std::fflush(stdout);
    io.run();
    srv.close();
    if (srv.send_failed() > 0)
      std::fprintf(stderr, "peer-asio-udp: %llu replies not sent\n", srv.send_failed());
  } catch (const std::system_error& e) {
    std::fprintf(stderr, "peer-asio-udp: %s\n", e.what());
    return 1;
  }
  return 0;
}
