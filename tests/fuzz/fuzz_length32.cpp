// libFuzzer target for the "length32" decoder; see fuzz_codec.hpp for the properties checked.
#include "fuzz_codec.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return netkit::fuzz::run(netkit::codec_kind::length32, data, size);
}
