// A high-dynamic-range latency histogram in the HdrHistogram manner (log-linear buckets):
// every power of two is split into 128 equal sub-buckets, so a value is known to within
// 1/128 of itself (0.8 %; 0.4 % once reported at the bucket's middle) over the whole
// 64-bit range, in a fixed table of 7,424 counters. Recording is an index computation and
// an increment; histograms of threads and processes merge by adding counters, exactly.
// Values are nanoseconds by convention; nothing here depends on the unit.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace netkit::loadgen {

class histogram {
 public:
  static constexpr unsigned sub_bucket_bits = 7;
  static constexpr std::uint64_t sub_buckets = std::uint64_t{1} << sub_bucket_bits;  // 128
  // Values below 2 * sub_buckets are counted exactly; above, per octave.
  static constexpr std::size_t bucket_count = (64 - sub_bucket_bits + 1) * sub_buckets;

  void record(std::uint64_t value) noexcept {
    ++counts_[index_of(value)];
    ++total_;
    if (value < min_) min_ = value;
    if (value > max_) max_ = value;
  }
  void merge(const histogram& other) noexcept;
  void clear() noexcept { *this = histogram(); }

  std::uint64_t count() const noexcept { return total_; }
  // Exact extremes (0 when empty).
  std::uint64_t min() const noexcept { return total_ == 0 ? 0 : min_; }
  std::uint64_t max() const noexcept { return max_; }
  double mean() const noexcept;
  // The value at percentile p (0..100): the middle of the bucket holding the sample of
  // rank ceil(p/100 * count), kept within [min, max]. 0 when empty.
  std::uint64_t percentile(double p) const noexcept;

  // A compact text form ("count min max index:count ..."), for handing a histogram from a
  // worker process to its parent; parse() throws std::invalid_argument on a malformed one.
  std::string serialize() const;
  static histogram parse(std::string_view text);

  static std::size_t index_of(std::uint64_t value) noexcept {
    const unsigned msb = 63u - static_cast<unsigned>(__builtin_clzll(value | 1));
    if (msb <= sub_bucket_bits) return static_cast<std::size_t>(value);
    const unsigned shift = msb - sub_bucket_bits;
    return static_cast<std::size_t>((std::uint64_t{shift} << sub_bucket_bits) + (value >> shift));
  }
  // The smallest value and the width of bucket `index`.
  static std::uint64_t lowest_of(std::size_t index) noexcept;
  static std::uint64_t width_of(std::size_t index) noexcept;

 private:
  std::array<std::uint64_t, bucket_count> counts_{};
  std::uint64_t total_ = 0;
  std::uint64_t min_ = UINT64_MAX;
  std::uint64_t max_ = 0;
};

}  // namespace netkit::loadgen
