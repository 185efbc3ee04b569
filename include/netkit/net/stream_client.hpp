// Outgoing stream connections (TCP or Unix) on one event_loop, served exactly like a
// server's accepted ones: the same handler interface, codecs, back-pressure, idle timeout
// and close reasons, on every backend (readiness or io_uring). Each connect() makes one
// connection through a connector (timeout, source address, retries with back-off);
// optionally a connection that is lost is made again.
#pragma once

#include <chrono>
#include <memory>

#include "netkit/net/connection_group.hpp"
#include "netkit/net/connector.hpp"

namespace netkit {

struct client_options : connection_options {
  connect_options connecting;
  // After a connection is lost (peer closed, reset, idle timeout, protocol error — not a
  // local close() or stop), connect again with the same back-off schedule. A target that
  // fails all its retries is reported with on_connect_failed and not retried further.
  bool reconnect = false;
};

// Every method: loop thread only (debug builds assert it).
class stream_client : public connection_group {
 public:
  virtual ~stream_client() = default;

  // Starts one outgoing connection to `target` (a stream endpoint; usage_error otherwise).
  // on_connect follows once it is established, or on_connect_failed after its retries.
  virtual void connect(const endpoint& target) = 0;
  // Connects still in progress (including retry waits and pending reconnects).
  virtual std::size_t connecting() const noexcept = 0;
  // Stops connecting and reconnecting; idle connections close now, the rest once their
  // output drains (or at drain_timeout). Returns at once; watch stats().open and
  // connecting() reach 0.
  virtual void begin_shutdown() = 0;
};

std::unique_ptr<stream_client> make_stream_client(event_loop& loop, client_options options,
                                                  stream_handler handler);

// Runs `loop` until `client` has no connection open and none connecting (every one closed
// or given up on), or until loop.stop(). What a command-line client's main() calls after
// connect(): a refused connect or a lost server ends it without any handler stopping the
// loop. Loop thread.
void run_until_done(event_loop& loop, stream_client& client);

}  // namespace netkit
