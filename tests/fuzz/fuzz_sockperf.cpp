// libFuzzer target for the "sockperf" decoder; see fuzz_codec.hpp for the properties checked.
#include "fuzz_codec.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return netkit::fuzz::run(netkit::codec_kind::sockperf, data, size);
}
