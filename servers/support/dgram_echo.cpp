#include "support/dgram_echo.hpp"

#include <sys/socket.h>

#include <cstdio>

#include <fmt/format.h>

#include "netkit/error.hpp"

namespace netkit::servers::support {

dgram_echoer::dgram_echoer(int fd, const model_settings& settings)
    : fd_(fd),
      kind_(settings.listen.kind()),
      verbose_(settings.verbose),
      buffer_(settings.max_datagram) {
  if (settings.codec.kind == codec_kind::sockperf) sockperf_ = make_decoder(settings.codec);
}

std::span<const std::byte> dgram_echoer::reply_of(std::span<const std::byte> datagram,
                                                  const std::string& from) {
  if (!sockperf_) return datagram;
  reply_.clear();
  sockperf_->reset();
  // Bounded by the datagram: each message consumes at least a header.
  for (std::size_t used = 0; used < datagram.size();) {
    auto r = sockperf_->decode(datagram.subspan(used));
    if (r.state != decode_result::status::message) {
      ++stats_.malformed;
      fmt::print(
          stderr, "datagram from {}: {}; dropped\n", from,
          r.state == decode_result::status::error ? r.error : "ends inside a sockperf message");
      return {};
    }
    if (r.message.empty()) ++stats_.no_reply;
    reply_.insert(reply_.end(), r.message.begin(), r.message.end());
    used += r.consumed;
  }
  return reply_;
}

step dgram_echoer::echo_one(recv_flags flags) {
  auto r = recv_datagram(fd_, buffer_, kind_, flags);
  if (r.would_block()) return step::would_block;
  if (!r.ok()) {
    // An unconnected server socket can see errors for an earlier reply (ICMP from a
    // client that vanished, with IP_RECVERR): one peer's problem, never the server's end.
    ++stats_.recv_errors;
    fmt::print(stderr, "recv: {}\n", errno_text(r.err));
    return step::other;
  }
  ++stats_.received;
  auto from = r.from.length() > sizeof(sa_family_t) ? r.from.to_uri() : std::string("(unbound)");
  if (r.truncated) {
    ++stats_.truncated;
    fmt::print(stderr,
               "truncated datagram from {}: {} bytes, buffer {} bytes; dropped, not echoed\n", from,
               r.full_size, buffer_.size());
    return step::other;
  }
  if (r.from.length() <= sizeof(sa_family_t)) {
    ++stats_.unreplyable;
    if (verbose_)
      fmt::print(stderr, "{} bytes from an unbound socket: no address to reply to\n", r.n);
    return step::other;
  }
  if (verbose_) fmt::print(stderr, "{} bytes from {}\n", r.n, from);
  auto reply = reply_of(std::span(buffer_).first(static_cast<std::size_t>(r.n)), from);
  if (sockperf_ && reply.empty()) return step::other;
  auto s = send_datagram(fd_, reply, &r.from);
  if (!s.ok()) {
    ++stats_.send_failed;
    if (verbose_ || !s.would_block())
      fmt::print(stderr, "reply to {}: {}\n", from, errno_text(s.err));
    return step::other;
  }
  ++stats_.echoed;
  return step::echoed;
}

server_model dgram_model(std::string name, std::string description,
                         int (*run)(const server_model&, const model_settings&)) {
  return {.name = std::move(name),
          .family = transport_family::datagram,
          .transports = {},
          .description = std::move(description),
          .takes = {common_option::codec, common_option::unix_mode, common_option::max_datagram},
          .own_options = {},
          .probe = nullptr,
          .run = run};
}

unix_listener open_dgram_socket(const server_model& model, const model_settings& settings,
                                io_mode mode) {
  if (settings.max_datagram == 0) throw usage_error("--max-datagram must be at least 1");
  listen_options lo;
  lo.unix_mode = settings.unix_mode;
  auto listener = listen_unix(settings.listen, mode, lo);  // also fine for udp: no file
  auto local = local_endpoint(listener.fd.get(), settings.listen.kind());
  fmt::print("listening on {} model={}\n", local.to_uri(), model.name);
  std::fflush(stdout);
  return listener;
}

int print_dgram_summary(const dgram_echoer& echoer) {
  const auto& st = echoer.stats();
  fmt::print(
      "served: received={} echoed={} truncated={} unreplyable={} send_failed={} recv_errors={} "
      "no_reply={} malformed={}\n",
      st.received, st.echoed, st.truncated, st.unreplyable, st.send_failed, st.recv_errors,
      st.no_reply, st.malformed);
  std::fflush(stdout);
  return 0;
}

}  // namespace netkit::servers::support
