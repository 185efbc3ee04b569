// The completion driver's receive memory: the provided-buffer ring every connection's
// multishot recv draws from, how it grows when a turn runs dry, and how its pages (and the
// spare send buffers) go back to the kernel when the engine goes quiet, so memory follows
// the load.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "event/backend_uring.hpp"
#include "event/uring_buffer_ring.hpp"
#include "net/uring_send_pool.hpp"
#include "netkit/event/loop.hpp"
#include "netkit/net/connection.hpp"

namespace netkit::detail {

// Loop thread only.
class uring_receive_memory {
 public:
  // `retry` re-arms the recv of a connection that was starved (ENOBUFS) if it still
  // exists. `bytes_in` is the engine's input counter: no change for a quiet period means
  // the engine is quiet.
  uring_receive_memory(event_loop& loop, uring_backend& ring, uring_send_pool& pool,
                       const std::uint64_t& bytes_in, std::function<void(conn_id)> retry);
  ~uring_receive_memory();

  uring_buffer_ring& ring() noexcept { return buffers_; }
  // A recv ended with ENOBUFS: its data waits in the socket; re-arm once this turn has
  // handed the buffers back (the ring doubles at most once per turn that ran dry).
  void starved(conn_id id);
  // A send is reading straight from received buffer(s): their bytes must survive a trim.
  void hold() noexcept { ++held_; }
  void unhold() noexcept { --held_; }
  // The last connection closed: trim soon (once).
  void went_idle();
  // Stops timers and deferred work (engine teardown).
  void close() noexcept;

 private:
  void retry_starved();
  void trim();

  event_loop& loop_;
  uring_backend& uring_;
  uring_send_pool& pool_;
  uring_buffer_ring buffers_;
  const std::uint64_t& bytes_in_;
  std::function<void(conn_id)> retry_;
  std::vector<conn_id> starved_, starved_running_;
  std::uint64_t shortages_ = 0;  // turns that ran dry with the ring at full size
  std::size_t held_ = 0;
  timer_id trim_timer_ = 0;
  std::uint64_t bytes_in_at_trim_ = 0;
  bool trimmed_ = false;
  // Deferred tasks may run after this object is gone: they check this first.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace netkit::detail
