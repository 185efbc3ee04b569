// The stream models that are not event loops (issue 10): iterative, fork, thread,
// nonblocking and aio, each through the real `netkit echo-server`, on the echo matrix the
// event-loop models run (exact echoes in random splits for every codec, 100 concurrent
// clients, resets mid-message, half-close, an oversize frame, a slow reader, churn, unix://
// and SIGTERM), then what is particular to each: the iterative server's one client at a
// time, the fork server's descriptors, reaping and --sigchld, the spin of nonblocking and
// the thread pool under aio. No test leaves a process behind: every child the server had
// is gone once it stopped. (The thread model's own cases, run under TSan too, are in
// test_thread_model.cpp.)
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <iostream>
#include <thread>

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "netkit/codec/codec.hpp"
#include "netkit/socket.hpp"
#include "support/backend_params.hpp"
#include "support/client_io.hpp"
#include "support/echo_driver.hpp"
#include "support/fd_leak_guard.hpp"
#include "support/process_tree.hpp"
#include "support/server_process.hpp"

namespace netkit::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing::HasSubstr;

const std::vector<std::string> models = {"iterative", "fork", "thread", "nonblocking", "aio"};

// The arguments each model runs with here. nonblocking sleeps 1 ms after an idle pass, so
// that the suite does not spin a core for minutes (its pure spin has its own case).
server_config model_config(const std::string& model, std::string codec,
                           std::vector<std::string> extra = {}) {
  server_config c;
  c.model = model;
  c.codec = std::move(codec);
  c.extra_args = std::move(extra);
  if (model == "nonblocking") {
    c.extra_args.push_back("--poll-interval");
    c.extra_args.push_back("1000");
  }
  // ASan keeps freed blocks resident in its quarantine; keep it small so RSS bounds mean
  // the same in every build (as test_server_connection does).
  if (sanitized_build) c.env.push_back("ASAN_OPTIONS=quarantine_size_mb=1:detect_leaks=1");
  return c;
}

// SIGTERM → exit 0 within 10 s, and every process the server had started is gone.
void expect_clean_stop(server_process& server) {
  auto children = children_of(server.pid());
  auto status = server.terminate();
  ASSERT_TRUE(status) << "echo-server did not stop within 10 s of SIGTERM";
  EXPECT_TRUE(status->exited_normally()) << status->describe() << "\n" << server.log();
  for (pid_t c : children) {
    errno = 0;
    EXPECT_EQ(::kill(c, 0), -1) << "child " << c << " outlived the server";
    EXPECT_EQ(errno, ESRCH);
  }
}

using model_codec = std::tuple<std::string, std::string>;

class stream_model_codec_test : public testing::TestWithParam<model_codec> {
 protected:
  const std::string& model() const { return std::get<0>(GetParam()); }
  server_config config() const { return model_config(model(), std::get<1>(GetParam())); }
  codec_spec spec() const { return codec_spec::parse(std::get<1>(GetParam())); }
};

TEST_P(stream_model_codec_test, one_client_random_splits_exact_echo) {
  fd_leak_guard guard;
  server_process server(config());
  EXPECT_THAT(server.banner(), HasSubstr("model=" + model() + " codec="));
  auto p = make_echo_plans(spec(), 1, 300, 3000, 97, 1);
  auto run = run_echo_clients(server.local(), p, deadline_after(stretch(30s)), 11);
  EXPECT_EQ(run.problems(p), "");
  expect_clean_stop(server);
}

// 100 clients at once. The iterative server serves them one after the other (the rest
// wait in the backlog); every other model serves them side by side.
TEST_P(stream_model_codec_test, hundred_concurrent_clients_random_splits_exact_echo) {
  fd_leak_guard guard;
  server_process server(config());
  auto p = make_echo_plans(spec(), 100, scaled(40, 15), 1500, 61, 2);
  auto run = run_echo_clients(server.local(), p, deadline_after(stretch(90s)), 12);
  EXPECT_FALSE(run.timed_out);
  EXPECT_EQ(run.problems(p), "");
  EXPECT_TRUE(server.alive());
  expect_clean_stop(server);
}

// Case 10: clients that reset in the middle of a frame, and one that resets while the
// server holds output for it, disturb no one; their descriptors are closed.
TEST_P(stream_model_codec_test, reset_mid_message_does_not_disturb_others) {
  fd_leak_guard guard;
  server_process server(config());
  auto baseline_fds = server.sample().fds;
  auto good = make_echo_plans(spec(), 10, scaled(200, 60), 1500, 41, 3);
  echo_run good_run;
  std::thread driver(
      [&] { good_run = run_echo_clients(server.local(), good, deadline_after(stretch(60s)), 13); });
  EXPECT_GT(stage_resets_mid_message(server.local(), spec(), 4), 0u);
  driver.join();
  EXPECT_EQ(good_run.problems(good), "");
  EXPECT_TRUE(
      eventually([&] { return server.sample().fds == baseline_fds; }, deadline_after(stretch(10s))))
      << "descriptors: " << server.sample().fds << ", before: " << baseline_fds;
  EXPECT_TRUE(
      eventually([&] { return children_of(server.pid()).empty(); }, deadline_after(stretch(10s))));
  auto again = make_echo_plans(spec(), 1, 20, 500, 0, 5);
  EXPECT_EQ(
      run_echo_clients(server.local(), again, deadline_after(stretch(10s)), 14).problems(again),
      "");
  expect_clean_stop(server);
}

// Case 11: write everything, shut down the write side, read to EOF: every byte comes
// back, then EOF. 32 MiB for raw, 4 MiB of frames otherwise (less under sanitizers).
TEST_P(stream_model_codec_test, half_close_delivers_all_pending_output_then_eof) {
  fd_leak_guard guard;
  server_process server(config());
  bool raw = spec().kind == codec_kind::raw;
  auto plan = make_half_close_plan(
      spec(), raw ? scaled(32u << 20, 8u << 20) : scaled(4u << 20, 1u << 20), 6);
  std::vector<echo_plan> p{plan};
  auto run = run_echo_clients(server.local(), p, deadline_after(stretch(90s)), 15);
  EXPECT_EQ(run.problems(p), "");
  EXPECT_EQ(run.results[0].received, plan.total());
  EXPECT_TRUE(run.results[0].eof);
  expect_clean_stop(server);
}

INSTANTIATE_TEST_SUITE_P(all, stream_model_codec_test,
                         testing::Combine(testing::ValuesIn(models),
                                          testing::ValuesIn(codec_names())),
                         [](const auto& p) {
                           return sanitize_name(std::get<0>(p.param) + "_" + std::get<1>(p.param));
                         });

class stream_model_test : public testing::TestWithParam<std::string> {
 protected:
  server_config config(std::string codec, std::vector<std::string> extra = {}) const {
    return model_config(GetParam(), std::move(codec), std::move(extra));
  }
};

// An oversize length header closes that connection only, with a log line naming it.
TEST_P(stream_model_test, oversize_frame_closes_only_that_client) {
  fd_leak_guard guard;
  server_process server(config("length,max=1024"));
  auto good = connect_client(server.local());
  const unsigned char frame[7] = {0, 0, 0, 3, 'a', 'b', 'c'};
  auto frame_bytes = std::as_bytes(std::span(frame));
  if (GetParam() != "iterative") {  // the iterative server is busy with `good` until it leaves
    send_all(good.get(), frame_bytes);
    ASSERT_EQ(read_exactly(good.get(), sizeof frame, deadline_after(stretch(5s))).end,
              read_end::data);
  } else {
    good.reset();
  }
  auto bad = connect_client(server.local());
  const unsigned char header[4] = {0x00, 0x10, 0x00, 0x00};  // 1 MiB > max=1024
  send_all(bad.get(), std::as_bytes(std::span(header)));
  auto closed = wait_for_close(bad.get(), deadline_after(stretch(5s)));
  EXPECT_TRUE(closed.end == read_end::eof || closed.end == read_end::reset)
      << to_string(closed.end);
  auto bad_uri = local_endpoint(bad.get(), transport::tcp).to_uri();
  EXPECT_TRUE(eventually([&] { return server.log().find(bad_uri) != std::string::npos; },
                         deadline_after(stretch(5s))));
  EXPECT_THAT(server.log(), HasSubstr("closing " + bad_uri + ": protocol error"));
  // Everyone else is still served (for iterative: the next client).
  if (!good) good = connect_client(server.local());
  send_all(good.get(), frame_bytes);
  auto echo = read_exactly(good.get(), sizeof frame, deadline_after(stretch(5s)));
  EXPECT_EQ(echo.end, read_end::data);
  EXPECT_EQ(echo.bytes, std::vector<std::byte>(frame_bytes.begin(), frame_bytes.end()));
  good.reset();
  expect_clean_stop(server);
}

// Case 8: a peer with a small SO_RCVBUF reads 1 KiB every 10 ms for 2 s while MiBs are
// echoed, then at full speed: everything arrives in order, and no process of the server
// grows by more than a few MiB (the blocking models hold one read's replies; nonblocking
// stops reading at --high-water; aio writes one read's replies before reading again).
TEST_P(stream_model_test, slow_reader_gets_everything_in_order_with_bounded_memory) {
  fd_leak_guard guard;
  std::vector<std::string> extra;
  if (GetParam() == "nonblocking") extra = {"--high-water", std::to_string(256 << 10)};
  server_process server(config("raw", extra));
  echo_plan plan;
  std::mt19937_64 rng(21);
  plan.block = std::make_shared<std::vector<std::byte>>(
      make_framed_stream(codec_spec::parse("raw"), rng, 1, 1 << 20));
  plan.repeat = scaled(16, 4);
  plan.rcvbuf = 4096;
  plan.slow_for = 2s;
  std::vector<echo_plan> plans{plan};
  auto rss0 = server.sample().rss_kib;
  long rss_max = rss0;
  auto run = run_echo_clients(server.local(), plans, deadline_after(stretch(60s)), 22, "epoll",
                              [&] { rss_max = std::max(rss_max, max_tree_rss_kib(server.pid())); });
  EXPECT_EQ(run.problems(plans), "");
  EXPECT_LT(rss_max - rss0, 8 * 1024)
      << "server RSS grew from " << rss0 << " to " << rss_max << " KiB for one slow reader";
  expect_clean_stop(server);
}

// Case 12, scaled: 2,000 connect-then-close clients, half of them sending a line first:
// the server's descriptors (and, for fork, its children) return to the baseline.
TEST_P(stream_model_test, churn_of_2000_connections_leaks_no_descriptor) {
  fd_leak_guard guard;
  server_process server(config("line"));
  auto base = server.sample().fds;
  const int cycles = static_cast<int>(scaled(2000, 600));
  for (int i = 0; i < cycles; ++i) {
    auto fd = connect_client(server.local());
    if (i % 2 == 1) send_all(fd.get(), "bye\n");
  }
  EXPECT_TRUE(
      eventually([&] { return server.sample().fds == base && children_of(server.pid()).empty(); },
                 deadline_after(stretch(30s))))
      << "descriptors " << base << " -> " << server.sample().fds << ", children "
      << children_of(server.pid()).size();
  EXPECT_LT(server.log().size(), 2048u) << "log flood:\n" << server.log().substr(0, 2048);
  auto fd = connect_client(server.local());
  EXPECT_EQ(line_round_trip(fd.get(), "still serving", deadline_after(stretch(10s))), "");
  fd.reset();
  expect_clean_stop(server);
}

// SIGTERM with a client idle, one in the middle of a frame and one that sends without
// ever reading (the server is blocked writing to it, or holds output for it): exit 0
// within a few seconds, every connection closed, nothing left running.
TEST_P(stream_model_test, sigterm_stops_cleanly_with_clients_connected) {
  fd_leak_guard guard;
  server_process server(config("line"));
  auto hog = connect_client(server.local());
  set_recv_buffer(hog.get(), 4096);
  set_nonblocking(hog.get(), true);
  std::string lines;
  for (int i = 0; i < 1000; ++i)
    lines += "a line that is echoed to a client that never reads\n";
  auto until = deadline_after(1s);
  while (clock::now() < until) {  // bounded: 1 s of pushing
    if (::send(hog.get(), lines.data(), lines.size(), MSG_NOSIGNAL) < 0)
      std::this_thread::sleep_for(5ms);
  }
  auto idle = connect_client(server.local());
  if (GetParam() != "iterative") {  // busy with the hog
    ASSERT_EQ(line_round_trip(idle.get(), "hi", deadline_after(stretch(5s))), "");
  }
  auto partial = connect_client(server.local());
  send_all(partial.get(), "no newline yet");
  std::this_thread::sleep_for(100ms);
  auto start = clock::now();
  expect_clean_stop(server);
  EXPECT_LT(clock::now() - start, stretch(4s)) << "a connection held up the shutdown";
  EXPECT_NE(wait_for_close(idle.get(), deadline_after(stretch(5s))).end, read_end::timeout);
  EXPECT_NE(wait_for_close(partial.get(), deadline_after(stretch(5s))).end, read_end::timeout);
}

// unix:// serves the same echo, and the socket file is gone after the stop.
TEST_P(stream_model_test, unix_socket_echo_and_file_removed_on_exit) {
  fd_leak_guard guard;
  auto dir = fs::temp_directory_path() /
             fmt::format("netkit-models-{}-{}", ::getpid(), sanitize_name(GetParam()));
  fs::create_directories(dir);
  auto path = dir / "echo.sock";
  auto cfg = config("length");
  cfg.listen = "unix://" + path.string();
  {
    server_process server(cfg);
    EXPECT_EQ(server.uri(), cfg.listen);
    auto p = make_echo_plans(codec_spec::parse("length"), 8, 64, 700, 300, 3);
    auto run = run_echo_clients(server.local(), p, deadline_after(stretch(30s)), 3);
    EXPECT_EQ(run.problems(p), "");
    expect_clean_stop(server);
  }
  EXPECT_FALSE(fs::exists(fs::symlink_status(path))) << "socket file left behind";
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(all, stream_model_test, testing::ValuesIn(models), param_name{});

// ---- iterative ------------------------------------------------------------------------

// One client at a time: a second client connects (the backlog) but gets its echo only
// once the first has left; clients one after another are all served in turn.
TEST(iterative_model, second_client_waits_in_the_backlog_until_the_first_leaves) {
  fd_leak_guard guard;
  server_process server(model_config("iterative", "line"));
  auto first = connect_client(server.local());
  ASSERT_EQ(line_round_trip(first.get(), "first", deadline_after(stretch(5s))), "");
  auto second = connect_client(server.local());  // completes: the kernel's backlog
  send_all(second.get(), "second\n");
  auto early = read_line(second.get(), deadline_after(300ms));
  EXPECT_EQ(early.end, read_end::timeout) << "served while the first client was: " << early.text();
  first.reset();
  auto r = read_line(second.get(), deadline_after(stretch(5s)));
  EXPECT_EQ(r.text(), "second\n");
  second.reset();
  for (int i = 0; i < 20; ++i) {
    auto c = connect_client(server.local());
    ASSERT_EQ(line_round_trip(c.get(), fmt::format("client {}", i), deadline_after(stretch(5s))),
              "");
  }
  expect_clean_stop(server);
}

TEST(iterative_model, help_and_list_say_a_second_client_waits_in_the_backlog) {
  child_process list(echo_server_command({"--list-models"}));
  std::string out;
  auto until = deadline_after(stretch(10s));
  while (auto line = list.read_line(until))
    out += *line + "\n";
  ASSERT_TRUE(list.wait(until));
  for (const auto& m : models)
    EXPECT_THAT(out, HasSubstr("  " + m + " ")) << out;
  EXPECT_THAT(out, HasSubstr("one client at a time, the others wait in the listen backlog"));
  EXPECT_THAT(out, HasSubstr("one process per client"));
  EXPECT_THAT(out, HasSubstr("one thread (and stack) per client"));
  EXPECT_THAT(out, HasSubstr("burns a core even when idle"));
  EXPECT_THAT(out, HasSubstr("thread pool"));
  EXPECT_THAT(out, HasSubstr("FD_SETSIZE"));

  child_process help(echo_server_command({"--help"}));
  std::string text;
  until = deadline_after(stretch(10s));
  while (auto line = help.read_line(until))
    text += *line + "\n";
  ASSERT_TRUE(help.wait(until));
  EXPECT_THAT(text, HasSubstr("wait in the listen backlog"));
  EXPECT_THAT(text, HasSubstr("SIG_IGN"));
  EXPECT_THAT(text, HasSubstr("--poll-interval"));
  EXPECT_THAT(text, HasSubstr("Microseconds"));
}

// ---- fork -----------------------------------------------------------------------------

// The parent closes its copy of every accepted socket: with 10 clients being served, its
// only socket is the listener; each child holds its connection and not the listener.
TEST(fork_model, parent_holds_no_descriptor_of_a_served_connection) {
  fd_leak_guard guard;
  server_process server(model_config("fork", "line"));
  EXPECT_THAT(server.banner(), HasSubstr("sigchld=reap"));
  EXPECT_EQ(socket_count(server.pid()), 1u);
  std::vector<unique_fd> clients;
  for (int i = 0; i < 10; ++i) {
    clients.push_back(connect_client(server.local()));
    ASSERT_EQ(line_round_trip(clients.back().get(), "hi", deadline_after(stretch(5s))), "");
  }
  // The child may answer before the parent has closed its copy (right after fork): give
  // the parent a moment; a kept descriptor would stay.
  EXPECT_TRUE(
      eventually([&] { return socket_count(server.pid()) == 1u; }, deadline_after(stretch(2s))))
      << "the parent kept " << socket_count(server.pid()) - 1 << " connected sockets";
  auto kids = children_of(server.pid());
  EXPECT_EQ(kids.size(), 10u);
  for (pid_t c : kids)
    EXPECT_EQ(socket_count(c), 1u) << "child " << c << " holds the listener or another socket";
  clients.clear();
  EXPECT_TRUE(
      eventually([&] { return children_of(server.pid()).empty(); }, deadline_after(stretch(10s))));
  expect_clean_stop(server);
}

// Case 18: 200 children exit at once (their 200 clients close together) → every one is
// reaped (no child, zombie or not, within 5 s), the listener keeps accepting, and accept
// interrupted by SIGCHLD carried on.
void two_hundred_exits_leave_no_zombie(const std::string& sigchld) {
  fd_leak_guard guard;
  server_process server(model_config("fork", "line", {"--sigchld", sigchld}));
  EXPECT_THAT(server.banner(), HasSubstr("sigchld=" + sigchld));
  const std::size_t n = scaled(200, 100);
  std::vector<unique_fd> clients;
  for (std::size_t i = 0; i < n; ++i) {
    clients.push_back(connect_client(server.local()));
    ASSERT_EQ(line_round_trip(clients.back().get(), "x", deadline_after(stretch(10s))), "") << i;
  }
  EXPECT_EQ(children_of(server.pid()).size(), n);
  clients.clear();  // every child sees EOF and exits within the same moment
  // Not sampled at a fixed instant: the children exit over a while on a loaded machine
  // (ASan teardown), and one that just exited is a zombie until the parent's next waitpid
  // loop. A zombie is still a child, so "no child left" means every one was reaped.
  EXPECT_TRUE(
      eventually([&] { return children_of(server.pid()).empty(); }, deadline_after(stretch(5s))))
      << children_of(server.pid()).size() << " children left, " << zombie_children(server.pid())
      << " zombies";
  EXPECT_EQ(zombie_children(server.pid()), 0);
  auto c = connect_client(server.local());
  EXPECT_EQ(line_round_trip(c.get(), "still accepting", deadline_after(stretch(5s))), "");
  c.reset();
  expect_clean_stop(server);
  if (sigchld == "reap") {
    EXPECT_THAT(server.log(), HasSubstr(fmt::format("reaped (waitpid loop)")));
    EXPECT_THAT(server.log(), testing::Not(HasSubstr(" 0 accepts interrupted")))
        << "no SIGCHLD interrupted the blocking accept:\n"
        << server.log();
  } else {
    EXPECT_THAT(server.log(), HasSubstr("reaped (by the kernel)"));
  }
}

TEST(fork_model, two_hundred_simultaneous_exits_leave_no_zombie_with_the_waitpid_loop) {
  two_hundred_exits_leave_no_zombie("reap");
}

TEST(fork_model, two_hundred_simultaneous_exits_leave_no_zombie_with_sigchld_ignored) {
  two_hundred_exits_leave_no_zombie("ignore");
}

// --max-conns caps the live children: the extra client is refused (closed) with a log
// line, and once a child has ended a new client is served.
// --sigchld ignore tracks each live child by a pidfd, one parent descriptor per child: at
// RLIMIT_NOFILE the parent stops accepting (EMFILE, said once in the log), the extra
// client waits in the backlog, and is served as soon as a child has ended.
TEST(fork_model, sigchld_ignore_at_the_descriptor_limit_pauses_accepts_and_recovers) {
  fd_leak_guard guard;
  auto cfg = model_config("fork", "line", {"--sigchld", "ignore"});
  cfg.nofile_limit = 24;
  server_process server(cfg);
  std::vector<unique_fd> clients;
  // Until the parent is out of descriptors (bounded: the limit is 24).
  for (int i = 0; i < 30; ++i) {
    clients.push_back(connect_client(server.local()));
    if (!line_round_trip(clients.back().get(), "hi", deadline_after(stretch(2s))).empty()) break;
  }
  ASSERT_LT(clients.size(), 30u) << "the parent should run out of descriptors below 30 children";
  EXPECT_TRUE(eventually([&] { return server.log().find("EMFILE") != std::string::npos; },
                         deadline_after(stretch(5s))))
      << server.log();
  const auto waiting = std::move(clients.back());
  clients.pop_back();
  clients.erase(clients.begin());  // a child ends: its pidfd is freed
  // The waiting client's line was sent before; its echo comes once it is accepted.
  auto r = read_line(waiting.get(), deadline_after(stretch(5s)));
  EXPECT_EQ(r.end, read_end::data) << to_string(r.end);
  EXPECT_EQ(r.text(), "hi\n");
  expect_clean_stop(server);
}

TEST(fork_model, max_conns_refuses_the_extra_client_and_recovers) {
  fd_leak_guard guard;
  server_process server(model_config("fork", "line", {"--max-conns", "3"}));
  std::vector<unique_fd> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(connect_client(server.local()));
    ASSERT_EQ(line_round_trip(clients.back().get(), "in", deadline_after(stretch(5s))), "");
  }
  auto extra = connect_client(server.local());
  auto r = wait_for_close(extra.get(), deadline_after(stretch(5s)));
  EXPECT_TRUE(r.end == read_end::eof || r.end == read_end::reset) << to_string(r.end);
  EXPECT_THAT(server.log(), HasSubstr("(--max-conns 3 reached; 1 refused so far)"));
  clients.pop_back();
  EXPECT_TRUE(eventually([&] { return children_of(server.pid()).size() == 2; },
                         deadline_after(stretch(5s))));
  // The parent learns of the exit at its next wake-up (SIGCHLD or the accept timeout).
  auto again = connect_client(server.local());
  EXPECT_EQ(line_round_trip(again.get(), "served", deadline_after(stretch(5s))), "");
  expect_clean_stop(server);
}

// SIGTERM stops the parent and every child, busy or idle, with either --sigchld.
TEST(fork_model, sigterm_stops_every_child_with_either_sigchld_mode) {
  for (const char* mode : {"reap", "ignore"}) {
    fd_leak_guard guard;
    server_process server(model_config("fork", "line", {"--sigchld", mode}));
    std::vector<unique_fd> clients;
    for (int i = 0; i < 5; ++i) {
      clients.push_back(connect_client(server.local()));
      ASSERT_EQ(line_round_trip(clients.back().get(), "hi", deadline_after(stretch(5s))), "");
    }
    auto kids = children_of(server.pid());
    ASSERT_EQ(kids.size(), 5u) << mode;
    expect_clean_stop(server);
    for (auto& c : clients)
      EXPECT_NE(wait_for_close(c.get(), deadline_after(stretch(5s))).end, read_end::timeout)
          << mode;
  }
}

// ---- nonblocking ----------------------------------------------------------------------

// Without --poll-interval the loop never sleeps: with no client at all it burns CPU;
// with --poll-interval 1000 (1 ms) it hardly does. It still stops at once on SIGTERM.
TEST(nonblocking_model, pure_spin_burns_cpu_when_idle_and_poll_interval_does_not) {
  fd_leak_guard guard;
  server_config spin;
  spin.model = "nonblocking";
  {
    server_process server(spin);
    EXPECT_THAT(server.banner(), HasSubstr("poll-interval=0us"));
    auto cpu0 = server.sample().cpu;
    std::this_thread::sleep_for(1s);
    auto cpu = server.sample().cpu - cpu0;
    // One core flat out is ~1 s; on a busy shared machine (2 cores) still a good part.
    EXPECT_GT(cpu, 100ms) << "an idle pure-spin server should burn CPU";
    auto start = clock::now();
    expect_clean_stop(server);
    EXPECT_LT(clock::now() - start, stretch(2s));
  }
  {
    server_process server(model_config("nonblocking", "line"));
    EXPECT_THAT(server.banner(), HasSubstr("poll-interval=1000us"));
    auto cpu0 = server.sample().cpu;
    std::this_thread::sleep_for(1s);
    auto cpu = server.sample().cpu - cpu0;
    EXPECT_LT(cpu, 150ms) << "--poll-interval 1000 should sleep when idle";
    auto c = connect_client(server.local());
    EXPECT_EQ(line_round_trip(c.get(), "awake", deadline_after(stretch(5s))), "");
    c.reset();
    expect_clean_stop(server);
  }
}

// --busy-poll on the event-loop models: the banner says it, the server echoes, and idle it
// sleeps once the window has passed (a busy poll is not a spin).
TEST(event_loop_models, busy_poll_echoes_and_sleeps_when_idle) {
  fd_leak_guard guard;
  for (std::string model : {"epoll", "uring"}) {
    if (auto problem = backend_problem(model)) {
      std::cout << model << " skipped: " << *problem << "\n";
      continue;
    }
    server_config c;
    c.model = model;
    c.codec = "line";
    c.extra_args = {"--busy-poll", "200"};
    server_process server(c);
    EXPECT_THAT(server.banner(), HasSubstr(" busy-poll=200us ")) << model;
    auto client = connect_client(server.local());
    EXPECT_EQ(line_round_trip(client.get(), "polled", deadline_after(stretch(5s))), "") << model;
    auto cpu0 = server.sample().cpu;
    std::this_thread::sleep_for(1s);
    auto cpu = server.sample().cpu - cpu0;
    EXPECT_LT(cpu, 150ms) << model << ": an idle busy-polling server should sleep";
    client.reset();
    expect_clean_stop(server);
  }
}

// --idle-timeout: a peer that half-closes and never reads its replies would otherwise be
// kept forever (its replies cannot leave). It is closed after the timeout, with a log line
// that says how much was left unread, and the server serves the next client.
TEST(nonblocking_model, idle_timeout_closes_a_half_closed_peer_that_never_reads) {
  fd_leak_guard guard;
  // A high-water mark above the burst: the server reads all of it, and the FIN.
  server_process server(model_config(
      "nonblocking", "line", {"--idle-timeout", "0.3", "--high-water", "67108864", "--verbose"}));
  auto hog = open_socket(server.local(), io_mode::blocking);
  set_recv_buffer(hog.get(), 4096);
  ASSERT_EQ(::connect(hog.get(), server.local().addr(), server.local().length()), 0);
  // 16 MiB of lines: far more than the client's small receive buffer and the server's
  // send buffer (at most 4 MiB by default) take, so replies stay queued in the server.
  const std::string line(1023, 'x');
  std::string burst;
  for (int i = 0; i < 16384; ++i)
    burst += line + "\n";
  std::thread writer([&] {
    // Until all is sent or the server closes (then the send fails: that is the point).
    std::string_view left = burst;
    while (!left.empty()) {
      ssize_t n = ::send(hog.get(), left.data(), left.size(), MSG_NOSIGNAL);
      if (n <= 0) return;
      left.remove_prefix(static_cast<std::size_t>(n));
    }
    ::shutdown(hog.get(), SHUT_WR);
  });
  EXPECT_TRUE(eventually([&] { return server.log().find("idle for 300 ms") != std::string::npos; },
                         deadline_after(stretch(10s))))
      << server.log();
  writer.join();
  EXPECT_THAT(server.log(), HasSubstr("bytes of replies unread"));
  auto next = connect_client(server.local());
  EXPECT_EQ(line_round_trip(next.get(), "next", deadline_after(stretch(5s))), "");
  expect_clean_stop(server);
}

// ---- aio ------------------------------------------------------------------------------

// A pending aio_read on an idle socket holds one glibc thread: with --aio-threads 2 and
// two idle clients, a third client's echo waits until one of them leaves.
TEST(aio_model, a_pool_smaller_than_the_clients_stalls_the_extra_client) {
  fd_leak_guard guard;
  server_process server(model_config("aio", "line", {"--max-conns", "8", "--aio-threads", "2"}));
  EXPECT_THAT(server.banner(), HasSubstr("max-conns=8 aio-threads=2"));
  auto idle1 = connect_client(server.local());
  auto idle2 = connect_client(server.local());
  ASSERT_EQ(line_round_trip(idle1.get(), "a", deadline_after(stretch(5s))), "");
  ASSERT_EQ(line_round_trip(idle2.get(), "b", deadline_after(stretch(5s))), "");
  auto third = connect_client(server.local());
  send_all(third.get(), "third\n");
  auto early = read_line(third.get(), deadline_after(500ms));
  EXPECT_EQ(early.end, read_end::timeout)
      << "served with every pool thread blocked: " << early.text();
  idle1.reset();
  auto r = read_line(third.get(), deadline_after(stretch(5s)));
  EXPECT_EQ(r.text(), "third\n");
  third.reset();
  idle2.reset();
  expect_clean_stop(server);
}

// The pool in the open: 20 idle clients hold 20 threads blocked in read(2).
TEST(aio_model, each_idle_client_holds_a_pool_thread) {
  fd_leak_guard guard;
  server_process server(model_config("aio", "line", {"--max-conns", "64"}));
  const auto base = thread_count(server.pid());
  std::vector<unique_fd> clients;
  for (int i = 0; i < 20; ++i) {
    clients.push_back(connect_client(server.local()));
    ASSERT_EQ(line_round_trip(clients.back().get(), "hi", deadline_after(stretch(5s))), "");
  }
  EXPECT_TRUE(eventually([&] { return thread_count(server.pid()) >= base + 20; },
                         deadline_after(stretch(5s))))
      << thread_count(server.pid()) << " threads for 20 idle clients";
  clients.clear();
  expect_clean_stop(server);
}

TEST(aio_model, datagram_transports_are_refused_by_name) {
  child_process c(echo_server_command({"--listen", "udp://127.0.0.1:0", "--model", "aio"}));
  auto st = c.wait(deadline_after(stretch(10s)));
  ASSERT_TRUE(st);
  EXPECT_EQ(st->code, 1);
  EXPECT_THAT(c.stderr_text(),
              HasSubstr("--model aio serves tcp:// and unix:// (stream), not udp://127.0.0.1:0"));
}

}  // namespace
}  // namespace netkit::test
