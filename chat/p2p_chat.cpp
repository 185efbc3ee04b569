#include "p2p_chat.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include <fmt/format.h>

#include "line_splitter.hpp"
#include "netkit/blocking_io.hpp"
#include "netkit/codec/codec.hpp"
#include "netkit/error.hpp"
#include "netkit/fd.hpp"
#include "netkit/signals.hpp"
#include "netkit/socket.hpp"
#include "netkit/unix_socket.hpp"

namespace netkit::chat {

namespace {

std::span<const std::byte> bytes_of(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

// Unbuffered, so nothing is left in a stdio buffer for a forked copy to flush twice.
void say(int fd, std::string_view text) {
  try {
    write_n(fd, bytes_of(text));
  } catch (const sys_error&) {
    // stdout or stderr gone (a closed pipe): nothing left to tell
  }
}

std::array<unique_fd, 2> make_pipe() {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) throw_sys_error("pipe2", "p2p-chat");
  return {unique_fd(p[0]), unique_fd(p[1])};
}

// The child: receive, decode, print, until the peer ends or the parent is gone. Returns
// its exit status.
int receive(int sock, int parent_gone, std::size_t max_line, const stop_signal_scope& stop) {
  auto decoder = make_decoder(codec_spec::parse(fmt::format("line,max={}", max_line)));
  byte_buffer input;
  std::byte chunk[16 * 1024];
  for (;;) {
    // SIGTERM (blocked outside ppoll, so none slips in after this check): a stop, like
    // the parent's; the parent learns of it from the pipe and leaves with status 0 too.
    if (stop.received()) return 0;
    pollfd fds[2] = {{sock, POLLIN, 0}, {parent_gone, POLLIN, 0}};
    if (::ppoll(fds, 2, nullptr, &stop.waiting_mask()) < 0) {
      if (errno == EINTR) continue;
      say(STDERR_FILENO, fmt::format("netkit: p2p-chat: poll: {}\n", errno_text(errno)));
      return 1;
    }
    if (fds[1].revents) return 0;  // the parent quit (or died): nothing more to show
    ssize_t n = ::recv(sock, chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == ECONNRESET) {
      say(STDOUT_FILENO, "*** peer left (connection reset)\n");
      return 0;
    }
    if (n < 0) {
      say(STDERR_FILENO, fmt::format("netkit: p2p-chat: recv: {}\n", errno_text(errno)));
      return 1;
    }
    if (n == 0) {
      if (auto partial = decoder->finish(input.data()); !partial.empty())
        say(STDERR_FILENO, fmt::format("netkit: p2p-chat: {} (dropped)\n", partial));
      say(STDOUT_FILENO, "*** peer left\n");
      return 0;
    }
    input.append(std::span(chunk, static_cast<std::size_t>(n)));
    std::string out;
    for (;;) {
      auto r = decoder->decode(input.data());
      if (r.state == decode_result::status::need_more) break;
      if (r.state == decode_result::status::error) {
        say(STDERR_FILENO, fmt::format("netkit: p2p-chat: from the peer: {}\n", r.error));
        return 1;
      }
      out += fmt::format(
          "peer: {}\n",
          std::string_view(reinterpret_cast<const char*>(r.message.data()), r.message.size()));
      input.consume(r.consumed);
    }
    say(STDOUT_FILENO, out);  // one write for what arrived together
  }
}

enum class ending { quit, child_ended, error };

// The parent: each stdin line is framed and sent, until EOF, /quit, Ctrl-C, or the child's
// end (its pipe closes).
ending send_lines(int sock, int child_gone, std::size_t max_line, const stop_signal_scope& stop) {
  auto encoder = make_encoder(codec_spec::parse(fmt::format("line,max={}", max_line)));
  line_splitter lines(max_line);
  char chunk[16 * 1024];
  for (;;) {
    if (stop.received()) return ending::quit;
    pollfd fds[2] = {{STDIN_FILENO, POLLIN, 0}, {child_gone, POLLIN, 0}};
    if (::ppoll(fds, 2, nullptr, &stop.waiting_mask()) < 0) {
      if (errno == EINTR) continue;  // Ctrl-C: checked at the top
      say(STDERR_FILENO, fmt::format("netkit: p2p-chat: poll: {}\n", errno_text(errno)));
      return ending::error;
    }
    if (fds[1].revents) return ending::child_ended;
    ssize_t n = ::read(STDIN_FILENO, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      say(STDERR_FILENO, fmt::format("netkit: p2p-chat: read stdin: {}\n", errno_text(errno)));
      return ending::error;
    }
    if (n == 0) return ending::quit;  // EOF (Ctrl-D)
    bool quit = false;
    byte_buffer framed;
    lines.feed(
        std::span(reinterpret_cast<const std::byte*>(chunk), static_cast<std::size_t>(n)),
        [&](std::string_view line) {
          if (quit) return;
          if (line == "/quit") {
            quit = true;
            return;
          }
          encoder->encode(bytes_of(line), framed);
        },
        [&] {
          say(STDERR_FILENO,
              fmt::format("netkit: p2p-chat: line over {} bytes not sent\n", max_line));
        });
    try {
      write_n(sock, framed.data());
    } catch (const sys_error&) {
      // The peer is gone: the child reads its EOF or reset and says so.
    }
    if (quit) return ending::quit;
  }
}

unique_fd open_connection(const p2p_options& o) {
  if (o.side == p2p_options::role::connect) {
    auto sock = connect_to(o.address);
    say(STDOUT_FILENO, fmt::format("connected to {} (type a line to send it; /quit, Ctrl-D or "
                                   "Ctrl-C to leave)\n",
                                   o.address.to_uri()));
    return sock;
  }
  auto listener = listen_on(o.address, io_mode::blocking);
  auto local = local_endpoint(listener.get(), o.address.kind());
  unix_socket_file socket_file(local);  // removed once the peer is in (or on error)
  say(STDOUT_FILENO, fmt::format("listening on {}\n", local.to_uri()));
  for (;;) {
    int fd = ::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd >= 0) {
      unique_fd sock(fd);
      auto peer = peer_endpoint(sock.get(), o.address.kind());
      say(STDOUT_FILENO, fmt::format("connected: {} (type a line to send it; /quit, Ctrl-D or "
                                     "Ctrl-C to leave)\n",
                                     peer.to_uri()));
      return sock;
    }
    if (errno == EINTR && stop_signal_received()) return {};
    if (errno != EINTR && errno != ECONNABORTED) throw_sys_error("accept", local.to_uri());
  }
}

}  // namespace

int run_p2p_chat(const p2p_options& o) {
  if (!is_stream(o.address.kind()))
    throw usage_error(
        fmt::format("{} is not a stream endpoint (use tcp:// or unix://)", o.address.to_uri()));
  stop_signal_scope stop;  // SIGINT/SIGTERM: a flag and EINTR, never a sudden death
  auto sock = open_connection(o);
  if (!sock) return 0;                                // Ctrl-C before a peer came
  auto [child_gone_r, child_gone_w] = make_pipe();    // the child holds the write end
  auto [parent_gone_r, parent_gone_w] = make_pipe();  // the parent holds the write end
  std::fflush(nullptr);
  pid_t child = ::fork();
  if (child < 0) throw_sys_error("fork", "p2p-chat receiver");
  if (child == 0) {
    // The receiver. Ctrl-C goes to the whole foreground group: the parent decides.
    // SIGTERM, to the group (kill -TERM -PGID) or to this process alone, ends it with
    // status 0 through the flag handler inherited from the parent.
    ::signal(SIGINT, SIG_IGN);
    stop.block();
    child_gone_r.reset();
    parent_gone_w.reset();
    ::close(STDIN_FILENO);  // the keyboard is the parent's
    int status = receive(sock.get(), parent_gone_r.get(), o.max_line, stop);
    ::_exit(status);  // no destructors or atexit of the parent's objects in the copy
  }
  child_gone_w.reset();
  parent_gone_r.reset();
  stop.block();  // Ctrl-C and SIGTERM only inside ppoll: none slips in after the check
  ending why = send_lines(sock.get(), child_gone_r.get(), o.max_line, stop);
  // The child is told to go first, then the peer reads EOF. In the other order the peer
  // could answer with its own EOF before the pipe closed, and the child of a side that
  // quit would print "*** peer left" on its own screen.
  parent_gone_w.reset();
  ::shutdown(sock.get(), SHUT_WR);
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  if (why == ending::error) return 1;
  if (WIFSIGNALED(status)) {
    say(STDERR_FILENO, fmt::format("netkit: p2p-chat: the receiving process was killed by "
                                   "signal {} ({})\n",
                                   WTERMSIG(status), ::strsignal(WTERMSIG(status))));
    return 1;
  }
  return why == ending::child_ended ? WEXITSTATUS(status) : 0;
}

}  // namespace netkit::chat
