// Datagram echo server: setup, the shared receive-and-echo step, model dispatch.
#include "udp_echo.hpp"

#include <signal.h>
#include <sys/un.h>

#include <algorithm>
#include <cstdio>

#include <fmt/format.h>

#include "netkit/error.hpp"
#include "netkit/socket.hpp"
#include "netkit/unix_socket.hpp"
#include "udp_echo_detail.hpp"

namespace netkit::servers {

namespace detail {

std::atomic<int> stop_signal{0};

namespace {
void on_stop(int sig) {
  stop_signal.store(sig);
}
struct sigaction saved_int, saved_term;
}  // namespace

void install_stop_handlers() {
  stop_signal.store(0);
  struct sigaction sa {};
  sa.sa_handler = on_stop;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: a blocked recvfrom returns EINTR and sees the flag
  if (::sigaction(SIGINT, &sa, &saved_int) != 0) throw_sys_error("sigaction", "SIGINT");
  if (::sigaction(SIGTERM, &sa, &saved_term) != 0) throw_sys_error("sigaction", "SIGTERM");
}

void restore_stop_handlers() {
  ::sigaction(SIGINT, &saved_int, nullptr);
  ::sigaction(SIGTERM, &saved_term, nullptr);
}

dgram_echoer::dgram_echoer(int fd, const dgram_server_options& opts)
    : fd_(fd), kind_(opts.listen.kind()), verbose_(opts.verbose), buffer_(opts.max_datagram) {}

step dgram_echoer::echo_one(recv_flags flags) {
  auto r = recv_datagram(fd_, buffer_, kind_, flags);
  if (r.would_block()) return step::would_block;
  if (!r.ok()) {
    // An unconnected server socket can see errors for an earlier reply (ICMP from a
    // client that vanished, with IP_RECVERR): one peer's problem, never the server's end.
    ++stats_.recv_errors;
    fmt::print(stderr, "recv: {}\n", errno_text(r.err));
    return step::other;
  }
  ++stats_.received;
  auto from = r.from.length() > sizeof(sa_family_t) ? r.from.to_uri() : std::string("(unbound)");
  if (r.truncated) {
    ++stats_.truncated;
    fmt::print(stderr,
               "truncated datagram from {}: {} bytes, buffer {} bytes; dropped, not echoed\n", from,
               r.full_size, buffer_.size());
    return step::other;
  }
  if (r.from.length() <= sizeof(sa_family_t)) {
    ++stats_.unreplyable;
    if (verbose_)
      fmt::print(stderr, "{} bytes from an unbound socket: no address to reply to\n", r.n);
    return step::other;
  }
  if (verbose_) fmt::print(stderr, "{} bytes from {}\n", r.n, from);
  auto s = send_datagram(fd_, std::span(buffer_).first(static_cast<std::size_t>(r.n)), &r.from);
  if (!s.ok()) {
    ++stats_.send_failed;
    if (verbose_ || !s.would_block())
      fmt::print(stderr, "reply to {}: {}\n", from, errno_text(s.err));
    return step::other;
  }
  ++stats_.echoed;
  return step::echoed;
}

}  // namespace detail

std::vector<std::string_view> dgram_models() {
  return {"blocking", "epoll", "sigio"};
}

int run_dgram_echo_server(const dgram_server_options& opts) {
  if (opts.listen.kind() != transport::udp && opts.listen.kind() != transport::unix_dgram)
    throw usage_error(fmt::format("{} is not a datagram endpoint (udp:// or unix-dgram://)",
                                  opts.listen.to_uri()));
  auto models = dgram_models();
  if (std::find(models.begin(), models.end(), opts.model) == models.end())
    throw usage_error(
        fmt::format("unknown datagram model '{}' (blocking, epoll, sigio)", opts.model));
  if (opts.max_datagram == 0) throw usage_error("--max-datagram must be at least 1");

  listen_options lo;
  lo.unix_mode = opts.unix_mode;
  auto mode = opts.model == "blocking" ? io_mode::blocking : io_mode::nonblocking;
  auto listener = listen_unix(opts.listen, mode, lo);  // also fine for udp: no file
  auto local = local_endpoint(listener.fd.get(), opts.listen.kind());
  fmt::print("listening on {} model={}\n", local.to_uri(), opts.model);
  std::fflush(stdout);

  detail::dgram_echoer echoer(listener.fd.get(), opts);
  if (opts.model == "blocking")
    detail::serve_blocking(listener.fd.get(), echoer);
  else if (opts.model == "epoll")
    detail::serve_epoll(listener.fd.get(), echoer);
  else
    detail::serve_sigio(listener.fd.get(), echoer);

  const auto& st = echoer.stats();
  fmt::print(
      "served: received={} echoed={} truncated={} unreplyable={} send_failed={} recv_errors={}\n",
      st.received, st.echoed, st.truncated, st.unreplyable, st.send_failed, st.recv_errors);
  std::fflush(stdout);
  return 0;
}

}  // namespace netkit::servers
