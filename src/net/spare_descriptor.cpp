#include "net/spare_descriptor.hpp"

#include <fcntl.h>
#include <sys/socket.h>

#include <cerrno>

#include "netkit/log.hpp"

namespace netkit::detail {

namespace {
unique_fd open_reserve() {
  return unique_fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
}
}  // namespace

spare_descriptor::spare_descriptor() : fd_(open_reserve()) {}

spare_descriptor::result spare_descriptor::shed_one(int listen_fd, const endpoint& local) {
  if (!fd_) fd_ = open_reserve();
  if (!fd_) return result::stuck;
  fd_.reset();
  int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
  int err = errno;
  if (fd >= 0) {
    ::close(fd);
    ++shed_;
    if (shed_ == 1 || shed_ % 1000 == 0)
      log(log_level::warning, "out of descriptors: closed {} incoming connection{} at once on {}",
          shed_, shed_ == 1 ? "" : "s", local.to_uri());
  }
  fd_ = open_reserve();
  if (fd >= 0) return result::shed;
  if (err == EAGAIN || err == EWOULDBLOCK) return result::backlog_empty;
  return result::stuck;
}

}  // namespace netkit::detail
