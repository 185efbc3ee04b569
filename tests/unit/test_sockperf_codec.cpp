// The sockperf codec: the replies a sockperf server owes, on a stream fed in pieces, and
// none for what asks for none.
#include <gtest/gtest.h>

#include "netkit/buffer.hpp"
#include "netkit/codec/codec.hpp"
#include "netkit/codec/sockperf_codec.hpp"
#include "netkit/error.hpp"

namespace netkit {
namespace {

std::vector<std::byte> message(std::uint64_t seq, std::uint16_t flags, std::size_t size) {
  auto m = sockperf::make_request(seq, size, true);
  sockperf::write_header({seq, flags, static_cast<std::uint32_t>(size)}, m);
  return m;
}

TEST(sockperf_codec, parses_and_names_itself) {
  const auto spec = codec_spec::parse("sockperf");
  EXPECT_EQ(spec.kind, codec_kind::sockperf);
  EXPECT_EQ(spec.to_string(), "sockperf");
  EXPECT_EQ(codec_spec::parse("sockperf,max=65536").max_message, 65536u);
  EXPECT_THROW(codec_spec::parse("sockperf,max=13"), usage_error) << "shorter than its header";
}

TEST(sockperf_codec, header_is_network_order_and_round_trips) {
  const auto m = sockperf::make_request(0x0102030405060708, 20, true);
  ASSERT_EQ(m.size(), 20u);
  EXPECT_EQ(m[0], std::byte{1});
  EXPECT_EQ(m[7], std::byte{8});
  EXPECT_EQ(m[9], std::byte{sockperf::flag_client | sockperf::flag_pong_request});
  EXPECT_EQ(m[13], std::byte{20});
  const auto h = sockperf::read_header(m);
  EXPECT_EQ(h.sequence, 0x0102030405060708u);
  EXPECT_EQ(h.flags, sockperf::flag_client | sockperf::flag_pong_request);
  EXPECT_EQ(h.length, 20u);
  EXPECT_EQ(sockperf::make_request(1, 3, false).size(), sockperf::header_size)
      << "never shorter than its header";
}

TEST(sockperf_codec, answers_pong_requests_with_the_client_flag_cleared) {
  auto dec = make_decoder(codec_spec::parse("sockperf"));
  const auto request = message(42, sockperf::flag_client | sockperf::flag_pong_request, 64);
  const auto r = dec->decode(request);
  ASSERT_EQ(r.state, decode_result::status::message);
  EXPECT_EQ(r.consumed, 64u);
  ASSERT_EQ(r.message.size(), 64u);
  const auto h = sockperf::read_header(r.message);
  EXPECT_EQ(h.sequence, 42u);
  EXPECT_EQ(h.flags, sockperf::flag_pong_request) << "a reply is a server message";
  EXPECT_EQ(h.length, 64u);
  EXPECT_TRUE(std::equal(request.begin() + 14, request.end(), r.message.begin() + 14));
  // The encoder sends the reply as it is.
  byte_buffer out;
  make_encoder(codec_spec::parse("sockperf"))->encode(r.message, out);
  EXPECT_EQ(out.size(), 64u);
}

TEST(sockperf_codec, stays_silent_for_what_asks_no_reply) {
  auto dec = make_decoder(codec_spec::parse("sockperf"));
  for (std::uint16_t flags : {std::uint16_t{sockperf::flag_client},        // under-load, not asked
                              std::uint16_t{sockperf::flag_pong_request},  // a server's reply
                              std::uint16_t{sockperf::flag_client | sockperf::flag_pong_request |
                                            sockperf::flag_warmup}}) {
    const auto m = message(7, flags, 30);
    const auto r = dec->decode(m);
    ASSERT_EQ(r.state, decode_result::status::message) << flags;
    EXPECT_EQ(r.consumed, 30u) << flags;
    EXPECT_TRUE(r.message.empty()) << flags;
  }
}

TEST(sockperf_codec, frames_a_stream_fed_byte_by_byte) {
  auto dec = make_decoder(codec_spec::parse("sockperf"));
  std::vector<std::byte> stream;
  for (std::uint64_t seq = 1; seq <= 5; ++seq) {
    auto m = message(seq, sockperf::flag_client | (seq % 2 ? sockperf::flag_pong_request : 0),
                     14 + seq * 3);
    stream.insert(stream.end(), m.begin(), m.end());
  }
  byte_buffer in;
  std::vector<std::uint64_t> answered;
  std::size_t messages = 0;
  for (auto b : stream) {
    in.append(std::span(&b, 1));
    for (;;) {
      auto r = dec->decode(in.data());
      if (r.state == decode_result::status::need_more) break;
      ASSERT_EQ(r.state, decode_result::status::message);
      ++messages;
      if (!r.message.empty()) answered.push_back(sockperf::read_header(r.message).sequence);
      in.consume(r.consumed);
    }
  }
  EXPECT_EQ(messages, 5u);
  EXPECT_EQ(answered, (std::vector<std::uint64_t>{1, 3, 5}));
  EXPECT_TRUE(in.empty());
  EXPECT_EQ(dec->finish(in.data()), "");
}

TEST(sockperf_codec, refuses_impossible_lengths_and_reports_a_cut_message) {
  auto dec = make_decoder(codec_spec::parse("sockperf,max=1000"));
  auto short_len = message(1, sockperf::flag_client, 14);
  sockperf::write_header({1, sockperf::flag_client, 13}, short_len);
  EXPECT_EQ(dec->decode(short_len).state, decode_result::status::error);
  auto huge = message(1, sockperf::flag_client, 14);
  sockperf::write_header({1, sockperf::flag_client, 1001}, huge);
  const auto r = dec->decode(huge);
  ASSERT_EQ(r.state, decode_result::status::error);
  EXPECT_NE(r.error.find("1001"), std::string_view::npos) << r.error;
  const auto m = message(1, sockperf::flag_client, 40);
  EXPECT_NE(dec->finish(std::span(m).first(20)).find("40-byte"), std::string::npos);
  EXPECT_NE(dec->finish(std::span(m).first(5)).find("header"), std::string::npos);
}

}  // namespace
}  // namespace netkit
