// N event loops, one per thread, each with its own SO_REUSEPORT listener on the same
// address: the kernel spreads incoming connections across them, and no connection ever
// moves between threads (one loop owns it for life). The muduo/seastar shape, with the
// kernel as the load balancer instead of a dispatcher thread.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "netkit/net/stream_server.hpp"

namespace netkit {

class multi_reactor {
 public:
  // Binds every listener before returning (throws sys_error naming the endpoint);
  // port 0 is resolved by the first one and shared by the rest.
  multi_reactor(std::size_t threads, std::string model, server_options options,
                stream_handler handler);
  ~multi_reactor();  // stops and joins every thread
  multi_reactor(const multi_reactor&) = delete;
  multi_reactor& operator=(const multi_reactor&) = delete;

  const endpoint& local() const noexcept { return local_; }
  std::size_t size() const noexcept { return reactors_.size(); }

  // Safe from any thread. Each reactor stops accepting, drains, closes and its thread
  // exits; join() waits for all of them.
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

  // Reactor i's final counters, and their totals: read after join().
  const server_stats& stats(std::size_t i) const noexcept { return reactors_[i]->final_stats; }
  server_stats totals() const;

 private:
  struct reactor {
    std::unique_ptr<event_loop> loop;
    std::unique_ptr<stream_server> server;
    server_stats final_stats;  // written by the thread as it ends
    std::thread thread;
  };
  endpoint local_;
  std::unique_ptr<encoder> encoder_;  // post_broadcast frames with it, on the caller's thread
  std::vector<std::unique_ptr<reactor>> reactors_;
};

// Queues `message` on connection `id` of `server` from any thread: the send runs on the
// loop's thread, and is dropped if the connection has closed by then.
void post_send(event_loop& loop, stream_server& server, conn_id id, std::vector<std::byte> message);
// Closes connection `id` from any thread (a no-op if it has already closed).
void post_close(event_loop& loop, stream_server& server, conn_id id);

}  // namespace netkit
