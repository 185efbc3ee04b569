// The stream server: a listener (readiness acceptor or io_uring multishot accept) feeding
// the side-neutral connection core through adopt().
#include "netkit/net/stream_server.hpp"

#include <signal.h>
#include <sys/socket.h>

#include <fmt/format.h>

#include "net/acceptor.hpp"
#include "net/reactor_engine.hpp"
#include "net/server_internal.hpp"
#include "net/uring_acceptor.hpp"
#include "net/uring_engine.hpp"
#include "netkit/error.hpp"
#include "netkit/log.hpp"
#include "netkit/socket.hpp"

namespace netkit {

std::string_view to_string(close_reason r) noexcept {
  switch (r) {
    case close_reason::peer_closed:
      return "peer closed";
    case close_reason::reset:
      return "connection reset";
    case close_reason::protocol_error:
      return "protocol error";
    case close_reason::idle_timeout:
      return "idle timeout";
    case close_reason::output_overflow:
      return "output over hard limit";
    case close_reason::server_stopping:
      return "server stopping";
    case close_reason::local:
      return "closed by handler";
  }
  return "?";
}

std::size_t connection_group::broadcast(const framed_message& message, conn_id except) {
  NETKIT_ASSERT_LOOP_THREAD(loop());
  std::size_t queued = 0;
  for_each([&](connection& c) {
    if (c.id() == except) return;
    c.send(message);
    ++queued;
  });
  return queued;
}

namespace detail {

std::unique_ptr<stream_engine> make_stream_engine(event_loop& loop, connection_group& owner,
                                                  engine_config config, stream_handler handler) {
  // A completion backend owns the I/O operations: connections are driven by them.
  if (loop.io_backend().completion_based())
    return std::make_unique<uring_engine>(loop, owner, config, std::move(handler));
  return std::make_unique<reactor_engine>(loop, owner, config, std::move(handler));
}

namespace {

class server final : public stream_server {
 public:
  // Serves on `listening` (already listening, non-blocking), or, without one, only the
  // connections handed to adopt(); local() is then options.listen.
  server(event_loop& loop, const server_options& options, stream_handler handler,
         std::optional<unique_fd> listening)
      : engine_(make_stream_engine(loop, *this, {options, options.max_connections, options.group},
                                   std::move(handler))),
        local_(options.listen) {
    if (!listening) return;
    const auto tuning = tune_listener(listening->get(), options.listen, options);
    auto on_accept = [this, tuning](unique_fd fd, endpoint peer) {
      engine_->adopt(std::move(fd), std::move(peer), tuning);
    };
    auto kind = options.listen.kind();
    if (loop.io_backend().completion_based()) {
      auto& engine = static_cast<uring_engine&>(*engine_);
      uring_listener_ = std::make_unique<uring_acceptor>(loop, engine.uring(),
                                                         std::move(*listening), kind, on_accept);
    } else {
      listener_ = std::make_unique<acceptor>(loop, std::move(*listening), kind, on_accept);
    }
  }

  ~server() override {
    stop_accepting();
    // The kernel holds pointers to the accept and every connection's operations until their
    // cancellations complete.
    if (uring_listener_) {
      static_cast<uring_engine&>(*engine_).wait_for_kernel(
          [this] { return uring_listener_->idle(); });
    }
    // on_close may still reach this server through connection::owner(): close while it is
    // whole.
    engine_->close_all();
    engine_.reset();
  }

  event_loop& loop() noexcept override { return engine_->loop(); }
  const endpoint& local() const noexcept override {
    if (uring_listener_) return uring_listener_->local();
    return listener_ ? listener_->local() : local_;
  }
  const connection_stats& stats() const noexcept override {
    auto& s = engine_->stats();
    if (uring_listener_) s.shed = uring_listener_->shed();
    if (listener_) s.shed = listener_->shed();
    return s;
  }
  void begin_shutdown() override {
    NETKIT_ASSERT_LOOP_THREAD(loop());
    stop_accepting();
    engine_->begin_shutdown();
  }
  void stop_accepting() override {
    NETKIT_ASSERT_LOOP_THREAD(loop());
    if (uring_listener_) uring_listener_->close();
    if (listener_) listener_->close();
  }
  std::optional<conn_id> adopt(unique_fd fd, endpoint peer) override {
    NETKIT_ASSERT_LOOP_THREAD(loop());
    // Accepted elsewhere, it may be blocking: one blocking call would stall every
    // connection of the loop. (Our own acceptor and connector make non-blocking ones, so
    // this costs their hot path nothing.)
    try {
      set_nonblocking(fd.get(), true);
    } catch (const sys_error& e) {
      log(log_level::warning, "cannot serve {}: {}", peer.to_uri(), e.what());
      return std::nullopt;
    }
    return adopt_nonblocking(std::move(fd), std::move(peer), socket_tuning::needed);
  }
  std::optional<conn_id> adopt_nonblocking(unique_fd fd, endpoint peer, socket_tuning tuning) {
    NETKIT_ASSERT_LOOP_THREAD(loop());
    return engine_->adopt(std::move(fd), std::move(peer), tuning);
  }
  connection* find(conn_id id) noexcept override {
    NETKIT_ASSERT_LOOP_THREAD(loop());
    return engine_->find(id);
  }
  void for_each(const std::function<void(connection&)>& fn) override {
    NETKIT_ASSERT_LOOP_THREAD(loop());
    engine_->for_each(fn);
  }
  framed_message frame(std::span<const std::byte> message) const override {
    return engine_->frame(message);
  }

 private:
  std::unique_ptr<stream_engine> engine_;
  endpoint local_;                                  // without a listener
  std::unique_ptr<acceptor> listener_;              // readiness backends
  std::unique_ptr<uring_acceptor> uring_listener_;  // io_uring
};

void require_stream(const endpoint& listen) {
  if (!is_stream(listen.kind()))
    throw usage_error(
        fmt::format("{} is not a stream endpoint (use tcp:// or unix://)", listen.to_uri()));
}

}  // namespace

std::unique_ptr<stream_server> make_adopting_server(event_loop& loop, server_options options,
                                                    stream_handler handler) {
  require_stream(options.listen);
  return std::make_unique<server>(loop, options, std::move(handler), std::nullopt);
}

unique_fd prepare_listener(unique_fd fd, const endpoint& listen) {
  int accepting = 0;
  socklen_t len = sizeof accepting;
  if (::getsockopt(fd.get(), SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) != 0)
    throw_sys_error("getsockopt SO_ACCEPTCONN", listen.to_uri());
  if (!accepting)
    throw usage_error(fmt::format("descriptor {} given to serve {} is not a listening socket",
                                  fd.get(), listen.to_uri()));
  set_nonblocking(fd.get(), true);  // an inherited one may be blocking
  return fd;
}

std::optional<conn_id> adopt_accepted(stream_server& s, unique_fd fd, endpoint peer,
                                      socket_tuning tuning) {
  return static_cast<server&>(s).adopt_nonblocking(std::move(fd), std::move(peer), tuning);
}

}  // namespace detail

std::unique_ptr<stream_server> make_stream_server(event_loop& loop, server_options options,
                                                  stream_handler handler) {
  detail::require_stream(options.listen);
  auto fd = listen_on(options.listen, io_mode::nonblocking, options.listening);
  return std::make_unique<detail::server>(loop, options, std::move(handler), std::move(fd));
}

std::unique_ptr<stream_server> make_stream_server(event_loop& loop, server_options options,
                                                  stream_handler handler, unique_fd listening) {
  detail::require_stream(options.listen);
  auto fd = detail::prepare_listener(std::move(listening), options.listen);
  return std::make_unique<detail::server>(loop, options, std::move(handler), std::move(fd));
}

int run_until_signal(event_loop& loop, stream_server& server) {
  return run_until_signal(loop, server, {});
}

int run_until_signal(event_loop& loop, stream_server& server,
                     const std::function<void()>& before_shutdown) {
  loop.stop_on_signals({SIGINT, SIGTERM});
  loop.run();
  if (before_shutdown) before_shutdown();
  server.begin_shutdown();
  // Bounded: the server force-closes whatever has not drained by its drain timeout.
  auto deadline = event_loop::clock::now() + std::chrono::seconds(60);
  while (server.stats().open > 0 && event_loop::clock::now() < deadline)
    loop.run_once(std::chrono::milliseconds(50));
  return loop.stop_signal();
}

}  // namespace netkit
