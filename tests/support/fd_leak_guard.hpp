// End-of-test leak check: the descriptors this process has open and its live child
// processes are counted at construction and must be back to the same numbers at
// destruction (EXPECT, so the test reports every leak, not just the first).
#pragma once

#include <chrono>

namespace netkit::test {

// Children of this process that have not been reaped (every thread's children).
int live_child_count();

class fd_leak_guard {
 public:
  fd_leak_guard();
  ~fd_leak_guard();
  fd_leak_guard(const fd_leak_guard&) = delete;
  fd_leak_guard& operator=(const fd_leak_guard&) = delete;

  int baseline_fds() const noexcept { return fds_; }

 private:
  int fds_;
  int children_;
};

}  // namespace netkit::test
