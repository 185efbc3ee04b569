// The side-neutral connection core: owns the connections of one server or client on one
// loop, whichever side opened them. A server feeds it accepted sockets, a client connected
// ones (both through adopt()); the driver — readiness (reactor_engine) or completion
// (uring_engine) — decides how bytes move. What does not depend on the driver stands here
// once: admission, connect/close bookkeeping, the idle sweep, graceful drain, walking,
// finding and broadcasting.
#pragma once

#include <functional>
#include <memory>
#include <optional>

#include "net/connection_table.hpp"
#include "netkit/net/connection_group.hpp"

namespace netkit::detail {

struct engine_config {
  connection_options options;
  std::size_t max_connections = 0;  // 0: no limit
  std::uint32_t group = 0;          // carried by every conn_id (multi_reactor's index)
};

// Loop thread only.
class stream_engine {
 public:
  virtual ~stream_engine() = default;
  // Serves a connected non-blocking stream socket: admission, socket tuning (unless it
  // inherited it from a tuned listener), a slot, the driver's start (a backend may refuse
  // the descriptor: logged, closed), then on_connect. Returns the new connection's id, or
  // nullopt when it was refused or could not start.
  virtual std::optional<conn_id> adopt(unique_fd fd, endpoint peer, socket_tuning tuning) = 0;
  virtual connection* find(conn_id id) noexcept = 0;
  virtual void for_each(const std::function<void(connection&)>& fn) = 0;
  virtual framed_message frame(std::span<const std::byte> message) const = 0;
  // Every connection stops reading and closes once its output is written; what has not
  // drained after drain_timeout is cut.
  virtual void begin_shutdown() = 0;
  virtual connection_stats& stats() noexcept = 0;
  virtual event_loop& loop() noexcept = 0;
  // Closes every connection now (on_close runs for each): what an owner calls first in its
  // destructor, while handlers may still reach it through connection::owner().
  virtual void close_all() = 0;
};

// Frames `message` once into shared bytes (throws usage_error when the codec cannot carry
// it). Reads only the encoder, which is immutable: safe from any thread.
inline framed_message frame_message(const encoder& enc, std::span<const std::byte> message) {
  byte_buffer framed;
  enc.encode(message, framed);
  auto bytes = framed.data();
  return framed_message(std::vector<std::byte>(bytes.begin(), bytes.end()));
}

// Builds the driver that fits `loop`'s backend.
std::unique_ptr<stream_engine> make_stream_engine(event_loop& loop, connection_group& owner,
                                                  engine_config config, stream_handler handler);

template <typename Conn>
class engine_base : public stream_engine {
 public:
  engine_base(event_loop& loop, connection_group& owner, engine_config config,
              stream_handler handler)
      : loop_(loop),
        owner_(owner),
        options_(config.options),
        max_connections_(config.max_connections),
        handler_(std::move(handler)),
        encoder_(make_encoder(options_.codec)),
        conns_(config.group),
        reaper_(*this) {
    if (options_.idle_timeout.count() > 0) {
      auto period = std::max(options_.idle_timeout / 4, std::chrono::milliseconds(20));
      idle_timer_ = loop_.run_every(period, [this] { sweep_idle(); });
    }
  }

  std::optional<conn_id> adopt(unique_fd fd, endpoint peer, socket_tuning tuning) override {
    if (shutting_down_ || !admit_connection(max_connections_, stats_, peer)) return std::nullopt;
    if (tuning == socket_tuning::needed) tune_accepted(fd.get(), peer, options_);
    auto& c =
        conns_.emplace([&](conn_id id) { return create(id, std::move(fd), std::move(peer)); });
    try {
      c.start();
    } catch (const std::exception& e) {
      log(log_level::warning, "closing {}: {}", c.peer().to_uri(), e.what());
      retire(conns_.remove(c.id()));
      return std::nullopt;
    }
    const conn_id id = c.id();
    note_connected(handler_, stats_, c);
    return id;
  }

  connection* find(conn_id id) noexcept override { return conns_.find(id); }

  // Connections open for messages: closing (draining) ones take no more output.
  void for_each(const std::function<void(connection&)>& fn) override {
    conns_.for_each([&](Conn& c) {
      if (c.takes_input()) fn(c);
    });
  }

  framed_message frame(std::span<const std::byte> message) const override {
    return frame_message(*encoder_, message);
  }

  void begin_shutdown() override {
    if (shutting_down_) return;
    shutting_down_ = true;
    conns_.for_each([](Conn& c) {
      if (!c.closed()) c.begin_drain(close_reason::server_stopping);
    });
    drain_timer_ = loop_.run_after(options_.drain_timeout, [this] {
      drain_timer_ = 0;
      conns_.for_each([this](Conn& c) {
        if (c.closed()) return;
        log(log_level::warning, "closing {}: output not drained within {} ms", c.peer().to_uri(),
            options_.drain_timeout.count());
        c.force_close(close_reason::server_stopping);
      });
    });
  }

  connection_stats& stats() noexcept override { return stats_; }
  event_loop& loop() noexcept override { return loop_; }

  // The driver's connection has closed (I/O stopped, descriptor closed): on_close, then
  // the slot is freed; the driver decides when the object may die (retire).
  void release(Conn& c, close_reason why) {
    note_closed(handler_, stats_, c, why);
    retire(conns_.remove(c.id()));
  }

  // A decoder for a new connection: a closed connection's, reset, when one is spare.
  std::unique_ptr<decoder> take_decoder() {
    if (spare_decoders_.empty()) return make_decoder(options_.codec);
    auto d = std::move(spare_decoders_.back());
    spare_decoders_.pop_back();
    d->reset();
    return d;
  }

  event_loop& loop_;
  connection_group& owner_;
  const connection_options options_;
  const std::size_t max_connections_;
  stream_handler handler_;
  std::unique_ptr<encoder> encoder_;
  connection_stats stats_;

 protected:
  // Derived destructors close every connection first (their drivers must still exist),
  // then free_dead().
  ~engine_base() override {
    if (idle_timer_) loop_.cancel(idle_timer_);
    if (drain_timer_) loop_.cancel(drain_timer_);
    free_dead();
  }

 public:
  void close_all() override {
    conns_.for_each([](Conn& c) { c.force_close(close_reason::server_stopping); });
  }

 protected:
  virtual std::unique_ptr<Conn> create(conn_id id, unique_fd fd, endpoint peer) = 0;
  // Takes a removed connection: free it once nothing (a callback on the stack, an
  // operation in the kernel) can still reach it.
  virtual void retire(std::unique_ptr<Conn> c) = 0;

  // Frees `c` once this turn's dispatch is over (a callback of it may still be on the
  // stack), through a task of the loop's deferred queue: a connection costs the server one
  // allocation, the object itself.
  void free_later(std::unique_ptr<Conn> c) {
    dead_.push_back(std::move(c));
    loop_.defer(reaper_);
  }
  // Frees what free_later() holds, now; their decoders are kept for the next connections.
  void free_dead() noexcept {
    loop_.cancel(reaper_);
    dying_.swap(dead_);
    for (auto& c : dying_) {
      if (spare_decoders_.size() >= max_spare_decoders) break;
      if (auto d = c->release_decoder()) spare_decoders_.push_back(std::move(d));
    }
    dying_.clear();
  }

  connection_table<Conn> conns_;
  bool shutting_down_ = false;

 private:
  void sweep_idle() {
    auto now = loop_.now();
    conns_.for_each([&](Conn& c) {
      if (c.closed() || !c.idle_expired(now, options_.idle_timeout)) return;
      log(log_level::info, "closing {}: idle for {} ms", c.peer().to_uri(),
          options_.idle_timeout.count());
      c.force_close(close_reason::idle_timeout);
    });
  }

  struct reaper final : deferred_task {
    explicit reaper(engine_base& e) : engine(e) {}
    void run() override { engine.free_dead(); }
    engine_base& engine;
  };
  // Spare decoders kept (the most connections closed in one turn that the next turns
  // reuse without allocating); beyond it they are freed with their connections.
  static constexpr std::size_t max_spare_decoders = 4096;

  timer_id idle_timer_ = 0;
  timer_id drain_timer_ = 0;
  // Closed connections waiting for the end of the turn (dying_: being freed; both keep
  // their capacity, so steady churn allocates nothing here).
  std::vector<std::unique_ptr<Conn>> dead_, dying_;
  std::vector<std::unique_ptr<decoder>> spare_decoders_;
  reaper reaper_;
};

}  // namespace netkit::detail
