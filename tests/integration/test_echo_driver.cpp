// The echo driver itself, on every backend: the suites that rely on it pass only if it
// sees what goes wrong, so each failure it must report is staged here by a scripted peer
// (a refused connect, an echo that differs, a peer that closes early or resets), next to
// an exact echo with a half-close.
#include <poll.h>
#include <sys/socket.h>

#include <array>
#include <functional>
#include <thread>

#include <gtest/gtest.h>

#include "netkit/socket.hpp"
#include "support/backend_params.hpp"
#include "support/client_io.hpp"
#include "support/echo_driver.hpp"
#include "support/fd_leak_guard.hpp"

namespace netkit::test {
namespace {

using namespace std::chrono_literals;

// A loopback listener whose one connection is served by `serve` on a thread of its own.
class scripted_peer {
 public:
  explicit scripted_peer(std::function<void(int fd)> serve)
      : listener_(listen_on(endpoint::parse("tcp://127.0.0.1:0"), io_mode::blocking)),
        local_(local_endpoint(listener_.get(), transport::tcp)),
        thread_([this, serve = std::move(serve)] {
          pollfd p{listener_.get(), POLLIN, 0};
          if (::poll(&p, 1, 10'000) != 1) return;  // bounded: the driver never came
          unique_fd conn(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
          if (conn) serve(conn.get());
        }) {}
  ~scripted_peer() { thread_.join(); }
  const endpoint& local() const { return local_; }

 private:
  unique_fd listener_;
  endpoint local_;
  std::thread thread_;
};

// Echoes until EOF, error or 10 s; `alter` may change each chunk before it goes back.
void echo_until_eof(int fd, const std::function<void(std::span<std::byte>)>& alter = {}) {
  std::vector<std::byte> buf(16384);
  auto until = deadline_after(10s);
  while (clock::now() < until) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) != 1) continue;
    ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
    if (n <= 0) return;
    std::span<std::byte> chunk(buf.data(), static_cast<std::size_t>(n));
    if (alter) alter(chunk);
    send_all(fd, chunk);
  }
}

std::vector<echo_plan> one_plan(std::size_t messages, std::size_t max_split) {
  std::mt19937_64 rng(7);
  std::vector<echo_plan> plans(1);
  plans[0].block = std::make_shared<std::vector<std::byte>>(
      make_framed_stream(codec_spec::parse("line"), rng, messages, 200));
  plans[0].max_split = max_split;
  return plans;
}

class echo_driver_test : public testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { NETKIT_SKIP_UNAVAILABLE_BACKEND(GetParam()); }
  echo_run run(const endpoint& server, const std::vector<echo_plan>& plans) const {
    return run_echo_clients(server, plans, deadline_after(stretch(20s)), 3, GetParam());
  }
  // Runs `plans` against a scripted peer that serves the connection with `serve`.
  echo_run run_against(std::function<void(int fd)> serve,
                       const std::vector<echo_plan>& plans) const {
    scripted_peer peer(std::move(serve));
    return run(peer.local(), plans);
  }
};

// Takes the first bytes (at most 100) the driver sent, into `buf`; how many.
std::size_t take_first(int fd, std::span<std::byte, 100> buf) {
  ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
  return n > 0 ? static_cast<std::size_t>(n) : 0;
}

TEST_P(echo_driver_test, exact_echo_with_half_close_ends_in_eof) {
  fd_leak_guard guard;
  auto plans = one_plan(200, 40);
  plans[0].half_close = true;
  auto r = run_against([](int fd) { echo_until_eof(fd); }, plans);  // then closes: the EOF
  EXPECT_EQ(r.problems(plans), "");
  EXPECT_TRUE(r.results[0].eof);
  EXPECT_EQ(r.results[0].sent, plans[0].total());
}

TEST_P(echo_driver_test, refused_connect_is_reported_with_its_errno) {
  fd_leak_guard guard;
  // Bound, never listening: connects are refused.
  auto fd = open_socket(endpoint::parse("tcp://127.0.0.1:0"), io_mode::blocking);
  auto any = endpoint::parse("tcp://127.0.0.1:0");
  ASSERT_EQ(::bind(fd.get(), any.addr(), any.length()), 0);
  auto plans = one_plan(5, 0);
  plans.push_back(plans[0]);
  plans[1].rcvbuf = 8192;  // the driver's own connect
  auto r = run(local_endpoint(fd.get(), transport::tcp), plans);
  EXPECT_EQ(r.results[0].err, ECONNREFUSED);
  EXPECT_EQ(r.results[1].err, ECONNREFUSED);
  EXPECT_NE(r.problems(plans).find("2 of 2 clients failed"), std::string::npos)
      << r.problems(plans);
  EXPECT_NE(r.problems(plans).find("ECONNREFUSED"), std::string::npos) << r.problems(plans);
}

TEST_P(echo_driver_test, differing_echo_is_caught_at_its_offset_with_detail) {
  fd_leak_guard guard;
  auto plans = one_plan(50, 0);
  bool first = true;
  auto r = run_against(
      [&](int fd) {
        echo_until_eof(fd, [&](std::span<std::byte> chunk) {
          if (std::exchange(first, false) && chunk.size() > 5)
            chunk[5] = std::byte{1};  // never in a line stream
        });
      },
      plans);
  ASSERT_TRUE(r.results[0].mismatch_at);
  EXPECT_EQ(*r.results[0].mismatch_at, 5u);
  EXPECT_NE(r.results[0].mismatch_detail.find("from byte 0: expected"), std::string::npos)
      << r.results[0].mismatch_detail;
  EXPECT_NE(r.problems(plans).find("echo differs at byte 5"), std::string::npos);
}

TEST_P(echo_driver_test, early_close_is_reported) {
  fd_leak_guard guard;
  auto plans = one_plan(2000, 0);
  auto r = run_against(
      [](int fd) {
        // Echo the first chunk only, then close.
        std::array<std::byte, 100> buf;
        send_all(fd, std::span(buf).first(take_first(fd, buf)));
      },
      plans);
  auto problems = r.problems(plans);
  EXPECT_FALSE(r.timed_out);
  EXPECT_LT(r.results[0].received, plans[0].total());
  // EOF, or a reset when our data reached the closed socket first.
  EXPECT_TRUE(r.results[0].eof || r.results[0].err == ECONNRESET) << problems;
  EXPECT_NE(problems.find("received "), std::string::npos) << problems;
}

TEST_P(echo_driver_test, reset_is_reported_as_econnreset) {
  fd_leak_guard guard;
  auto plans = one_plan(2000, 0);
  auto r = run_against(
      [](int fd) {
        std::array<std::byte, 100> buf;
        take_first(fd, buf);
        set_reset_on_close(fd);
      },
      plans);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.results[0].err, ECONNRESET) << r.problems(plans);
  EXPECT_NE(r.problems(plans).find("ECONNRESET"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(all, echo_driver_test, every_backend(), param_name{});

}  // namespace
}  // namespace netkit::test
