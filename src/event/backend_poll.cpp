// poll(2): one pollfd per watched descriptor, kept dense; a side table maps each
// descriptor to its index so modify/remove are O(1) (remove swaps with the last).
#include <poll.h>

#include <cerrno>

#include <fmt/format.h>

#include "backends.hpp"
#include "netkit/error.hpp"

namespace netkit::detail {

namespace {

class poll_backend final : public backend {
 public:
  std::string_view name() const noexcept override { return "poll"; }

  void add(int fd, std::uint32_t interest, std::uint64_t token) override {
    if (static_cast<std::size_t>(fd) >= index_.size()) index_.resize(fd + 1, -1);
    if (index_[fd] >= 0) throw sys_error(EEXIST, "poll add", fmt::format("fd {}", fd));
    index_[fd] = static_cast<int>(fds_.size());
    fds_.push_back({fd, to_poll(interest), 0});
    tokens_.push_back(token);
  }

  void modify(int fd, std::uint32_t interest, std::uint64_t token) override {
    int i = find(fd);
    if (i < 0) throw sys_error(ENOENT, "poll modify", fmt::format("fd {}", fd));
    fds_[i].events = to_poll(interest);
    tokens_[i] = token;
  }

  void remove(int fd) noexcept override {
    int i = find(fd);
    if (i < 0) return;
    int last = static_cast<int>(fds_.size()) - 1;
    if (i != last) {
      fds_[i] = fds_[last];
      tokens_[i] = tokens_[last];
      index_[fds_[i].fd] = i;
    }
    fds_.pop_back();
    tokens_.pop_back();
    index_[fd] = -1;
  }

  void wait(int timeout_ms, std::vector<ready_event>& out) override {
    int n = ::poll(fds_.data(), fds_.size(), timeout_ms);
    if (n < 0) {
      if (errno == EINTR) return;
      throw_sys_error("poll");
    }
    for (std::size_t i = 0; i < fds_.size() && n > 0; ++i) {
      auto r = fds_[i].revents;
      if (r == 0) continue;
      --n;
      std::uint32_t got = 0;
      if (r & (POLLIN | POLLRDHUP | POLLPRI)) got |= io_read;
      if (r & POLLOUT) got |= io_write;
      if (r & (POLLHUP | POLLERR | POLLNVAL)) got |= io_hangup | io_read | io_write;
      out.push_back({tokens_[i], got});
    }
  }

 private:
  static short to_poll(std::uint32_t interest) {
    short e = 0;
    if (interest & io_read) e |= POLLIN | POLLRDHUP;
    if (interest & io_write) e |= POLLOUT;
    return e;
  }
  int find(int fd) const noexcept {
    return fd >= 0 && static_cast<std::size_t>(fd) < index_.size() ? index_[fd] : -1;
  }

  std::vector<pollfd> fds_;
  std::vector<std::uint64_t> tokens_;
  std::vector<int> index_;  // fd -> position in fds_, or -1
};

}  // namespace

std::unique_ptr<backend> make_poll_backend() {
  return std::make_unique<poll_backend>();
}

}  // namespace netkit::detail
