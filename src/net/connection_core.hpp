// What a stream connection is, whichever side opened it and whichever driver moves its
// bytes: the partial-frame input buffer and decoder, the open → draining → closed state
// machine (two-phase close), back-pressure and the idle clock. The readiness driver
// (reactor_connection) and the completion driver (uring_connection) add only how bytes
// move, through the hooks after_write() calls.
#pragma once

#include <chrono>
#include <memory>
#include <utility>

#include "netkit/buffer.hpp"
#include "netkit/codec/codec.hpp"
#include "netkit/log.hpp"
#include "netkit/net/connection_group.hpp"

namespace netkit::detail {

class connection_core : public connection {
 public:
  bool closed() const noexcept { return state_ == state::closed; }
  // Open for input: not yet draining toward a close.
  bool takes_input() const noexcept { return state_ == state::open; }
  bool draining() const noexcept { return state_ == state::draining; }
  close_reason drain_reason() const noexcept { return drain_reason_; }
  bool reading_paused() const noexcept { return reading_paused_; }
  // Hands the decoder back for the next connection: the connection is about to be freed.
  std::unique_ptr<decoder> release_decoder() noexcept { return std::move(decoder_); }

  // Idle accounting: data arrival only sets a flag (no clock read per read); the periodic
  // sweep stamps the time. A connection is therefore closed between idle_timeout and
  // idle_timeout + one sweep period after its last input, never earlier.
  bool idle_expired(std::chrono::steady_clock::time_point now,
                    std::chrono::milliseconds timeout) noexcept {
    if (std::exchange(active_, false)) {
      last_active_ = now;
      return false;
    }
    return now - last_active_ >= timeout;
  }

 protected:
  enum class state { open, draining, closed };  // draining: no more reads, output flushing

  // `dec` is a fresh (or reset) decoder of the owner's codec (engine_base::take_decoder).
  connection_core(connection_group& owner, conn_id id, endpoint peer, int fd,
                  std::unique_ptr<decoder> dec, std::chrono::steady_clock::time_point now)
      : connection(owner, id, std::move(peer), fd), decoder_(std::move(dec)), last_active_(now) {}
  ~connection_core() = default;

  void note_input() noexcept { active_ = true; }
  // Enters draining with `why`; false if the connection was not open.
  bool enter_drain(close_reason why) noexcept {
    if (state_ != state::open) return false;
    state_ = state::draining;
    drain_reason_ = why;
    return true;
  }
  // Enters closed; false if it already was.
  bool enter_closed() noexcept { return std::exchange(state_, state::closed) != state::closed; }
  // The peer's FIN: a partial frame left behind is reported (decoder finish), the input
  // buffer freed. The caller then drains with close_reason::peer_closed.
  void take_peer_eof(connection_stats& stats) {
    if (auto problem = decoder_->finish(input_.data()); !problem.empty()) {
      ++stats.protocol_errors;
      log(log_level::warning, "{}: {}", peer().to_uri(), problem);
    }
    input_.clear();
    input_.shrink_to_fit();
  }

  // Back-pressure and the end of a drain, after output changed. The driver supplies
  // queued_output(), force_close(why), release_output() (an idle connection holds no
  // buffer), pause_reading() and resume_reading().
  template <typename Driver>
  static void after_write(Driver& c, const connection_options& opts) {
    const std::size_t queued = c.queued_output();
    if (queued > opts.hard_limit) {
      log(log_level::warning,
          "closing {}: {} bytes of output queued (hard limit {}): peer not reading",
          c.peer().to_uri(), queued, opts.hard_limit);
      c.force_close(close_reason::output_overflow);
      return;
    }
    if (queued == 0) {
      c.release_output();
      if (c.draining()) {
        c.force_close(c.drain_reason());
        return;
      }
    }
    if (queued > opts.high_water && !c.reading_paused_ && c.takes_input()) {
      c.reading_paused_ = true;
      log(log_level::debug, "pausing reads from {}: {} bytes queued", c.peer().to_uri(), queued);
      c.pause_reading();
    } else if (c.reading_paused_ && queued <= opts.low_water) {
      c.reading_paused_ = false;
      c.resume_reading();
    }
  }

  std::unique_ptr<decoder> decoder_;
  byte_buffer input_;  // only a partial frame waiting for the rest
  state state_ = state::open;
  close_reason drain_reason_ = close_reason::local;
  bool reading_paused_ = false;  // back-pressure
  bool in_dispatch_ = false;     // replies are gathered and flushed when the dispatch ends
  bool active_ = false;
  std::chrono::steady_clock::time_point last_active_;
};

}  // namespace netkit::detail
