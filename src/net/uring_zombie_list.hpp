// Closed io_uring connections whose operations are still in the kernel. The kernel holds
// a pointer to the connection for every request in flight, so a closed connection waits
// here until its last completion (one without IORING_CQE_F_MORE) has come back, and is
// then handed back to the engine, which frees it after the dispatch (a callback may still
// be on the stack).
#pragma once

#include <cstddef>
#include <memory>
#include <utility>
#include <vector>

namespace netkit::detail {

// Conn has a `std::size_t zombie_index` member (SIZE_MAX when not listed). Loop thread only.
template <typename Conn>
class zombie_list {
 public:
  bool empty() const noexcept { return zombies_.empty(); }
  std::size_t size() const noexcept { return zombies_.size(); }

  void add(std::unique_ptr<Conn> c) {
    c->zombie_index = zombies_.size();
    zombies_.push_back(std::move(c));
  }
  // c's last completion has arrived: takes it off the list and hands it back.
  std::unique_ptr<Conn> bury(Conn& c) {
    const std::size_t index = c.zombie_index;
    std::swap(zombies_[index], zombies_.back());
    zombies_[index]->zombie_index = index;
    auto owned = std::move(zombies_.back());
    zombies_.pop_back();
    c.zombie_index = SIZE_MAX;
    return owned;
  }
  // Teardown with operations that never came back: leaked on purpose, since freeing
  // memory the kernel may still write is worse.
  void abandon() noexcept {
    for (auto& z : zombies_)
      (void)z.release();
    zombies_.clear();
  }

 private:
  std::vector<std::unique_ptr<Conn>> zombies_;
};

}  // namespace netkit::detail
