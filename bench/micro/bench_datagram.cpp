// The datagram echo server's hot path over loopback UDP: N clients have each sent one
// datagram; the timed part receives all N at the server and sends every reply back.
// - dgram_batched/N/SIZE: datagram_batch, one recvmmsg (up to 64) and one sendmmsg per
//   batch (the epoll datagram model).
// - dgram_one_at_a_time/N/SIZE: recv_datagram + send_datagram per datagram (the blocking
//   and sigio models).
// - dgram_recvfrom_sendto/N/SIZE: bare recvfrom + sendto per datagram (peer-recvfrom).
// - dgram_batched_window/SENDERS/WINDOW/SIZE and dgram_batched_window_no_gso: SENDERS
//   clients have each sent WINDOW datagrams (what `netkit bench --window` keeps in flight),
//   echoed by datagram_batch with UDP segmentation on (the default, several receivers: each
//   sender's replies leave as one GSO send) and off (one sendmmsg entry per reply).
// Items are datagrams echoed. The clients' sends and reading their replies are not timed;
// the loopback delivery of each reply into its client's socket is (it runs in the
// server's send call, as it does in the real server).
// And what UDP GSO would save if replies shared a destination (they do not in an echo of N
// ping-ponging senders: one datagram per sender in flight), N datagrams to ONE receiver:
// - dgram_train_sendmmsg/N/SIZE: one sendmmsg of N datagrams.
// - dgram_train_gso/N/SIZE: one sendmsg of N x SIZE bytes with UDP_SEGMENT = SIZE (the
//   kernel cuts it into N datagrams; on loopback, at delivery to the receiver).
#include <netinet/udp.h>
#include <sys/socket.h>

#include <cstring>
#include <utility>
#include <vector>

#include <benchmark/benchmark.h>

#include "netkit/datagram.hpp"
#include "netkit/socket.hpp"

namespace {

using netkit::datagram_batch;
using netkit::endpoint;
using netkit::transport;

constexpr std::size_t max_batch = 64;
constexpr std::size_t max_datagram = 65536;

struct rig {
  netkit::unique_fd server;
  std::vector<netkit::unique_fd> clients;
  std::vector<std::byte> payload;

  std::size_t each;  // datagrams per client per round

  rig(std::size_t n, std::size_t size, std::size_t each_client = 1)
      : payload(size, std::byte{0x5a}), each(each_client) {
    server = netkit::listen_on(endpoint::parse("udp://127.0.0.1:0"), netkit::io_mode::nonblocking);
    int rcvbuf = 8 << 20;  // a whole round (the kernel caps it at rmem_max)
    ::setsockopt(server.get(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    const auto at = netkit::local_endpoint(server.get(), transport::udp);
    for (std::size_t i = 0; i < n; ++i)
      clients.push_back(netkit::open_dgram_client(at, netkit::io_mode::nonblocking));
  }
  void send_all() {
    for (auto& c : clients)
      for (std::size_t k = 0; k < each; ++k)
        netkit::send_datagram(c.get(), payload);
  }
  void drain_replies(std::vector<std::byte>& buf) {
    for (auto& c : clients)
      while (::recv(c.get(), buf.data(), buf.size(), MSG_DONTWAIT) >= 0) {
      }
  }
};

// A datagram still in the loopback backlog (softirq deferred under load) is waited for, a
// bounded number of tries.
constexpr int max_empty_receives = 100000;

// Items: datagrams echoed; n = clients x each per round.
template <typename Echo>
void run(benchmark::State& state, Echo&& echo_all, std::size_t clients, std::size_t each,
         std::size_t size) {
  const std::size_t n = clients * each;
  rig r(clients, size, each);
  std::vector<std::byte> buf(max_datagram);
  std::size_t echoed = 0;
  for (auto _ : state) {
    state.PauseTiming();
    r.send_all();
    state.ResumeTiming();
    echoed += echo_all(r, buf);
    state.PauseTiming();
    r.drain_replies(buf);
    state.ResumeTiming();
  }
  if (echoed != n * state.iterations())
    state.SkipWithError("lost datagrams: a receive buffer overflowed");
  state.SetItemsProcessed(static_cast<std::int64_t>(echoed));
}

// One datagram per client: range(0) clients of range(1) bytes.
template <typename Echo>
void run(benchmark::State& state, Echo&& echo_all) {
  run(state, std::forward<Echo>(echo_all), static_cast<std::size_t>(state.range(0)), 1,
      static_cast<std::size_t>(state.range(1)));
}

// Receives and echoes n datagrams with `batch`; returns how many replies left.
std::size_t echo_batched(datagram_batch& batch, int server, std::size_t n) {
  std::size_t done = 0;
  for (int empty = 0; done < n && empty < max_empty_receives;) {
    if (!batch.receive(server).ok()) {
      ++empty;
      continue;
    }
    for (std::size_t i = 0; i < batch.size(); ++i)
      batch.queue_reply(i, batch[i].data.size());
    done += batch.send_queued(server).sent;
  }
  return done;
}

void dgram_batched(benchmark::State& state) {
  datagram_batch batch(max_batch, max_datagram);
  const auto n = static_cast<std::size_t>(state.range(0));
  run(state,
      [&](rig& r, std::vector<std::byte>&) { return echo_batched(batch, r.server.get(), n); });
}

void batched_window(benchmark::State& state, netkit::udp_segmentation segmentation) {
  datagram_batch batch(max_batch, max_datagram);
  batch.set_segmentation(segmentation);
  const auto clients = static_cast<std::size_t>(state.range(0));
  const auto window = static_cast<std::size_t>(state.range(1));
  run(
      state,
      [&](rig& r, std::vector<std::byte>&) {
        return echo_batched(batch, r.server.get(), clients * window);
      },
      clients, window, static_cast<std::size_t>(state.range(2)));
}

void dgram_batched_window(benchmark::State& state) {
  batched_window(state, netkit::udp_segmentation::several_receivers);
}
void dgram_batched_window_no_gso(benchmark::State& state) {
  batched_window(state, netkit::udp_segmentation::off);
}

void dgram_one_at_a_time(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  run(state, [&](rig& r, std::vector<std::byte>& buf) {
    std::size_t done = 0;
    for (int empty = 0; done < n && empty < max_empty_receives;) {
      auto m = netkit::recv_datagram(r.server.get(), buf, transport::udp);
      if (!m.ok()) {
        ++empty;
        continue;
      }
      auto data = std::span(buf).first(static_cast<std::size_t>(m.n));
      if (netkit::send_datagram(r.server.get(), data, &m.from).ok()) ++done;
    }
    return done;
  });
}

void dgram_recvfrom_sendto(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  run(state, [&](rig& r, std::vector<std::byte>& buf) {
    std::size_t done = 0;
    for (int empty = 0; done < n && empty < max_empty_receives;) {
      sockaddr_storage from;
      socklen_t len = sizeof from;
      auto got = ::recvfrom(r.server.get(), buf.data(), buf.size(), 0,
                            reinterpret_cast<sockaddr*>(&from), &len);
      if (got < 0) {
        ++empty;
        continue;
      }
      if (::sendto(r.server.get(), buf.data(), static_cast<std::size_t>(got), 0,
                   reinterpret_cast<sockaddr*>(&from), len) >= 0)
        ++done;
    }
    return done;
  });
}

// N datagrams of SIZE bytes to one receiver per iteration, sent by `send`; the receiver
// drains them untimed.
template <typename Send>
void train(benchmark::State& state, Send&& send) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const auto size = static_cast<std::size_t>(state.range(1));
  auto receiver =
      netkit::listen_on(endpoint::parse("udp://127.0.0.1:0"), netkit::io_mode::nonblocking);
  int rcvbuf = 8 << 20;  // a whole train (the kernel caps it at rmem_max)
  ::setsockopt(receiver.get(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  auto sender = netkit::open_dgram_client(netkit::local_endpoint(receiver.get(), transport::udp));
  std::vector<std::byte> data(n * size, std::byte{0x5a}), buf(max_datagram);
  std::size_t got = 0;
  for (auto _ : state) {
    if (!send(sender.get(), data, n, size)) {
      state.SkipWithError("send failed (UDP_SEGMENT unsupported here?)");
      return;
    }
    state.PauseTiming();
    for (int empty = 0; empty < max_empty_receives;) {
      if (::recv(receiver.get(), buf.data(), buf.size(), MSG_DONTWAIT) >= 0) {
        ++got;
        if (got % n == 0) break;
      } else {
        ++empty;
      }
    }
    state.ResumeTiming();
  }
  if (got != n * state.iterations()) state.SkipWithError("lost datagrams");
  state.SetItemsProcessed(static_cast<std::int64_t>(n * state.iterations()));
}

void dgram_train_sendmmsg(benchmark::State& state) {
  std::vector<iovec> iov(max_batch);
  std::vector<mmsghdr> msgs(max_batch);
  train(state, [&](int fd, std::vector<std::byte>& data, std::size_t n, std::size_t size) {
    for (std::size_t i = 0; i < n; ++i) {
      iov[i] = {data.data() + i * size, size};
      msgs[i] = {};
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    return ::sendmmsg(fd, msgs.data(), static_cast<unsigned>(n), 0) == static_cast<int>(n);
  });
}

void dgram_train_gso(benchmark::State& state) {
  if (state.range(0) * state.range(1) > static_cast<long>(netkit::max_udp4_payload)) {
    state.SkipWithError("one GSO send carries at most 65,507 bytes: N x SIZE is more");
    return;
  }
  train(state, [](int fd, std::vector<std::byte>& data, std::size_t n, std::size_t size) {
    int seg = static_cast<int>(size);
    if (::setsockopt(fd, SOL_UDP, UDP_SEGMENT, &seg, sizeof seg) != 0) return false;
    iovec iov{data.data(), n * size};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    return ::sendmsg(fd, &msg, 0) == static_cast<ssize_t>(n * size);
  });
}

void args(benchmark::internal::Benchmark* b) {
  for (long size : {64, 1400})
    for (long n : {1, 8, 64})
      b->Args({n, size});
  b->ArgNames({"datagrams", "size"});
}

// 64 datagrams a round, one batch: 4 senders x 16, 16 x 4, 64 x 1.
void window_args(benchmark::internal::Benchmark* b) {
  for (long size : {64, 1400})
    for (long senders : {4, 16, 64})
      b->Args({senders, 64 / senders, size});
  b->ArgNames({"senders", "window", "size"});
}

BENCHMARK(dgram_batched)->Apply(args);
BENCHMARK(dgram_batched_window)->Apply(window_args);
BENCHMARK(dgram_batched_window_no_gso)->Apply(window_args);
BENCHMARK(dgram_one_at_a_time)->Apply(args);
BENCHMARK(dgram_recvfrom_sendto)->Apply(args);
BENCHMARK(dgram_train_sendmmsg)->Apply(args);
BENCHMARK(dgram_train_gso)->Apply(args);

}  // namespace
