// The completion driver's connection (io_uring): the kernel owns every operation. At most
// two requests are in flight: one multishot recv that picks its buffers from the engine's
// provided-buffer ring, and one send. Behaviour matches the readiness driver
// (back-pressure, half-close, idle timeout, limits, graceful stop) through connection_core.
#pragma once

#include <memory>
#include <vector>

#include "event/backend_uring.hpp"
#include "net/connection_core.hpp"
#include "net/output_chain.hpp"

namespace netkit::detail {

class uring_engine;

// Owned by its engine: by a slot while open, then (closed, operations still in flight) by
// the engine's zombie list until its last completion arrives. Loop thread only.
class uring_connection final : public connection_core, public completion_handler {
 public:
  uring_connection(uring_engine& engine, conn_id id, unique_fd fd, endpoint peer);

  void send(std::span<const std::byte> message) override;
  void send(const framed_message& message) override;
  void close() override;
  std::size_t queued_output() const noexcept override;

  void on_completion(unsigned op, int result, std::uint32_t flags) override;
  void start() { arm_recv(); }
  void force_close(close_reason why);
  // Stops reading; closes with `why` once queued output is written.
  void begin_drain(close_reason why);
  bool in_flight() const noexcept { return recv_armed_ || send_in_flight_; }
  // Re-arms a recv that ended for lack of provided buffers.
  void retry_recv() { arm_recv(); }

  std::size_t zombie_index = SIZE_MAX;  // position in the engine's zombie list

 private:
  friend class connection_core;  // after_write's hooks

  void arm_recv();
  void cancel(unsigned op) noexcept;
  void on_recv(int result, std::uint32_t flags);
  void on_send(int result);
  // A failed send closes the connection (true); else sent_on() counts the bytes and sends
  // on.
  bool send_failed(int result);
  void sent_on(int result);
  void on_data(std::span<const std::byte> data, unsigned buffer_id);
  void flush();
  void submit_send(std::span<const std::byte> bytes);
  void after_write();
  void release_output() noexcept;
  // Completions already posted are still taken (a bounded overshoot); no new ones come.
  void pause_reading() noexcept { cancel(op_recv); }
  // If the cancelled recv is still on its way back, its completion re-arms.
  void resume_reading() { arm_recv(); }

  static constexpr unsigned op_recv = 1;
  static constexpr unsigned op_send = 2;

  uring_engine& engine_;
  unique_fd fd_;
  std::vector<std::byte> sending_;  // in the kernel's hands while send_in_flight_
  std::size_t sent_ = 0;            // bytes of sending_ already written
  // Shared frames (and owned bytes queued before them) waiting behind sending_, ahead of
  // pending_; chain_sending_: the send in flight reads from chain_.front().
  output_chain chain_;
  bool chain_sending_ = false;
  std::vector<std::byte> pending_;  // replies queued behind the send in flight
  // A reply that lies in the received buffer being dispatched (flush() sends it from
  // there), and the received buffer a send in flight reads from (back to the ring when
  // the send completes).
  std::span<const std::byte> reply_ref_;
  std::span<const std::byte> held_;
  unsigned held_id_ = 0;
  std::span<const std::byte> dispatch_input_;  // the received buffer, during on_data()
  unsigned dispatch_buffer_ = 0;
  bool recv_armed_ = false;       // a recv is in flight
  bool recv_cancelling_ = false;  // ...and asked to stop
  bool send_in_flight_ = false;
};

}  // namespace netkit::detail
