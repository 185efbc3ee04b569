#include "net/jitter_seed.hpp"

#include <random>

namespace netkit::detail {

std::uint64_t fresh_jitter_seed() {
  thread_local std::mt19937_64 seeds = [] {
    std::random_device device;
    std::seed_seq seq{device(), device(), device(), device()};
    return std::mt19937_64(seq);
  }();
  return seeds();
}

}  // namespace netkit::detail
