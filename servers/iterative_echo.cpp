// Model "iterative" (UNP ch. 4/5's first server): one process, one client at a time, all
// blocking. accept(2) takes the next connection, the framed echo serves it to EOF
// (support/blocking_echo: read(2), the codec's decoder, a blocking write of each read's
// replies), then the next. Every other client waits meanwhile: its connect completes in
// the kernel (the listen backlog, SOMAXCONN deep) and what it sends waits in its socket
// buffer until its turn. tcp:// and unix://.
#include <cstdio>

#include <fmt/format.h>

#include "netkit/log.hpp"
#include "netkit/signals.hpp"
#include "server_model.hpp"
#include "support/blocking_echo.hpp"
#include "support/blocking_listener.hpp"

namespace netkit::servers {

namespace {

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
    support::serve_accepted_echo(conn.get(), listener.local().kind(), *dec, *enc, "iterative");
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
