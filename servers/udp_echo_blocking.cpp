// Blocking model: one thread, one blocking recvfrom at a time.
#include <sys/socket.h>
#include <sys/time.h>

#include "netkit/error.hpp"
#include "udp_echo_detail.hpp"

namespace netkit::servers::detail {

void serve_blocking(int fd, dgram_echoer& echoer) {
  // A stop signal that lands between the flag check and recvfrom would otherwise wait
  // for the next datagram; a receive timeout bounds how late the flag is seen.
  timeval tv{0, 200'000};
  if (::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0)
    throw_sys_error("setsockopt SO_RCVTIMEO");
  install_stop_handlers();
  while (stop_signal.load() == 0)
    echoer.echo_one(recv_flags::none);
  restore_stop_handlers();
}

}  // namespace netkit::servers::detail
