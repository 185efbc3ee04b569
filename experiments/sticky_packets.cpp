// The sticky-packet probe behind experiments/sticky-packets: TCP is a byte stream, so the
// reads a receiver makes do not line up with the writes the sender made. One writer
// thread sends --messages messages over loopback TCP, one write() each; the receiver
// counts its read() calls and how many of them held exactly one whole message, then
// decodes the same bytes with the chosen codec and checks every message against what was
// sent. One line of key=value figures per run, for the script to tabulate.
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <exception>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "netkit/blocking_io.hpp"
#include "netkit/buffer.hpp"
#include "netkit/codec/codec.hpp"
#include "netkit/endpoint.hpp"
#include "netkit/error.hpp"
#include "netkit/socket.hpp"

namespace {

struct probe_args {
  std::string codec = "line";
  std::size_t messages = 1000;
  std::size_t min_size = 10;
  std::size_t max_size = 100;
  std::size_t read_size = 65536;
  unsigned read_pause_us = 0;
  unsigned write_pause_us = 0;
  bool nodelay = false;
  unsigned seed = 1;
};

// Random printable payloads (no '\n' or '\r', so every codec can frame them); a fixed
// codec gets payloads of exactly its record size.
std::vector<std::string> make_messages(const probe_args& a, const netkit::codec_spec& spec) {
  std::mt19937 rng(a.seed);
  std::uniform_int_distribution<std::size_t> size(a.min_size, a.max_size);
  std::uniform_int_distribution<int> letter('a', 'z');
  std::vector<std::string> out(a.messages);
  for (auto& m : out) {
    m.resize(spec.kind == netkit::codec_kind::fixed ? spec.fixed_size : size(rng));
    for (auto& c : m)
      c = static_cast<char>(letter(rng));
  }
  return out;
}

std::span<const std::byte> bytes_of(const std::string& s) {
  return std::as_bytes(std::span(s.data(), s.size()));
}

int run(const probe_args& a) {
  auto spec = netkit::codec_spec::parse(a.codec);
  auto messages = make_messages(a, spec);
  // For `raw` the sender's "message" is just its write; framing codecs frame it.
  auto enc = netkit::make_encoder(spec);
  std::vector<std::string> frames;
  for (const auto& m : messages) {
    netkit::byte_buffer framed;
    enc->encode(bytes_of(m), framed);
    auto d = framed.data();
    frames.emplace_back(reinterpret_cast<const char*>(d.data()), d.size());
  }

  auto listener =
      netkit::listen_on(netkit::endpoint::parse("tcp://127.0.0.1:0"), netkit::io_mode::blocking);
  auto address = netkit::local_endpoint(listener.get(), netkit::transport::tcp);
  auto sender = netkit::connect_to(address);
  auto receiver = netkit::unique_fd(::accept(listener.get(), nullptr, nullptr));
  if (!receiver) throw netkit::sys_error(errno, "accept");
  if (a.nodelay) netkit::set_tcp_nodelay(sender.get(), true);

  std::exception_ptr writer_error;
  std::thread writer([&] {
    try {
      for (const auto& f : frames) {
        netkit::write_n(sender.get(), bytes_of(f));
        if (a.write_pause_us)
          std::this_thread::sleep_for(std::chrono::microseconds(a.write_pause_us));
      }
      ::shutdown(sender.get(), SHUT_WR);
    } catch (...) {
      writer_error = std::current_exception();
    }
  });

  std::size_t reads = 0, reads_one_whole = 0, received = 0;
  std::size_t boundary = 0, next_frame = 0;  // where the next sent frame starts in the stream
  std::vector<std::byte> chunk(a.read_size);
  netkit::byte_buffer input;
  auto dec = netkit::make_decoder(spec);
  std::size_t decoded = 0, mismatched = 0;
  std::string decode_error;
  for (;;) {
    if (a.read_pause_us) std::this_thread::sleep_for(std::chrono::microseconds(a.read_pause_us));
    ssize_t n = ::read(receiver.get(), chunk.data(), chunk.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw netkit::sys_error(errno, "read");
    if (n == 0) break;
    ++reads;
    // Exactly one whole sent frame: the read starts and ends on that frame's bounds.
    if (next_frame < frames.size() && received == boundary &&
        static_cast<std::size_t>(n) == frames[next_frame].size())
      ++reads_one_whole;
    received += static_cast<std::size_t>(n);
    while (next_frame < frames.size() && boundary + frames[next_frame].size() <= received)
      boundary += frames[next_frame++].size();
    if (spec.kind == netkit::codec_kind::raw) continue;  // raw: a read is all there is
    input.append(std::span(chunk.data(), static_cast<std::size_t>(n)));
    while (decode_error.empty()) {
      auto r = dec->decode(input.data());
      if (r.state == netkit::decode_result::status::need_more) break;
      if (r.state == netkit::decode_result::status::error) {
        decode_error = std::string(r.error);
        break;
      }
      std::string_view got(reinterpret_cast<const char*>(r.message.data()), r.message.size());
      if (decoded >= messages.size() || got != messages[decoded]) ++mismatched;
      ++decoded;
      input.consume(r.consumed);
    }
  }
  writer.join();
  if (writer_error) std::rethrow_exception(writer_error);
  bool exact = false;
  std::string leftover;
  if (spec.kind == netkit::codec_kind::raw) {
    decoded = reads;  // each read taken as one message: right only if each held exactly one
    exact = reads == messages.size() && reads_one_whole == messages.size();
  } else {
    leftover = dec->finish(input.data());
    exact =
        decoded == messages.size() && mismatched == 0 && decode_error.empty() && leftover.empty();
  }
  fmt::print(
      "codec={} messages={} writes={} bytes={} reads={} reads_one_whole={} decoded={} "
      "mismatched={} exact={}{}{}\n",
      spec.to_string(), messages.size(), frames.size(), received, reads, reads_one_whole, decoded,
      mismatched, exact ? "yes" : "no",
      decode_error.empty() ? "" : fmt::format(" error=\"{}\"", decode_error),
      leftover.empty() ? "" : fmt::format(" leftover=\"{}\"", leftover));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  probe_args a;
  CLI::App app{
      "Sends messages one write() each over loopback TCP and counts the receiver's "
      "reads against them; decodes with --codec and checks every message",
      "experiment-sticky-packets"};
  app.add_option("--codec", a.codec, "raw, line, crlf, fixed:N, length, length16")
      ->capture_default_str();
  app.add_option("--messages", a.messages, "Messages to send")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000000));
  app.add_option("--min-size", a.min_size, "Smallest payload (bytes)")->capture_default_str();
  app.add_option("--max-size", a.max_size, "Largest payload (bytes)")->capture_default_str();
  app.add_option("--read-size", a.read_size, "Receiver's read() buffer (bytes)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 24));
  app.add_option("--read-pause-us", a.read_pause_us, "Receiver sleeps this long before each read")
      ->capture_default_str();
  app.add_option("--write-pause-us", a.write_pause_us, "Sender sleeps this long after each write")
      ->capture_default_str();
  app.add_flag("--nodelay", a.nodelay, "TCP_NODELAY on the sender (no Nagle coalescing)");
  app.add_option("--seed", a.seed, "Seed of the payloads")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    if (a.min_size > a.max_size) throw netkit::usage_error("--min-size is above --max-size");
    return run(a);
  } catch (const std::exception& e) {
    fmt::print(stderr, "experiment-sticky-packets: {}\n", e.what());
    return 1;
  }
}
