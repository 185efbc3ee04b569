// backlog: a full listen queue. TCP drops the SYN and the client retries; a Unix stream
// socket refuses at once.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "lab_support.hpp"
#include "netkit/error.hpp"
#include "netkit/socket.hpp"

namespace netkit::labs {

namespace {

using inspect::tcp_state;
using ms_double = std::chrono::duration<double, std::milli>;

void tcp_queue(lab_context& ctx) {
  auto listener = listen_on(loopback_tcp(), io_mode::blocking, {.backlog = 0});
  auto at = local_endpoint(listener.get(), transport::tcp);
  auto first = connect_to(at);  // fills the queue of one
  auto started = std::chrono::steady_clock::now();
  auto second = start_connect(at);
  auto second_end = local_endpoint(second.get(), transport::tcp);
  ctx.note("listen(backlog 0) on {}: one connection waits unaccepted; a second connects",
           host_port(at));
  ::usleep(300'000);
  auto waiting = observe_end(ctx, second.get(), second_end, at);
  auto info = inspect::read_tcp_info(second.get());
  ctx.note("after 300 ms the second is {}, SYN retransmissions {}", waiting.describe(),
           info.total_retrans);
  unique_fd taken(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (!taken) throw_sys_error("accept", at.to_uri());
  ctx.note("server accepts the first: the queue has room again");
  pollfd p{second.get(), POLLOUT, 0};
  int ready = ::poll(&p, 1, 3000);
  auto took = std::chrono::steady_clock::now() - started;
  int err = ready > 0 ? pending_error(second.get()) : ETIMEDOUT;
  info = inspect::read_tcp_info(second.get());
  ctx.note("second connect {} after {:.0f} ms, SYN retransmissions {}",
           err ? errno_name(err) : "completed", ms_double(took).count(), info.total_retrans);

  ctx.expect("a SYN to a full accept queue is dropped, not refused",
             "the client still in SYN_SENT after 300 ms", waiting.describe(),
             waiting.state == tcp_state::syn_sent);
  ctx.expect(
      "the client retries on its own (SYN retransmission, initial RTO 1 s)",
      "connects after >= 1 retransmitted SYN, about 1 s later",
      fmt::format("{} after {:.0f} ms, {} retransmission(s)", err ? errno_name(err) : "connected",
                  ms_double(took).count(), info.total_retrans),
      err == 0 && info.total_retrans >= 1 && took >= 900ms);
}

void unix_queue(lab_context& ctx) {
  auto name = fmt::format("netkit-lab-backlog-{}", ::getpid());
  auto at = endpoint::unix_abstract(transport::unix_stream, name);
  auto listener = listen_on(at, io_mode::blocking, {.backlog = 0});
  auto first = open_socket(at, io_mode::nonblocking);
  if (::connect(first.get(), at.addr(), at.length()) != 0) throw_sys_error("connect", at.to_uri());
  auto second = open_socket(at, io_mode::nonblocking);
  auto started = std::chrono::steady_clock::now();
  int r = ::connect(second.get(), at.addr(), at.length());
  int err = r == 0 ? 0 : errno;
  auto took = std::chrono::steady_clock::now() - started;
  ctx.note(
      "Unix stream {} listen(backlog 0), one waiting: second non-blocking connect {} in {:.2f} ms",
      at.to_uri(), err ? errno_name(err) : "succeeded", ms_double(took).count());
  ctx.expect(
      "a Unix stream socket with a full queue", "connect refused at once (EAGAIN)",
      fmt::format("{} in {:.2f} ms", err ? errno_name(err) : "connected", ms_double(took).count()),
      (err == EAGAIN || err == ECONNREFUSED) && took < 100ms);
}

}  // namespace

void run_backlog(lab_context& ctx) {
  tcp_queue(ctx);
  unix_queue(ctx);
}

}  // namespace netkit::labs
