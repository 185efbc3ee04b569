// rr (pingpong is the same over datagrams: one datagram out, its echo back) and rate over
// udp:// and unix-dgram://: each "connection" is a connected datagram socket on the worker's
// loop. Requests carry a sequence number (the first 8 bytes of an echo payload, the header
// of a sockperf message), so a reply is matched to its request even when the network
// drops, duplicates or reorders; a request unanswered after --timeout counts as "timeout",
// a reply that matches nothing outstanding as "stale".
#include <endian.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <memory>

#include "netkit/codec/sockperf_codec.hpp"
#include "netkit/datagram.hpp"
#include "netkit/socket.hpp"
#include "worker_common.hpp"

namespace netkit::loadgen::detail {
namespace {

constexpr int datagrams_per_wakeup = 64;
// Unanswered requests per socket in rate mode before the generator stops sending on it.
constexpr std::size_t max_outstanding = 4096;
constexpr auto sweep_period = std::chrono::milliseconds(10);

struct outstanding {
  std::uint64_t seq;
  clock::time_point intended;
  bool failed = false;  // its send failed (counted then): the sweep only drops it
};

class dgram_worker;

class dgram_lane final : private io_handler {
 public:
  dgram_lane(dgram_worker& owner, unique_fd fd);
  ~dgram_lane();
  void send_request(clock::time_point intended);
  // Drops requests older than the timeout; rr sends the next one.
  void sweep(clock::time_point now);
  bool idle() const noexcept { return waiting_.empty(); }
  bool full() const noexcept { return waiting_.size() >= max_outstanding; }

 private:
  void on_io(std::uint32_t events) override;
  void on_reply(std::span<const std::byte> reply, clock::time_point now);

  dgram_worker& owner_;
  unique_fd fd_;
  watch_id watch_;
  std::vector<std::byte> out_, in_;
  std::uint64_t next_seq_ = 1;
  std::deque<outstanding> waiting_;
};

class dgram_worker final : public worker_base {
 public:
  dgram_worker(const bench_config& config, const worker_plan& plan, phase_sync& sync,
               worker_progress& progress)
      : worker_base(config, plan, sync, progress) {
    for (std::size_t i = 0; i < plan.connections; ++i)
      lanes_.push_back(std::make_unique<dgram_lane>(
          *this, open_dgram_client(config.target, io_mode::nonblocking)));
    result().established = lanes_.size();
    loop().run_every(sweep_period, [this] {
      const auto now = clock::now();
      for (auto& l : lanes_)
        l->sweep(now);
    });
  }
  ~dgram_worker() override {
    timer_.reset();
    lanes_.clear();
  }

  bench_result run() {
    return run_window([this] { begin(); });
  }
  bool closed_loop() const noexcept { return config().mode != bench_mode::rate; }

 private:
  void begin() {
    const auto now = clock::now();
    if (closed_loop()) {
      for (auto& l : lanes_)
        l->send_request(now);
      return;
    }
    if (plan_.rate <= 0 || lanes_.empty()) return;
    schedule_ = std::make_unique<arrivals>(config().spacing_kind, plan_.rate, plan_.seed, now);
    timer_ = std::make_unique<precise_timer>(loop(), [this] { send_due(); });
    timer_->arm(schedule_->next());
  }

  void send_due() {
    const auto now = clock::now();
    while (schedule_->next() <= now) {
      const auto intended = schedule_->next();
      schedule_->advance();
      auto& l = *lanes_[next_lane_++ % lanes_.size()];
      if (l.full()) {
        result().count_error("backlog");
      } else {
        l.send_request(intended);
      }
    }
    if (!finished()) timer_->arm(schedule_->next());
  }

  void on_finish() override { timer_.reset(); }

  std::vector<std::unique_ptr<dgram_lane>> lanes_;
  std::size_t next_lane_ = 0;
  std::unique_ptr<arrivals> schedule_;
  std::unique_ptr<precise_timer> timer_;
};

// Where the sequence number sits: the sockperf header, or an echo payload's first 8 bytes
// (none when the payload is shorter).
bool stamp(wire_protocol protocol, std::span<std::byte> bytes, std::uint64_t seq) {
  if (protocol == wire_protocol::sockperf) {
    auto h = sockperf::read_header(bytes);
    h.sequence = seq;
    sockperf::write_header(h, bytes);
    return true;
  }
  if (bytes.size() < 8) return false;
  const std::uint64_t be = htobe64(seq);
  std::memcpy(bytes.data(), &be, 8);
  return true;
}

std::optional<std::uint64_t> seq_of(wire_protocol protocol, std::span<const std::byte> bytes) {
  if (protocol == wire_protocol::sockperf) {
    if (bytes.size() < sockperf::header_size) return std::nullopt;
    return sockperf::read_header(bytes).sequence;
  }
  if (bytes.size() < 8) return std::nullopt;
  std::uint64_t be;
  std::memcpy(&be, bytes.data(), 8);
  return be64toh(be);
}

dgram_lane::dgram_lane(dgram_worker& owner, unique_fd fd)
    : owner_(owner),
      fd_(std::move(fd)),
      out_(owner.request().begin(), owner.request().end()),
      in_(max_udp6_payload + 1) {
  watch_ = owner_.loop().watch(fd_.get(), io_read, *this);
}

dgram_lane::~dgram_lane() {
  owner_.loop().unwatch(watch_);
}

void dgram_lane::send_request(clock::time_point intended) {
  const std::uint64_t seq = next_seq_++;
  stamp(owner_.config().protocol, out_, seq);
  auto r = send_datagram(fd_.get(), out_);
  if (!r.ok()) {
    owner_.result().count_error(r.would_block() ? "backlog" : error_kind(r.err));
    // rr: the next request goes at the next sweep.
    waiting_.push_back({seq, intended - owner_.config().timeout, true});
    return;
  }
  owner_.result().bytes_sent += out_.size();
  waiting_.push_back({seq, intended});
}

void dgram_lane::sweep(clock::time_point now) {
  if (!owner_.running()) return;
  const auto limit = now - owner_.config().timeout;
  bool dropped = false;
  while (!waiting_.empty() && waiting_.front().intended <= limit) {
    if (!waiting_.front().failed) owner_.result().count_error("timeout");
    waiting_.pop_front();
    dropped = true;
  }
  if (dropped && owner_.closed_loop() && waiting_.empty()) send_request(now);
}

void dgram_lane::on_io(std::uint32_t) {
  for (int i = 0; i < datagrams_per_wakeup; ++i) {
    auto r = recv_datagram(fd_.get(), in_, owner_.config().target.kind());
    if (r.would_block()) return;
    if (!r.ok()) {
      if (owner_.running()) owner_.result().count_error(error_kind(r.err));
      continue;
    }
    owner_.result().bytes_received += static_cast<std::uint64_t>(r.n);
    on_reply(std::span(in_).first(static_cast<std::size_t>(r.n)), clock::now());
  }
  if (owner_.loop().edge_triggered()) owner_.loop().call_again(watch_, io_read);
}

void dgram_lane::on_reply(std::span<const std::byte> reply, clock::time_point now) {
  if (reply.size() != out_.size()) {
    owner_.result().count_error("protocol");
    return;
  }
  auto seq = seq_of(owner_.config().protocol, reply);
  auto it = waiting_.begin();
  if (seq)
    it = std::find_if(waiting_.begin(), waiting_.end(),
                      [&](const outstanding& o) { return o.seq == *seq; });
  if (it == waiting_.end()) {
    if (owner_.running()) owner_.result().count_error("stale");
    return;
  }
  owner_.record(now - it->intended);
  waiting_.erase(it);
  if (owner_.closed_loop() && owner_.running() && waiting_.empty()) send_request(now);
}

}  // namespace

const worker_fn run_dgram_worker = run_as<dgram_worker>;

}  // namespace netkit::loadgen::detail
