// Model "iterative" (UNP ch. 4/5's first server): one process, one client at a time, all
// blocking. accept(2) takes the next connection and serves it to EOF, then the next.
// Every other client waits meanwhile: its connect completes in the kernel (the listen
// backlog, SOMAXCONN deep) and what it sends waits in its socket buffer until its turn.
// tcp:// and unix://.
//
// The course's blocking helpers do the framing where they fit: with the line codec each
// request is one line_reader::read_line() and its echo one write_v (the line, then '\n');
// with fixed:N, one read_n of N bytes and one write_n. The other codecs (length prefixes,
// crlf, raw, sockperf) go through the codec's decoder over read(2), as the fork and thread
// models do (support/blocking_echo).
#include <sys/uio.h>

#include <cstdio>
#include <vector>

#include <fmt/format.h>

#include "netkit/blocking_io.hpp"
#include "netkit/error.hpp"
#include "netkit/log.hpp"
#include "netkit/signals.hpp"
#include "server_model.hpp"
#include "support/blocking_echo.hpp"
#include "support/blocking_listener.hpp"

namespace netkit::servers {

namespace {

// One client, line codec: readline and writen.
void serve_lines(int fd, const std::string& peer, std::size_t max_line,
                 const stop_predicate& stop) {
  line_reader lines(fd, max_line, stop);
  while (auto line = lines.read_line()) {
    const iovec reply[2] = {{line->data(), line->size()}, {const_cast<char*>("\n"), 1}};
    write_v(fd, reply, stop);
  }
  log(log_level::debug, "iterative: {} closed", peer);
}

// One client, fixed:N codec: readn and writen.
void serve_records(int fd, const std::string& peer, std::size_t size, const stop_predicate& stop) {
  std::vector<std::byte> record(size);
  for (;;) {
    auto r = read_n(fd, record, stop);
    if (r.how == read_n_result::end::eof_mid_message)
      log(log_level::warning, "{}: stream ended inside a {}-byte record ({} bytes)", peer, size,
          r.bytes);
    if (r.how != read_n_result::end::complete) return;
    write_n(fd, record, stop);
  }
}

// Serves one accepted client to its end; whatever ends it is logged, never thrown on.
void serve(int fd, transport kind, const codec_spec& codec, decoder& dec, const encoder& enc) {
  if (codec.kind != codec_kind::line && codec.kind != codec_kind::fixed) {
    support::serve_accepted_echo(fd, kind, dec, enc, "iterative");
    return;
  }
  const auto peer = support::peer_name(fd, kind);
  const stop_predicate stop = [] { return stop_signal_received() != 0; };
  try {
    support::set_stop_check_timeouts(fd);
    log(log_level::debug, "iterative: serving {}", peer);
    if (codec.kind == codec_kind::line) {
      serve_lines(fd, peer, codec.max_message, stop);
    } else {
      serve_records(fd, peer, codec.fixed_size, stop);
    }
  } catch (const transfer_stopped&) {
    // SIGTERM: the loop in run() sees the flag.
  } catch (const protocol_error& e) {
    log(log_level::warning, "closing {}: protocol error: {}", peer, e.what());
  } catch (const sys_error& e) {
    log(log_level::debug, "iterative: {}: {}", peer, e.what());
  }
}

int run(const server_model& model, const model_settings& settings) {
  auto dec = make_decoder(settings.codec);
  auto enc = make_encoder(settings.codec);
  // Installed before the banner: a SIGTERM right after it must stop us cleanly. The
  // handler has no SA_RESTART, so a blocked accept/read/write returns EINTR and we look.
  stop_signal_scope stop;
  support::blocking_listener listener(settings);
  support::print_banner(listener.local(), model.name, settings.codec, "");
  std::size_t served = 0;
  while (!stop.received()) {
    auto conn = listener.accept();
    if (!conn) continue;  // interrupted, timed out or transient: look at the flag again
    ++served;
    serve(conn.get(), listener.local().kind(), settings.codec, *dec, *enc);
  }
  listener.close();
  log(log_level::info, "stopped by signal {}: {} connections served, one at a time",
      stop.received(), served);
  return 0;
}

}  // namespace

server_model iterative_model() {
  // One client at a time: a connection cap, an idle timeout or output limits of the loop
  // servers mean nothing here (a blocking write holds one read's replies at most).
  return {.name = "iterative",
          .family = transport_family::stream,
          .transports = {},
          .description =
              "blocking accept, then serve that one client to EOF: one client at a "
              "time, the others wait in the listen backlog",
          .takes = {common_option::codec, common_option::unix_mode, common_option::reuse_port},
          .own_options = {},
          .probe = nullptr,
          .run = run};
}

}  // namespace netkit::servers
