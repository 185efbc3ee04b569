#include "runner.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <exception>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <thread>

#include <fmt/format.h>

#include "netkit/datagram.hpp"
#include "netkit/error.hpp"
#include "netkit/fd.hpp"
#include "netkit/process.hpp"
#include "netkit/signals.hpp"
#include "server_cpu.hpp"
#include "worker.hpp"

namespace netkit::loadgen {
namespace {

constexpr auto tick = std::chrono::milliseconds(200);
// Descriptors a process needs besides its connections: stdio, loops, eventfds, timers,
// pipes to its parent.
constexpr std::size_t spare_descriptors = 64;

// A process's part of the run: which workers (global indices) and their plans.
std::vector<worker_plan> plans_for(const bench_config& c, std::size_t process) {
  std::vector<worker_plan> plans;
  const std::size_t conns = share_of(c.connections, c.processes, process);
  const std::size_t idle = share_of(c.idle, c.processes, process);
  for (std::size_t t = 0; t < c.threads; ++t) {
    worker_plan p;
    p.index = process * c.threads + t;
    p.connections = share_of(conns, c.threads, t);
    p.idle = share_of(idle, c.threads, t);
    p.rate = c.rate * static_cast<double>(p.connections) / static_cast<double>(c.connections);
    p.seed = c.seed + 0x9e3779b97f4a7c15ull * (p.index + 1);
    plans.push_back(p);
  }
  return plans;
}

// What the progress line shows; a process reports its own to its parent.
struct progress_totals {
  std::uint64_t messages = 0, bytes = 0, errors = 0;
  histogram latency;
};

class progress_line {
 public:
  explicit progress_line(bool on) : on_(on), began_(clock::now()), last_(began_) {}
  void draw(const progress_totals& t) {
    if (!on_) return;
    const auto now = clock::now();
    const double dt = std::chrono::duration<double>(now - last_).count();
    if (dt < 0.5) return;
    const double rate = static_cast<double>(t.messages - last_messages_) / dt;
    last_ = now;
    last_messages_ = t.messages;
    std::fprintf(stdout, "\r  %6.1f s  %12.0f msgs/s  p99 %9.1f us  errors %-8lu",
                 std::chrono::duration<double>(now - began_).count(), rate,
                 static_cast<double>(t.latency.percentile(99)) / 1000.0,
                 static_cast<unsigned long>(t.errors));
    std::fflush(stdout);
    drawn_ = true;
  }
  void clear() {
    if (!drawn_) return;
    std::fputs("\r\033[K", stdout);
    std::fflush(stdout);
  }

 private:
  bool on_;
  bool drawn_ = false;
  clock::time_point began_, last_;
  std::uint64_t last_messages_ = 0;
};

// How a process's threads learn when to start: from the clock (one process) or from the
// parent (several).
struct coordinator {
  // Returns the start instant, or nullopt when the run is called off.
  std::function<std::optional<clock::time_point>()> all_ready;
  std::function<void(const progress_totals&)> report;
};

// Runs `plans` on threads of this process; stops early on a stop signal or `stop_fd`
// readable (the parent went or said stop). Rethrows a worker's setup error.
bench_result run_threads(const bench_config& config, const std::vector<worker_plan>& plans,
                         const coordinator& coord) {
  phase_sync sync(plans.size());
  std::vector<worker_progress> progress(plans.size());
  std::vector<bench_result> results(plans.size());
  std::vector<std::exception_ptr> failures(plans.size());
  std::vector<std::thread> threads;
  std::atomic<std::size_t> done{0};
  for (std::size_t i = 0; i < plans.size(); ++i)
    threads.emplace_back([&, i] {
      try {
        results[i] = run_worker(config, plans[i], sync, progress[i]);
      } catch (...) {
        failures[i] = std::current_exception();
        sync.stop_all();
      }
      ++done;
    });
  // Bounded: each worker's connect phase ends within its connect timeouts.
  while (!sync.wait_ready(clock::now() + tick)) {
    if (stop_signal_received() != 0 || sync.stopped()) {
      sync.stop_all();
      break;
    }
  }
  if (!sync.stopped()) {
    if (auto start = coord.all_ready()) {
      sync.start(*start);
    } else {
      sync.stop_all();
    }
  }
  progress_totals totals;
  while (done.load() < plans.size()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (stop_signal_received() != 0 && !sync.stopped()) sync.stop_all();
    totals = {};
    for (auto& p : progress) {
      totals.messages += p.messages.load(std::memory_order_relaxed);
      totals.bytes += p.bytes.load(std::memory_order_relaxed);
      totals.errors += p.errors.load(std::memory_order_relaxed);
      std::lock_guard lock(p.mutex);
      totals.latency.merge(p.latency);
    }
    coord.report(totals);
  }
  for (auto& t : threads)
    t.join();
  for (auto& f : failures)
    if (f) std::rethrow_exception(f);
  bench_result merged;
  for (const auto& r : results)
    merged.merge(r);
  if (stop_signal_received() != 0) merged.interrupted = true;
  return merged;
}

void write_all(int fd, std::string_view text) {
  while (!text.empty()) {
    ssize_t n = ::write(fd, text.data(), text.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return;  // the parent is gone: nothing to report to
    }
    text.remove_prefix(static_cast<std::size_t>(n));
  }
}

// A worker process: reports "ready", waits for "go NS", reports "progress ..." lines and
// finally "result ...", then exits without returning into the command.
[[noreturn]] void run_child(const bench_config& config, std::size_t process, int to_parent,
                            int from_parent) {
  int status = 0;
  try {
    coordinator coord;
    coord.all_ready = [&]() -> std::optional<clock::time_point> {
      write_all(to_parent, "ready\n");
      std::string line;
      char ch;
      // Bounded by the parent: one short line, or EOF when it calls the run off.
      while (::read(from_parent, &ch, 1) == 1 && ch != '\n')
        line += ch;
      long long ns = 0;
      if (std::sscanf(line.c_str(), "go %lld", &ns) != 1) return std::nullopt;
      return clock::time_point(std::chrono::nanoseconds(ns));
    };
    coord.report = [&, last = clock::time_point{}](const progress_totals& t) mutable {
      if (clock::now() - last < tick) return;
      last = clock::now();
      write_all(to_parent, fmt::format("progress {} {} {} {}\n", t.messages, t.bytes, t.errors,
                                       t.latency.percentile(99)));
    };
    auto r = run_threads(config, plans_for(config, process), coord);
    write_all(to_parent, "result " + r.serialize() + "\n");
  } catch (const std::exception& e) {
    write_all(to_parent, fmt::format("error {}\n", e.what()));
    status = 1;
  }
  ::_exit(status);
}

struct child {
  pid_t pid = -1;
  unique_fd from, to;
  std::string buffer;
  bool ready = false, done = false;
  std::uint64_t messages = 0, bytes = 0, errors = 0, p99 = 0;
  std::optional<bench_result> result;
  std::string error;
};

// Reads what a child said; false at EOF.
bool read_child(child& c) {
  char buf[4096];
  ssize_t n = ::read(c.from.get(), buf, sizeof buf);
  if (n < 0 && errno == EINTR) return true;
  if (n <= 0) return false;
  c.buffer.append(buf, static_cast<std::size_t>(n));
  for (auto nl = c.buffer.find('\n'); nl != std::string::npos; nl = c.buffer.find('\n')) {
    std::string line = c.buffer.substr(0, nl);
    c.buffer.erase(0, nl + 1);
    if (line == "ready") {
      c.ready = true;
    } else if (line.starts_with("progress ")) {
      std::sscanf(line.c_str(), "progress %lu %lu %lu %lu", &c.messages, &c.bytes, &c.errors,
                  &c.p99);
    } else if (line.starts_with("result ")) {
      // A garbled line is that worker's failure, reported like any other once every
      // child is reaped; thrown from here it would leave the children unreaped.
      try {
        c.result = bench_result::parse(std::string_view(line).substr(7));
      } catch (const std::invalid_argument& e) {
        c.error = fmt::format("worker process {} sent a malformed result: {}", c.pid, e.what());
      }
    } else if (line.starts_with("error ")) {
      c.error = line.substr(6);
    }
  }
  return true;
}

bench_result run_processes(const bench_config& config,
                           const std::function<void(clock::time_point)>& on_start) {
  std::vector<child> children(config.processes);
  for (std::size_t i = 0; i < children.size(); ++i) {
    int up[2], down[2];
    if (::pipe2(up, O_CLOEXEC) != 0) throw sys_error(errno, "pipe2");
    if (::pipe2(down, O_CLOEXEC) != 0) {
      ::close(up[0]);
      ::close(up[1]);
      throw sys_error(errno, "pipe2");
    }
    unique_fd up_read(up[0]), up_write(up[1]), down_read(down[0]), down_write(down[1]);
    std::fflush(stdout);
    pid_t pid = ::fork();
    if (pid < 0) throw sys_error(errno, "fork");
    if (pid == 0) {
      for (std::size_t j = 0; j < i; ++j) {
        children[j].from.reset();
        children[j].to.reset();
      }
      up_read.reset();
      down_write.reset();
      run_child(config, i, up_write.get(), down_read.get());
    }
    children[i].pid = pid;
    children[i].from = std::move(up_read);
    children[i].to = std::move(down_write);
  }
  progress_line line(config.progress);
  bool started = false, stopping = false;
  // Bounded: every child ends (it has its own window), or is stopped and then reaped.
  for (;;) {
    std::vector<pollfd> fds;
    std::vector<child*> who;
    for (auto& c : children)
      if (!c.done) {
        fds.push_back({c.from.get(), POLLIN, 0});
        who.push_back(&c);
      }
    if (fds.empty()) break;
    ::poll(fds.data(), fds.size(), static_cast<int>(tick.count()));
    for (std::size_t i = 0; i < fds.size(); ++i)
      if (fds[i].revents != 0 && !read_child(*who[i])) who[i]->done = true;
    const bool failed = std::any_of(children.begin(), children.end(), [](const child& c) {
      return !c.error.empty() || (c.done && !c.result);
    });
    if ((stop_signal_received() != 0 || failed) && !stopping) {
      stopping = true;
      for (auto& c : children) {
        c.to.reset();  // EOF: a child still waiting for "go" calls its run off
        if (!c.done) ::kill(c.pid, SIGTERM);
      }
    }
    if (!started && !stopping &&
        std::all_of(children.begin(), children.end(), [](const child& c) { return c.ready; })) {
      started = true;
      const auto at = clock::now() + std::chrono::milliseconds(20);
      on_start(at);
      const auto msg = fmt::format("go {}\n", at.time_since_epoch().count());
      for (auto& c : children)
        write_all(c.to.get(), msg);
    }
    progress_totals t;
    for (const auto& c : children) {
      t.messages += c.messages;
      t.errors += c.errors;
      t.latency.record(c.p99);  // the slowest process's p99 is what the line shows
    }
    if (started) line.draw(t);
  }
  line.clear();
  bench_result merged;
  std::string failure;
  for (auto& c : children) {
    int status = 0;
    while (::waitpid(c.pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (c.result) {
      merged.merge(*c.result);
    } else if (failure.empty()) {
      failure =
          !c.error.empty()
              ? c.error
              : fmt::format("worker process {} ended without a result ({})", c.pid,
                            WIFSIGNALED(status) ? fmt::format("signal {}", WTERMSIG(status))
                                                : fmt::format("exit {}", WEXITSTATUS(status)));
    }
  }
  if (!failure.empty() && merged.messages == 0 && merged.error_total() == 0)
    throw std::runtime_error(failure);
  if (!failure.empty()) merged.count_error("worker_process");
  if (stop_signal_received() != 0) merged.interrupted = true;
  return merged;
}

}  // namespace

void validate(const bench_config& c) {
  const auto kind = c.target.kind();
  if (c.connections == 0) throw usage_error("--connections must be at least 1");
  if (c.threads == 0 || c.processes == 0)
    throw usage_error("--threads and --processes must be at least 1");
  if (c.processes * c.threads > c.connections)
    throw usage_error(
        fmt::format("{} processes x {} threads is more workers than the {} "
                    "connections: give each worker at least one",
                    c.processes, c.threads, c.connections));
  if (c.window < 1 || c.window > max_window)
    throw usage_error(fmt::format("--window {}: must be 1 to {}", c.window, max_window));
  if (c.window > 1 && c.mode != bench_mode::pingpong)
    throw usage_error(fmt::format(
        "--window {}: only bench pingpong keeps several messages in flight (rr waits for each "
        "reply, rate sends on a schedule, churn exchanges one message per connection)",
        c.window));
  if (c.mode == bench_mode::rate && !(c.rate > 0))
    throw usage_error("bench rate needs --rate MESSAGES_PER_SECOND (> 0)");
  if (!is_stream(kind)) {
    if (c.mode == bench_mode::churn)
      throw usage_error(
          fmt::format("churn connects and closes: {} has no connections (use a "
                      "tcp:// or unix:// target)",
                      c.target.to_uri()));
    if (c.idle > 0) throw usage_error("--idle holds stream connections open: not for datagrams");
    const auto max = kind == transport::udp && c.target.family() == AF_INET6 ? max_udp6_payload
                                                                             : max_udp4_payload;
    if (c.frame_size() > max)
      throw usage_error(
          fmt::format("--size {} exceeds the largest datagram ({} bytes)", c.size, max));
  }
  if (!c.sources.empty()) {
    if (kind != transport::tcp)
      throw usage_error("--source binds TCP connections: the target must be tcp://");
    for (const auto& s : c.sources)
      if (s.family() != c.target.family())
        throw usage_error(fmt::format("--source {} is not of the target's address family ({})",
                                      s.host(), c.target.to_uri()));
  }
  if (c.protocol == wire_protocol::sockperf && c.codec.kind != codec_kind::raw)
    throw usage_error(
        "--protocol sockperf: a sockperf message is its own frame; leave --codec "
        "unset (raw)");
  if (c.size == 0) throw usage_error("--size must be at least 1");
  if (c.protocol == wire_protocol::echo && is_stream(kind)) c.frame_size();  // codec can frame it
}

bench_result run_bench(const bench_config& config) {
  validate(config);
  // Each process holds its connections (and idle ones) open at once.
  const std::size_t per_process =
      (config.connections + config.idle + config.processes - 1) / config.processes +
      spare_descriptors;
  const auto limit = raise_nofile_limit();
  if (per_process > limit.soft)
    throw usage_error(fmt::format(
        "{} connections per process need about {} descriptors, but RLIMIT_NOFILE allows {} "
        "(hard limit {}): use --processes {}",
        per_process - spare_descriptors, per_process, limit.soft, limit.hard,
        (config.connections + config.idle) / (limit.hard - spare_descriptors) + 1));
  install_stop_handler({SIGINT, SIGTERM}, interrupted_calls::restart);
  bench_config c = config;
  if (c.seed == 0) c.seed = std::random_device{}();
  std::optional<server_cpu_meter> server;
  if (c.server_pid > 0) server.emplace(c.server_pid);
  // The window every worker measures: traffic starts at `at`, counting after the warm-up.
  const auto started = [&](clock::time_point at) {
    if (server) server->measure(at + c.warmup, at + c.warmup + c.duration);
  };
  bench_result r;
  if (c.processes > 1) {
    r = run_processes(c, started);
  } else {
    progress_line line(c.progress);
    coordinator coord;
    coord.all_ready = [&] {
      const auto at = clock::now() + std::chrono::milliseconds(5);
      started(at);
      return std::optional(at);
    };
    coord.report = [&](const progress_totals& t) { line.draw(t); };
    r = run_threads(c, plans_for(c, 0), coord);
    line.clear();
  }
  if (server) {
    r.server_cpu_s = server->finish();
    r.server_sleeps = server->sleeps();
  }
  // Connected, measured for the whole window, and not one reply: a silent server (or one
  // framing differently) is an error, not a quiet zero. Not in churn, where a window
  // shorter than a cycle (a client not scheduled through it) looks the same; there a
  // silent server ends each cycle in a "timeout" error after --timeout, and a window
  // without a cycle or an error gets a note (advice()).
  if (c.mode != bench_mode::churn && r.messages == 0 && r.established > 0 && r.seconds > 0 &&
      !r.interrupted && !r.target_lost)
    r.count_error("no_reply");
  return r;
}

}  // namespace netkit::loadgen
