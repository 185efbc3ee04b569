// What the datagram echo models share: the socket with its banner, the receive-and-echo
// step and the closing summary. Each model (dgram_{blocking,epoll,sigio}_echo.cpp) only
// decides how to wait.
#pragma once

#include <cstdint>
#include <memory>
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
  std::uint64_t send_failed = 0;  // EAGAIN (dropped, as the network would) or an error
  std::uint64_t recv_errors = 0;
  std::uint64_t no_reply = 0;   // --codec sockperf: messages that ask for no reply
  std::uint64_t malformed = 0;  // --codec sockperf: not a sockperf message; dropped
};

enum class step { echoed, would_block, other };

// Receives one datagram and answers its sender: with the datagram itself (--codec raw, the
// default), or as sockperf's server does (--codec sockperf: the codec's decoder makes the
// reply of each message in the datagram; one that asks for none gets none); any other
// codec is a plain echo (the command line refuses the framing codecs for datagrams). Never
// throws for I/O errors.
class dgram_echoer {
 public:
  dgram_echoer(int fd, const model_settings& settings);
  step echo_one(recv_flags flags);
  const dgram_echo_stats& stats() const noexcept { return stats_; }

 private:
  // The reply of one datagram: sockperf replies, or the datagram itself (nothing to build).
  std::span<const std::byte> reply_of(std::span<const std::byte> datagram, const std::string& from);

  int fd_;
  transport kind_;
  bool verbose_;
  std::vector<std::byte> buffer_;
  std::unique_ptr<decoder> sockperf_;  // null: plain echo
  std::vector<std::byte> reply_;
  dgram_echo_stats stats_;
};

// Per-wakeup bound for the non-blocking models: stop after this many datagrams and come
// back, so one flooding sender cannot hold the thread forever.
inline constexpr int datagrams_per_wakeup = 64;

// A datagram model's registry entry: every datagram model takes --codec (raw or sockperf),
// --mode and --max-datagram, and nothing else.
server_model dgram_model(std::string name, std::string description,
                         int (*run)(const server_model&, const model_settings&));

// Binds the model's socket (its socket file removed on clean exit) and prints
// "listening on URI model=NAME" (flushed). Install the stop handling first, so a SIGTERM
// right after the banner stops the server cleanly.
unix_listener open_dgram_socket(const server_model& model, const model_settings& settings,
                                io_mode mode);

// "served: received=... echoed=..." on stdout (flushed); returns the exit code, 0.
int print_dgram_summary(const dgram_echoer& echoer);

}  // namespace netkit::servers::support
