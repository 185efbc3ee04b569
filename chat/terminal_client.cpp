#include "terminal_client.hpp"

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <string>

#include <editline/readline.h>
#include <fmt/format.h>

#include "line_splitter.hpp"
#include "netkit/blocking_io.hpp"
#include "netkit/error.hpp"
#include "netkit/event/loop.hpp"
#include "netkit/net/stream_client.hpp"
#include "protocol.hpp"

namespace netkit::chat {

namespace {

constexpr std::size_t max_line = 64 * 1024;

std::span<const std::byte> bytes_of(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

const char* colour_of(line_kind kind) {
  switch (kind) {
    case line_kind::message:
      return "";
    case line_kind::action:
      return "\033[33m";  // yellow
    case line_kind::private_message:
      return "\033[35m";  // magenta
    case line_kind::notice:
      return "\033[36m";  // cyan
    case line_kind::error:
      return "\033[31m";  // red
    case line_kind::other:
      return "";
  }
  return "";
}

class terminal_client;
terminal_client* g_client = nullptr;  // libedit's line callback takes no context

class terminal_client final : public io_handler {
 public:
  explicit terminal_client(const terminal_options& o)
      : options_(o),
        loop_(o.model),
        decorate_(::isatty(STDOUT_FILENO) == 1),
        editing_(decorate_ && ::isatty(STDIN_FILENO) == 1),
        typed_(max_line) {}

  int run() {
    client_options co;
    co.codec = codec_spec::parse(fmt::format("line,max={}", max_line));
    co.reconnect = options_.reconnect;
    if (options_.reconnect) {
      co.connecting.retries = 1'000'000;  // while the server restarts: back-off up to 5 s
      co.connecting.backoff_max = std::chrono::seconds(5);
    }
    stream_handler h;
    h.on_connect = [this](connection& c) { connected(c); };
    h.on_message = [this](connection&, std::span<const std::byte> line) {
      show(std::string(as_text(line)));
    };
    h.on_close = [this](connection&, close_reason why) { lost(why); };
    h.on_connect_failed = [this](stream_client&, const endpoint&, const sys_error& e) {
      local_line(fmt::format("netkit: chat: {}", e.what()), STDERR_FILENO);
      status_ = 1;
    };
    client_ = make_stream_client(loop_, co, h);
    loop_.stop_on_signals({SIGINT, SIGTERM});
    if (editing_) {
      g_client = this;
      rl_catch_signals = 0;  // Ctrl-C is ours: the loop stops and the terminal is restored
      rl_catch_sigwinch = 1;
      rl_callback_handler_install(prompt().c_str(), on_edited_line);
    }
    client_->connect(options_.server);
    run_until_done(loop_, *client_);
    if (editing_) {
      rl_callback_handler_remove();  // the terminal back as it was
      g_client = nullptr;
      say(STDOUT_FILENO, "\n");
    }
    if (stdin_watch_.valid()) loop_.unwatch(stdin_watch_);
    client_.reset();
    return loop_.stopping() ? 0 : status_;
  }

  // stdin readable: one key (editing) or a chunk of lines (a pipe or file).
  void on_io(std::uint32_t) override {
    if (editing_) {
      rl_callback_read_char();
      return;
    }
    char chunk[16 * 1024];
    ssize_t n = ::read(STDIN_FILENO, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) return;
    if (n <= 0) {
      end_of_input();
      return;
    }
    typed_.feed(
        std::span(reinterpret_cast<const std::byte*>(chunk), static_cast<std::size_t>(n)),
        [this](std::string_view line) { typed(line); },
        [] { local_line(fmt::format("-- line over {} bytes not sent", max_line), STDERR_FILENO); });
  }

 private:
  static void on_edited_line(char* line) {
    if (!g_client) return;
    if (!line) {
      g_client->end_of_input();  // Ctrl-D
      return;
    }
    std::string text(line);
    std::free(line);
    if (!text.empty()) add_history(text.c_str());
    g_client->typed(text);
    // libedit's callback mode leaves unbuffered mode when it delivers a line: its next
    // read would block until a whole line is typed (the loop stalled, messages held back),
    // and the finished line stays in its buffer. Installing the handler again re-enters
    // unbuffered mode with an empty line and draws a fresh prompt.
    rl_callback_handler_install(g_client->prompt().c_str(), on_edited_line);
  }

  static void say(int fd, std::string_view text) {
    try {
      write_n(fd, bytes_of(text));
    } catch (const sys_error&) {
      // the terminal or pipe is gone: nothing left to show
    }
  }

  // A line of the client's own (connection state, errors).
  static void local_line(const std::string& text, int fd = STDOUT_FILENO) {
    if (g_client && g_client->editing_) {
      g_client->show(text);
      return;
    }
    say(fd, text + "\n");
  }

  std::string prompt() const { return options_.nick.empty() ? "> " : options_.nick + "> "; }

  // A received line: above the line being edited, which is then redrawn as it was.
  void show(const std::string& line) {
    std::string out;
    if (decorate_) {
      std::time_t now = std::time(nullptr);
      std::tm local{};
      ::localtime_r(&now, &local);
      const char* colour = colour_of(classify(line));
      out = fmt::format("\033[2m{:02}:{:02}:{:02}\033[0m {}{}{}", local.tm_hour, local.tm_min,
                        local.tm_sec, colour, line, *colour ? "\033[0m" : "");
    } else {
      out = line;
    }
    if (editing_) {
      say(STDOUT_FILENO, "\r\033[K" + out + "\n");  // clear the edited line, print above it
      rl_forced_update_display();                   // prompt and typed text, cursor kept
    } else {
      say(STDOUT_FILENO, out + "\n");
    }
  }

  void typed(std::string_view line) {
    if (quitting_) return;
    if (line == "/quit" || line.starts_with("/quit ")) quitting_ = true;
    auto* c = client_->find(server_);
    if (!c) {
      if (quitting_) {
        client_->begin_shutdown();
        return;
      }
      local_line("-- not connected: line not sent");
      return;
    }
    c->send(line);  // the server answers /quit with "*** bye" and closes
  }

  // EOF on stdin: leave as /quit does, so a script sees every reply up to the server's bye.
  void end_of_input() {
    loop_.unwatch(stdin_watch_);
    stdin_watch_ = {};
    typed("/quit");
  }

  void connected(connection& c) {
    server_ = c.id();
    // The keyboard is read from the first connect on: a script's lines are not refused
    // before there is a connection to send them on.
    if (!ever_connected_) stdin_watch_ = loop_.watch(STDIN_FILENO, io_read, *this);
    if (ever_connected_) local_line(fmt::format("-- reconnected to {}", options_.server.to_uri()));
    ever_connected_ = true;
    if (!options_.nick.empty()) c.send(fmt::format("/nick {}", options_.nick));
  }

  void lost(close_reason why) {
    server_ = {};
    if (quitting_) {
      client_->begin_shutdown();  // no reconnect after our own /quit
      return;
    }
    if (loop_.stopping()) return;
    auto reason = why == close_reason::peer_closed ? "server closed the connection"
                                                   : std::string(to_string(why));
    if (options_.reconnect) {
      local_line(fmt::format("-- connection lost ({}); reconnecting", reason));
      return;
    }
    local_line(
        fmt::format("netkit: chat: connection to {} lost ({})", options_.server.to_uri(), reason),
        STDERR_FILENO);
    status_ = 1;
  }

  terminal_options options_;
  event_loop loop_;
  const bool decorate_;  // timestamps and colours: stdout is a terminal
  const bool editing_;   // line editing: stdin and stdout are terminals
  line_splitter typed_;  // stdin lines when not editing
  std::unique_ptr<stream_client> client_;
  watch_id stdin_watch_;
  conn_id server_;
  bool quitting_ = false;
  bool ever_connected_ = false;
  int status_ = 0;
};

}  // namespace

int run_terminal_client(const terminal_options& options) {
  terminal_client client(options);
  return client.run();
}

}  // namespace netkit::chat
