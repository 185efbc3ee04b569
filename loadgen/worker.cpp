#include "worker.hpp"

#include <sys/resource.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "netkit/codec/sockperf_codec.hpp"
#include "netkit/error.hpp"
#include "worker_common.hpp"

namespace netkit::loadgen {

std::optional<clock::time_point> phase_sync::ready_and_wait(event_loop& loop) {
  std::unique_lock lock(mutex_);
  loops_.push_back(&loop);
  ++ready_;
  changed_.notify_all();
  changed_.wait(lock, [&] { return start_.has_value() || stopped_.load(); });
  if (stopped_.load()) return std::nullopt;
  return start_;
}

void phase_sync::leave(event_loop& loop) {
  std::lock_guard lock(mutex_);
  std::erase(loops_, &loop);
}

bool phase_sync::wait_ready(clock::time_point deadline) {
  std::unique_lock lock(mutex_);
  return changed_.wait_until(lock, deadline, [&] {
    return ready_ >= workers_ || stopped_.load();
  }) && ready_ >= workers_;
}

void phase_sync::start(clock::time_point at) {
  std::lock_guard lock(mutex_);
  start_ = at;
  changed_.notify_all();
}

void phase_sync::stop_all() {
  std::lock_guard lock(mutex_);
  stopped_.store(true);
  for (auto* loop : loops_)
    loop->stop();
  changed_.notify_all();
}

bench_result run_worker(const bench_config& config, const worker_plan& plan, phase_sync& sync,
                        worker_progress& progress) {
  if (!config.stream()) return detail::run_dgram_worker(config, plan, sync, progress);
  if (config.mode == bench_mode::churn)
    return detail::run_churn_worker(config, plan, sync, progress);
  return detail::run_stream_worker(config, plan, sync, progress);
}

namespace detail {

std::vector<std::byte> request_bytes(const bench_config& config) {
  if (config.protocol == wire_protocol::sockperf)
    return sockperf::make_request(0, config.size, true);
  std::vector<std::byte> payload(config.size);
  for (std::size_t i = 0; i < payload.size(); ++i)
    payload[i] = static_cast<std::byte>('a' + i % 26);
  if (!config.stream()) return payload;
  byte_buffer framed;
  make_encoder(config.codec)->encode(payload, framed);
  auto bytes = framed.data();
  return {bytes.begin(), bytes.end()};
}

precise_timer::precise_timer(event_loop& loop, std::function<void()> fire)
    : loop_(loop),
      fd_(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)),
      fire_(std::move(fire)) {
  if (!fd_) throw sys_error(errno, "timerfd_create");
  watch_ = loop_.watch(fd_.get(), io_read, *this);
}

precise_timer::~precise_timer() {
  loop_.unwatch(watch_);
}

void precise_timer::arm(clock::time_point at) {
  due_ = at;
  armed_ = true;
  wait_for_due(clock::now());
}

void precise_timer::wait_for_due(clock::time_point now) {
  if (due_ - now <= spin_window) {
    if (!spinning_) {
      spinning_ = true;
      ++spins_;
      loop_.call_again(watch_, 0);
    }
    return;
  }
  // Wake spin_window early, and spin the rest. A sleep set earlier and no longer wanted
  // may still wake us: on_io() then finds nothing due and waits again.
  const auto ns = (due_ - spin_window).time_since_epoch().count();
  itimerspec spec{};
  spec.it_value.tv_sec = std::max<std::int64_t>(ns / 1'000'000'000, 0);
  spec.it_value.tv_nsec = ns % 1'000'000'000;
  if (spec.it_value.tv_sec == 0 && spec.it_value.tv_nsec == 0) spec.it_value.tv_nsec = 1;
  if (::timerfd_settime(fd_.get(), TFD_TIMER_ABSTIME, &spec, nullptr) != 0)
    throw sys_error(errno, "timerfd_settime");
  ++sleeps_;
}

void precise_timer::on_io(std::uint32_t events) {
  if (events & io_read) {
    std::uint64_t expirations;
    [[maybe_unused]] auto n = ::read(fd_.get(), &expirations, sizeof expirations);
  } else {
    spinning_ = false;  // this is the queued non-blocking turn
  }
  if (!armed_) return;
  const auto now = clock::now();
  if (now < due_) return wait_for_due(now);
  armed_ = false;
  fire_();
}

double thread_cpu_seconds() noexcept {
  rusage usage{};
  ::getrusage(RUSAGE_THREAD, &usage);
  const auto seconds = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

worker_base::worker_base(const bench_config& config, const worker_plan& plan, phase_sync& sync,
                         worker_progress& progress)
    : plan_(plan),
      config_(config),
      sync_(sync),
      progress_(progress),
      loop_(config.model),
      request_(request_bytes(config)) {}

bench_result worker_base::run_window(const std::function<void()>& begin) {
  auto start = sync_.ready_and_wait(loop_);
  if (!start) {
    result_.interrupted = true;
    return result_;
  }
  measure_from_ = *start + config_.warmup;
  end_ = measure_from_ + config_.duration;
  loop_.run_after(*start - clock::now(), [this, &begin] {
    started_ = true;
    begin();
  });
  loop_.run_after(measure_from_ - clock::now(), [this] {
    result_.messages = result_.bytes_sent = result_.bytes_received = 0;
    if (config_.mode == bench_mode::churn) result_.connects = 0;
    result_.latency.clear();
    measuring_ = true;
    cpu_at_start_ = thread_cpu_seconds();
    mark("measuring\n");
  });
  loop_.run_after(end_ - clock::now(), [this] { finish(); });
  loop_.run_every(std::chrono::milliseconds(200), [this] { publish(progress_, result_); });
  loop_.run();
  if (!finished_) {  // stopped from outside: partial results
    result_.interrupted = sync_.stopped();
    finish();
  }
  publish(progress_, result_);
  return result_;
}

void worker_base::mark(std::string_view line) const noexcept {
  if (!config_.mark_window || plan_.index != 0) return;
  // One short write(2): a whole line even when other threads or processes write too.
  [[maybe_unused]] auto n = ::write(STDERR_FILENO, line.data(), line.size());
}

void worker_base::finish() {
  if (finished_) return;
  finished_ = true;
  // Ended inside the warm-up: nothing was measured.
  const auto now = std::min(clock::now(), end_);
  result_.seconds = measuring_ ? std::chrono::duration<double>(now - measure_from_).count() : 0.0;
  result_.client_cpu_s = measuring_ ? thread_cpu_seconds() - cpu_at_start_ : 0.0;
  if (measuring_) mark("measured\n");
  on_finish();
  loop_.stop();
}

void publish(worker_progress& progress, const bench_result& result) {
  progress.messages.store(result.messages, std::memory_order_relaxed);
  progress.bytes.store(result.bytes_received, std::memory_order_relaxed);
  progress.errors.store(result.error_total(), std::memory_order_relaxed);
  std::lock_guard lock(progress.mutex);
  progress.latency = result.latency;
}

}  // namespace detail
}  // namespace netkit::loadgen
