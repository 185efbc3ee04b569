// states: one connection's life through TCP's eleven states, each read from the kernel.
// Loopback delivers every segment at once, so a transient state is held on purpose: a full
// accept queue keeps a SYN unanswered (SYN_SENT), TCP_DEFER_ACCEPT keeps a handshake
// half-open (SYN_RECV), and a FIN queued behind data the peer has not read keeps
// FIN_WAIT_1 and LAST_ACK; both ends closing with unread data gives CLOSING.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <map>
#include <vector>

#include "lab_support.hpp"
#include "netkit/error.hpp"
#include "netkit/socket.hpp"

namespace netkit::labs {

namespace {

using inspect::tcp_state;

constexpr int small_buffer = 4096;

struct first_sighting {
  std::string who;
  double at_ms = 0;
};

class state_walk {
 public:
  explicit state_walk(lab_context& ctx) : ctx_(ctx) {}

  // Waits for `who`'s end to reach `want`, notes what the kernel reported either way.
  bool step(const char* who, int fd, const endpoint& local, const endpoint& remote, tcp_state want,
            std::string_view why) {
    auto seen = wait_for_state(ctx_, fd, local, remote, want);
    std::string extra;
    if (seen.entry && seen.entry->timer != inspect::socket_timer::none)
      extra = fmt::format(", {} timer {} ms", inspect::timer_name(seen.entry->timer),
                          seen.entry->expires.count());
    ctx_.note("{:<6} {:>15} -> {:<15} {}{}  [{}]", who, host_port(local), host_port(remote),
              seen.describe(), extra, why);
    if (seen.state) {
      double ms = std::chrono::duration<double, std::milli>(ctx_.elapsed()).count();
      sightings_.try_emplace(*seen.state, first_sighting{who, ms});
      auto key = fmt::format("{:<6} {} -> {}", who, host_port(local), host_port(remote));
      auto it =
          std::find_if(paths_.begin(), paths_.end(), [&](const auto& p) { return p.first == key; });
      if (it == paths_.end()) it = paths_.insert(paths_.end(), {key, {}});
      if (it->second.empty() || it->second.back() != *seen.state) it->second.push_back(*seen.state);
    }
    if (seen.state != want) misses_[want] = fmt::format("{}: {}", who, seen.describe());
    return seen.state == want;
  }

  const std::map<tcp_state, first_sighting>& sightings() const { return sightings_; }
  const std::map<tcp_state, std::string>& misses() const { return misses_; }

  // Each end's states in the order seen: "client 127.0.0.1:A -> 127.0.0.1:B: X → Y → Z".
  void note_paths() const {
    for (const auto& [end, states] : paths_) {
      std::string path;
      for (auto st : states)
        path += (path.empty() ? "" : " -> ") + std::string(inspect::state_name(st));
      ctx_.note("sequence of {}: {}", end, path);
    }
  }

 private:
  lab_context& ctx_;
  std::map<tcp_state, first_sighting> sightings_;
  std::map<tcp_state, std::string> misses_;
  std::vector<std::pair<std::string, std::vector<tcp_state>>> paths_;  // in first-seen order
};

void listen_and_syn_sent(lab_context& ctx, state_walk& walk) {
  // SYN_SENT: a listener with backlog 0 takes one connection into its accept queue; while
  // nobody accepts, the kernel drops the next SYN (ListenOverflows) and that client waits.
  auto full = listen_on(loopback_tcp(), io_mode::blocking, {.backlog = 0});
  auto full_at = local_endpoint(full.get(), transport::tcp);
  walk.step("server", full.get(), full_at, unspecified_tcp(AF_INET), tcp_state::listen,
            "listen(backlog 0)");
  auto queued = connect_to(full_at);
  auto queued_end = local_endpoint(queued.get(), transport::tcp);
  walk.step("client", queued.get(), queued_end, full_at, tcp_state::established,
            "connected, waiting in the accept queue");
  auto table =
      ctx.tcp_table({.states = inspect::state_bit(tcp_state::listen), .port = full_at.port()});
  if (const auto* l = inspect::find_connection(table, full_at, unspecified_tcp(AF_INET)))
    ctx.note("server accept queue: {} waiting, backlog {}", l->recv_queue, l->send_queue);
  auto dropped = start_connect(full_at);
  auto dropped_end = local_endpoint(dropped.get(), transport::tcp);
  walk.step("client", dropped.get(), dropped_end, full_at, tcp_state::syn_sent,
            "second connect: accept queue full, SYN dropped");
}

}  // namespace

void run_states(lab_context& ctx) {
  state_walk walk(ctx);
  listen_and_syn_sent(ctx, walk);

  // SYN_RECV: with TCP_DEFER_ACCEPT the server ignores the handshake's last ACK until data
  // comes, so its end stays a half-open request while the client is already ESTABLISHED.
  // Then an active close by the client, with both FINs held behind unread data.
  auto deferred = listen_on(loopback_tcp(), io_mode::blocking, {.backlog = 4});
  set_send_buffer(deferred.get(), small_buffer);
  set_recv_buffer(deferred.get(), small_buffer);
  set_int_option(deferred.get(), IPPROTO_TCP, TCP_DEFER_ACCEPT, 1, "TCP_DEFER_ACCEPT");
  auto at = local_endpoint(deferred.get(), transport::tcp);
  auto client = connect_small(at, small_buffer);
  auto client_end = local_endpoint(client.get(), transport::tcp);
  walk.step("client", client.get(), client_end, at, tcp_state::established, "connect() returned");
  walk.step("server", -1, at, client_end, tcp_state::syn_recv, "deferred accept, no data yet");
  if (::send(client.get(), "x", 1, MSG_NOSIGNAL) != 1) throw_sys_error("send", at.to_uri());
  if (!wait_readable(deferred.get(), 2000ms)) throw_sys_error(ETIMEDOUT, "accept", at.to_uri());
  unique_fd server(::accept4(deferred.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (!server) throw_sys_error("accept", at.to_uri());
  deferred.reset();
  drain(server.get(), 0ms);
  walk.step("server", server.get(), at, client_end, tcp_state::established,
            "first byte arrived, accept() returned");

  auto sent = fill(client.get());
  if (::shutdown(client.get(), SHUT_WR) != 0) throw_sys_error("shutdown", "client");
  walk.step("client", client.get(), client_end, at, tcp_state::fin_wait1,
            fmt::format("shutdown(SHUT_WR) with {} bytes unread by the server", sent));
  bool eof = false;
  drain(server.get(), 2000ms, &eof);
  walk.step("client", client.get(), client_end, at, tcp_state::fin_wait2,
            "server read everything: FIN sent and ACKed");
  walk.step("server", server.get(), at, client_end, tcp_state::close_wait,
            eof ? "server read EOF, has not closed" : "server saw no EOF");
  sent = fill(server.get());
  if (::shutdown(server.get(), SHUT_WR) != 0) throw_sys_error("shutdown", "server");
  walk.step("server", server.get(), at, client_end, tcp_state::last_ack,
            fmt::format("server shutdown(SHUT_WR) with {} bytes unread by the client", sent));
  drain(client.get(), 2000ms);
  auto tw = wait_for_state(ctx, client.get(), client_end, at, tcp_state::time_wait);
  walk.step("client", client.get(), client_end, at, tcp_state::time_wait,
            "client read everything: server's FIN ACKed");
  walk.step("server", server.get(), at, client_end, tcp_state::closed,
            "last ACK arrived: gone from the table");

  auto server_end = observe_end(ctx, server.get(), at, client_end);
  ctx.expect("the side that closes first ends in TIME_WAIT, the other does not",
             "client TIME_WAIT, server CLOSED",
             fmt::format("client {}, server {}", tw.describe(), server_end.describe()),
             tw.state == tcp_state::time_wait && server_end.state == tcp_state::closed);
  if (tw.entry && tw.entry->timer == inspect::socket_timer::time_wait) {
    auto left = tw.entry->expires;
    ctx.expect("TIME_WAIT lasts a fixed time (2 MSL; Linux: TCP_TIMEWAIT_LEN)",
               "a time_wait timer of at most 60 s",
               fmt::format("timer {} ms left right after entry: about {} s", left.count(),
                           (left.count() + 999) / 1000),
               left.count() > 0 && left <= 60000ms);
  } else {
    ctx.expect(
        "TIME_WAIT lasts a fixed time (2 MSL; Linux: TCP_TIMEWAIT_LEN)",
        "a time_wait timer on the client's entry",
        tw.entry ? fmt::format("timer {}", inspect::timer_name(tw.entry->timer)) : "no table entry",
        false);
  }

  // Simultaneous close: both ends shut down with data the other has not read, so each FIN
  // waits; the first to read then gets a FIN before its own was ACKed.
  auto both = connect_pair(small_buffer);
  walk.step("client", both.client.get(), both.client_end, both.server_end, tcp_state::established,
            "a second connection");
  walk.step("server", both.server.get(), both.server_end, both.client_end, tcp_state::established,
            "accepted");
  fill(both.client.get());
  fill(both.server.get());
  if (::shutdown(both.client.get(), SHUT_WR) != 0 || ::shutdown(both.server.get(), SHUT_WR) != 0)
    throw_sys_error("shutdown", "simultaneous close");
  walk.step("client", both.client.get(), both.client_end, both.server_end, tcp_state::fin_wait1,
            "both ends shut down with unread data");
  walk.step("server", both.server.get(), both.server_end, both.client_end, tcp_state::fin_wait1,
            "both ends shut down with unread data");
  drain(both.client.get(), 2000ms);
  walk.step("client", both.client.get(), both.client_end, both.server_end, tcp_state::closing,
            "client read the server's FIN before its own FIN was ACKed");
  walk.step("server", both.server.get(), both.server_end, both.client_end, tcp_state::fin_wait2,
            "its FIN ACKed by the client");
  drain(both.server.get(), 2000ms);
  walk.step("client", both.client.get(), both.client_end, both.server_end, tcp_state::time_wait,
            "its FIN ACKed at last");
  walk.step("server", both.server.get(), both.server_end, both.client_end, tcp_state::time_wait,
            "simultaneous close: both ends wait");

  walk.note_paths();
  // In the order of the textbook's diagram.
  for (auto state :
       {tcp_state::listen, tcp_state::syn_sent, tcp_state::syn_recv, tcp_state::established,
        tcp_state::fin_wait1, tcp_state::fin_wait2, tcp_state::close_wait, tcp_state::last_ack,
        tcp_state::time_wait, tcp_state::closing, tcp_state::closed}) {
    std::string name(inspect::state_name(state));
    auto found = walk.sightings().find(state);
    if (found != walk.sightings().end()) {
      ctx.expect(name, "read from the kernel on one end",
                 fmt::format("{} end at +{:.1f} ms", found->second.who, found->second.at_ms), true);
    } else {
      auto miss = walk.misses().find(state);
      ctx.not_provoked(name, "read from the kernel on one end",
                       miss != walk.misses().end() ? "instead " + miss->second : "not tried");
    }
  }
}

}  // namespace netkit::labs
