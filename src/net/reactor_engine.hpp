// The readiness driver of the connection core (select, poll, epoll, epoll-et): the loop
// reports a socket readable or writable, and the connection makes the system calls.
#pragma once

#include <memory>
#include <vector>

#include "net/connection_core.hpp"
#include "net/output_chain.hpp"
#include "net/reply_batch.hpp"
#include "net/stream_engine.hpp"

namespace netkit::detail {

class reactor_engine;

class reactor_connection final : public connection_core, public io_handler {
 public:
  reactor_connection(reactor_engine& engine, conn_id id, unique_fd fd, endpoint peer);
  ~reactor_connection();

  void send(std::span<const std::byte> message) override;
  void send(const framed_message& message) override;
  void close() override;
  std::size_t queued_output() const noexcept override { return chain_.size() + output_.size(); }

  void on_io(std::uint32_t events) override;
  void start();
  // The end of the loop turn in which shared frames were queued here: writes them.
  void flush_end_of_turn();
  void force_close(close_reason why);
  // Stops reading; closes with `why` once queued output is written.
  void begin_drain(close_reason why);

 private:
  friend class connection_core;  // after_write's hooks

  void handle_read(std::uint32_t events);
  void handle_write();
  void flush_batch();
  void after_write();
  void release_output();
  void pause_reading() noexcept {}  // update_interest() stops the reads
  void resume_reading();
  void update_interest();
  // Writes queued output (shared frames first, then owned bytes); false after closing.
  bool write_queued();

  reactor_engine& engine_;
  unique_fd fd_;
  watch_id watch_;
  output_chain chain_;      // shared frames (and owned bytes between them) not yet written
  byte_buffer output_;      // owned bytes the socket did not take at once, after chain_
  bool flush_due_ = false;  // queued shared frames wait for the end of the loop turn
};

class reactor_engine final : public engine_base<reactor_connection> {
 public:
  reactor_engine(event_loop& loop, connection_group& owner, engine_config config,
                 stream_handler handler);
  ~reactor_engine() override;

 private:
  friend class reactor_connection;

  // Writes connection `id`'s queued frames once this loop turn's events are handled.
  void flush_at_end_of_turn(conn_id id);
  std::unique_ptr<reactor_connection> create(conn_id id, unique_fd fd, endpoint peer) override;
  void retire(std::unique_ptr<reactor_connection> c) override;

  // Shared by every connection of this loop (one runs at a time): the read landing area,
  // and replies produced while one connection's input is dispatched. Steady traffic
  // therefore needs no per-connection buffer, and no allocation or copy per message.
  std::unique_ptr<std::byte[]> read_scratch_;
  reply_batch batch_;
  // Connections with frames to write at the end of this turn; shared with the deferred
  // task, which may run after the engine is gone.
  struct flush_list {
    reactor_engine* engine;
    std::vector<conn_id> due;
  };
  std::shared_ptr<flush_list> flushes_ = std::make_shared<flush_list>(flush_list{this, {}});
};

}  // namespace netkit::detail
