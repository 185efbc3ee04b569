#include "netkit/net/multi_reactor.hpp"

#include "net/stream_engine.hpp"
#include "netkit/log.hpp"

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

multi_reactor::multi_reactor(std::size_t threads, std::string model, server_options options,
                             stream_handler handler) {
  if (threads == 0) threads = 1;
  encoder_ = make_encoder(options.codec);
  options.listening.reuse_port = true;
  for (std::size_t i = 0; i < threads; ++i) {
    auto r = std::make_unique<reactor>();
    r->loop = std::make_unique<event_loop>(model);
    options.group = static_cast<std::uint32_t>(i);
    r->server = make_stream_server(*r->loop, options, handler);
    if (i == 0) {
      local_ = r->server->local();
      options.listen = local_;  // the others join the port the first one got
    }
    reactors_.push_back(std::move(r));
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
  for (auto& r : reactors_)
    r->server.reset();
}

void multi_reactor::stop() noexcept {
  for (auto& r : reactors_)
    r->loop->stop();
}

void multi_reactor::join() {
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
