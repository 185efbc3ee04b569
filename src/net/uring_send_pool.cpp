#include "net/uring_send_pool.hpp"

#include <new>

namespace netkit::detail {

namespace {
// Bounds of the spare pool: a buffer larger than this is not kept, nor more than this
// many bytes or buffers in all.
constexpr std::size_t max_spare_buffer = 1 << 20;
constexpr std::size_t max_spare_bytes = 16 << 20;
constexpr std::size_t max_spare_count = 4096;
}  // namespace

std::vector<std::byte> uring_send_pool::take() {
  if (spare_.empty()) return {};
  auto v = std::move(spare_.back());
  spare_.pop_back();
  spare_bytes_ -= v.capacity();
  return v;
}

void uring_send_pool::give(std::vector<std::byte>& v) noexcept {
  const std::size_t capacity = v.capacity();
  if (capacity == 0) return;
  v.clear();
  if (capacity <= max_spare_buffer && spare_bytes_ + capacity <= max_spare_bytes &&
      spare_.size() < max_spare_count && !closed_) {
    try {
      spare_.push_back(std::move(v));
      spare_bytes_ += capacity;
    } catch (const std::bad_alloc&) {
    }
  }
  std::vector<std::byte>().swap(v);
}

void uring_send_pool::trim() noexcept {
  std::vector<std::vector<std::byte>>().swap(spare_);
  spare_bytes_ = 0;
}

}  // namespace netkit::detail
