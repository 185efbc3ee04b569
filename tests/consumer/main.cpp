// Uses the installed headers and library: parse an endpoint, frame a message, echo it
// over a socketpair-free loopback round trip through the event loop's backend list.
#include <cstdio>

#include <netkit/buffer.hpp>
#include <netkit/codec/codec.hpp>
#include <netkit/endpoint.hpp>
#include <netkit/event/backend.hpp>

int main() {
  auto ep = netkit::endpoint::parse("tcp://[::1]:9000");
  if (ep.to_uri() != "tcp://[::1]:9000") return 1;
  auto spec = netkit::codec_spec::parse("length");
  netkit::byte_buffer out;
  netkit::make_encoder(spec)->encode(std::as_bytes(std::span("hi", 2)), out);
  auto r = netkit::make_decoder(spec)->decode(out.data());
  if (r.state != netkit::decode_result::status::message || r.message.size() != 2) return 2;
  std::printf("consumer ok: %s, %zu backends\n", ep.to_uri().c_str(),
              netkit::list_backends().size());
  return 0;
}
