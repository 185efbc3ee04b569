// Datagram model "epoll": the netkit event loop (level-triggered epoll) wakes the server
// when datagrams wait; each wakeup moves up to 64 of them with one recvmmsg and answers
// them with one sendmmsg (datagram_batch). Replies the socket cannot take (EAGAIN) wait
// for EPOLLOUT, and nothing more is received meanwhile: the kernel's receive queue, not
// this process, absorbs the backlog, and no reply is dropped silently. UDP replies to one
// sender leave as one GSO send where they can (--segmentation).
#include <signal.h>

#include "netkit/event/loop.hpp"
#include "server_model.hpp"
#include "support/dgram_echo.hpp"

namespace netkit::servers {

namespace {

constexpr std::string_view segmentation_flag = "--segmentation";

class dgram_reader final : public io_handler {
 public:
  dgram_reader(event_loop& loop, int fd, support::dgram_echoer& echoer)
      : loop_(loop), echoer_(echoer), id_(loop.watch(fd, io_read, *this)) {}
  ~dgram_reader() { loop_.unwatch(id_); }
  dgram_reader(const dgram_reader&) = delete;
  dgram_reader& operator=(const dgram_reader&) = delete;

  void on_io(std::uint32_t events) override {
    if (blocked_) {
      if (!(events & (io_write | io_hangup))) return;
      if (echoer_.flush_replies() == support::step::send_blocked) return;
      blocked_ = false;
      loop_.modify(id_, io_read);
    }
    // Level-triggered: what is left after one batch is reported again next turn.
    if (echoer_.echo_batch(recv_flags::none) == support::step::send_blocked) {
      blocked_ = true;
      loop_.modify(id_, io_write);
    }
  }

 private:
  event_loop& loop_;
  support::dgram_echoer& echoer_;
  watch_id id_;
  bool blocked_ = false;  // replies queued behind EAGAIN: watching for writability only
};

int run(const server_model& model, const model_settings& settings) {
  event_loop loop("epoll");
  // Installed before the banner: a SIGTERM right after it must stop us cleanly.
  loop.stop_on_signals({SIGINT, SIGTERM});
  auto socket = support::open_dgram_socket(model, settings, io_mode::nonblocking);
  support::dgram_echoer echoer(socket.fd.get(), settings, support::datagrams_per_wakeup);
  const auto mode = settings.own_choice(model, segmentation_flag);
  echoer.set_segmentation(mode == "off"      ? udp_segmentation::off
                          : mode == "always" ? udp_segmentation::always
                                             : udp_segmentation::several_receivers);
  {
    dgram_reader reader(loop, socket.fd.get(), echoer);
    loop.run();
  }
  return support::print_dgram_summary(echoer);
}

}  // namespace

server_model dgram_epoll_model() {
  return support::dgram_model(
      "epoll",
      "the event loop (level-triggered epoll) wakes the server when datagrams wait; "
      "recvmmsg/sendmmsg, up to 64 a call; replies to one sender coalesced into UDP GSO sends",
      run,
      {{.flag = segmentation_flag,
        .help = "udp:// only. Consecutive replies to the same sender, all of one size but the "
                "last, can leave as one send the kernel splits into datagrams (UDP_SEGMENT, "
                "Linux >= 4.18; turned off by itself where the kernel or route refuses it): "
                "far less CPU per datagram, but the sender gets the whole run at once. auto: "
                "only when a batch answers more than one sender (a lone sender gets its first "
                "reply early). always: also for a lone sender. off: one sendmmsg entry per "
                "reply. The sender gets one datagram per reply either way",
        .default_value = 0,
        .min = 0,
        .max = 0,
        .choices = {"auto", "always", "off"}}});
}

}  // namespace netkit::servers
