// Build-dependent scaling and deadlines shared by every test.
#pragma once

#include <chrono>
#include <cstddef>
#include <thread>

namespace netkit::test {

using clock = std::chrono::steady_clock;
using deadline = clock::time_point;

inline deadline deadline_after(clock::duration d) {
  return clock::now() + d;
}

// True in ASan/UBSan/TSan builds, where everything runs several times slower; tests
// shrink volumes (never the behaviour checked) through scaled().
inline constexpr bool sanitized_build =
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || defined(NETKIT_SANITIZED)
    true;
#else
    false;
#endif

// `release` in optimised builds, `sanitized` under sanitizers.
inline constexpr std::size_t scaled(std::size_t release, std::size_t sanitized) {
  return sanitized_build ? sanitized : release;
}

// Time budgets stretch under sanitizers (ctest timeouts are multiplied the same way).
inline constexpr clock::duration stretch(clock::duration d) {
  return sanitized_build ? d * 3 : d;
}

// Polls `done` every 10 ms until it holds or `until`; returns its last answer. For
// anything the kernel or another process does after the event the test waits on.
template <typename Check>
bool eventually(Check done, deadline until) {
  for (;;) {
    if (done()) return true;
    if (clock::now() >= until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace netkit::test
