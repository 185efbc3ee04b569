// netkit-cpu-stalls: how much of each CPU the machine takes away from a thread that never
// blocks. One thread per CPU named on the command line, pinned there, reads the clock in a
// tight loop for --seconds; every gap between two reads longer than --threshold-us is time
// the thread did not run (the hypervisor ran another guest, an interrupt, a kernel thread).
// A request in flight during such a gap waits it out, whatever server answers it, so the
// gaps bound the latency percentiles any server can show on this machine.
//
// Prints one line per CPU:
//   cpu=N seconds=S gaps=G lost_ms=L lost_pct=P over_500us=A over_2ms=B max_us=M
// and exits 1 naming the operation and errno when a CPU cannot be used.
#include <fmt/core.h>
#include <pthread.h>
#include <sched.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

struct stalls {
  int cpu = 0;
  int error = 0;  // errno of pthread_setaffinity_np, or 0
  double seconds = 0;
  std::uint64_t gaps = 0, over_500us = 0, over_2ms = 0;
  double lost_us = 0, max_us = 0;
};

void spin_on(stalls& out, double seconds, double threshold_us) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(out.cpu, &set);
  if (int rc = ::pthread_setaffinity_np(::pthread_self(), sizeof set, &set); rc != 0) {
    out.error = rc;
    return;
  }
  const auto start = clock_type::now();
  const auto end = start + std::chrono::duration_cast<clock_type::duration>(
                               std::chrono::duration<double>(seconds));
  auto prev = start;
  // Bounded by the clock: ends at `end`.
  while (prev < end) {
    const auto now = clock_type::now();
    const double gap = std::chrono::duration<double, std::micro>(now - prev).count();
    if (gap > threshold_us) {
      ++out.gaps;
      out.lost_us += gap;
      if (gap > 500) ++out.over_500us;
      if (gap > 2000) ++out.over_2ms;
      if (gap > out.max_us) out.max_us = gap;
    }
    prev = now;
  }
  out.seconds = std::chrono::duration<double>(prev - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "Measures how much of each CPU the machine takes from a thread that never blocks: "
      "one spinning thread per CPU, pinned, counts the gaps between clock reads longer than "
      "--threshold-us. A request in flight during a gap waits it out, so the gaps bound the "
      "tail latency any server can show here.",
      "netkit-cpu-stalls"};
  std::vector<int> cpus;
  double seconds = 2;
  double threshold_us = 50;
  app.add_option("cpus", cpus, "CPUs to measure, at the same time (e.g. 0 1)")
      ->required()
      ->check(CLI::Range(0, CPU_SETSIZE - 1));
  app.add_option("--seconds", seconds, "How long each thread spins")
      ->check(CLI::Range(0.01, 600.0));
  app.add_option("--threshold-us", threshold_us, "Shortest gap counted, in microseconds")
      ->check(CLI::Range(1.0, 1e6));
  CLI11_PARSE(app, argc, argv);

  std::vector<stalls> results(cpus.size());
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < cpus.size(); ++i) {
    results[i].cpu = cpus[i];
    threads.emplace_back(spin_on, std::ref(results[i]), seconds, threshold_us);
  }
  for (auto& t : threads)
    t.join();
  int status = 0;
  for (const auto& r : results) {
    if (r.error != 0) {
      fmt::print(stderr, "netkit-cpu-stalls: pthread_setaffinity_np(cpu {}): {}\n", r.cpu,
                 std::strerror(r.error));
      status = 1;
      continue;
    }
    fmt::print(
        "cpu={} seconds={:.3f} gaps={} lost_ms={:.1f} lost_pct={:.2f} over_500us={} "
        "over_2ms={} max_us={:.0f}\n",
        r.cpu, r.seconds, r.gaps, r.lost_us / 1000, 100 * r.lost_us / (r.seconds * 1e6),
        r.over_500us, r.over_2ms, r.max_us);
  }
  return status;
}
