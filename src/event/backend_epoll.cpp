// epoll(7), level- or edge-triggered. The token rides in epoll_event.data.u64, so the
// kernel hands back exactly what the loop needs to detect stale events.
#include "backend_epoll.hpp"

#include <sys/epoll.h>

#include <cerrno>

#include <fmt/format.h>

#include "netkit/error.hpp"

namespace netkit::detail {

namespace {
std::uint32_t to_epoll(std::uint32_t interest, bool edge) {
  std::uint32_t e = 0;
  if (interest & io_read) e |= EPOLLIN | EPOLLRDHUP;
  if (interest & io_write) e |= EPOLLOUT;
  if (edge) e |= EPOLLET;
  return e;
}
}  // namespace

// Events taken per epoll_wait. Not more: the kernel polls each item it reports (and, level-
// triggered, re-polls the previous batch's), and the loop then reads those sockets; with
// 1000 ready connections in one batch the sockets polled first are out of cache by the
// time they are read. Measured at 1000 connections (A/B against batches growing to 4096):
// level-triggered -2 % CPU per message at 64 B and -8 % at 4 KiB, edge-triggered -3.5 %
// at 4 KiB; no difference at 100 or 10,000. An extra epoll_wait per 128 events is noise.
constexpr std::size_t batch_events = 128;

epoll_backend::epoll_backend(trigger mode)
    : edge_(mode == trigger::edge), epfd_(::epoll_create1(EPOLL_CLOEXEC)) {
  if (!epfd_) throw_sys_error("epoll_create1");
  events_.resize(batch_events);
}

void epoll_backend::add(int fd, std::uint32_t interest, std::uint64_t token) {
  epoll_event ev{};
  ev.events = to_epoll(interest, edge_);
  ev.data.u64 = token;
  if (::epoll_ctl(epfd_.get(), EPOLL_CTL_ADD, fd, &ev) != 0)
    throw_sys_error("epoll_ctl ADD", fmt::format("fd {}", fd));
}

void epoll_backend::modify(int fd, std::uint32_t interest, std::uint64_t token) {
  epoll_event ev{};
  ev.events = to_epoll(interest, edge_);
  ev.data.u64 = token;
  if (::epoll_ctl(epfd_.get(), EPOLL_CTL_MOD, fd, &ev) != 0)
    throw_sys_error("epoll_ctl MOD", fmt::format("fd {}", fd));
}

void epoll_backend::remove(int fd) noexcept {
  // Fails harmlessly if the descriptor was already closed (the kernel dropped it).
  ::epoll_ctl(epfd_.get(), EPOLL_CTL_DEL, fd, nullptr);
}

void epoll_backend::wait(int timeout_ms, std::vector<ready_event>& out) {
  int n = ::epoll_wait(epfd_.get(), events_.data(), static_cast<int>(events_.size()), timeout_ms);
  if (n < 0) {
    if (errno == EINTR) return;
    throw_sys_error("epoll_wait");
  }
  for (int i = 0; i < n; ++i) {
    std::uint32_t got = 0;
    auto e = events_[i].events;
    if (e & (EPOLLIN | EPOLLRDHUP | EPOLLPRI)) got |= io_read;
    if (e & EPOLLOUT) got |= io_write;
    // RDHUP too: an edge-triggered reader that stops at a short read must know that a FIN
    // came with this edge, because no later edge will announce it.
    if (e & EPOLLRDHUP) got |= io_hangup;
    if (e & (EPOLLHUP | EPOLLERR)) got |= io_hangup | io_read | io_write;
    out.push_back({events_[i].data.u64, got});
  }
}

}  // namespace netkit::detail
