// Model "nonblocking", the course's second I/O model taken literally: every socket is
// O_NONBLOCK and one thread polls them all in a loop, calling accept/read/write on each
// in turn and simply moving on when the answer is EAGAIN. Nothing tells it which socket
// is ready, so it asks every one of them on every pass: with no traffic at all it still
// runs flat out (one core at 100%), unless --poll-interval makes it sleep after a pass
// that found nothing to do (which then adds up to that much latency). It exists to be
// measured against the blocking and multiplexing models. tcp:// and unix://.
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

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

constexpr std::string_view poll_interval_flag = "--poll-interval";
constexpr std::size_t max_poll_interval_us = 1'000'000;
// Bytes asked for per read(2); one read per connection per pass, so a busy client cannot
// starve the others.
constexpr std::size_t read_chunk = 64 * 1024;
// Connections accepted per pass at most, so a connect storm cannot starve the clients
// already connected.
constexpr int accepts_per_pass = 64;
// Out of descriptors: accepting again at once would spin on EMFILE.
constexpr auto accept_pause = std::chrono::milliseconds(100);

struct nb_connection {
  unique_fd fd;
  std::string peer;
  std::unique_ptr<decoder> dec;
  byte_buffer in;
  byte_buffer out;
  bool eof = false;      // the peer sent FIN: close once `out` is sent
  bool closing = false;  // protocol error: no more reading, close once `out` is sent
  bool dead = false;     // to be removed after this pass
  // The pass that last moved a byte either way: --idle-timeout closes a connection that
  // moved none for that long (a peer that half-closed and never reads its replies, too).
  std::chrono::steady_clock::time_point last_progress;
};

class nonblocking_server {
 public:
  nonblocking_server(const model_settings& settings, std::chrono::microseconds poll_interval)
      : settings_(settings),
        poll_interval_(poll_interval),
        listener_(listen_unix(settings.listen, io_mode::nonblocking,
                              {.backlog = SOMAXCONN,
                               .reuse_port = settings.reuse_port,
                               .unix_mode = settings.unix_mode})),
        local_(local_endpoint(listener_.fd.get(), settings.listen.kind())),
        admission_(settings.max_conns),
        enc_(make_encoder(settings.codec)) {}

  const endpoint& local() const noexcept { return local_; }

  void run(const stop_signal_scope& stop) {
    const auto idle = settings_.idle_timeout;
    while (!stop.received()) {
      now_ = std::chrono::steady_clock::now();  // one clock read per pass
      bool progress = accept_some();
      for (auto& c : conns_) {
        if (step(*c)) {
          progress = true;
          c->last_progress = now_;
        } else if (idle.count() > 0 && !c->dead && now_ - c->last_progress >= idle) {
          log(log_level::info, "closing {}: idle for {} ms{}", c->peer, idle.count(),
              c->out.empty() ? "" : fmt::format(" ({} bytes of replies unread)", c->out.size()));
          c->dead = true;
        }
      }
      std::erase_if(conns_, [](const auto& c) { return c->dead; });
      ++passes_;
      if (!progress) {
        ++idle_passes_;
        if (poll_interval_.count() > 0) sleep_a_while();
      }
    }
    conns_.clear();
    listener_.fd.reset();
    listener_.file.remove();
  }

  std::uint64_t passes() const noexcept { return passes_; }
  std::uint64_t idle_passes() const noexcept { return idle_passes_; }
  std::uint64_t accepted() const noexcept { return accepted_; }

 private:
  bool accept_some();
  bool step(nb_connection& c);
  bool try_write(nb_connection& c);
  bool try_read(nb_connection& c);
  void sleep_a_while() const {
    // A stop signal ends the sleep early (EINTR): no restart, the loop looks at the flag.
    timespec ts{static_cast<time_t>(poll_interval_.count() / 1'000'000),
                static_cast<long>(poll_interval_.count() % 1'000'000) * 1000};
    ::nanosleep(&ts, nullptr);
  }

  const model_settings& settings_;
  std::chrono::microseconds poll_interval_;
  unix_listener listener_;
  endpoint local_;
  support::admission admission_;
  std::unique_ptr<encoder> enc_;
  std::vector<std::unique_ptr<nb_connection>> conns_;
  std::uint64_t passes_ = 0;
  std::uint64_t idle_passes_ = 0;
  std::uint64_t accepted_ = 0;
  std::uint64_t accept_errors_ = 0;
  std::chrono::steady_clock::time_point accept_resume_{};
  std::chrono::steady_clock::time_point now_{};
};

bool nonblocking_server::accept_some() {
  if (std::chrono::steady_clock::now() < accept_resume_) return false;
  bool progress = false;
  for (int i = 0; i < accepts_per_pass; ++i) {
    int fd = ::accept4(listener_.fd.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK) break;  // nobody waiting: ask again next pass
      if (err == EINTR || is_transient_accept_error(err)) continue;
      if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        if (accept_errors_++ % 1000 == 0)
          log(log_level::warning, "accept {}: {}; pausing accepts for {} ms", local_.to_uri(),
              errno_text(err), accept_pause.count());
        accept_resume_ = std::chrono::steady_clock::now() + accept_pause;
        break;
      }
      throw_sys_error(err, "accept", local_.to_uri());
    }
    progress = true;
    unique_fd conn(fd);
    if (!admission_.admit(conns_.size(), fd, local_.kind())) continue;
    ++accepted_;
    if (local_.kind() == transport::tcp) set_tcp_nodelay(fd, true);
    auto c = std::make_unique<nb_connection>();
    c->peer = support::peer_name(fd, local_.kind());
    c->fd = std::move(conn);
    c->dec = make_decoder(settings_.codec);
    c->last_progress = now_;
    log(log_level::debug, "serving {}", c->peer);
    conns_.push_back(std::move(c));
  }
  return progress;
}

bool nonblocking_server::try_write(nb_connection& c) {
  if (c.out.empty()) return false;
  ssize_t n = ::send(c.fd.get(), c.out.data().data(), c.out.size(), MSG_NOSIGNAL);
  if (n > 0) {
    c.out.consume(static_cast<std::size_t>(n));
    return true;
  }
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return false;  // next pass
  log(log_level::debug, "write to {}: {}", c.peer, errno_text(errno));
  c.dead = true;
  return true;
}

bool nonblocking_server::try_read(nb_connection& c) {
  // Back-pressure: a client that does not read its replies is not read from either,
  // so what the server holds for it stays under --high-water plus one read's replies.
  if (c.eof || c.closing || c.out.size() >= settings_.high_water) return false;
  auto room = c.in.prepare(read_chunk);
  ssize_t n = ::read(c.fd.get(), room.data(), room.size());
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return false;  // next pass
    log(log_level::debug, "read from {}: {}", c.peer, errno_text(errno));
    c.dead = true;
    return true;
  }
  if (n == 0) {
    if (auto partial = c.dec->finish(c.in.data()); !partial.empty())
      log(log_level::warning, "{}: {}", c.peer, partial);
    c.eof = true;
    return true;
  }
  c.in.commit(static_cast<std::size_t>(n));
  // After a protocol error: no more reading; the replies before it still go out.
  c.closing = !support::echo_frames(*c.dec, c.in, *enc_, c.out, c.peer);
  return true;
}

bool nonblocking_server::step(nb_connection& c) {
  bool progress = try_write(c);
  if (!c.dead) progress |= try_read(c);
  if (!c.dead) progress |= try_write(c);  // this pass's replies, at once
  if (!c.dead && (c.eof || c.closing) && c.out.empty()) c.dead = true;
  return progress;
}

int run(const server_model& model, const model_settings& settings) {
  (void)make_decoder(settings.codec);  // usage_error before the banner
  std::chrono::microseconds interval(settings.own_option(model, poll_interval_flag));
  // Installed before the banner: a SIGTERM right after it must stop us cleanly.
  stop_signal_scope stop;
  nonblocking_server server(settings, interval);
  support::print_banner(server.local(), model.name, settings.codec,
                        fmt::format(" poll-interval={}us", interval.count()));
  server.run(stop);
  log(log_level::info,
      "stopped by signal {}: {} connections served; {} passes over every socket, {} of them "
      "found nothing to do",
      stop.received(), server.accepted(), server.passes(), server.idle_passes());
  return 0;
}

}  // namespace

server_model nonblocking_model() {
  return {
      .name = "nonblocking",
      .family = transport_family::stream,
      .transports = {},
      .description =
          "O_NONBLOCK sockets polled in a loop, retrying on EAGAIN: burns a core "
          "even when idle (--poll-interval trades that for latency)",
      .takes = {common_option::codec, common_option::unix_mode, common_option::reuse_port,
                common_option::max_conns, common_option::idle_timeout, common_option::high_water},
      .own_options = {{.flag = poll_interval_flag,
                       .help = "Microseconds to sleep after a pass over every socket that "
                               "found nothing to do (0: never sleep, a pure spin)",
                       .default_value = 0,
                       .min = 0,
                       .max = max_poll_interval_us,
                       .choices = {}}},
      .probe = nullptr,
      .run = run};
}

}  // namespace netkit::servers
