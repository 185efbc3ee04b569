#include "net/uring_receive_memory.hpp"

#include <cstdlib>

#include <fmt/format.h>

#include "netkit/error.hpp"
#include "netkit/log.hpp"

namespace netkit::detail {

namespace {

// Provided receive buffers, shared by all connections. 16 KiB takes a typical burst in
// one completion; up to 1024 of them (16 MiB of address space) cover a turn in which
// every one of ~1000 busy connections completes a recv before we return any buffer. The
// ring starts with initial_buffers and doubles on each shortage, so resident memory follows
// the peak load. A shortage only costs an ENOBUFS re-arm, never data.
// NETKIT_URING_RECV_BUFFERS=COUNT[xSIZE] overrides the maximum (tests use a tiny ring).
constexpr unsigned default_buffer_count = 1024;
constexpr unsigned initial_buffers = 32;
constexpr std::size_t default_buffer_size = 16 * 1024;

// After this long without input (or when the last connection closes), the pages of the
// receive buffers and the spare output buffers go back to the kernel: memory follows the
// load, and a quiet engine holds only its connections' objects.
constexpr auto quiet_period = std::chrono::seconds(1);

struct ring_config {
  unsigned count = default_buffer_count;
  std::size_t size = default_buffer_size;
};

ring_config ring_config_from_env() {
  ring_config cfg;
  const char* text = std::getenv("NETKIT_URING_RECV_BUFFERS");
  if (!text || !*text) return cfg;
  char* end = nullptr;
  unsigned long count = std::strtoul(text, &end, 10);
  unsigned long size = default_buffer_size;
  if (*end == 'x') size = std::strtoul(end + 1, &end, 10);
  if (*end != '\0' || count == 0 || size < 64 || size > (1ul << 24))
    throw usage_error(
        fmt::format("NETKIT_URING_RECV_BUFFERS={}: expected COUNT or COUNTxSIZE "
                    "(a power of two up to 32768, x 64..16777216 bytes)",
                    text));
  cfg.count = static_cast<unsigned>(count);
  cfg.size = size;
  return cfg;
}

}  // namespace

uring_receive_memory::uring_receive_memory(event_loop& loop, uring_backend& ring,
                                           uring_send_pool& pool, const std::uint64_t& bytes_in,
                                           std::function<void(conn_id)> retry)
    : loop_(loop),
      uring_(ring),
      pool_(pool),
      buffers_(ring, ring_config_from_env().count, ring_config_from_env().size, initial_buffers),
      bytes_in_(bytes_in),
      retry_(std::move(retry)) {
  trim_timer_ = loop_.run_every(quiet_period, [this] {
    if (bytes_in_ != bytes_in_at_trim_) {
      bytes_in_at_trim_ = bytes_in_;
      trimmed_ = false;
    } else if (!trimmed_) {
      trim();
    }
  });
}

uring_receive_memory::~uring_receive_memory() {
  close();
}

void uring_receive_memory::close() noexcept {
  *alive_ = false;
  if (trim_timer_) loop_.cancel(trim_timer_);
  trim_timer_ = 0;
}

void uring_receive_memory::starved(conn_id id) {
  if (!*alive_) return;
  if (starved_.empty())
    loop_.defer([this, alive = alive_] {
      if (*alive) retry_starved();
    });
  starved_.push_back(id);
}

void uring_receive_memory::retry_starved() {
  if (buffers_.grow()) {
    log(log_level::debug, "io_uring receive buffers: {} of {} now in the ring", buffers_.posted(),
        buffers_.count());
  } else if (++shortages_ == 1 || shortages_ % 10000 == 0) {
    log(shortages_ == 1 ? log_level::info : log_level::debug,
        "io_uring receive buffers exhausted ({} x {} bytes; {} turns so far): reads resume as "
        "buffers return",
        buffers_.count(), buffers_.buffer_size(), shortages_);
  }
  starved_running_.clear();
  starved_running_.swap(starved_);
  for (auto id : starved_running_)
    retry_(id);
}

void uring_receive_memory::went_idle() {
  if (!*alive_ || trimmed_) return;
  trimmed_ = true;  // at most one pending trim
  loop_.defer([this, alive = alive_] {
    if (*alive) trim();
  });
}

void uring_receive_memory::trim() {
  trimmed_ = true;
  pool_.trim();
  // Without DEFER_TASKRUN the kernel may fill a buffer at any moment; with it, only while
  // this thread is inside io_uring_enter. An empty completion queue means every filled
  // buffer has been delivered and handed back, so none holds data.
  // A buffer that a send is still reading from must keep its bytes.
  if ((uring_.setup_flags() & IORING_SETUP_DEFER_TASKRUN) &&
      io_uring_cq_ready(&uring_.ring()) == 0 && held_ == 0)
    buffers_.trim();
}

}  // namespace netkit::detail
