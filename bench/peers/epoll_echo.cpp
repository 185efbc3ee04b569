// peer-epoll: the speed-of-light reference for the echo benchmark. A bare, level-triggered
// epoll loop with no library in between: one read into a shared 64 KiB buffer per
// readiness event, write it straight back; on a short write the rest is kept in the
// connection and EPOLLOUT replaces EPOLLIN until it has been flushed.
//
// Usage: peer-epoll PORT   (binds 127.0.0.1:PORT, 0 = any free port)
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "peer_port.h"

namespace {

// Enough for the 10k-connection bench points; the kernel caps it at net.core.somaxconn.
constexpr int listen_backlog = 4096;
constexpr std::size_t read_buffer_size = 64 * 1024;
constexpr int max_events = 256;
// epoll user data for the two non-connection descriptors; connections use their fd.
constexpr std::uint64_t listener_tag = ~std::uint64_t{0};
constexpr std::uint64_t signal_tag = ~std::uint64_t{0} - 1;

// Bytes a short write left behind. While non-empty the connection does not read, so
// this never holds more than one read's worth (64 KiB).
struct connection {
  std::vector<char> pending;
  std::size_t pending_off = 0;
};

[[noreturn]] void die(const char* op) {
  std::fprintf(stderr, "peer-epoll: %s: %s\n", op, strerrorname_np(errno));
  std::exit(1);
}

class echo_loop {
 public:
  echo_loop(int listen_fd, int signal_fd) : listen_fd_(listen_fd) {
    epfd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epfd_ < 0) die("epoll_create1");
    add(listen_fd, EPOLLIN, listener_tag);
    add(signal_fd, EPOLLIN, signal_tag);
  }

  // Returns when SIGINT or SIGTERM arrives.
  void run() {
    std::array<epoll_event, max_events> events{};
    for (;;) {
      int n = epoll_wait(epfd_, events.data(), max_events, -1);
      if (n < 0) {
        if (errno == EINTR) continue;
        die("epoll_wait");
      }
      for (int i = 0; i < n; ++i) {
        std::uint64_t tag = events[i].data.u64;
        if (tag == signal_tag) return;
        if (tag == listener_tag) {
          accept_all();
        } else {
          on_connection_event(static_cast<int>(tag), events[i].events);
        }
      }
    }
  }

  ~echo_loop() {
    for (std::size_t fd = 0; fd < conns_.size(); ++fd)
      if (conns_[fd]) ::close(static_cast<int>(fd));
    ::close(epfd_);
  }

 private:
  void add(int fd, std::uint32_t events, std::uint64_t tag) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = tag;
    if (epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) != 0) die("epoll_ctl(ADD)");
  }

  void modify(int fd, std::uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = static_cast<std::uint64_t>(fd);
    if (epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev) != 0) die("epoll_ctl(MOD)");
  }

  // Ends at EAGAIN: the kernel accept queue is finite, so this loop is bounded by the
  // backlog plus whatever arrives while we drain it.
  void accept_all() {
    for (;;) {
      int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED) {
          if (errno == EAGAIN) return;
          continue;
        }
        // EMFILE/ENFILE/ENOBUFS: report and keep serving; the listener stays readable
        // and the next event retries.
        std::fprintf(stderr, "peer-epoll: accept4: %s\n", strerrorname_np(errno));
        return;
      }
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      if (static_cast<std::size_t>(fd) >= conns_.size()) conns_.resize(fd + 1);
      conns_[fd] = std::make_unique<connection>();
      add(fd, EPOLLIN, static_cast<std::uint64_t>(fd));
    }
  }

  void close_connection(int fd) {
    conns_[fd].reset();
    ::close(fd);  // also removes it from the epoll set
  }

  void on_connection_event(int fd, std::uint32_t events) {
    connection& c = *conns_[fd];
    if (!c.pending.empty()) {
      if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) flush_pending(fd, c);
      return;
    }
    if (!(events & (EPOLLIN | EPOLLERR | EPOLLHUP))) return;
    // One read per readiness event: level triggering reports the rest next round, which
    // keeps one busy connection from starving the others.
    ssize_t n = ::read(fd, buffer_.data(), buffer_.size());
    if (n == 0) return close_connection(fd);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) return;
      return close_connection(fd);
    }
    ssize_t w = ::write(fd, buffer_.data(), static_cast<std::size_t>(n));
    if (w == n) return;
    if (w < 0) {
      if (errno != EAGAIN && errno != EINTR) return close_connection(fd);
      w = 0;
    }
    c.pending.assign(buffer_.data() + w, buffer_.data() + n);
    c.pending_off = 0;
    modify(fd, EPOLLOUT);
  }

  void flush_pending(int fd, connection& c) {
    ssize_t w = ::write(fd, c.pending.data() + c.pending_off, c.pending.size() - c.pending_off);
    if (w < 0) {
      if (errno == EAGAIN || errno == EINTR) return;
      return close_connection(fd);
    }
    c.pending_off += static_cast<std::size_t>(w);
    if (c.pending_off == c.pending.size()) {
      c.pending.clear();
      c.pending_off = 0;
      modify(fd, EPOLLIN);
    }
  }

  int listen_fd_;
  int epfd_ = -1;
  // Indexed by descriptor; a null entry is a free slot.
  std::vector<std::unique_ptr<connection>> conns_;
  std::array<char, read_buffer_size> buffer_{};
};

}  // namespace

int main(int argc, char** argv) {
  int port = peer_port(argc, argv, "peer-epoll");
  if (port < 0) return 2;
  ::signal(SIGPIPE, SIG_IGN);

  // SIGINT/SIGTERM are delivered through a signalfd in the epoll set.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  if (sigprocmask(SIG_BLOCK, &stop_signals, nullptr) != 0) die("sigprocmask");
  int signal_fd = ::signalfd(-1, &stop_signals, SFD_NONBLOCK | SFD_CLOEXEC);
  if (signal_fd < 0) die("signalfd");

  int listen_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listen_fd < 0) die("socket");
  int one = 1;
  if (::setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0)
    die("setsockopt(SO_REUSEADDR)");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(listen_fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) die("bind");
  if (::listen(listen_fd, listen_backlog) != 0) die("listen");
  socklen_t addr_len = sizeof addr;
  if (::getsockname(listen_fd, reinterpret_cast<sockaddr*>(&addr), &addr_len) != 0)
    die("getsockname");

  {
    echo_loop loop(listen_fd, signal_fd);
    std::printf("listening on tcp://127.0.0.1:%u\n", static_cast<unsigned>(ntohs(addr.sin_port)));
    std::fflush(stdout);
    loop.run();
  }
  ::close(listen_fd);
  ::close(signal_fd);
  return 0;
}
