#include "config.hpp"

#include <arpa/inet.h>

#include <fmt/format.h>

#include "netkit/codec/sockperf_codec.hpp"
#include "netkit/error.hpp"

namespace netkit::loadgen {

std::string_view to_string(bench_mode m) noexcept {
  switch (m) {
    case bench_mode::pingpong:
      return "pingpong";
    case bench_mode::rr:
      return "rr";
    case bench_mode::rate:
      return "rate";
    case bench_mode::churn:
      return "churn";
  }
  return "?";
}

std::string_view to_string(spacing s) noexcept {
  return s == spacing::poisson ? "poisson" : "uniform";
}

std::string_view to_string(wire_protocol p) noexcept {
  return p == wire_protocol::echo ? "echo" : "sockperf";
}

std::size_t bench_config::frame_size() const {
  if (protocol == wire_protocol::sockperf) return std::max(size, sockperf::header_size);
  if (!stream()) return size;
  std::array<std::byte, 8> header;
  return make_encoder(codec)->header(size, header) + size + make_encoder(codec)->trailer().size();
}

namespace {

std::uint32_t parse_v4(std::string_view text, std::string_view whole) {
  in_addr a{};
  if (::inet_pton(AF_INET, std::string(text).c_str(), &a) != 1)
    throw usage_error(
        fmt::format("--source {}: \"{}\" is not an IPv4 address (a range is FIRST-LAST, e.g. "
                    "127.0.0.1-127.0.0.8)",
                    whole, text));
  return ntohl(a.s_addr);
}

}  // namespace

std::vector<endpoint> parse_sources(std::string_view text) {
  constexpr std::uint32_t max_range = 65536;
  std::vector<endpoint> out;
  while (!text.empty()) {
    const auto comma = text.find(',');
    const auto item = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    if (item.empty()) throw usage_error("--source: an empty address in the list");
    if (const auto dash = item.find('-'); dash != std::string_view::npos) {
      const auto first = parse_v4(item.substr(0, dash), item);
      const auto last = parse_v4(item.substr(dash + 1), item);
      if (last < first || last - first >= max_range)
        throw usage_error(
            fmt::format("--source {}: the range must run upwards and hold at most "
                        "{} addresses",
                        item, max_range));
      for (std::uint64_t a = first; a <= last; ++a) {
        in_addr addr{htonl(static_cast<std::uint32_t>(a))};
        char buf[INET_ADDRSTRLEN];
        ::inet_ntop(AF_INET, &addr, buf, sizeof buf);
        out.push_back(endpoint::parse(fmt::format("tcp://{}:0", buf)));
      }
    } else {
      const bool v6 = item.find(':') != std::string_view::npos;
      out.push_back(endpoint::parse(v6 ? fmt::format("tcp://[{}]:0", item)
                                       : fmt::format("tcp://{}:0", item)));
    }
  }
  return out;
}

std::size_t share_of(std::size_t total, std::size_t parts, std::size_t index) noexcept {
  if (parts == 0) return 0;
  return total / parts + (index < total % parts ? 1 : 0);
}

}  // namespace netkit::loadgen
