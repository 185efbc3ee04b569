#include "support/echo_driver.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <limits>
#include <thread>

#include <fmt/format.h>

#include "netkit/buffer.hpp"
#include "netkit/error.hpp"
#include "netkit/event/loop.hpp"
#include "netkit/net/stream_client.hpp"
#include "netkit/socket.hpp"
#include "support/client_io.hpp"

namespace netkit::test {

std::vector<std::byte> make_framed_stream(const codec_spec& spec, std::mt19937_64& rng,
                                          std::size_t messages, std::size_t max_payload) {
  max_payload = std::min(max_payload, spec.max_message);
  if (spec.kind == codec_kind::length16) max_payload = std::min<std::size_t>(max_payload, 65535);
  std::uniform_int_distribution<std::size_t> size_dist(1, std::max<std::size_t>(max_payload, 1));
  std::uniform_int_distribution<int> any_byte(0, 255);
  std::uniform_int_distribution<int> text_byte(0x20, 0x7e);  // never '\r' or '\n'
  bool text = spec.kind == codec_kind::line || spec.kind == codec_kind::crlf;
  auto encoder = make_encoder(spec);
  std::vector<std::byte> out;
  std::vector<std::byte> payload;
  byte_buffer framed;
  for (std::size_t m = 0; m < messages; ++m) {
    std::size_t size = spec.kind == codec_kind::fixed ? spec.fixed_size : size_dist(rng);
    payload.resize(size);
    for (auto& b : payload)
      b = std::byte(text ? text_byte(rng) : any_byte(rng));
    if (spec.kind == codec_kind::raw) {
      out.insert(out.end(), payload.begin(), payload.end());
      continue;
    }
    framed.clear();
    encoder->encode(payload, framed);
    auto d = framed.data();
    out.insert(out.end(), d.begin(), d.end());
  }
  return out;
}

std::string echo_result::problem(const echo_plan& plan) const {
  std::string p;
  if (mismatch_at)
    p += fmt::format("echo differs at byte {} ({}); ", *mismatch_at, mismatch_detail);
  if (err) p += fmt::format("error {}; ", errno_text(err));
  if (!closed.empty()) p += fmt::format("closed: {}; ", closed);
  if (received != plan.total())
    p += fmt::format("received {} of {} bytes (sent {}); ", received, plan.total(), sent);
  if (plan.half_close && !eof) p += "no EOF after the echo; ";
  if (!plan.half_close && eof && received != plan.total()) p += "early EOF; ";
  return p;
}

std::string echo_run::problems(const std::vector<echo_plan>& plans) const {
  std::string out;
  int shown = 0, bad = 0;
  for (std::size_t i = 0; i < results.size(); ++i) {
    auto p = results[i].problem(plans[i]);
    if (p.empty()) continue;
    ++bad;
    if (shown++ < 5) out += fmt::format("client {}: {}\n", i, p);
  }
  if (bad > 0)
    out = fmt::format("{} of {} clients failed{}:\n", bad, results.size(),
                      timed_out ? " (deadline passed)" : "") +
          out;
  return out;
}

namespace {

// Output a client leaves queued in its connection before it waits for the socket to take
// it: the driver's EAGAIN (a connection has no "output drained" callback, so the driver
// looks at queued_output() once per turn). Bounds the driver's memory per client.
constexpr std::size_t feed_limit = 64 << 10;
// Bounds per client per turn, as the poll driver had: unsplit sends, and raw reads.
constexpr int sends_per_turn = 64;
constexpr int reads_per_turn = 16;

std::byte expected_at(const echo_plan& plan, std::size_t offset) {
  const auto& b = *plan.block;
  return b[offset % b.size()];
}

// Takes the next bytes of the echo; false at the first byte that differs from the plan's
// stream (or lies beyond it), recorded with the bytes around it.
bool take_echo(const echo_plan& plan, echo_result& r, std::span<const std::byte> data) {
  for (std::size_t k = 0; k < data.size(); ++k) {
    if (r.received + k < plan.total() && data[k] == expected_at(plan, r.received + k)) continue;
    r.mismatch_at = r.received + k;
    std::size_t from = k >= 8 ? k - 8 : 0;
    std::size_t len = std::min<std::size_t>(32, data.size() - from);
    std::vector<std::byte> expected;
    for (std::size_t j = 0; j < len && r.received + from + j < plan.total(); ++j)
      expected.push_back(expected_at(plan, r.received + from + j));
    r.mismatch_detail = fmt::format("from byte {}: expected '{}', got '{}'", r.received + from,
                                    printable(expected), printable(data.subspan(from, len)));
    return false;
  }
  r.received += data.size();
  return true;
}

// The length of the next piece of the stream from offset `queued`: the rest of the
// current block, cut to 1..max_split bytes (random) when the plan splits.
std::size_t next_piece(const echo_plan& plan, std::size_t queued, std::mt19937_64& rng) {
  const std::size_t block = plan.block->size();
  std::size_t len = std::min(block - queued % block, plan.total() - queued);
  if (plan.max_split > 0)
    len = std::min(len, std::uniform_int_distribution<std::size_t>(1, plan.max_split)(rng));
  return len;
}

// What the turn loop needs to know after a client's turn.
struct turn_need {
  bool now = false;   // more can be done at once: do not wait
  bool soon = false;  // waiting on something no event announces (drain, slow-read timer)
};

// Every other plan, through one stream_client with codec raw: the driver cuts the framed
// stream itself and sends each piece as one raw message, so the server sees exactly the
// splits a plan asks for. Connections are matched to plans in the order they are
// established (they all go to the same server), failures likewise.
class stream_clients {
 public:
  stream_clients(event_loop& loop, const endpoint& server, const std::vector<echo_plan>& plans,
                 std::vector<std::size_t> indices, echo_run& run, connect_options connecting)
      : plans_(plans), run_(run), indices_(std::move(indices)) {
    client_options options;
    // The largest raw message the codec allows: a plan's block (many frames, sent whole
    // when the plan does not split) may exceed the default 1 MiB.
    options.codec = codec_spec::parse("raw,max=1073741824");
    options.connecting = connecting;
    // The driver bounds its own output (feed_limit); a client that stopped reading because
    // its output is queued would deadlock against a server that stopped reading because
    // its output to us is queued.
    options.high_water = options.hard_limit = std::numeric_limits<std::size_t>::max();
    stream_handler handler;
    handler.on_connect = [this](connection& c) { connected(c); };
    handler.on_message = [this](connection& c, std::span<const std::byte> data) {
      received(c, data);
    };
    handler.on_close = [this](connection& c, close_reason why) { closed(c, why); };
    handler.on_connect_failed = [this](stream_client&, const endpoint&, const sys_error& e) {
      if (next_ == indices_.size()) return;
      auto& s = add_state(indices_[next_++]);
      run_.results[s.plan].err = e.errno_value();
      finish(s, nullptr);
    };
    states_.reserve(indices_.size());
    client_ = make_stream_client(loop, options, std::move(handler));
    for (std::size_t i = 0; i < indices_.size(); ++i)
      client_->connect(server);
  }

  bool finished() const { return done_ == indices_.size(); }

  // One turn of output for every connected client: one piece for a splitting plan,
  // otherwise whole blocks (shared bytes, no copy) up to feed_limit; then the half-close
  // once everything queued has been written.
  turn_need pump(std::mt19937_64& rng) {
    turn_need need;
    for (std::size_t i = 0; i < states_.size(); ++i) {
      if (states_[i].done) continue;
      connection* c = client_->find(states_[i].id);
      if (!c) continue;
      feed(states_[i], *c, rng);
      auto& s = states_[i];  // sending may have closed it (reset): look again
      if (s.done) continue;
      const auto& plan = plans_[s.plan];
      run_.results[s.plan].sent = s.queued - c->queued_output();
      if (s.queued == plan.total() && plan.half_close && !s.shut && c->queued_output() == 0) {
        ::shutdown(c->fd(), SHUT_WR);
        s.shut = true;
      }
      if (s.queued < plan.total() && c->queued_output() < feed_limit) need.now = true;
      if (s.queued < plan.total() || (plan.half_close && !s.shut)) need.soon = true;
    }
    return need;
  }

 private:
  struct state {
    std::size_t plan;  // index into plans_ and run_.results
    conn_id id;
    framed_message whole;  // an unsplit plan's block, framed once (raw: its bytes)
    std::size_t queued = 0;
    bool shut = false;
    bool done = false;
  };

  state& add_state(std::size_t plan) {
    auto& s = states_.emplace_back();
    s.plan = plan;
    return s;
  }

  void connected(connection& c) {
    if (next_ == indices_.size()) {
      c.close();
      return;
    }
    c.context() = states_.size();
    auto& s = add_state(indices_[next_++]);
    s.id = c.id();
    const auto& plan = plans_[s.plan];
    if (plan.max_split == 0) s.whole = client_->frame(std::span(*plan.block));
  }

  state* state_of(connection& c) {
    auto* index = std::any_cast<std::size_t>(&c.context());
    return index ? &states_[*index] : nullptr;
  }

  void received(connection& c, std::span<const std::byte> data) {
    auto* s = state_of(c);
    if (!s || s->done) return;
    const auto& plan = plans_[s->plan];
    auto& r = run_.results[s->plan];
    if (!take_echo(plan, r, data)) {
      finish(*s, &c);
      return;
    }
    if (r.received == plan.total() && !plan.half_close) {
      r.sent = s->queued - c.queued_output();
      finish(*s, &c);
    }
  }

  void closed(connection& c, close_reason why) {
    auto* s = state_of(c);
    if (!s || s->done) return;
    auto& r = run_.results[s->plan];
    switch (why) {
      case close_reason::peer_closed:
        r.eof = true;
        break;
      case close_reason::reset:
        // The close reason stands for the errno, which the connection does not report.
        r.err = ECONNRESET;
        break;
      default:
        r.closed = std::string(to_string(why));
        break;
    }
    finish(*s, nullptr);
  }

  void finish(state& s, connection* c) {
    s.done = true;
    ++done_;
    if (c) c->close();
  }

  void feed(state& s, connection& c, std::mt19937_64& rng) {
    const auto& plan = plans_[s.plan];
    const auto& block = *plan.block;
    // Bound: one piece when splitting, else sends_per_turn, and feed_limit either way.
    for (int i = 0;
         i < sends_per_turn && !s.done && s.queued < plan.total() && c.queued_output() < feed_limit;
         ++i) {
      const std::size_t off = s.queued % block.size();
      if (plan.max_split == 0 && off == 0 && plan.total() - s.queued >= block.size()) {
        s.queued += block.size();
        c.send(s.whole);
        continue;
      }
      const std::size_t len = next_piece(plan, s.queued, rng);
      s.queued += len;
      c.send(std::span(block).subspan(off, len));
      if (plan.max_split > 0) break;  // one piece per turn: clients interleave
    }
  }

  const std::vector<echo_plan>& plans_;
  echo_run& run_;
  std::vector<std::size_t> indices_;  // the plans this client serves
  std::size_t next_ = 0;              // indices_[next_] goes to the next connect or failure
  std::size_t done_ = 0;
  std::vector<state> states_;  // in connection order; a connection's context is its index
  // Last: destroyed first (closing what is open calls back into the members above).
  std::unique_ptr<stream_client> client_;
};

// A plan with a slow reader or its own SO_RCVBUF, which stream_client cannot serve: a
// connection reads whenever its socket is readable (reads pause only for its own
// back-pressure; connection has no pause_reading()), and the connector makes its socket
// itself (connect_options has no hook for options before connect(2); SO_RCVBUF set
// afterwards leaves the peer with the window it saw in the handshake, and a sender whose
// window then shrinks below half that waits on zero-window probes, for seconds at a
// time). So the driver makes this socket, connects it and reads and writes it itself, on
// the same loop, taking slow_chunk bytes every slow_interval until slow_for has passed.
class raw_client final : public io_handler {
 public:
  raw_client(event_loop& loop, const endpoint& server, const echo_plan& plan, echo_result& result,
             clock::time_point start)
      : loop_(loop), plan_(plan), r_(result), slow_until_(start + plan.slow_for) {
    try {
      fd_ = open_socket(server, io_mode::nonblocking);
      if (plan.rcvbuf > 0) set_recv_buffer(fd_.get(), plan.rcvbuf);
      if (server.kind() == transport::tcp) set_tcp_nodelay(fd_.get(), true);
      int rc;
      do {
        rc = ::connect(fd_.get(), server.addr(), server.length());
      } while (rc != 0 && errno == EINTR);
      if (rc != 0 && errno != EINPROGRESS) throw_sys_error("connect", server.to_uri());
      connecting_ = rc != 0;
      // Edge-triggered backends report both directions from the start and are never
      // modified; level-triggered ones get the interest each turn calls for.
      interest_ = io_read | io_write;
      watch_ = loop_.watch(fd_.get(), interest_, *this);
    } catch (const sys_error& e) {  // select: a descriptor >= FD_SETSIZE too
      fd_.reset();
      r_.err = e.errno_value();
      done_ = true;
    }
  }
  ~raw_client() { stop(); }
  raw_client(const raw_client&) = delete;
  raw_client& operator=(const raw_client&) = delete;

  bool done() const { return done_; }

  turn_need pump(std::mt19937_64& rng) {
    turn_need need;
    if (done_ || connecting_) return need;
    const auto now = clock::now();
    const bool slow = now < slow_until_;
    if (can_write_ && r_.sent < plan_.total()) write(rng);
    if (!done_ && slow && now >= next_slow_read_) {
      read(plan_.slow_chunk, 1);
      next_slow_read_ = now + plan_.slow_interval;
    } else if (!done_ && !slow && can_read_) {
      read(read_buffer_size, reads_per_turn);
    }
    if (done_) return need;
    if (r_.sent == plan_.total() && plan_.half_close && !shut_) {
      ::shutdown(fd_.get(), SHUT_WR);
      shut_ = true;
    }
    update_interest(slow);
    need.now = (can_write_ && r_.sent < plan_.total()) || (!slow && can_read_);
    need.soon = slow;
    return need;
  }

  void on_io(std::uint32_t events) override {
    if (connecting_) {
      if (int err = pending_error(fd_.get()); err != 0) {
        fail(err);
        return;
      }
      connecting_ = false;
    }
    if (events & io_write) can_write_ = true;
    if (events & (io_read | io_hangup)) can_read_ = true;
  }

 private:
  static constexpr std::size_t read_buffer_size = 64 << 10;

  void write(std::mt19937_64& rng) {
    const auto& block = *plan_.block;
    // Bound: one piece when splitting, else sends_per_turn.
    for (int i = 0; i < sends_per_turn && r_.sent < plan_.total(); ++i) {
      const std::size_t off = r_.sent % block.size();
      ssize_t n = ::send(fd_.get(), block.data() + off, next_piece(plan_, r_.sent, rng),
                         MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0) {
        if (retry_after_error(can_write_)) continue;
        return;
      }
      r_.sent += static_cast<std::size_t>(n);
      if (plan_.max_split > 0) return;
    }
  }

  void read(std::size_t want, int budget) {
    for (int i = 0; i < budget; ++i) {
      ssize_t n = ::recv(fd_.get(), buffer_.data(), std::min(want, buffer_.size()), MSG_DONTWAIT);
      if (n < 0) {
        if (retry_after_error(can_read_)) continue;
        return;
      }
      if (n == 0) {
        r_.eof = true;
        stop();
        return;
      }
      if (!take_echo(plan_, r_, std::span(buffer_).first(static_cast<std::size_t>(n))) ||
          (r_.received == plan_.total() && !plan_.half_close)) {
        stop();
        return;
      }
    }
  }

  void update_interest(bool slow) {
    if (loop_.edge_triggered()) return;
    // Level-triggered: no read interest while reading slowly (the data waiting would
    // wake every turn), no write interest once everything is written.
    std::uint32_t want = 0;
    if (!slow) want |= io_read;
    if (r_.sent < plan_.total()) want |= io_write;
    if (want != interest_) loop_.modify(watch_, interest_ = want);
  }

  // After a send/recv failed: true to try again (EINTR); otherwise the socket would block
  // (`ready` cleared until the loop reports it again) or the client has failed.
  bool retry_after_error(bool& ready) {
    if (errno == EINTR) return true;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      ready = false;
    } else {
      fail(errno);
    }
    return false;
  }

  void fail(int err) {
    r_.err = err;
    stop();
  }

  void stop() {
    done_ = true;
    if (!fd_) return;
    loop_.unwatch(watch_);
    fd_.reset();
  }

  event_loop& loop_;
  const echo_plan& plan_;
  echo_result& r_;
  const clock::time_point slow_until_;
  unique_fd fd_;
  watch_id watch_;
  std::uint32_t interest_ = 0;
  bool connecting_ = false;
  bool can_write_ = true;
  bool can_read_ = true;
  bool shut_ = false;
  bool done_ = false;
  clock::time_point next_slow_read_{};
  std::vector<std::byte> buffer_ = std::vector<std::byte>(read_buffer_size);
};

}  // namespace

echo_run run_echo_clients(const endpoint& server, const std::vector<echo_plan>& plans,
                          deadline until, std::uint64_t seed, const std::string& backend,
                          const std::function<void()>& tick) {
  echo_run run;
  run.results.resize(plans.size());
  std::mt19937_64 rng(seed);
  const auto start = clock::now();
  event_loop loop(backend);
  connect_options connecting;
  // One attempt, for as long as the run may take.
  connecting.timeout = std::max(std::chrono::ceil<std::chrono::milliseconds>(until - start),
                                std::chrono::milliseconds(1));
  std::vector<std::size_t> streamed;
  std::vector<std::unique_ptr<raw_client>> raw;
  for (std::size_t i = 0; i < plans.size(); ++i) {
    if (plans[i].slow_for.count() > 0 || plans[i].rcvbuf > 0) {
      raw.push_back(std::make_unique<raw_client>(loop, server, plans[i], run.results[i], start));
    } else {
      streamed.push_back(i);
    }
  }
  stream_clients clients(loop, server, plans, std::move(streamed), run, connecting);
  auto next_tick = start;
  // Bound: the deadline.
  for (;;) {
    auto need = clients.pump(rng);
    bool finished = clients.finished();
    for (auto& c : raw) {
      auto n = c->pump(rng);
      need.now |= n.now;
      need.soon |= n.soon;
      finished = finished && c->done();
    }
    if (finished) break;
    auto now = clock::now();
    if (now >= until) {
      run.timed_out = true;
      break;
    }
    if (tick && now >= next_tick) {
      tick();
      next_tick = now + std::chrono::milliseconds(20);
    }
    std::chrono::milliseconds wait = need.now            ? std::chrono::milliseconds(0)
                                     : need.soon || tick ? std::chrono::milliseconds(5)
                                                         : std::chrono::milliseconds(50);
    loop.run_once(std::min(wait, std::chrono::ceil<std::chrono::milliseconds>(until - now)));
  }
  run.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - start);
  return run;
}

std::vector<echo_plan> make_echo_plans(const codec_spec& spec, std::size_t clients,
                                       std::size_t messages, std::size_t max_payload,
                                       std::size_t max_split, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<echo_plan> out(clients);
  for (auto& p : out) {
    p.block = std::make_shared<std::vector<std::byte>>(
        make_framed_stream(spec, rng, messages, max_payload));
    p.max_split = max_split;
  }
  return out;
}

echo_plan make_half_close_plan(const codec_spec& spec, std::size_t bytes, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  bool raw = spec.kind == codec_kind::raw;
  auto block = make_framed_stream(spec, rng, raw ? 1 : 256, raw ? (1u << 20) : 4096);
  echo_plan plan;
  plan.repeat = std::max<std::size_t>(1, bytes / block.size());
  plan.block = std::make_shared<std::vector<std::byte>>(std::move(block));
  plan.half_close = true;
  return plan;
}

std::size_t stage_resets_mid_message(const endpoint& server, const codec_spec& spec,
                                     std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto frame = make_framed_stream(spec, rng, 1, 400);
  for (int i = 0; i < 20; ++i) {
    auto fd = connect_client(server);
    // Half a frame (at least one byte), then RST.
    send_all(fd.get(), std::span(frame).first(std::max<std::size_t>(1, frame.size() / 2)));
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    set_reset_on_close(fd.get());
  }
  auto fd = connect_client(server);
  set_recv_buffer(fd.get(), 4096);
  auto bulk = make_framed_stream(spec, rng, 64, 4000);
  std::size_t sent = 0;
  auto until = deadline_after(std::chrono::seconds(2));
  // Bound: 8 MiB or 2 s, whichever first (the server stops reading once it is backed up).
  // The stream stays whole frames: each send continues where the last one stopped.
  while (sent < (8u << 20) && clock::now() < until) {
    std::size_t off = sent % bulk.size();
    ssize_t n = ::send(fd.get(), bulk.data() + off, bulk.size() - off, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) sent += static_cast<std::size_t>(n);
    if (n < 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  set_reset_on_close(fd.get());
  return sent;
}

}  // namespace netkit::test
