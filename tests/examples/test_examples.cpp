// The programs in examples/ run as a user runs them: the chat server on port 0 with two
// chat clients fed through their stdin and a raw socket watching the room; the echo server
// with the echo client. Every process must exit cleanly (status 0) and be reaped.
#include <signal.h>
#include <sys/socket.h>

#include <optional>
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

// A chat_server with a raw socket in the room from the start: it hears every line the room
// sends, and each join tells the address the new client is known by.
struct chat_room {
  example_server server{"chat_server"};
  unique_fd watcher = connect_client(endpoint::parse(server.uri));
  std::string heard() { return next_line(watcher.get()); }
};

// A chat client whose stdin the test writes, constructed once the room has announced it.
struct chat_member {
  explicit chat_member(chat_room& room)
      : process(chat_options(room.server.uri)), address(address_of(room.heard(), " joined")) {}
  static child_options chat_options(const std::string& uri) {
    child_options o{{example("chat_client"), uri}};
    o.stdin_from = child_options::input::pipe;
    return o;
  }
  std::optional<std::string> next_line() { return process.read_line(deadline_after(stretch(10s))); }
  child_process process;
  std::string address;
};

void expect_clean_exit(child_process& child, const char* what) {
  auto status = child.wait(deadline_after(stretch(10s)));
  ASSERT_TRUE(status) << what << " did not exit; stderr:\n" << child.stderr_text();
  EXPECT_TRUE(status->exited_normally()) << what << ": " << status->describe() << "; stderr:\n"
                                         << child.stderr_text();
}

TEST(examples, chat_line_reaches_every_other_client_once_and_not_the_sender) {
  fd_leak_guard guard;
  chat_room room;
  chat_member alice(room);
  chat_member bob(room);
  // Alice hears Bob join: both are in the room before anyone speaks.
  EXPECT_EQ(alice.next_line(), bob.address + " joined");

  alice.process.write_stdin("hello from alice\n");
  EXPECT_EQ(bob.next_line(), alice.address + ": hello from alice");
  EXPECT_EQ(room.heard(), alice.address + ": hello from alice");

  // End of Alice's stdin: she leaves after her line was delivered, having heard only Bob's
  // join (never her own line).
  alice.process.close_stdin();
  expect_clean_exit(alice.process, "alice");
  EXPECT_EQ(rest_of_output(alice.process, deadline_after(stretch(10s))),
            std::vector<std::string>{});
  EXPECT_EQ(bob.next_line(), alice.address + " left");
  EXPECT_EQ(room.heard(), alice.address + " left");

  // Bob says nothing and leaves: his output ends with Alice's leave (the line came once).
  bob.process.close_stdin();
  expect_clean_exit(bob.process, "bob");
  EXPECT_EQ(rest_of_output(bob.process, deadline_after(stretch(10s))), std::vector<std::string>{});
  EXPECT_EQ(room.heard(), bob.address + " left");

  ASSERT_TRUE(room.server.process.signal(SIGTERM));
  expect_clean_exit(room.server.process, "chat_server");
  EXPECT_EQ(wait_for_close(room.watcher.get(), deadline_after(stretch(10s))).end, read_end::eof);
}

TEST(examples, chat_client_sends_a_last_line_without_newline_and_exits_when_the_server_stops) {
  fd_leak_guard guard;
  chat_room room;
  {
    chat_member carol(room);
    carol.process.write_stdin("no newline");
    carol.process.close_stdin();
    EXPECT_EQ(room.heard(), carol.address + ": no newline");
    expect_clean_exit(carol.process, "carol");
    EXPECT_EQ(room.heard(), carol.address + " left");
  }
  chat_member dave(room);  // stdin left open: only the server's stop ends him
  ASSERT_TRUE(room.server.process.signal(SIGTERM));
  expect_clean_exit(room.server.process, "chat_server");
  expect_clean_exit(dave.process, "dave");
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
