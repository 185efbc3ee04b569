#include "netkit/datagram.hpp"

#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <stdexcept>

#include "netkit/error.hpp"

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103  // linux/udp.h, Linux 4.18
#endif

namespace netkit {

namespace {

// The kernel's UDP_MAX_SEGMENTS was 64 until Linux 6.10 raised it to 128: the older bound
// holds everywhere.
constexpr std::size_t max_segments = 64;

}  // namespace

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
      reply_slot_(std::make_unique<std::size_t[]>(capacity)),
      refused_(std::make_unique<bool[]>(capacity)),
      entries_(std::make_unique<mmsghdr[]>(capacity)),
      entry_first_(std::make_unique<std::size_t[]>(capacity + 1)),
      controls_(std::make_unique<segment_control[]>(capacity)) {
  if (capacity == 0 || max_datagram == 0)
    throw std::invalid_argument("datagram_batch: capacity and max_datagram must be at least 1");
  for (std::size_t i = 0; i < capacity; ++i) {
    in_iov_[i] = {buffers_.get() + i * max_datagram, max_datagram};
    in_[i].msg_hdr.msg_iov = &in_iov_[i];
    in_[i].msg_hdr.msg_iovlen = 1;
  }
}

io_result datagram_batch::receive(int sock, recv_flags flags) {
  received_ = queued_ = sent_ = single_until_ = 0;
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
  out_iov_[queued_] = {buffers_.get() + i * max_datagram_, n};
  reply_slot_[queued_] = i;
  refused_[queued_] = false;
  ++queued_;
}

bool datagram_batch::same_receiver(std::size_t a, std::size_t b) const noexcept {
  const std::size_t x = reply_slot_[a], y = reply_slot_[b];
  const socklen_t len = in_[x].msg_hdr.msg_namelen;
  // recvmmsg fills a whole sockaddr_in/in6, padding zeroed: equal bytes, same sender.
  return in_[y].msg_hdr.msg_namelen == len && std::memcmp(&addrs_[x], &addrs_[y], len) == 0;
}

bool datagram_batch::several_receivers() const noexcept {
  for (std::size_t k = sent_ + 1; k < queued_; ++k)
    if (!same_receiver(sent_, k)) return true;
  return false;
}

std::size_t datagram_batch::run_end(std::size_t first) const noexcept {
  std::size_t end = first + 1;
  if (!coalesce_ || first < single_until_) return end;
  const auto family = addrs_[reply_slot_[first]].ss_family;
  if (family != AF_INET && family != AF_INET6) return end;
  const std::size_t size = out_iov_[first].iov_len;
  if (size == 0) return end;  // a segment size of 0 means "no segmentation"
  std::size_t total = size;
  while (end < queued_ && end - first < max_segments) {
    const std::size_t len = out_iov_[end].iov_len;
    if (len == 0 || len > size || total + len > max_udp4_payload || !same_receiver(first, end))
      break;
    total += len;
    ++end;
    if (len < size) break;  // only the last segment may be shorter
  }
  return end;
}

std::size_t datagram_batch::build_entries() noexcept {
  std::size_t w = 0;
  for (std::size_t k = sent_; k < queued_; ++w) {
    const std::size_t end = run_end(k);
    auto& h = entries_[w].msg_hdr;
    h.msg_name = &addrs_[reply_slot_[k]];
    h.msg_namelen = in_[reply_slot_[k]].msg_hdr.msg_namelen;
    h.msg_iov = &out_iov_[k];
    h.msg_iovlen = end - k;
    h.msg_flags = 0;
    if (end - k > 1) {
      h.msg_control = controls_[w].bytes;
      h.msg_controllen = sizeof controls_[w].bytes;
      cmsghdr* c = CMSG_FIRSTHDR(&h);
      c->cmsg_level = SOL_UDP;
      c->cmsg_type = UDP_SEGMENT;
      c->cmsg_len = CMSG_LEN(sizeof(std::uint16_t));
      const auto segment = static_cast<std::uint16_t>(out_iov_[k].iov_len);
      std::memcpy(CMSG_DATA(c), &segment, sizeof segment);
    } else {
      h.msg_control = nullptr;
      h.msg_controllen = 0;
    }
    entry_first_[w] = k;
    k = end;
  }
  entry_first_[w] = queued_;
  return w;
}

batch_send_result datagram_batch::send_queued(int sock, when_full full) {
  batch_send_result r;
  // Bounded by the queue: every pass sends at least one reply, skips one, or splits a
  // refused run into single replies (at most once per run).
  while (sent_ < queued_) {
    coalesce_ = segmentation_ == udp_segmentation::always ||
                (segmentation_ == udp_segmentation::several_receivers && several_receivers());
    const std::size_t entries = build_entries();
    int n = ::sendmmsg(sock, entries_.get(), static_cast<unsigned>(entries), MSG_NOSIGNAL);
    if (n > 0) {
      for (int j = 0; j < n; ++j) {
        const std::size_t replies = entry_first_[j + 1] - entry_first_[j];
        if (replies > 1) {
          r.coalesced += replies;
          ++r.segmented_sends;
        }
      }
      const std::size_t done = entry_first_[n] - sent_;
      sent_ += done;
      r.sent += done;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    const int err = n < 0 ? errno : EIO;
    if ((err == EAGAIN || err == EWOULDBLOCK) && full == when_full::wait) {
      r.would_block = true;
      break;
    }
    if (entry_first_[1] - sent_ > 1) {
      // A coalesced run was refused. Errors that say this socket or route cannot segment
      // turn it off; any other may belong to one reply: its replies go one by one.
      if (err == EIO || err == EINVAL || err == ENOPROTOOPT || err == EOPNOTSUPP)
        segmentation_ = udp_segmentation::off;
      else
        single_until_ = entry_first_[1];
      continue;
    }
    // sendmmsg reports an error only for the first entry it could not send: that reply
    // failed; the ones after it have not been tried yet.
    if (r.failed++ == 0) r.err = err;
    refused_[sent_++] = true;
  }
  return r;
}

}  // namespace netkit
