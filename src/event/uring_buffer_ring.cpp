#include "event/uring_buffer_ring.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>

#include <fmt/format.h>

#include "netkit/error.hpp"

namespace netkit::detail {

namespace {
void* map_anonymous(std::size_t bytes, std::string_view what) {
  // Anonymous pages are committed only when first touched, so an idle server pays only
  // for the buffers the kernel has actually used.
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw_sys_error("mmap", what);
  return p;
}
}  // namespace

uring_buffer_ring::uring_buffer_ring(uring_backend& backend, unsigned count, std::size_t size,
                                     unsigned initial)
    : backend_(backend), count_(count), size_(size), group_(backend.allocate_buffer_group()) {
  if (count == 0 || count > 32768 || (count & (count - 1)) != 0)
    throw usage_error(
        fmt::format("io_uring buffer ring: {} buffers (need a power of two up "
                    "to 32768)",
                    count));
  ring_bytes_ = sizeof(io_uring_buf) * count;
  ring_ = static_cast<io_uring_buf_ring*>(map_anonymous(ring_bytes_, "io_uring buffer ring"));
  try {
    buffers_ = static_cast<std::byte*>(map_anonymous(count * size, "io_uring receive buffers"));
  } catch (...) {
    ::munmap(ring_, ring_bytes_);
    throw;
  }
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<std::uintptr_t>(ring_);
  reg.ring_entries = count;
  reg.bgid = group_;
  if (int rc = io_uring_register_buf_ring(&backend_.ring(), &reg, 0); rc < 0) {
    ::munmap(buffers_, count * size);
    ::munmap(ring_, ring_bytes_);
    throw sys_error(-rc, "io_uring_register_buf_ring",
                    "(provided-buffer rings need Linux 5.19 or later; use --model epoll instead)");
  }
  io_uring_buf_ring_init(ring_);
  posted_ = 0;
  const unsigned first = std::clamp(initial, 1u, count);
  const int mask = io_uring_buf_ring_mask(count);
  for (unsigned id = 0; id < first; ++id)
    io_uring_buf_ring_add(ring_, buffers_ + std::size_t{id} * size, static_cast<unsigned>(size),
                          static_cast<unsigned short>(id), mask, static_cast<int>(id));
  io_uring_buf_ring_advance(ring_, static_cast<int>(first));
  posted_ = first;
}

bool uring_buffer_ring::grow() noexcept {
  if (posted_ == count_) return false;
  const unsigned more = std::min(posted_, count_ - posted_);
  const int mask = io_uring_buf_ring_mask(count_);
  for (unsigned i = 0; i < more; ++i) {
    const unsigned id = posted_ + i;
    io_uring_buf_ring_add(ring_, buffers_ + std::size_t{id} * size_, static_cast<unsigned>(size_),
                          static_cast<unsigned short>(id), mask, static_cast<int>(i));
  }
  io_uring_buf_ring_advance(ring_, static_cast<int>(more));
  posted_ += more;
  return true;
}

void uring_buffer_ring::trim() noexcept {
  ::madvise(buffers_, std::size_t{posted_} * size_, MADV_DONTNEED);
}

uring_buffer_ring::~uring_buffer_ring() {
  io_uring_unregister_buf_ring(&backend_.ring(), group_);
  ::munmap(buffers_, count_ * size_);
  ::munmap(ring_, ring_bytes_);
}

void uring_buffer_ring::recycle(unsigned id) noexcept {
  io_uring_buf_ring_add(ring_, buffers_ + std::size_t{id} * size_, static_cast<unsigned>(size_),
                        static_cast<unsigned short>(id), io_uring_buf_ring_mask(count_), 0);
  io_uring_buf_ring_advance(ring_, 1);
}

}  // namespace netkit::detail
