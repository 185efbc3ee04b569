// The server's side of one churned connection, per backend, without TCP: what the
// connection core costs from adopt() to the freed object (admission, slot, decoder from the
// spare list, the driver's start, EOF, close, on_close, the deferred free), the path
// issue 14's churn target runs once per connection.
//
// churn_cycle/<backend>/N: N Unix socketpairs are adopted by an echo server, their other
// ends closed, and the loop turned until the server has closed all N. Includes the
// socketpair(2) and close(2) calls of the test side; items are connections.
//
// connect_cycle/<backend>: the client's side, one connector per connection as `netkit bench
// churn` and stream_client make them (no seed given: each draws its own jitter seed), to a
// listening Unix socket; the benchmark accepts and closes each one. Items are connections.
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "netkit/error.hpp"
#include "netkit/event/loop.hpp"
#include "netkit/fd.hpp"
#include "netkit/net/connector.hpp"
#include "netkit/net/stream_server.hpp"
#include "netkit/socket.hpp"

namespace {

void churn_cycle(benchmark::State& state, const std::string& backend) {
  const auto n = static_cast<std::size_t>(state.range(0));
  std::unique_ptr<netkit::event_loop> loop;
  std::unique_ptr<netkit::stream_server> server;
  try {
    loop = std::make_unique<netkit::event_loop>(backend);
    netkit::server_options options;
    options.listen = netkit::endpoint::parse("tcp://127.0.0.1:0");
    options.codec = netkit::codec_spec::parse("raw");
    netkit::stream_handler echo;
    echo.on_message = [](netkit::connection& c, std::span<const std::byte> m) { c.send(m); };
    server = netkit::make_stream_server(*loop, options, std::move(echo));
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());  // e.g. io_uring disabled
    return;
  }
  const auto peer = netkit::endpoint::unix_abstract(netkit::transport::unix_stream, "churn");
  std::vector<netkit::unique_fd> ends(n);
  for (auto _ : state) {
    for (std::size_t i = 0; i < n; ++i) {
      int sv[2];
      if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) {
        state.SkipWithError("socketpair failed");
        return;
      }
      ends[i].reset(sv[1]);
      server->adopt(netkit::unique_fd(sv[0]), peer);
    }
    for (auto& end : ends)
      end.reset();  // EOF: the server closes its side
    // Bounded: a server that never closes them fails the benchmark instead of hanging.
    for (int turn = 0; server->stats().open > 0; ++turn) {
      if (turn == 1000) {
        state.SkipWithError("the server did not close its connections");
        return;
      }
      loop->run_once(std::chrono::milliseconds(100));
    }
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
}

void connect_cycle(benchmark::State& state, const std::string& backend) {
  std::unique_ptr<netkit::event_loop> loop;
  try {
    loop = std::make_unique<netkit::event_loop>(backend);
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
    return;
  }
  const auto target = netkit::endpoint::unix_abstract(
      netkit::transport::unix_stream, "netkit-bench-connect-" + std::to_string(::getpid()));
  auto listener = netkit::listen_on(target, netkit::io_mode::blocking);
  netkit::connect_options options;
  for (auto _ : state) {
    netkit::unique_fd connected;
    bool failed = false;
    auto c = netkit::make_connector(
        *loop, target, options,
        [&](netkit::unique_fd fd, const netkit::endpoint&) { connected = std::move(fd); },
        [&](const netkit::sys_error&) { failed = true; });
    c->start();
    for (int turn = 0; !connected && !failed; ++turn) {
      if (turn == 1000) {
        state.SkipWithError("the connect was never reported");
        return;
      }
      loop->run_once(std::chrono::milliseconds(100));
    }
    if (failed) {
      state.SkipWithError("connect failed");
      return;
    }
    netkit::unique_fd accepted(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

}  // namespace

int main(int argc, char** argv) {
  for (std::string backend : {"epoll", "uring"})
    benchmark::RegisterBenchmark(("churn_cycle/" + backend).c_str(),
                                 [backend](benchmark::State& s) { churn_cycle(s, backend); })
        ->Arg(1)
        ->Arg(100);
  for (std::string backend : {"epoll", "uring"})
    benchmark::RegisterBenchmark(("connect_cycle/" + backend).c_str(),
                                 [backend](benchmark::State& s) { connect_cycle(s, backend); });
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
