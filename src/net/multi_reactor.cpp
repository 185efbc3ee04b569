#include "netkit/net/multi_reactor.hpp"

#include <fmt/format.h>

#include "net/acceptor.hpp"
#include "net/server_internal.hpp"
#include "net/stream_engine.hpp"
#include "netkit/error.hpp"
#include "netkit/log.hpp"
#include "netkit/socket.hpp"

namespace netkit {

namespace {
// On the loop thread: a message the codec refuses must not end the loop.
void send_or_log(stream_server& server, conn_id id, std::span<const std::byte> message) {
  auto* c = server.find(id);
  if (!c) return;
  try {
    c->send(message);
  } catch (const std::exception& e) {
    log(log_level::error, "message posted to {} dropped: {}", c->peer().to_uri(), e.what());
  }
}
}  // namespace

std::string_view to_string(accept_strategy s) noexcept {
  return s == accept_strategy::dispatch ? "dispatch" : "reuseport";
}

// The dispatching acceptor: its own loop and thread, one listener.
struct multi_reactor::dispatcher {
  std::unique_ptr<event_loop> loop;
  std::unique_ptr<detail::acceptor> acceptor;
  std::thread thread;
  std::size_t next = 0;  // the reactor that gets the next connection; acceptor thread only
  detail::socket_tuning tuning = detail::socket_tuning::needed;  // of what the listener accepts
  std::uint64_t shed = 0;                                        // written by the thread as it ends
};

multi_reactor::multi_reactor(std::size_t threads, std::string model, server_options options,
                             stream_handler handler)
    : multi_reactor({.threads = threads,
                     .backend = std::move(model),
                     .accept = accept_strategy::reuseport,
                     .listeners = {}},
                    std::move(options), std::move(handler)) {}

multi_reactor::multi_reactor(multi_reactor_options how, server_options options,
                             stream_handler handler)
    : strategy_(how.accept) {
  auto threads = std::max<std::size_t>(how.threads, 1);
  encoder_ = make_encoder(options.codec);
  if (strategy_ == accept_strategy::reuseport) {
    if (options.listen.kind() != transport::tcp)
      throw usage_error(fmt::format(
          "accept strategy reuseport serves tcp:// only: its listeners share the port with "
          "SO_REUSEPORT, which Unix sockets do not have; use dispatch for {}",
          options.listen.to_uri()));
    if (!how.listeners.empty() && how.listeners.size() != threads)
      throw usage_error(
          fmt::format("accept strategy reuseport needs one listener per thread: "
                      "{} given for {} threads",
                      how.listeners.size(), threads));
    options.listening.reuse_port = true;
  } else {
    if (how.listeners.size() > 1)
      throw usage_error(
          fmt::format("accept strategy dispatch takes one listener, not {}", how.listeners.size()));
    dispatcher_ = std::make_unique<dispatcher>();
    dispatcher_->loop = std::make_unique<event_loop>(how.backend);
    // The acceptor is a readiness handler; on a completion backend it waits on epoll
    // (accepting is not the per-message path the backend is chosen for).
    if (dispatcher_->loop->io_backend().completion_based())
      dispatcher_->loop = std::make_unique<event_loop>("epoll");
    auto fd = how.listeners.empty()
                  ? listen_on(options.listen, io_mode::nonblocking, options.listening)
                  : detail::prepare_listener(std::move(how.listeners.front()), options.listen);
    dispatcher_->tuning = detail::tune_listener(fd.get(), options.listen, options);
    dispatcher_->acceptor = std::make_unique<detail::acceptor>(
        *dispatcher_->loop, std::move(fd), options.listen.kind(),
        [this](unique_fd conn, endpoint peer) { dispatch(std::move(conn), std::move(peer)); });
    local_ = dispatcher_->acceptor->local();
    options.listen = local_;
  }
  for (std::size_t i = 0; i < threads; ++i) {
    auto r = std::make_unique<reactor>();
    r->loop = std::make_unique<event_loop>(how.backend);
    r->loop->set_busy_poll(how.busy_poll);
    options.group = static_cast<std::uint32_t>(i);
    if (dispatcher_)
      r->server = detail::make_adopting_server(*r->loop, options, handler);
    else if (how.listeners.empty())
      r->server = make_stream_server(*r->loop, options, handler);
    else
      r->server = make_stream_server(*r->loop, options, handler, std::move(how.listeners[i]));
    if (i == 0 && !dispatcher_) {
      local_ = r->server->local();
      options.listen = local_;  // the others join the port the first one got
    }
    reactors_.push_back(std::move(r));
  }
  start_threads();
}

// On the acceptor's thread. The descriptor rides in a shared_ptr because posted work must
// be copyable; if the reactor's loop has ended the work is dropped and the socket closed.
void multi_reactor::dispatch(unique_fd conn, endpoint peer) {
  auto* r = reactors_[dispatcher_->next].get();
  dispatcher_->next = (dispatcher_->next + 1) % reactors_.size();
  auto held = std::make_shared<unique_fd>(std::move(conn));
  r->loop->post([r, held, peer = std::move(peer), tuning = dispatcher_->tuning]() mutable {
    if (r->server) detail::adopt_accepted(*r->server, std::move(*held), std::move(peer), tuning);
  });
}

void multi_reactor::start_threads() {
  if (dispatcher_) {
    dispatcher_->thread = std::thread([d = dispatcher_.get()] {
      try {
        d->loop->run();
      } catch (const std::exception& e) {
        log(log_level::error, "acceptor thread failed: {}", e.what());
      }
      d->shed = d->acceptor->shed();
      d->acceptor.reset();  // closes the listener, on the thread that watched it
    });
  }
  for (auto& r : reactors_) {
    r->thread = std::thread([raw = r.get()] {
      try {
        raw->loop->run();
        raw->server->begin_shutdown();
        // Bounded: the server force-closes what has not drained by its drain timeout.
        auto deadline = event_loop::clock::now() + std::chrono::seconds(60);
        while (raw->server->stats().open > 0 && event_loop::clock::now() < deadline)
          raw->loop->run_once(std::chrono::milliseconds(50));
      } catch (const std::exception& e) {
        log(log_level::error, "reactor thread failed: {}", e.what());
      }
      // The server ends on the thread that ran it: an io_uring ring (SINGLE_ISSUER) takes
      // submissions only from that thread, and the server's destructor submits the
      // cancellations of whatever is still in flight (from any other thread the kernel
      // refuses them with EEXIST). on_close for connections still open also stays on the
      // loop's thread. join() then publishes final_stats.
      raw->final_stats = raw->server->stats();
      raw->server.reset();
    });
  }
}

multi_reactor::~multi_reactor() {
  stop();
  join();
  // Servers before loops: a server unwatches its descriptors from its loop. (Each thread
  // has already destroyed its own; this covers a thread that never ran.)
  if (dispatcher_) dispatcher_->acceptor.reset();
  for (auto& r : reactors_)
    r->server.reset();
}

void multi_reactor::stop() noexcept {
  if (dispatcher_) dispatcher_->loop->stop();
  for (auto& r : reactors_)
    r->loop->stop();
}

void multi_reactor::join() {
  // The acceptor first: until it ends it may post connections to the reactors.
  if (dispatcher_ && dispatcher_->thread.joinable()) dispatcher_->thread.join();
  for (auto& r : reactors_)
    if (r->thread.joinable()) r->thread.join();
}

server_stats multi_reactor::totals() const {
  server_stats t;
  for (const auto& r : reactors_) {
    const auto& s = r->final_stats;
    t.accepted += s.accepted;
    t.refused += s.refused;
    t.shed += s.shed;
    t.protocol_errors += s.protocol_errors;
    t.bytes_in += s.bytes_in;
    t.bytes_out += s.bytes_out;
    t.open += s.open;
  }
  if (dispatcher_) t.shed += dispatcher_->shed;
  return t;
}

// The posted work looks the server up on its own thread: that thread destroys it when its
// loop ends (work posted later never runs).
void multi_reactor::post_send(conn_id id, std::vector<std::byte> message) {
  if (id.group >= reactors_.size()) return;
  auto* r = reactors_[id.group].get();
  r->loop->post([r, id, message = std::move(message)] {
    if (r->server) send_or_log(*r->server, id, message);
  });
}

void multi_reactor::post_close(conn_id id) {
  if (id.group >= reactors_.size()) return;
  auto* r = reactors_[id.group].get();
  r->loop->post([r, id] {
    if (!r->server) return;
    if (auto* c = r->server->find(id)) c->close();
  });
}

void multi_reactor::post_broadcast(std::span<const std::byte> message, conn_id except) {
  framed_message framed = detail::frame_message(*encoder_, message);
  for (auto& owned : reactors_) {
    auto* r = owned.get();
    r->loop->post([r, framed, except] {
      if (r->server) r->server->broadcast(framed, except);
    });
  }
}

void multi_reactor::post_each(const std::function<void(stream_server&)>& fn) {
  for (auto& owned : reactors_) {
    auto* r = owned.get();
    r->loop->post([r, fn] {
      if (r->server) fn(*r->server);
    });
  }
}

void post_send(event_loop& loop, stream_server& server, conn_id id,
               std::vector<std::byte> message) {
  loop.post([&server, id, message = std::move(message)] { send_or_log(server, id, message); });
}

void post_close(event_loop& loop, stream_server& server, conn_id id) {
  loop.post([&server, id] {
    if (auto* c = server.find(id)) c->close();
  });
}

}  // namespace netkit
