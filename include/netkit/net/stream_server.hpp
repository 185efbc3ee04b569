// A stream (TCP or Unix) server on one event_loop: accepts, decodes input into
// messages with a codec, hands them to a handler, and writes the framed replies with
// back-pressure. The loop's backend decides how: readiness backends (select, poll,
// epoll, epoll-et) use the reactor server; io_uring uses a completion server.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>

#include "netkit/codec/codec.hpp"
#include "netkit/endpoint.hpp"
#include "netkit/event/loop.hpp"
#include "netkit/net/connection.hpp"
#include "netkit/net/connection_group.hpp"
#include "netkit/socket.hpp"

namespace netkit {

struct server_options : connection_options {
  endpoint listen;
  // 0: no limit. Connections beyond it are accepted and closed at once, with a log line.
  std::size_t max_connections = 0;
  listen_options listening;
  // Set by multi_reactor: the reactor index this server's conn_ids carry (conn_id::group).
  std::uint32_t group = 0;
};

using server_stats = connection_stats;

// Every method: loop thread only (debug builds assert it).
class stream_server : public connection_group {
 public:
  virtual ~stream_server() = default;
  // The address actually bound (port 0 resolved).
  virtual const endpoint& local() const noexcept = 0;
  // Stop accepting; close idle connections; the rest close once their output drains
  // (or at drain_timeout). Returns at once; watch stats().open reach 0.
  virtual void begin_shutdown() = 0;
  // Closes the listener only: no new connections, established ones carry on untouched
  // (begin_shutdown() still drains them later). With SO_REUSEPORT the kernel sends new
  // connections to the other listeners on the port; ones already queued on this
  // listener but not yet accepted are reset. Idempotent; loop thread only.
  virtual void stop_accepting() = 0;
  // Serves a connected stream socket accepted elsewhere (another thread's acceptor, a
  // descriptor received with SCM_RIGHTS) as if this server had accepted it: admission,
  // codec, handler and limits all apply. Takes ownership; a descriptor it cannot serve is
  // closed (logged). Returns the new connection's id, or nullopt if it was refused.
  virtual std::optional<conn_id> adopt(unique_fd fd, endpoint peer) = 0;
};

// Binds and listens (throws sys_error naming the endpoint), then serves on `loop`.
std::unique_ptr<stream_server> make_stream_server(event_loop& loop, server_options options,
                                                  stream_handler handler);
// Serves on `listening`, a socket already listening (created by a supervising parent before
// fork, or by a service manager); options.listen names its transport and options.listening
// is not used. Takes ownership; throws usage_error if it is not listening.
std::unique_ptr<stream_server> make_stream_server(event_loop& loop, server_options options,
                                                  stream_handler handler, unique_fd listening);

// Serves until SIGINT/SIGTERM, then stops gracefully. Returns the signal that stopped it.
int run_until_signal(event_loop& loop, stream_server& server);
// The same, calling before_shutdown() on the loop thread once the signal has come and
// before the connections start draining: the moment to tell every client the server is
// stopping (what it queues then is still delivered).
int run_until_signal(event_loop& loop, stream_server& server,
                     const std::function<void()>& before_shutdown);

}  // namespace netkit
