// The chat protocol's pure parts: the bounded line splitter (any split of the input gives
// the same lines; over-long lines are reported once and skipped), nick rules, command
// parsing and line kinds.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "line_splitter.hpp"
#include "protocol.hpp"

namespace netkit::chat {
namespace {

std::span<const std::byte> bytes_of(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

// Feeds `input` in pieces of the given sizes (cycled); returns lines, "<overlong>" marks.
std::vector<std::string> split(std::string_view input, std::size_t max,
                               std::vector<std::size_t> pieces = {SIZE_MAX}) {
  line_splitter splitter(max);
  std::vector<std::string> out;
  std::size_t k = 0;
  while (!input.empty()) {
    auto n = std::min(input.size(), pieces[k++ % pieces.size()]);
    splitter.feed(
        bytes_of(input.substr(0, n)), [&](std::string_view line) { out.emplace_back(line); },
        [&] { out.emplace_back("<overlong>"); });
    input.remove_prefix(n);
  }
  return out;
}

TEST(chat_line_splitter, splits_lf_and_crlf_lines_and_holds_a_partial_one) {
  line_splitter splitter(64);
  std::vector<std::string> lines;
  auto on_line = [&](std::string_view l) { lines.emplace_back(l); };
  auto never = [] { FAIL() << "nothing here is over-long"; };
  splitter.feed(bytes_of("one\ntwo\r\nthr"), on_line, never);
  EXPECT_EQ(lines, (std::vector<std::string>{"one", "two"}));
  EXPECT_EQ(splitter.pending(), 3u);
  splitter.feed(bytes_of("ee\n\n"), on_line, never);
  EXPECT_EQ(lines, (std::vector<std::string>{"one", "two", "three", ""}));
  EXPECT_EQ(splitter.pending(), 0u);
}

TEST(chat_line_splitter, an_overlong_line_is_reported_once_and_skipped_whatever_the_split) {
  std::string input = "ok\n" + std::string(40, 'x') + "\nafter\n" + std::string(16, 'y') + "\r\n" +
                      std::string(17, 'z') + "\nend\n";
  std::vector<std::string> expected = {"ok",         "<overlong>", "after", std::string(16, 'y'),
                                       "<overlong>", "end"};
  EXPECT_EQ(split(input, 16), expected);
  std::mt19937 rng(7);
  for (int round = 0; round < 200; ++round) {
    std::vector<std::size_t> pieces;
    for (int i = 0; i < 8; ++i)
      pieces.push_back(std::uniform_int_distribution<std::size_t>(1, 20)(rng));
    EXPECT_EQ(split(input, 16, pieces), expected) << "round " << round;
  }
}

TEST(chat_line_splitter, holds_at_most_max_line_plus_one_byte) {
  line_splitter splitter(8);
  int overlong = 0;
  for (int i = 0; i < 1000; ++i) {
    splitter.feed(
        bytes_of("abc"), [](std::string_view) {}, [&] { ++overlong; });
    EXPECT_LE(splitter.pending(), 9u);
  }
  EXPECT_EQ(overlong, 1);  // one report for the whole endless line
}

TEST(chat_protocol, nick_rules) {
  EXPECT_EQ(nick_problem("alice"), "");
  EXPECT_EQ(nick_problem("a-b_9"), "");
  EXPECT_EQ(nick_problem(std::string(16, 'a')), "");
  EXPECT_EQ(nick_problem(""), "a nick is needed: /nick NAME");
  EXPECT_EQ(nick_problem(std::string(17, 'a')),
            "nick 'aaaaaaaaaaaaaaaaa' is too long: at most 16 characters");
  EXPECT_EQ(nick_problem("9lives"), "nick '9lives' must start with a letter");
  EXPECT_EQ(nick_problem("a\x01"), "nick 'a?' may hold only letters, digits, '_' and '-'");
}

TEST(chat_protocol, commands_parse_with_trimmed_arguments) {
  using kind = command::kind;
  auto c = parse_command("/msg  bob   hi there ");
  EXPECT_EQ(c.what, kind::msg);
  EXPECT_EQ(c.word, "bob");
  EXPECT_EQ(c.text, "hi there");
  EXPECT_EQ(parse_command("hello").what, kind::say);
  EXPECT_EQ(parse_command("//x").text, "/x");
  EXPECT_EQ(parse_command("   ").what, kind::empty);
  EXPECT_EQ(parse_command("/nick bob").word, "bob");
  EXPECT_EQ(parse_command("/me waves").text, "waves");
  EXPECT_EQ(parse_command("/quit").what, kind::quit);
  auto u = parse_command("/frob x");
  EXPECT_EQ(u.what, kind::unknown);
  EXPECT_EQ(u.word, "frob");
}

TEST(chat_protocol, each_server_line_has_a_recognisable_kind) {
  EXPECT_EQ(classify(said("a", "hi")), line_kind::message);
  EXPECT_EQ(classify(action("a", "waves")), line_kind::action);
  EXPECT_EQ(classify(private_to_recipient("a", "x")), line_kind::private_message);
  EXPECT_EQ(classify(private_to_sender("b", "x")), line_kind::private_message);
  EXPECT_EQ(classify(notice("a joined")), line_kind::notice);
  EXPECT_EQ(classify(error_reply("no")), line_kind::error);
  EXPECT_EQ(classify("plain"), line_kind::other);
}

}  // namespace
}  // namespace netkit::chat
