#include "net/uring_acceptor.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>

#include "net/acceptor.hpp"
#include "netkit/error.hpp"
#include "netkit/log.hpp"

namespace netkit::detail {

namespace {
constexpr unsigned op_accept = 1;
// Out of descriptors with an empty backlog: a multishot accept would fail at once (the
// kernel reserves the descriptor before it waits), so wait for a connection with a poll.
constexpr unsigned op_poll = 2;
constexpr auto accept_pause = std::chrono::milliseconds(100);
// Pending connections shed per out-of-descriptors completion before the accept is
// re-armed (the next failure brings us back): bounds one turn's work.
constexpr int sheds_per_completion = 64;

}  // namespace

uring_acceptor::uring_acceptor(event_loop& loop, uring_backend& ring, unique_fd listening,
                               transport kind, accept_fn on_accept)
    : loop_(loop), ring_(ring), listen_fd_(std::move(listening)), on_accept_(std::move(on_accept)) {
  local_ = local_endpoint(listen_fd_.get(), kind);
  arm();
}

uring_acceptor::~uring_acceptor() {
  close();
}

void uring_acceptor::close() noexcept {
  if (resume_timer_) loop_.cancel(resume_timer_);
  resume_timer_ = 0;
  if (!listen_fd_) return;
  if (in_flight_) {
    try {
      auto* sqe = ring_.sqe();
      io_uring_prep_cancel64(sqe, uring_backend::user_data(this, armed_op_), 0);
      uring_backend::target(sqe, nullptr, 0);
    } catch (const std::exception& e) {
      log(log_level::error, "cancel accept on {}: {}", local_.to_uri(), e.what());
    }
  }
  // The accept in flight holds the socket open until its cancellation completes, once it
  // is submitted: a queued one names only the descriptor number (see force_close in
  // uring_server.cpp), so submit before the number can be reused.
  if (in_flight_) {
    if (int rc = ring_.submit_queued(); rc < 0)
      log(log_level::error, "submit before closing {}: {}", local_.to_uri(), errno_text(-rc));
  }
  listen_fd_.reset();
}

void uring_acceptor::arm() {
  auto* sqe = ring_.sqe();
  // No address: one buffer cannot serve many completions; the peer is read per socket.
  io_uring_prep_multishot_accept(sqe, listen_fd_.get(), nullptr, nullptr,
                                 SOCK_NONBLOCK | SOCK_CLOEXEC);
  uring_backend::target(sqe, this, op_accept);
  in_flight_ = true;
  armed_op_ = op_accept;
}

void uring_acceptor::wait_for_connection() {
  auto* sqe = ring_.sqe();
  io_uring_prep_poll_add(sqe, listen_fd_.get(), POLLIN);
  uring_backend::target(sqe, this, op_poll);
  in_flight_ = true;
  armed_op_ = op_poll;
}

void uring_acceptor::on_completion(unsigned op, int result, std::uint32_t flags) {
  if (!(flags & IORING_CQE_F_MORE)) in_flight_ = false;
  if (op == op_poll) {
    // A connection is waiting (or the poll failed/was cancelled): try accepting again.
    if (listen_fd_ && !resume_timer_ && !in_flight_) arm();
    return;
  }
  if (result >= 0) {
    unique_fd fd(result);
    if (!listen_fd_) return;  // raced with close(): closing it refuses the connection
    sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (::getpeername(fd.get(), reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
      // Already reset by the peer (ENOTCONN): nothing to serve.
      log(log_level::debug, "accepted socket on {} is gone: {}", local_.to_uri(),
          errno_text(errno));
    } else {
      on_accept_(std::move(fd),
                 endpoint::from_sockaddr(local_.kind(), reinterpret_cast<sockaddr*>(&ss), len));
    }
  } else {
    int err = -result;
    if (err == ECANCELED || !listen_fd_) return;
    if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
      if (!out_of_descriptors()) return;
      if (!in_flight_ && listen_fd_) wait_for_connection();
      return;
    } else if (!is_transient_accept_error(err) && err != EINTR && err != EAGAIN) {
      log(log_level::error, "accept {}: {}; pausing accepts for {} ms", local_.to_uri(),
          errno_text(err), accept_pause.count());
      pause();
      return;
    }
  }
  if (!in_flight_ && listen_fd_ && !resume_timer_) arm();
}

bool uring_acceptor::out_of_descriptors() {
  for (int i = 0; i < sheds_per_completion; ++i) {
    switch (spare_.shed_one(listen_fd_.get(), local_)) {
      case spare_descriptor::result::shed:
        continue;
      case spare_descriptor::result::backlog_empty:
        return true;
      case spare_descriptor::result::stuck:
        pause();
        return false;
    }
  }
  return true;
}

void uring_acceptor::pause() {
  if (resume_timer_ || !listen_fd_) return;
  // A multishot accept still in flight would keep failing: end it, re-arm on resume.
  if (in_flight_) {
    auto* sqe = ring_.sqe();
    io_uring_prep_cancel64(sqe, uring_backend::user_data(this, armed_op_), 0);
    uring_backend::target(sqe, nullptr, 0);
  }
  resume_timer_ = loop_.run_after(accept_pause, [this] {
    resume_timer_ = 0;
    if (listen_fd_ && !in_flight_) arm();
  });
}

}  // namespace netkit::detail
