#include "event/uring_features.hpp"

#include <liburing.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <optional>

#include <fmt/format.h>

#include "netkit/error.hpp"
#include "netkit/socket.hpp"

namespace netkit::detail {

namespace {

// A scratch ring, torn down (with whatever is still in flight) when the probe ends.
class scratch_ring {
 public:
  explicit scratch_ring(std::uint32_t flags) {
    io_uring_params p{};
    p.flags = flags;
    rc_ = io_uring_queue_init_params(8, &ring_, &p);
    features_ = p.features;
  }
  ~scratch_ring() {
    if (rc_ == 0) io_uring_queue_exit(&ring_);
  }
  scratch_ring(const scratch_ring&) = delete;
  scratch_ring& operator=(const scratch_ring&) = delete;

  int rc() const noexcept { return rc_; }
  std::uint32_t features() const noexcept { return features_; }
  io_uring* get() noexcept { return &ring_; }

  // Submits what is queued and waits (at most 1 s) for the completion of `user_data`:
  // its result and flags, or nothing.
  bool complete(std::uint64_t user_data, int& result, std::uint32_t& flags) {
    __kernel_timespec ts{1, 0};
    io_uring_cqe* cqe = nullptr;
    for (int round = 0; round < 4; ++round) {
      if (io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr) < 0) return false;
      unsigned head;
      bool found = false;
      unsigned seen = 0;
      io_uring_for_each_cqe(&ring_, head, cqe) {
        ++seen;
        if (!found && cqe->user_data == user_data) {
          result = cqe->res;
          flags = cqe->flags;
          found = true;
        }
      }
      io_uring_cq_advance(&ring_, seen);
      if (found) return true;
    }
    return false;
  }

 private:
  io_uring ring_{};
  int rc_ = -1;
  std::uint32_t features_ = 0;
};

// A one-buffer provided-buffer ring in group `bgid`, registered with `flags`.
class scratch_buffers {
 public:
  scratch_buffers(io_uring* ring, std::uint16_t bgid, std::uint16_t flags)
      : ring_(ring), bgid_(bgid) {
    mem_ = ::mmap(nullptr, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem_ == MAP_FAILED) return;
    io_uring_buf_reg reg{};
    reg.ring_addr = reinterpret_cast<std::uintptr_t>(mem_);
    reg.ring_entries = 1;
    reg.bgid = bgid;
    reg.pad = flags;  // the kernel's `flags` field (named pad in liburing 2.3's headers)
    registered_ = io_uring_register_buf_ring(ring, &reg, 0) == 0;
    if (!registered_) return;
    auto* br = static_cast<io_uring_buf_ring*>(mem_);
    io_uring_buf_ring_init(br);
    io_uring_buf_ring_add(br, data_, sizeof data_, 0, io_uring_buf_ring_mask(1), 0);
    io_uring_buf_ring_advance(br, 1);
  }
  ~scratch_buffers() {
    if (registered_) io_uring_unregister_buf_ring(ring_, bgid_);
    if (mem_ != MAP_FAILED) ::munmap(mem_, page);
  }
  scratch_buffers(const scratch_buffers&) = delete;
  scratch_buffers& operator=(const scratch_buffers&) = delete;

  bool registered() const noexcept { return registered_; }

 private:
  static constexpr std::size_t page = 4096;
  io_uring* ring_;
  std::uint16_t bgid_;
  void* mem_ = MAP_FAILED;
  bool registered_ = false;
  char data_[64]{};
};

bool probe_multishot_recv(scratch_ring& ring, std::uint16_t bgid) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return false;
  unique_fd a(sv[0]), b(sv[1]);
  auto* sqe = io_uring_get_sqe(ring.get());
  if (!sqe) return false;
  io_uring_prep_recv_multishot(sqe, a.get(), nullptr, 0, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = bgid;
  sqe->user_data = 1;
  if (::write(b.get(), "x", 1) != 1) return false;
  int result = 0;
  std::uint32_t flags = 0;
  // An older kernel refuses the flag (-EINVAL) or completes once without F_MORE.
  return ring.complete(1, result, flags) && result == 1 && (flags & IORING_CQE_F_MORE);
}

bool probe_multishot_accept(scratch_ring& ring) {
  unique_fd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!listener) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  // Autobind: the kernel picks a free abstract name (nothing on the filesystem).
  if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(sa_family_t)) != 0 ||
      ::listen(listener.get(), 1) != 0)
    return false;
  socklen_t len = sizeof addr;
  if (::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) return false;
  auto* sqe = io_uring_get_sqe(ring.get());
  if (!sqe) return false;
  io_uring_prep_multishot_accept(sqe, listener.get(), nullptr, nullptr, SOCK_CLOEXEC);
  sqe->user_data = 2;
  unique_fd client(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!client || ::connect(client.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0)
    return false;
  int result = -1;
  std::uint32_t flags = 0;
  bool ok = ring.complete(2, result, flags) && result >= 0 && (flags & IORING_CQE_F_MORE);
  if (result >= 0) ::close(result);
  return ok;
}

uring_features probe() {
  uring_features f;
  // The same first choice as the backend: if it fails, the backend falls back too.
  std::optional<scratch_ring> scratch;
  scratch.emplace(IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN);
  f.defer_taskrun = scratch->rc() == 0;
  if (!f.defer_taskrun) {
    scratch.reset();
    scratch.emplace(0);
  }
  scratch_ring& ring = *scratch;
  if (ring.rc() != 0) {
    f.problem = fmt::format("io_uring_queue_init: {}", errno_text(-ring.rc()));
    return f;
  }
  f.available = true;
  f.recv_bundles = (ring.features() & abi_feat_recvsend_bundle) != 0;
  if (auto* probe = io_uring_get_probe_ring(ring.get())) {
    f.send_zerocopy = io_uring_opcode_supported(probe, IORING_OP_SEND_ZC) != 0;
    io_uring_free_probe(probe);
  }
  {
    scratch_buffers inc(ring.get(), 1, abi_pbuf_ring_inc);
    f.incremental_buffers = inc.registered();
  }
  scratch_buffers buffers(ring.get(), 0, 0);
  f.buffer_rings = buffers.registered();
  if (f.buffer_rings) f.multishot_recv = probe_multishot_recv(ring, 0);
  f.multishot_accept = probe_multishot_accept(ring);
  return f;
}

}  // namespace

std::string uring_features::describe() const {
  if (!available) return fmt::format("io_uring unavailable: {}", problem);
  struct item {
    bool present;
    std::string_view name;
  };
  const item items[] = {
      {defer_taskrun, "DEFER_TASKRUN"},
      {multishot_accept, "multishot accept"},
      {multishot_recv, "multishot recv"},
      {buffer_rings, "provided-buffer rings"},
      {incremental_buffers, "incremental buffers"},
      {recv_bundles, "recv bundles"},
      {send_zerocopy, "SEND_ZC"},
  };
  std::string has, lacks;
  for (const auto& i : items) {
    auto& list = i.present ? has : lacks;
    list += fmt::format("{}{}", list.empty() ? "" : ", ", i.name);
  }
  std::string out = fmt::format("this kernel gives {}", has.empty() ? "none of the features" : has);
  if (!lacks.empty()) out += fmt::format("; lacks {}", lacks);
  return out;
}

const uring_features& probe_uring_features() {
  static const uring_features probed = probe();
  return probed;
}

}  // namespace netkit::detail
