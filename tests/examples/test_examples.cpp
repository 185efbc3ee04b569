// The programs in examples/ run as a user runs them: the chat server on port 0 with two
// chat clients fed through their stdin and a raw socket watching the room; the echo server
// with the echo client. Every process must exit cleanly (status 0) and be reaped.
#include <signal.h>
#include <sys/socket.h>

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "netkit/socket.hpp"
#include "support/child_process.hpp"
#include "support/client_io.hpp"
#include "support/fd_leak_guard.hpp"

namespace netkit::test {
namespace {

using namespace std::chrono_literals;

std::string example(const char* name) {
  return std::string(NETKIT_EXAMPLES_DIR) + "/" + name;
}

// A server example started on port 0; its address comes from its first line.
struct example_server {
  explicit example_server(const char* name)
      : process(child_options{{example(name), "--listen", "tcp://127.0.0.1:0"}}) {
    auto line = process.read_line(deadline_after(stretch(10s)));
    if (!line || !line->starts_with("listening on "))
      throw std::runtime_error(std::string(name) + " did not start: " + process.stderr_text());
    uri = line->substr(std::string_view("listening on ").size());
  }
  child_process process;
  std::string uri;
};

// A chat client whose stdin the test writes.
child_options chat_client(const std::string& uri) {
  child_options o{{example("chat_client"), uri}};
  o.stdin_from = child_options::input::pipe;
  return o;
}

// Every line `child` prints until it exits (bounded by the deadline).
std::vector<std::string> rest_of_output(child_process& child, deadline until) {
  std::vector<std::string> lines;
  while (auto line = child.read_line(until))
    lines.push_back(*line);
  return lines;
}

// The next line the room sends to a raw socket, without its '\n'.
std::string next_line(int fd) {
  auto r = read_line(fd, deadline_after(stretch(10s)));
  EXPECT_EQ(r.end, read_end::data) << "room line: " << to_string(r.end);
  auto text = r.text();
  if (!text.empty()) text.pop_back();
  return text;
}

std::string address_of(const std::string& notice, std::string_view suffix) {
  EXPECT_TRUE(notice.ends_with(suffix)) << notice;
  return notice.substr(0, notice.size() - std::min(notice.size(), suffix.size()));
}

void expect_clean_exit(child_process& child, const char* what) {
  auto status = child.wait(deadline_after(stretch(10s)));
  ASSERT_TRUE(status) << what << " did not exit; stderr:\n" << child.stderr_text();
  EXPECT_TRUE(status->exited_normally()) << what << ": " << status->describe() << "; stderr:\n"
                                         << child.stderr_text();
}

TEST(examples, chat_line_reaches_every_other_client_once_and_not_the_sender) {
  fd_leak_guard guard;
  example_server server("chat_server");
  // A raw socket in the room first: it hears each join, which tells each client's address.
  auto watcher = connect_client(endpoint::parse(server.uri));

  child_process alice(chat_client(server.uri));
  const auto alice_addr = address_of(next_line(watcher.get()), " joined");
  child_process bob(chat_client(server.uri));
  const auto bob_addr = address_of(next_line(watcher.get()), " joined");
  // Alice hears Bob join: both are in the room before anyone speaks.
  EXPECT_EQ(alice.read_line(deadline_after(stretch(10s))), bob_addr + " joined");

  alice.write_stdin("hello from alice\n");
  EXPECT_EQ(bob.read_line(deadline_after(stretch(10s))), alice_addr + ": hello from alice");
  EXPECT_EQ(next_line(watcher.get()), alice_addr + ": hello from alice");

  // End of Alice's stdin: she leaves after her line was delivered, having heard only Bob's
  // join (never her own line).
  alice.close_stdin();
  expect_clean_exit(alice, "alice");
  EXPECT_EQ(rest_of_output(alice, deadline_after(stretch(10s))), std::vector<std::string>{});
  EXPECT_EQ(bob.read_line(deadline_after(stretch(10s))), alice_addr + " left");
  EXPECT_EQ(next_line(watcher.get()), alice_addr + " left");

  // Bob says nothing and leaves: his output ends with Alice's leave (the line came once).
  bob.close_stdin();
  expect_clean_exit(bob, "bob");
  EXPECT_EQ(rest_of_output(bob, deadline_after(stretch(10s))), std::vector<std::string>{});
  EXPECT_EQ(next_line(watcher.get()), bob_addr + " left");

  ASSERT_TRUE(server.process.signal(SIGTERM));
  expect_clean_exit(server.process, "chat_server");
  EXPECT_EQ(wait_for_close(watcher.get(), deadline_after(stretch(10s))).end, read_end::eof);
}

TEST(examples, chat_client_sends_a_last_line_without_newline_and_exits_when_the_server_stops) {
  fd_leak_guard guard;
  example_server server("chat_server");
  auto watcher = connect_client(endpoint::parse(server.uri));
  child_process carol(chat_client(server.uri));
  const auto carol_addr = address_of(next_line(watcher.get()), " joined");
  carol.write_stdin("no newline");
  carol.close_stdin();
  EXPECT_EQ(next_line(watcher.get()), carol_addr + ": no newline");
  expect_clean_exit(carol, "carol");
  EXPECT_EQ(next_line(watcher.get()), carol_addr + " left");

  child_process dave(chat_client(server.uri));  // stdin left open: only the server ends it
  EXPECT_TRUE(next_line(watcher.get()).ends_with(" joined"));  // dave is in before the stop
  ASSERT_TRUE(server.process.signal(SIGTERM));
  expect_clean_exit(server.process, "chat_server");
  expect_clean_exit(dave, "dave");
}

TEST(examples, echo_client_verifies_every_echo) {
  fd_leak_guard guard;
  example_server server("echo_server");
  child_process client(child_options{{example("echo_client"), server.uri, "500"}});
  auto lines = rest_of_output(client, deadline_after(stretch(30s)));
  expect_clean_exit(client, "echo_client");
  EXPECT_EQ(lines, std::vector<std::string>{"500 messages echoed by " + server.uri});
  ASSERT_TRUE(server.process.signal(SIGTERM));
  expect_clean_exit(server.process, "echo_server");
}

TEST(examples, clients_report_a_refused_connect_and_exit_1) {
  fd_leak_guard guard;
  // Bound but not listening: a connect to it is refused, and no other test can take it.
  auto any = endpoint::parse("tcp://127.0.0.1:0");
  auto bound = open_socket(any, io_mode::blocking);
  ASSERT_EQ(::bind(bound.get(), any.addr(), any.length()), 0);
  auto uri = local_endpoint(bound.get(), transport::tcp).to_uri();
  for (const char* name : {"echo_client", "chat_client"}) {
    child_process client(child_options{{example(name), uri}});
    auto status = client.wait(deadline_after(stretch(10s)));
    ASSERT_TRUE(status) << name << " did not exit";
    EXPECT_EQ(status->code, 1) << name << ": " << status->describe();
    EXPECT_NE(client.stderr_text().find("ECONNREFUSED"), std::string::npos)
        << name << ": " << client.stderr_text();
  }
}

}  // namespace
}  // namespace netkit::test
