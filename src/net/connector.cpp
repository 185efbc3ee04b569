// Outgoing connects. What does not depend on the backend — the socket and its source
// address, the self-connect check, the timeout, retries with back-off — stands once in
// connector_base; the readiness driver waits for writability and reads SO_ERROR, the
// io_uring driver submits IORING_OP_CONNECT.
#include "netkit/net/connector.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <optional>
#include <random>

#include <fmt/format.h>

#include "event/backend_uring.hpp"
#include "net/jitter_seed.hpp"
#include "netkit/log.hpp"
#include "netkit/socket.hpp"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24  // Linux 4.2; older headers lack it
#endif

namespace netkit {

std::chrono::milliseconds backoff_delay(const connect_options& opts, int attempt, double u) {
  const double base =
      static_cast<double>(opts.backoff_initial.count()) * std::pow(2.0, std::min(attempt, 30));
  const double capped = std::min(base, static_cast<double>(opts.backoff_max.count()));
  const double jitter = std::clamp(opts.jitter, 0.0, 1.0);
  const double scaled = capped * (1.0 - jitter + 2.0 * jitter * u);
  return std::chrono::milliseconds(static_cast<long>(std::llround(std::max(scaled, 0.0))));
}

namespace detail {

namespace {

class connector_base : public connector {
 public:
  connector_base(event_loop& loop, endpoint target, connect_options opts, connected_fn on_connected,
                 failed_fn on_failed)
      : connector(std::move(target), opts),
        loop_(loop),
        on_connected_(std::move(on_connected)),
        on_failed_(std::move(on_failed)),
        rng_(opts.seed ? opts.seed : fresh_jitter_seed()) {}

  ~connector_base() override { stop_timers(); }

  void start() override {
    NETKIT_ASSERT_LOOP_THREAD(loop_);
    cancel();
    attempts_ = 0;
    attempt();
  }

 protected:
  // Begins one attempt on `fd_` (a fresh socket, source bound); the driver then reports
  // through succeeded() or failed().
  virtual void begin(int fd) = 0;
  // Abandons the attempt in progress (the driver's part of cancel()).
  virtual void abandon() noexcept = 0;

  void attempt() {
    ++attempts_;
    try {
      fd_ = open_socket(target_, io_mode::nonblocking);
      if (opts_.source) bind_source();
    } catch (const sys_error& e) {
      later([this, e] { failed(e.errno_value(), e); });
      return;
    }
    if (opts_.timeout.count() > 0)
      timeout_timer_ = loop_.run_after(opts_.timeout, [this] {
        timeout_timer_ = 0;
        abandon();
        failed(ETIMEDOUT);
      });
    begin(fd_.get());
  }

  // The connect completed: a TCP socket that connected to itself (source port == the
  // destination port on the same address, possible when the target port is in the
  // ephemeral range and nobody listens) is a failure, not a connection.
  void succeeded() {
    stop_timers();
    endpoint peer = target_;
    if (target_.kind() == transport::tcp) {
      try {
        peer = peer_endpoint(fd_.get(), target_.kind());
        if (local_endpoint(fd_.get(), target_.kind()) == peer) {
          failed(ECONNREFUSED,
                 sys_error(ECONNREFUSED, "connect", target_.to_uri() + " (self-connect)"));
          return;
        }
      } catch (const sys_error& e) {
        failed(e.errno_value());  // reset before we looked: ENOTCONN
        return;
      }
      set_tcp_nodelay(fd_.get(), true);
    }
    auto fd = std::move(fd_);
    on_connected_(std::move(fd), peer);  // may destroy this connector: nothing after it
  }

  // `error`: when it is not "connect URI: errno text" (a failed bind of the source...).
  void failed(int err, std::optional<sys_error> error = std::nullopt) {
    stop_timers();
    fd_.reset();
    if (attempts_ <= opts_.retries) {
      std::uniform_real_distribution<double> unit(0.0, 1.0);
      auto delay = backoff_delay(opts_, attempts_ - 1, unit(rng_));
      log(log_level::debug, "connect {}: {}; retry {} of {} in {} ms", target_.to_uri(),
          errno_text(err), attempts_, opts_.retries, delay.count());
      retry_timer_ = loop_.run_after(delay, [this] {
        retry_timer_ = 0;
        attempt();
      });
      return;
    }
    if (!error) error.emplace(err, "connect", target_.to_uri());
    on_failed_(*error);  // may destroy this connector: nothing after it
  }

  // Runs fn on the next loop turn unless the attempt is cancelled first.
  void later(std::function<void()> fn) {
    retry_timer_ = loop_.run_after(std::chrono::milliseconds(0), [this, fn = std::move(fn)] {
      retry_timer_ = 0;
      fn();
    });
  }

  void cancel_base() noexcept {
    stop_timers();
    fd_.reset();
  }

  event_loop& loop_;
  unique_fd fd_;

 private:
  void bind_source() {
    const endpoint& src = *opts_.source;  // kind and family checked by make_connector()
    if (src.port() == 0) {
      // Let connect() pick the port for this (source, destination) pair: one source
      // address then serves ~28,000 connections per destination, not in all.
      int one = 1;
      ::setsockopt(fd_.get(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    }
    if (::bind(fd_.get(), src.addr(), src.length()) != 0)
      throw sys_error(errno, fmt::format("bind source {} for", src.to_uri()), target_.to_uri());
  }

  void stop_timers() noexcept {
    if (timeout_timer_) loop_.cancel(timeout_timer_);
    if (retry_timer_) loop_.cancel(retry_timer_);
    timeout_timer_ = retry_timer_ = 0;
  }

  connected_fn on_connected_;
  failed_fn on_failed_;
  std::mt19937_64 rng_;
  timer_id timeout_timer_ = 0;
  timer_id retry_timer_ = 0;
};

// Readiness: connect(2) returns EINPROGRESS; writability means it finished, SO_ERROR says
// how.
class reactor_connector final : public connector_base, public io_handler {
 public:
  using connector_base::connector_base;
  ~reactor_connector() override { abandon(); }

  void cancel() noexcept override {
    abandon();
    cancel_base();
  }

 private:
  void begin(int fd) override {
    int rc;
    do {
      rc = ::connect(fd, target_.addr(), target_.length());
    } while (rc != 0 && errno == EINTR);
    // Unix sockets connect (or are refused: ECONNREFUSED, EAGAIN for a full backlog) at
    // once; the outcome is still reported from the loop, never from inside start().
    if (rc == 0) {
      later([this] { succeeded(); });
      return;
    }
    if (errno != EINPROGRESS) {
      later([this, err = errno] { failed(err); });
      return;
    }
    try {
      watch_ = loop_.watch(fd, io_write, *this);
    } catch (const sys_error& e) {
      later([this, e] { failed(e.errno_value(), e); });
    }
  }

  void on_io(std::uint32_t) override {
    int err = pending_error(fd_.get());
    abandon();
    if (err != 0) {
      failed(err);
    } else {
      succeeded();
    }
  }

  void abandon() noexcept override {
    if (watch_.valid()) loop_.unwatch(watch_);
    watch_ = {};
  }

  watch_id watch_;
};

// io_uring: the connect is a kernel operation. Its completion may arrive after the
// connector is gone (cancelled, destroyed), so the operation is a small object of its own
// that the kernel's completion frees; it owns nothing but a pointer back, cleared on
// abandon.
class uring_connector final : public connector_base {
 public:
  uring_connector(event_loop& loop, endpoint target, connect_options opts,
                  connected_fn on_connected, failed_fn on_failed)
      : connector_base(loop, std::move(target), opts, std::move(on_connected),
                       std::move(on_failed)),
        ring_(*as_uring(loop.io_backend())) {}
  ~uring_connector() override { abandon(); }

  void cancel() noexcept override {
    abandon();
    cancel_base();
  }

 private:
  struct operation final : completion_handler {
    uring_backend* ring;
    uring_connector* owner;
    sockaddr_storage address;  // the kernel reads it until the connect completes
    void on_completion(unsigned, int result, std::uint32_t) override {
      if (owner) {
        owner->completed(result);
      } else {
        ring->orphan_done();
      }
      delete this;
    }
  };

  void begin(int fd) override {
    op_ = new operation;
    op_->ring = &ring_;
    op_->owner = this;
    std::memcpy(&op_->address, target_.addr(), target_.length());
    try {
      auto* sqe = ring_.sqe();
      io_uring_prep_connect(sqe, fd, reinterpret_cast<sockaddr*>(&op_->address), target_.length());
      uring_backend::target(sqe, op_, 0);
    } catch (const sys_error& e) {
      delete std::exchange(op_, nullptr);
      later([this, e] { failed(e.errno_value(), e); });
    }
  }

  void completed(int result) {
    op_ = nullptr;
    if (result < 0) {
      failed(-result);
    } else {
      succeeded();
    }
  }

  void abandon() noexcept override {
    if (!op_) return;
    op_->owner = nullptr;
    ring_.orphan_added();
    // The kernel drops its reference to the socket when the cancelled connect completes;
    // the descriptor is closed by the caller right after, so submit before the number can
    // be reused (see force_close in uring_connection.cpp).
    try {
      auto* sqe = ring_.sqe();
      io_uring_prep_cancel64(sqe, uring_backend::user_data(op_, 0), 0);
      uring_backend::target(sqe, nullptr, 0);
      if (int rc = ring_.submit_queued(); rc < 0)
        log(log_level::error, "submit cancel of connect {}: {}", target_.to_uri(), errno_text(-rc));
    } catch (const std::exception& e) {
      log(log_level::error, "cancel connect {}: {}", target_.to_uri(), e.what());
    }
    op_ = nullptr;
  }

  uring_backend& ring_;
  operation* op_ = nullptr;
};

}  // namespace
}  // namespace detail

std::unique_ptr<connector> make_connector(event_loop& loop, endpoint target,
                                          connect_options options,
                                          connector::connected_fn on_connected,
                                          connector::failed_fn on_failed) {
  if (!is_stream(target.kind()))
    throw usage_error(
        fmt::format("connect {}: not a stream endpoint (use tcp:// or unix://)", target.to_uri()));
  if (options.source &&
      (options.source->kind() != transport::tcp || target.kind() != transport::tcp ||
       options.source->family() != target.family()))
    throw usage_error(
        fmt::format("source address {} does not fit {} (a tcp:// address of the "
                    "same family is needed)",
                    options.source->to_uri(), target.to_uri()));
  if (loop.io_backend().completion_based())
    return std::make_unique<detail::uring_connector>(loop, std::move(target), options,
                                                     std::move(on_connected), std::move(on_failed));
  return std::make_unique<detail::reactor_connector>(loop, std::move(target), options,
                                                     std::move(on_connected), std::move(on_failed));
}

}  // namespace netkit
