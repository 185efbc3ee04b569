#include "net/uring_engine.hpp"

#include "netkit/log.hpp"

namespace netkit::detail {

namespace {
// How long teardown waits for the kernel to hand back every operation.
constexpr auto teardown_limit = std::chrono::seconds(5);
}  // namespace

uring_engine::uring_engine(event_loop& loop, connection_group& owner, engine_config config,
                           stream_handler handler)
    : engine_base(loop, owner, config, std::move(handler)),
      ring_(*as_uring(loop.io_backend())),
      receive_(loop, ring_, send_pool_, stats_.bytes_in, [this](conn_id id) {
        if (auto* c = conns_.find(id)) c->retry_recv();
      }) {}

uring_engine::~uring_engine() {
  wait_for_kernel({});
  free_dead();
}

void uring_engine::wait_for_kernel(const std::function<bool()>& idle) {
  destroying_ = true;
  receive_.close();
  send_pool_.close();
  close_all();
  // The kernel still points at the zombies (and the owner's operations) until their
  // cancellations complete: wait for those completions (bounded).
  auto done = [&] { return zombies_.empty() && (!idle || idle()); };
  auto deadline = event_loop::clock::now() + teardown_limit;
  while (!done() && event_loop::clock::now() < deadline)
    ring_.run_completions(50);
  if (!done()) {
    log(log_level::error, "io_uring: {} connections still have I/O in flight after {} s",
        zombies_.size(), teardown_limit.count());
    zombies_.abandon();
  }
}

void uring_engine::bury(uring_connection& c) {
  free_later(zombies_.bury(c));
}

std::unique_ptr<uring_connection> uring_engine::create(conn_id id, unique_fd fd, endpoint peer) {
  return std::make_unique<uring_connection>(*this, id, std::move(fd), std::move(peer));
}

void uring_engine::retire(std::unique_ptr<uring_connection> c) {
  if (stats_.open == 0 && !destroying_) receive_.went_idle();
  if (c->in_flight()) {
    zombies_.add(std::move(c));
  } else {
    free_later(std::move(c));
  }
}

}  // namespace netkit::detail
