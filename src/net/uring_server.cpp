// Completion path, per connection:
//   recv (multishot, provided buffer) -> decode straight out of the buffer -> handler ->
//   replies appended to pending_ -> buffer returned to the ring -> one send of everything
//   queued (one send in flight; what arrives meanwhile waits in pending_).
// Submissions are only prepared here; the backend submits them all with its wait, so a
// loop turn costs one io_uring_enter however many connections were served.
#include "net/uring_server.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <functional>
#include <string_view>

#include "net/framing.hpp"
#include "net/servers.hpp"
#include "netkit/error.hpp"
#include "netkit/log.hpp"

namespace netkit::detail {

namespace {

constexpr unsigned op_recv = 1;
// Replies this large are sent straight from the received buffer when they can be; below,
// a copy costs less than holding the buffer for the send's round trip.
constexpr std::size_t min_reference = 256;
constexpr unsigned op_send = 2;

// Provided receive buffers, shared by all connections. 16 KiB takes a typical burst in
// one completion; up to 1024 of them (16 MiB of address space) cover a turn in which
// every one of ~1000 busy connections completes a recv before we return any buffer. The
// ring starts with initial_buffers and doubles on each shortage, so resident memory follows
// the peak load. A shortage only costs an ENOBUFS re-arm, never data.
// NETKIT_URING_RECV_BUFFERS=COUNT[xSIZE] overrides the maximum (tests use a tiny ring).
constexpr unsigned default_buffer_count = 1024;
constexpr unsigned initial_buffers = 32;
constexpr std::size_t default_buffer_size = 16 * 1024;

// Output buffers kept for reuse between connections: steady request/response traffic
// then allocates nothing, and the spare pool itself stays bounded.
constexpr std::size_t max_spare_buffer = 1 << 20;
constexpr std::size_t max_spare_bytes = 16 << 20;
constexpr std::size_t max_spare_count = 4096;
// After this long without input (or when the last connection closes), the pages of the
// receive buffers and the spare output buffers go back to the kernel: memory follows the
// load, and a quiet server holds only its connections' objects.
constexpr auto quiet_period = std::chrono::seconds(1);

// How long the destructor waits for the kernel to hand back every operation.
constexpr auto teardown_limit = std::chrono::seconds(5);

struct ring_config {
  unsigned count = default_buffer_count;
  std::size_t size = default_buffer_size;
};

ring_config ring_config_from_env() {
  ring_config cfg;
  const char* text = std::getenv("NETKIT_URING_RECV_BUFFERS");
  if (!text || !*text) return cfg;
  char* end = nullptr;
  unsigned long count = std::strtoul(text, &end, 10);
  unsigned long size = default_buffer_size;
  if (*end == 'x') size = std::strtoul(end + 1, &end, 10);
  if (*end != '\0' || count == 0 || size < 64 || size > (1ul << 24))
    throw usage_error(
        fmt::format("NETKIT_URING_RECV_BUFFERS={}: expected COUNT or COUNTxSIZE "
                    "(a power of two up to 32768, x 64..16777216 bytes)",
                    text));
  cfg.count = static_cast<unsigned>(count);
  cfg.size = size;
  return cfg;
}

}  // namespace

// ---- connection ----------------------------------------------------------------------

uring_connection::uring_connection(uring_server& server, conn_id id, unique_fd fd, endpoint peer)
    : connection(id, std::move(peer), fd.get()),
      server_(server),
      fd_(std::move(fd)),
      decoder_(make_decoder(server.options_.codec)),
      last_active_(server.loop_.now()) {}

std::size_t uring_connection::queued_output() const noexcept {
  return (sending_.size() - sent_) + pending_.size() + reply_ref_.size() + held_.size();
}

void uring_connection::arm_recv() {
  if (recv_armed_ || state_ != state::open || reading_paused_) return;
  auto* sqe = server_.ring_.sqe();
  io_uring_prep_recv_multishot(sqe, fd_.get(), nullptr, 0, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = server_.buffers_.group();
  uring_backend::target(sqe, this, op_recv);
  recv_armed_ = true;
}

void uring_connection::retry_recv() {
  arm_recv();
}

void uring_connection::cancel(unsigned op) noexcept {
  if (op == op_recv) {
    if (!recv_armed_ || recv_cancelling_) return;
    recv_cancelling_ = true;
  }
  try {
    auto* sqe = server_.ring_.sqe();
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
  if (state_ == state::closed && !in_flight() && zombie_index != SIZE_MAX) server_.bury(*this);
}

void uring_connection::on_recv(int result, std::uint32_t flags) {
  if (!(flags & IORING_CQE_F_MORE)) {
    recv_armed_ = false;
    recv_cancelling_ = false;
  }
  if (result > 0) {
    const unsigned id = flags >> IORING_CQE_BUFFER_SHIFT;
    if (state_ == state::open)
      on_data(server_.buffers_.data(id, static_cast<std::size_t>(result)), id);
    // Decoded or copied: the kernel may fill it again. Unless a send from it is in flight:
    // then on_send() gives it back.
    if (held_id_ != id || held_.empty()) server_.buffers_.recycle(id);
  } else {
    if (flags & IORING_CQE_F_BUFFER) server_.buffers_.recycle(flags >> IORING_CQE_BUFFER_SHIFT);
    if (result == 0) {
      if (state_ == state::open) on_peer_eof();
    } else if (result == -ENOBUFS) {
      // The ring ran dry (more receivers than buffers in one turn): the data waits in the
      // socket; re-arm once this turn has handed the buffers back.
      if (state_ == state::open) server_.starved(*this);
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
  active_ = true;
  server_.stats_.bytes_in += data.size();
  bool buffered = !input_.empty();
  if (buffered) {
    input_.append(data);
    data = input_.data();
  } else {
    dispatch_input_ = data;  // a reply inside it may be sent straight from the buffer
    dispatch_buffer_ = buffer_id;
  }
  in_dispatch_ = true;
  auto used = deliver(data);
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

std::optional<std::size_t> uring_connection::deliver(std::span<const std::byte> data) {
  return dispatch_messages(*this, *decoder_, server_.handler_, server_.stats_, data);
}

void uring_connection::send(std::span<const std::byte> message) {
  if (state_ != state::open) return;
  auto& encoder = *server_.encoder_;
  // The first reply of a dispatch, when nothing else is queued, unframed (raw, fixed) and
  // lying in the received buffer: flush() sends it from there, and the buffer returns to
  // the ring when the send completes. Saves copying it (a memmove per message).
  const std::less<const std::byte*> before;
  if (in_dispatch_ && message.size() >= min_reference && reply_ref_.empty() && held_.empty() &&
      !send_in_flight_ && pending_.empty() && sent_ == sending_.size() &&
      !before(message.data(), dispatch_input_.data()) &&
      !before(dispatch_input_.data() + dispatch_input_.size(), message.data() + message.size())) {
    std::array<std::byte, 8> header;
    if (encoder.header(message.size(), std::span<std::byte, 8>(header)) == 0 &&
        encoder.trailer().empty()) {
      reply_ref_ = message;
      return;
    }
  }
  if (pending_.capacity() == 0) pending_ = server_.take_buffer();
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

void uring_connection::flush() {
  if (send_in_flight_ || state_ == state::closed) return;
  if (!reply_ref_.empty()) {
    held_ = std::exchange(reply_ref_, {});
    held_id_ = dispatch_buffer_;
    ++server_.held_buffers_;
    auto* sqe = server_.ring_.sqe();
    io_uring_prep_send(sqe, fd_.get(), held_.data(), held_.size(), MSG_NOSIGNAL | MSG_WAITALL);
    uring_backend::target(sqe, this, op_send);
    send_in_flight_ = true;
    return;
  }
  if (sent_ == sending_.size()) {
    if (pending_.empty()) return;
    sending_.clear();
    sent_ = 0;
    std::swap(sending_, pending_);
  }
  auto* sqe = server_.ring_.sqe();
  // MSG_WAITALL: the kernel completes a partial send itself before posting the CQE.
  io_uring_prep_send(sqe, fd_.get(), sending_.data() + sent_, sending_.size() - sent_,
                     MSG_NOSIGNAL | MSG_WAITALL);
  uring_backend::target(sqe, this, op_send);
  send_in_flight_ = true;
}

void uring_connection::on_send(int result) {
  send_in_flight_ = false;
  std::span<const std::byte> held_rest;
  if (!held_.empty()) {
    // A send from a received buffer: what was not sent (an error, or a signal cut the
    // MSG_WAITALL send short) is copied out so the buffer can go back now.
    if (result >= 0 && state_ != state::closed)
      held_rest = held_.subspan(static_cast<std::size_t>(result));
    if (!held_rest.empty()) {
      sending_.clear();
      sent_ = 0;
      if (sending_.capacity() == 0) sending_ = server_.take_buffer();
      sending_.insert(sending_.end(), held_rest.begin(), held_rest.end());
    }
    held_ = {};
    --server_.held_buffers_;
    server_.buffers_.recycle(held_id_);
    if (state_ != state::closed && result > 0) {
      server_.stats_.bytes_out += static_cast<std::size_t>(result);
      flush();  // the rest, or what queued up meanwhile
      after_write();
      return;
    }
  }
  if (state_ == state::closed) {
    server_.give_buffer(sending_);  // the kernel is done with it
    return;
  }
  if (result < 0) {
    log(log_level::debug, "write to {}: {}", peer().to_uri(), errno_text(-result));
    force_close(close_reason::reset);
    return;
  }
  server_.stats_.bytes_out += static_cast<std::size_t>(result);
  sent_ += static_cast<std::size_t>(result);
  flush();  // the rest of a short send, or what queued up meanwhile
  after_write();
}

void uring_connection::after_write() {
  const auto& opts = server_.options_;
  const std::size_t queued = queued_output();
  if (queued > opts.hard_limit) {
    log(log_level::warning,
        "closing {}: {} bytes of output queued (hard limit {}): peer not reading", peer().to_uri(),
        queued, opts.hard_limit);
    force_close(close_reason::output_overflow);
    return;
  }
  if (queued == 0) {
    release_output();
    if (state_ == state::draining) {
      force_close(drain_reason_);
      return;
    }
  }
  if (queued > opts.high_water && !reading_paused_ && state_ == state::open) {
    reading_paused_ = true;
    log(log_level::debug, "pausing reads from {}: {} bytes queued", peer().to_uri(), queued);
    // Completions already posted are still taken (a bounded overshoot); no new ones come.
    cancel(op_recv);
  } else if (reading_paused_ && queued <= opts.low_water) {
    reading_paused_ = false;
    arm_recv();  // if the cancelled recv is still on its way back, its completion re-arms
  }
}

void uring_connection::release_output() noexcept {
  if (!send_in_flight_) {
    server_.give_buffer(sending_);
    sent_ = 0;
  }
  server_.give_buffer(pending_);
}

void uring_connection::on_peer_eof() {
  if (auto problem = decoder_->finish(input_.data()); !problem.empty()) {
    ++server_.stats_.protocol_errors;
    log(log_level::warning, "{}: {}", peer().to_uri(), problem);
  }
  input_.clear();
  input_.shrink_to_fit();
  begin_drain(close_reason::peer_closed);
}

void uring_connection::close() {
  begin_drain(close_reason::local);
}

void uring_connection::begin_drain(close_reason why) {
  if (state_ != state::open) return;
  state_ = state::draining;
  drain_reason_ = why;
  cancel(op_recv);
  if (in_dispatch_) return;  // on_data() finishes the job
  if (queued_output() == 0) force_close(why);
}

void uring_connection::force_close(close_reason why) {
  if (state_ == state::closed) return;
  state_ = state::closed;
  cancel(op_recv);
  if (send_in_flight_) cancel(op_send);
  // Operations in flight hold their own reference to the socket; it really closes (FIN)
  // when the last of them has been cancelled. The descriptor number is free at once,
  // which is why cancellation goes by user_data, never by descriptor. Only once they are
  // submitted, though: a queued send names the number alone, and with several loops in
  // one process (multi_reactor) another thread may accept a socket onto that number
  // before our next wait, which then sent our bytes to a stranger (case 19 test).
  if (in_flight()) {
    if (int rc = server_.ring_.submit_queued(); rc < 0)
      log(log_level::error, "submit before closing {}: {}", peer().to_uri(), errno_text(-rc));
  }
  fd_.reset();
  input_.clear();
  input_.shrink_to_fit();
  reply_ref_ = {};  // never submitted; its buffer goes back after this completion
  release_output();
  server_.release(*this, why);
}

// ---- server --------------------------------------------------------------------------

uring_server::uring_server(event_loop& loop, server_options options, stream_handler handler)
    : loop_(loop),
      ring_(*as_uring(loop.io_backend())),
      options_(std::move(options)),
      handler_(std::move(handler)),
      encoder_(make_encoder(options_.codec)),
      buffers_(ring_, ring_config_from_env().count, ring_config_from_env().size, initial_buffers),
      acceptor_(
          loop, ring_, options_.listen, options_.listening,
          [this](unique_fd fd, endpoint peer) { on_accept(std::move(fd), std::move(peer)); }) {
  if (options_.idle_timeout.count() > 0) {
    auto period = std::max(options_.idle_timeout / 4, std::chrono::milliseconds(20));
    idle_timer_ = loop_.run_every(period, [this] { sweep_idle(); });
  }
  trim_timer_ = loop_.run_every(quiet_period, [this] {
    if (stats_.bytes_in != bytes_in_at_trim_) {
      bytes_in_at_trim_ = stats_.bytes_in;
      trimmed_ = false;
    } else if (!trimmed_) {
      trim_memory();
    }
  });
}

uring_server::~uring_server() {
  destroying_ = true;
  if (idle_timer_) loop_.cancel(idle_timer_);
  if (drain_timer_) loop_.cancel(drain_timer_);
  if (trim_timer_) loop_.cancel(trim_timer_);
  acceptor_.close();
  conns_.for_each([](auto& c) { c.force_close(close_reason::server_stopping); });
  // The kernel still points at the acceptor, the zombies and the receive buffers until
  // their cancellations complete: wait for those completions (bounded).
  auto deadline = event_loop::clock::now() + teardown_limit;
  while ((!zombies_.empty() || !acceptor_.idle()) && event_loop::clock::now() < deadline)
    ring_.run_completions(50);
  if (!zombies_.empty() || !acceptor_.idle()) {
    log(log_level::error, "io_uring server: {} connections still have I/O in flight after {} s",
        zombies_.size(), teardown_limit.count());
    for (auto& z : zombies_)
      (void)z.release();  // leaked on purpose: freeing memory the kernel may write is worse
  }
  dead_->clear();
}

void uring_server::on_accept(unique_fd fd, endpoint peer) {
  if (shutting_down_) return;
  accept_connection(conns_, options_, stats_, handler_, std::move(fd), std::move(peer),
                    [this](conn_id id, unique_fd conn_fd, endpoint conn_peer) {
                      return std::make_unique<uring_connection>(*this, id, std::move(conn_fd),
                                                                std::move(conn_peer));
                    });
}

void uring_server::release(uring_connection& c, close_reason why) {
  note_closed(handler_, stats_, c, why);
  auto owned = conns_.remove(c.id());
  if (stats_.open == 0 && !destroying_ && !trimmed_) {
    trimmed_ = true;  // at most one pending trim
    loop_.defer([this] { trim_memory(); });
  }
  if (c.in_flight()) {
    c.zombie_index = zombies_.size();
    zombies_.push_back(std::move(owned));
  } else {
    bury(std::move(owned));
  }
}

void uring_server::bury(uring_connection& c) {
  const std::size_t index = c.zombie_index;
  std::swap(zombies_[index], zombies_.back());
  zombies_[index]->zombie_index = index;
  auto owned = std::move(zombies_.back());
  zombies_.pop_back();
  c.zombie_index = SIZE_MAX;
  bury(std::move(owned));
}

void uring_server::bury(std::unique_ptr<uring_connection> c) {
  // The caller may still be inside this connection's callback: free after the dispatch.
  if (dead_->empty()) loop_.defer([dead = dead_] { dead->clear(); });
  dead_->push_back(std::move(c));
}

void uring_server::starved(uring_connection& c) {
  if (destroying_) return;
  if (starved_.empty()) loop_.defer([this] { retry_starved(); });
  starved_.push_back(c.id());
}

void uring_server::retry_starved() {
  // Once per turn that ran dry, however many recvs did: the ring doubles at most once.
  if (buffers_.grow()) {
    log(log_level::debug, "io_uring receive buffers: {} of {} now in the ring", buffers_.posted(),
        buffers_.count());
  } else if (++buffer_shortages_ == 1 || buffer_shortages_ % 10000 == 0) {
    log(buffer_shortages_ == 1 ? log_level::info : log_level::debug,
        "io_uring receive buffers exhausted ({} x {} bytes; {} turns so far): reads resume as "
        "buffers return",
        buffers_.count(), buffers_.buffer_size(), buffer_shortages_);
  }
  starved_running_.clear();
  starved_running_.swap(starved_);
  for (auto id : starved_running_)
    if (auto* c = find(id)) static_cast<uring_connection*>(c)->retry_recv();
}

std::vector<std::byte> uring_server::take_buffer() {
  if (spare_buffers_.empty()) return {};
  auto v = std::move(spare_buffers_.back());
  spare_buffers_.pop_back();
  spare_bytes_ -= v.capacity();
  return v;
}

void uring_server::give_buffer(std::vector<std::byte>& v) noexcept {
  const std::size_t capacity = v.capacity();
  if (capacity == 0) return;
  v.clear();
  if (capacity <= max_spare_buffer && spare_bytes_ + capacity <= max_spare_bytes &&
      spare_buffers_.size() < max_spare_count && !destroying_) {
    try {
      spare_buffers_.push_back(std::move(v));
      spare_bytes_ += capacity;
    } catch (const std::bad_alloc&) {
    }
  }
  std::vector<std::byte>().swap(v);
}

void uring_server::trim_memory() {
  trimmed_ = true;
  std::vector<std::vector<std::byte>>().swap(spare_buffers_);
  spare_bytes_ = 0;
  // Without DEFER_TASKRUN the kernel may fill a buffer at any moment; with it, only while
  // this thread is inside io_uring_enter. An empty completion queue means every filled
  // buffer has been delivered and handed back, so none holds data.
  // A buffer that a send is still reading from must keep its bytes.
  if ((ring_.setup_flags() & IORING_SETUP_DEFER_TASKRUN) && io_uring_cq_ready(&ring_.ring()) == 0 &&
      held_buffers_ == 0)
    buffers_.trim();
}

connection* uring_server::find(conn_id id) noexcept {
  return conns_.find(id);
}

void uring_server::sweep_idle() {
  auto now = loop_.now();
  conns_.for_each([&](uring_connection& c) {
    if (c.closed()) return;
    // Completions run before the loop reads the clock, so activity is stamped here: a
    // connection is closed between idle_timeout and idle_timeout + one sweep period
    // after its last input, never earlier.
    if (c.take_activity()) {
      c.set_last_active(now);
    } else if (now - c.last_active() >= options_.idle_timeout) {
      log(log_level::info, "closing {}: idle for {} ms", c.peer().to_uri(),
          options_.idle_timeout.count());
      c.force_close(close_reason::idle_timeout);
    }
  });
}

void uring_server::begin_shutdown() {
  if (shutting_down_) return;
  shutting_down_ = true;
  acceptor_.close();
  drain_all(loop_, conns_, options_.drain_timeout, drain_timer_);
}

std::unique_ptr<stream_server> make_uring_server(event_loop& loop, server_options options,
                                                 stream_handler handler) {
  return std::make_unique<uring_server>(loop, std::move(options), std::move(handler));
}

}  // namespace netkit::detail
