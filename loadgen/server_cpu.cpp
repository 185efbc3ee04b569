#include "server_cpu.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "netkit/error.hpp"
#include "netkit/inspect/process_stat.hpp"

namespace netkit::loadgen {

server_cpu_meter::server_cpu_meter(pid_t pid) : pid_(pid) {
  if (pid <= 0 || !inspect::read_process_stat(pid))
    throw usage_error(fmt::format("--server-pid {}: no such process to measure", pid));
}

server_cpu_meter::~server_cpu_meter() {
  finish();
}

void server_cpu_meter::measure(clock::time_point from, clock::time_point to) {
  thread_ = std::thread([this, from, to] {
    std::unique_lock lock(mutex_);
    try {
      if (wake_.wait_until(lock, from, [this] { return finishing_; })) return;
      first_ = inspect::process_tree_cpu_seconds(pid_);
      first_sleeps_ = inspect::voluntary_switches(pid_);
      wake_.wait_until(lock, to, [this] { return finishing_; });
      last_ = inspect::process_tree_cpu_seconds(pid_);
      last_sleeps_ = inspect::voluntary_switches(pid_);
    } catch (const std::exception&) {
      first_.reset();  // not measured (reported as null), never the end of the run
    }
  });
}

std::optional<double> server_cpu_meter::finish() {
  {
    std::lock_guard lock(mutex_);
    finishing_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (!first_ || !last_) return std::nullopt;
  return *last_ - *first_;
}

std::optional<std::uint64_t> server_cpu_meter::sleeps() const {
  // Not measured, rather than too low, where a thread ended and took its count along (one
  // that started in the window slept only in it: counted whole).
  if (!first_ || !last_ || !first_sleeps_ || !last_sleeps_ ||
      !std::includes(last_sleeps_->threads.begin(), last_sleeps_->threads.end(),
                     first_sleeps_->threads.begin(), first_sleeps_->threads.end()) ||
      last_sleeps_->voluntary < first_sleeps_->voluntary)
    return std::nullopt;
  return last_sleeps_->voluntary - first_sleeps_->voluntary;
}

}  // namespace netkit::loadgen
