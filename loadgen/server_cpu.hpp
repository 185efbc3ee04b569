// The target server's CPU time over the measured window (`netkit bench --server-pid`):
// the process and all its descendants (a forking server's children, a prefork pool), so
// a benchmark script gets server CPU per message from the same window the messages were
// counted in, without a marker protocol of its own. Also how often the server process
// slept over that window: on loopback nearly each sleep is a wake-up the client pays for.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <thread>

#include "netkit/inspect/process_stat.hpp"

namespace netkit::loadgen {

class server_cpu_meter {
 public:
  using clock = std::chrono::steady_clock;
  // Throws usage_error if there is no process `pid` to measure.
  explicit server_cpu_meter(pid_t pid);
  ~server_cpu_meter();
  server_cpu_meter(const server_cpu_meter&) = delete;
  server_cpu_meter& operator=(const server_cpu_meter&) = delete;

  // Reads the tree's CPU time at `from` and at `to`, on a thread of its own.
  void measure(clock::time_point from, clock::time_point to);
  // The seconds spent between the two readings; a run that ended before `to` is read
  // now. nullopt if the window never began or the server was gone at either reading.
  std::optional<double> finish();
  // After finish(): the server process's voluntary context switches (its threads' sleeps;
  // not its children's) between the two readings; nullopt where the CPU time is, and
  // where a thread ended in between (its count would be missing).
  std::optional<std::uint64_t> sleeps() const;
  pid_t pid() const noexcept { return pid_; }

 private:
  pid_t pid_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool finishing_ = false;
  std::optional<double> first_, last_;
  std::optional<inspect::switch_count> first_sleeps_, last_sleeps_;
  std::thread thread_;
};

}  // namespace netkit::loadgen
