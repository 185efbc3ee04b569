// half-close: shutdown(SHUT_WR) ends one direction only.
#include <sys/socket.h>

#include <array>
#include <string>

#include "lab_support.hpp"
#include "netkit/error.hpp"

namespace netkit::labs {

using inspect::tcp_state;

void run_half_close(lab_context& ctx) {
  auto pair = connect_pair();
  const std::string request = "request, then no more";
  if (::send(pair.client.get(), request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size()))
    throw_sys_error("send", "client");
  if (::shutdown(pair.client.get(), SHUT_WR) != 0) throw_sys_error("shutdown SHUT_WR", "client");
  ctx.note("client sent {} bytes and shutdown(SHUT_WR)", request.size());

  bool eof = false;
  auto got = drain(pair.server.get(), 1000ms, &eof);
  ctx.note("server read {} bytes, then {}", got, eof ? "EOF (read returned 0)" : "no EOF");
  auto client = wait_for_state(ctx, pair.client.get(), pair.client_end, pair.server_end,
                               tcp_state::fin_wait2);
  auto server = wait_for_state(ctx, pair.server.get(), pair.server_end, pair.client_end,
                               tcp_state::close_wait);
  ctx.note("half-closed: client {}, server {}", client.describe(), server.describe());

  const std::string reply = "the reply still flows back";
  ssize_t sent = ::send(pair.server.get(), reply.data(), reply.size(), MSG_NOSIGNAL);
  int send_err = errno;
  std::array<char, 256> buffer{};
  ssize_t n = wait_readable(pair.client.get(), 1000ms)
                  ? ::recv(pair.client.get(), buffer.data(), buffer.size(), MSG_DONTWAIT)
                  : -1;
  std::string received = n > 0 ? std::string(buffer.data(), static_cast<std::size_t>(n)) : "";
  ctx.note("server sent after EOF: {}; client received \"{}\"",
           sent >= 0 ? fmt::format("{} bytes", sent) : errno_text(send_err), received);
  pair.server.reset();
  bool client_eof = false;
  drain(pair.client.get(), 1000ms, &client_eof);
  ctx.note("server closed: client {}", client_eof ? "reads EOF" : "saw no EOF");

  ctx.expect("the peer of a shutdown(SHUT_WR) reads the data, then EOF",
             fmt::format("{} bytes, then EOF", request.size()),
             fmt::format("{} bytes, then {}", got, eof ? "EOF" : "no EOF"),
             got == request.size() && eof);
  ctx.expect("while half-closed", "client FIN_WAIT_2, server CLOSE_WAIT",
             fmt::format("client {}, server {}", client.describe(), server.describe()),
             client.state == tcp_state::fin_wait2 && server.state == tcp_state::close_wait);
  ctx.expect("data still flows the other way", fmt::format("client receives \"{}\"", reply),
             fmt::format("client received \"{}\"", received), received == reply);
  ctx.expect("the server's close ends the other direction", "client reads EOF",
             client_eof ? "EOF" : "no EOF", client_eof);
}

}  // namespace netkit::labs
