#include "support/dgram_echo.hpp"

#include <sys/socket.h>

#include <cstdio>
#include <cstring>

#include <fmt/format.h>

#include "netkit/error.hpp"

namespace netkit::servers::support {

dgram_echoer::dgram_echoer(int fd, const model_settings& settings, std::size_t batch)
    : fd_(fd),
      kind_(settings.listen.kind()),
      verbose_(settings.verbose),
      buffer_(batch == 0 ? settings.max_datagram : 0) {
  if (settings.codec.kind == codec_kind::sockperf) sockperf_ = make_decoder(settings.codec);
  if (batch > 0) batch_ = std::make_unique<datagram_batch>(batch, settings.max_datagram);
}

namespace {

// The sender as a URI, only for the messages that name it: formatting an address for
// every datagram would cost more than echoing it.
std::string sender_text(transport kind, const sockaddr* from, socklen_t len) {
  if (len <= sizeof(sa_family_t)) return "(unbound)";
  return endpoint::from_sockaddr(kind, from, len).to_uri();
}

}  // namespace

std::span<const std::byte> dgram_echoer::reply_of(std::span<const std::byte> datagram,
                                                  const endpoint& from) {
  if (!sockperf_) return datagram;
  reply_.clear();
  sockperf_->reset();
  // Bounded by the datagram: each message consumes at least a header.
  for (std::size_t used = 0; used < datagram.size();) {
    auto r = sockperf_->decode(datagram.subspan(used));
    if (r.state != decode_result::status::message) {
      ++stats_.malformed;
      fmt::print(
          stderr, "datagram from {}: {}; dropped\n", from.to_uri(),
          r.state == decode_result::status::error ? r.error : "ends inside a sockperf message");
      return {};
    }
    if (r.message.empty()) ++stats_.no_reply;
    reply_.insert(reply_.end(), r.message.begin(), r.message.end());
    used += r.consumed;
  }
  return reply_;
}

std::optional<std::span<const std::byte>> dgram_echoer::reply_for(
    std::span<const std::byte> datagram, std::size_t full_size, bool truncated,
    const sockaddr* from, socklen_t from_len) {
  ++stats_.received;
  if (truncated) {
    ++stats_.truncated;
    fmt::print(stderr,
               "truncated datagram from {}: {} bytes, buffer {} bytes; dropped, not echoed\n",
               sender_text(kind_, from, from_len), full_size, datagram.size());
    return std::nullopt;
  }
  if (from_len <= sizeof(sa_family_t)) {
    ++stats_.unreplyable;
    if (verbose_)
      fmt::print(stderr, "{} bytes from an unbound socket: no address to reply to\n",
                 datagram.size());
    return std::nullopt;
  }
  if (verbose_)
    fmt::print(stderr, "{} bytes from {}\n", datagram.size(), sender_text(kind_, from, from_len));
  if (!sockperf_) return datagram;
  auto reply = reply_of(datagram, endpoint::from_sockaddr(kind_, from, from_len));
  if (reply.empty()) return std::nullopt;
  return reply;
}

step dgram_echoer::echo_one(recv_flags flags) {
  auto r = recv_datagram(fd_, buffer_, kind_, flags);
  ++stats_.recv_calls;
  if (r.would_block()) return step::would_block;
  if (!r.ok()) {
    // An unconnected server socket can see errors for an earlier reply (ICMP from a
    // client that vanished, with IP_RECVERR): one peer's problem, never the server's end.
    ++stats_.recv_errors;
    fmt::print(stderr, "recv: {}\n", errno_text(r.err));
    return step::other;
  }
  auto reply = reply_for(std::span(buffer_).first(static_cast<std::size_t>(r.n)), r.full_size,
                         r.truncated, r.from.addr(), r.from.length());
  if (!reply) return step::other;
  auto s = send_datagram(fd_, *reply, &r.from);
  if (!s.ok()) {
    ++stats_.send_failed;
    if (verbose_ || !s.would_block())
      fmt::print(stderr, "reply to {}: {}\n", r.from.to_uri(), errno_text(s.err));
    return step::other;
  }
  ++stats_.echoed;
  return step::echoed;
}

step dgram_echoer::echo_batch(recv_flags flags) {
  auto r = batch_->receive(fd_, flags);
  ++stats_.recv_calls;
  if (r.would_block()) return step::would_block;
  if (!r.ok()) {
    ++stats_.recv_errors;  // as in echo_one: one peer's problem
    fmt::print(stderr, "recv: {}\n", errno_text(r.err));
    return step::other;
  }
  for (std::size_t i = 0; i < batch_->size(); ++i) {
    const auto d = (*batch_)[i];
    auto reply = reply_for(d.data, d.full_size, d.truncated, d.from, d.from_len);
    if (!reply) continue;
    // A sockperf reply is built aside; it goes out from the datagram's own slot, which it
    // always fits (a pong is no longer than its ping).
    if (reply->data() != d.data.data()) {
      if (reply->size() > d.data.size()) {
        ++stats_.send_failed;
        fmt::print(stderr, "reply to {}: {} bytes do not fit the {}-byte datagram; dropped\n",
                   sender_text(kind_, d.from, d.from_len), reply->size(), d.data.size());
        continue;
      }
      if (!reply->empty()) std::memcpy(d.data.data(), reply->data(), reply->size());
    }
    batch_->queue_reply(i, reply->size());
  }
  return flush_replies();
}

step dgram_echoer::flush_replies() {
  // udp: EAGAIN is our own send buffer, which drains; unix-dgram: one receiver's full
  // queue, which must not stall the others (see when_full).
  return account(
      batch_->send_queued(fd_, kind_ == transport::udp ? when_full::wait : when_full::drop));
}

void dgram_echoer::set_segmentation(udp_segmentation mode) noexcept {
  if (batch_) batch_->set_segmentation(mode);
}

step dgram_echoer::account(const batch_send_result& r) {
  stats_.echoed += r.sent;
  stats_.coalesced += r.coalesced;
  stats_.segmented_sends += r.segmented_sends;
  if (r.failed > 0) {
    stats_.send_failed += r.failed;
    // A receiver whose queue is full (unix-dgram) is counted, and reported only with
    // --verbose, as echo_one does.
    if (verbose_ || (r.err != EAGAIN && r.err != EWOULDBLOCK))
      fmt::print(stderr, "{} repl{} not sent: {}\n", r.failed, r.failed == 1 ? "y" : "ies",
                 errno_text(r.err));
  }
  if (r.would_block) {
    ++stats_.send_waits;
    return step::send_blocked;
  }
  return step::echoed;
}

server_model dgram_model(std::string name, std::string description,
                         int (*run)(const server_model&, const model_settings&),
                         std::vector<model_option> own) {
  return {.name = std::move(name),
          .family = transport_family::datagram,
          .transports = {},
          .description = std::move(description),
          .takes = {common_option::codec, common_option::unix_mode, common_option::max_datagram},
          .own_options = std::move(own),
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
      "served: received={} echoed={} truncated={} unreplyable={} send_failed={} send_waits={} "
      "recv_errors={} no_reply={} malformed={} recv_calls={} coalesced={} segmented_sends={}\n",
      st.received, st.echoed, st.truncated, st.unreplyable, st.send_failed, st.send_waits,
      st.recv_errors, st.no_reply, st.malformed, st.recv_calls, st.coalesced, st.segmented_sends);
  std::fflush(stdout);
  return 0;
}

}  // namespace netkit::servers::support
