#include <string>

#include <gtest/gtest.h>

#include "netkit/codec/codec.hpp"
#include "netkit/error.hpp"

namespace netkit {
namespace {

TEST(CodecSpec, ParsesEveryForm) {
  EXPECT_EQ(codec_spec::parse("raw").kind, codec_kind::raw);
  EXPECT_EQ(codec_spec::parse("line").kind, codec_kind::line);
  EXPECT_EQ(codec_spec::parse("crlf").kind, codec_kind::crlf);
  EXPECT_EQ(codec_spec::parse("length").kind, codec_kind::length32);
  EXPECT_EQ(codec_spec::parse("length32").kind, codec_kind::length32);
  EXPECT_EQ(codec_spec::parse("length16").kind, codec_kind::length16);
  const auto fixed = codec_spec::parse("fixed:16");
  EXPECT_EQ(fixed.kind, codec_kind::fixed);
  EXPECT_EQ(fixed.fixed_size, 16u);
  EXPECT_EQ(fixed.max_message, std::size_t{1} << 20);
  const auto line = codec_spec::parse("line,max=65536");
  EXPECT_EQ(line.kind, codec_kind::line);
  EXPECT_EQ(line.max_message, 65536u);
}

TEST(CodecSpec, ToStringRoundTrips) {
  for (const char* text : {"raw", "fixed:1", "fixed:100,max=100", "line", "crlf,max=10", "length",
                           "length16,max=70000", "raw,max=1"}) {
    const auto spec = codec_spec::parse(text);
    EXPECT_EQ(spec.to_string(), text);
    EXPECT_EQ(codec_spec::parse(spec.to_string()), spec);
  }
  EXPECT_EQ(codec_spec::parse("length32").to_string(), "length");
  EXPECT_EQ(codec_spec::parse("line,max=1048576").to_string(), "line");
}

TEST(CodecSpec, RejectsBadTextNamingItAndListingValidForms) {
  for (const char* text :
       {"", "lines", "LINE", "fixed", "fixed:", "fixed:0", "fixed:-1", "fixed:x", "fixed:2000000",
        "line,max=", "line,max=0", "line,max=12k", "line,max=99999999999999999999999", "line,min=3",
        "line,", ",max=5", "length,max=2000000000", "raw max=5"}) {
    try {
      (void)codec_spec::parse(text);
      ADD_FAILURE() << "accepted \"" << text << "\"";
    } catch (const usage_error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(std::string("\"") + text + "\""), std::string::npos) << what;
      EXPECT_NE(what.find("fixed:N"), std::string::npos) << what;
      EXPECT_NE(what.find("length16"), std::string::npos) << what;
    }
  }
}

TEST(CodecSpec, FactoriesRejectInvalidSpecs) {
  codec_spec bad;
  bad.kind = codec_kind::fixed;
  bad.fixed_size = 0;
  EXPECT_THROW((void)make_decoder(bad), usage_error);
  EXPECT_THROW((void)make_encoder(bad), usage_error);
  bad.fixed_size = 10;
  bad.max_message = 5;
  EXPECT_THROW((void)make_decoder(bad), usage_error);
  codec_spec zero;
  zero.max_message = 0;
  EXPECT_THROW((void)make_encoder(zero), usage_error);
}

}  // namespace
}  // namespace netkit
