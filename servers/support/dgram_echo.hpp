// What the datagram echo models share: the socket with its banner, the receive-and-echo
// step and the closing summary. Each model (dgram_{blocking,epoll,sigio}_echo.cpp) only
// decides how to wait.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "netkit/codec/codec.hpp"
#include "netkit/datagram.hpp"
#include "netkit/socket.hpp"
#include "netkit/unix_socket.hpp"
#include "server_model.hpp"

namespace netkit::servers::support {

struct dgram_echo_stats {
  std::uint64_t received = 0;
  std::uint64_t echoed = 0;
  std::uint64_t truncated = 0;    // did not fit max_datagram: reported, not echoed
  std::uint64_t unreplyable = 0;  // from an unbound unix-dgram socket: nowhere to reply
  std::uint64_t send_failed = 0;  // an error, or EAGAIN where it drops (see when_full)
  std::uint64_t send_waits = 0;   // batched udp: times replies waited for EPOLLOUT
  std::uint64_t recv_calls = 0;   // receive system calls: received / recv_calls = batch size
  std::uint64_t recv_errors = 0;
  std::uint64_t no_reply = 0;         // --codec sockperf: messages that ask for no reply
  std::uint64_t malformed = 0;        // --codec sockperf: not a sockperf message; dropped
  std::uint64_t coalesced = 0;        // batched udp: echoed as segments of a GSO send
  std::uint64_t segmented_sends = 0;  // the GSO sends that carried them
};

enum class step { echoed, would_block, other, send_blocked };

// Receives one datagram and answers its sender: with the datagram itself (--codec raw, the
// default), or as sockperf's server does (--codec sockperf: the codec's decoder makes the
// reply of each message in the datagram; one that asks for none gets none); any other
// codec is a plain echo (the command line refuses the framing codecs for datagrams). Never
// throws for I/O errors.
class dgram_echoer {
 public:
  // `batch` > 0: echo_batch moves up to that many datagrams per recvmmsg/sendmmsg.
  dgram_echoer(int fd, const model_settings& settings, std::size_t batch = 0);
  step echo_one(recv_flags flags);

  // One recvmmsg, every reply queued, one sendmmsg (more only after a refused reply).
  // Returns would_block when nothing was waiting, send_blocked when replies are still
  // queued behind EAGAIN (wait for writability, then flush_replies; receive nothing
  // before), else echoed. Needs a batch size at construction.
  step echo_batch(recv_flags flags);
  step flush_replies();  // send_blocked again, or echoed once the queue is empty
  // Batched udp: when replies to one sender are coalesced into GSO sends (datagram_batch).
  void set_segmentation(udp_segmentation mode) noexcept;
  const dgram_echo_stats& stats() const noexcept { return stats_; }

 private:
  // What to send back for one received datagram, or nothing (truncated, unreplyable,
  // sockperf messages that ask for no reply, malformed): counted and reported here.
  std::optional<std::span<const std::byte>> reply_for(std::span<const std::byte> datagram,
                                                      std::size_t full_size, bool truncated,
                                                      const sockaddr* from, socklen_t from_len);
  // The reply of one datagram: sockperf replies, or the datagram itself (nothing to build).
  std::span<const std::byte> reply_of(std::span<const std::byte> datagram, const endpoint& from);
  step account(const batch_send_result& r);

  int fd_;
  transport kind_;
  bool verbose_;
  std::vector<std::byte> buffer_;
  std::unique_ptr<decoder> sockperf_;  // null: plain echo
  std::vector<std::byte> reply_;
  std::unique_ptr<datagram_batch> batch_;  // null: one datagram at a time
  dgram_echo_stats stats_;
};

// Per-wakeup bound for the non-blocking models: stop after this many datagrams and come
// back, so one flooding sender cannot hold the thread forever. Also the epoll model's
// batch: one recvmmsg/sendmmsg pair per wakeup moves at most this many.
inline constexpr int datagrams_per_wakeup = 64;

// A datagram model's registry entry: every datagram model takes --codec (raw or sockperf),
// --mode and --max-datagram, and its own options (`own`).
server_model dgram_model(std::string name, std::string description,
                         int (*run)(const server_model&, const model_settings&),
                         std::vector<model_option> own = {});

// Binds the model's socket (its socket file removed on clean exit) and prints
// "listening on URI model=NAME" (flushed). Install the stop handling first, so a SIGTERM
// right after the banner stops the server cleanly.
unix_listener open_dgram_socket(const server_model& model, const model_settings& settings,
                                io_mode mode);

// "served: received=... echoed=..." on stdout (flushed); returns the exit code, 0.
int print_dgram_summary(const dgram_echoer& echoer);

}  // namespace netkit::servers::support
