#include "netkit/datagram.hpp"

#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstddef>
#include <stdexcept>

#include "netkit/error.hpp"

namespace netkit {

received_message recv_datagram(int sock, std::span<std::byte> buffer, transport kind,
                               recv_flags flags) {
  iovec iov{buffer.data(), buffer.size()};
  return recv_message(sock, {&iov, 1}, 0, kind, flags);
}

io_result send_datagram(int sock, std::span<const std::byte> data, const endpoint* to) {
  iovec iov{const_cast<std::byte*>(data.data()), data.size()};
  return send_message(sock, {&iov, 1}, {}, to);
}

unique_fd open_dgram_client(const endpoint& server, io_mode mode) {
  auto fd = open_socket(server, mode);
  if (server.kind() == transport::unix_dgram) {
    // Autobind (unix(7)): binding with only the family picks a unique abstract name.
    sockaddr_un self{};
    self.sun_family = AF_UNIX;
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&self), sizeof(sa_family_t)) != 0)
      throw_sys_error("bind (autobind)", server.to_uri());
  }
  int rc;
  do {
    rc = ::connect(fd.get(), server.addr(), server.length());
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) throw_sys_error("connect", server.to_uri());
  return fd;
}

datagram_batch::datagram_batch(std::size_t capacity, std::size_t max_datagram)
    : capacity_(capacity),
      max_datagram_(max_datagram),
      // for_overwrite: not zeroed, so a 64-slot batch of 64 KiB buffers costs resident
      // memory only for the pages datagrams actually reach.
      buffers_(std::make_unique_for_overwrite<std::byte[]>(capacity * max_datagram)),
      addrs_(std::make_unique<sockaddr_storage[]>(capacity)),
      in_iov_(std::make_unique<iovec[]>(capacity)),
      out_iov_(std::make_unique<iovec[]>(capacity)),
      in_(std::make_unique<mmsghdr[]>(capacity)),
      out_(std::make_unique<mmsghdr[]>(capacity)),
      refused_(std::make_unique<bool[]>(capacity)) {
  if (capacity == 0 || max_datagram == 0)
    throw std::invalid_argument("datagram_batch: capacity and max_datagram must be at least 1");
  for (std::size_t i = 0; i < capacity; ++i) {
    in_iov_[i] = {buffers_.get() + i * max_datagram, max_datagram};
    in_[i].msg_hdr.msg_iov = &in_iov_[i];
    in_[i].msg_hdr.msg_iovlen = 1;
    out_[i].msg_hdr.msg_iovlen = 1;
  }
}

io_result datagram_batch::receive(int sock, recv_flags flags) {
  received_ = queued_ = sent_ = 0;
  for (std::size_t i = 0; i < capacity_; ++i) {
    // The kernel rewrites both on every call.
    in_[i].msg_hdr.msg_name = &addrs_[i];
    in_[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
  }
  // MSG_TRUNC: msg_len is the datagram's real size, so truncation is reported with both
  // sizes (udp(7)); MSG_WAITFORONE: a blocking socket returns once one has arrived.
  const int f = MSG_TRUNC | MSG_WAITFORONE | static_cast<int>(flags);
  int n;
  do {
    n = ::recvmmsg(sock, in_.get(), static_cast<unsigned>(capacity_), f, nullptr);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return {0, errno};
  received_ = static_cast<std::size_t>(n);
  return {n, 0};
}

datagram_batch::datagram datagram_batch::operator[](std::size_t i) const noexcept {
  const auto& h = in_[i];
  const std::size_t full = h.msg_len;
  const bool truncated = (h.msg_hdr.msg_flags & MSG_TRUNC) != 0;
  return {{buffers_.get() + i * max_datagram_, truncated ? max_datagram_ : full},
          full,
          truncated,
          reinterpret_cast<const sockaddr*>(&addrs_[i]),
          h.msg_hdr.msg_namelen};
}

void datagram_batch::queue_reply(std::size_t i, std::size_t n) noexcept {
  auto& h = out_[queued_];
  out_iov_[queued_] = {buffers_.get() + i * max_datagram_, n};
  h.msg_hdr.msg_iov = &out_iov_[queued_];
  h.msg_hdr.msg_name = &addrs_[i];
  h.msg_hdr.msg_namelen = in_[i].msg_hdr.msg_namelen;
  refused_[queued_] = false;
  ++queued_;
}

batch_send_result datagram_batch::send_queued(int sock, when_full full) {
  batch_send_result r;
  // Bounded by the queue: every pass sends at least one reply or skips one.
  while (sent_ < queued_) {
    int n =
        ::sendmmsg(sock, out_.get() + sent_, static_cast<unsigned>(queued_ - sent_), MSG_NOSIGNAL);
    if (n > 0) {
      sent_ += static_cast<std::size_t>(n);
      r.sent += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && full == when_full::wait) {
      r.would_block = true;
      break;
    }
    // sendmmsg reports an error only for the first message it could not send: that one
    // failed; the ones after it have not been tried yet.
    if (r.failed++ == 0) r.err = n < 0 ? errno : EIO;
    refused_[sent_++] = true;
  }
  return r;
}

}  // namespace netkit
