// churn over stream endpoints: each lane connects (the library's connector: timeout, source
// address, on every backend), sends one request, reads the whole reply, closes and starts
// again. A cycle's latency runs from the connect call to the reply's last byte. The
// exchange is done on the bare descriptor: a whole stream_client per cycle would measure
// the client's set-up more than the server's accept. A connection silent for --timeout
// (nothing sent or received since the connect or the last byte) ends its cycle as a
// "timeout" error, as silence does in the other closed-loop modes.
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <memory>

#include "netkit/net/connector.hpp"
#include "worker_common.hpp"

namespace netkit::loadgen::detail {
namespace {

// A failed connect waits this long before the lane tries again: EADDRNOTAVAIL comes back at
// once, and retrying at once would spin.
constexpr auto retry_pause = std::chrono::milliseconds(10);
// Reads per readiness report (the lane reads at most one reply, then closes).
constexpr int reads_per_wakeup = 16;

class churn_worker;

class lane final : private io_handler {
 public:
  lane(churn_worker& owner, std::size_t index) : owner_(owner), index_(index) {}
  ~lane() { drop(); }
  void start();
  // Connected, and nothing moved since `deadline`: a silent server. Reads first, so that
  // a reply that came while the client itself was stalled still counts.
  void fail_if_silent_since(clock::time_point deadline) {
    if (!fd_ || heard_ >= deadline) return;
    on_io(io_read);
    if (fd_ && heard_ < deadline) fail("timeout");
  }

 private:
  void on_connected(unique_fd fd);
  void on_io(std::uint32_t events) override;
  void write_some();
  void drop() noexcept;
  void fail(std::string_view kind);

  churn_worker& owner_;
  std::size_t index_;
  std::unique_ptr<connector> connector_;
  unique_fd fd_;
  watch_id watch_;
  clock::time_point began_{}, heard_{};  // heard_: the connect, or the last byte moved
  std::size_t sent_ = 0, received_ = 0;
};

class churn_worker final : public worker_base {
 public:
  using worker_base::worker_base;
  ~churn_worker() override { lanes_.clear(); }

  bench_result run() {
    return run_window([this] {
      for (std::size_t i = 0; i < plan_.connections; ++i) {
        lanes_.push_back(std::make_unique<lane>(*this, plan_.index * plan_.connections + i));
        lanes_.back()->start();
      }
      // One sweep for every lane, not a timer per cycle (and the loop's turn time, not a
      // clock read per byte): the client's cost per connection is what the churn figures
      // are read against. Silence is seen within 1.25 timeouts.
      const auto timeout = config().timeout;
      const auto period = std::max<clock::duration>(timeout / 4, std::chrono::milliseconds(1));
      sweep_ = loop().run_every(period, [this, timeout] {
        const auto deadline = clock::now() - timeout;
        for (auto& l : lanes_)
          l->fail_if_silent_since(deadline);
      });
    });
  }

  connect_options connecting(std::size_t lane_index) const {
    connect_options o;
    o.timeout = config().timeout;
    if (!config().sources.empty())
      o.source = config().sources[lane_index % config().sources.size()];
    return o;
  }

 private:
  void on_finish() override {
    if (sweep_) loop().cancel(sweep_);
    sweep_ = 0;
  }

  std::vector<std::unique_ptr<lane>> lanes_;
  timer_id sweep_ = 0;
};

void lane::start() {
  if (owner_.finished()) return;
  began_ = clock::now();
  sent_ = received_ = 0;
  connector_ = make_connector(
      owner_.loop(), owner_.config().target, owner_.connecting(index_),
      [this](unique_fd fd, const endpoint&) { on_connected(std::move(fd)); },
      [this](const sys_error& e) { fail(error_kind(e.errno_value())); });
  connector_->start();
}

void lane::on_connected(unique_fd fd) {
  fd_ = std::move(fd);
  heard_ = owner_.loop().now();
  ++owner_.result().connects;
  watch_ = owner_.loop().watch(fd_.get(), io_read, *this);
  write_some();
}

void lane::write_some() {
  auto request = owner_.request();
  while (sent_ < request.size()) {
    ssize_t n = ::send(fd_.get(), request.data() + sent_, request.size() - sent_, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        owner_.loop().modify(watch_, io_read | io_write);
        return;
      }
      return fail(error_kind(errno));
    }
    sent_ += static_cast<std::size_t>(n);
    heard_ = owner_.loop().now();
    owner_.result().bytes_sent += static_cast<std::uint64_t>(n);
  }
  owner_.loop().modify(watch_, io_read);
}

void lane::on_io(std::uint32_t events) {
  if (!fd_) return;
  if ((events & io_write) && sent_ < owner_.request().size()) {
    write_some();
    if (!fd_) return;
  }
  std::array<std::byte, 64 * 1024> scratch;
  const std::size_t want = owner_.request().size();
  for (int i = 0; i < reads_per_wakeup; ++i) {
    ssize_t n = ::recv(fd_.get(), scratch.data(), std::min(scratch.size(), want - received_), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return;
      return fail(error_kind(errno));
    }
    if (n == 0) return fail("closed");
    received_ += static_cast<std::size_t>(n);
    heard_ = owner_.loop().now();
    owner_.result().bytes_received += static_cast<std::uint64_t>(n);
    if (received_ == want) {
      owner_.record(clock::now() - began_);
      drop();
      start();
      return;
    }
  }
  if (owner_.loop().edge_triggered()) owner_.loop().call_again(watch_, io_read);
}

void lane::drop() noexcept {
  if (watch_.valid()) owner_.loop().unwatch(watch_);
  watch_ = {};
  fd_.reset();
}

void lane::fail(std::string_view kind) {
  drop();
  if (owner_.finished()) return;
  owner_.result().count_error(kind);
  owner_.loop().run_after(retry_pause, [this] { start(); });
}

}  // namespace

const worker_fn run_churn_worker = run_as<churn_worker>;

}  // namespace netkit::loadgen::detail
