// The readiness-based stream server (select, poll, epoll, epoll-et).
#pragma once

#include <memory>
#include <vector>

#include "net/acceptor.hpp"
#include "net/connection_table.hpp"
#include "net/reply_batch.hpp"
#include "netkit/buffer.hpp"
#include "netkit/net/stream_server.hpp"

namespace netkit::detail {

class reactor_server;

class reactor_connection final : public connection, public io_handler {
 public:
  reactor_connection(reactor_server& server, conn_id id, unique_fd fd, endpoint peer);
  ~reactor_connection();

  void send(std::span<const std::byte> message) override;
  void close() override;
  std::size_t queued_output() const noexcept override { return output_.size(); }

  void on_io(std::uint32_t events) override;
  void start();
  void force_close(close_reason why);
  bool closed() const noexcept { return state_ == state::closed; }
  // Open for input: not yet draining toward a close.
  bool takes_input() const noexcept { return state_ == state::open; }
  std::chrono::steady_clock::time_point last_active() const noexcept { return last_active_; }
  // Stops reading; closes with `why` once queued output is written.
  void begin_drain(close_reason why);

 private:
  enum class state { open, draining, closed };  // draining: no more reads, output flushing

  void handle_read(std::uint32_t events);
  // Decodes `data` and dispatches messages; returns bytes consumed, or nullopt after
  // closing the connection for a protocol or handler error.
  std::optional<std::size_t> deliver(std::span<const std::byte> data);
  void handle_write();
  void flush_batch();
  void after_write();
  void update_interest();
  void on_peer_eof();

  reactor_server& server_;
  unique_fd fd_;
  watch_id watch_;
  std::unique_ptr<decoder> decoder_;
  byte_buffer input_;   // only a partial frame waiting for the rest
  byte_buffer output_;  // only bytes the socket did not take at once
  state state_ = state::open;
  close_reason drain_reason_ = close_reason::local;
  bool reading_paused_ = false;  // back-pressure
  bool in_dispatch_ = false;     // replies go to the server's batch buffer
  std::chrono::steady_clock::time_point last_active_;
};

class reactor_server final : public stream_server {
 public:
  reactor_server(event_loop& loop, server_options options, stream_handler handler);
  ~reactor_server() override;

  const endpoint& local() const noexcept override { return acceptor_.local(); }
  const server_stats& stats() const noexcept override { return stats_; }
  void begin_shutdown() override;
  connection* find(conn_id id) noexcept override;
  void stop_accepting() override { acceptor_.close(); }

 private:
  friend class reactor_connection;

  void on_accept(unique_fd fd, endpoint peer);
  void release(reactor_connection& c, close_reason why);
  void sweep_idle();

  event_loop& loop_;
  server_options options_;
  stream_handler handler_;
  std::unique_ptr<encoder> encoder_;
  acceptor acceptor_;
  connection_table<reactor_connection> conns_;
  server_stats stats_;
  bool shutting_down_ = false;
  timer_id idle_timer_ = 0;
  timer_id drain_timer_ = 0;

  // Shared by every connection of this loop (one runs at a time): the read landing area,
  // and replies produced while one connection's input is dispatched. Steady traffic
  // therefore needs no per-connection buffer, and no allocation or copy per message.
  std::unique_ptr<std::byte[]> read_scratch_;
  reply_batch batch_;
  std::vector<std::unique_ptr<reactor_connection>> graveyard_;  // freed after the dispatch
};

}  // namespace netkit::detail
