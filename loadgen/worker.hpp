// One worker: an event loop on its own thread with its share of the connections. What
// workers share with the runner that starts them: the phase barrier (every worker connects,
// reports ready, and all start traffic at the same instant), a way to stop them all early,
// and the counters the progress line reads.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <vector>

#include "config.hpp"
#include "histogram.hpp"
#include "netkit/event/loop.hpp"
#include "result.hpp"

namespace netkit::loadgen {

using clock = std::chrono::steady_clock;

// What one worker does: its share of the configuration.
struct worker_plan {
  std::size_t index = 0;  // among all workers of all processes
  std::size_t connections = 0;
  std::size_t idle = 0;
  double rate = 0;  // rate mode: this worker's messages per second
  std::uint64_t seed = 0;
};

// Safe from any thread.
class phase_sync {
 public:
  explicit phase_sync(std::size_t workers) : workers_(workers) {}
  // A worker: its connections are up (or given up on); blocks until start() or stop_all(),
  // and returns the instant traffic starts (nullopt: stopped).
  std::optional<clock::time_point> ready_and_wait(event_loop& loop);
  // A worker whose loop is about to go: stop_all() no longer reaches it.
  void leave(event_loop& loop);
  // The runner: blocks until every worker is ready (or `deadline`); false if not all were.
  bool wait_ready(clock::time_point deadline);
  void start(clock::time_point at);
  // Stops every worker's loop (and releases those still waiting): partial results.
  void stop_all();
  bool stopped() const noexcept { return stopped_.load(); }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::size_t workers_;
  std::size_t ready_ = 0;
  std::optional<clock::time_point> start_;
  std::vector<event_loop*> loops_;
  std::atomic<bool> stopped_{false};
};

// A worker's figures so far, for the progress line; published by its loop every 200 ms.
struct worker_progress {
  std::atomic<std::uint64_t> messages{0};
  std::atomic<std::uint64_t> bytes{0};
  std::atomic<std::uint64_t> errors{0};
  std::mutex mutex;
  histogram latency;  // a copy, under mutex
};

// Runs one worker to the end of its window (or stop_all, or the loss of its target) on the
// calling thread. Stream targets: rr, pingpong and rate on stream_client connections, churn
// on bare connectors; datagram targets: rr, pingpong and rate on connected sockets.
bench_result run_worker(const bench_config& config, const worker_plan& plan, phase_sync& sync,
                        worker_progress& progress);

}  // namespace netkit::loadgen
