// reuseaddr: restart a listener while a connection on its port is in TIME_WAIT.
#include <netinet/in.h>
#include <sys/socket.h>

#include "lab_support.hpp"
#include "netkit/error.hpp"
#include "netkit/socket.hpp"

namespace netkit::labs {

namespace {

using inspect::tcp_state;

// A server on 127.0.0.1:PORT (SO_REUSEADDR as `reuse` says) serves one connection and closes
// it first, so its end of that connection, on PORT, goes to TIME_WAIT; then the server
// stops. Returns the server's TIME_WAIT end, or nullopt if the kernel shows none.
std::optional<endpoint> leave_time_wait(lab_context& ctx, bool reuse) {
  auto listener = open_socket(loopback_tcp(), io_mode::blocking);
  set_reuse_addr(listener.get(), reuse);
  auto any = loopback_tcp();
  if (::bind(listener.get(), any.addr(), any.length()) != 0 || ::listen(listener.get(), 4) != 0)
    throw_sys_error("bind/listen", any.to_uri());
  auto at = local_endpoint(listener.get(), transport::tcp);
  auto client = connect_to(at);
  unique_fd server(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (!server) throw_sys_error("accept", at.to_uri());
  auto client_end = local_endpoint(client.get(), transport::tcp);
  server.reset();  // the server closes first: the active closer keeps TIME_WAIT
  drain(client.get(), 1000ms);
  client.reset();
  listener.reset();
  auto seen = wait_for_state(ctx, -1, at, client_end, tcp_state::time_wait);
  ctx.note("old server (SO_REUSEADDR {}) closed first and exited: {} -> {} {}",
           reuse ? "on" : "off", host_port(at), host_port(client_end), seen.describe());
  if (seen.state != tcp_state::time_wait) return std::nullopt;
  return at;
}

// bind + listen a new server on `at`; 0 or the errno of the step that failed.
int restart(lab_context& ctx, const endpoint& at, bool reuse) {
  auto fd = open_socket(at, io_mode::blocking);
  set_reuse_addr(fd.get(), reuse);
  int err = 0;
  if (::bind(fd.get(), at.addr(), at.length()) != 0 || ::listen(fd.get(), 4) != 0) err = errno;
  ctx.note("new server (SO_REUSEADDR {}) bind+listen {}: {}", reuse ? "on" : "off", host_port(at),
           err ? errno_text(err) : "ok");
  return err;
}

std::string result_text(int err) {
  return err ? fmt::format("failed with {}", errno_name(err)) : "succeeded";
}

}  // namespace

void run_reuseaddr(lab_context& ctx) {
  if (auto at = leave_time_wait(ctx, true)) {
    int without = restart(ctx, *at, false);
    ctx.expect("restart without SO_REUSEADDR while the port has a TIME_WAIT connection",
               "bind fails with EADDRINUSE", result_text(without), without == EADDRINUSE);
    int with = restart(ctx, *at, true);
    ctx.expect("restart with SO_REUSEADDR", "bind and listen succeed", result_text(with),
               with == 0);
  } else {
    ctx.not_provoked("restart while the port has a TIME_WAIT connection",
                     "the old server's end in TIME_WAIT", "no TIME_WAIT entry appeared");
  }
  if (auto at = leave_time_wait(ctx, false)) {
    int with = restart(ctx, *at, true);
    ctx.expect("both sockets need it: the old server had no SO_REUSEADDR",
               "bind fails with EADDRINUSE even with SO_REUSEADDR", result_text(with),
               with == EADDRINUSE);
  } else {
    ctx.not_provoked("both sockets need it", "the old server's end in TIME_WAIT",
                     "no TIME_WAIT entry appeared");
  }
}

}  // namespace netkit::labs
