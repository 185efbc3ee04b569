#include "chat_server.hpp"

#include <signal.h>

#include <atomic>
#include <cstdio>
#include <thread>

#include <fmt/format.h>

#include "netkit/error.hpp"
#include "netkit/log.hpp"
#include "netkit/net/multi_reactor.hpp"
#include "netkit/net/stream_server.hpp"
#include "netkit/process.hpp"
#include "netkit/signals.hpp"
#include "netkit/unix_socket.hpp"

namespace netkit::chat {

namespace {

bool in_audience(connection& c, room_delivery::audience who) {
  return who == room_delivery::audience::everyone || room::is_member(c);
}

// One loop: the room reaches connections directly.
class loop_delivery final : public room_delivery {
 public:
  stream_server* server = nullptr;
  void broadcast(const framed_message& line, audience who) override {
    server->for_each([&](connection& c) {
      if (in_audience(c, who)) c.send(line);
    });
  }
  void send_to(conn_id id, const framed_message& line) override {
    if (auto* c = server->find(id)) c->send(line);
  }
};

// Several loops: work is posted to the loop that owns each connection. A broadcast is
// framed once and the same bytes are queued on every loop; posts from one thread keep
// their order on each loop, so every recipient sees one sender's lines in order.
class reactors_delivery final : public room_delivery {
 public:
  multi_reactor* reactors = nullptr;
  void broadcast(const framed_message& line, audience who) override {
    reactors->post_each([line, who](stream_server& s) {
      s.for_each([&](connection& c) {
        if (in_audience(c, who)) c.send(line);
      });
    });
  }
  void send_to(conn_id id, const framed_message& line) override {
    auto bytes = line.bytes();
    reactors->post_send(id, {bytes.begin(), bytes.end()});  // raw codec: the bytes as given
  }
};

server_options make_server_options(const chat_server_options& o) {
  server_options s;
  s.listen = o.listen;
  // The room splits lines itself (line_splitter), so an over-long line is answered, not
  // a protocol error; what it sends is already framed.
  s.codec = codec_spec::parse("raw");
  s.max_connections = o.max_connections;
  s.hard_limit = o.room.max_output;
  s.high_water = std::max<std::size_t>(o.room.max_output / 2, 1);
  s.low_water = s.high_water / 4;
  // Without a fixed send buffer the kernel would hold several MiB for a member that stopped
  // reading (autotuning) before the output cap is ever reached.
  s.send_buffer = o.send_buffer;
  return s;
}

void print_banner(const endpoint& local, const chat_server_options& o, std::size_t threads) {
  fmt::print("listening on {} model={} threads={}\n", local.to_uri(), o.model, threads);
  std::fflush(stdout);
}

int run_one_loop(const chat_server_options& o) {
  event_loop loop(o.model);
  loop_delivery delivery;
  room chat(o.room, delivery);
  auto server = make_stream_server(loop, make_server_options(o), chat.handler());
  delivery.server = server.get();
  unix_socket_file socket_file(server->local());  // removed on exit, if still ours
  loop.stop_on_signals({SIGINT, SIGTERM});        // before the banner
  loop.run_every(chat.sweep_period(), [&] { chat.sweep(*server); });
  print_banner(server->local(), o, 1);
  int sig = run_until_signal(loop, *server, [&] { chat.announce_stop(); });
  log(log_level::info, "stopped by signal {}: {} connections served", sig,
      server->stats().accepted);
  return 0;
}

int run_reactors(const chat_server_options& o) {
  stop_signal_scope stop;
  stop.block();  // taken in wait() below; the reactor threads inherit the mask
  reactors_delivery delivery;
  room chat(o.room, delivery);
  // tcp: a SO_REUSEPORT listener per loop; unix (no SO_REUSEPORT): one acceptor hands
  // connections to the loops.
  multi_reactor reactors(multi_reactor_options{.threads = o.threads,
                                               .backend = o.model,
                                               .accept = o.listen.kind() == transport::tcp
                                                             ? default_accept_strategy
                                                             : accept_strategy::dispatch},
                         make_server_options(o), chat.handler());
  delivery.reactors = &reactors;
  auto period = chat.sweep_period();
  reactors.post_each([&chat, period](stream_server& s) {
    s.loop().run_every(period, [&chat, &s] { chat.sweep(s); });
  });
  print_banner(reactors.local(), o, reactors.size());
  int sig = stop.wait();
  chat.announce_stop();
  // Every loop must have queued the notice before it starts draining: a marker posted
  // after it, counted down on each loop, says so (bounded: a stuck loop is not waited for).
  auto queued = std::make_shared<std::atomic<std::size_t>>(0);
  reactors.post_each([queued](stream_server&) { ++*queued; });
  for (int i = 0; i < 5000 && *queued < reactors.size(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  reactors.stop();
  reactors.join();
  log(log_level::info, "stopped by signal {}: {} connections served", sig,
      reactors.totals().accepted);
  return 0;
}

}  // namespace

int run_chat_server(const chat_server_options& options) {
  raise_nofile_limit();
  return options.threads > 1 ? run_reactors(options) : run_one_loop(options);
}

}  // namespace netkit::chat
