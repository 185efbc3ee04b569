// What this kernel's io_uring offers, probed at run time: Debian's liburing 2.3 and kernel
// headers predate several features that the running kernel (often much newer) has, so the
// ABI values netkit needs are defined here from the kernel's published uapi and each
// feature is tried on a scratch ring before anyone relies on it.
#pragma once

#include <cstdint>
#include <string>

namespace netkit::detail {

// Kernel ABI missing from liburing 2.3's headers (include/uapi/linux/io_uring.h).
inline constexpr std::uint32_t abi_feat_recvsend_bundle = 1u << 14;  // Linux 6.10
inline constexpr std::uint16_t abi_pbuf_ring_inc = 2;                // IOU_PBUF_RING_INC, 6.12
inline constexpr std::uint16_t abi_recvsend_bundle = 1u << 4;        // IORING_RECVSEND_BUNDLE
inline constexpr std::uint32_t abi_cqe_f_buf_more = 1u << 4;         // IORING_CQE_F_BUF_MORE

struct uring_features {
  bool available = false;            // a ring could be set up at all
  std::string problem;               // why not, when unavailable
  bool defer_taskrun = false;        // IORING_SETUP_SINGLE_ISSUER | DEFER_TASKRUN (6.1)
  bool buffer_rings = false;         // IORING_REGISTER_PBUF_RING (5.19)
  bool incremental_buffers = false;  // IOU_PBUF_RING_INC (6.12)
  bool recv_bundles = false;         // IORING_FEAT_RECVSEND_BUNDLE (6.10)
  bool multishot_recv = false;       // IORING_RECV_MULTISHOT accepted (6.0)
  bool multishot_accept = false;     // IORING_ACCEPT_MULTISHOT accepted (5.19)
  bool send_zerocopy = false;        // IORING_OP_SEND_ZC (6.0)

  // "this kernel: multishot accept, multishot recv, ..." (what it gave and what it lacks).
  std::string describe() const;
};

// Probed once per process (a scratch ring, a socketpair and an abstract Unix listener,
// all closed again); later calls return the same answer.
const uring_features& probe_uring_features();

}  // namespace netkit::detail
