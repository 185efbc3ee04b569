// The chat room: what the server does with each connection's lines (chat/protocol.hpp),
// independent of how many loops serve it. One room may be shared by the handlers of
// several loops (multi_reactor): its nick table is the only state they share, behind a
// mutex; each connection's session lives in its context() on its own loop.
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "netkit/net/connection_group.hpp"

namespace netkit::chat {

struct room_options {
  std::string motd = "welcome to netkit chat";
  // A connection must choose a nick within login_timeout, and then send a valid line at
  // least every idle_timeout (0: never dropped for silence), or it is told and closed.
  std::chrono::milliseconds login_timeout{30'000};
  std::chrono::milliseconds idle_timeout{0};
  // Longer input lines are answered with an error and discarded.
  std::size_t max_line = 1024;
  // The output cap (the connection's hard_limit): named in the notice when a member that
  // stopped reading is cut off.
  std::size_t max_output = 256 << 10;
};

// How the room reaches connections, on one loop or on every loop of a multi_reactor.
class room_delivery {
 public:
  enum class audience { members, everyone };
  // Queues `line` (framed: '\n' included) on every connection of the audience, on every
  // loop; lines given by one thread reach every recipient in that order.
  virtual void broadcast(const framed_message& line, audience who) = 0;
  // Queues `line` (framed) on connection `id`, whichever loop owns it; dropped if it has
  // closed by then.
  virtual void send_to(conn_id id, const framed_message& line) = 0;

 protected:
  ~room_delivery() = default;
};

class room {
 public:
  // Keeps a reference to `delivery`, which must outlive the room's handlers.
  room(room_options options, room_delivery& delivery);

  // The connection callbacks; every loop serving this room uses the same room.
  stream_handler handler();
  // Closes, with a notice to it, each connection of `group` whose login or idle deadline
  // has passed. Call every sweep_period() on group's loop thread.
  void sweep(connection_group& group);
  std::chrono::milliseconds sweep_period() const noexcept;
  // The server is stopping: tells every connection (members and not), before the drain.
  void announce_stop();

  // Whether `c` has chosen a nick (it then receives the room's messages). c's loop thread.
  static bool is_member(connection& c);
  // The nicks present, sorted. Any thread.
  std::vector<std::string> nicks() const;

  // A line, framed for the wire.
  static framed_message frame(std::string_view line);

  // A connection's state in the room, kept in its context() (defined in room.cpp).
  struct session;

 private:
  void on_connect(connection& c);
  void on_input(connection& c, std::span<const std::byte> bytes);
  void on_close(connection& c, close_reason why);
  void handle_line(connection& c, session& s, std::string_view line);
  void choose_nick(connection& c, session& s, std::string_view nick);
  void tell_members(std::string_view line);
  void restart_clock(session& s, std::chrono::steady_clock::time_point now) const;

  const room_options options_;
  room_delivery& delivery_;
  mutable std::mutex mutex_;
  std::map<std::string, conn_id, std::less<>> members_;  // nick → connection
};

}  // namespace netkit::chat
