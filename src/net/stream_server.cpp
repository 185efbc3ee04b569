#include "netkit/net/stream_server.hpp"

#include <signal.h>

#include <fmt/format.h>

#include "netkit/error.hpp"

#include "net/reactor_server.hpp"
#include "net/servers.hpp"

namespace netkit {

std::string_view to_string(close_reason r) noexcept {
  switch (r) {
    case close_reason::peer_closed:
      return "peer closed";
    case close_reason::reset:
      return "connection reset";
    case close_reason::protocol_error:
      return "protocol error";
    case close_reason::idle_timeout:
      return "idle timeout";
    case close_reason::output_overflow:
      return "output over hard limit";
    case close_reason::server_stopping:
      return "server stopping";
    case close_reason::local:
      return "closed by handler";
  }
  return "?";
}

std::unique_ptr<stream_server> make_stream_server(event_loop& loop, server_options options,
                                                  stream_handler handler) {
  if (!is_stream(options.listen.kind()))
    throw usage_error(fmt::format("{} is not a stream endpoint (use tcp:// or unix://)",
                                  options.listen.to_uri()));
  // A completion backend owns the I/O operations: it gets a server built on them.
  if (loop.io_backend().completion_based())
    return detail::make_uring_server(loop, std::move(options), std::move(handler));
  return std::make_unique<detail::reactor_server>(loop, std::move(options), std::move(handler));
}

int run_until_signal(event_loop& loop, stream_server& server) {
  loop.stop_on_signals({SIGINT, SIGTERM});
  loop.run();
  server.begin_shutdown();
  // Bounded: the server force-closes whatever has not drained by its drain timeout.
  auto deadline = event_loop::clock::now() + std::chrono::seconds(60);
  while (server.stats().open > 0 && event_loop::clock::now() < deadline)
    loop.run_once(std::chrono::milliseconds(50));
  return loop.stop_signal();
}

}  // namespace netkit
