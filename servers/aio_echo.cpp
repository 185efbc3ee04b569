// Model "aio", the course's fifth I/O model in its POSIX form: every read and write is an
// aio_read/aio_write (aio(7)) and the process learns of its completion from a realtime
// signal (SIGEV_SIGNAL), which it takes synchronously with sigtimedwait, all signals
// blocked. New connections are announced the same way: the listener is O_ASYNC with
// F_SETSIG, so one thread waits for one kind of event (a queued signal) for everything.
//
// Why SIGEV_SIGNAL and not SIGEV_THREAD: with SIGEV_THREAD glibc starts a thread for
// every completion notice, and the connections would then need locks; the queued signal
// carries the connection's id (sigev_value) to the one thread that owns all connections.
// A realtime signal the queue could not hold (RLIMIT_SIGPENDING) is lost, and the kernel
// sends SIGIO for an overflowing F_SETSIG: so on SIGIO and every stop_check_interval
// without a signal, every connection is asked with aio_error() and the listener accepted.
//
// What glibc does underneath (which is why `--model uring` is the real asynchronous model
// on Linux): POSIX AIO is a pool of threads making ordinary blocking calls, pread(2) then
// read(2) on a socket (pread fails with ESPIPE). A pending read on an idle socket holds
// one of those threads, so the pool (aio_init's aio_threads) is sized from --max-conns;
// with fewer threads than connections, a read queued behind idle ones waits until one of
// those clients sends or leaves (docs/io-models.md shows it). glibc also runs the
// requests of one descriptor one after another, so a connection never has a read and a
// write in flight at once here: read, echo the replies with one write, read again.
// tcp:// and unix:// (any descriptor works: a glibc thread just blocks in read/write).
#include <aio.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <string>

#include <fmt/format.h>

#include "netkit/buffer.hpp"
#include "netkit/error.hpp"
#include "netkit/log.hpp"
#include "netkit/signals.hpp"
#include "netkit/socket.hpp"
#include "netkit/unix_socket.hpp"
#include "server_model.hpp"
#include "support/blocking_echo.hpp"
#include "support/blocking_listener.hpp"

namespace netkit::servers {

namespace {

using steady = std::chrono::steady_clock;

constexpr std::string_view aio_threads_flag = "--aio-threads";
// --max-conns 0 means this many here: the pool must have a size.
constexpr std::size_t default_max_conns = 256;
constexpr std::size_t max_aio_threads = 16384;
// Bytes asked for per aio_read.
constexpr std::size_t read_chunk = 64 * 1024;
// Connections accepted per wake-up at most; the sweep takes the rest.
constexpr int accepts_per_wake = 64;
// Shutdown: the pending operations end once their sockets are shut down; this bounds the
// wait for them.
constexpr auto stop_grace = std::chrono::seconds(5);

struct aio_connection {
  std::uint64_t id = 0;
  unique_fd fd;  // blocking: a glibc thread blocks in read/write on it
  std::string peer;
  std::unique_ptr<decoder> dec;
  byte_buffer in;
  byte_buffer out;
  aiocb cb{};  // the one operation in flight, if `pending`
  enum class op { none, read, write } pending = op::none;
  bool closing = false;  // protocol error: close once the replies before it are written
};

class aio_server {
 public:
  aio_server(const model_settings& settings, std::size_t max_conns, int completion_signal,
             int accept_signal)
      : settings_(settings),
        completion_signal_(completion_signal),
        listener_(listen_unix(settings.listen, io_mode::nonblocking,
                              {.backlog = SOMAXCONN,
                               .reuse_port = settings.reuse_port,
                               .unix_mode = settings.unix_mode})),
        local_(local_endpoint(listener_.fd.get(), settings.listen.kind())),
        admission_(max_conns),
        enc_(make_encoder(settings.codec)) {
    int fd = listener_.fd.get();
    // New connections queue accept_signal for this process (SIGIO if that queue is full).
    if (::fcntl(fd, F_SETOWN, ::getpid()) != 0) throw_sys_error("fcntl F_SETOWN", local_.to_uri());
    if (::fcntl(fd, F_SETSIG, accept_signal) != 0)
      throw_sys_error("fcntl F_SETSIG", local_.to_uri());
    int flags = ::fcntl(fd, F_GETFL);
    if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_ASYNC) != 0)
      throw_sys_error("fcntl O_ASYNC", local_.to_uri());
  }
  ~aio_server() { drain(); }
  aio_server(const aio_server&) = delete;
  aio_server& operator=(const aio_server&) = delete;

  const endpoint& local() const noexcept { return local_; }

  // The completion signal named connection `id`: see whether its operation ended.
  void on_completion(std::uint64_t id) {
    if (auto it = conns_.find(id); it != conns_.end()) check(it);
  }
  // A lost or overflowed signal may hide anything: ask every connection and the listener.
  void sweep() {
    accept_some();
    for (auto it = conns_.begin(); it != conns_.end();)
      it = check(it);
  }
  void accept_some();
  // Stops: no more accepts, every pending operation ended (its socket shut down), every
  // connection closed. Bounded by stop_grace.
  void drain();

  std::uint64_t accepted() const noexcept { return accepted_; }
  std::uint64_t operations() const noexcept { return operations_; }

 private:
  using iterator = std::map<std::uint64_t, std::unique_ptr<aio_connection>>::iterator;
  iterator check(iterator it);
  iterator after_read(iterator it, ssize_t n);
  iterator after_write(iterator it, ssize_t n);
  iterator start_read(iterator it);
  iterator start_write(iterator it);
  iterator close(iterator it) { return conns_.erase(it); }
  void prepare(aio_connection& c, void* buf, std::size_t len);

  const model_settings& settings_;
  int completion_signal_;
  unix_listener listener_;
  endpoint local_;
  support::admission admission_;
  std::unique_ptr<encoder> enc_;
  // Every connection by id; the id, not a pointer, travels in the signal, so a late
  // signal for a closed connection finds nothing.
  std::map<std::uint64_t, std::unique_ptr<aio_connection>> conns_;
  std::uint64_t next_id_ = 1;
  std::uint64_t accepted_ = 0;
  std::uint64_t operations_ = 0;
  std::uint64_t accept_errors_ = 0;
};

void aio_server::prepare(aio_connection& c, void* buf, std::size_t len) {
  std::memset(&c.cb, 0, sizeof c.cb);
  c.cb.aio_fildes = c.fd.get();
  c.cb.aio_buf = buf;
  c.cb.aio_nbytes = len;
  c.cb.aio_offset = 0;  // sockets have none (glibc falls back from pread to read)
  c.cb.aio_sigevent.sigev_notify = SIGEV_SIGNAL;
  c.cb.aio_sigevent.sigev_signo = completion_signal_;
  c.cb.aio_sigevent.sigev_value.sival_ptr =
      reinterpret_cast<void*>(static_cast<std::uintptr_t>(c.id));
}

void aio_server::accept_some() {
  if (!listener_.fd) return;
  for (int i = 0; i < accepts_per_wake; ++i) {
    // Blocking connections (no SOCK_NONBLOCK): glibc's threads wait in read/write.
    int fd = ::accept4(listener_.fd.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK) return;
      if (err == EINTR || is_transient_accept_error(err)) continue;
      if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        // The connections wait in the backlog; the next sweep tries again.
        if (accept_errors_++ % 1000 == 0)
          log(log_level::warning, "accept {}: {}; retrying at the next sweep", local_.to_uri(),
              errno_text(err));
        return;
      }
      throw_sys_error(err, "accept", local_.to_uri());
    }
    unique_fd conn(fd);
    if (!admission_.admit(conns_.size(), fd, local_.kind())) continue;
    ++accepted_;
    if (local_.kind() == transport::tcp) set_tcp_nodelay(fd, true);
    auto c = std::make_unique<aio_connection>();
    c->id = next_id_++;
    c->peer = support::peer_name(fd, local_.kind());
    c->fd = std::move(conn);
    c->dec = make_decoder(settings_.codec);
    log(log_level::debug, "serving {}", c->peer);
    auto [it, inserted] = conns_.emplace(c->id, std::move(c));
    start_read(it);
  }
}

aio_server::iterator aio_server::start_read(iterator it) {
  auto& c = *it->second;
  auto room = c.in.prepare(read_chunk);
  prepare(c, room.data(), room.size());
  if (::aio_read(&c.cb) != 0) {
    // EAGAIN: glibc could not queue another request (memory).
    log(log_level::error, "aio_read for {}: {}; closing it", c.peer, errno_text(errno));
    return close(it);
  }
  ++operations_;
  c.pending = aio_connection::op::read;
  return std::next(it);
}

aio_server::iterator aio_server::start_write(iterator it) {
  auto& c = *it->second;
  auto bytes = c.out.data();
  prepare(c, const_cast<std::byte*>(bytes.data()), bytes.size());
  if (::aio_write(&c.cb) != 0) {
    log(log_level::error, "aio_write for {}: {}; closing it", c.peer, errno_text(errno));
    return close(it);
  }
  ++operations_;
  c.pending = aio_connection::op::write;
  return std::next(it);
}

aio_server::iterator aio_server::check(iterator it) {
  auto& c = *it->second;
  if (c.pending == aio_connection::op::none) return std::next(it);
  int err = ::aio_error(&c.cb);
  if (err == EINPROGRESS) return std::next(it);
  ssize_t n = ::aio_return(&c.cb);
  auto was = c.pending;
  c.pending = aio_connection::op::none;
  if (err != 0) {
    log(log_level::debug, "{} {}: {}", was == aio_connection::op::read ? "read from" : "write to",
        c.peer, errno_text(err));
    return close(it);
  }
  return was == aio_connection::op::read ? after_read(it, n) : after_write(it, n);
}

aio_server::iterator aio_server::after_read(iterator it, ssize_t n) {
  auto& c = *it->second;
  if (n == 0 || !listener_.fd) {  // EOF, or stopping
    if (auto partial = c.dec->finish(c.in.data()); n == 0 && !partial.empty())
      log(log_level::warning, "{}: {}", c.peer, partial);
    return close(it);
  }
  c.in.commit(static_cast<std::size_t>(n));
  // After a protocol error: close once the replies before it are written.
  c.closing = !support::echo_frames(*c.dec, c.in, *enc_, c.out, c.peer);
  if (!c.out.empty()) return start_write(it);
  return c.closing ? close(it) : start_read(it);
}

aio_server::iterator aio_server::after_write(iterator it, ssize_t n) {
  auto& c = *it->second;
  c.out.consume(static_cast<std::size_t>(n));
  if (!c.out.empty() && listener_.fd) return start_write(it);  // a short write: the rest
  if (c.closing || !listener_.fd) return close(it);
  return start_read(it);
}

void aio_server::drain() {
  listener_.fd.reset();
  listener_.file.remove();
  // A glibc thread blocked in read/write on a socket returns once the socket is shut
  // down; only then may the descriptor be closed and the aiocb freed.
  for (auto& [id, c] : conns_)
    if (c->pending != aio_connection::op::none) ::shutdown(c->fd.get(), SHUT_RDWR);
  auto until = steady::now() + stop_grace;
  // Bounded by stop_grace; each pass closes every connection whose operation ended.
  while (!conns_.empty() && steady::now() < until) {
    sweep();
    if (!conns_.empty()) {
      timespec ts{0, 10'000'000};
      ::nanosleep(&ts, nullptr);
    }
  }
  if (!conns_.empty()) {
    // Their aiocbs are still in glibc's hands: leave them (and their descriptors) to the
    // process exit rather than free memory a thread may still write.
    log(log_level::warning, "{} AIO operations did not end within {} s of shutdown", conns_.size(),
        stop_grace.count());
    for (auto& [id, c] : conns_)
      (void)c.release();
    conns_.clear();
  }
}

int run(const server_model& model, const model_settings& settings) {
  (void)make_decoder(settings.codec);  // usage_error before the banner
  std::size_t max_conns = settings.max_conns ? settings.max_conns : default_max_conns;
  std::size_t threads = settings.own_option(model, aio_threads_flag);
  if (threads == 0) threads = std::min(max_conns, max_aio_threads);
  // Before the first request: later calls have no effect.
  aioinit init{};
  init.aio_threads = static_cast<int>(threads);
  init.aio_num = static_cast<int>(threads);
  init.aio_idle_time = 1;  // seconds an idle pool thread lingers
  ::aio_init(&init);

  const int completion_signal = SIGRTMIN;
  const int accept_signal = SIGRTMIN + 1;
  // Every signal is taken in sigtimedwait: blocked in this thread and in glibc's pool.
  stop_signal_scope stop;
  stop.block({completion_signal, accept_signal, SIGIO});
  sigset_t waited;
  sigemptyset(&waited);
  for (int s : {completion_signal, accept_signal, SIGIO, SIGINT, SIGTERM})
    sigaddset(&waited, s);

  aio_server server(settings, max_conns, completion_signal, accept_signal);
  support::print_banner(server.local(), model.name, settings.codec,
                        fmt::format(" max-conns={} aio-threads={}", max_conns, threads));
  timespec sweep_after{support::stop_check_interval.tv_sec,
                       support::stop_check_interval.tv_usec * 1000};
  int stopped_by = 0;
  server.accept_some();  // connections that came before F_SETSIG took effect
  // A completion whose signal was lost (the realtime queue full) is found by a sweep; one
  // is due every stop_check_interval even while other signals keep arriving.
  const auto sweep_every = std::chrono::seconds(support::stop_check_interval.tv_sec) +
                           std::chrono::microseconds(support::stop_check_interval.tv_usec);
  auto next_sweep = std::chrono::steady_clock::now() + sweep_every;
  while (stopped_by == 0) {
    siginfo_t info{};
    int sig = ::sigtimedwait(&waited, &info, &sweep_after);
    if (sig == SIGINT || sig == SIGTERM) {
      stopped_by = sig;
    } else if (sig == completion_signal && info.si_code == SI_ASYNCIO) {
      server.on_completion(reinterpret_cast<std::uintptr_t>(info.si_value.sival_ptr));
    } else if (sig == accept_signal) {
      server.accept_some();
    } else if (sig < 0 && errno != EAGAIN && errno != EINTR) {
      throw_sys_error("sigtimedwait");
    } else {
      server.sweep();  // timeout, SIGIO (a queue overflowed), or a signal not from AIO
      next_sweep = std::chrono::steady_clock::now() + sweep_every;
      continue;
    }
    if (std::chrono::steady_clock::now() >= next_sweep) {
      server.sweep();
      next_sweep = std::chrono::steady_clock::now() + sweep_every;
    }
  }
  server.drain();
  log(log_level::info, "stopped by signal {}: {} connections served with {} AIO operations",
      stopped_by, server.accepted(), server.operations());
  return 0;
}

}  // namespace

server_model aio_model() {
  return {.name = "aio",
          .family = transport_family::stream,
          .transports = {},
          .description =
              "POSIX AIO (aio_read/aio_write, completion by realtime signal): glibc "
              "emulates it with a thread pool, one blocked thread per idle client",
          .takes = {common_option::codec, common_option::unix_mode, common_option::reuse_port,
                    common_option::max_conns},
          .own_options = {{.flag = aio_threads_flag,
                           .help = "Threads of glibc's AIO pool (aio_init aio_threads; 0: as many "
                                   "as --max-conns, which means 256 here when 0). A pending read "
                                   "on an idle socket holds one: with fewer threads than clients, "
                                   "a client queued behind idle ones gets no echo until one of "
                                   "them sends or leaves",
                           .default_value = 0,
                           .min = 0,
                           .max = max_aio_threads,
                           .choices = {}}},
          .probe = nullptr,
          .run = run};
}

}  // namespace netkit::servers
