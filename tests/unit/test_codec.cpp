// Framing codecs against a simulated connection: chunks are appended to a byte_buffer and the
// decoder is run until it needs more, exactly as the TCP connection layer does.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <new>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "netkit/buffer.hpp"
#include "netkit/codec/codec.hpp"
#include "netkit/error.hpp"
#include "support/replaced_new.hpp"

// Largest single allocation since the last reset: proves oversize length prefixes never
// reach the allocator.
namespace {
std::atomic<std::size_t> largest_allocation{0};
}  // namespace

void netkit::test::observe_allocation(std::size_t n) noexcept {
  std::size_t seen = largest_allocation.load(std::memory_order_relaxed);
  while (n > seen && !largest_allocation.compare_exchange_weak(seen, n)) {
  }
}

namespace netkit {
namespace {

using status = decode_result::status;

std::span<const std::byte> bytes(std::string_view s) {
  return std::as_bytes(std::span(s));
}
std::string str(std::span<const std::byte> s) {
  return {reinterpret_cast<const char*>(s.data()), s.size()};
}

struct outcome {
  std::vector<std::string> messages;
  bool error = false;
  std::string error_text;
  std::string finish;  // decoder::finish() on what was left when the input ran out
  std::size_t peak_buffered = 0;
};

// Feeds `stream` cut at `cuts` (ascending offsets) into a fresh decoder.
outcome run(const codec_spec& spec, std::string_view stream, const std::vector<std::size_t>& cuts) {
  auto dec = make_decoder(spec);
  outcome out;
  byte_buffer buf;
  std::size_t pos = 0;
  for (std::size_t i = 0; i <= cuts.size(); ++i) {
    const std::size_t end = i < cuts.size() ? cuts[i] : stream.size();
    buf.append(stream.substr(pos, end - pos));
    pos = end;
    out.peak_buffered = std::max(out.peak_buffered, buf.size());
    // Bound: every message consumes >= 1 byte (or is an empty frame of >= 1 header byte).
    for (;;) {
      const auto r = dec->decode(buf.data());
      if (r.state == status::need_more) break;
      if (r.state == status::error) {
        out.error = true;
        out.error_text = std::string(r.error);
        return out;
      }
      EXPECT_GT(r.consumed, 0u);
      EXPECT_LE(r.consumed, buf.size());
      EXPECT_LE(r.message.size(), spec.max_message);
      EXPECT_GE(r.message.data(), buf.data().data());
      EXPECT_LE(r.message.data() + r.message.size(), buf.data().data() + r.consumed);
      out.messages.push_back(str(r.message));
      buf.consume(r.consumed);
    }
  }
  out.finish = dec->finish(buf.data());
  return out;
}

std::string encode_all(const codec_spec& spec, const std::vector<std::string>& messages) {
  auto enc = make_encoder(spec);
  byte_buffer buf;
  for (const auto& m : messages)
    enc->encode(bytes(m), buf);
  return str(buf.data());
}

// Messages the codec can frame: empty ones where allowed, delimiter look-alikes for the
// delimited codecs, arbitrary binary for the others.
std::vector<std::string> sample_messages(const codec_spec& spec, std::size_t count,
                                         std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::string> out;
  for (std::size_t i = 0; i < count; ++i) {
    std::size_t len = spec.kind == codec_kind::fixed ? spec.fixed_size : rng() % 40;
    if (spec.kind != codec_kind::fixed && i % 5 == 0) len = 0;
    if (spec.kind != codec_kind::fixed && i % 17 == 3) len = 300;
    std::string m(len, '\0');
    for (auto& c : m)
      c = static_cast<char>(rng());
    if (spec.kind == codec_kind::line) {
      std::replace(m.begin(), m.end(), '\n', '\r');  // '\r' stays data for "line"
    } else if (spec.kind == codec_kind::crlf) {
      // Keep lone '\n' and lone '\r' (also at the end) as data; break up every "\r\n".
      for (std::size_t k = 1; k < m.size(); ++k)
        if (m[k - 1] == '\r' && m[k] == '\n') m[k] = 'x';
      if (i % 7 == 1) m = "lone\nnewline\r";
    }
    out.push_back(std::move(m));
  }
  return out;
}

class CodecStream : public ::testing::TestWithParam<const char*> {
 protected:
  codec_spec spec_ = codec_spec::parse(GetParam());
  std::vector<std::string> messages_ = sample_messages(spec_, 60, 42);
  std::string stream_ = encode_all(spec_, messages_);

  void expect_exact(const outcome& o, const std::string& how) const {
    EXPECT_FALSE(o.error) << how << ": " << o.error_text;
    EXPECT_EQ(o.finish, "") << how;
    ASSERT_EQ(o.messages.size(), messages_.size()) << how;
    for (std::size_t i = 0; i < messages_.size(); ++i)
      ASSERT_EQ(o.messages[i], messages_[i]) << how << ", message " << i;
  }
};

TEST_P(CodecStream, WholeStreamAtOnce) {
  expect_exact(run(spec_, stream_, {}), "one chunk");
}

TEST_P(CodecStream, EverySplitPoint) {
  ASSERT_GT(stream_.size(), 400u);
  for (std::size_t cut = 0; cut <= stream_.size(); ++cut)
    expect_exact(run(spec_, stream_, {cut}), "cut at " + std::to_string(cut));
}

TEST_P(CodecStream, OneByteChunks) {
  std::vector<std::size_t> cuts(stream_.size());
  for (std::size_t i = 0; i < cuts.size(); ++i)
    cuts[i] = i;
  expect_exact(run(spec_, stream_, cuts), "1-byte chunks");
}

TEST_P(CodecStream, SeededRandomChunkings) {
  for (std::uint32_t seed = 1; seed <= 200; ++seed) {
    std::mt19937 rng(seed);
    std::vector<std::size_t> cuts;
    // Chunk sizes from 1 byte to a few frames, biased small.
    for (std::size_t pos = 0; pos < stream_.size();) {
      pos += 1 + rng() % (rng() % 2 ? 8 : 700);
      if (pos < stream_.size()) cuts.push_back(pos);
    }
    expect_exact(run(spec_, stream_, cuts), "seed " + std::to_string(seed));
  }
}

TEST_P(CodecStream, GatherFormMatchesEncode) {
  auto enc = make_encoder(spec_);
  std::string gathered;
  for (const auto& m : messages_) {
    std::byte head[8];
    const std::size_t h = enc->header(m.size(), head);
    ASSERT_LE(h, 8u);
    gathered += str(std::span(head, h)) + m + str(enc->trailer());
  }
  EXPECT_EQ(gathered, stream_);
}

TEST_P(CodecStream, EncodeRejectsOversize) {
  auto enc = make_encoder(spec_);
  const std::size_t limit = spec_.kind == codec_kind::fixed ? spec_.fixed_size : spec_.max_message;
  const std::string big(limit + 1, 'a');
  byte_buffer out;
  EXPECT_THROW(enc->encode(bytes(big), out), protocol_error);
  std::byte head[8];
  EXPECT_THROW((void)enc->header(big.size(), head), protocol_error);
  EXPECT_TRUE(out.empty()) << "nothing appended on failure";
  const std::string fits(limit, 'a');
  enc->encode(bytes(fits), out);
  EXPECT_EQ(run(spec_, str(out.data()), {}).messages, std::vector<std::string>{fits});
}

INSTANTIATE_TEST_SUITE_P(Codecs, CodecStream,
                         ::testing::Values("line", "crlf,max=400", "length", "length16,max=1000",
                                           "fixed:7", "length,max=300"),
                         [](const auto& param_info) {
                           std::string name = param_info.param;
                           for (auto& c : name)
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           return name;
                         });

// --- raw ---

TEST(RawCodec, EmptyInputNeedsMoreAndEachCallTakesAllAvailable) {
  auto dec = make_decoder(codec_spec::parse("raw"));
  EXPECT_EQ(dec->decode({}).state, status::need_more);
  const auto r = dec->decode(bytes("two msgs glued"));
  EXPECT_EQ(r.state, status::message);
  EXPECT_EQ(r.consumed, 14u);
  EXPECT_EQ(str(r.message), "two msgs glued") << "raw shows the sticky-packet problem";
  EXPECT_EQ(dec->finish(bytes("anything")), "");
}

TEST(RawCodec, MaxCapsOneMessage) {
  const auto spec = codec_spec::parse("raw,max=10");
  auto dec = make_decoder(spec);
  const auto r = dec->decode(bytes("0123456789abcdef"));
  EXPECT_EQ(r.consumed, 10u);
  EXPECT_EQ(str(r.message), "0123456789");
  byte_buffer out;
  EXPECT_THROW(make_encoder(spec)->encode(bytes("0123456789a"), out), protocol_error);
}

TEST(RawCodec, AnyChunkingPreservesTheBytes) {
  const auto spec = codec_spec::parse("raw,max=33");
  std::string stream(5000, '\0');
  std::mt19937 rng(5);
  for (auto& c : stream)
    c = static_cast<char>(rng());
  for (std::uint32_t seed = 0; seed < 50; ++seed) {
    std::vector<std::size_t> cuts;
    for (std::size_t pos = 0; pos < stream.size();) {
      pos += 1 + rng() % 100;
      if (pos < stream.size()) cuts.push_back(pos);
    }
    const auto o = run(spec, stream, cuts);
    std::string joined;
    for (const auto& m : o.messages) {
      EXPECT_LE(m.size(), 33u);
      EXPECT_FALSE(m.empty());
      joined += m;
    }
    EXPECT_EQ(joined, stream);
  }
}

// --- fixed ---

TEST(FixedCodec, EofMidRecordReportedByFinish) {
  const auto spec = codec_spec::parse("fixed:16");
  const auto o = run(spec, std::string(32 + 5, 'r'), {3, 20});
  EXPECT_EQ(o.messages.size(), 2u);
  EXPECT_EQ(o.finish, "stream ended inside a 16-byte fixed record (5 bytes received)");
  EXPECT_EQ(run(spec, std::string(48, 'r'), {7}).finish, "") << "ended on a record boundary";
  EXPECT_EQ(make_decoder(spec)->finish({}), "");
}

TEST(FixedCodec, EncodeRejectsWrongSize) {
  auto enc = make_encoder(codec_spec::parse("fixed:4"));
  byte_buffer out;
  EXPECT_THROW(enc->encode(bytes("abc"), out), protocol_error);
  EXPECT_THROW(enc->encode(bytes("abcde"), out), protocol_error);
  EXPECT_THROW(enc->encode({}, out), protocol_error);
  enc->encode(bytes("abcd"), out);
  EXPECT_EQ(str(out.data()), "abcd");
}

// --- line / crlf ---

TEST(LineCodec, CarriageReturnIsDataAndEmptyLinesAreMessages) {
  const auto o = run(codec_spec::parse("line"), "a\r\n\n\nb\n", {});
  EXPECT_EQ(o.messages, (std::vector<std::string>{"a\r", "", "", "b"}));
}

TEST(CrlfCodec, LoneLineFeedIsDataAndSplitDelimiterDecodesOnce) {
  const auto spec = codec_spec::parse("crlf");
  const std::string stream = "a\nb\r\n\r\nhello\r\n";
  EXPECT_EQ(run(spec, stream, {}).messages, (std::vector<std::string>{"a\nb", "", "hello"}));
  const auto split = stream.find("hello") + 6;  // between "hello\r" and "\n"
  const auto o = run(spec, stream, {split});
  EXPECT_EQ(o.messages, (std::vector<std::string>{"a\nb", "", "hello"}));
  EXPECT_EQ(o.finish, "");
  EXPECT_EQ(run(spec, "\r", {}).finish, "stream ended inside a line (1 bytes)");
  EXPECT_EQ(run(spec, "x\r\r\n", {1, 2}).messages, std::vector<std::string>{"x\r"});
}

TEST(LineCodec, EofInsideALineReportedByFinish) {
  const auto o = run(codec_spec::parse("line"), "one\ntwo\npartial", {5});
  EXPECT_EQ(o.messages, (std::vector<std::string>{"one", "two"}));
  EXPECT_EQ(o.finish, "stream ended inside a line (7 bytes)");
  EXPECT_EQ(make_decoder(codec_spec::parse("line"))->finish(bytes("a\nb\n")), "");
}

TEST(LineCodec, OneMebibyteWithoutDelimiterErrorsAtMax) {
  for (const char* text : {"line,max=65536", "crlf,max=65536"}) {
    const auto spec = codec_spec::parse(text);
    const std::string flood(1 << 20, 'x');
    std::vector<std::size_t> cuts;
    for (std::size_t pos = 4096; pos < flood.size(); pos += 4096)
      cuts.push_back(pos);
    const auto o = run(spec, flood, cuts);
    EXPECT_TRUE(o.error) << text;
    EXPECT_EQ(o.error_text.find("line longer than 65536 bytes without"), 0u) << o.error_text;
    EXPECT_LE(o.peak_buffered, 65536u + 4096u) << text << ": error reported as soon as max passed";
    EXPECT_TRUE(o.messages.empty());
  }
}

TEST(LineCodec, MessageOfExactlyMaxIsAcceptedOneMoreIsNot) {
  const std::string at_max(100, 'm');
  EXPECT_EQ(run(codec_spec::parse("line,max=100"), at_max + "\n", {}).messages,
            std::vector<std::string>{at_max});
  EXPECT_EQ(run(codec_spec::parse("crlf,max=100"), at_max + "\r\n", {50, 101}).messages,
            std::vector<std::string>{at_max});
  EXPECT_TRUE(run(codec_spec::parse("line,max=100"), at_max + "x\n", {}).error);
  EXPECT_TRUE(run(codec_spec::parse("crlf,max=100"), at_max + "x\r\n", {}).error);
  // A '\n' right after max bytes that is not part of "\r\n" does not end the line.
  EXPECT_TRUE(run(codec_spec::parse("crlf,max=100"), at_max + "\n\r\n", {}).error);
}

TEST(LineCodec, GrowingInputIsScannedOnceNotQuadratically) {
  // 1 MiB arriving one byte at a time: rescanning from the start on every call would be
  // ~5e11 byte comparisons (minutes); resuming the scan makes it instant.
  const auto spec = codec_spec::parse("crlf,max=2000000");
  auto dec = make_decoder(spec);
  byte_buffer buf;
  const auto start = std::chrono::steady_clock::now();
  std::size_t decoded = 0;
  for (std::size_t i = 0; i < (1u << 20); ++i) {
    buf.append(i % 1000 == 999 ? std::string_view("\n") : std::string_view("y"));
    const auto r = dec->decode(buf.data());
    ASSERT_EQ(r.state, status::need_more);
  }
  buf.append("\r\n");
  const auto r = dec->decode(buf.data());
  ASSERT_EQ(r.state, status::message);
  decoded = r.message.size();
  EXPECT_EQ(decoded, 1u << 20);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
}

TEST(LineCodec, EncodeRejectsEmbeddedDelimiter) {
  byte_buffer out;
  EXPECT_THROW(make_encoder(codec_spec::parse("line"))->encode(bytes("a\nb"), out), protocol_error);
  EXPECT_THROW(make_encoder(codec_spec::parse("crlf"))->encode(bytes("a\r\nb"), out),
               protocol_error);
  EXPECT_TRUE(out.empty());
  make_encoder(codec_spec::parse("crlf"))->encode(bytes("a\nb\r"), out);
  EXPECT_EQ(str(out.data()), "a\nb\r\r\n");
  make_encoder(codec_spec::parse("line"))->encode(bytes("c\r"), out);
  EXPECT_EQ(str(out.data()), "a\nb\r\r\nc\r\n");
}

TEST(LineCodec, ResetForgetsScanState) {
  auto dec = make_decoder(codec_spec::parse("line"));
  EXPECT_EQ(dec->decode(bytes("abc")).state, status::need_more);
  dec->reset();
  const auto r = dec->decode(bytes("\nrest"));
  EXPECT_EQ(r.state, status::message);
  EXPECT_EQ(r.consumed, 1u);
}

// --- length-prefixed ---

TEST(LengthCodec, GoldenEncoding) {
  byte_buffer out;
  make_encoder(codec_spec::parse("length"))->encode(bytes("abc"), out);
  EXPECT_EQ(str(out.data()), std::string("\0\0\0\3abc", 7));
  out.clear();
  make_encoder(codec_spec::parse("length16"))->encode(bytes(std::string(258, 'z')), out);
  EXPECT_EQ(str(out.data().first(2)), std::string("\1\2", 2));
  out.clear();
  make_encoder(codec_spec::parse("length"))->encode({}, out);
  EXPECT_EQ(str(out.data()), std::string(4, '\0'));
}

TEST(LengthCodec, ZeroLengthIsAnEmptyMessage) {
  const auto o = run(codec_spec::parse("length"), std::string("\0\0\0\0\0\0\0\1q", 9), {2});
  EXPECT_EQ(o.messages, (std::vector<std::string>{"", "q"}));
  EXPECT_EQ(run(codec_spec::parse("length16"), std::string("\0\0", 2), {}).messages,
            std::vector<std::string>{""});
}

TEST(LengthCodec, OversizeHeaderRejectedAtOnceWithoutAllocating) {
  struct header_case {
    const char* spec;
    std::string header;
    const char* length;
  };
  const std::vector<header_case> cases = {
      {"length", std::string("\x7f\xff\xff\xff", 4), "2147483647"},
      {"length", std::string("\xff\xff\xff\xff", 4), "4294967295"},
      {"length", std::string("\x00\x10\x00\x01", 4), "1048577"},  // max + 1
      {"length,max=1000", std::string("\x00\x00\x03\xe9", 4), "1001"},
      {"length16,max=1000", std::string("\x03\xe9", 2), "1001"},
      {"length16,max=1000", std::string("\xff\xff", 2), "65535"},
  };
  for (const auto& c : cases) {
    const auto spec = codec_spec::parse(c.spec);
    auto dec = make_decoder(spec);
    byte_buffer buf;
    // Header bytes one at a time: need_more until complete, then an error at once.
    largest_allocation = 0;
    decode_result r;
    for (std::size_t i = 0; i < c.header.size(); ++i) {
      buf.append(std::string_view(c.header).substr(i, 1));
      r = dec->decode(buf.data());
      if (i + 1 < c.header.size()) {
        EXPECT_EQ(r.state, status::need_more);
      }
    }
    ASSERT_EQ(r.state, status::error) << c.spec;
    EXPECT_EQ(r.consumed, 0u);
    const std::string text(r.error);
    EXPECT_NE(text.find(c.length), std::string::npos) << text;
    EXPECT_NE(text.find(std::to_string(spec.max_message)), std::string::npos) << text;
    EXPECT_LT(largest_allocation.load(), 4096u) << "no allocation of the announced size";
    EXPECT_NE(dec->finish(buf.data()).find(c.length), std::string::npos);
  }
}

TEST(LengthCodec, FinishReportsPartialHeaderAndBody) {
  const auto spec = codec_spec::parse("length");
  EXPECT_EQ(run(spec, std::string("\0\0", 2), {}).finish,
            "stream ended inside a 4-byte length header (2 bytes received)");
  EXPECT_EQ(run(spec, std::string("\0\0\0\5ab", 6), {}).finish,
            "stream ended inside a 5-byte message (2 of 5 bytes received)");
  EXPECT_EQ(run(spec, std::string("\0\0\0\1a", 5), {}).finish, "");
}

TEST(LengthCodec, Length16EncoderCapsAtHeaderRange) {
  auto enc = make_encoder(codec_spec::parse("length16"));  // max 1 MiB, header holds 65535
  byte_buffer out;
  EXPECT_THROW(enc->encode(bytes(std::string(65536, 'a')), out), protocol_error);
  enc->encode(bytes(std::string(65535, 'a')), out);
  EXPECT_EQ(out.size(), 65537u);
}

}  // namespace
}  // namespace netkit
