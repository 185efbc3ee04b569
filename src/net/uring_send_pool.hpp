// Output buffers of the completion driver, recycled between connections: steady
// request/response traffic allocates nothing, an idle connection holds no buffer, and the
// pool itself stays bounded (and is emptied when the engine goes quiet).
#pragma once

#include <cstddef>
#include <vector>

namespace netkit::detail {

// Loop thread only.
class uring_send_pool {
 public:
  // A buffer with capacity if one is spare, else an empty vector.
  std::vector<std::byte> take();
  // Keeps v's storage for reuse (within bounds) and leaves v empty with no capacity.
  void give(std::vector<std::byte>& v) noexcept;
  // Frees every spare buffer.
  void trim() noexcept;
  // From now on give() frees instead of keeping (engine teardown).
  void close() noexcept { closed_ = true; }

 private:
  std::vector<std::vector<std::byte>> spare_;
  std::size_t spare_bytes_ = 0;
  bool closed_ = false;
};

}  // namespace netkit::detail
