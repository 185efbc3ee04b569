// Prefork model with descriptor passing (UNP ch. 30.9): one parent accepts, N forked
// workers serve. Each worker is tied to the parent by a socketpair channel: the parent sends
// an accepted connection down it with send_fds and closes its own copy; the worker serves
// that connection to EOF with blocking I/O, then writes one byte back ("idle"). With no idle
// worker the parent stops polling the listener, so new connections wait in the backlog.
// Model "prefork" of `netkit echo-server` (tcp:// and unix://).

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <vector>

#include <fmt/format.h>

#include "netkit/error.hpp"
#include "netkit/log.hpp"
#include "netkit/message.hpp"
#include "netkit/process.hpp"
#include "netkit/signals.hpp"
#include "netkit/unix_socket.hpp"
#include "server_model.hpp"
#include "support/blocking_echo.hpp"
#include "support/children.hpp"

namespace netkit::servers {

namespace {

using steady = std::chrono::steady_clock;
using std::chrono::milliseconds;

using support::stop_check_interval;
// Out of descriptors: accepting again at once would spin on EMFILE; the backlog holds
// connections meanwhile.
constexpr milliseconds accept_pause{100};
// Shutdown: workers get SIGTERM and this long to finish, then SIGKILL (e.g. one blocked
// writing to a client that never reads).
constexpr milliseconds stop_grace{5000};
// --workers bounds.
constexpr std::size_t max_workers = 1024;
constexpr std::size_t default_workers = 4;
constexpr std::string_view workers_flag = "--workers";

struct prefork_options {
  endpoint listen;           // tcp:// or unix:// (stream)
  listen_options listening;  // backlog, SO_REUSEPORT, Unix file mode
  codec_spec codec;          // framing of requests and replies
  std::size_t workers = default_workers;
};

bool stop_requested() {
  return stop_signal_received() != 0;
}

void set_receive_timeout(int fd, timeval tv) {
  if (::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0)
    throw_sys_error("setsockopt SO_RCVTIMEO");
}

// ---- worker -------------------------------------------------------------------------

// A worker's whole life; never returns into the caller's stack (which holds the parent's
// listener and socket-file guard): it ends with _exit.
[[noreturn]] void run_worker(int channel, transport kind, const codec_spec& codec) {
  int code = 0;
  try {
    set_receive_timeout(channel, stop_check_interval);
    auto dec = make_decoder(codec);
    auto enc = make_encoder(codec);
    while (!stop_requested()) {
      std::byte tag{};
      auto m = recv_fds(channel, 1, std::span(&tag, 1));
      if (m.would_block()) continue;  // receive timeout: look at the stop flag again
      if (m.eof()) break;             // the parent closed our channel: finish
      if (!m.ok() && !m.control_truncated) throw sys_error(m.err, "recvmsg", "parent channel");
      if (m.control_truncated)  // e.g. this worker is at RLIMIT_NOFILE: that client is lost
        log(log_level::error, "worker {}: connection lost in hand-off: {}", ::getpid(),
            errno_text(m.err));
      for (auto& conn : m.fds) {
        try {
          support::serve_accepted_echo(conn.get(), kind, *dec, *enc,
                                       fmt::format("worker {}", ::getpid()));
        } catch (const std::exception& e) {  // that connection's problem, not the worker's
          log(log_level::error, "worker {}: closing {}: {}", ::getpid(),
              support::peer_name(conn.get(), kind), e.what());
        }
      }
      m.fds.clear();  // closes the connection before saying "idle"
      const char idle = 'i';
      ssize_t w;
      do {
        w = ::send(channel, &idle, 1, MSG_NOSIGNAL);
      } while (w < 0 && errno == EINTR);
      if (w != 1) break;  // the parent is gone
    }
  } catch (const std::exception& e) {
    log(log_level::error, "worker {}: {}", ::getpid(), e.what());
    code = 1;
  }
  std::fflush(stderr);
  ::_exit(code);
}

// ---- parent -------------------------------------------------------------------------

// The parent's side of a worker (its process is in the pool's slot of the same index).
struct worker {
  unique_fd channel;  // parent's end; invalid once the worker is gone
  bool idle = false;
};

class prefork_parent {
 public:
  prefork_parent(const prefork_options& opts, unique_fd listener, endpoint local,
                 support::supervisor_signals& signals)
      : opts_(opts),
        listener_(std::move(listener)),
        local_(std::move(local)),
        signals_(signals),
        workers_(opts.workers),
        pool_(
            opts.workers, [this](std::size_t slot) { return spawn(slot); },
            [this](std::size_t slot) {
              workers_[slot].channel.reset();
              workers_[slot].idle = false;
            }) {}

  void start() { pool_.start(); }

  // Serves until a stop signal; returns its number.
  int run();
  void stop();

  std::size_t handed() const noexcept { return handed_; }
  std::size_t replaced() const noexcept { return pool_.replaced(); }

 private:
  pid_t spawn(std::size_t slot);
  void read_channel(worker& w);
  void accept_one();
  bool hand_off();
  worker* idle_worker();

  const prefork_options& opts_;
  unique_fd listener_;
  endpoint local_;
  support::supervisor_signals& signals_;
  std::vector<worker> workers_;
  support::worker_pool pool_;
  unique_fd pending_;  // accepted, not yet handed (the chosen worker had just died)
  steady::time_point accept_resume_{};
  std::size_t handed_ = 0;
  std::size_t accept_errors_ = 0;
};

pid_t prefork_parent::spawn(std::size_t slot) {
  // Named ends, not a structured binding: clang 14 (the fuzz preset) cannot capture one.
  auto ends = make_socket_pair(transport::unix_stream, io_mode::blocking);
  unique_fd parent_end = std::move(ends.first), child_end = std::move(ends.second);
  pid_t pid = support::fork_worker(signals_, [&] {
    // Descriptors a worker must not hold: the listener (only the parent accepts), and the
    // parent's ends of the other channels (else a worker whose channel the parent closes
    // would never see EOF).
    listener_.reset();
    parent_end.reset();
    pending_.reset();
    for (auto& other : workers_)
      other.channel.reset();
    signals_.unblock();
    run_worker(child_end.get(), local_.kind(), opts_.codec);
  });
  workers_[slot].channel = std::move(parent_end);
  workers_[slot].idle = true;
  return pid;
}

worker* prefork_parent::idle_worker() {
  for (auto& w : workers_)
    if (w.idle && w.channel) return &w;
  return nullptr;
}

// Hands pending_ to an idle worker. A worker that died since it said "idle" fails the
// send (EPIPE/ECONNRESET): it is marked gone (SIGCHLD replaces it) and the next is tried.
// Returns false when no idle worker is left; pending_ then waits for one.
bool prefork_parent::hand_off() {
  while (worker* w = idle_worker()) {
    int fd = pending_.get();
    auto r = send_fds(w->channel.get(), std::span(&fd, 1));
    if (r.ok()) {
      w->idle = false;
      ++handed_;
      pending_.reset();  // the worker's copy keeps the connection open
      return true;
    }
    log(log_level::warning, "hand-off to worker {}: {}",
        pool_.pid(static_cast<std::size_t>(w - workers_.data())), errno_text(r.err));
    w->channel.reset();
    w->idle = false;
  }
  return false;
}

void prefork_parent::accept_one() {
  int fd = ::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    // EAGAIN: the receive timeout ran out (the connection went away after poll).
    if (err == EINTR || err == EAGAIN || err == EWOULDBLOCK || is_transient_accept_error(err))
      return;
    if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
      if (accept_errors_++ % 1000 == 0)
        log(log_level::warning, "accept {}: {}; pausing accepts for {} ms", local_.to_uri(),
            errno_text(err), accept_pause.count());
      accept_resume_ = steady::now() + accept_pause;
      return;
    }
    throw_sys_error(err, "accept", local_.to_uri());
  }
  pending_.reset(fd);
  hand_off();
}

void prefork_parent::read_channel(worker& w) {
  char buf[64];
  ssize_t n = ::recv(w.channel.get(), buf, sizeof buf, MSG_DONTWAIT);
  if (n > 0) {
    w.idle = true;
    return;
  }
  if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) return;
  // EOF or error: the worker is gone. Its channel leaves the poll set now (no busy loop on
  // POLLHUP); the process is reaped and replaced when SIGCHLD comes.
  w.channel.reset();
  w.idle = false;
}

int prefork_parent::run() {
  std::vector<pollfd> fds;
  std::vector<worker*> owners;  // fds[i] belongs to owners[i]; nullptr: the listener
  while (!stop_requested()) {
    if (signals_.children.take()) pool_.reap(true);
    pool_.respawn_due();
    // Without an idle worker pending_ waits; the listener stays out of the poll set.
    if (pending_) hand_off();
    fds.clear();
    owners.clear();
    for (auto& w : workers_) {
      if (!w.channel) continue;
      fds.push_back({w.channel.get(), POLLIN, 0});
      owners.push_back(&w);
    }
    auto now = steady::now();
    bool paused = now < accept_resume_;
    // The classic prefork rule: with no idle worker, do not accept; the kernel's backlog
    // holds the connections until a worker is free.
    if (!pending_ && !paused && idle_worker()) {
      fds.push_back({listener_.get(), POLLIN, 0});
      owners.push_back(nullptr);
    }
    std::optional<steady::time_point> wake;
    if (paused) wake = accept_resume_;
    if (auto respawn = pool_.respawn_at(); respawn && (!wake || *respawn < *wake)) wake = respawn;
    timespec ts{};
    if (wake) {
      auto left = std::max(steady::duration::zero(), *wake - now);
      auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
      ts.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
      ts.tv_nsec = static_cast<long>(ns % 1'000'000'000);
    }
    int rc = ::ppoll(fds.data(), fds.size(), wake ? &ts : nullptr, signals_.waiting_mask());
    if (rc < 0) {
      if (errno == EINTR) continue;
      throw_sys_error("ppoll");
    }
    for (std::size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      if (owners[i])
        read_channel(*owners[i]);
      else
        accept_one();
    }
  }
  return stop_signal_received();
}

void prefork_parent::stop() {
  // Stop accepting: connections still in the backlog are reset by the close.
  listener_.reset();
  pending_.reset();
  // An idle worker sees EOF on its channel and exits; a busy one is interrupted in read
  // by SIGTERM, sends the replies it has and exits.
  for (auto& w : workers_)
    w.channel.reset();
  pool_.stop(stop_grace, signals_);
}

int run_prefork(const prefork_options& opts) {
  (void)make_decoder(opts.codec);  // usage_error now, not in every worker

  // Installed before the banner: a SIGTERM right after it must stop us cleanly.
  support::supervisor_signals signals;
  auto listener = listen_unix(opts.listen, io_mode::blocking, opts.listening);
  // The parent accepts only after poll reports the listener readable; the timeout bounds
  // accept in case that connection is gone by then.
  set_receive_timeout(listener.fd.get(), stop_check_interval);
  auto local = local_endpoint(listener.fd.get(), opts.listen.kind());
  prefork_parent parent(opts, std::move(listener.fd), local, signals);
  parent.start();
  auto limit = current_nofile_limit();
  fmt::print("listening on {} model=prefork codec={} workers={} nofile={}/{}\n", local.to_uri(),
             opts.codec.to_string(), opts.workers, limit.soft, limit.hard);
  std::fflush(stdout);
  int sig = parent.run();
  parent.stop();
  listener.file.remove();
  log(log_level::info,
      "stopped by signal {}: {} connections handed to workers, {} workers replaced", sig,
      parent.handed(), parent.replaced());
  return 0;
}

int run(const server_model& model, const model_settings& settings) {
  prefork_options opts;
  opts.listen = settings.listen;
  opts.listening.unix_mode = settings.unix_mode;
  opts.listening.reuse_port = settings.reuse_port;
  opts.codec = settings.codec;
  opts.workers = settings.own_option(model, workers_flag);
  if (opts.workers < 1 || opts.workers > max_workers)
    throw usage_error(fmt::format("{} must be 1..{}", workers_flag, max_workers));
  return run_prefork(opts);
}

}  // namespace

server_model prefork_model() {
  // Each worker serves one connection at a time with blocking I/O: the loop-server limits
  // (--max-conns, --idle-timeout, --high-water, --hard-limit, --threads) have no meaning
  // here, and silently ignoring them would surprise; --workers bounds the connections
  // served at once.
  return {
      .name = "prefork",
      .family = transport_family::stream,
      .transports = {},
      .description = "accepting parent hands each connection to an idle forked worker (SCM_RIGHTS)",
      .takes = {common_option::codec, common_option::unix_mode, common_option::reuse_port},
      .own_options = {{.flag = workers_flag,
                       .help = "Worker processes, each serving one connection at a time",
                       .default_value = default_workers,
                       .min = 1,
                       .max = max_workers}},
      .probe = nullptr,
      .run = run};
}

}  // namespace netkit::servers
