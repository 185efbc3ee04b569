// epoll model: the netkit event loop (level-triggered epoll) wakes us when datagrams wait.
#include <signal.h>

#include "netkit/event/loop.hpp"
#include "udp_echo_detail.hpp"

namespace netkit::servers::detail {

namespace {

class dgram_reader final : public io_handler {
 public:
  dgram_reader(event_loop& loop, int fd, dgram_echoer& echoer) : echoer_(echoer) {
    id_ = loop.watch(fd, io_read, *this);
  }
  watch_id id() const noexcept { return id_; }
  void on_io(std::uint32_t) override {
    // Level-triggered: anything left after the budget is reported again next turn.
    for (int i = 0; i < datagrams_per_wakeup; ++i)
      if (echoer_.echo_one(recv_flags::none) == step::would_block) return;
  }

 private:
  dgram_echoer& echoer_;
  watch_id id_;
};

}  // namespace

void serve_epoll(int fd, dgram_echoer& echoer) {
  event_loop loop("epoll");
  loop.stop_on_signals({SIGINT, SIGTERM});
  dgram_reader reader(loop, fd, echoer);
  loop.run();
  loop.unwatch(reader.id());
}

}  // namespace netkit::servers::detail
