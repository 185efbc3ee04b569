#include "netkit/message.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace netkit {

namespace {

// Control buffer with room for exactly n descriptors, aligned for cmsghdr.
class control_buffer {
 public:
  explicit control_buffer(std::size_t fds)
      : size_(fds == 0 ? 0 : CMSG_SPACE(fds * sizeof(int))),
        storage_((size_ + sizeof(cmsghdr) - 1) / sizeof(cmsghdr)) {}
  void* data() noexcept { return storage_.empty() ? nullptr : storage_.data(); }
  std::size_t size() const noexcept { return size_; }

 private:
  std::size_t size_;
  std::vector<cmsghdr> storage_;  // cmsghdr elements only for alignment
};

// Takes ownership of every SCM_RIGHTS descriptor in msg, so none can leak whatever
// happens next.
void collect_fds(msghdr& msg, std::vector<unique_fd>& out) {
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    auto count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const unsigned char* p = CMSG_DATA(c);
    for (std::size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, p + i * sizeof(int), sizeof fd);  // CMSG_DATA may be unaligned
      out.emplace_back(fd);
    }
  }
}

}  // namespace

io_result send_message(int sock, std::span<const iovec> data, std::span<const int> fds,
                       const endpoint* to) {
  if (fds.size() > max_fds_per_message) return {0, EINVAL};
  msghdr msg{};
  if (to) {
    msg.msg_name = const_cast<sockaddr*>(to->addr());
    msg.msg_namelen = to->length();
  }
  msg.msg_iov = const_cast<iovec*>(data.data());
  msg.msg_iovlen = data.size();
  control_buffer control(fds.size());
  if (!fds.empty()) {
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(fds.size() * sizeof(int));
    std::memcpy(CMSG_DATA(c), fds.data(), fds.size() * sizeof(int));
  }
  ssize_t n;
  do {
    n = ::sendmsg(sock, &msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return {0, errno};
  return {n, 0};
}

received_message recv_message(int sock, std::span<const iovec> data, std::size_t max_fds,
                              transport kind, recv_flags flags) {
  received_message r;
  sockaddr_storage from{};
  msghdr msg{};
  msg.msg_name = &from;
  msg.msg_namelen = sizeof from;
  msg.msg_iov = const_cast<iovec*>(data.data());
  msg.msg_iovlen = data.size();
  control_buffer control(max_fds);
  msg.msg_control = control.data();
  msg.msg_controllen = control.size();
  // MSG_TRUNC makes datagram sockets return the real size of a datagram that did not fit
  // (udp(7), unix(7) since 3.4), so truncation can be reported with both sizes. Stream
  // sockets are not given it: there it would discard the data instead of reading it.
  int f = MSG_CMSG_CLOEXEC | static_cast<int>(flags);
  bool datagram = !is_stream(kind);
  if (datagram) f |= MSG_TRUNC;
  ssize_t n;
  do {
    n = ::recvmsg(sock, &msg, f);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    r.err = errno;
    return r;
  }
  collect_fds(msg, r.fds);
  std::size_t capacity = 0;
  for (const auto& v : data)
    capacity += v.iov_len;
  r.full_size = static_cast<std::size_t>(n);
  r.truncated = datagram && (msg.msg_flags & MSG_TRUNC) != 0;
  r.n = r.truncated ? static_cast<ssize_t>(capacity) : n;
  if (msg.msg_namelen > 0 && datagram)
    r.from = endpoint::from_sockaddr(kind, reinterpret_cast<sockaddr*>(&from), msg.msg_namelen);
  if (msg.msg_flags & MSG_CTRUNC) {
    // Some descriptors were discarded by the kernel: a partial set is useless to the
    // caller and would leak if handed over, so close the ones that did arrive.
    r.fds.clear();
    r.control_truncated = true;
    r.err = EMSGSIZE;
  }
  return r;
}

io_result send_fds(int sock, std::span<const int> fds, std::span<const std::byte> payload) {
  static const char padding = '\0';
  iovec iov{};
  if (payload.empty()) {
    iov.iov_base = const_cast<char*>(&padding);
    iov.iov_len = 1;
  } else {
    iov.iov_base = const_cast<std::byte*>(payload.data());
    iov.iov_len = payload.size();
  }
  return send_message(sock, {&iov, 1}, fds);
}

received_message recv_fds(int sock, std::size_t max_fds, std::span<std::byte> payload,
                          recv_flags flags) {
  std::byte scratch{};
  iovec iov{};
  if (payload.empty()) {
    iov.iov_base = &scratch;
    iov.iov_len = 1;
  } else {
    iov.iov_base = payload.data();
    iov.iov_len = payload.size();
  }
  int type = 0;
  socklen_t len = sizeof type;
  transport kind = transport::unix_stream;
  if (::getsockopt(sock, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type != SOCK_STREAM)
    kind = transport::unix_dgram;
  return recv_message(sock, {&iov, 1}, max_fds, kind, flags);
}

}  // namespace netkit
