// netkit-pingpong: single-threaded epoll ping-pong load generator for echo servers.
//
// Every connection sends one block of --size bytes and sends it again each time the whole
// block has come back. After --warmup seconds it prints "measuring", counts the blocks
// echoed back during --duration seconds and prints
//   messages=M bytes=X seconds=S msgs_per_sec=R
// (X = bytes received during the window). Any failure, including the server closing a
// connection, is reported as "netkit-pingpong: <operation>: <ERRNO> (...)" with exit 1.
//
// Deliberately independent of netkit: raw sockets and epoll, no netkit header or library,
// not even for the client side. It is the cross-check of netkit's own load generator
// (`netkit bench`, built on netkit's connector and stream client): a client sharing
// netkit's code could share its bugs and its costs, and then agree with the servers it
// measures for the wrong reasons. Keep it that way.
#include <fmt/core.h>
#include <CLI/CLI.hpp>

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

// Connections being set up at once: enough to fill a 10k run quickly, few enough that the
// server's accept queue (backlog, capped by somaxconn) does not overflow. A connection
// counts as set up only when one block has come back (connect() completes at the SYN-ACK,
// before the server has accepted: counting from there let a slow acceptor's queue
// overflow, and at 10k connections left some unaccepted into the measured window or
// ended them in a reset). Set-up connections then wait, so the ping-pong load does not
// slow the accepting of the rest; all of them start together.
constexpr std::size_t max_connects_in_flight = 256;
// All connections must be established within this time.
constexpr auto connect_phase_limit = std::chrono::seconds(30);
constexpr int max_events = 1024;
// Receive scratch; each read asks for at most the rest of the current block.
constexpr std::size_t scratch_size = 64 * 1024;

// A setup or I/O failure: the operation that failed plus errno (or a message).
class run_error : public std::runtime_error {
 public:
  run_error(std::string_view op, int err, std::string_view detail = {})
      : std::runtime_error(describe(op, err, detail)) {}

 private:
  static std::string describe(std::string_view op, int err, std::string_view detail) {
    std::string s(op);
    if (err != 0) {
      const char* name = strerrorname_np(err);
      s += fmt::format(": {} ({})", name != nullptr ? name : "E?", std::strerror(err));
    }
    if (!detail.empty()) s += fmt::format(": {}", detail);
    return s;
  }
};

struct options {
  std::string connect;
  std::size_t conns = 1;
  std::size_t size = 64;
  double warmup_s = 1.0;
  double duration_s = 5.0;
};

enum class conn_state : std::uint8_t { idle, connecting, first_echo, parked, running };

struct connection {
  int fd = -1;
  conn_state state = conn_state::idle;
  bool want_out = false;     // EPOLLOUT armed: the current block is partly unsent
  std::size_t sent = 0;      // bytes of the current block written
  std::size_t received = 0;  // bytes of the current block echoed back
};

// Owns every descriptor it opens; the destructor closes them all.
class pingpong {
 public:
  pingpong(const sockaddr_storage& addr, socklen_t addr_len, const options& opt)
      : addr_(addr), addr_len_(addr_len), conns_(opt.conns), block_(opt.size) {
    for (std::size_t i = 0; i < block_.size(); ++i)
      block_[i] = static_cast<char>('a' + i % 26);
    epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epfd_ < 0) throw run_error("epoll_create1", errno);
  }
  pingpong(const pingpong&) = delete;
  pingpong& operator=(const pingpong&) = delete;

  ~pingpong() {
    for (auto& c : conns_)
      if (c.fd >= 0) ::close(c.fd);
    if (epfd_ >= 0) ::close(epfd_);
  }

  // Opens every connection and has one block echoed on each (so the server has accepted
  // them all), then starts the ping-pong on all of them.
  void connect_all() {
    const auto deadline = clock_type::now() + connect_phase_limit;
    std::size_t next = 0;
    while (established_ < conns_.size()) {
      while (next < conns_.size() && in_flight_ < max_connects_in_flight)
        start_connect(next++);
      if (clock_type::now() >= deadline)
        throw run_error("connect", ETIMEDOUT,
                        fmt::format("{} of {} connections echoed a first block after {} s",
                                    established_, conns_.size(), connect_phase_limit.count()));
      poll_once(std::chrono::milliseconds(100));
    }
    for (std::size_t idx = 0; idx < conns_.size(); ++idx) {
      conns_[idx].state = conn_state::running;
      send_block(idx);
    }
  }

  // Runs the ping-pong until `end`; every iteration waits at most until `end`.
  void run_until(clock_type::time_point end) {
    for (auto now = clock_type::now(); now < end; now = clock_type::now()) {
      auto left = std::chrono::ceil<std::chrono::milliseconds>(end - now);
      poll_once(std::max(left, std::chrono::milliseconds(1)));
    }
  }

  std::uint64_t messages() const { return messages_; }
  std::uint64_t bytes_received() const { return bytes_received_; }

 private:
  void poll_once(std::chrono::milliseconds timeout) {
    int n = ::epoll_wait(epfd_, events_.data(), max_events, static_cast<int>(timeout.count()));
    if (n < 0) {
      if (errno == EINTR) return;
      throw run_error("epoll_wait", errno);
    }
    for (int i = 0; i < n; ++i)
      on_event(events_[i].data.u32, events_[i].events);
  }

  void set_events(std::size_t idx, std::uint32_t events, int op) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u32 = static_cast<std::uint32_t>(idx);
    if (::epoll_ctl(epfd_, op, conns_[idx].fd, &ev) != 0)
      throw run_error(op == EPOLL_CTL_ADD ? "epoll_ctl(ADD)" : "epoll_ctl(MOD)", errno);
  }

  void start_connect(std::size_t idx) {
    connection& c = conns_[idx];
    c.fd = ::socket(addr_.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c.fd < 0) throw run_error("socket", errno);
    int one = 1;
    if (::setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
      throw run_error("setsockopt(TCP_NODELAY)", errno);
    if (::connect(c.fd, reinterpret_cast<const sockaddr*>(&addr_), addr_len_) != 0 &&
        errno != EINPROGRESS)
      throw run_error("connect", errno, fmt::format("connection {}", idx));
    c.state = conn_state::connecting;
    ++in_flight_;
    set_events(idx, EPOLLOUT, EPOLL_CTL_ADD);
  }

  void on_event(std::size_t idx, std::uint32_t events) {
    connection& c = conns_[idx];
    if (c.state == conn_state::connecting) return on_connected(idx);
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(idx);
    if (c.want_out && (events & EPOLLOUT)) send_block(idx);
  }

  void on_connected(std::size_t idx) {
    connection& c = conns_[idx];
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err != 0) throw run_error("connect", err, fmt::format("connection {}", idx));
    c.state = conn_state::first_echo;
    set_events(idx, EPOLLIN, EPOLL_CTL_MOD);
    send_block(idx);
  }

  // Writes what is left of the current block; arms EPOLLOUT only while some is left.
  void send_block(std::size_t idx) {
    connection& c = conns_[idx];
    ssize_t n = ::send(c.fd, block_.data() + c.sent, block_.size() - c.sent, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno != EAGAIN && errno != EINTR)
        throw run_error("send", errno, fmt::format("connection {}", idx));
      n = 0;
    }
    c.sent += static_cast<std::size_t>(n);
    bool want_out = c.sent < block_.size();
    if (want_out != c.want_out) {
      c.want_out = want_out;
      set_events(idx, want_out ? EPOLLIN | EPOLLOUT : EPOLLIN, EPOLL_CTL_MOD);
    }
  }

  // One read per readiness event (level-triggered): asks for the rest of the block only.
  void on_readable(std::size_t idx) {
    connection& c = conns_[idx];
    std::size_t want = std::min(scratch_.size(), block_.size() - c.received);
    ssize_t n = ::recv(c.fd, scratch_.data(), want, 0);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) return;
      throw run_error("recv", errno, fmt::format("connection {}", idx));
    }
    if (n == 0) throw run_error("recv", 0, fmt::format("server closed connection {} (EOF)", idx));
    c.received += static_cast<std::size_t>(n);
    bytes_received_ += static_cast<std::uint64_t>(n);
    if (c.received > c.sent)
      throw run_error(
          "recv", 0,
          fmt::format("connection {} received {} bytes but sent only {}", idx, c.received, c.sent));
    if (c.received == block_.size()) {
      if (c.state == conn_state::first_echo) {
        c.state = conn_state::parked;
        --in_flight_;
        ++established_;
        c.received = 0;
        c.sent = 0;
        return;
      }
      ++messages_;
      c.received = 0;
      c.sent = 0;
      send_block(idx);
    }
  }

  sockaddr_storage addr_;
  socklen_t addr_len_;
  int epfd_ = -1;
  std::vector<connection> conns_;
  std::vector<char> block_;
  std::array<char, scratch_size> scratch_{};
  std::array<epoll_event, max_events> events_{};
  std::size_t in_flight_ = 0;
  std::size_t established_ = 0;
  std::uint64_t messages_ = 0;
  std::uint64_t bytes_received_ = 0;
};

// Accepts HOST:PORT, tcp://HOST:PORT and [V6]:PORT.
std::pair<sockaddr_storage, socklen_t> resolve(std::string_view target) {
  if (target.starts_with("tcp://")) target.remove_prefix(6);
  auto colon = target.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == target.size())
    throw run_error("parse --connect", EINVAL, fmt::format("expected HOST:PORT, got '{}'", target));
  std::string host(target.substr(0, colon));
  std::string port(target.substr(colon + 1));
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0)
    throw run_error("getaddrinfo", rc == EAI_SYSTEM ? errno : 0,
                    fmt::format("{}: {}", target, gai_strerror(rc)));
  std::pair<sockaddr_storage, socklen_t> out{};
  std::memcpy(&out.first, res->ai_addr, res->ai_addrlen);
  out.second = res->ai_addrlen;
  ::freeaddrinfo(res);
  return out;
}

// One descriptor per connection plus a few for epoll and stdio.
void raise_fd_limit(std::size_t conns) {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) throw run_error("getrlimit(RLIMIT_NOFILE)", errno);
  rlim_t need = static_cast<rlim_t>(conns) + 32;
  if (lim.rlim_cur >= need) return;
  if (lim.rlim_max != RLIM_INFINITY && lim.rlim_max < need)
    throw run_error("setrlimit(RLIMIT_NOFILE)", EMFILE,
                    fmt::format("need {} descriptors, hard limit is {}", need, lim.rlim_max));
  lim.rlim_cur = need;
  if (::setrlimit(RLIMIT_NOFILE, &lim) != 0) throw run_error("setrlimit(RLIMIT_NOFILE)", errno);
}

std::chrono::nanoseconds to_duration(double seconds) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
      std::chrono::duration<double>(seconds));
}

}  // namespace

int main(int argc, char** argv) {
  options opt;
  CLI::App app{"Ping-pong load generator for echo servers (one block per connection)."};
  app.add_option("--connect", opt.connect, "Server address: HOST:PORT or tcp://HOST:PORT")
      ->required();
  app.add_option("--conns", opt.conns, "Number of connections")
      ->check(CLI::Range(std::size_t{1}, std::size_t{100000}));
  app.add_option("--size", opt.size, "Block size in bytes")
      ->check(CLI::Range(std::size_t{1}, std::size_t{64} << 20));
  app.add_option("--warmup", opt.warmup_s, "Warm-up seconds before measuring (default 1)")
      ->check(CLI::Range(0.0, 3600.0));
  app.add_option("--duration", opt.duration_s, "Measured seconds (default 5)")
      ->check(CLI::Range(0.001, 3600.0));
  CLI11_PARSE(app, argc, argv);

  std::signal(SIGPIPE, SIG_IGN);
  try {
    auto [addr, addr_len] = resolve(opt.connect);
    raise_fd_limit(opt.conns);
    pingpong pp(addr, addr_len, opt);
    pp.connect_all();

    pp.run_until(clock_type::now() + to_duration(opt.warmup_s));
    std::fputs("measuring\n", stdout);
    std::fflush(stdout);

    const auto start = clock_type::now();
    const std::uint64_t msgs0 = pp.messages();
    const std::uint64_t bytes0 = pp.bytes_received();
    pp.run_until(start + to_duration(opt.duration_s));
    const std::chrono::duration<double> elapsed = clock_type::now() - start;
    const std::uint64_t msgs = pp.messages() - msgs0;
    const std::uint64_t bytes = pp.bytes_received() - bytes0;

    fmt::print("messages={} bytes={} seconds={:.6f} msgs_per_sec={:.1f}\n", msgs, bytes,
               elapsed.count(), static_cast<double>(msgs) / elapsed.count());
    std::fflush(stdout);
  } catch (const std::exception& e) {
    std::fflush(stdout);
    fmt::print(stderr, "netkit-pingpong: {}\n", e.what());
    return 1;
  }
  return 0;
}
