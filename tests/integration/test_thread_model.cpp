// `netkit echo-server --model thread` (a thread per connection) from the point of view
// of its threads: exact echoes with 100 clients side by side, every thread joined once
// its client leaves (no thread named netkit-conn is left), --max-conns refusing the extra
// client, and SIGTERM joining every thread. In NETKIT_THREADED_TESTS: under TSan the
// server itself is instrumented, so a data race in it fails these tests (ThreadSanitizer
// reports end the server with exit code 66, and the report is in its log).
#include <sys/socket.h>

#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "netkit/socket.hpp"
#include "support/client_io.hpp"
#include "support/echo_driver.hpp"
#include "support/fd_leak_guard.hpp"
#include "support/process_tree.hpp"
#include "support/server_process.hpp"

namespace netkit::test {
namespace {

using namespace std::chrono_literals;
using testing::HasSubstr;

server_config thread_config(std::vector<std::string> extra = {}) {
  server_config c;
  c.model = "thread";
  c.codec = "length";
  c.extra_args = std::move(extra);
  return c;
}

void expect_clean_stop(server_process& server) {
  auto status = server.terminate();
  ASSERT_TRUE(status) << "echo-server did not stop within 10 s of SIGTERM";
  EXPECT_TRUE(status->exited_normally()) << status->describe() << "\n" << server.log();
  EXPECT_THAT(server.log(), testing::Not(HasSubstr("ThreadSanitizer")));
}

// Connection threads of the server (named so by the thread model).
int connection_threads(server_process& server) {
  return static_cast<int>(thread_count(server.pid(), "netkit-conn"));
}

bool threads_become(server_process& server, int n, deadline until) {
  for (;;) {
    if (connection_threads(server) == n) return true;
    if (clock::now() >= until) return false;
    std::this_thread::sleep_for(10ms);
  }
}

TEST(thread_model, hundred_clients_side_by_side_then_every_thread_is_joined) {
  fd_leak_guard guard;
  server_process server(thread_config());
  std::mt19937_64 rng(31);
  std::vector<echo_plan> plans(100);
  for (auto& p : plans) {
    p.block = std::make_shared<std::vector<std::byte>>(
        make_framed_stream(codec_spec::parse("length"), rng, scaled(40, 10), 1500));
    p.max_split = 61;
  }
  int most = 0;
  auto run = run_echo_clients(server.local(), plans, deadline_after(stretch(60s)), 32, "epoll",
                              [&] { most = std::max(most, connection_threads(server)); });
  EXPECT_EQ(run.problems(plans), "");
  EXPECT_GT(most, 1) << "no two clients were ever served side by side";
  EXPECT_TRUE(threads_become(server, 0, deadline_after(stretch(10s))))
      << connection_threads(server) << " connection threads left after every client left";
  expect_clean_stop(server);
}

TEST(thread_model, max_conns_caps_the_threads_and_refuses_the_extra_client) {
  fd_leak_guard guard;
  server_process server(thread_config({"--max-conns", "4"}));
  std::vector<unique_fd> clients;
  for (int i = 0; i < 4; ++i) {
    clients.push_back(connect_client(server.local()));
    const unsigned char frame[5] = {0, 0, 0, 1, 'x'};
    send_all(clients.back().get(), std::as_bytes(std::span(frame)));
    ASSERT_EQ(read_exactly(clients.back().get(), 5, deadline_after(stretch(5s))).end,
              read_end::data);
  }
  EXPECT_EQ(connection_threads(server), 4);
  auto extra = connect_client(server.local());
  auto r = wait_for_close(extra.get(), deadline_after(stretch(5s)));
  EXPECT_TRUE(r.end == read_end::eof || r.end == read_end::reset) << to_string(r.end);
  EXPECT_THAT(server.log(), HasSubstr("(--max-conns 4 reached; 1 refused so far)"));
  EXPECT_EQ(connection_threads(server), 4);
  clients.clear();
  EXPECT_TRUE(threads_become(server, 0, deadline_after(stretch(10s))));
  expect_clean_stop(server);
}

// Threads busy with clients (one idle, one blocked writing to a client that does not
// read) are all stopped and joined on SIGTERM: exit 0 within a few seconds.
TEST(thread_model, sigterm_joins_every_thread_even_one_blocked_writing) {
  fd_leak_guard guard;
  server_config c = thread_config();
  c.codec = "raw";
  server_process server(c);
  auto idle = connect_client(server.local());
  send_all(idle.get(), "x");
  ASSERT_EQ(read_exactly(idle.get(), 1, deadline_after(stretch(5s))).end, read_end::data);
  auto hog = connect_client(server.local());
  set_recv_buffer(hog.get(), 4096);
  set_nonblocking(hog.get(), true);
  std::vector<std::byte> junk(64 << 10, std::byte{'j'});
  auto until = deadline_after(1s);
  while (clock::now() < until) {  // bounded: 1 s of pushing into a client that never reads
    if (::send(hog.get(), junk.data(), junk.size(), MSG_NOSIGNAL) < 0)
      std::this_thread::sleep_for(5ms);
  }
  // Nothing above waits for the server to accept the hog: its thread may come late.
  EXPECT_TRUE(threads_become(server, 2, deadline_after(stretch(5s))))
      << connection_threads(server) << " connection threads";
  auto start = clock::now();
  expect_clean_stop(server);
  EXPECT_LT(clock::now() - start, stretch(3s));
}

}  // namespace
}  // namespace netkit::test
