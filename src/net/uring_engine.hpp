// The completion driver of the connection core (io_uring): connections whose accept,
// recv and send are kernel operations. Submissions are only prepared here; the backend
// submits them all with its wait, so a loop turn costs one io_uring_enter however many
// connections were served.
#pragma once

#include <memory>

#include "net/stream_engine.hpp"
#include "net/uring_connection.hpp"
#include "net/uring_receive_memory.hpp"
#include "net/uring_send_pool.hpp"
#include "net/uring_zombie_list.hpp"

namespace netkit::detail {

class uring_engine final : public engine_base<uring_connection> {
 public:
  uring_engine(event_loop& loop, connection_group& owner, engine_config config,
               stream_handler handler);
  // Cancels everything and runs completions (bounded) until no operation is in flight,
  // before the buffer ring is unregistered. `drained`, when given, tells whether other
  // operations of the owner (an acceptor, connectors) are still in flight too.
  ~uring_engine() override;

  uring_backend& uring() noexcept { return ring_; }
  // Runs completions until `idle()` and no connection has I/O in flight (bounded): what
  // an owner whose own operations (acceptor, connector) hold pointers calls first.
  void wait_for_kernel(const std::function<bool()>& idle);

 private:
  friend class uring_connection;

  // A closed connection's last completion has come back (out of line: rare, and kept out of
  // the completion path's registers).
  void bury(uring_connection& c);
  std::unique_ptr<uring_connection> create(conn_id id, unique_fd fd, endpoint peer) override;
  void retire(std::unique_ptr<uring_connection> c) override;

  uring_backend& ring_;
  uring_send_pool send_pool_;
  uring_receive_memory receive_;
  zombie_list<uring_connection> zombies_;
  bool destroying_ = false;
};

}  // namespace netkit::detail
