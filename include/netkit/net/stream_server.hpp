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
#include "netkit/socket.hpp"

namespace netkit {

struct server_options {
  endpoint listen;
  codec_spec codec;
  // 0: no limit. Connections beyond it are accepted and closed at once, with a log line.
  std::size_t max_connections = 0;
  // 0: none. Connections that receive nothing for this long are closed.
  std::chrono::milliseconds idle_timeout{0};
  // Back-pressure: when a connection's queued output exceeds high_water, the server
  // stops reading from it until the output drains below low_water. A handler that keeps
  // sending regardless (e.g. broadcast) is cut off when output exceeds hard_limit.
  std::size_t high_water = 1 << 20;
  std::size_t low_water = 256 << 10;
  std::size_t hard_limit = 16 << 20;
  // Graceful stop: how long pending output may take to drain before connections are cut.
  std::chrono::milliseconds drain_timeout{5000};
  listen_options listening;
};

struct stream_handler {
  std::function<void(connection&)> on_connect;
  std::function<void(connection&, std::span<const std::byte>)> on_message;
  std::function<void(connection&, close_reason)> on_close;
};

struct server_stats {
  std::uint64_t accepted = 0;
  std::uint64_t refused = 0;  // over max_connections
  std::uint64_t shed = 0;     // closed at once because descriptors ran out
  std::uint64_t protocol_errors = 0;
  std::uint64_t bytes_in = 0;
  std::uint64_t bytes_out = 0;
  std::size_t open = 0;
};

class stream_server {
 public:
  virtual ~stream_server() = default;
  // The address actually bound (port 0 resolved).
  virtual const endpoint& local() const noexcept = 0;
  virtual const server_stats& stats() const noexcept = 0;
  // Stop accepting; close idle connections; the rest close once their output drains
  // (or at drain_timeout). Returns at once; watch stats().open reach 0.
  virtual void begin_shutdown() = 0;
  // Closes the listener only: no new connections, established ones carry on untouched
  // (begin_shutdown() still drains them later). With SO_REUSEPORT the kernel sends new
  // connections to the other listeners on the port; ones already queued on this
  // listener but not yet accepted are reset. Idempotent; loop thread only.
  virtual void stop_accepting() = 0;
  // The connection with this id, or nullptr if it has closed.
  virtual connection* find(conn_id id) noexcept = 0;
};

// Binds and listens (throws sys_error naming the endpoint), then serves on `loop`.
std::unique_ptr<stream_server> make_stream_server(event_loop& loop, server_options options,
                                                  stream_handler handler);

// Serves until SIGINT/SIGTERM, then stops gracefully. Returns the signal that stopped it.
int run_until_signal(event_loop& loop, stream_server& server);

}  // namespace netkit
