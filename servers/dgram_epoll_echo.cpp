// Datagram model "epoll": the netkit event loop (level-triggered epoll) wakes the server
// when datagrams wait.
#include <signal.h>

#include "netkit/event/loop.hpp"
#include "server_model.hpp"
#include "support/dgram_echo.hpp"

namespace netkit::servers {

namespace {

class dgram_reader final : public io_handler {
 public:
  dgram_reader(event_loop& loop, int fd, support::dgram_echoer& echoer)
      : loop_(loop), echoer_(echoer), id_(loop.watch(fd, io_read, *this)) {}
  ~dgram_reader() { loop_.unwatch(id_); }
  dgram_reader(const dgram_reader&) = delete;
  dgram_reader& operator=(const dgram_reader&) = delete;

  void on_io(std::uint32_t) override {
    // Level-triggered: anything left after the budget is reported again next turn.
    for (int i = 0; i < support::datagrams_per_wakeup; ++i)
      if (echoer_.echo_one(recv_flags::none) == support::step::would_block) return;
  }

 private:
  event_loop& loop_;
  support::dgram_echoer& echoer_;
  watch_id id_;
};

int run(const server_model& model, const model_settings& settings) {
  event_loop loop("epoll");
  // Installed before the banner: a SIGTERM right after it must stop us cleanly.
  loop.stop_on_signals({SIGINT, SIGTERM});
  auto socket = support::open_dgram_socket(model, settings, io_mode::nonblocking);
  support::dgram_echoer echoer(socket.fd.get(), settings);
  {
    dgram_reader reader(loop, socket.fd.get(), echoer);
    loop.run();
  }
  return support::print_dgram_summary(echoer);
}

}  // namespace

server_model dgram_epoll_model() {
  return support::dgram_model(
      "epoll", "the event loop (level-triggered epoll) wakes the server when datagrams wait", run);
}

}  // namespace netkit::servers
