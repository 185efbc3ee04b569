// rr (pingpong is the same over datagrams: one datagram out, its echo back) and rate over
// udp:// and unix-dgram://: each "connection" is a connected datagram socket on the worker's
// loop. Requests carry a sequence number (the first 8 bytes of an echo payload, the header
// of a sockperf message), so a reply is matched to its request even when the network
// drops, duplicates or reorders; a request unanswered after --timeout counts as "timeout",
// a reply that matches nothing outstanding as "stale".
// pingpong with --window N keeps N requests in flight per socket and moves them in batches
// (datagram_batch: one recvmmsg takes the replies, each is re-stamped in place as the next
// request, one sendmmsg sends them all), so the client's cost per datagram falls with N.
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

// Datagrams taken per readiness event (and the batch's capacity): then back to the loop, so
// one busy socket cannot starve the others.
constexpr std::size_t datagrams_per_wakeup = 64;
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
  // rr/pingpong: requests until --window are in flight (the start, and after losses).
  void fill(clock::time_point now);
  // Drops requests older than the timeout; rr sends the next one.
  void sweep(clock::time_point now);
  bool idle() const noexcept { return waiting_.empty(); }
  bool full() const noexcept { return waiting_.size() >= max_outstanding; }

 private:
  void on_io(std::uint32_t events) override;
  void receive_one_by_one();
  void receive_batched();
  void send_batch();
  // The request `reply` answers: its latency recorded, it is forgotten. False when it
  // answers nothing outstanding (counted as "protocol" or "stale").
  bool take_reply(std::span<const std::byte> reply, clock::time_point now);

  dgram_worker& owner_;
  unique_fd fd_;
  watch_id watch_;
  std::vector<std::byte> out_, in_;
  std::uint64_t next_seq_ = 1;
  std::deque<outstanding> waiting_;        // oldest first
  std::unique_ptr<datagram_batch> batch_;  // --window > 1 only
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
        l->fill(now);
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
  // One byte more than a reply: a longer one shows as a wrong size, not as a match.
  if (owner_.config().window > 1)
    batch_ = std::make_unique<datagram_batch>(
        std::min(owner_.config().window, datagrams_per_wakeup), out_.size() + 1);
  // A window's requests all go to the one server, and leave together on purpose: one GSO
  // send each batch (the server gets one datagram per request all the same).
  if (batch_) batch_->set_segmentation(udp_segmentation::always);
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

// One datagram per call: the window's first requests and its refills after a loss (the
// steady flow of a window goes through send_batch).
void dgram_lane::fill(clock::time_point now) {
  while (waiting_.size() < owner_.config().window)
    send_request(now);
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
  if (dropped && owner_.closed_loop()) fill(now);
}

void dgram_lane::on_io(std::uint32_t) {
  if (batch_) {
    receive_batched();
  } else {
    receive_one_by_one();
  }
}

void dgram_lane::receive_one_by_one() {
  for (std::size_t i = 0; i < datagrams_per_wakeup; ++i) {
    auto r = recv_datagram(fd_.get(), in_, owner_.config().target.kind());
    if (r.would_block()) return;
    if (!r.ok()) {
      if (owner_.running()) owner_.result().count_error(error_kind(r.err));
      continue;
    }
    owner_.result().bytes_received += static_cast<std::uint64_t>(r.n);
    const auto now = clock::now();
    if (take_reply(std::span(in_).first(static_cast<std::size_t>(r.n)), now) &&
        owner_.closed_loop() && owner_.running() && waiting_.empty())
      send_request(now);
  }
  if (owner_.loop().edge_triggered()) owner_.loop().call_again(watch_, io_read);
}

// pingpong with a window: every reply that matches goes straight back, re-stamped in its
// slot as the next request (no copy), and the batch leaves in one sendmmsg.
void dgram_lane::receive_batched() {
  auto& batch = *batch_;
  const std::size_t window = owner_.config().window;
  for (std::size_t taken = 0; taken < datagrams_per_wakeup;) {
    auto r = batch.receive(fd_.get());
    if (r.would_block()) return;
    if (!r.ok()) {
      if (owner_.running()) owner_.result().count_error(error_kind(r.err));
      ++taken;
      continue;
    }
    const auto now = clock::now();
    for (std::size_t i = 0; i < batch.size(); ++i) {
      const auto d = batch[i];
      owner_.result().bytes_received += d.data.size();
      if (!take_reply(d.data, now) || !owner_.running() || waiting_.size() >= window) continue;
      const std::uint64_t seq = next_seq_++;
      stamp(owner_.config().protocol, d.data, seq);
      batch.queue_reply(i, d.data.size());
      waiting_.push_back({seq, now});
    }
    taken += batch.size();
    if (batch.queued() > 0) send_batch();
    // Fewer than it could take: the socket's queue is empty (a later datagram is a new
    // readiness event, edge-triggered too).
    if (batch.size() < batch.capacity()) return;
  }
  if (owner_.loop().edge_triggered()) owner_.loop().call_again(watch_, io_read);
}

void dgram_lane::send_batch() {
  auto& batch = *batch_;
  const auto r = batch.send_queued(fd_.get());
  owner_.result().bytes_sent += r.sent * out_.size();
  const std::size_t unsent = batch.pending();
  if (r.failed == 0 && unsent == 0) return;
  if (r.failed > 0) owner_.result().count_error(error_kind(r.err), r.failed);
  if (unsent > 0) owner_.result().count_error("backlog", unsent);
  // The queued requests are the newest outstanding ones, in the order queued. Those that
  // did not go are dropped by the next sweep, which refills the window.
  const std::size_t queued = batch.queued();
  const std::size_t first = waiting_.size() - queued;
  for (std::size_t k = 0; k < queued; ++k) {
    if (k < queued - unsent && !batch.refused(k)) continue;
    auto& o = waiting_[first + k];
    o.failed = true;
    o.intended -= owner_.config().timeout;
  }
}

bool dgram_lane::take_reply(std::span<const std::byte> reply, clock::time_point now) {
  if (reply.size() != out_.size()) {
    owner_.result().count_error("protocol");
    return false;
  }
  auto seq = seq_of(owner_.config().protocol, reply);
  auto it = waiting_.begin();
  if (seq)
    it = std::find_if(waiting_.begin(), waiting_.end(),
                      [&](const outstanding& o) { return o.seq == *seq; });
  if (it == waiting_.end()) {
    if (owner_.running()) owner_.result().count_error("stale");
    return false;
  }
  owner_.record(now - it->intended);
  waiting_.erase(it);
  return true;
}

}  // namespace

const worker_fn run_dgram_worker = run_as<dgram_worker>;

}  // namespace netkit::loadgen::detail
