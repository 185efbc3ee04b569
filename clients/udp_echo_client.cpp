// Datagram echo client: a window of outstanding requests, each datagram carrying a header
//   u64 index (send order of this datagram, every attempt counts) | u32 seq | u32 attempt
// in network byte order, so replies can be classified exactly: a second copy of an index
// is a duplicate, a first copy whose index is below the highest seen is reordered, and an
// index never seen is lost.
#include <endian.h>
#include <poll.h>

#include <algorithm>
#include <cstring>
#include <iostream>
#include <limits>
#include <map>
#include <string>

#include <fmt/format.h>

#include "netkit/datagram.hpp"
#include "netkit/error.hpp"
#include "udp_echo_client.hpp"

namespace netkit::clients {

namespace {

using clock = std::chrono::steady_clock;
constexpr std::size_t header_size = 16;
// Requests in flight at once: enough that replies overlap (a relay can reorder them),
// few enough that socket buffers on loopback never overflow.
constexpr std::size_t udp_window = 32;

struct header {
  std::uint64_t index;
  std::uint32_t seq;
  std::uint32_t attempt;
};

void put_header(std::span<std::byte> out, const header& h) {
  auto index = htobe64(h.index);
  auto seq = htobe32(h.seq);
  auto attempt = htobe32(h.attempt);
  std::memcpy(out.data(), &index, 8);
  std::memcpy(out.data() + 8, &seq, 4);
  std::memcpy(out.data() + 12, &attempt, 4);
}

header get_header(std::span<const std::byte> in) {
  std::uint64_t index;
  std::uint32_t seq, attempt;
  std::memcpy(&index, in.data(), 8);
  std::memcpy(&seq, in.data() + 8, 4);
  std::memcpy(&attempt, in.data() + 12, 4);
  return {be64toh(index), be32toh(seq), be32toh(attempt)};
}

struct no_server {};

class echo_session {
 public:
  explicit echo_session(const dgram_client_options& opts)
      : opts_(opts), fd_(open_dgram_client(opts.connect, io_mode::nonblocking)), buffer_(65536) {}

  // Sends attempt `attempt` of request `seq` with `payload` after the header.
  void send(std::uint32_t seq, std::uint32_t attempt, std::span<const std::byte> payload) {
    std::vector<std::byte> out(header_size + payload.size());
    std::uint64_t index = received_.size();
    put_header(out, {index, seq, attempt});
    std::copy(payload.begin(), payload.end(), out.begin() + header_size);
    auto r = send_datagram(fd_.get(), out);
    // A unix-dgram peer's queue is short (net.unix.max_dgram_qlen, 10 by default): wait
    // for room, handling replies meanwhile, at most one timeout; then count it as lost.
    for (auto give_up = clock::now() + opts_.timeout; r.would_block() && clock::now() < give_up;
         r = send_datagram(fd_.get(), out)) {
      pollfd p{fd_.get(), POLLOUT, 0};
      ::poll(&p, 1, 10);
      receive_until(clock::now(), false);
    }
    if (r.err == ECONNREFUSED) throw no_server{};
    if (!r.ok() && !r.would_block()) throw sys_error(r.err, "send", opts_.connect.to_uri());
    received_.push_back(0);
    outstanding_.emplace(index, pending{seq, attempt, clock::now()});
    if (seq >= answered_.size()) answered_.resize(seq + 1, false);
  }

  // Waits until `until` (or the first reply, with stop_at_reply) and handles every reply.
  // Returns the payload of the last new reply (line mode prints it).
  void receive_until(clock::time_point until, bool stop_at_reply) {
    for (;;) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(until - clock::now()).count();
      if (left < 0) left = 0;
      pollfd p{fd_.get(), POLLIN, 0};
      int rc = ::poll(&p, 1, static_cast<int>(left));
      if (rc < 0 && errno != EINTR) throw_sys_error("poll");
      bool got = false;
      // Bounded by what the socket holds: stops at EAGAIN.
      for (;;) {
        auto r = recv_datagram(fd_.get(), buffer_, opts_.connect.kind(), recv_flags::dont_wait);
        if (r.would_block()) break;
        if (r.err == ECONNREFUSED) throw no_server{};
        if (!r.ok()) throw sys_error(r.err, "recv", opts_.connect.to_uri());
        if (r.truncated || static_cast<std::size_t>(r.n) < header_size) {
          ++stats_.truncated;
          continue;
        }
        got |= classify(std::span(buffer_).first(static_cast<std::size_t>(r.n)));
      }
      if ((got && stop_at_reply) || clock::now() >= until) return;
    }
  }

  // Retries or gives up on attempts older than the timeout; returns how many requests
  // were given up.
  template <typename Resend>
  void expire(Resend&& resend) {
    auto now = clock::now();
    for (auto it = outstanding_.begin(); it != outstanding_.end();) {
      if (now - it->second.sent_at < opts_.timeout) {
        ++it;
        continue;
      }
      auto p = it->second;
      it = outstanding_.erase(it);
      if (answered_[p.seq]) continue;
      if (static_cast<int>(p.attempt) < opts_.retries)
        resend(p.seq, p.attempt + 1);
      else
        ++stats_.unanswered;
    }
  }

  clock::time_point next_deadline() const {
    auto t = clock::time_point::max();
    for (const auto& [index, p] : outstanding_)
      t = std::min(t, p.sent_at + opts_.timeout);
    return t;
  }

  std::size_t outstanding() const noexcept { return outstanding_.size(); }
  // Below the unix-dgram queue length, so neither side's queue overflows.
  std::size_t window() const noexcept {
    return opts_.connect.kind() == transport::unix_dgram ? 8 : udp_window;
  }
  bool answered(std::uint32_t seq) const { return seq < answered_.size() && answered_[seq]; }
  const std::string& last_payload() const noexcept { return last_payload_; }

  void print_summary(std::size_t requests) const {
    std::uint64_t distinct = 0;
    for (auto v : received_)
      distinct += v > 0;
    fmt::print(
        "summary: requests={} datagrams={} replies={} lost={} duplicated={} reordered={} "
        "unanswered={} truncated={} rtt_us_min={} rtt_us_avg={} rtt_us_max={}\n",
        requests, received_.size(), distinct, received_.size() - distinct, stats_.duplicated,
        stats_.reordered, stats_.unanswered, stats_.truncated, distinct ? stats_.rtt_min : 0,
        distinct ? stats_.rtt_sum / distinct : 0, stats_.rtt_max);
  }
  std::uint64_t unanswered() const noexcept { return stats_.unanswered; }

 private:
  struct pending {
    std::uint32_t seq;
    std::uint32_t attempt;
    clock::time_point sent_at;
  };

  bool classify(std::span<const std::byte> reply) {
    auto h = get_header(reply);
    if (h.index >= received_.size()) {
      ++stats_.truncated;  // not one of ours
      return false;
    }
    if (received_[h.index]++ > 0) {
      ++stats_.duplicated;
      return false;
    }
    if (max_index_ >= 0 && static_cast<std::int64_t>(h.index) < max_index_) ++stats_.reordered;
    max_index_ = std::max<std::int64_t>(max_index_, static_cast<std::int64_t>(h.index));
    if (auto it = outstanding_.find(h.index); it != outstanding_.end()) {
      auto us =
          std::chrono::duration_cast<std::chrono::microseconds>(clock::now() - it->second.sent_at)
              .count();
      stats_.rtt_min = std::min<std::uint64_t>(stats_.rtt_min, us);
      stats_.rtt_max = std::max<std::uint64_t>(stats_.rtt_max, us);
      stats_.rtt_sum += us;
      outstanding_.erase(it);
    }
    if (h.seq < answered_.size()) answered_[h.seq] = true;
    auto body = reply.subspan(header_size);
    last_payload_.assign(reinterpret_cast<const char*>(body.data()), body.size());
    return true;
  }

  struct counters {
    std::uint64_t duplicated = 0, reordered = 0, unanswered = 0, truncated = 0;
    std::uint64_t rtt_min = std::numeric_limits<std::uint64_t>::max(), rtt_max = 0, rtt_sum = 0;
  };

  const dgram_client_options& opts_;
  unique_fd fd_;
  std::vector<std::byte> buffer_;
  std::vector<std::uint32_t> received_;  // per datagram index: copies received
  std::vector<bool> answered_;           // per request seq
  std::map<std::uint64_t, pending> outstanding_;
  std::int64_t max_index_ = -1;
  std::string last_payload_;
  counters stats_;
};

int run_count_mode(const dgram_client_options& opts, echo_session& s) {
  std::vector<std::byte> payload(opts.size - header_size);
  for (std::size_t i = 0; i < payload.size(); ++i)
    payload[i] = std::byte('a' + i % 26);
  auto resend = [&](std::uint32_t seq, std::uint32_t attempt) { s.send(seq, attempt, payload); };
  std::uint32_t next = 0;
  while (next < opts.count || s.outstanding() > 0) {
    while (next < opts.count && s.outstanding() < s.window())
      s.send(next++, 0, payload);
    s.receive_until(std::min(s.next_deadline(), clock::now() + std::chrono::milliseconds(5)),
                    false);
    s.expire(resend);
  }
  // Late copies (a relay's duplicates or delayed datagrams) still count.
  s.receive_until(clock::now() + opts.timeout, false);
  s.print_summary(opts.count);
  return s.unanswered() == 0 ? 0 : 3;
}

int run_line_mode(const dgram_client_options& opts, echo_session& s) {
  std::string line;
  std::uint32_t seq = 0;
  while (std::getline(std::cin, line)) {
    auto bytes = std::as_bytes(std::span(line));
    s.send(seq, 0, bytes);
    auto resend = [&](std::uint32_t q, std::uint32_t attempt) { s.send(q, attempt, bytes); };
    while (!s.answered(seq) && s.outstanding() > 0) {
      s.receive_until(s.next_deadline(), true);
      s.expire(resend);
    }
    if (s.answered(seq))
      fmt::print("{}\n", s.last_payload());
    else
      fmt::print(stderr, "no reply to line {} after {} attempts\n", seq + 1, opts.retries + 1);
    std::fflush(stdout);
    ++seq;
  }
  s.receive_until(clock::now() + std::chrono::milliseconds(10), false);
  s.print_summary(seq);
  return s.unanswered() == 0 ? 0 : 3;
}

}  // namespace

int run_dgram_echo_client(const dgram_client_options& opts) {
  if (opts.connect.kind() != transport::udp && opts.connect.kind() != transport::unix_dgram)
    throw usage_error(fmt::format("{} is not a datagram endpoint", opts.connect.to_uri()));
  if (opts.count > 0 && opts.size < header_size)
    throw usage_error(fmt::format("--size must be at least {} (the sequence header)", header_size));
  if (opts.retries < 0) throw usage_error("--retries must not be negative");
  try {
    echo_session s(opts);
    return opts.count > 0 ? run_count_mode(opts, s) : run_line_mode(opts, s);
  } catch (const sys_error& e) {
    // A unix-dgram socket file with no server behind it, or none at all.
    if (e.errno_value() != ECONNREFUSED && e.errno_value() != ENOENT) throw;
    std::fflush(stdout);
    fmt::print(stderr, "no server at {} ({})\n", opts.connect.to_uri(),
               errno_text(e.errno_value()));
    return 2;
  } catch (const no_server&) {
    std::fflush(stdout);
    fmt::print(stderr, "no server at {} (connection refused)\n", opts.connect.to_uri());
    return 2;
  }
}

}  // namespace netkit::clients
