// The completion-based stream server (io_uring): the kernel owns every operation.
// Per connection at most two requests are in flight: one multishot recv that picks its
// buffers from the server's provided-buffer ring, and one send. Behaviour matches the
// reactor server (back-pressure, half-close, idle timeout, limits, graceful stop).
#pragma once

#include <memory>
#include <vector>

#include "event/backend_uring.hpp"
#include "event/uring_buffer_ring.hpp"
#include "net/connection_table.hpp"
#include "net/uring_acceptor.hpp"
#include "netkit/buffer.hpp"
#include "netkit/net/stream_server.hpp"

namespace netkit::detail {

class uring_server;

// Owned by its server: by a slot while open, then (closed, operations still in flight)
// by the server's zombie list until its last completion arrives. Loop thread only.
class uring_connection final : public connection, public completion_handler {
 public:
  uring_connection(uring_server& server, conn_id id, unique_fd fd, endpoint peer);

  void send(std::span<const std::byte> message) override;
  void close() override;
  std::size_t queued_output() const noexcept override;

  void on_completion(unsigned op, int result, std::uint32_t flags) override;
  void start() { arm_recv(); }
  void force_close(close_reason why);
  // Stops reading; closes with `why` once queued output is written.
  void begin_drain(close_reason why);
  bool closed() const noexcept { return state_ == state::closed; }
  // Open for input: not yet draining toward a close.
  bool takes_input() const noexcept { return state_ == state::open; }
  bool in_flight() const noexcept { return recv_armed_ || send_in_flight_; }
  // Re-arms a recv that ended for lack of provided buffers.
  void retry_recv();
  // Idle accounting: true if data arrived since the last call.
  bool take_activity() noexcept { return std::exchange(active_, false); }
  std::chrono::steady_clock::time_point last_active() const noexcept { return last_active_; }
  void set_last_active(std::chrono::steady_clock::time_point t) noexcept { last_active_ = t; }

  std::size_t zombie_index = SIZE_MAX;  // position in the server's zombie list

 private:
  enum class state { open, draining, closed };  // draining: no more reads, output flushing

  void arm_recv();
  void cancel(unsigned op) noexcept;
  void on_recv(int result, std::uint32_t flags);
  void on_send(int result);
  void on_data(std::span<const std::byte> data, unsigned buffer_id);
  // Decodes `data` and dispatches messages; returns bytes consumed, or nullopt after
  // closing the connection for a protocol or handler error.
  std::optional<std::size_t> deliver(std::span<const std::byte> data);
  void flush();
  void after_write();
  void on_peer_eof();
  void release_output() noexcept;

  uring_server& server_;
  unique_fd fd_;
  std::unique_ptr<decoder> decoder_;
  byte_buffer input_;               // only a partial frame waiting for the rest
  std::vector<std::byte> sending_;  // in the kernel's hands while send_in_flight_
  std::size_t sent_ = 0;            // bytes of sending_ already written
  std::vector<std::byte> pending_;  // replies queued behind the send in flight
  // A reply that lies in the received buffer being dispatched (flush() sends it from
  // there), and the received buffer a send in flight reads from (back to the ring when
  // the send completes).
  std::span<const std::byte> reply_ref_;
  std::span<const std::byte> held_;
  unsigned held_id_ = 0;
  std::span<const std::byte> dispatch_input_;  // the received buffer, during on_data()
  unsigned dispatch_buffer_ = 0;
  state state_ = state::open;
  close_reason drain_reason_ = close_reason::local;
  bool recv_armed_ = false;       // a recv is in flight
  bool recv_cancelling_ = false;  // ...and asked to stop
  bool send_in_flight_ = false;
  bool reading_paused_ = false;  // back-pressure
  bool in_dispatch_ = false;     // replies are flushed when the dispatch ends
  bool active_ = false;
  std::chrono::steady_clock::time_point last_active_;
};

class uring_server final : public stream_server {
 public:
  uring_server(event_loop& loop, server_options options, stream_handler handler);
  ~uring_server() override;

  const endpoint& local() const noexcept override { return acceptor_.local(); }
  const server_stats& stats() const noexcept override { return stats_; }
  void begin_shutdown() override;
  void stop_accepting() override { acceptor_.close(); }
  connection* find(conn_id id) noexcept override;

 private:
  friend class uring_connection;
  using graveyard = std::vector<std::unique_ptr<uring_connection>>;

  void on_accept(unique_fd fd, endpoint peer);
  void release(uring_connection& c, close_reason why);
  // A closed connection whose last completion has arrived: free it after the dispatch.
  void bury(uring_connection& c);
  void bury(std::unique_ptr<uring_connection> c);
  void starved(uring_connection& c);
  void retry_starved();
  void sweep_idle();
  // Gives receive-buffer pages and spare output buffers back when the server goes quiet.
  void trim_memory();
  // Output buffers are recycled between connections so steady traffic does not allocate.
  std::vector<std::byte> take_buffer();
  void give_buffer(std::vector<std::byte>& v) noexcept;

  event_loop& loop_;
  uring_backend& ring_;
  server_options options_;
  stream_handler handler_;
  std::unique_ptr<encoder> encoder_;
  uring_buffer_ring buffers_;
  uring_acceptor acceptor_;
  connection_table<uring_connection> conns_;
  graveyard zombies_;  // closed, with operations still in flight
  // Shared with a deferred task, which may run after this server is gone.
  std::shared_ptr<graveyard> dead_ = std::make_shared<graveyard>();
  std::vector<conn_id> starved_, starved_running_;
  std::vector<std::vector<std::byte>> spare_buffers_;
  std::size_t spare_bytes_ = 0;
  std::uint64_t buffer_shortages_ = 0;  // recvs that ended with ENOBUFS
  std::size_t held_buffers_ = 0;        // received buffers a send is reading from
  server_stats stats_;
  bool shutting_down_ = false;
  bool destroying_ = false;
  timer_id idle_timer_ = 0;
  timer_id drain_timer_ = 0;
  timer_id trim_timer_ = 0;
  std::uint64_t bytes_in_at_trim_ = 0;
  bool trimmed_ = false;
  bool trim_scheduled_ = false;
};

}  // namespace netkit::detail
