// Driving an event_loop from a test: run turns until a condition holds, with a deadline.
#pragma once

#include <chrono>
#include <span>
#include <string>

#include "netkit/event/loop.hpp"
#include "support/test_env.hpp"

namespace netkit::test {

// Runs `loop` until `done()` or `limit` has passed; false on the deadline.
template <typename Pred>
bool run_until(event_loop& loop, Pred done,
               clock::duration limit = stretch(std::chrono::seconds(5))) {
  auto until = deadline_after(limit);
  while (!done()) {
    if (clock::now() > until) return false;
    loop.run_once(std::chrono::milliseconds(10));
  }
  return true;
}

inline std::string text_of(std::span<const std::byte> b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

}  // namespace netkit::test
