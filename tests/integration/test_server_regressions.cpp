// Deterministic regressions for the reactor stream server, driven turn by turn on a loop
// in the test thread so that the order "client does X and Y, then the server wakes" is
// exact rather than left to scheduling. Every backend.
#include <sys/socket.h>

#include <gtest/gtest.h>

#include "netkit/net/stream_server.hpp"
#include "netkit/socket.hpp"
#include "support/backend_params.hpp"
#include "support/client_io.hpp"
#include "support/fd_leak_guard.hpp"

namespace netkit::test {
namespace {

using namespace std::chrono_literals;

class server_regression : public testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { NETKIT_SKIP_UNAVAILABLE_BACKEND(GetParam()); }

  void start(const std::string& codec) {
    loop_ = std::make_unique<event_loop>(GetParam());
    server_options o;
    o.listen = endpoint::parse("tcp://127.0.0.1:0");
    o.codec = codec_spec::parse(codec);
    stream_handler echo;
    echo.on_message = [](connection& c, std::span<const std::byte> m) { c.send(m); };
    server_ = make_stream_server(*loop_, o, std::move(echo));
  }
  void turns(int n) {
    for (int i = 0; i < n; ++i)
      loop_->run_once(10ms);
  }
  // Runs turns until the server has `open` connections (bounded).
  void settle_open(std::size_t open) {
    for (int i = 0; i < 200 && server_->stats().open != open; ++i)
      loop_->run_once(10ms);
    ASSERT_EQ(server_->stats().open, open);
  }
  // Reads what the client has, running server turns in between, until `n` bytes, EOF or
  // a bounded number of turns.
  read_outcome pump_read(int fd, std::size_t n, bool want_eof) {
    read_outcome out;
    for (int i = 0; i < 300; ++i) {
      loop_->run_once(5ms);
      std::byte buf[4096];
      ssize_t got = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
      if (got > 0) out.bytes.insert(out.bytes.end(), buf, buf + got);
      if (got == 0) {
        out.end = read_end::eof;
        return out;
      }
      if (got < 0 && errno != EAGAIN) {
        out.end = read_end::reset;
        out.err = errno;
        return out;
      }
      if (!want_eof && out.bytes.size() >= n) {
        out.end = read_end::data;
        return out;
      }
    }
    out.end = read_end::timeout;
    return out;
  }

  fd_leak_guard guard_;
  std::unique_ptr<event_loop> loop_;
  std::unique_ptr<stream_server> server_;
};

// A client sends a line and shuts down its write side before the server wakes, so the
// data and the FIN arrive in one edge. Edge-triggered, the server used to stop at the
// short read and never see the FIN: the client waited forever for its EOF.
TEST_P(server_regression, data_and_fin_in_one_wakeup_are_both_handled) {
  start("line");
  auto client = connect_client(server_->local());
  settle_open(1);
  send_all(client.get(), "hello\n");
  ASSERT_EQ(::shutdown(client.get(), SHUT_WR), 0);
  std::this_thread::sleep_for(20ms);  // both are in the server's receive queue now
  auto r = pump_read(client.get(), 6, true);
  EXPECT_EQ(r.text(), "hello\n");
  EXPECT_EQ(r.end, read_end::eof) << "no EOF after a half-close: " << to_string(r.end);
  settle_open(0);
}

// Same with a reset: data and RST in one wakeup, the connection must be closed.
TEST_P(server_regression, data_and_reset_in_one_wakeup_close_the_connection) {
  start("line");
  {
    auto client = connect_client(server_->local());
    settle_open(1);
    send_all(client.get(), "partial line without newline");
    set_reset_on_close(client.get());
  }
  std::this_thread::sleep_for(20ms);
  settle_open(0);
}

// One read holds a valid frame and then an oversize length header. The reply to the
// valid frame sat in the server's shared batch buffer when the connection was closed for
// the protocol error, and the next connection to flush sent it to its own peer.
TEST_P(server_regression, protocol_error_never_leaks_replies_to_another_connection) {
  start("length,max=1000");
  auto bad = connect_client(server_->local());
  auto good = connect_client(server_->local());
  settle_open(2);
  const unsigned char bad_bytes[] = {0, 0, 0, 3, 'B', 'A', 'D', 0xff, 0xff, 0xff, 0xff};
  send_all(bad.get(), std::as_bytes(std::span(bad_bytes)));
  std::this_thread::sleep_for(20ms);
  // The server reads "BAD", echoes it to the batch, then hits the bad header; turns until
  // it has (bounded): a completion backend may report the read a turn later.
  for (int i = 0; i < 200 && server_->stats().protocol_errors == 0; ++i)
    turns(1);
  ASSERT_EQ(server_->stats().protocol_errors, 1u);
  const unsigned char ok_bytes[] = {0, 0, 0, 2, 'o', 'k'};
  send_all(good.get(), std::as_bytes(std::span(ok_bytes)));
  auto r = pump_read(good.get(), sizeof ok_bytes, false);
  EXPECT_EQ(printable(r.bytes), printable(std::as_bytes(std::span(ok_bytes))));
  // The bad client is closed (it may or may not have received "BAD" first).
  auto closed = pump_read(bad.get(), 0, true);
  EXPECT_NE(closed.end, read_end::timeout);
  EXPECT_EQ(server_->stats().open, 1u);
}

INSTANTIATE_TEST_SUITE_P(all, server_regression, every_backend(), param_name{});

}  // namespace
}  // namespace netkit::test
