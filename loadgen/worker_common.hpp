// What the stream, churn and datagram workers share: the request bytes, the measuring
// window, the arrival schedule of the open-loop mode and its precise timer.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <random>
#include <string_view>
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

// Intended send times of the open-loop mode: a Poisson process (exponential gaps) or even
// spacing at `rate` per second, from `start`.
class arrivals {
 public:
  arrivals(spacing kind, double rate, std::uint64_t seed, clock::time_point start)
      : kind_(kind), mean_gap_ns_(1e9 / rate), rng_(seed), next_(start) {}
  clock::time_point next() const noexcept { return next_; }
  void advance() {
    double gap = kind_ == spacing::uniform
                     ? mean_gap_ns_
                     : std::exponential_distribution<double>(1.0)(rng_) * mean_gap_ns_;
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

// A timer on the loop, to the microsecond (the loop's own timers wait in milliseconds,
// too coarse for send times tens of microseconds apart). A wait longer than spin_window
// sleeps on a timerfd until spin_window before the time; the rest, and every shorter wait,
// is spent in loop turns that do not block. Programming the timer for each send would cost
// a system call and, in a VM, a trap to the hypervisor: a third of the generator's CPU at
// 60,000 requests/s, which left it too busy to read replies when they came, so its own
// queueing set the latencies it reported. A wake-up from a timer also comes tens of
// microseconds late there. Spinning keeps the generator's CPU busy between sends, which is
// what it has its own CPU for. Loop thread only.
class precise_timer final : private io_handler {
 public:
  static constexpr auto spin_window = std::chrono::microseconds(200);

  precise_timer(event_loop& loop, std::function<void()> fire);
  ~precise_timer();
  precise_timer(const precise_timer&) = delete;
  precise_timer& operator=(const precise_timer&) = delete;
  // Calls fire() once, at `at` or as soon after as the loop comes round; replaces an
  // earlier arm() not yet fired.
  void arm(clock::time_point at);
  // Loop turns spent waiting without blocking, and timerfd sleeps, since construction.
  std::uint64_t spins() const noexcept { return spins_; }
  std::uint64_t sleeps() const noexcept { return sleeps_; }

 private:
  void on_io(std::uint32_t events) override;
  void wait_for_due(clock::time_point now);
  event_loop& loop_;
  unique_fd fd_;
  watch_id watch_;
  std::function<void()> fire_;
  clock::time_point due_{};
  bool armed_ = false;     // fire() is owed at due_
  bool spinning_ = false;  // a non-blocking turn is queued (call_again)
  std::uint64_t spins_ = 0, sleeps_ = 0;
};

// CPU time (user + system) of the calling thread so far.
double thread_cpu_seconds() noexcept;

// Publishes a worker's figures for the progress line every 200 ms, and once at the end.
void publish(worker_progress& progress, const bench_result& result);

// What every worker has: its loop, the request bytes, the result, and the window — all
// workers start traffic at the same instant, measure after the warm-up, stop at the end.
// Loop thread only, except the constructor.
class worker_base {
 public:
  worker_base(const bench_config& config, const worker_plan& plan, phase_sync& sync,
              worker_progress& progress);
  virtual ~worker_base() { sync_.leave(loop_); }
  worker_base(const worker_base&) = delete;
  worker_base& operator=(const worker_base&) = delete;

  event_loop& loop() noexcept { return loop_; }
  const bench_config& config() const noexcept { return config_; }
  std::span<const std::byte> request() const noexcept { return request_; }
  bench_result& result() noexcept { return result_; }
  bool started() const noexcept { return started_; }
  bool finished() const noexcept { return finished_; }
  bool running() const noexcept { return started_ && !finished_; }
  // One reply whole: a message, and its latency.
  void record(clock::duration latency) {
    ++result_.messages;
    result_.latency.record(static_cast<std::uint64_t>(
        std::max<std::int64_t>(0, std::chrono::nanoseconds(latency).count())));
  }

 protected:
  // Reports ready, waits for the common start, then runs the loop through the window:
  // begin() at the start, the counters cleared at the warm-up's end, finish() at the end
  // (or earlier: a stop from outside, or finish() called by the worker).
  bench_result run_window(const std::function<void()>& begin);
  // Ends the run now (also: the target went away); on_finish() first.
  void finish();
  virtual void on_finish() {}
  // With --mark-window, the first worker writes `line` to stderr.
  void mark(std::string_view line) const noexcept;
  // The runner called the run off (a stop signal, another worker's failure).
  bool stopped_from_outside() const noexcept { return sync_.stopped(); }

  const worker_plan plan_;

 private:
  const bench_config& config_;
  phase_sync& sync_;
  worker_progress& progress_;
  event_loop loop_;
  std::vector<std::byte> request_;
  bench_result result_;
  bool started_ = false, measuring_ = false, finished_ = false;
  clock::time_point measure_from_{}, end_{};
  double cpu_at_start_ = 0;
};

// The worker of type W (a worker_base with run()) for this plan, run to its end.
template <typename W>
bench_result run_as(const bench_config& config, const worker_plan& plan, phase_sync& sync,
                    worker_progress& progress) {
  W worker(config, plan, sync, progress);
  return worker.run();
}

// Streams: rr/pingpong/rate (stream_worker.cpp); churn: connect/exchange/close
// (churn_worker.cpp); datagram sockets: rr/pingpong/rate (dgram_worker.cpp).
using worker_fn = bench_result (*)(const bench_config&, const worker_plan&, phase_sync&,
                                   worker_progress&);
extern const worker_fn run_stream_worker;
extern const worker_fn run_churn_worker;
extern const worker_fn run_dgram_worker;

}  // namespace netkit::loadgen::detail
