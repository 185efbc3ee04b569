// sigpipe: writing to a connection the peer has closed.
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "lab_support.hpp"
#include "netkit/error.hpp"

namespace netkit::labs {

namespace {

using inspect::tcp_state;

std::string write_text(ssize_t n, int err) {
  return n >= 0 ? fmt::format("wrote {} bytes", n) : fmt::format("failed with {}", errno_name(err));
}

}  // namespace

void run_sigpipe(lab_context& ctx) {
  auto pair = connect_pair();
  pair.server.reset();
  auto before = wait_for_state(ctx, pair.client.get(), pair.client_end, pair.server_end,
                               tcp_state::close_wait);
  ctx.note("peer closed: client {}", before.describe());

  ssize_t first = ::send(pair.client.get(), "hello", 5, MSG_NOSIGNAL);
  int first_err = errno;
  ctx.note("first send(MSG_NOSIGNAL): {}", write_text(first, first_err));
  // The peer has no socket for this connection any more: it answers the data with RST.
  auto after =
      wait_for_state(ctx, pair.client.get(), pair.client_end, pair.server_end, tcp_state::closed);
  ctx.note("client after the peer's answer: {}", after.describe());
  ssize_t second = ::send(pair.client.get(), "again", 5, MSG_NOSIGNAL);
  int second_err = errno;
  ctx.note("second send(MSG_NOSIGNAL): {}", write_text(second, second_err));

  ctx.expect("the first write to a closed peer", "succeeds (the kernel cannot know yet)",
             write_text(first, first_err), first == 5);
  ctx.expect("the peer answers it with RST", "client CLOSED", after.describe(),
             after.state == tcp_state::closed);
  ctx.expect("the second write", "fails with EPIPE", write_text(second, second_err),
             second < 0 && second_err == EPIPE);

  // The same in a child with SIGPIPE's default action and plain write(2).
  auto victim = connect_pair();
  victim.server.reset();
  wait_for_state(ctx, victim.client.get(), victim.client_end, victim.server_end,
                 tcp_state::close_wait);
  int fd = victim.client.get();
  auto child = run_child([fd](int out) {
    struct sigaction sa {};
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGPIPE, &sa, nullptr);
    sigset_t pipe_only;
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    ::sigprocmask(SIG_UNBLOCK, &pipe_only, nullptr);
    ssize_t n = ::write(fd, "hello", 5);
    write_all(out, fmt::format("first write: {}\n", write_text(n, errno)));
    // Until the RST has arrived (bounded: 1 s).
    for (int i = 0; i < 1000 && inspect::read_tcp_info(fd).state != tcp_state::closed; ++i)
      ::usleep(1000);
    n = ::write(fd, "again", 5);
    write_all(out, fmt::format("second write returned: {}\n", write_text(n, errno)));
    return 0;
  });
  victim.client.reset();
  std::string_view output = child.output;
  while (!output.empty()) {
    auto end = output.find('\n');
    ctx.note("child: {}", output.substr(0, end));
    output = end == std::string_view::npos ? std::string_view{} : output.substr(end + 1);
  }
  ctx.note("child (SIGPIPE default, no MSG_NOSIGNAL) {}", child.describe());
  ctx.expect("without MSG_NOSIGNAL and with SIGPIPE's default action",
             "the second write kills the process with SIGPIPE", child.describe(),
             !child.timed_out && WIFSIGNALED(child.status) && WTERMSIG(child.status) == SIGPIPE);
}

}  // namespace netkit::labs
