#include "room.hpp"

#include <algorithm>
#include <cstring>
#include <optional>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "line_splitter.hpp"
#include "netkit/log.hpp"
#include "protocol.hpp"

namespace netkit::chat {

using clock = std::chrono::steady_clock;

// One connection's state, in its context(): on its loop thread only.
struct room::session {
  session(std::size_t max_line, clock::time_point deadline) : input(max_line), deadline(deadline) {}
  std::string nick;  // empty until /nick: not a member yet
  line_splitter input;
  clock::time_point deadline;  // login, then idle deadline
  std::string leaving;         // why it left, for the others' notice (set before close)
};

namespace {

room::session* session_of(connection& c) {
  return std::any_cast<room::session>(&c.context());
}

std::string seconds_text(std::chrono::milliseconds d) {
  return d.count() % 1000 == 0 ? fmt::format("{} s", d.count() / 1000)
                               : fmt::format("{:.1f} s", static_cast<double>(d.count()) / 1000);
}

void reply(connection& c, const std::string& line) {
  c.send(room::frame(line));
}

}  // namespace

room::room(room_options options, room_delivery& delivery)
    : options_(std::move(options)), delivery_(delivery) {}

framed_message room::frame(std::string_view line) {
  std::vector<std::byte> bytes(line.size() + 1);
  std::memcpy(bytes.data(), line.data(), line.size());
  bytes.back() = std::byte{'\n'};
  return framed_message(std::move(bytes));
}

stream_handler room::handler() {
  stream_handler h;
  h.on_connect = [this](connection& c) { on_connect(c); };
  h.on_message = [this](connection& c, std::span<const std::byte> bytes) { on_input(c, bytes); };
  h.on_close = [this](connection& c, close_reason why) { on_close(c, why); };
  return h;
}

bool room::is_member(connection& c) {
  auto* s = session_of(c);
  return s && !s->nick.empty();
}

std::vector<std::string> room::nicks() const {
  std::lock_guard lock(mutex_);
  std::vector<std::string> out;
  for (const auto& [nick, id] : members_)
    out.push_back(nick);
  return out;
}

std::chrono::milliseconds room::sweep_period() const noexcept {
  auto shortest = options_.login_timeout;
  if (options_.idle_timeout.count() > 0) shortest = std::min(shortest, options_.idle_timeout);
  // A tenth of the shortest deadline: a connection is closed at most 10% late.
  return std::max(shortest / 10, std::chrono::milliseconds(20));
}

void room::restart_clock(session& s, clock::time_point now) const {
  if (s.nick.empty()) return;  // the login deadline stands until a nick is chosen
  s.deadline =
      options_.idle_timeout.count() > 0 ? now + options_.idle_timeout : clock::time_point::max();
}

void room::on_connect(connection& c) {
  c.context() = session(options_.max_line, clock::now() + options_.login_timeout);
  reply(c, notice(options_.motd));
  reply(c, notice(fmt::format("choose a nick with /nick NAME within {}; /help lists the commands",
                              seconds_text(options_.login_timeout))));
}

void room::on_input(connection& c, std::span<const std::byte> bytes) {
  auto* s = session_of(c);
  if (!s) return;
  s->input.feed(
      bytes,
      [&](std::string_view line) {
        if (s->leaving.empty()) handle_line(c, *s, line);  // nothing after /quit
      },
      [&] {
        reply(c, error_reply(fmt::format("line too long (at most {} bytes): discarded",
                                         options_.max_line)));
      });
}

void room::tell_members(std::string_view line) {
  delivery_.broadcast(frame(line), room_delivery::audience::members);
}

void room::handle_line(connection& c, session& s, std::string_view line) {
  auto cmd = parse_command(line);
  using kind = command::kind;
  const bool member = !s.nick.empty();
  auto needs_nick = [&] {
    if (!member) reply(c, error_reply("choose a nick first: /nick NAME"));
    return !member;
  };
  switch (cmd.what) {
    case kind::empty:
      return;
    case kind::unknown:
      reply(c, error_reply(fmt::format("unknown command /{}: /help lists the commands",
                                       printable(cmd.word))));
      return;
    case kind::help:
      reply(c, help_text());
      break;
    case kind::who: {
      auto here = nicks();
      reply(c, notice(fmt::format("here ({}): {}", here.size(), fmt::join(here, " "))));
      break;
    }
    case kind::nick:
      if (auto problem = nick_problem(cmd.word); !problem.empty() || !cmd.text.empty()) {
        reply(c, error_reply(problem.empty() ? "a nick is one word: /nick NAME" : problem));
        return;
      }
      choose_nick(c, s, cmd.word);
      if (s.nick != cmd.word) return;  // refused: not a valid line
      break;
    case kind::say:
      if (needs_nick()) return;
      tell_members(said(s.nick, cmd.text));
      break;
    case kind::me:
      if (needs_nick()) return;
      if (cmd.text.empty()) {
        reply(c, error_reply("usage: /me ACTION"));
        return;
      }
      tell_members(action(s.nick, cmd.text));
      break;
    case kind::msg: {
      if (needs_nick()) return;
      if (cmd.word.empty() || cmd.text.empty()) {
        reply(c, error_reply("usage: /msg NICK TEXT"));
        return;
      }
      std::optional<conn_id> target;
      {
        std::lock_guard lock(mutex_);
        if (auto it = members_.find(cmd.word); it != members_.end()) target = it->second;
      }
      if (!target) {
        reply(c, error_reply(fmt::format("no one called '{}' is here (/who lists them)",
                                         printable(cmd.word))));
        return;
      }
      delivery_.send_to(*target, frame(private_to_recipient(s.nick, cmd.text)));
      reply(c, private_to_sender(cmd.word, cmd.text));
      break;
    }
    case kind::quit:
      s.leaving = cmd.text.empty() ? std::string("quit") : fmt::format("quit: {}", cmd.text);
      reply(c, notice("bye"));
      c.close();  // delivers what is queued, then closes; on_close tells the others
      return;
  }
  restart_clock(s, clock::now());
}

void room::choose_nick(connection& c, session& s, std::string_view nick) {
  if (nick == s.nick) {
    reply(c, notice(fmt::format("you are already {}", nick)));
    return;
  }
  {
    std::lock_guard lock(mutex_);
    if (!members_.try_emplace(std::string(nick), c.id()).second) {
      reply(c, error_reply(fmt::format("nick '{}' is taken: choose another", nick)));
      return;
    }
    if (!s.nick.empty()) members_.erase(s.nick);
  }
  std::string old = std::exchange(s.nick, std::string(nick));
  if (old.empty()) {
    tell_members(notice(fmt::format("{} joined", s.nick)));
  } else {
    tell_members(notice(fmt::format("{} is now known as {}", old, s.nick)));
  }
}

void room::on_close(connection& c, close_reason why) {
  auto* s = session_of(c);
  if (!s || s->nick.empty()) return;
  {
    std::lock_guard lock(mutex_);
    members_.erase(s->nick);
  }
  // The server's own stop is announced once, to everyone, by announce_stop().
  if (why == close_reason::server_stopping) return;
  std::string how = s->leaving;
  if (why == close_reason::output_overflow) {
    how = fmt::format("disconnected: not reading, over {} bytes of output queued",
                      options_.max_output);
  } else if (how.empty()) {
    how = why == close_reason::peer_closed ? "connection closed" : std::string(to_string(why));
  }
  log(log_level::debug, "{} ({}) left: {}", s->nick, c.peer().to_uri(), how);
  tell_members(notice(fmt::format("{} left ({})", s->nick, how)));
}

void room::sweep(connection_group& group) {
  auto now = clock::now();
  group.for_each([&](connection& c) {
    auto* s = session_of(c);
    if (!s || now < s->deadline || !s->leaving.empty()) return;
    std::string why =
        s->nick.empty()
            ? fmt::format("no nick chosen within {}", seconds_text(options_.login_timeout))
            : fmt::format("idle for {}", seconds_text(options_.idle_timeout));
    s->leaving = why;
    reply(c, notice(fmt::format("{}: disconnecting", why)));
    c.close();
  });
}

void room::announce_stop() {
  delivery_.broadcast(frame(notice("server stopping: goodbye")), room_delivery::audience::everyone);
}

}  // namespace netkit::chat
