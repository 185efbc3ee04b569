// The handler-facing side of one stream connection (TCP or Unix stream), the same on
// both sides: a server's accepted connections and a client's outgoing ones.
#pragma once

#include <any>
#include <compare>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "netkit/endpoint.hpp"

namespace netkit {

// Names a connection across time: a stale id (connection closed, slot reused) never
// reaches the new occupant. `group` names the server or client that owns it among
// several (the reactor index in a multi_reactor; 0 otherwise), so a cross-thread call can
// find the owning loop from the id alone. Ordered and hashable: usable as a map key.
struct conn_id {
  std::uint32_t slot = UINT32_MAX;
  std::uint32_t generation = 0;
  std::uint32_t group = 0;
  friend bool operator==(conn_id, conn_id) = default;
  friend auto operator<=>(conn_id, conn_id) = default;
};

enum class close_reason {
  peer_closed,      // orderly EOF after all output was delivered
  reset,            // ECONNRESET / EPIPE / other socket error
  protocol_error,   // the peer broke the framing rules
  idle_timeout,     // nothing received for the idle timeout
  output_overflow,  // output stayed above the hard limit (peer not reading)
  server_stopping,  // graceful stop (of the server or client that owns it)
  local,            // the handler called close()
};

std::string_view to_string(close_reason r) noexcept;

// A message's bytes as text (a line, a command): the counterpart of send(string_view).
inline std::string_view as_text(std::span<const std::byte> bytes) noexcept {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

// A message framed once (header, payload, trailer) and shared, reference-counted, by every
// connection it is queued on: a broadcast to N connections frames and stores the bytes
// once. Immutable; safe to share between threads.
class framed_message {
 public:
  framed_message() = default;
  explicit framed_message(std::vector<std::byte> bytes)
      : bytes_(std::make_shared<const std::vector<std::byte>>(std::move(bytes))) {}
  std::span<const std::byte> bytes() const noexcept {
    return bytes_ ? std::span<const std::byte>(*bytes_) : std::span<const std::byte>();
  }
  std::size_t size() const noexcept { return bytes_ ? bytes_->size() : 0; }
  bool empty() const noexcept { return size() == 0; }
  // How many queues (and handles) share these bytes now: for tests and benchmarks.
  long use_count() const noexcept { return bytes_.use_count(); }

 private:
  std::shared_ptr<const std::vector<std::byte>> bytes_;
};

class connection_group;

// Owned by its server or client (and loop); handlers get references that are valid only
// during the callback. Keep a conn_id to refer to a connection later. Every method: loop
// thread only (debug builds assert it).
class connection {
 public:
  conn_id id() const noexcept { return id_; }
  const endpoint& peer() const noexcept { return peer_; }
  int fd() const noexcept { return fd_; }
  // The server or client that owns this connection: how a handler reaches the others
  // (for_each, broadcast, find) without capturing the object that owns the handler.
  connection_group& owner() const noexcept { return owner_; }

  // Frames `message` with the owner's codec and queues it; it is written as soon as the
  // socket allows. Ignored once the connection is closing.
  virtual void send(std::span<const std::byte> message) = 0;
  void send(std::string_view text) {
    send(std::span(reinterpret_cast<const std::byte*>(text.data()), text.size()));
  }
  // Queues already-framed shared bytes (connection_group::frame): no copy, the queue holds
  // a reference until the bytes are written. Ignored once the connection is closing.
  virtual void send(const framed_message& message) = 0;
  // Stops reading, delivers what is queued, then closes.
  virtual void close() = 0;
  virtual std::size_t queued_output() const noexcept = 0;

  // The application's per-connection state (a nick, a session...): empty at connect, yours
  // to set in any callback, destroyed with the connection after on_close has returned.
  // Read it back with std::any_cast<T>(&c.context()).
  std::any& context() noexcept { return context_; }

 protected:
  connection(connection_group& owner, conn_id id, endpoint peer, int fd)
      : owner_(owner), id_(id), peer_(std::move(peer)), fd_(fd) {}
  ~connection() = default;

 private:
  connection_group& owner_;
  conn_id id_;
  endpoint peer_;
  int fd_;
  std::any context_;
};

}  // namespace netkit

template <>
struct std::hash<netkit::conn_id> {
  std::size_t operator()(netkit::conn_id id) const noexcept {
    std::uint64_t key = (std::uint64_t{id.generation} << 32) | id.slot;
    key ^= std::uint64_t{id.group} * 0x9e3779b97f4a7c15ull;
    return std::hash<std::uint64_t>{}(key);
  }
};
