// Shared by the datagram echo models (one file each: udp_echo_{blocking,epoll,sigio}.cpp).
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include "netkit/datagram.hpp"
#include "udp_echo.hpp"

namespace netkit::servers::detail {

struct dgram_echo_stats {
  std::uint64_t received = 0;
  std::uint64_t echoed = 0;
  std::uint64_t truncated = 0;    // did not fit max_datagram: reported, not echoed
  std::uint64_t unreplyable = 0;  // from an unbound unix-dgram socket: nowhere to reply
  std::uint64_t send_failed = 0;  // EAGAIN (dropped, as the network would) or an error
  std::uint64_t recv_errors = 0;
};

enum class step { echoed, would_block, other };

// Receives one datagram and echoes it back to its sender. Never throws for I/O errors.
class dgram_echoer {
 public:
  dgram_echoer(int fd, const dgram_server_options& opts);
  step echo_one(recv_flags flags);
  const dgram_echo_stats& stats() const noexcept { return stats_; }

 private:
  int fd_;
  transport kind_;
  bool verbose_;
  std::vector<std::byte> buffer_;
  dgram_echo_stats stats_;
};

// Per-wakeup bound for the non-blocking models: stop after this many datagrams and come
// back, so one flooding sender cannot hold the thread forever.
inline constexpr int datagrams_per_wakeup = 64;

void serve_blocking(int fd, dgram_echoer& echoer);
void serve_epoll(int fd, dgram_echoer& echoer);
void serve_sigio(int fd, dgram_echoer& echoer);

// SIGINT/SIGTERM handling shared by the blocking and sigio models: the handler only sets
// this flag.
extern std::atomic<int> stop_signal;
void install_stop_handlers();  // without SA_RESTART so blocking calls return EINTR
void restore_stop_handlers();

}  // namespace netkit::servers::detail
