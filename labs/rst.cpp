// rst: SO_LINGER with a zero timeout makes close() abort the connection with RST.
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <thread>

#include "lab_support.hpp"
#include "netkit/error.hpp"
#include "netkit/socket.hpp"

namespace netkit::labs {

using inspect::tcp_state;

void run_rst(lab_context& ctx) {
  auto reset = connect_pair();
  set_linger(reset.client.get(), std::chrono::seconds(0));
  reset.client.reset();
  ctx.note("client set SO_LINGER {{on, 0 s}} and closed");
  std::array<char, 64> buffer{};
  ssize_t n = -1;
  int err = ETIMEDOUT;
  if (wait_readable(reset.server.get(), 1000ms)) {
    n = ::recv(reset.server.get(), buffer.data(), buffer.size(), MSG_DONTWAIT);
    err = n < 0 ? errno : 0;
  }
  std::string server_saw = n < 0 ? fmt::format("recv failed with {}", errno_name(err))
                                 : fmt::format("recv returned {}", n);
  ctx.note("server: {}", server_saw);
  // Nothing of the client's end may stay behind: no TIME_WAIT, no entry at all.
  end_state gone;
  for (int i = 0; i < 200; ++i) {
    gone = observe_end(ctx, -1, reset.client_end, reset.server_end);
    if (!gone.state) break;
    std::this_thread::sleep_for(1ms);
  }
  ctx.note("client's end {} -> {}: {}", host_port(reset.client_end), host_port(reset.server_end),
           gone.describe());
  auto server_end = observe_end(ctx, reset.server.get(), reset.server_end, reset.client_end);
  ctx.note("server's end: {}", server_end.describe());

  // For contrast: the same connection closed normally leaves TIME_WAIT on the closer.
  auto normal = connect_pair();
  normal.client.reset();
  drain(normal.server.get(), 1000ms);
  normal.server.reset();
  auto tw = wait_for_state(ctx, -1, normal.client_end, normal.server_end, tcp_state::time_wait);
  ctx.note("a normal close (FIN) for contrast: client's end {}", tw.describe());

  ctx.expect("the peer of an abortive close", "recv fails with ECONNRESET", server_saw,
             n < 0 && err == ECONNRESET);
  ctx.expect("no TIME_WAIT after RST", "no socket left for the client's end", gone.describe(),
             !gone.state);
  ctx.expect("a normal close, for contrast", "the client's end in TIME_WAIT", tw.describe(),
             tw.state == tcp_state::time_wait);
}

}  // namespace netkit::labs
