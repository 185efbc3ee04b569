#include "net/jitter_seed.hpp"

#include <unistd.h>

#include <random>

namespace netkit::detail {

std::uint64_t fresh_jitter_seed() {
  thread_local std::mt19937_64 seeds = [] {
    std::random_device device;
    std::seed_seq seq{device(), device(), device(), device()};
    return std::mt19937_64(seq);
  }();
  // A forked child inherits the generator's state: the pid keeps its seeds apart from its
  // parent's and siblings' (getpid is a plain system call, no trap).
  return seeds() ^ (static_cast<std::uint64_t>(::getpid()) * 0x9e3779b97f4a7c15ull);
}

}  // namespace netkit::detail
