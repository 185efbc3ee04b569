// select(2): limited to descriptors below FD_SETSIZE (1024). FD_SET on a larger
// descriptor writes past the fd_set (undefined behaviour, caught by _FORTIFY_SOURCE),
// so the loop refuses such descriptors through max_fd() before they get here.
#include <sys/select.h>

#include <algorithm>
#include <cerrno>

#include <fmt/format.h>

#include "backends.hpp"
#include "netkit/error.hpp"

namespace netkit::detail {

namespace {

class select_backend final : public backend {
 public:
  select_backend() : interest_(FD_SETSIZE, 0), tokens_(FD_SETSIZE, 0) {}

  std::string_view name() const noexcept override { return "select"; }
  int max_fd() const noexcept override { return FD_SETSIZE - 1; }

  void add(int fd, std::uint32_t interest, std::uint64_t token) override {
    check(fd, "select add");
    interest_[fd] = interest | watched;
    tokens_[fd] = token;
    max_watched_ = std::max(max_watched_, fd);
  }

  void modify(int fd, std::uint32_t interest, std::uint64_t token) override {
    check(fd, "select modify");
    interest_[fd] = interest | watched;
    tokens_[fd] = token;
  }

  void remove(int fd) noexcept override {
    if (fd < 0 || fd >= FD_SETSIZE) return;
    interest_[fd] = 0;
    while (max_watched_ >= 0 && interest_[max_watched_] == 0)
      --max_watched_;
  }

  void wait(int timeout_ms, std::vector<ready_event>& out) override {
    fd_set readable, writable;
    FD_ZERO(&readable);
    FD_ZERO(&writable);
    for (int fd = 0; fd <= max_watched_; ++fd) {
      if (interest_[fd] & io_read) FD_SET(fd, &readable);
      if (interest_[fd] & io_write) FD_SET(fd, &writable);
    }
    timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    int n =
        ::select(max_watched_ + 1, &readable, &writable, nullptr, timeout_ms < 0 ? nullptr : &tv);
    if (n < 0) {
      if (errno == EINTR) return;
      throw_sys_error("select");
    }
    for (int fd = 0; fd <= max_watched_ && n > 0; ++fd) {
      std::uint32_t got = 0;
      if (FD_ISSET(fd, &readable)) got |= io_read;
      if (FD_ISSET(fd, &writable)) got |= io_write;
      if (got == 0) continue;
      n -= __builtin_popcount(got);
      out.push_back({tokens_[fd], got});
    }
  }

 private:
  static constexpr std::uint32_t watched = 1u << 31;

  void check(int fd, std::string_view op) const {
    if (fd < 0 || fd >= FD_SETSIZE)
      throw sys_error(EINVAL, op,
                      fmt::format("fd {} (select handles descriptors below FD_SETSIZE = {} only)",
                                  fd, FD_SETSIZE));
  }

  std::vector<std::uint32_t> interest_;
  std::vector<std::uint64_t> tokens_;
  int max_watched_ = -1;
};

}  // namespace

std::unique_ptr<backend> make_select_backend() {
  return std::make_unique<select_backend>();
}

}  // namespace netkit::detail
