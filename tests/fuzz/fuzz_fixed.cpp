// libFuzzer target for the "fixed" decoder; see fuzz_codec.hpp for the properties checked.
#include "fuzz_codec.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return netkit::fuzz::run(netkit::codec_kind::fixed, data, size);
}
