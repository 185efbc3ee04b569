// Owning connections, for both drivers (readiness and io_uring) and both sides: the slot
// table that names them by {slot, generation, group}, admission against max_connections,
// the bookkeeping around connect and close, and the decode/dispatch loop.
#pragma once

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "net/peer_description.hpp"
#include "netkit/codec/codec.hpp"
#include "netkit/log.hpp"
#include "netkit/net/connection_group.hpp"

namespace netkit::detail {

// Owns connections in slots. A removed connection's slot gets a new generation, so an
// old conn_id never finds the next occupant.
template <typename Conn>
class connection_table {
 public:
  // Every id this table hands out carries `group` (conn_id::group).
  explicit connection_table(std::uint32_t group = 0) : group_(group) {}

  // Puts make(id) -> unique_ptr<Conn> in a free slot.
  template <typename Make>
  Conn& emplace(Make&& make) {
    std::uint32_t index;
    if (!free_.empty()) {
      index = free_.back();
      free_.pop_back();
    } else {
      index = static_cast<std::uint32_t>(slots_.size());
      slots_.emplace_back();
    }
    auto& s = slots_[index];
    s.conn = make(conn_id{index, s.generation, group_});
    return *s.conn;
  }

  // Frees the slot and hands back ownership (the caller decides when to destroy it).
  std::unique_ptr<Conn> remove(conn_id id) {
    auto& s = slots_[id.slot];
    ++s.generation;
    free_.push_back(id.slot);
    return std::move(s.conn);
  }

  Conn* find(conn_id id) const noexcept {
    if (id.slot >= slots_.size() || id.group != group_) return nullptr;
    const auto& s = slots_[id.slot];
    return s.generation == id.generation ? s.conn.get() : nullptr;
  }

  // Calls f on every connection still in the table; f may close (remove) it.
  template <typename F>
  void for_each(F&& f) {
    for (std::size_t i = 0; i < slots_.size(); ++i)
      if (slots_[i].conn) f(*slots_[i].conn);
  }

 private:
  struct slot {
    std::unique_ptr<Conn> conn;
    std::uint32_t generation = 0;
  };
  std::vector<slot> slots_;
  std::vector<std::uint32_t> free_;
  std::uint32_t group_;
};

// False, counted and logged (the first refusal and every 1000th at warning level), when
// max_connections is reached: closing the accepted socket is the refusal.
inline bool admit_connection(std::size_t max_connections, connection_stats& stats,
                             const endpoint& peer) {
  if (max_connections == 0 || stats.open < max_connections) return true;
  ++stats.refused;
  auto level =
      stats.refused == 1 || stats.refused % 1000 == 0 ? log_level::warning : log_level::debug;
  log(level, "refused {} (--max-conns {} reached; {} refused so far)", peer.to_uri(),
      max_connections, stats.refused);
  return false;
}

// Whether an adopted socket still needs tune_accepted, or already carries its options
// from the listener it was accepted on (tune_listener).
enum class socket_tuning { needed, inherited };

// Echo-style request/response traffic must not wait for Nagle's algorithm; a fixed send
// buffer when the options ask for one (best effort: the kernel clamps it to wmem_max).
inline void tune_accepted(int fd, const endpoint& peer, const connection_options& options) {
  if (options.send_buffer > 0) {
    int size = static_cast<int>(std::min<std::size_t>(options.send_buffer, INT_MAX / 2));
    ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  }
  if (peer.kind() != transport::tcp) return;
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// The same options set once on a TCP listener: a socket it accepts is a clone of it and
// inherits TCP_NODELAY and SO_SNDBUF, so accepting costs no setsockopt per connection
// (two system calls of ~11 per churned connection). Returns inherited when every option
// took; needed otherwise (a Unix listener's connections are not clones: each is tuned).
inline socket_tuning tune_listener(int fd, const endpoint& listen,
                                   const connection_options& options) {
  if (listen.kind() != transport::tcp) return socket_tuning::needed;
  if (options.send_buffer > 0) {
    int size = static_cast<int>(std::min<std::size_t>(options.send_buffer, INT_MAX / 2));
    if (::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size) != 0)
      return socket_tuning::needed;
  }
  int one = 1;
  if (::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
    return socket_tuning::needed;
  return socket_tuning::inherited;
}

inline void note_connected(const stream_handler& handler, connection_stats& stats, connection& c) {
  ++stats.accepted;
  ++stats.open;
  // Guarded: the peer's description is a string built per connection.
  if (log_enabled(log_level::debug))
    log(log_level::debug, "connected {} (fd {}, {} open)", describe_peer(c), c.fd(), stats.open);
  if (!handler.on_connect) return;
  try {
    handler.on_connect(c);
  } catch (const std::exception& e) {
    log(log_level::error, "closing {}: connect handler failed: {}", c.peer().to_uri(), e.what());
    c.close();
  }
}

inline void note_closed(const stream_handler& handler, connection_stats& stats, connection& c,
                        close_reason why) {
  --stats.open;
  if (log_enabled(log_level::debug))
    log(log_level::debug, "closed {}: {} ({} open)", c.peer().to_uri(), to_string(why), stats.open);
  if (!handler.on_close) return;
  try {
    handler.on_close(c, why);
  } catch (const std::exception& e) {
    log(log_level::error, "close handler for {} failed: {}", c.peer().to_uri(), e.what());
  }
}

// Decodes `data` and hands each message to the handler for as long as `c` takes input.
// Returns the bytes consumed, or nullopt after closing `c` for a protocol error or a
// handler that threw.
template <typename Conn>
std::optional<std::size_t> dispatch_messages(Conn& c, decoder& dec, const stream_handler& handler,
                                             connection_stats& stats,
                                             std::span<const std::byte> data) {
  std::size_t used = 0;
  while (c.takes_input()) {
    auto r = dec.decode(data.subspan(used));
    if (r.state == decode_result::status::need_more) break;
    if (r.state == decode_result::status::error) {
      ++stats.protocol_errors;
      log(log_level::warning, "closing {}: protocol error: {}", c.peer().to_uri(), r.error);
      c.force_close(close_reason::protocol_error);
      return std::nullopt;
    }
    used += r.consumed;
    if (!handler.on_message) continue;
    try {
      handler.on_message(c, r.message);
    } catch (const std::exception& e) {
      log(log_level::error, "closing {}: handler failed: {}", c.peer().to_uri(), e.what());
      c.force_close(close_reason::local);
      return std::nullopt;
    }
  }
  return used;
}

}  // namespace netkit::detail
