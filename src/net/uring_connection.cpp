// Completion path, per connection:
//   recv (multishot, provided buffer) -> decode straight out of the buffer -> handler ->
//   replies appended to pending_ -> buffer returned to the ring -> one send of everything
//   queued (one send in flight; what arrives meanwhile waits in pending_).
#include "net/uring_connection.hpp"

#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <functional>

#include "net/framing.hpp"
#include "net/uring_engine.hpp"
#include "netkit/error.hpp"
#include "netkit/log.hpp"

namespace netkit::detail {

namespace {
// Replies this large are sent straight from the received buffer when they can be; below,
// a copy costs less than holding the buffer for the send's round trip.
constexpr std::size_t min_reference = 256;
}  // namespace

// ---- connection ----------------------------------------------------------------------

uring_connection::uring_connection(uring_engine& engine, conn_id id, unique_fd fd, endpoint peer)
    : connection_core(engine.owner_, id, std::move(peer), fd.get(), engine.take_decoder(),
                      engine.loop_.now()),
      engine_(engine),
      fd_(std::move(fd)) {}

std::size_t uring_connection::queued_output() const noexcept {
  return (sending_.size() - sent_) + chain_.size() + pending_.size() + reply_ref_.size() +
         held_.size();
}

void uring_connection::arm_recv() {
  if (recv_armed_ || state_ != state::open || reading_paused_) return;
  auto* sqe = engine_.ring_.sqe();
  io_uring_prep_recv_multishot(sqe, fd_.get(), nullptr, 0, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = engine_.receive_.ring().group();
  uring_backend::target(sqe, this, op_recv);
  recv_armed_ = true;
}

void uring_connection::cancel(unsigned op) noexcept {
  if (op == op_recv) {
    if (!recv_armed_ || recv_cancelling_) return;
    recv_cancelling_ = true;
  }
  try {
    auto* sqe = engine_.ring_.sqe();
    io_uring_prep_cancel64(sqe, uring_backend::user_data(this, op), 0);
    uring_backend::target(sqe, nullptr, 0);
  } catch (const std::exception& e) {
    log(log_level::error, "cancel I/O of {}: {}", peer().to_uri(), e.what());
  }
}

void uring_connection::on_completion(unsigned op, int result, std::uint32_t flags) {
  if (op == op_recv) {
    on_recv(result, flags);
  } else {
    on_send(result);
  }
  // Its last operation is back: nothing in the kernel points here any more.
  if (state_ == state::closed && !in_flight() && zombie_index != SIZE_MAX) engine_.bury(*this);
}

void uring_connection::on_recv(int result, std::uint32_t flags) {
  if (!(flags & IORING_CQE_F_MORE)) {
    recv_armed_ = false;
    recv_cancelling_ = false;
  }
  if (result > 0) {
    const unsigned id = flags >> IORING_CQE_BUFFER_SHIFT;
    if (state_ == state::open)
      on_data(engine_.receive_.ring().data(id, static_cast<std::size_t>(result)), id);
    // Decoded or copied: the kernel may fill it again. Unless a send from it is in flight:
    // then on_send() gives it back.
    if (held_id_ != id || held_.empty()) engine_.receive_.ring().recycle(id);
  } else {
    if (flags & IORING_CQE_F_BUFFER)
      engine_.receive_.ring().recycle(flags >> IORING_CQE_BUFFER_SHIFT);
    if (result == 0) {
      if (state_ == state::open) {
        take_peer_eof(engine_.stats_);
        begin_drain(close_reason::peer_closed);
      }
    } else if (result == -ENOBUFS) {
      // The ring ran dry (more receivers than buffers in one turn): the data waits in the
      // socket; re-arm once this turn has handed the buffers back.
      if (state_ == state::open) engine_.receive_.starved(id());
      return;
    } else if (result != -ECANCELED && state_ != state::closed) {
      log(log_level::debug, "read from {}: {}", peer().to_uri(), errno_text(-result));
      force_close(close_reason::reset);
    }
  }
  // The kernel may end a multishot recv at any time (e.g. completion queue pressure).
  if (!recv_armed_) arm_recv();
}

void uring_connection::on_data(std::span<const std::byte> data, unsigned buffer_id) {
  note_input();
  engine_.stats_.bytes_in += data.size();
  bool buffered = !input_.empty();
  if (buffered) {
    input_.append(data);
    data = input_.data();
  } else {
    dispatch_input_ = data;  // a reply inside it may be sent straight from the buffer
    dispatch_buffer_ = buffer_id;
  }
  in_dispatch_ = true;
  auto used = dispatch_messages(*this, *decoder_, engine_.handler_, engine_.stats_, data);
  in_dispatch_ = false;
  dispatch_input_ = {};
  if (!used) return;  // closed for a protocol or handler error
  if (buffered) {
    input_.consume(*used);
    if (input_.empty()) input_.shrink_to_fit();  // an idle connection holds no buffer
  } else if (*used < data.size()) {
    input_.append(data.subspan(*used));  // a partial frame waits for the rest
  }
  flush();
  if (state_ != state::closed) after_write();
}

void uring_connection::send(std::span<const std::byte> message) {
  NETKIT_ASSERT_LOOP_THREAD(engine_.loop_);
  if (state_ != state::open) return;
  auto& encoder = *engine_.encoder_;
  // The first reply of a dispatch, when nothing else is queued, unframed (raw, fixed) and
  // lying in the received buffer: flush() sends it from there, and the buffer returns to
  // the ring when the send completes. Saves copying it (a memmove per message).
  const std::less<const std::byte*> before;
  if (in_dispatch_ && message.size() >= min_reference && reply_ref_.empty() && held_.empty() &&
      !send_in_flight_ && pending_.empty() && chain_.empty() && sent_ == sending_.size() &&
      !before(message.data(), dispatch_input_.data()) &&
      !before(dispatch_input_.data() + dispatch_input_.size(), message.data() + message.size())) {
    std::array<std::byte, 8> header;
    if (encoder.header(message.size(), std::span<std::byte, 8>(header)) == 0 &&
        encoder.trailer().empty()) {
      reply_ref_ = message;
      return;
    }
  }
  // Bytes the handler built itself may hold the codec's delimiter; decoded ones cannot.
  if (before(message.data(), dispatch_input_.data()) ||
      before(dispatch_input_.data() + dispatch_input_.size(), message.data() + message.size()))
    encoder.check_payload(message);
  if (pending_.capacity() == 0) pending_ = engine_.send_pool_.take();
  if (!reply_ref_.empty()) {
    // A second reply: the first goes out by copy after all, in order.
    pending_.insert(pending_.end(), reply_ref_.begin(), reply_ref_.end());
    reply_ref_ = {};
  }
  append_framed(encoder, message, pending_);
  if (in_dispatch_) return;  // flushed when the dispatch ends
  flush();
  after_write();
}

void uring_connection::send(const framed_message& message) {
  NETKIT_ASSERT_LOOP_THREAD(engine_.loop_);
  if (state_ != state::open || message.empty()) return;
  if (!reply_ref_.empty()) {
    // Order: the reply referenced in the received buffer goes first, by copy.
    if (pending_.capacity() == 0) pending_ = engine_.send_pool_.take();
    pending_.insert(pending_.end(), reply_ref_.begin(), reply_ref_.end());
    reply_ref_ = {};
  }
  // Owned bytes queued so far go first; the shared bytes are referenced, never copied.
  if (!pending_.empty()) {
    byte_buffer owned;
    owned.append(pending_);
    engine_.send_pool_.give(pending_);
    chain_.push_owned(std::move(owned));
  }
  chain_.push_shared(message);
  if (in_dispatch_) return;  // flushed when the dispatch ends
  flush();
  after_write();
}

void uring_connection::flush() {
  if (send_in_flight_ || state_ == state::closed) return;
  // In order: a reply lying in the received buffer, the rest of a short send, shared
  // frames (and the owned bytes queued before them), then the replies queued since.
  if (!reply_ref_.empty()) {
    held_ = std::exchange(reply_ref_, {});
    held_id_ = dispatch_buffer_;
    engine_.receive_.hold();
    auto* sqe = engine_.ring_.sqe();
    io_uring_prep_send(sqe, fd_.get(), held_.data(), held_.size(), MSG_NOSIGNAL | MSG_WAITALL);
    uring_backend::target(sqe, this, op_send);
    send_in_flight_ = true;
    return;
  }
  if (sent_ == sending_.size()) {
    if (!chain_.empty()) [[unlikely]] {
      chain_sending_ = true;
      submit_send(chain_.front());
      return;
    }
    if (pending_.empty()) return;
    sending_.clear();
    sent_ = 0;
    std::swap(sending_, pending_);
  }
  // The common case, written out: no call on the path of every reply.
  auto* sqe = engine_.ring_.sqe();
  io_uring_prep_send(sqe, fd_.get(), sending_.data() + sent_, sending_.size() - sent_,
                     MSG_NOSIGNAL | MSG_WAITALL);
  uring_backend::target(sqe, this, op_send);
  send_in_flight_ = true;
}

void uring_connection::submit_send(std::span<const std::byte> bytes) {
  auto* sqe = engine_.ring_.sqe();
  // MSG_WAITALL: the kernel completes a partial send itself before posting the CQE.
  io_uring_prep_send(sqe, fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_WAITALL);
  uring_backend::target(sqe, this, op_send);
  send_in_flight_ = true;
}

bool uring_connection::send_failed(int result) {
  if (result >= 0) return false;
  log(log_level::debug, "write to {}: {}", peer().to_uri(), errno_text(-result));
  force_close(close_reason::reset);
  return true;
}

void uring_connection::sent_on(int result) {
  engine_.stats_.bytes_out += static_cast<std::size_t>(result);
  flush();
  after_write();
}

void uring_connection::on_send(int result) {
  send_in_flight_ = false;
  if (chain_sending_) [[unlikely]] {
    chain_sending_ = false;
    if (state_ == state::closed) {
      chain_.clear();  // kept by force_close() while this send read from it
      return;
    }
    if (send_failed(result)) return;
    chain_.consume(static_cast<std::size_t>(result));
    sent_on(result);
    return;
  }
  std::span<const std::byte> held_rest;
  if (!held_.empty()) {
    // A send from a received buffer: what was not sent (an error, or a signal cut the
    // MSG_WAITALL send short) is copied out so the buffer can go back now.
    if (result >= 0 && state_ != state::closed)
      held_rest = held_.subspan(static_cast<std::size_t>(result));
    if (!held_rest.empty()) {
      sending_.clear();
      sent_ = 0;
      if (sending_.capacity() == 0) sending_ = engine_.send_pool_.take();
      sending_.insert(sending_.end(), held_rest.begin(), held_rest.end());
    }
    held_ = {};
    engine_.receive_.unhold();
    engine_.receive_.ring().recycle(held_id_);
    if (state_ != state::closed && result > 0) {
      sent_on(result);  // the rest, or what queued up meanwhile
      return;
    }
  }
  if (state_ == state::closed) {
    engine_.send_pool_.give(sending_);  // the kernel is done with it
    return;
  }
  if (send_failed(result)) return;
  sent_ += static_cast<std::size_t>(result);
  sent_on(result);  // the rest of a short send, or what queued up meanwhile
}

void uring_connection::release_output() noexcept {
  if (!send_in_flight_) {
    engine_.send_pool_.give(sending_);
    sent_ = 0;
  }
  engine_.send_pool_.give(pending_);
}

void uring_connection::close() {
  NETKIT_ASSERT_LOOP_THREAD(engine_.loop_);
  begin_drain(close_reason::local);
}

void uring_connection::begin_drain(close_reason why) {
  if (!enter_drain(why)) return;
  cancel(op_recv);
  if (in_dispatch_) return;  // on_data() finishes the job
  if (queued_output() == 0) force_close(why);
}

void uring_connection::force_close(close_reason why) {
  if (!enter_closed()) return;
  cancel(op_recv);
  if (send_in_flight_) cancel(op_send);
  // Operations in flight hold their own reference to the socket; it really closes (FIN)
  // when the last of them has been cancelled. The descriptor number is free at once,
  // which is why cancellation goes by user_data, never by descriptor. Only once they are
  // submitted, though: a queued send names the number alone, and with several loops in
  // one process (multi_reactor) another thread may accept a socket onto that number
  // before our next wait, which then sent our bytes to a stranger (case 19 test).
  if (in_flight()) {
    if (int rc = engine_.ring_.submit_queued(); rc < 0)
      log(log_level::error, "submit before closing {}: {}", peer().to_uri(), errno_text(-rc));
  }
  fd_.reset();
  input_.clear();
  input_.shrink_to_fit();
  reply_ref_ = {};  // never submitted; its buffer goes back after this completion
  release_output();
  // A send in flight from the chain reads the shared bytes: they stay referenced until
  // its completion (the connection outlives it in the zombie list).
  if (!chain_sending_) chain_.clear();
  engine_.release(*this, why);
}

void uring_connection::after_write() {
  connection_core::after_write(*this, engine_.options_);
}

}  // namespace netkit::detail
