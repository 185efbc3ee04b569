// What the stream, churn and datagram workers share: the request bytes, the measuring
// window, the arrival schedule of the open-loop mode and its precise timer.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <random>
#include <vector>

#include "config.hpp"
#include "netkit/event/loop.hpp"
#include "netkit/fd.hpp"
#include "result.hpp"
#include "worker.hpp"

namespace netkit::loadgen::detail {

// One request as it goes on the wire: framed with the codec (echo) or a sockperf message
// that asks for a pong.
std::vector<std::byte> request_bytes(const bench_config& config);

// The window: warm-up from `start`, then measuring for the duration. The worker's loop
// calls tick() from a periodic timer; results before the warm-up's end are discarded.
class window {
 public:
  window(const bench_config& config, clock::time_point start)
      : measure_from_(start + config.warmup), end_(measure_from_ + config.duration) {}
  clock::time_point measure_from() const noexcept { return measure_from_; }
  clock::time_point end() const noexcept { return end_; }

 private:
  clock::time_point measure_from_;
  clock::time_point end_;
};

// Intended send times of the open-loop mode: a Poisson process (exponential gaps) or even
// spacing at `rate` per second, from `start`.
class arrivals {
 public:
  arrivals(spacing kind, double rate, std::uint64_t seed, clock::time_point start)
      : kind_(kind), mean_gap_ns_(1e9 / rate), rng_(seed), next_(start) {}
  clock::time_point next() const noexcept { return next_; }
  void advance() {
    double gap = kind_ == spacing::uniform ? mean_gap_ns_
                                           : std::exponential_distribution<double>(1.0)(rng_) *
                                                 mean_gap_ns_;
    carry_ += gap;
    const auto whole = static_cast<std::int64_t>(carry_);
    carry_ -= static_cast<double>(whole);
    next_ += std::chrono::nanoseconds(whole);
  }

 private:
  spacing kind_;
  double mean_gap_ns_;
  std::mt19937_64 rng_;
  clock::time_point next_;
  double carry_ = 0;
};

// A timerfd on the loop, to the nanosecond (the loop's own timers wait in milliseconds,
// too coarse for send times tens of microseconds apart). Loop thread only.
class precise_timer final : private io_handler {
 public:
  precise_timer(event_loop& loop, std::function<void()> fire);
  ~precise_timer();
  precise_timer(const precise_timer&) = delete;
  precise_timer& operator=(const precise_timer&) = delete;
  void arm(clock::time_point at);

 private:
  void on_io(std::uint32_t events) override;
  event_loop& loop_;
  unique_fd fd_;
  watch_id watch_;
  std::function<void()> fire_;
};

// Publishes a worker's figures for the progress line every 200 ms, and once at the end.
void publish(worker_progress& progress, const bench_result& result);

// Streams and datagram sockets: rr/pingpong/rate. Churn: connect/exchange/close.
bench_result run_stream_worker(const bench_config& config, const worker_plan& plan,
                               phase_sync& sync, worker_progress& progress);
bench_result run_churn_worker(const bench_config& config, const worker_plan& plan,
                              phase_sync& sync, worker_progress& progress);
bench_result run_dgram_worker(const bench_config& config, const worker_plan& plan,
                              phase_sync& sync, worker_progress& progress);

}  // namespace netkit::loadgen::detail
