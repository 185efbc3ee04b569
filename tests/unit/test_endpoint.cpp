// endpoint URI parsing and printing: round trips for every transport and clear errors.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "netkit/endpoint.hpp"
#include "netkit/error.hpp"

namespace netkit {
namespace {

using testing::HasSubstr;

class uri_round_trip : public testing::TestWithParam<const char*> {};

TEST_P(uri_round_trip, parse_then_print_is_identity) {
  auto ep = endpoint::parse(GetParam());
  EXPECT_EQ(ep.to_uri(), GetParam());
  EXPECT_EQ(endpoint::parse(ep.to_uri()), ep);
}

INSTANTIATE_TEST_SUITE_P(all, uri_round_trip,
                         testing::Values("tcp://127.0.0.1:9000", "tcp://0.0.0.0:0",
                                         "tcp://[::1]:9000", "tcp://[fe80::1]:1",
                                         "udp://127.0.0.1:53", "udp://[::1]:65535",
                                         "unix:///tmp/netkit.sock", "unix-dgram:///tmp/d.sock",
                                         "unix://@abstract-name", "unix-dgram://@dgram-name"));

TEST(endpoint, fields_of_parsed_uris) {
  auto v4 = endpoint::parse("tcp://127.0.0.1:9000");
  EXPECT_EQ(v4.kind(), transport::tcp);
  EXPECT_EQ(v4.family(), AF_INET);
  EXPECT_EQ(v4.port(), 9000);
  EXPECT_EQ(v4.host(), "127.0.0.1");
  EXPECT_EQ(v4.socket_type(), SOCK_STREAM);
  auto v6 = endpoint::parse("udp://[::1]:53");
  EXPECT_EQ(v6.family(), AF_INET6);
  EXPECT_EQ(v6.host(), "::1");
  EXPECT_EQ(v6.socket_type(), SOCK_DGRAM);
  auto path = endpoint::parse("unix:///tmp/x.sock");
  EXPECT_FALSE(path.is_abstract());
  EXPECT_EQ(path.path(), "/tmp/x.sock");
  auto abs = endpoint::parse("unix-dgram://@name");
  EXPECT_TRUE(abs.is_abstract());
  EXPECT_EQ(abs.path(), "name");
  EXPECT_EQ(abs.kind(), transport::unix_dgram);
}

TEST(endpoint, localhost_resolves_to_a_loopback_address) {
  auto ep = endpoint::parse("tcp://localhost:8080");
  EXPECT_EQ(ep.port(), 8080);
  EXPECT_THAT(ep.host(), testing::AnyOf("127.0.0.1", "::1"));
  EXPECT_THAT(ep.to_uri(), testing::AnyOf("tcp://127.0.0.1:8080", "tcp://[::1]:8080"));
}

struct bad_uri {
  const char* uri;
  const char* problem;
};

class bad_uri_test : public testing::TestWithParam<bad_uri> {};

TEST_P(bad_uri_test, error_names_the_uri_and_the_problem) {
  try {
    endpoint::parse(GetParam().uri);
    FAIL() << "parsed " << GetParam().uri;
  } catch (const usage_error& e) {
    EXPECT_THAT(e.what(), HasSubstr(std::string("'") + GetParam().uri + "'"));
    EXPECT_THAT(e.what(), HasSubstr(GetParam().problem));
  }
}

INSTANTIATE_TEST_SUITE_P(
    all, bad_uri_test,
    testing::Values(bad_uri{"127.0.0.1:80", "missing '://'"},
                    bad_uri{"http://127.0.0.1:80", "unknown scheme 'http'"},
                    bad_uri{"tcp://127.0.0.1", "missing ':PORT'"},
                    bad_uri{"tcp://127.0.0.1:65536", "port '65536'"},
                    bad_uri{"tcp://127.0.0.1:http", "port 'http'"},
                    bad_uri{"tcp://:80", "missing host"},
                    bad_uri{"tcp://::1:80", "IPv6 addresses must be written in brackets"},
                    bad_uri{"tcp://[::1:80", "missing ']'"},
                    bad_uri{"tcp://127.0.0.1:80/x", "unexpected path"},
                    bad_uri{"unix://relative.sock", "must be absolute"},
                    bad_uri{"unix://@", "empty abstract socket name"},
                    bad_uri{"tcp://1.2.3:80", "'1.2.3' is not an IPv4 address"},
                    bad_uri{"udp://300.1.1.1:53", "not an IPv4 address"}));

// Case 29: a sun_path that does not fit is an error, never truncated; two long paths
// that share a 107-byte prefix can therefore never collide.
TEST(endpoint, unix_path_too_long_is_an_error_never_truncated) {
  std::string fits = "/" + std::string(max_unix_path - 1, 'a');
  EXPECT_EQ(endpoint::parse("unix://" + fits).path(), fits);
  std::string too_long = fits + "b";
  try {
    endpoint::parse("unix://" + too_long);
    FAIL() << "a " << too_long.size() << "-byte path was accepted";
  } catch (const sys_error& e) {
    EXPECT_EQ(e.errno_value(), ENAMETOOLONG);
    EXPECT_THAT(e.what(), HasSubstr(too_long));
    EXPECT_THAT(e.what(), HasSubstr("108 bytes"));
  }
  EXPECT_THROW(endpoint::unix_abstract(transport::unix_stream, std::string(max_unix_path + 1, 'n')),
               sys_error);
  EXPECT_NO_THROW(endpoint::unix_abstract(transport::unix_stream, std::string(max_unix_path, 'n')));
}

TEST(endpoint, from_sockaddr_round_trips) {
  auto ep = endpoint::parse("tcp://[::1]:4242");
  auto copy = endpoint::from_sockaddr(transport::tcp, ep.addr(), ep.length());
  EXPECT_EQ(copy, ep);
  EXPECT_EQ(copy.to_uri(), "tcp://[::1]:4242");
}

}  // namespace
}  // namespace netkit
