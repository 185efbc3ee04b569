// netkit fd-pass: hand an open descriptor to an unrelated process over a Unix socket.
//
//   netkit fd-pass serve   --listen unix:///PATH (--file F | --accept tcp://HOST:PORT)
//   netkit fd-pass receive --connect unix:///PATH
//
// The server opens F once (or accepts one TCP connection per receiver) and, for every
// process that connects to the Unix socket, sends that descriptor with SCM_RIGHTS plus a
// one-line description ("file F" or "tcp PEER"). The receiver then owns a descriptor of
// the same open file description: for a file it prints the content (pread from offset 0,
// so receivers do not disturb each other through the shared offset); for a TCP
// connection it serves it as an echo until the client closes. The server logs each
// receiver's pid/uid/gid (SO_PEERCRED).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

#include <fmt/format.h>

#include "commands.hpp"
#include "netkit/codec/codec.hpp"
#include "netkit/error.hpp"
#include "netkit/message.hpp"
#include "netkit/signals.hpp"
#include "netkit/socket.hpp"
#include "netkit/unix_socket.hpp"
#include "support/blocking_echo.hpp"

namespace netkit::cli {

namespace {

// Waits for fd to be readable, checking the stop flag at least every 200 ms.
bool wait_readable(int fd) {
  while (stop_signal_received() == 0) {
    pollfd p{fd, POLLIN, 0};
    int rc = ::poll(&p, 1, 200);
    if (rc > 0) return true;
    if (rc < 0 && errno != EINTR) throw_sys_error("poll");
  }
  return false;
}

unique_fd accept_one(int listener, std::string_view what) {
  for (;;) {
    if (!wait_readable(listener)) return {};
    unique_fd c(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
    if (c) return c;
    if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED) continue;
    throw_sys_error("accept", what);
  }
}

struct serve_args {
  std::string listen, file, accept;
  std::size_t count = 0;
  std::string mode;
};

struct receive_args {
  std::string connect;
};

int serve(const serve_args& a) {
  if (a.file.empty() == a.accept.empty())
    throw usage_error("fd-pass serve: give exactly one of --file F or --accept tcp://HOST:PORT");
  auto ep = endpoint::parse(a.listen);
  if (ep.kind() != transport::unix_stream)
    throw usage_error("fd-pass serve: --listen must be a unix:// stream endpoint");
  listen_options lo;
  if (!a.mode.empty()) lo.unix_mode = static_cast<mode_t>(std::stoul(a.mode, nullptr, 8));
  // Installed before the banner: a SIGTERM right after it must stop us cleanly.
  stop_signal_scope stop;
  auto unix_l = listen_unix(ep, io_mode::blocking, lo);
  unique_fd file, tcp;
  std::string what;
  if (!a.file.empty()) {
    file.reset(::open(a.file.c_str(), O_RDONLY | O_CLOEXEC));
    if (!file) throw_sys_error("open", a.file);
    what = fmt::format("file {}", a.file);
  } else {
    auto tcp_ep = endpoint::parse(a.accept);
    tcp = listen_on(tcp_ep, io_mode::blocking);
    what = fmt::format("connections from {}", local_endpoint(tcp.get(), transport::tcp).to_uri());
  }
  fmt::print("listening on {} handing {}\n", ep.to_uri(), what);
  std::fflush(stdout);
  std::size_t handed = 0;
  while (stop.received() == 0 && (a.count == 0 || handed < a.count)) {
    auto receiver = accept_one(unix_l.fd.get(), ep.to_uri());
    if (!receiver) break;
    auto cred = peer_credentials_of(receiver.get());
    unique_fd conn;
    std::string label;
    int to_send = file.get();
    if (tcp) {
      conn = accept_one(tcp.get(), "tcp");
      if (!conn) break;
      label = fmt::format("tcp {}", peer_endpoint(conn.get(), transport::tcp).to_uri());
      to_send = conn.get();
    } else {
      label = fmt::format("file {}", a.file);
    }
    auto r = send_fds(receiver.get(), {&to_send, 1}, std::as_bytes(std::span(label)));
    if (!r.ok()) {
      fmt::print(stderr, "send to pid {}: {}\n", cred.pid, errno_text(r.err));
      continue;
    }
    ++handed;
    // Our copy of an accepted connection closes here; the receiver's copy keeps it open.
    fmt::print("handed {} to pid={} uid={} gid={}\n", label, cred.pid, cred.uid, cred.gid);
    std::fflush(stdout);
  }
  fmt::print("handed {} descriptor{}\n", handed, handed == 1 ? "" : "s");
  return 0;
}

int receive(const receive_args& a) {
  auto ep = endpoint::parse(a.connect);
  auto sock = connect_to(ep);
  std::array<std::byte, 512> label_buf{};
  auto m = recv_fds(sock.get(), 1, label_buf);
  if (m.control_truncated)
    throw sys_error(EMSGSIZE, "recvmsg", "descriptors were truncated (MSG_CTRUNC)");
  if (!m.ok()) throw sys_error(m.err, "recvmsg", ep.to_uri());
  if (m.fds.empty()) throw protocol_error(fmt::format("{} sent no descriptor", ep.to_uri()));
  std::string label(reinterpret_cast<const char*>(label_buf.data()), static_cast<std::size_t>(m.n));
  int fd = m.fds.front().get();
  struct stat st {};
  ::fstat(fd, &st);
  fmt::print(stderr, "received fd {} ({}), dev={} ino={}\n", fd, label, st.st_dev, st.st_ino);
  std::array<char, 16384> buf{};
  if (label.starts_with("file ")) {
    off_t off = 0;
    for (;;) {
      auto n = ::pread(fd, buf.data(), buf.size(), off);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw_sys_error("pread", label);
      if (n == 0) break;
      std::fwrite(buf.data(), 1, static_cast<std::size_t>(n), stdout);
      off += n;
    }
    std::fflush(stdout);
    return 0;
  }
  // A connection: echo until the client closes, with no framing (raw: every byte read is
  // a message). A stop signal keeps its default action: it ends this process.
  auto codec = codec_spec::parse("raw");
  auto total = servers::support::serve_blocking_echo(fd, label, *make_decoder(codec),
                                                     *make_encoder(codec), [] { return false; });
  fmt::print(stderr, "echoed {} bytes on {}\n", total, label);
  return 0;
}

}  // namespace

void add_fd_pass(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "fd-pass",
      "Descriptor passing demo (SCM_RIGHTS). 'serve' opens --file F once, or accepts one TCP "
      "connection per receiver with --accept, and hands the descriptor to every process that "
      "connects to --listen unix:///PATH. 'receive' connects, takes the descriptor and prints "
      "the file (pread from offset 0) or serves the connection as an echo until EOF.");
  cmd->require_subcommand(1);
  static serve_args sargs;
  auto* s = cmd->add_subcommand("serve", "Hand a descriptor to whoever connects");
  s->add_option("--listen", sargs.listen, "unix:///PATH or unix://@NAME to hand descriptors on")
      ->required();
  s->add_option("--file", sargs.file, "File to open (read-only) and hand out");
  s->add_option("--accept", sargs.accept, "tcp://HOST:PORT: accept a connection per receiver");
  s->add_option("--count", sargs.count, "Exit after this many hand-offs (0: until SIGINT/SIGTERM)");
  s->add_option("--mode", sargs.mode, "Octal mode of the socket file, e.g. 0600");
  s->callback([] {
    if (int rc = serve(sargs); rc != 0) throw CLI::RuntimeError(rc);
  });
  static receive_args rargs;
  auto* r = cmd->add_subcommand("receive", "Receive a descriptor and read or serve it");
  r->add_option("--connect", rargs.connect, "unix:///PATH of an fd-pass server")->required();
  r->callback([] {
    if (int rc = receive(rargs); rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace netkit::cli
