// The stream client: connectors feeding the side-neutral connection core through adopt(),
// so an outgoing connection is served exactly as an accepted one.
#include "netkit/net/stream_client.hpp"

#include <optional>
#include <random>
#include <unordered_map>

#include <fmt/format.h>

#include "net/jitter_seed.hpp"
#include "net/stream_engine.hpp"
#include "net/uring_engine.hpp"
#include "netkit/log.hpp"

namespace netkit {

namespace detail {
namespace {

class client final : public stream_client {
 public:
  client(event_loop& loop, const client_options& options, stream_handler handler)
      : loop_(loop),
        options_(options),
        user_on_close_(std::move(handler.on_close)),
        on_connect_failed_(std::move(handler.on_connect_failed)),
        rng_(options.connecting.seed ? options.connecting.seed : fresh_jitter_seed()) {
    // Wrapped: the client notes where each connection came from before the application
    // sees it (it may close it in on_connect), and reconnects after the application's
    // on_close.
    handler.on_connect = [this, user = std::move(handler.on_connect)](connection& c) {
      if (adopting_ && options_.reconnect) targets_[c.id()] = std::move(*adopting_);
      adopting_.reset();
      if (user) user(c);
    };
    handler.on_close = [this](connection& c, close_reason why) { closed(c, why); };
    engine_ = make_stream_engine(loop, *this, {options, 0, 0}, std::move(handler));
  }

  ~client() override {
    shutting_down_ = true;
    for (auto& [key, p] : pending_)
      if (p.attempt) p.attempt->cancel();
    for (auto& [key, p] : pending_)
      if (p.timer) loop_.cancel(p.timer);
    pending_.clear();
    // on_close may still reach this client through connection::owner(): close while whole.
    engine_->close_all();
    if (loop_.io_backend().completion_based()) {
      auto& engine = static_cast<uring_engine&>(*engine_);
      engine.wait_for_kernel([&engine] { return engine.uring().orphans() == 0; });
    }
    engine_.reset();
  }

  event_loop& loop() noexcept override { return loop_; }
  const connection_stats& stats() const noexcept override { return engine_->stats(); }
  connection* find(conn_id id) noexcept override {
    NETKIT_ASSERT_LOOP_THREAD(loop_);
    return engine_->find(id);
  }
  void for_each(const std::function<void(connection&)>& fn) override {
    NETKIT_ASSERT_LOOP_THREAD(loop_);
    engine_->for_each(fn);
  }
  framed_message frame(std::span<const std::byte> message) const override {
    return engine_->frame(message);
  }

  void connect(const endpoint& target) override {
    NETKIT_ASSERT_LOOP_THREAD(loop_);
    start_connect(target, 0);
  }

  std::size_t connecting() const noexcept override { return pending_.size(); }

  void begin_shutdown() override {
    NETKIT_ASSERT_LOOP_THREAD(loop_);
    if (shutting_down_) return;
    shutting_down_ = true;
    for (auto& [key, p] : pending_) {
      if (p.attempt) p.attempt->cancel();
      if (p.timer) loop_.cancel(p.timer);
      p.timer = 0;
      retire(std::move(p.attempt));
    }
    pending_.clear();
    engine_->begin_shutdown();
  }

 private:
  struct pending {
    endpoint target;
    std::unique_ptr<connector> attempt;  // null while waiting to reconnect
    timer_id timer = 0;                  // the reconnect wait
    int losses = 0;                      // connections to it lost in a row
  };
  struct target_state {
    endpoint target;
    event_loop::clock::time_point connected_at;
    int losses = 0;
  };

  // `losses`: connections to this target lost in a row so far (the reconnect back-off).
  void start_connect(const endpoint& target, int losses) {
    if (shutting_down_) return;
    const std::uint64_t key = next_key_++;
    auto& p = pending_[key];
    p.target = target;
    p.losses = losses;
    // Each connector its own jitter, even from a fixed seed: clients must not retry in step.
    connect_options opts = options_.connecting;
    if (opts.seed) opts.seed ^= key * 0x9e3779b97f4a7c15ull;
    try {
      p.attempt = make_connector(
          loop_, target, opts,
          [this, key](unique_fd fd, const endpoint& peer) { connected(key, std::move(fd), peer); },
          [this, key](const sys_error& e) { failed(key, e); });
    } catch (...) {
      pending_.erase(key);
      throw;
    }
    p.attempt->start();
  }

  void connected(std::uint64_t key, unique_fd fd, const endpoint& peer) {
    auto it = pending_.find(key);
    if (it == pending_.end()) return;
    target_state target{std::move(it->second.target), loop_.now(), it->second.losses};
    retire(std::move(it->second.attempt));
    pending_.erase(it);
    adopting_ = target;
    auto id = engine_->adopt(std::move(fd), peer, socket_tuning::needed);
    adopting_.reset();
    if (!id)  // the loop refused the socket (logged): a failure of this connect
      report_failure(target.target,
                     sys_error(ECONNABORTED, "serve connection to", target.target.to_uri()));
  }

  void failed(std::uint64_t key, const sys_error& error) {
    auto it = pending_.find(key);
    if (it == pending_.end()) return;
    endpoint target = std::move(it->second.target);
    retire(std::move(it->second.attempt));
    pending_.erase(it);
    report_failure(target, error);
  }

  void report_failure(const endpoint& target, const sys_error& error) {
    ++engine_->stats().connect_failures;
    if (on_connect_failed_) {
      on_connect_failed_(*this, target, error);
    } else {
      log(log_level::warning, "{}", error.what());
    }
  }

  void closed(connection& c, close_reason why) {
    if (user_on_close_) user_on_close_(c, why);
    auto it = targets_.find(c.id());
    if (it == targets_.end()) return;
    target_state lost = std::move(it->second);
    targets_.erase(it);
    if (shutting_down_ || why == close_reason::local || why == close_reason::server_stopping)
      return;
    // Lost: connect again after a back-off that grows with each loss in a row (a server
    // that accepts and drops at once must not get a connect storm), counted afresh once a
    // connection has lasted longer than the longest back-off.
    const bool lasted = loop_.now() - lost.connected_at > options_.connecting.backoff_max;
    const int losses = lasted ? 0 : lost.losses + 1;
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    auto delay = backoff_delay(options_.connecting, losses, unit(rng_));
    log(log_level::info, "{} lost ({}): reconnecting in {} ms", lost.target.to_uri(),
        to_string(why), delay.count());
    const std::uint64_t key = next_key_++;
    auto& p = pending_[key];
    p.target = lost.target;
    p.losses = losses;
    p.timer = loop_.run_after(delay, [this, key] {
      auto found = pending_.find(key);
      if (found == pending_.end()) return;
      endpoint again = std::move(found->second.target);
      const int lost_in_a_row = found->second.losses;
      pending_.erase(found);
      start_connect(again, lost_in_a_row);
    });
  }

  // A connector whose callback is running: destroyed after the dispatch.
  void retire(std::unique_ptr<connector> c) {
    if (!c) return;
    loop_.defer([dead = std::shared_ptr<connector>(std::move(c))] {});
  }

  event_loop& loop_;
  client_options options_;
  std::function<void(connection&, close_reason)> user_on_close_;
  std::function<void(stream_client&, const endpoint&, const sys_error&)> on_connect_failed_;
  std::unique_ptr<stream_engine> engine_;
  std::unordered_map<std::uint64_t, pending> pending_;
  std::unordered_map<conn_id, target_state> targets_;  // reconnect: where each came from
  std::optional<target_state> adopting_;               // during adopt(): its on_connect
  std::uint64_t next_key_ = 1;
  std::mt19937_64 rng_;
  bool shutting_down_ = false;
};

}  // namespace
}  // namespace detail

std::unique_ptr<stream_client> make_stream_client(event_loop& loop, client_options options,
                                                  stream_handler handler) {
  return std::make_unique<detail::client>(loop, options, std::move(handler));
}

void run_until_done(event_loop& loop, stream_client& client) {
  while ((client.stats().open > 0 || client.connecting() > 0) && !loop.stopping())
    loop.run_once(std::chrono::milliseconds(-1));
}

}  // namespace netkit
