// What servers and clients have in common: a set of stream connections on one event loop,
// the options that govern each connection, the handler that receives their events, and
// what an application does with all of them at once (walk, find, broadcast).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <span>
#include <string_view>

#include "netkit/codec/codec.hpp"
#include "netkit/error.hpp"
#include "netkit/event/loop.hpp"
#include "netkit/net/connection.hpp"

namespace netkit {

class stream_client;

// Per-connection behaviour, the same for accepted and outgoing connections.
struct connection_options {
  codec_spec codec;
  // 0: none. Connections that receive nothing for this long are closed.
  std::chrono::milliseconds idle_timeout{0};
  // Back-pressure: when a connection's queued output exceeds high_water, reading from it
  // stops until the output drains below low_water. A handler that keeps sending
  // regardless (e.g. broadcast) is cut off when output exceeds hard_limit.
  std::size_t high_water = 1 << 20;
  std::size_t low_water = 256 << 10;
  std::size_t hard_limit = 16 << 20;
  // SO_SNDBUF for each connection (0: the kernel's, autotuned up to net.ipv4.tcp_wmem's
  // maximum, several MiB on loopback). Set, it also turns autotuning off, so that what a
  // peer that stopped reading can hold is bounded in the kernel as hard_limit bounds it
  // here, and the hard limit is reached soon after the peer stops (a chat server cutting
  // off a slow consumer). The kernel doubles the value for its bookkeeping.
  std::size_t send_buffer = 0;
  // Graceful stop: how long pending output may take to drain before connections are cut.
  std::chrono::milliseconds drain_timeout{5000};
};

// The events of a connection's life, on the loop thread. Each callback gets the
// connection, whose owner() is the server or client (so a handler never needs to capture
// the object it is given to). A callback that throws closes that connection only (logged).
struct stream_handler {
  std::function<void(connection&)> on_connect;
  std::function<void(connection&, std::span<const std::byte>)> on_message;
  std::function<void(connection&, close_reason)> on_close;
  // Clients only: an outgoing connection could not be established after its retries
  // (the error names the endpoint and errno: "connect tcp://127.0.0.1:9: Connection
  // refused (ECONNREFUSED)"). The client is passed in, so a handler can connect elsewhere.
  std::function<void(stream_client& client, const endpoint& target, const sys_error& error)>
      on_connect_failed;
};

struct connection_stats {
  std::uint64_t accepted = 0;  // connections that started (accepted, adopted or connected)
  std::uint64_t refused = 0;   // over max_connections
  std::uint64_t shed = 0;      // closed at once because descriptors ran out
  std::uint64_t protocol_errors = 0;
  std::uint64_t connect_failures = 0;  // clients: targets given up on
  std::uint64_t bytes_in = 0;
  std::uint64_t bytes_out = 0;
  std::size_t open = 0;
};

// Loop thread only, every method (debug builds assert it); other threads go through
// event_loop::post or multi_reactor's post_send/post_broadcast.
class connection_group {
 public:
  virtual event_loop& loop() noexcept = 0;
  virtual const connection_stats& stats() const noexcept = 0;
  // The connection with this id, or nullptr if it has closed.
  virtual connection* find(conn_id id) noexcept = 0;
  // Calls fn on every connection open for messages (not closing), in slot order; fn may
  // send to or close any of them (a connection closed during the walk is not visited).
  virtual void for_each(const std::function<void(connection&)>& fn) = 0;
  // Frames `message` once with this group's codec: the bytes to queue on many connections.
  // Throws usage_error when the codec cannot carry it (too long, a line with '\n').
  virtual framed_message frame(std::span<const std::byte> message) const = 0;
  framed_message frame(std::string_view text) const {
    return frame(std::span(reinterpret_cast<const std::byte*>(text.data()), text.size()));
  }
  // Frames once and queues the same bytes on every connection for_each visits, except
  // `except` (none by default). Returns the number of connections it was queued on.
  std::size_t broadcast(std::span<const std::byte> message, conn_id except = {}) {
    return broadcast(frame(message), except);
  }
  std::size_t broadcast(std::string_view text, conn_id except = {}) {
    return broadcast(frame(text), except);
  }
  std::size_t broadcast(const framed_message& message, conn_id except = {});

 protected:
  ~connection_group() = default;
};

}  // namespace netkit
