// Datagram I/O for udp:// and unix-dgram:// sockets. Truncation is never silent and a
// zero-length datagram is a message, not an end of stream. Per-message path: returns
// values, never throws for an OS error.
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "netkit/endpoint.hpp"
#include "netkit/error.hpp"
#include "netkit/fd.hpp"
#include "netkit/message.hpp"
#include "netkit/socket.hpp"

namespace netkit {

// Largest UDP payload: 65535 minus the IP and UDP headers (IPv4 20 + 8; IPv6 counts only
// the 8-byte UDP header against its 65535-byte payload length). One more byte: EMSGSIZE.
inline constexpr std::size_t max_udp4_payload = 65507;
inline constexpr std::size_t max_udp6_payload = 65527;

// One recvmsg into `buffer`. Check `truncated`: the datagram had `full_size` bytes but
// only `n` (== buffer.size()) were kept; the rest is gone. `from` is the sender.
// n == 0 with ok() is an empty datagram. For connected UDP sockets err may be
// ECONNREFUSED (an ICMP port-unreachable from an earlier send).
received_message recv_datagram(int sock, std::span<std::byte> buffer, transport kind,
                               recv_flags flags = recv_flags::none);

// One sendmsg of `data` as a single datagram, to `to` or (nullptr) the connected peer.
// A datagram over the transport's maximum returns EMSGSIZE; the socket stays usable.
io_result send_datagram(int sock, std::span<const std::byte> data, const endpoint* to = nullptr);

// A datagram socket connected to `server`, so replies come only from it and an ICMP
// port-unreachable shows up as ECONNREFUSED on the next send/recv. For unix-dgram the
// socket is first autobound to an abstract name (a reply needs an address to go to).
// Throws sys_error naming the endpoint.
unique_fd open_dgram_client(const endpoint& server, io_mode mode = io_mode::blocking);

// What one datagram_batch::send_queued call did: `sent` replies left, `failed` were
// refused (each skipped and counted; `err` is the first such errno), and `would_block`
// says replies remain queued behind EAGAIN: wait until the socket is writable and call
// again.
struct batch_send_result {
  std::size_t sent = 0;
  std::size_t failed = 0;
  int err = 0;
  bool would_block = false;
  // Of `sent`, the replies that left as segments of a UDP GSO send (several replies, one
  // sendmmsg entry: see datagram_batch), and how many such sends carried them.
  std::size_t coalesced = 0;
  std::size_t segmented_sends = 0;
};

// What send_queued does with a reply the socket refuses with EAGAIN.
//  - wait: keep it and everything after it queued (would_block). Right for udp://, where
//    EAGAIN means the socket's own send buffer is full and drains by itself; EPOLLOUT says
//    when.
//  - drop: count it as failed and go on with the next. Right for unix-dgram://, where
//    EAGAIN means that one receiver's queue is full: waiting would let a client that
//    stopped reading stall every other one, and the socket's writability says nothing
//    about that receiver.
enum class when_full { wait, drop };

// Many datagrams per system call: recvmmsg(2) into `capacity` slots, each a buffer of
// `max_datagram` bytes with room for its sender's address, then sendmmsg(2) of the replies
// queued from those slots, each to its slot's sender (an echo sends the received bytes back
// in place: no copy, no per-datagram allocation). Everything is allocated in the
// constructor; buffer pages the traffic never reaches stay untouched. One owner, one
// thread; works for udp:// and unix-dgram:// sockets, blocking or not.
//
// UDP segmentation offload (udp(7) UDP_SEGMENT, Linux >= 4.18): consecutive replies to the
// same IPv4/IPv6 address, all of one size but the last (which may be shorter), leave as one
// sendmmsg entry that the kernel routes and builds once and splits into datagrams only at
// the end (on loopback, at the receiving socket). The receiver still gets one datagram per
// reply, in order, but all of a run at once: see udp_segmentation for when that is wanted.
// A kernel or route that refuses it (EIO without checksum offload, EINVAL past the path
// MTU, ENOPROTOOPT) turns it off for this batch; the replies then go one per entry,
// nothing lost.
//
// When send_queued coalesces.
enum class udp_segmentation {
  off,  // one sendmmsg entry per reply
  // Only when the replies queued go to more than one receiver (the default). A batch that
  // all goes to one peer stays one entry per reply: that peer gets its first reply while
  // the rest are still being sent, instead of the whole run at the end, so a peer waiting
  // on them (a closed loop) does not fall into lock-step with us, each side idle while the
  // other works (on 1 sender x 16 in flight: 0.25-0.6x the datagrams/s with coalescing).
  several_receivers,
  // Whenever a run exists: a client sending its own requests to its one server.
  always,
};

class datagram_batch {
 public:
  // A received datagram, valid until the next receive(). `data` is what was kept: all of
  // it, or the first max_datagram bytes when `truncated` (the datagram had `full_size`).
  // `from_len <= sizeof(sa_family_t)`: an unbound unix-dgram sender, nowhere to reply.
  struct datagram {
    std::span<std::byte> data;
    std::size_t full_size;
    bool truncated;
    const sockaddr* from;
    socklen_t from_len;
  };

  datagram_batch(std::size_t capacity, std::size_t max_datagram);
  datagram_batch(const datagram_batch&) = delete;
  datagram_batch& operator=(const datagram_batch&) = delete;

  // One recvmmsg(MSG_WAITFORONE | MSG_TRUNC): on a blocking socket it waits for the first
  // datagram, then takes what else is queued, up to capacity(). Forgets the previous batch
  // and any reply still queued from it. Returns n = datagrams received (size()), or err:
  // EAGAIN, or an error the socket reported (ECONNREFUSED for an ICMP error with
  // IP_RECVERR): the socket stays usable. EINTR is retried.
  io_result receive(int sock, recv_flags flags = recv_flags::none);

  std::size_t size() const noexcept { return received_; }
  std::size_t capacity() const noexcept { return capacity_; }
  std::size_t max_datagram() const noexcept { return max_datagram_; }
  datagram operator[](std::size_t i) const noexcept;

  // Queues the first `n` bytes of slot `i` (n <= max_datagram(); the caller may have
  // rewritten them) as a reply to that slot's sender. Replies go in the order queued.
  void queue_reply(std::size_t i, std::size_t n) noexcept;

  // sendmmsg of the queued replies not sent yet, until all are gone or (when_full::wait)
  // EAGAIN. A reply the kernel refuses otherwise (EMSGSIZE, ENOBUFS, EPERM...) is skipped
  // and counted as failed; the rest still go. Blocks only as long as the socket's own
  // sends do; EINTR is retried.
  batch_send_result send_queued(int sock, when_full full = when_full::wait);
  std::size_t pending() const noexcept { return queued_ - sent_; }
  // Replies queued since the last receive(), and whether reply `k` of them (in the order
  // queued) was refused: one of the `failed` of a send_queued. The pending() ones not
  // sent yet are the last queued. For a caller that must know which request was lost.
  std::size_t queued() const noexcept { return queued_; }
  bool refused(std::size_t k) const noexcept { return refused_[k]; }

  // When send_queued coalesces UDP replies (several_receivers by default; off once the
  // kernel refused).
  void set_segmentation(udp_segmentation mode) noexcept { segmentation_ = mode; }
  udp_segmentation segmentation() const noexcept { return segmentation_; }

 private:
  // One control buffer per sendmmsg entry: the UDP_SEGMENT size of a coalesced run.
  struct segment_control {
    alignas(cmsghdr) unsigned char bytes[CMSG_SPACE(sizeof(std::uint16_t))];
  };
  // The end of the run of replies from `first` that can leave as one entry.
  std::size_t run_end(std::size_t first) const noexcept;
  // Builds the sendmmsg entries for the unsent replies; returns how many.
  std::size_t build_entries() noexcept;
  // Whether the unsent replies go to more than one receiver.
  bool several_receivers() const noexcept;
  bool same_receiver(std::size_t a, std::size_t b) const noexcept;

  std::size_t capacity_;
  std::size_t max_datagram_;
  std::unique_ptr<std::byte[]> buffers_;  // capacity_ slots of max_datagram_ bytes
  std::unique_ptr<sockaddr_storage[]> addrs_;
  std::unique_ptr<iovec[]> in_iov_, out_iov_;  // out_iov_: per queued reply
  std::unique_ptr<mmsghdr[]> in_;
  std::unique_ptr<std::size_t[]> reply_slot_;   // per queued reply: whose sender it goes to
  std::unique_ptr<bool[]> refused_;             // per queued reply
  std::unique_ptr<mmsghdr[]> entries_;          // what sendmmsg gets: a run of replies each
  std::unique_ptr<std::size_t[]> entry_first_;  // the first reply of each entry
  std::unique_ptr<segment_control[]> controls_;
  std::size_t single_until_ = 0;  // replies before this go one per entry (a run failed)
  udp_segmentation segmentation_ = udp_segmentation::several_receivers;
  bool coalesce_ = false;  // this send_queued call may coalesce
  std::size_t received_ = 0;
  std::size_t queued_ = 0;
  std::size_t sent_ = 0;
};

}  // namespace netkit
