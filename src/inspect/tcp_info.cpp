#include "netkit/inspect/tcp_info.hpp"

// linux/tcp.h, not netinet/tcp.h: glibc's struct tcp_info stops at tcpi_total_retrans.
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>
#include <string>

#include "netkit/error.hpp"

namespace netkit::inspect {

namespace {

// True when the kernel filled `field` (older kernels return a shorter struct).
template <typename Field>
bool reported(socklen_t len, std::size_t offset) {
  return len >= offset + sizeof(Field);
}

}  // namespace

tcp_info read_tcp_info(int fd) {
  ::tcp_info raw{};
  socklen_t len = sizeof raw;
  if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &raw, &len) != 0)
    throw_sys_error("getsockopt TCP_INFO", "fd " + std::to_string(fd));
  using std::chrono::microseconds;
  tcp_info info;
  info.state = state_from_kernel(raw.tcpi_state).value_or(tcp_state::closed);
  info.retransmits = raw.tcpi_retransmits;
  info.probes = raw.tcpi_probes;
  info.backoff = raw.tcpi_backoff;
  info.rto = microseconds(raw.tcpi_rto);
  info.rtt = microseconds(raw.tcpi_rtt);
  info.rtt_var = microseconds(raw.tcpi_rttvar);
  info.snd_mss = raw.tcpi_snd_mss;
  info.rcv_mss = raw.tcpi_rcv_mss;
  info.snd_cwnd = raw.tcpi_snd_cwnd;
  info.snd_ssthresh = raw.tcpi_snd_ssthresh;
  info.unacked = raw.tcpi_unacked;
  info.lost = raw.tcpi_lost;
  info.total_retrans = raw.tcpi_total_retrans;
  // Fields added after 2.6 are read only when the kernel's struct reaches them.
  if (reported<__u32>(len, offsetof(::tcp_info, tcpi_min_rtt)))
    info.min_rtt = microseconds(raw.tcpi_min_rtt);
  if (reported<__u32>(len, offsetof(::tcp_info, tcpi_segs_in))) {
    info.segs_out = raw.tcpi_segs_out;
    info.segs_in = raw.tcpi_segs_in;
  }
  if (reported<__u32>(len, offsetof(::tcp_info, tcpi_notsent_bytes)))
    info.notsent_bytes = raw.tcpi_notsent_bytes;
  if (reported<__u64>(len, offsetof(::tcp_info, tcpi_bytes_received))) {
    info.bytes_acked = raw.tcpi_bytes_acked;
    info.bytes_received = raw.tcpi_bytes_received;
  }
  if (reported<__u64>(len, offsetof(::tcp_info, tcpi_bytes_retrans))) {
    info.bytes_sent = raw.tcpi_bytes_sent;
    info.bytes_retrans = raw.tcpi_bytes_retrans;
  }
  if (reported<__u32>(len, offsetof(::tcp_info, tcpi_snd_wnd))) info.snd_wnd = raw.tcpi_snd_wnd;
  return info;
}

}  // namespace netkit::inspect
