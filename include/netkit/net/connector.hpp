// Non-blocking connect to a stream endpoint (tcp://, tcp://[v6], unix://, unix://@name) on
// an event loop, with a timeout, an optional source address, retries with exponential
// back-off and jitter, and detection of a TCP self-connect. On io_uring the connect is an
// IORING_OP_CONNECT submission; on readiness backends the socket is watched for
// writability and SO_ERROR tells the outcome.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>

#include "netkit/endpoint.hpp"
#include "netkit/error.hpp"
#include "netkit/event/loop.hpp"
#include "netkit/fd.hpp"

namespace netkit {

struct connect_options {
  // Per attempt; 0: no timeout (the kernel's own, about two minutes for an unanswered SYN).
  std::chrono::milliseconds timeout{10'000};
  // Bind the socket here before connecting (tcp only): a load generator spreads its
  // connections over several 127.x.y.z sources so they do not exhaust one address's
  // ephemeral ports. Port 0 lets the kernel choose at connect time
  // (IP_BIND_ADDRESS_NO_PORT), so ports are shared across destinations.
  std::optional<endpoint> source;
  // Further attempts after a failed one (refused, timed out, self-connect...).
  int retries = 0;
  // Wait before retry k (k = 0, 1, ...): min(backoff_initial * 2^k, backoff_max), scaled by
  // a random factor in [1 - jitter, 1 + jitter] so that many clients do not retry in step.
  std::chrono::milliseconds backoff_initial{100};
  std::chrono::milliseconds backoff_max{5'000};
  double jitter = 0.2;
  // Seed of the jitter (0: a fresh random one per connector).
  std::uint64_t seed = 0;
};

// The delay before retry `attempt` (0-based) for these options, given a uniform draw
// `u` in [0, 1): exposed so the schedule can be tested and documented.
std::chrono::milliseconds backoff_delay(const connect_options& opts, int attempt, double u);

// One outgoing connection attempt (with its retries) at a time. Loop thread only; owned
// by the caller, who must keep it alive until a callback has run or cancel() it.
class connector {
 public:
  // The connected socket (non-blocking, CLOEXEC, TCP_NODELAY for tcp) and the peer.
  using connected_fn = std::function<void(unique_fd fd, const endpoint& peer)>;
  // The last attempt's error, naming the target: "connect tcp://127.0.0.1:9: Connection
  // refused (ECONNREFUSED)", "connect ...: Connection timed out (ETIMEDOUT)" for the
  // timeout, "connect tcp://127.0.0.1:P (self-connect): Connection refused (ECONNREFUSED)"
  // for a TCP self-connect.
  using failed_fn = std::function<void(const sys_error& error)>;

  virtual ~connector() = default;
  const endpoint& target() const noexcept { return target_; }
  // Attempts so far, counting the one in progress.
  int attempts() const noexcept { return attempts_; }
  // Starts (or restarts, after a callback) the first attempt.
  virtual void start() = 0;
  // Stops whatever is in progress (attempt or retry wait); no callback follows.
  virtual void cancel() noexcept = 0;

 protected:
  connector(endpoint target, connect_options opts) : target_(std::move(target)), opts_(opts) {}
  endpoint target_;
  connect_options opts_;
  int attempts_ = 0;
};

// The connector for `loop`'s backend. Throws usage_error for a target that is not a stream
// endpoint, or a source of another family than the target.
std::unique_ptr<connector> make_connector(event_loop& loop, endpoint target,
                                          connect_options options,
                                          connector::connected_fn on_connected,
                                          connector::failed_fn on_failed);

}  // namespace netkit
