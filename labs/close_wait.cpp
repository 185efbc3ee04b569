// close-wait: a server that forgets to close() piles up CLOSE_WAIT sockets.
#include <sys/socket.h>

#include <thread>
#include <vector>

#include "lab_support.hpp"
#include "netkit/error.hpp"
#include "netkit/socket.hpp"

namespace netkit::labs {

namespace {

using inspect::tcp_state;

constexpr std::size_t clients = 5;

// Sockets of `state` whose local port is `port`, waiting (bounded) until there are `want`.
std::size_t count_local(lab_context& ctx, tcp_state state, std::uint16_t port, std::size_t want) {
  auto until = std::chrono::steady_clock::now() + 1000ms;
  for (;;) {
    auto table = ctx.tcp_table({.states = inspect::state_bit(state), .port = port});
    std::size_t n = 0;
    for (const auto& e : table.entries)
      n += e.local.port() == port;
    if (n == want || std::chrono::steady_clock::now() >= until) return n;
    std::this_thread::sleep_for(1ms);
  }
}

}  // namespace

void run_close_wait(lab_context& ctx) {
  auto listener = listen_on(loopback_tcp(), io_mode::blocking, {.backlog = 16});
  auto at = local_endpoint(listener.get(), transport::tcp);
  std::vector<unique_fd> accepted;  // what the forgetful server never closes
  for (std::size_t i = 0; i < clients; ++i) {
    auto client = connect_to(at);
    unique_fd conn(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!conn) throw_sys_error("accept", at.to_uri());
    accepted.push_back(std::move(conn));
  }  // each client closes here; its FIN reaches the server's socket
  ctx.note("{} clients connected to {} and closed; the server keeps every accepted socket open",
           clients, host_port(at));
  auto piled = count_local(ctx, tcp_state::close_wait, at.port(), clients);
  ctx.note("kernel: {} CLOSE_WAIT sockets on port {}", piled, at.port());
  accepted.clear();
  ctx.note("server closes them (the fix)");
  auto left = count_local(ctx, tcp_state::close_wait, at.port(), 0);
  ctx.note("kernel: {} CLOSE_WAIT sockets on port {}", left, at.port());

  ctx.expect("a server that never closes what its clients closed",
             fmt::format("{} CLOSE_WAIT sockets on its port", clients),
             fmt::format("{} CLOSE_WAIT", piled), piled == clients);
  ctx.expect("once it closes them", "none left", fmt::format("{} CLOSE_WAIT", left), left == 0);
}

}  // namespace netkit::labs
