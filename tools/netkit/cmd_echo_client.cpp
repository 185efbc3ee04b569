#include <poll.h>
#include <sys/socket.h>

#include <iostream>
#include <random>

#include <fmt/format.h>

#include "commands.hpp"
#include "netkit/blocking_io.hpp"
#include "netkit/buffer.hpp"
#include "netkit/codec/codec.hpp"
#include "netkit/error.hpp"
#include "netkit/socket.hpp"
#include "udp_echo_client.hpp"

namespace netkit::cli {

namespace {

struct echo_client_args {
  std::string connect = "tcp://127.0.0.1:9000";
  std::string codec = "line";
  std::size_t count = 0;
  std::size_t size = 64;
  std::uint64_t seed = 1;
  double timeout = 10;
  int retries = 3;
};

// Blocking request/response over one connection: writes one framed message, then reads
// until the decoder yields the echo.
class echo_session {
 public:
  echo_session(const endpoint& ep, const codec_spec& spec, std::chrono::milliseconds timeout)
      : ep_(ep),
        fd_(connect_to(ep)),
        decoder_(make_decoder(spec)),
        encoder_(make_encoder(spec)),
        timeout_(timeout) {
    if (ep.kind() == transport::tcp) set_tcp_nodelay(fd_.get(), true);
  }

  std::vector<std::byte> round_trip(std::span<const std::byte> message) {
    byte_buffer out;
    encoder_->encode(message, out);
    write_n(fd_.get(), out.data());
    for (;;) {
      auto r = decoder_->decode(input_.data());
      if (r.state == decode_result::status::message) {
        std::vector<std::byte> reply(r.message.begin(), r.message.end());
        input_.consume(r.consumed);
        return reply;
      }
      if (r.state == decode_result::status::error)
        throw protocol_error(fmt::format("reply from {}: {}", ep_.to_uri(), r.error));
      pollfd p{fd_.get(), POLLIN, 0};
      int ready = ::poll(&p, 1, static_cast<int>(timeout_.count()));
      if (ready == 0) throw sys_error(ETIMEDOUT, "waiting for echo from", ep_.to_uri());
      if (ready < 0) {
        if (errno == EINTR) continue;
        throw_sys_error("poll", ep_.to_uri());
      }
      auto got = input_.read_from(fd_.get());
      if (got.eof())
        throw protocol_error(
            fmt::format("{} closed the connection before echoing ({} bytes of a "
                        "reply received)",
                        ep_.to_uri(), input_.size()));
      if (!got.ok() && !got.would_block()) throw sys_error(got.err, "read", ep_.to_uri());
    }
  }

 private:
  endpoint ep_;
  unique_fd fd_;
  std::unique_ptr<decoder> decoder_;
  std::unique_ptr<encoder> encoder_;
  byte_buffer input_;
  std::chrono::milliseconds timeout_;
};

std::span<const std::byte> bytes_of(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

int run(const echo_client_args& args) {
  auto ep = endpoint::parse(args.connect);
  auto timeout = std::chrono::milliseconds(static_cast<long>(args.timeout * 1000));
  if (!is_stream(ep.kind())) {
    // Datagrams carry their own boundaries: no codec; sequence numbers instead.
    clients::dgram_client_options dgram;
    dgram.connect = ep;
    dgram.count = args.count;
    dgram.size = args.size;
    dgram.timeout = timeout;
    dgram.retries = args.retries;
    return clients::run_dgram_echo_client(dgram);
  }
  auto spec = codec_spec::parse(args.codec);
  echo_session session(ep, spec, timeout);

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
  cmd->add_option("--count,-n", args.count, "Send this many random messages (0: read stdin)")
      ->capture_default_str();
  cmd->add_option("--size,-s", args.size, "Bytes per random message")->capture_default_str();
  cmd->add_option("--seed", args.seed, "Seed of the random messages")->capture_default_str();
  cmd->add_option("--timeout", args.timeout, "Seconds to wait for each echo")
      ->capture_default_str();
  cmd->callback([] {
    if (int rc = run(args); rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace netkit::cli
