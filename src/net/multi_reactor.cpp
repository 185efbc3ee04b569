#include "netkit/net/multi_reactor.hpp"

#include "netkit/log.hpp"

namespace netkit {

multi_reactor::multi_reactor(std::size_t threads, std::string model, server_options options,
                             stream_handler handler) {
  if (threads == 0) threads = 1;
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

void multi_reactor::post_send(conn_id id, std::vector<std::byte> message) {
  if (id.group >= reactors_.size()) return;
  auto& r = *reactors_[id.group];
  netkit::post_send(*r.loop, *r.server, id, std::move(message));
}

void multi_reactor::post_close(conn_id id) {
  if (id.group >= reactors_.size()) return;
  auto& r = *reactors_[id.group];
  netkit::post_close(*r.loop, *r.server, id);
}

void multi_reactor::post_broadcast(std::span<const std::byte> message, conn_id except) {
  if (reactors_.empty()) return;
  // The codec is the same on every reactor, and framing reads only immutable state.
  framed_message framed = reactors_.front()->server->frame(message);
  for (auto& r : reactors_)
    r->loop->post(
        [server = r->server.get(), framed, except] { server->broadcast(framed, except); });
}

void post_send(event_loop& loop, stream_server& server, conn_id id,
               std::vector<std::byte> message) {
  loop.post([&server, id, message = std::move(message)] {
    if (auto* c = server.find(id)) c->send(message);
  });
}

void post_close(event_loop& loop, stream_server& server, conn_id id) {
  loop.post([&server, id] {
    if (auto* c = server.find(id)) c->close();
  });
}

}  // namespace netkit
