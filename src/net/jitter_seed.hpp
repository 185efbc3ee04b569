// Seeds for the back-off jitter of connectors and clients that were given none.
#pragma once

#include <cstdint>

namespace netkit::detail {

// A fresh, unpredictable seed, cheap enough to take once per connect: std::random_device is
// built once per thread, not per call (building one runs CPUID, a trap to the hypervisor
// in a VM: 20 % of a churning client's CPU here), and a forked child draws other seeds
// than its parent.
std::uint64_t fresh_jitter_seed();

}  // namespace netkit::detail
