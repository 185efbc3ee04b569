#pragma once

#include <sys/epoll.h>

#include <vector>

#include "netkit/event/backend.hpp"
#include "netkit/fd.hpp"

namespace netkit::detail {

class epoll_backend final : public backend {
 public:
  enum class trigger { level, edge };
  explicit epoll_backend(trigger mode);

  std::string_view name() const noexcept override { return edge_ ? "epoll-et" : "epoll"; }
  bool edge_triggered() const noexcept override { return edge_; }
  void add(int fd, std::uint32_t interest, std::uint64_t token) override;
  void modify(int fd, std::uint32_t interest, std::uint64_t token) override;
  void remove(int fd) noexcept override;
  void wait(int timeout_ms, std::vector<ready_event>& out) override;

 private:
  bool edge_;
  unique_fd epfd_;
  std::vector<epoll_event> events_;
};

}  // namespace netkit::detail
