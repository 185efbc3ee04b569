// codec_spec text form and the factories.
#include "netkit/codec/codec.hpp"

#include <charconv>

#include <fmt/format.h>

#include "netkit/codec/delimited_codec.hpp"
#include "netkit/codec/fixed_codec.hpp"
#include "netkit/codec/length_codec.hpp"
#include "netkit/codec/raw_codec.hpp"
#include "netkit/codec/sockperf_codec.hpp"
#include "netkit/error.hpp"

namespace netkit {
namespace {

// A peer-controlled length is trusted up to this; larger limits are a configuration mistake.
constexpr std::size_t max_message_limit = std::size_t{1} << 30;

constexpr std::string_view valid_forms =
    "expected raw, fixed:N, line, crlf, length, length16 or sockperf, optionally followed by "
    "\",max=BYTES\" (e.g. \"line,max=65536\")";

[[noreturn]] void bad_spec(std::string_view text, std::string_view why) {
  throw usage_error(fmt::format("invalid codec spec \"{}\": {}; {}", text, why, valid_forms));
}

std::size_t parse_count(std::string_view text, std::string_view digits, std::string_view what) {
  std::size_t value = 0;
  const auto* end = digits.data() + digits.size();
  const auto [ptr, ec] = std::from_chars(digits.data(), end, value);
  if (digits.empty() || ec != std::errc{} || ptr != end)
    bad_spec(text, fmt::format("{} \"{}\" is not a byte count", what, digits));
  return value;
}

void validate(const codec_spec& spec, std::string_view text) {
  if (spec.max_message == 0) bad_spec(text, "max must be at least 1");
  if (spec.max_message > max_message_limit)
    bad_spec(text, fmt::format("max {} exceeds the limit of {} bytes", spec.max_message,
                               max_message_limit));
  if (spec.kind == codec_kind::sockperf && spec.max_message < sockperf::header_size)
    bad_spec(text, fmt::format("a sockperf message has a {}-byte header: max must be at least {}",
                               sockperf::header_size, sockperf::header_size));
  if (spec.kind == codec_kind::fixed) {
    if (spec.fixed_size == 0) bad_spec(text, "fixed record size must be at least 1");
    if (spec.fixed_size > spec.max_message)
      bad_spec(text, fmt::format("fixed record size {} exceeds max {}", spec.fixed_size,
                                 spec.max_message));
  }
}

}  // namespace

codec_spec codec_spec::parse(std::string_view text) {
  codec_spec spec;
  std::string_view base = text;
  if (const auto comma = text.find(','); comma != std::string_view::npos) {
    base = text.substr(0, comma);
    const std::string_view option = text.substr(comma + 1);
    constexpr std::string_view max_key = "max=";
    if (!option.starts_with(max_key)) bad_spec(text, fmt::format("unknown option \"{}\"", option));
    spec.max_message = parse_count(text, option.substr(max_key.size()), "max");
  }
  constexpr std::string_view fixed_prefix = "fixed:";
  if (base == "raw") {
    spec.kind = codec_kind::raw;
  } else if (base == "line") {
    spec.kind = codec_kind::line;
  } else if (base == "crlf") {
    spec.kind = codec_kind::crlf;
  } else if (base == "length" || base == "length32") {
    spec.kind = codec_kind::length32;
  } else if (base == "length16") {
    spec.kind = codec_kind::length16;
  } else if (base == "sockperf") {
    spec.kind = codec_kind::sockperf;
  } else if (base.starts_with(fixed_prefix)) {
    spec.kind = codec_kind::fixed;
    spec.fixed_size = parse_count(text, base.substr(fixed_prefix.size()), "fixed record size");
  } else {
    bad_spec(text, fmt::format("unknown codec \"{}\"", base));
  }
  validate(spec, text);
  return spec;
}

std::string codec_spec::to_string() const {
  std::string out;
  switch (kind) {
    case codec_kind::raw:
      out = "raw";
      break;
    case codec_kind::fixed:
      out = fmt::format("fixed:{}", fixed_size);
      break;
    case codec_kind::line:
      out = "line";
      break;
    case codec_kind::crlf:
      out = "crlf";
      break;
    case codec_kind::length32:
      out = "length";
      break;
    case codec_kind::length16:
      out = "length16";
      break;
    case codec_kind::sockperf:
      out = "sockperf";
      break;
  }
  if (max_message != codec_spec{}.max_message) out += fmt::format(",max={}", max_message);
  return out;
}

std::unique_ptr<decoder> make_decoder(const codec_spec& spec) {
  validate(spec, spec.to_string());
  switch (spec.kind) {
    case codec_kind::raw:
      return std::make_unique<raw_decoder>(spec.max_message);
    case codec_kind::fixed:
      return std::make_unique<fixed_decoder>(spec.fixed_size);
    case codec_kind::line:
      return std::make_unique<delimited_decoder>(delimiter::lf, spec.max_message);
    case codec_kind::crlf:
      return std::make_unique<delimited_decoder>(delimiter::crlf, spec.max_message);
    case codec_kind::length32:
      return std::make_unique<length_decoder>(4, spec.max_message);
    case codec_kind::length16:
      return std::make_unique<length_decoder>(2, spec.max_message);
    case codec_kind::sockperf:
      return std::make_unique<sockperf::decoder>(spec.max_message);
  }
  throw usage_error("make_decoder: unknown codec_kind");
}

std::unique_ptr<encoder> make_encoder(const codec_spec& spec) {
  validate(spec, spec.to_string());
  switch (spec.kind) {
    case codec_kind::raw:
      return std::make_unique<raw_encoder>(spec.max_message);
    case codec_kind::fixed:
      return std::make_unique<fixed_encoder>(spec.fixed_size);
    case codec_kind::line:
      return std::make_unique<delimited_encoder>(delimiter::lf, spec.max_message);
    case codec_kind::crlf:
      return std::make_unique<delimited_encoder>(delimiter::crlf, spec.max_message);
    case codec_kind::length32:
      return std::make_unique<length_encoder>(4, spec.max_message);
    case codec_kind::length16:
      return std::make_unique<length_encoder>(2, spec.max_message);
    case codec_kind::sockperf:  // the decoder made the reply: it goes out as it is
      return std::make_unique<raw_encoder>(spec.max_message);
  }
  throw usage_error("make_encoder: unknown codec_kind");
}

}  // namespace netkit
