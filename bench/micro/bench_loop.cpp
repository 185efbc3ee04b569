// One event-loop turn with N ready descriptors, per backend: what the loop and its backend
// cost around the handlers (wait, decoding the events, stale-event check, dispatch).
//
// Each descriptor is an eventfd made readable before the first turn.
// - loop_turn/<backend>/N: the handler writes to its eventfd again, so every backend,
//   edge-triggered or not, reports it again. Includes N write(2) calls per turn.
// - loop_turn_passive/<backend>/N (level-triggered backends only): the handler does
//   nothing and the descriptor stays readable: the loop's own cost, no handler syscall.
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "netkit/event/loop.hpp"
#include "netkit/fd.hpp"

namespace {

class ready_fd final : public netkit::io_handler {
 public:
  explicit ready_fd(bool rearm) : fd_(::eventfd(1, EFD_NONBLOCK | EFD_CLOEXEC)), rearm_(rearm) {}
  int fd() const noexcept { return fd_.get(); }
  void on_io(std::uint32_t) override {
    ++calls;
    if (rearm_) {
      std::uint64_t one = 1;
      [[maybe_unused]] auto n = ::write(fd_.get(), &one, sizeof one);
    }
  }
  std::uint64_t calls = 0;

 private:
  netkit::unique_fd fd_;
  bool rearm_;
};

void loop_turn(benchmark::State& state, const std::string& backend, bool rearm) {
  const auto n = static_cast<std::size_t>(state.range(0));
  std::unique_ptr<netkit::event_loop> loop;
  std::vector<std::unique_ptr<ready_fd>> fds;
  try {
    loop = std::make_unique<netkit::event_loop>(backend);
    for (std::size_t i = 0; i < n; ++i) {
      fds.push_back(std::make_unique<ready_fd>(rearm));
      if (fds.back()->fd() < 0) throw std::runtime_error("eventfd failed");
      loop->watch(fds.back()->fd(), netkit::io_read, *fds.back());
    }
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());  // e.g. select beyond FD_SETSIZE, io_uring disabled
    return;
  }
  // Settle: the first turns also submit the registrations (io_uring).
  for (int i = 0; i < 3; ++i)
    loop->run_once(std::chrono::milliseconds(100));
  std::uint64_t before = 0;
  for (auto& f : fds)
    before += f->calls;
  for (auto _ : state)
    loop->run_once(std::chrono::milliseconds(100));
  std::uint64_t after = 0;
  for (auto& f : fds)
    after += f->calls;
  // Level-triggered and epoll-et report all N every turn. io_uring may not: with
  // DEFER_TASKRUN the kernel runs a bounded amount of task work per io_uring_enter, so a
  // turn can see fewer completions than ready descriptors. Items are real dispatches, and
  // dispatched/turn says how many a turn saw.
  const auto dispatched = after - before;
  if (dispatched == 0) state.SkipWithError("nothing was dispatched");
  state.SetItemsProcessed(static_cast<std::int64_t>(dispatched));
  state.counters["dispatched/turn"] =
      static_cast<double>(dispatched) / static_cast<double>(state.iterations());
}

void raise_nofile() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
}

}  // namespace

int main(int argc, char** argv) {
  raise_nofile();
  for (std::string backend : {"select", "poll", "epoll", "epoll-et", "uring"}) {
    benchmark::RegisterBenchmark(("loop_turn/" + backend).c_str(),
                                 [backend](benchmark::State& s) { loop_turn(s, backend, true); })
        ->RangeMultiplier(10)
        ->Range(1, 1000);
    if (backend == "select" || backend == "poll" || backend == "epoll")
      benchmark::RegisterBenchmark(("loop_turn_passive/" + backend).c_str(),
                                   [backend](benchmark::State& s) { loop_turn(s, backend, false); })
          ->RangeMultiplier(10)
          ->Range(1, 1000);
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
