#include "net/reactor_engine.hpp"

#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>

#include "netkit/error.hpp"
#include "netkit/log.hpp"

namespace netkit::detail {

namespace {
// Reads per readiness report: bounds how long one fire-hose connection can hold the
// loop (libuv uses 32); the edge-triggered backend comes back via call_again().
constexpr int reads_per_event = 16;
constexpr std::size_t read_scratch_size = 64 * 1024;
}  // namespace

// ---- connection ----------------------------------------------------------------------

reactor_connection::reactor_connection(reactor_engine& engine, conn_id id, unique_fd fd,
                                       endpoint peer)
    : connection_core(engine.owner_, id, std::move(peer), fd.get(), engine.take_decoder(),
                      engine.loop_.now()),
      engine_(engine),
      fd_(std::move(fd)) {}

reactor_connection::~reactor_connection() {
  if (fd_) engine_.loop_.unwatch(watch_);
}

void reactor_connection::start() {
  auto& loop = engine_.loop_;
  // Edge-triggered: register both directions once and never touch epoll_ctl again.
  try {
    watch_ = loop.watch(fd_.get(), loop.edge_triggered() ? io_read | io_write : io_read, *this);
  } catch (...) {
    fd_.reset();  // refused (select: fd >= FD_SETSIZE): nothing is watched, nothing to undo
    throw;
  }
}

void reactor_connection::on_io(std::uint32_t events) {
  if (events & io_write) {
    handle_write();
    if (state_ == state::closed) return;
  }
  if (events & io_read) handle_read(events);
}

void reactor_connection::handle_read(std::uint32_t events) {
  auto& loop = engine_.loop_;
  std::byte* scratch = engine_.read_scratch_.get();
  for (int i = 0; i < reads_per_event; ++i) {
    if (state_ != state::open || reading_paused_) return;
    ssize_t n = ::recv(fd_.get(), scratch, read_scratch_size, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      log(log_level::debug, "read from {}: {}", peer().to_uri(), errno_text(errno));
      force_close(close_reason::reset);
      return;
    }
    if (n == 0) {
      take_peer_eof(engine_.stats_);
      begin_drain(close_reason::peer_closed);
      return;
    }
    note_input();
    engine_.stats_.bytes_in += static_cast<std::size_t>(n);
    std::span<const std::byte> data(scratch, static_cast<std::size_t>(n));
    bool buffered = !input_.empty();
    if (buffered) {
      input_.append(data);
      data = input_.data();
    }
    in_dispatch_ = true;
    engine_.batch_.set_input(data);
    auto used = dispatch_messages(*this, *decoder_, engine_.handler_, engine_.stats_, data);
    in_dispatch_ = false;
    if (!used) {
      // Closed for a protocol or handler error. Replies to the messages decoded before
      // the bad frame may sit in the shared batch buffer: drop them here, or the next
      // connection's flush_batch() would send them to the wrong peer.
      engine_.batch_.clear();
      return;
    }
    // Before input_ changes: the batch may point into `data`.
    flush_batch();
    if (state_ == state::closed) return;
    if (buffered) {
      input_.consume(*used);
    } else if (*used < data.size()) {
      input_.append(data.subspan(*used));  // a partial frame waits for the rest
    }
    if (state_ != state::open || reading_paused_) return;
    // A short read took everything the socket held. Whatever arrives later (data, FIN,
    // RST) is reported again, level- or edge-triggered. The exception: a FIN or RST that
    // came with this very report, behind the data just read, raises no new edge, so an
    // edge-triggered reader that stopped here would never see its EOF. The backend marks
    // such a report with io_hangup (EPOLLRDHUP/HUP/ERR); only then do we read on to
    // EOF/EAGAIN, and the common case costs one recv per message, not two.
    if (!(events & io_hangup) && static_cast<std::size_t>(n) < read_scratch_size) return;
  }
  // Budget spent: the edge-triggered backend will not report the rest (or a FIN behind it).
  if (loop.edge_triggered()) loop.call_again(watch_, io_read | (events & io_hangup));
}

void reactor_connection::send(std::span<const std::byte> message) {
  NETKIT_ASSERT_LOOP_THREAD(engine_.loop_);
  if (state_ != state::open) return;
  auto& encoder = *engine_.encoder_;
  if (in_dispatch_ && output_.empty() && chain_.empty()) {
    // Replies of this dispatch leave in one send() at its end.
    engine_.batch_.add(encoder, message);
    return;
  }
  bool was_empty = queued_output() == 0;
  encoder.encode(message, output_);
  if (in_dispatch_) return;  // flushed when the dispatch ends
  if (was_empty) {
    handle_write();
  } else {
    after_write();
  }
}

void reactor_connection::send(const framed_message& message) {
  NETKIT_ASSERT_LOOP_THREAD(engine_.loop_);
  if (state_ != state::open || message.empty()) return;
  if (in_dispatch_) {
    // Behind this dispatch's replies: the one recipient that is mid-dispatch (a sender
    // that broadcasts to itself) gets a copy.
    if (output_.empty() && chain_.empty()) {
      engine_.batch_.add_framed(message.bytes());
    } else {
      output_.append(message.bytes());
    }
    return;
  }
  // Queued, and written at the end of the loop turn with everything else this turn
  // queues here: a broadcast from each of several senders' messages reaches a recipient
  // in one writev, not one send per line (the send calls are what a fan-out costs).
  chain_.push_owned(std::move(output_));  // keeps the order: owned bytes queued before it
  chain_.push_shared(message);
  if (!flush_due_) {
    flush_due_ = true;
    engine_.flush_at_end_of_turn(id());
  }
}

void reactor_connection::flush_end_of_turn() {
  flush_due_ = false;
  if (state_ == state::closed) return;
  handle_write();
}

void reactor_connection::flush_batch() {
  auto& batch = engine_.batch_;
  if (!batch.empty()) {
    std::size_t sent = 0;
    if (queued_output() == 0 && state_ != state::closed) {
      ssize_t n;
      do {
        n = batch.send_to(fd_.get());
      } while (n < 0 && errno == EINTR);
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
        batch.clear();
        log(log_level::debug, "write to {}: {}", peer().to_uri(), errno_text(errno));
        force_close(close_reason::reset);
        return;
      }
      sent = n > 0 ? static_cast<std::size_t>(n) : 0;
      engine_.stats_.bytes_out += sent;
    }
    if (sent < batch.size()) batch.copy_tail(sent, output_);
    batch.clear();
  }
  if (state_ != state::closed) after_write();
}

void reactor_connection::handle_write() {
  if (write_queued()) after_write();
}

bool reactor_connection::write_queued() {
  io_result r;
  if (chain_.empty()) {
    if (output_.empty()) return true;
    r = output_.write_to(fd_.get());
  } else {
    // Shared frames first, then the owned tail, in one writev; more than max_iov pieces
    // take more calls, until the socket is full: an edge-triggered socket that is still
    // writable would raise no edge for the rest.
    constexpr std::size_t max_iov = 64;
    iovec iov[max_iov + 1];
    for (;;) {
      std::size_t count = chain_.gather(iov, max_iov);
      if (count < max_iov && !output_.empty()) {
        auto tail = output_.data();
        iov[count++] = {const_cast<std::byte*>(tail.data()), tail.size()};
      }
      std::size_t offered = 0;
      for (std::size_t i = 0; i < count; ++i)
        offered += iov[i].iov_len;
      ssize_t n;
      do {
        n = ::writev(fd_.get(), iov, static_cast<int>(count));
      } while (n < 0 && errno == EINTR);
      if (n < 0) {
        r.err = errno;
        break;
      }
      r.n += n;
      output_.consume(chain_.consume(static_cast<std::size_t>(n)));
      if (static_cast<std::size_t>(n) < offered || queued_output() == 0) break;
    }
    if (r.n > 0 && r.would_block()) r.err = 0;  // wrote some, then found the socket full
  }
  if (!r.ok() && !r.would_block()) {
    log(log_level::debug, "write to {}: {}", peer().to_uri(), errno_text(r.err));
    force_close(close_reason::reset);
    return false;
  }
  engine_.stats_.bytes_out += static_cast<std::size_t>(r.n);
  return true;
}

void reactor_connection::after_write() {
  connection_core::after_write(*this, engine_.options_);
  update_interest();
}

void reactor_connection::release_output() {
  output_.shrink_to_fit();  // an idle connection holds no buffer
}

void reactor_connection::resume_reading() {
  // Edge-triggered: the data (and a FIN) that arrived while paused raise no new edge, so
  // read on to EOF/EAGAIN.
  if (engine_.loop_.edge_triggered() && state_ == state::open)
    engine_.loop_.call_again(watch_, io_read | io_hangup);
}

void reactor_connection::update_interest() {
  auto& loop = engine_.loop_;
  // A flush due this turn decides after writing (no epoll_ctl for output it will write).
  if (loop.edge_triggered() || state_ == state::closed || flush_due_) return;
  std::uint32_t want = 0;
  if (state_ == state::open && !reading_paused_) want |= io_read;
  if (queued_output() != 0) want |= io_write;
  loop.modify(watch_, want);
}

void reactor_connection::close() {
  NETKIT_ASSERT_LOOP_THREAD(engine_.loop_);
  begin_drain(close_reason::local);
}

void reactor_connection::begin_drain(close_reason why) {
  if (!enter_drain(why)) return;
  if (in_dispatch_) return;  // flush_batch() finishes the job
  if (queued_output() == 0) {
    force_close(why);
    return;
  }
  update_interest();
}

void reactor_connection::force_close(close_reason why) {
  if (!enter_closed()) return;
  engine_.loop_.unwatch(watch_);
  fd_.reset();
  input_.clear();
  output_.clear();
  chain_.clear();
  engine_.release(*this, why);
}

// ---- engine --------------------------------------------------------------------------

reactor_engine::reactor_engine(event_loop& loop, connection_group& owner, engine_config config,
                               stream_handler handler)
    : engine_base(loop, owner, config, std::move(handler)),
      read_scratch_(new std::byte[read_scratch_size]),
      batch_(read_scratch_size + 64) {}

reactor_engine::~reactor_engine() {
  close_all();
  free_dead();
  flushes_->engine = nullptr;  // a flush still deferred finds no one to write for
}

void reactor_engine::flush_at_end_of_turn(conn_id id) {
  flushes_->due.push_back(id);
  if (flushes_->due.size() > 1) return;
  loop_.defer([flushes = flushes_] {
    // By id: a connection closed since it was queued is gone from the table.
    auto due = std::move(flushes->due);
    flushes->due.clear();
    for (conn_id due_id : due) {
      if (!flushes->engine) return;
      if (auto* c = flushes->engine->conns_.find(due_id)) c->flush_end_of_turn();
    }
  });
}

std::unique_ptr<reactor_connection> reactor_engine::create(conn_id id, unique_fd fd,
                                                           endpoint peer) {
  return std::make_unique<reactor_connection>(*this, id, std::move(fd), std::move(peer));
}

void reactor_engine::retire(std::unique_ptr<reactor_connection> c) {
  // The caller may still be inside this connection's callback: free after the dispatch.
  free_later(std::move(c));
}

}  // namespace netkit::detail
