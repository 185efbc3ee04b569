// N event loops, one per thread; no connection ever moves between threads (one loop owns
// it for life). Two ways to spread the connections over the loops (accept_strategy):
//  - reuseport: each loop has its own SO_REUSEPORT listener on the same address and the
//    kernel balances (by a hash of the connection's addresses); TCP only.
//  - dispatch: one more thread runs an acceptor loop that hands each accepted connection to
//    the next loop in turn (round robin, through the loop's post queue and adopt()) — the
//    muduo shape; any stream transport, Unix sockets included.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "netkit/net/stream_server.hpp"

namespace netkit {

enum class accept_strategy : std::uint8_t { reuseport, dispatch };

// "reuseport", "dispatch".
std::string_view to_string(accept_strategy s) noexcept;

// What `netkit echo-server --accept` defaults to. The faster of the two on the peer
// benchmark (scripts/bench-peers --accept-strategies) should be here.
inline constexpr accept_strategy default_accept_strategy = accept_strategy::reuseport;

struct multi_reactor_options {
  std::size_t threads = 1;  // serving loops (0 counts as 1)
  std::string backend = "epoll";
  accept_strategy accept = default_accept_strategy;
  // Each serving loop's event_loop::set_busy_poll (0: they block at once).
  std::chrono::microseconds busy_poll{0};
  // Sockets already listening (made by a supervising parent before fork); empty: bind
  // server_options::listen. reuseport takes one per thread, dispatch exactly one.
  std::vector<unique_fd> listeners;
};

class multi_reactor {
 public:
  // Binds every listener before returning (throws sys_error naming the endpoint;
  // usage_error for reuseport on a Unix socket); with reuseport, port 0 is resolved by
  // the first listener and shared by the rest. The dispatching acceptor runs on
  // `backend` when that is a readiness backend, else on epoll.
  multi_reactor(multi_reactor_options how, server_options options, stream_handler handler);
  // reuseport on `model`'s backend, binding options.listen.
  multi_reactor(std::size_t threads, std::string model, server_options options,
                stream_handler handler);
  ~multi_reactor();  // stops and joins every thread
  multi_reactor(const multi_reactor&) = delete;
  multi_reactor& operator=(const multi_reactor&) = delete;

  const endpoint& local() const noexcept { return local_; }
  // Serving loops (the dispatching acceptor's loop is not counted).
  std::size_t size() const noexcept { return reactors_.size(); }
  accept_strategy strategy() const noexcept { return strategy_; }

  // Safe from any thread. The acceptor (dispatch) stops; each reactor stops accepting,
  // drains, closes and its thread exits; join() waits for all of them.
  void stop() noexcept;
  void join();

  // Reactor i's loop and server, for posting work (event_loop::post is thread-safe;
  // the server must only be touched on its loop's thread). Each server is destroyed on
  // its own thread as that thread ends, so server(i) is valid only until join(); after
  // join() read its counters with stats(i).
  event_loop& loop(std::size_t i) noexcept { return *reactors_[i]->loop; }
  stream_server& server(std::size_t i) noexcept { return *reactors_[i]->server; }

  // Safe from any thread, until join(). A conn_id names its reactor (conn_id::group), so
  // the caller need not know which loop owns a connection: the work is posted there, and
  // dropped if the connection has closed by then.
  void post_send(conn_id id, std::vector<std::byte> message);
  void post_close(conn_id id);
  // Frames `message` once (on the calling thread; throws usage_error when the codec cannot
  // carry it) and queues the same bytes on every open connection of every reactor (except
  // `except`). Broadcasts posted by one thread reach every connection in the order they
  // were posted. A message a connection's codec refuses (post_send) is logged and dropped.
  void post_broadcast(std::span<const std::byte> message, conn_id except = {});
  // Runs fn(server) on every reactor's loop thread, with that reactor's server (skipped on
  // a reactor whose server has ended): per-reactor work such as a broadcast to a subset of
  // connections or a timer on each loop. Calls posted by one thread run on each loop in
  // the order they were posted. Safe from any thread, until join().
  void post_each(const std::function<void(stream_server&)>& fn);

  // Reactor i's final counters, and their totals (with the acceptor's shed connections,
  // under dispatch): read after join().
  const server_stats& stats(std::size_t i) const noexcept { return reactors_[i]->final_stats; }
  server_stats totals() const;

 private:
  struct dispatcher;
  void start_threads();
  void dispatch(unique_fd conn, endpoint peer);

  struct reactor {
    std::unique_ptr<event_loop> loop;
    std::unique_ptr<stream_server> server;
    server_stats final_stats;  // written by the thread as it ends
    std::thread thread;
  };
  endpoint local_;
  accept_strategy strategy_ = accept_strategy::reuseport;
  std::unique_ptr<encoder> encoder_;  // post_broadcast frames with it, on the caller's thread
  std::vector<std::unique_ptr<reactor>> reactors_;
  std::unique_ptr<dispatcher> dispatcher_;  // dispatch only; declared last: it posts to reactors_
};

// Queues `message` on connection `id` of `server` from any thread: the send runs on the
// loop's thread, and is dropped if the connection has closed by then.
void post_send(event_loop& loop, stream_server& server, conn_id id, std::vector<std::byte> message);
// Closes connection `id` from any thread (a no-op if it has already closed).
void post_close(event_loop& loop, stream_server& server, conn_id id);

}  // namespace netkit
