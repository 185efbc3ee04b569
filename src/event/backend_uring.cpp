// io_uring(7) backend. user_data says who a completion is for:
//   low 3 bits 0..6  an operation: the rest is a completion_handler*, the bits its op tag;
//   low 3 bits 7     a readiness watch: descriptor in the high 32 bits, the watch's serial
//                    in bits 3..31, so completions of a cancelled watch are recognised.
// user_data 0 (cancel requests) is dropped.
#include "event/backend_uring.hpp"

#include "event/backends.hpp"

#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <fstream>

#include <fmt/format.h>

#include "netkit/error.hpp"

namespace netkit::detail {

namespace {

constexpr std::uint64_t poll_tag = 7;
constexpr std::uint32_t serial_mask = (1u << 29) - 1;
// Submission queue: one turn's worth of accept/recv/send/cancel requests; a fuller queue is
// submitted early by sqe(). The completion queue is larger because multishot requests
// post many completions per submission (the kernel keeps overflow on a backlog, but that
// path is slow).
constexpr unsigned sq_entries = 1024;
constexpr unsigned cq_entries = 8192;
// Completions taken from the ring per peek; and per wait(), so one turn stays bounded.
constexpr unsigned peek_batch = 256;
constexpr unsigned completions_per_wait = 4096;

std::uint64_t poll_user_data(int fd, std::uint32_t serial) noexcept {
  return (std::uint64_t(static_cast<std::uint32_t>(fd)) << 32) |
         (std::uint64_t(serial & serial_mask) << 3) | poll_tag;
}

unsigned to_poll_mask(std::uint32_t interest) noexcept {
  unsigned mask = 0;
  if (interest & io_read) mask |= POLLIN | POLLRDHUP;
  if (interest & io_write) mask |= POLLOUT;
  return mask;
}

std::uint32_t from_poll_mask(unsigned mask) noexcept {
  std::uint32_t got = 0;
  if (mask & (POLLIN | POLLRDHUP | POLLPRI)) got |= io_read;
  if (mask & POLLOUT) got |= io_write;
  if (mask & POLLRDHUP) got |= io_hangup;  // as epoll: the peer's FIN came with this wake-up
  if (mask & (POLLHUP | POLLERR)) got |= io_hangup | io_read | io_write;
  return got;
}

// "0" (allowed), "1" (privileged or io_uring_group only), "2" (disabled); empty if the
// sysctl does not exist (kernels before 6.6).
std::string io_uring_disabled_sysctl() {
  std::ifstream in("/proc/sys/kernel/io_uring_disabled");
  std::string value;
  if (in) in >> value;
  return value;
}

[[noreturn]] void refuse(int err, std::string_view what) {
  std::string why = fmt::format("{} (io_uring unavailable; use --model epoll instead", what);
  if (auto sysctl = io_uring_disabled_sysctl(); !sysctl.empty() && sysctl != "0")
    why += fmt::format("; kernel.io_uring_disabled = {}", sysctl);
  why += ")";
  throw sys_error(err, "io_uring_queue_init", why);
}

}  // namespace

uring_backend::uring_backend() {
  if (io_uring_disabled_sysctl() == "2") refuse(EPERM, "refused");
  // Best first. SINGLE_ISSUER + DEFER_TASKRUN: completions are posted only when this
  // thread enters the kernel to wait, so no interrupts of the loop thread and one batch
  // per turn. R_DISABLED defers choosing "the" issuer thread until the first wait().
  // SUBMIT_ALL: one bad SQE does not stop the rest of the batch.
  const std::uint32_t attempts[] = {
      IORING_SETUP_R_DISABLED | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
          IORING_SETUP_SUBMIT_ALL,
      IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL,
      0,
  };
  int rc = -EINVAL;
  for (auto flags : attempts) {
    io_uring_params params{};
    params.flags = flags | IORING_SETUP_CQSIZE;
    params.cq_entries = cq_entries;
    rc = io_uring_queue_init_params(sq_entries, &ring_, &params);
    if (rc == 0) {
      setup_flags_ = flags;
      break;
    }
    if (rc != -EINVAL) break;  // EINVAL: this kernel does not know a flag; try fewer
  }
  if (rc < 0) refuse(-rc, "failed");
  enabled_ = (setup_flags_ & IORING_SETUP_R_DISABLED) == 0;
  batch_.reserve(peek_batch);
}

uring_backend::~uring_backend() {
  // Orphaned operations free themselves on completion: let their (already requested)
  // cancellations come back first. Owned operations were waited for by their owners.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  try {
    while (orphans_ > 0 && enabled_ && std::chrono::steady_clock::now() < deadline)
      run_completions(10);
  } catch (const std::exception&) {
  }
  // The kernel cancels whatever is still in flight; no handler is called any more.
  io_uring_queue_exit(&ring_);
}

void uring_backend::enable() {
  if (enabled_) return;
  // liburing 2.3 declares io_uring_enable_rings() but does not export it: register directly.
  if (::syscall(__NR_io_uring_register, ring_.ring_fd, IORING_REGISTER_ENABLE_RINGS, nullptr, 0) !=
      0)
    throw_sys_error("io_uring_register ENABLE_RINGS");
  enabled_ = true;
}

int uring_backend::submit_queued() noexcept {
  if (io_uring_sq_ready(&ring_) == 0) return 0;
  try {
    enable();
  } catch (const sys_error& e) {
    return -e.code().value();
  }
  int rc = io_uring_submit(&ring_);
  return rc < 0 ? rc : 0;
}

io_uring_sqe* uring_backend::sqe() {
  if (auto* s = io_uring_get_sqe(&ring_)) return s;
  enable();
  if (int rc = io_uring_submit(&ring_); rc < 0 && rc != -EBUSY && rc != -EAGAIN)
    throw sys_error(-rc, "io_uring_submit");
  if (auto* s = io_uring_get_sqe(&ring_)) return s;
  throw sys_error(EBUSY, "io_uring_get_sqe", "(submission queue stays full)");
}

void uring_backend::target(io_uring_sqe* sqe, completion_handler* handler, unsigned op) noexcept {
  io_uring_sqe_set_data64(sqe, user_data(handler, op));
}

std::uint64_t uring_backend::user_data(completion_handler* handler, unsigned op) noexcept {
  if (!handler) return 0;
  return reinterpret_cast<std::uintptr_t>(handler) | op;
}

// ---- readiness -----------------------------------------------------------------------

void uring_backend::arm(int fd, watch& w) {
  ++w.serial;
  auto* s = sqe();
  io_uring_prep_poll_multishot(s, fd, to_poll_mask(w.interest));
  io_uring_sqe_set_data64(s, poll_user_data(fd, w.serial));
}

void uring_backend::cancel_poll(int fd, watch& w) {
  auto* s = sqe();
  io_uring_prep_cancel64(s, poll_user_data(fd, w.serial), 0);
  io_uring_sqe_set_data64(s, 0);
  ++w.serial;
}

void uring_backend::add(int fd, std::uint32_t interest, std::uint64_t token) {
  if (fd < 0) throw sys_error(EBADF, "io_uring poll", fmt::format("fd {}", fd));
  if (static_cast<std::size_t>(fd) >= watches_.size()) watches_.resize(fd + 1);
  auto& w = watches_[fd];
  if (w.active) throw sys_error(EEXIST, "io_uring poll", fmt::format("fd {}", fd));
  w.active = true;
  w.token = token;
  w.interest = interest;
  if (interest != 0) arm(fd, w);
}

void uring_backend::modify(int fd, std::uint32_t interest, std::uint64_t token) {
  if (fd < 0 || static_cast<std::size_t>(fd) >= watches_.size() || !watches_[fd].active)
    throw sys_error(ENOENT, "io_uring poll update", fmt::format("fd {}", fd));
  auto& w = watches_[fd];
  w.token = token;  // kept here, not in user_data: a token change needs no new request
  if (w.interest == interest) return;
  if (w.interest != 0) cancel_poll(fd, w);
  w.interest = interest;
  if (interest != 0) arm(fd, w);
}

void uring_backend::remove(int fd) noexcept {
  if (fd < 0 || static_cast<std::size_t>(fd) >= watches_.size() || !watches_[fd].active) return;
  auto& w = watches_[fd];
  try {
    if (w.interest != 0) cancel_poll(fd, w);
  } catch (const std::exception&) {
    // No room to cancel: the bumped serial below still makes its completions stale, and
    // the request ends when the descriptor's file is released.
  }
  ++w.serial;
  w.active = false;
  w.interest = 0;
}

// ---- waiting and dispatch ------------------------------------------------------------

void uring_backend::submit_and_wait(int timeout_ms) {
  enable();
  int rc;
  if (timeout_ms == 0 || io_uring_cq_ready(&ring_) > 0) {
    rc = io_uring_submit_and_get_events(&ring_);
  } else {
    __kernel_timespec ts{};
    ts.tv_sec = timeout_ms / 1000;
    ts.tv_nsec = static_cast<long long>(timeout_ms % 1000) * 1000000;
    io_uring_cqe* cqe = nullptr;
    rc = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, timeout_ms < 0 ? nullptr : &ts, nullptr);
  }
  // ETIME: timed out; EINTR: a signal; EBUSY/EAGAIN: the completion queue is backed up,
  // which reaping below relieves.
  if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY && rc != -EAGAIN)
    throw sys_error(-rc, "io_uring_submit_and_wait_timeout");
}

void uring_backend::reap(std::vector<ready_event>& out) {
  io_uring_cqe* cqes[peek_batch];
  unsigned total = 0;
  bool more = true;
  for (;;) {
    while (next_ < batch_.size())
      dispatch(batch_[next_++], out);
    if (!more || total >= completions_per_wait) break;
    unsigned n = io_uring_peek_batch_cqe(&ring_, cqes, peek_batch);
    if (n == 0) break;
    // Copy, then release the slots at once: handlers may submit (and the kernel may
    // post) while this batch is dispatched.
    batch_.clear();
    next_ = 0;
    for (unsigned i = 0; i < n; ++i)
      batch_.push_back({cqes[i]->user_data, cqes[i]->res, cqes[i]->flags});
    io_uring_cq_advance(&ring_, n);
    total += n;
    more = n == peek_batch;
  }
}

// `c` by value: the handler may refill batch_, where it came from.
void uring_backend::dispatch(completion c, std::vector<ready_event>& out) {
  if ((c.user_data & 7) != poll_tag) {
    auto* handler = reinterpret_cast<completion_handler*>(c.user_data & ~std::uint64_t{7});
    if (handler) handler->on_completion(static_cast<unsigned>(c.user_data & 7), c.result, c.flags);
    return;
  }
  auto fd = static_cast<int>(c.user_data >> 32);
  auto serial = static_cast<std::uint32_t>(c.user_data >> 3) & serial_mask;
  if (static_cast<std::size_t>(fd) >= watches_.size()) return;
  auto& w = watches_[fd];
  if (!w.active || (w.serial & serial_mask) != serial) return;  // stale
  if (c.result < 0) {
    // The request ended in error (e.g. EBADF): report it once, do not re-arm.
    w.interest = 0;
    out.push_back({w.token, io_hangup | io_read | io_write});
    return;
  }
  out.push_back({w.token, from_poll_mask(static_cast<unsigned>(c.result))});
  if (!(c.flags & IORING_CQE_F_MORE)) arm(fd, w);  // the kernel ended the multishot
}

void uring_backend::wait(int timeout_ms, std::vector<ready_event>& out) {
  if (!held_.empty()) {
    out.insert(out.end(), held_.begin(), held_.end());
    held_.clear();
    timeout_ms = 0;
  }
  submit_and_wait(timeout_ms);
  stamp_turn_clock();
  reap(out);
}

void uring_backend::run_completions(int timeout_ms) {
  submit_and_wait(timeout_ms);
  stamp_turn_clock();
  reap(held_);
}

std::unique_ptr<backend> make_uring_backend() {
  return std::make_unique<uring_backend>();
}

}  // namespace netkit::detail
