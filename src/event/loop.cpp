#include "netkit/event/loop.hpp"

#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>

#include <fmt/format.h>

#include "netkit/error.hpp"
#include "netkit/signals.hpp"

namespace netkit {

// eventfd that other threads (and signal handlers) write to wake the loop.
class event_loop::waker final : public io_handler {
 public:
  explicit waker(event_loop& loop) : loop_(loop), fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
    if (!fd_) throw_sys_error("eventfd");
    id_ = loop_.watch(fd_.get(), io_read, *this);
  }
  ~waker() { loop_.unwatch(id_); }
  int fd() const noexcept { return fd_.get(); }
  void wake() noexcept {
    std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(fd_.get(), &one, sizeof one);
  }
  void on_io(std::uint32_t) override {
    std::uint64_t count;
    [[maybe_unused]] auto n = ::read(fd_.get(), &count, sizeof count);
  }

 private:
  event_loop& loop_;
  unique_fd fd_;
  watch_id id_;
};

event_loop::event_loop(std::string_view backend_name) : event_loop(make_backend(backend_name)) {}

event_loop::event_loop(std::unique_ptr<backend> b)
    : backend_(std::move(b)), edge_triggered_(backend_->edge_triggered()), now_(clock::now()) {
  ready_.reserve(256);
  backend_->turn_clock_ = &now_;
  waker_ = std::make_unique<waker>(*this);
}

event_loop::~event_loop() {
  clear_stop_wake_fd(waker_->fd());
  backend_->turn_clock_ = nullptr;  // the backend outlives now_ (it may still reap)
}

watch_id event_loop::watch(int fd, std::uint32_t interest, io_handler& handler) {
  if (int limit = backend_->max_fd(); limit >= 0 && fd > limit)
    throw sys_error(
        EINVAL, fmt::format("watch with {}", backend_->name()),
        fmt::format("fd {} (this backend handles descriptors up to {} only)", fd, limit));
  std::uint32_t slot;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
  } else {
    slot = static_cast<std::uint32_t>(slots_.size());
    slots_.emplace_back();
  }
  auto& s = slots_[slot];
  s.fd = fd;
  s.interest = interest;
  s.handler = &handler;
  watch_id id{slot, s.generation};
  try {
    backend_->add(fd, interest, token_of(id));
  } catch (...) {
    s.fd = -1;
    s.handler = nullptr;
    ++s.generation;
    free_slots_.push_back(slot);
    throw;
  }
  return id;
}

void event_loop::modify(watch_id id, std::uint32_t interest) {
  auto& s = slots_[id.slot];
  if (s.generation != id.generation || s.interest == interest) return;
  s.interest = interest;
  backend_->modify(s.fd, interest, token_of(id));
}

void event_loop::unwatch(watch_id id) noexcept {
  if (!id.valid() || id.slot >= slots_.size()) return;
  auto& s = slots_[id.slot];
  if (s.generation != id.generation) return;
  backend_->remove(s.fd);
  s.fd = -1;
  s.handler = nullptr;
  ++s.generation;  // every queued event carrying the old token is now stale
  free_slots_.push_back(id.slot);
}

void event_loop::call_again(watch_id id, std::uint32_t events) {
  again_.push_back({token_of(id), events});
}

timer_id event_loop::run_after(clock::duration delay, std::function<void()> fn) {
  auto id = next_timer_++;
  timers_.emplace(id, timer{std::move(fn), {}});
  timer_queue_.emplace(clock::now() + delay, id);
  return id;
}

timer_id event_loop::run_every(clock::duration period, std::function<void()> fn) {
  auto id = next_timer_++;
  timers_.emplace(id, timer{std::move(fn), period});
  timer_queue_.emplace(clock::now() + period, id);
  return id;
}

void event_loop::cancel(timer_id id) noexcept {
  timers_.erase(id);
}

void event_loop::post(std::function<void()> fn) {
  {
    std::lock_guard lock(posted_mutex_);
    posted_.push_back(std::move(fn));
  }
  waker_->wake();
}

void event_loop::stop() noexcept {
  stopping_.store(true);
  waker_->wake();
}

void event_loop::stop_on_signals(std::initializer_list<int> signals) {
  // Already ours (a program installs before its banner, run_until_signal again): installing
  // anew would forget a signal that came in between.
  if (stop_wake_fd() == waker_->fd()) return;
  // The eventfd write wakes the loop, so interrupted calls may simply restart.
  set_stop_wake_fd(waker_->fd());
  install_stop_handler(signals, interrupted_calls::restart);
}

int event_loop::next_timeout_ms(std::chrono::milliseconds cap) const {
  if (!again_.empty()) return 0;
  if (timer_queue_.empty()) return static_cast<int>(cap.count());
  auto wait = timer_queue_.begin()->first - clock::now();
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(wait).count();
  if (ms < 0) ms = 0;
  if (cap.count() >= 0 && ms > cap.count()) ms = cap.count();
  return static_cast<int>(ms);
}

void event_loop::dispatch(const ready_event& ev) {
  auto slot = static_cast<std::uint32_t>(ev.token);
  auto generation = static_cast<std::uint32_t>(ev.token >> 32);
  if (slot >= slots_.size()) return;
  auto& s = slots_[slot];
  if (s.generation != generation || !s.handler) return;  // stale: closed earlier in this batch
  s.handler->on_io(ev.events);
}

void event_loop::run_timers() {
  // Bounded: timers added while running fire on a later turn at the earliest.
  auto deadline = now_;
  std::size_t budget = timer_queue_.size();
  while (budget-- > 0 && !timer_queue_.empty() && timer_queue_.begin()->first <= deadline) {
    auto id = timer_queue_.begin()->second;
    timer_queue_.erase(timer_queue_.begin());
    auto it = timers_.find(id);
    if (it == timers_.end()) continue;  // cancelled
    if (it->second.period.count() > 0) {
      timer_queue_.emplace(deadline + it->second.period, id);
      auto fn = it->second.fn;  // the callback may cancel itself
      fn();
    } else {
      auto fn = std::move(it->second.fn);
      timers_.erase(it);
      fn();
    }
  }
}

void event_loop::defer(deferred_task& task) {
  if (task.queued_) return;
  deferred_tasks_.push_back(&task);
  task.queued_ = true;
}

void event_loop::cancel(deferred_task& task) noexcept {
  if (!task.queued_) return;
  task.queued_ = false;
  // Rare (an owner going away): a scan of this turn's few queued tasks.
  for (auto* list : {&deferred_tasks_, &deferred_tasks_running_})
    for (auto& queued : *list)
      if (queued == &task) queued = nullptr;
}

void event_loop::run_deferred() {
  // Bounded: work deferred by deferred work runs on the next call.
  deferred_running_.swap(deferred_);
  for (auto& fn : deferred_running_)
    fn();
  deferred_running_.clear();
  deferred_tasks_running_.swap(deferred_tasks_);
  // By index, re-reading each entry: a task may cancel one queued behind it.
  for (std::size_t i = 0; i < deferred_tasks_running_.size(); ++i) {
    if (auto* task = deferred_tasks_running_[i]) {
      task->queued_ = false;
      task->run();
    }
  }
  deferred_tasks_running_.clear();
}

void event_loop::run_posted() {
  {
    std::lock_guard lock(posted_mutex_);
    running_.swap(posted_);
  }
  for (auto& fn : running_)
    fn();
  running_.clear();
}

void event_loop::wait_for_events(std::chrono::milliseconds cap) {
  const int timeout_ms = next_timeout_ms(cap);
  if (timeout_ms != 0 && busy_poll_.count() > 0) {
    // Bounded by the window, and by the first timer: a busy poll never delays one.
    auto until = clock::now() + busy_poll_;
    if (!timer_queue_.empty()) until = std::min(until, timer_queue_.begin()->first);
    do {
      backend_->wait(0, ready_);
      if (!ready_.empty()) {
        ++busy_poll_hits_;
        return;
      }
    } while (!stopping_.load(std::memory_order_relaxed) && clock::now() < until);
    if (stopping_.load(std::memory_order_relaxed)) return;
    ++blocking_waits_;
    backend_->wait(next_timeout_ms(cap), ready_);
    return;
  }
  if (timeout_ms != 0) ++blocking_waits_;
  backend_->wait(timeout_ms, ready_);
}

void event_loop::run_once(std::chrono::milliseconds timeout) {
  if (auto self = std::this_thread::get_id(); loop_thread_.load(std::memory_order_relaxed) != self)
    loop_thread_.store(self, std::memory_order_relaxed);
  ready_.clear();
  wait_for_events(timeout);
  if (!backend_->completion_based()) now_ = clock::now();  // a completion backend stamped it
  ++turns_;
  again_swap_.clear();
  again_swap_.swap(again_);
  for (const auto& ev : ready_)
    dispatch(ev);
  for (const auto& ev : again_swap_)
    dispatch(ev);
  run_deferred();
  run_timers();
  run_posted();
  run_deferred();
  // Only the loop that owns the stop signals may take the number: with several loops in
  // one process (multi-reactor, or a helper loop in another thread) another loop's turn
  // used to exchange it away, and the owner then woke to find nothing and kept running.
  if (stop_wake_fd() == waker_->fd()) {
    if (int sig = take_stop_signal(); sig != 0) {
      stop_signal_.store(sig);
      stopping_.store(true);
    }
  }
}

void event_loop::run() {
  while (!stopping_.load())
    run_once(std::chrono::milliseconds(-1));
}

void detail_assert_loop_thread(const event_loop& loop, const char* function) noexcept {
  if (loop.in_loop_thread()) return;
  fmt::print(stderr, "netkit: {} called from a thread that does not run its event loop\n",
             function);
  std::abort();
}

}  // namespace netkit
