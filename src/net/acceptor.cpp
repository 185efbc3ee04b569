#include "net/acceptor.hpp"

#include <fcntl.h>
#include <sys/socket.h>

#include <cerrno>

#include "netkit/error.hpp"
#include "netkit/log.hpp"

namespace netkit::detail {

namespace {
// Connections taken per readiness report: enough to drain a burst, small enough that a
// connect storm cannot starve established connections. Edge-triggered loops come back
// through call_again() for the rest.
constexpr int accepts_per_event = 64;
constexpr auto accept_pause = std::chrono::milliseconds(100);

}  // namespace

acceptor::acceptor(event_loop& loop, unique_fd listening, transport kind, accept_fn on_accept)
    : loop_(loop), listen_fd_(std::move(listening)), on_accept_(std::move(on_accept)) {
  local_ = local_endpoint(listen_fd_.get(), kind);
  watch_ = loop_.watch(listen_fd_.get(), io_read, *this);
}

acceptor::~acceptor() {
  close();
}

void acceptor::close() noexcept {
  if (resume_timer_) loop_.cancel(resume_timer_);
  resume_timer_ = 0;
  if (listen_fd_) {
    loop_.unwatch(watch_);
    listen_fd_.reset();
  }
}

void acceptor::on_io(std::uint32_t) {
  for (int i = 0; i < accepts_per_event; ++i) {
    sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int fd = ::accept4(listen_fd_.get(), reinterpret_cast<sockaddr*>(&ss), &len,
                       SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      on_accept_(unique_fd(fd),
                 endpoint::from_sockaddr(local_.kind(), reinterpret_cast<sockaddr*>(&ss), len));
      if (!listen_fd_) return;  // the callback shut us down
      continue;
    }
    int err = errno;
    if (err == EAGAIN || err == EWOULDBLOCK) return;
    if (err == EINTR || is_transient_accept_error(err)) continue;
    if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
      switch (spare_.shed_one(listen_fd_.get(), local_)) {
        case spare_descriptor::result::shed:
          continue;
        case spare_descriptor::result::backlog_empty:
          return;
        case spare_descriptor::result::stuck:
          pause();
          return;
      }
    }
    log(log_level::error, "accept {}: {}; pausing accepts for {} ms", local_.to_uri(),
        errno_text(err), accept_pause.count());
    pause();
    return;
  }
  // Budget used up with connections still pending.
  if (loop_.edge_triggered()) loop_.call_again(watch_, io_read);
}

void acceptor::pause() {
  if (resume_timer_ || !listen_fd_) return;
  loop_.modify(watch_, 0);
  resume_timer_ = loop_.run_after(accept_pause, [this] {
    resume_timer_ = 0;
    if (!listen_fd_) return;
    loop_.modify(watch_, io_read);
    // Edge-triggered: connections that queued while paused raise no new edge.
    if (loop_.edge_triggered()) loop_.call_again(watch_, io_read);
  });
}

}  // namespace netkit::detail
