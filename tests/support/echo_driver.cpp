#include "support/echo_driver.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "netkit/buffer.hpp"
#include "netkit/error.hpp"
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

struct client {
  const echo_plan* plan;
  echo_result* result;
  netkit::unique_fd fd;
  bool connected = false;
  bool shut = false;
  bool done = false;
  clock::time_point next_slow_read{};
};

std::byte expected_at(const echo_plan& plan, std::size_t offset) {
  const auto& b = *plan.block;
  return b[offset % b.size()];
}

void fail(client& c, int err) {
  c.result->err = err;
  c.done = true;
  c.fd.reset();
}

void do_write(client& c, std::mt19937_64& rng) {
  auto& r = *c.result;
  const auto& plan = *c.plan;
  const auto& block = *plan.block;
  std::size_t total = plan.total();
  // Bound: at most 64 sends per turn so one fast client cannot hog the driver.
  for (int i = 0; i < 64 && r.sent < total; ++i) {
    std::size_t off = r.sent % block.size();
    std::size_t len = std::min(block.size() - off, total - r.sent);
    if (plan.max_split > 0) {
      std::uniform_int_distribution<std::size_t> d(1, plan.max_split);
      len = std::min(len, d(rng));
    }
    ssize_t n = ::send(c.fd.get(), block.data() + off, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return;
      fail(c, errno);
      return;
    }
    r.sent += static_cast<std::size_t>(n);
    if (plan.max_split > 0) break;  // one split per turn: interleave with other clients
  }
  if (r.sent == total && plan.half_close && !c.shut) {
    ::shutdown(c.fd.get(), SHUT_WR);
    c.shut = true;
  }
}

void do_read(client& c, clock::time_point start) {
  auto& r = *c.result;
  const auto& plan = *c.plan;
  bool slow = plan.slow_for.count() > 0 && clock::now() - start < plan.slow_for;
  std::byte buf[65536];
  // Bound: 16 reads per turn.
  for (int i = 0; i < 16; ++i) {
    std::size_t want = sizeof buf;
    if (slow) {
      if (clock::now() < c.next_slow_read) return;
      want = plan.slow_chunk;
      c.next_slow_read = clock::now() + plan.slow_interval;
    }
    ssize_t n = ::recv(c.fd.get(), buf, want, MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return;
      fail(c, errno);
      return;
    }
    if (n == 0) {
      r.eof = true;
      c.done = true;
      c.fd.reset();
      return;
    }
    for (ssize_t k = 0; k < n; ++k) {
      if (r.received + k >= plan.total() || buf[k] != expected_at(plan, r.received + k)) {
        r.mismatch_at = r.received + k;
        std::size_t from = k >= 8 ? static_cast<std::size_t>(k) - 8 : 0;
        std::size_t len = std::min<std::size_t>(32, static_cast<std::size_t>(n) - from);
        std::vector<std::byte> expected;
        for (std::size_t j = 0; j < len && r.received + from + j < plan.total(); ++j)
          expected.push_back(expected_at(plan, r.received + from + j));
        r.mismatch_detail = fmt::format("from byte {}: expected '{}', got '{}'", r.received + from,
                                        printable(expected), printable(std::span(buf + from, len)));
        c.done = true;
        c.fd.reset();
        return;
      }
    }
    r.received += static_cast<std::size_t>(n);
    if (r.received == plan.total() && !plan.half_close) {
      c.done = true;
      c.fd.reset();
      return;
    }
    if (slow) return;
  }
}

}  // namespace

echo_run run_echo_clients(const endpoint& server, const std::vector<echo_plan>& plans,
                          deadline until, std::uint64_t seed, const std::function<void()>& tick) {
  echo_run run;
  run.results.resize(plans.size());
  std::mt19937_64 rng(seed);
  auto start = clock::now();
  std::vector<client> clients;
  clients.reserve(plans.size());
  for (std::size_t i = 0; i < plans.size(); ++i) {
    client c{&plans[i], &run.results[i], {}};
    try {
      c.fd = open_socket(server, io_mode::nonblocking);
      if (plans[i].rcvbuf > 0) set_recv_buffer(c.fd.get(), plans[i].rcvbuf);
      if (server.kind() == transport::tcp) set_tcp_nodelay(c.fd.get(), true);
      if (::connect(c.fd.get(), server.addr(), server.length()) != 0 && errno != EINPROGRESS)
        throw_sys_error("connect", server.to_uri());
    } catch (const sys_error& e) {
      run.results[i].err = e.errno_value();
      c.done = true;
      c.fd.reset();
    }
    clients.push_back(std::move(c));
  }
  std::vector<pollfd> pfds;
  std::vector<client*> owners;
  auto next_tick = clock::now();
  // Bound: the deadline.
  for (;;) {
    pfds.clear();
    owners.clear();
    bool slow_pending = false;
    for (auto& c : clients) {
      if (c.done) continue;
      short ev = 0;
      if (!c.connected) {
        ev = POLLOUT;
      } else {
        bool slow = c.plan->slow_for.count() > 0 && clock::now() - start < c.plan->slow_for;
        if (!slow || clock::now() >= c.next_slow_read)
          ev |= POLLIN;
        else
          slow_pending = true;
        if (c.result->sent < c.plan->total()) ev |= POLLOUT;
      }
      pfds.push_back({c.fd.get(), ev, 0});
      owners.push_back(&c);
    }
    if (pfds.empty()) break;
    auto now = clock::now();
    if (now >= until) {
      run.timed_out = true;
      break;
    }
    if (tick && now >= next_tick) {
      tick();
      next_tick = now + std::chrono::milliseconds(20);
    }
    int timeout = slow_pending || tick ? 5 : 50;
    int n = ::poll(pfds.data(), pfds.size(), timeout);
    if (n < 0 && errno != EINTR) throw_sys_error("poll", "echo driver");
    if (n <= 0 && !slow_pending) continue;
    for (std::size_t i = 0; i < pfds.size(); ++i) {
      auto& c = *owners[i];
      auto re = pfds[i].revents;
      if (!c.connected) {
        if (re == 0) continue;
        int err = pending_error(c.fd.get());
        if (err != 0) {
          fail(c, err);
          continue;
        }
        c.connected = true;
        continue;
      }
      if (re & (POLLOUT | POLLERR)) do_write(c, rng);
      if (!c.done && ((re & (POLLIN | POLLHUP | POLLERR)) || c.plan->slow_for.count() > 0))
        do_read(c, start);
    }
  }
  run.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - start);
  return run;
}

}  // namespace netkit::test
