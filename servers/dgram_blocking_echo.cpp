// Datagram model "blocking": one thread, one blocking recvfrom at a time.
#include <sys/socket.h>
#include <sys/time.h>

#include "netkit/error.hpp"
#include "netkit/signals.hpp"
#include "server_model.hpp"
#include "support/dgram_echo.hpp"

namespace netkit::servers {

namespace {

int run(const server_model& model, const model_settings& settings) {
  // The handler makes a blocked recvfrom return EINTR and sets the flag.
  stop_signal_scope stop;
  auto socket = support::open_dgram_socket(model, settings, io_mode::blocking);
  int fd = socket.fd.get();
  // A stop signal that lands between the flag check and recvfrom would otherwise wait
  // for the next datagram; a receive timeout bounds how late the flag is seen.
  timeval tv{0, 200'000};
  if (::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0)
    throw_sys_error("setsockopt SO_RCVTIMEO");
  support::dgram_echoer echoer(fd, settings);
  while (stop.received() == 0)
    echoer.echo_one(recv_flags::none);
  return support::print_dgram_summary(echoer);
}

}  // namespace

server_model dgram_blocking_model() {
  return support::dgram_model("blocking", "one blocking recvfrom at a time, then the reply", run);
}

}  // namespace netkit::servers
