#include "net/reactor_server.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

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

reactor_connection::reactor_connection(reactor_server& server, conn_id id, unique_fd fd,
                                       endpoint peer)
    : connection(id, std::move(peer), fd.get()),
      server_(server),
      fd_(std::move(fd)),
      decoder_(make_decoder(server.options_.codec)),
      last_active_(server.loop_.now()) {}

reactor_connection::~reactor_connection() {
  if (fd_) server_.loop_.unwatch(watch_);
}

void reactor_connection::start() {
  auto& loop = server_.loop_;
  // Edge-triggered: register both directions once and never touch epoll_ctl again.
  watch_ = loop.watch(fd_.get(), loop.edge_triggered() ? io_read | io_write : io_read, *this);
}

void reactor_connection::on_io(std::uint32_t events) {
  if (events & io_write) {
    handle_write();
    if (state_ == state::closed) return;
  }
  if (events & io_read) handle_read(events);
}

void reactor_connection::handle_read(std::uint32_t events) {
  auto& loop = server_.loop_;
  std::byte* scratch = server_.read_scratch_.get();
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
      on_peer_eof();
      return;
    }
    last_active_ = loop.now();
    server_.stats_.bytes_in += static_cast<std::size_t>(n);
    std::span<const std::byte> data(scratch, static_cast<std::size_t>(n));
    bool buffered = !input_.empty();
    if (buffered) {
      input_.append(data);
      data = input_.data();
    }
    in_dispatch_ = true;
    server_.batch_.set_input(data);
    auto used = deliver(data);
    in_dispatch_ = false;
    if (!used) {
      // Closed for a protocol or handler error. Replies to the messages decoded before
      // the bad frame may sit in the shared batch buffer: drop them here, or the next
      // connection's flush_batch() would send them to the wrong peer.
      server_.batch_.clear();
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

std::optional<std::size_t> reactor_connection::deliver(std::span<const std::byte> data) {
  return dispatch_messages(*this, *decoder_, server_.handler_, server_.stats_, data);
}

void reactor_connection::send(std::span<const std::byte> message) {
  if (state_ != state::open) return;
  auto& encoder = *server_.encoder_;
  if (in_dispatch_ && output_.empty()) {
    // Replies of this dispatch leave in one send() at its end.
    server_.batch_.add(encoder, message);
    return;
  }
  bool was_empty = output_.empty();
  encoder.encode(message, output_);
  if (in_dispatch_) return;  // flushed when the dispatch ends
  if (was_empty) {
    handle_write();
  } else {
    after_write();
  }
}

void reactor_connection::flush_batch() {
  auto& batch = server_.batch_;
  if (!batch.empty()) {
    std::size_t sent = 0;
    if (output_.empty() && state_ != state::closed) {
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
      server_.stats_.bytes_out += sent;
    }
    if (sent < batch.size()) batch.copy_tail(sent, output_);
    batch.clear();
  }
  if (state_ != state::closed) after_write();
}

void reactor_connection::handle_write() {
  if (!output_.empty()) {
    auto r = output_.write_to(fd_.get());
    if (!r.ok() && !r.would_block()) {
      log(log_level::debug, "write to {}: {}", peer().to_uri(), errno_text(r.err));
      force_close(close_reason::reset);
      return;
    }
    server_.stats_.bytes_out += static_cast<std::size_t>(r.n);
  }
  after_write();
}

void reactor_connection::after_write() {
  const auto& opts = server_.options_;
  if (output_.size() > opts.hard_limit) {
    log(log_level::warning,
        "closing {}: {} bytes of output queued (hard limit {}): peer not reading", peer().to_uri(),
        output_.size(), opts.hard_limit);
    force_close(close_reason::output_overflow);
    return;
  }
  if (output_.empty()) {
    output_.shrink_to_fit();  // an idle connection holds no buffer
    if (state_ == state::draining) {
      force_close(drain_reason_);
      return;
    }
  }
  if (output_.size() > opts.high_water && !reading_paused_ && state_ == state::open) {
    reading_paused_ = true;
    log(log_level::debug, "pausing reads from {}: {} bytes queued", peer().to_uri(),
        output_.size());
  } else if (reading_paused_ && output_.size() <= opts.low_water) {
    reading_paused_ = false;
    // Edge-triggered: the data (and a FIN) that arrived while paused raise no new edge,
    // so read on to EOF/EAGAIN.
    if (server_.loop_.edge_triggered() && state_ == state::open)
      server_.loop_.call_again(watch_, io_read | io_hangup);
  }
  update_interest();
}

void reactor_connection::update_interest() {
  auto& loop = server_.loop_;
  if (loop.edge_triggered() || state_ == state::closed) return;
  std::uint32_t want = 0;
  if (state_ == state::open && !reading_paused_) want |= io_read;
  if (!output_.empty()) want |= io_write;
  loop.modify(watch_, want);
}

void reactor_connection::on_peer_eof() {
  if (auto problem = decoder_->finish(input_.data()); !problem.empty()) {
    ++server_.stats_.protocol_errors;
    log(log_level::warning, "{}: {}", peer().to_uri(), problem);
  }
  input_.clear();
  input_.shrink_to_fit();
  begin_drain(close_reason::peer_closed);
}

void reactor_connection::close() {
  begin_drain(close_reason::local);
}

void reactor_connection::begin_drain(close_reason why) {
  if (state_ != state::open) return;
  state_ = state::draining;
  drain_reason_ = why;
  if (in_dispatch_) return;  // flush_batch() finishes the job
  if (output_.empty()) {
    force_close(why);
    return;
  }
  update_interest();
}

void reactor_connection::force_close(close_reason why) {
  if (state_ == state::closed) return;
  state_ = state::closed;
  server_.loop_.unwatch(watch_);
  fd_.reset();
  input_.clear();
  output_.clear();
  server_.release(*this, why);
}

// ---- server --------------------------------------------------------------------------

reactor_server::reactor_server(event_loop& loop, server_options options, stream_handler handler)
    : loop_(loop),
      options_(std::move(options)),
      handler_(std::move(handler)),
      encoder_(make_encoder(options_.codec)),
      acceptor_(loop, options_.listen, options_.listening,
                [this](unique_fd fd, endpoint peer) { on_accept(std::move(fd), std::move(peer)); }),
      read_scratch_(new std::byte[read_scratch_size]),
      batch_(read_scratch_size + 64) {
  if (options_.idle_timeout.count() > 0) {
    auto period = std::max(options_.idle_timeout / 4, std::chrono::milliseconds(20));
    idle_timer_ = loop_.run_every(period, [this] { sweep_idle(); });
  }
}

reactor_server::~reactor_server() {
  if (idle_timer_) loop_.cancel(idle_timer_);
  if (drain_timer_) loop_.cancel(drain_timer_);
  conns_.for_each([](auto& c) { c.force_close(close_reason::server_stopping); });
}

void reactor_server::on_accept(unique_fd fd, endpoint peer) {
  if (shutting_down_) return;
  accept_connection(conns_, options_, stats_, handler_, std::move(fd), std::move(peer),
                    [this](conn_id id, unique_fd conn_fd, endpoint conn_peer) {
                      return std::make_unique<reactor_connection>(*this, id, std::move(conn_fd),
                                                                  std::move(conn_peer));
                    });
}

void reactor_server::release(reactor_connection& c, close_reason why) {
  note_closed(handler_, stats_, c, why);
  auto owned = conns_.remove(c.id());
  // The caller may still be inside this connection's callback: free after the dispatch.
  if (graveyard_.empty()) loop_.defer([this] { graveyard_.clear(); });
  graveyard_.push_back(std::move(owned));
}

connection* reactor_server::find(conn_id id) noexcept {
  return conns_.find(id);
}

void reactor_server::sweep_idle() {
  auto now = loop_.now();
  conns_.for_each([&](reactor_connection& c) {
    if (c.closed() || now - c.last_active() < options_.idle_timeout) return;
    log(log_level::info, "closing {}: idle for {} ms", c.peer().to_uri(),
        options_.idle_timeout.count());
    c.force_close(close_reason::idle_timeout);
  });
}

void reactor_server::begin_shutdown() {
  if (shutting_down_) return;
  shutting_down_ = true;
  acceptor_.close();
  drain_all(loop_, conns_, options_.drain_timeout, drain_timer_);
}

}  // namespace netkit::detail
