#include <deque>
#include <iostream>
#include <limits>
#include <optional>
#include <random>

#include <fmt/format.h>

#include "commands.hpp"
#include "netkit/codec/codec.hpp"
#include "netkit/error.hpp"
#include "netkit/event/loop.hpp"
#include "netkit/net/stream_client.hpp"
#include "udp_echo_client.hpp"

namespace netkit::cli {

namespace {

struct echo_client_args {
  std::string connect = "tcp://127.0.0.1:9000";
  std::string codec = "line";
  std::string model = "epoll";
  std::size_t count = 0;
  std::size_t size = 64;
  std::uint64_t seed = 1;
  double timeout = 10;
  double connect_timeout = 10;
  std::optional<int> retries;  // stream: connect retries (0); datagram: resends (3)
};

std::chrono::milliseconds to_ms(double seconds) {
  return std::chrono::milliseconds(static_cast<long>(seconds * 1000));
}

// Request/response over one stream_client connection on an event loop of the chosen
// backend: sends one message, then runs the loop until the echo is decoded, the
// connection ends or the per-echo timer fires.
class stream_echo_session {
 public:
  stream_echo_session(const std::string& model, const endpoint& ep, const codec_spec& spec,
                      const connect_options& connecting, std::chrono::milliseconds timeout)
      : loop_(model), ep_(ep), timeout_(timeout) {
    client_options options;
    options.codec = spec;
    options.connecting = connecting;
    // One message in flight at a time: nothing to push back against, and a message
    // larger than the default limits is the user's to send.
    options.high_water = options.hard_limit = std::numeric_limits<std::size_t>::max();
    stream_handler handler;
    handler.on_connect = [this](connection& c) { id_ = c.id(); };
    handler.on_message = [this](connection&, std::span<const std::byte> m) {
      replies_.emplace_back(m.begin(), m.end());
    };
    handler.on_close = [this](connection&, close_reason why) { closed_ = why; };
    handler.on_connect_failed = [this](stream_client&, const endpoint&, const sys_error& e) {
      connect_error_ = e;
    };
    client_ = make_stream_client(loop_, options, std::move(handler));
    client_->connect(ep_);
    // Bounded by the connector: its timeout per attempt and its retries. A connection the
    // backend refused to watch ends with neither callback, hence the last condition.
    while (!id_ && !connect_error_ && client_->connecting() > 0)
      loop_.run_once(std::chrono::milliseconds(-1));
    if (connect_error_) throw *connect_error_;
    if (!id_) throw sys_error(EBADF, "connect", ep_.to_uri() + " (the loop refused the socket)");
  }

  std::vector<std::byte> round_trip(std::span<const std::byte> message) {
    const std::uint64_t bytes_before = client_->stats().bytes_in;
    if (auto* c = client_->find(*id_)) c->send(message);
    bool timed_out = false;
    timer_id timer = loop_.run_after(timeout_, [&] { timed_out = true; });
    // Bounded by the timer.
    while (replies_.empty() && !closed_ && !timed_out)
      loop_.run_once(std::chrono::milliseconds(-1));
    if (!timed_out) loop_.cancel(timer);
    if (!replies_.empty()) {
      auto reply = std::move(replies_.front());
      replies_.pop_front();
      return reply;
    }
    if (timed_out) throw sys_error(ETIMEDOUT, "waiting for echo from", ep_.to_uri());
    switch (*closed_) {
      case close_reason::peer_closed:
        throw protocol_error(
            fmt::format("{} closed the connection before echoing ({} bytes of a reply received)",
                        ep_.to_uri(), client_->stats().bytes_in - bytes_before));
      case close_reason::reset:
        // The connection reports a reason, not the errno: a reset is what it stands for.
        throw sys_error(ECONNRESET, "read", ep_.to_uri());
      case close_reason::protocol_error:
        // The library logged the decoder's description on the line before.
        throw protocol_error(fmt::format("reply from {}: protocol error", ep_.to_uri()));
      default:
        throw protocol_error(fmt::format("connection to {} closed before the echo ({})",
                                         ep_.to_uri(), to_string(*closed_)));
    }
  }

 private:
  event_loop loop_;
  endpoint ep_;
  std::chrono::milliseconds timeout_;
  std::optional<conn_id> id_;
  std::deque<std::vector<std::byte>> replies_;
  std::optional<close_reason> closed_;
  std::optional<sys_error> connect_error_;
  // Last: destroyed first, while the state its callbacks write to still exists.
  std::unique_ptr<stream_client> client_;
};

std::span<const std::byte> bytes_of(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

int run(const echo_client_args& args, bool model_given, bool connect_timeout_given) {
  auto ep = endpoint::parse(args.connect);
  auto timeout = to_ms(args.timeout);
  if (!is_stream(ep.kind())) {
    if (model_given) throw usage_error("--model applies only to stream URIs (tcp://, unix://)");
    if (connect_timeout_given)
      throw usage_error("--connect-timeout applies only to stream URIs (tcp://, unix://)");
    // Datagrams carry their own boundaries: no codec; sequence numbers instead.
    clients::dgram_client_options dgram;
    dgram.connect = ep;
    dgram.count = args.count;
    dgram.size = args.size;
    dgram.timeout = timeout;
    dgram.retries = args.retries.value_or(3);
    return clients::run_dgram_echo_client(dgram);
  }
  auto spec = codec_spec::parse(args.codec);
  connect_options connecting;
  connecting.timeout = to_ms(args.connect_timeout);
  connecting.retries = args.retries.value_or(0);
  stream_echo_session session(args.model, ep, spec, connecting, timeout);

  if (args.count == 0) {
    std::string line;
    while (std::getline(std::cin, line)) {
      auto reply = session.round_trip(bytes_of(line));
      fmt::print("{}\n",
                 std::string_view(reinterpret_cast<const char*>(reply.data()), reply.size()));
      std::fflush(stdout);
    }
    return 0;
  }

  std::size_t size = spec.kind == codec_kind::fixed ? spec.fixed_size : args.size;
  std::mt19937_64 rng(args.seed);
  // Delimited codecs cannot carry their delimiter: draw printable bytes for them.
  bool text = spec.kind == codec_kind::line || spec.kind == codec_kind::crlf;
  std::vector<std::byte> message(size);
  std::size_t mismatches = 0;
  auto start = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < args.count; ++i) {
    for (auto& b : message)
      b = static_cast<std::byte>(text ? 'a' + rng() % 26 : rng() & 0xff);
    auto reply = session.round_trip(message);
    if (reply.size() != message.size() ||
        !std::equal(reply.begin(), reply.end(), message.begin())) {
      if (++mismatches <= 5)
        fmt::print(stderr, "message {}: echo differs ({} bytes sent, {} received)\n", i,
                   message.size(), reply.size());
    }
  }
  std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
  fmt::print("{} messages of {} bytes echoed by {} in {:.3f} s: {} mismatch{}\n", args.count, size,
             ep.to_uri(), took.count(), mismatches, mismatches == 1 ? "" : "es");
  return mismatches == 0 ? 0 : 1;
}

}  // namespace

void add_echo_client(CLI::App& app) {
  static echo_client_args args;
  auto* cmd = app.add_subcommand(
      "echo-client",
      "Send framed messages to an echo server and check the echoes.\n"
      "Without --count: each stdin line is one message; the echo is printed.\n"
      "With --count N: N random messages of --size bytes are sent one at a time and every "
      "echoed byte is verified; exits 1 on any mismatch.\n"
      "tcp:// and unix:// run on an event loop of the --model backend (the library's "
      "stream_client: non-blocking connect with --connect-timeout, --retries with back-off).\n"
      "udp:// and unix-dgram:// use a connected socket (ICMP errors are reported as 'no server "
      "at URI'), sequence numbers, per-request timeouts and retries, and end with a summary of "
      "lost, duplicated and reordered replies (exit 3 if some stayed unanswered, 2 if no "
      "server).");
  cmd->add_option("--connect,-c", args.connect,
                  "Server address (tcp://, unix://, udp://, unix-dgram://)")
      ->capture_default_str();
  cmd->add_option("--codec", args.codec,
                  "Framing, as the server's: raw, line, crlf, fixed:N, length, length16")
      ->capture_default_str();
  cmd->add_option("--model,-m", args.model,
                  "Event-loop backend of a stream client: select, poll, epoll, epoll-et, uring "
                  "(see echo-server --list-models)")
      ->capture_default_str();
  cmd->add_option("--count,-n", args.count, "Send this many random messages (0: read stdin)")
      ->capture_default_str();
  cmd->add_option("--size,-s", args.size, "Bytes per random message")->capture_default_str();
  cmd->add_option("--seed", args.seed, "Seed of the random messages")->capture_default_str();
  cmd->add_option("--timeout", args.timeout, "Seconds to wait for each echo")
      ->capture_default_str();
  cmd->add_option("--connect-timeout", args.connect_timeout,
                  "Stream: seconds per connect attempt (0: the kernel's own)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--retries", args.retries,
                  "Stream: further connect attempts after a failed one, with exponential "
                  "back-off (default 0). Datagram: resends of an unanswered request (default 3)")
      ->check(CLI::NonNegativeNumber);
  cmd->callback([cmd] {
    if (int rc = run(args, cmd->count("--model") > 0, cmd->count("--connect-timeout") > 0); rc != 0)
      throw CLI::RuntimeError(rc);
  });
}

}  // namespace netkit::cli
