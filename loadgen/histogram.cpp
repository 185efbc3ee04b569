#include "histogram.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <stdexcept>

#include <fmt/format.h>

namespace netkit::loadgen {

std::uint64_t histogram::lowest_of(std::size_t index) noexcept {
  if (index < 2 * sub_buckets) return index;
  const auto shift = index / sub_buckets - 1;
  return (index % sub_buckets + sub_buckets) << shift;
}

std::uint64_t histogram::width_of(std::size_t index) noexcept {
  if (index < 2 * sub_buckets) return 1;
  return std::uint64_t{1} << (index / sub_buckets - 1);
}

void histogram::merge(const histogram& other) noexcept {
  if (other.total_ == 0) return;
  for (std::size_t i = 0; i < bucket_count; ++i)
    counts_[i] += other.counts_[i];
  total_ += other.total_;
  if (other.min_ < min_) min_ = other.min_;
  if (other.max_ > max_) max_ = other.max_;
}

double histogram::mean() const noexcept {
  if (total_ == 0) return 0;
  double sum = 0;
  for (std::size_t i = 0; i < bucket_count; ++i)
    if (counts_[i] != 0)
      sum += static_cast<double>(counts_[i]) *
             (static_cast<double>(lowest_of(i)) + static_cast<double>(width_of(i) - 1) / 2);
  return sum / static_cast<double>(total_);
}

std::uint64_t histogram::percentile(double p) const noexcept {
  if (total_ == 0) return 0;
  p = std::clamp(p, 0.0, 100.0);
  auto rank = static_cast<std::uint64_t>(std::ceil(p / 100.0 * static_cast<double>(total_)));
  rank = std::clamp<std::uint64_t>(rank, 1, total_);
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < bucket_count; ++i) {
    seen += counts_[i];
    if (seen >= rank) {
      const std::uint64_t middle = lowest_of(i) + (width_of(i) - 1) / 2;
      return std::clamp(middle, min_, max_);
    }
  }
  return max_;
}

std::string histogram::serialize() const {
  std::string out = fmt::format("{} {} {}", total_, min(), max_);
  for (std::size_t i = 0; i < bucket_count; ++i)
    if (counts_[i] != 0) out += fmt::format(" {}:{}", i, counts_[i]);
  return out;
}

namespace {

std::uint64_t take_number(std::string_view& text, char end) {
  std::uint64_t value = 0;
  const auto* first = text.data();
  const auto* last = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(first, last, value);
  if (ec != std::errc{} || ptr == first || (ptr != last && *ptr != end))
    throw std::invalid_argument(fmt::format("malformed histogram near \"{}\"", text.substr(0, 20)));
  text.remove_prefix(static_cast<std::size_t>(ptr - first) + (ptr != last ? 1 : 0));
  return value;
}

}  // namespace

histogram histogram::parse(std::string_view text) {
  histogram h;
  const std::uint64_t total = take_number(text, ' ');
  const std::uint64_t min = take_number(text, ' ');
  const std::uint64_t max = take_number(text, ' ');
  std::uint64_t sum = 0;
  while (!text.empty()) {
    const auto index = take_number(text, ':');
    const auto count = take_number(text, ' ');
    if (index >= bucket_count) throw std::invalid_argument("histogram bucket out of range");
    h.counts_[index] += count;
    sum += count;
  }
  if (sum != total) throw std::invalid_argument("histogram counts do not add up to its total");
  h.total_ = total;
  h.min_ = total == 0 ? UINT64_MAX : min;
  h.max_ = max;
  return h;
}

}  // namespace netkit::loadgen
