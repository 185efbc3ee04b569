// The handler-facing side of one stream connection (TCP or Unix stream).
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "netkit/endpoint.hpp"

namespace netkit {

// Names a connection across time: a stale id (connection closed, slot reused) never
// reaches the new occupant.
struct conn_id {
  std::uint32_t slot = UINT32_MAX;
  std::uint32_t generation = 0;
  friend bool operator==(conn_id, conn_id) = default;
};

enum class close_reason {
  peer_closed,      // orderly EOF after all output was delivered
  reset,            // ECONNRESET / EPIPE / other socket error
  protocol_error,   // the peer broke the framing rules
  idle_timeout,     // nothing received for --idle-timeout
  output_overflow,  // output stayed above the hard limit (peer not reading)
  server_stopping,  // graceful stop
  local,            // the handler called close()
};

std::string_view to_string(close_reason r) noexcept;

// Owned by its server (and loop); handlers get references that are valid only during
// the callback. Keep a conn_id to refer to a connection later. Loop thread only.
class connection {
 public:
  conn_id id() const noexcept { return id_; }
  const endpoint& peer() const noexcept { return peer_; }
  int fd() const noexcept { return fd_; }

  // Frames `message` with the server's codec and queues it; it is written as soon as
  // the socket allows. Ignored once the connection is closing.
  virtual void send(std::span<const std::byte> message) = 0;
  void send(std::string_view text) {
    send(std::span(reinterpret_cast<const std::byte*>(text.data()), text.size()));
  }
  // Stops reading, delivers what is queued, then closes.
  virtual void close() = 0;
  virtual std::size_t queued_output() const noexcept = 0;

 protected:
  connection(conn_id id, endpoint peer, int fd) : id_(id), peer_(std::move(peer)), fd_(fd) {}
  ~connection() = default;

 private:
  conn_id id_;
  endpoint peer_;
  int fd_;
};

}  // namespace netkit
