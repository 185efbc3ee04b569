// Closed io_uring connections whose operations are still in the kernel. The kernel holds
// a pointer to the connection for every request in flight, so a closed connection waits
// here until its last completion (one without IORING_CQE_F_MORE) has come back, and is
// then freed through the loop's deferred queue (a callback may still be on the stack).
#pragma once

#include <cstddef>
#include <memory>
#include <utility>
#include <vector>

#include "netkit/event/loop.hpp"

namespace netkit::detail {

// Conn has a `std::size_t zombie_index` member (SIZE_MAX when not listed). Loop thread only.
template <typename Conn>
class zombie_list {
 public:
  explicit zombie_list(event_loop& loop) : loop_(loop) {}

  bool empty() const noexcept { return zombies_.empty(); }
  std::size_t size() const noexcept { return zombies_.size(); }

  void add(std::unique_ptr<Conn> c) {
    c->zombie_index = zombies_.size();
    zombies_.push_back(std::move(c));
  }
  // c's last completion has arrived: free it after the dispatch.
  void bury(Conn& c) {
    const std::size_t index = c.zombie_index;
    std::swap(zombies_[index], zombies_.back());
    zombies_[index]->zombie_index = index;
    auto owned = std::move(zombies_.back());
    zombies_.pop_back();
    c.zombie_index = SIZE_MAX;
    free_later(std::move(owned));
  }
  // A connection with nothing in flight: free it after the dispatch.
  void free_later(std::unique_ptr<Conn> c) {
    if (dead_->empty()) loop_.defer([dead = dead_] { dead->clear(); });
    dead_->push_back(std::move(c));
  }
  // Teardown with operations that never came back: leaked on purpose, since freeing
  // memory the kernel may still write is worse.
  void abandon() noexcept {
    for (auto& z : zombies_)
      (void)z.release();
    zombies_.clear();
  }
  void free_dead() noexcept { dead_->clear(); }

 private:
  event_loop& loop_;
  std::vector<std::unique_ptr<Conn>> zombies_;
  // Shared with a deferred task, which may run after the engine is gone.
  std::shared_ptr<std::vector<std::unique_ptr<Conn>>> dead_ =
      std::make_shared<std::vector<std::unique_ptr<Conn>>>();
};

}  // namespace netkit::detail
