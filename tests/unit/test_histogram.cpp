// The load generator's latency histogram: its relative error bound over the whole range,
// exact merging (threads and processes), percentiles, and its text form for processes.
#include <cmath>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "histogram.hpp"

namespace netkit::loadgen {
namespace {

double relative_error(std::uint64_t reported, std::uint64_t actual) {
  return std::abs(static_cast<double>(reported) - static_cast<double>(actual)) /
         static_cast<double>(actual);
}

TEST(histogram, every_value_is_reported_within_one_percent) {
  std::mt19937_64 rng(12345);
  // Log-uniform over 1 ns .. about 18 hours, plus each power of two and its neighbours.
  std::vector<std::uint64_t> values;
  for (int i = 0; i < 20000; ++i)
    values.push_back(
        static_cast<std::uint64_t>(std::exp2(std::uniform_real_distribution<>(0, 56)(rng))));
  for (unsigned b = 1; b < 63; ++b)
    for (std::uint64_t v :
         {(std::uint64_t{1} << b) - 1, std::uint64_t{1} << b, (std::uint64_t{1} << b) + 1})
      values.push_back(v);
  double worst = 0;
  for (auto v : values) {
    if (v == 0) continue;
    // A bucket's neighbours make the value the middle one of three, so the reported middle
    // sample comes from the bucket itself, not from the exact min or max.
    histogram h;
    h.record(v / 2 + 1);
    h.record(v);
    h.record(v * 2 > v ? v * 2 : v);
    const auto reported = h.percentile(50);
    worst = std::max(worst, relative_error(reported, v));
    ASSERT_LE(relative_error(reported, v), 0.01) << "value " << v << " reported " << reported;
    const auto index = histogram::index_of(v);
    ASSERT_LE(histogram::lowest_of(index), v);
    ASSERT_GT(histogram::lowest_of(index) + histogram::width_of(index), v);
  }
  EXPECT_LE(worst, 1.0 / 128) << "the bound the bucket layout promises";
}

TEST(histogram, small_values_are_exact_and_extremes_are_exact) {
  histogram h;
  for (std::uint64_t v = 0; v < 256; ++v)
    h.record(v);
  EXPECT_EQ(h.count(), 256u);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.max(), 255u);
  EXPECT_EQ(h.percentile(50), 127u);
  EXPECT_EQ(h.percentile(100), 255u);
  EXPECT_EQ(h.percentile(0), 0u);
  histogram big;
  big.record(123'456'789);
  EXPECT_EQ(big.min(), 123'456'789u);
  EXPECT_EQ(big.max(), 123'456'789u);
  EXPECT_EQ(big.percentile(99.99), 123'456'789u) << "clamped to the exact extremes";
}

TEST(histogram, percentiles_follow_ranks) {
  histogram h;
  for (int i = 0; i < 990; ++i)
    h.record(10'000);  // 10 us
  for (int i = 0; i < 10; ++i)
    h.record(5'000'000);  // 5 ms: the slowest 1 %
  EXPECT_LE(relative_error(h.percentile(50), 10'000), 0.01);
  EXPECT_LE(relative_error(h.percentile(99), 10'000), 0.01);
  EXPECT_LE(relative_error(h.percentile(99.9), 5'000'000), 0.01);
  EXPECT_NEAR(h.mean(), (990 * 10'000.0 + 10 * 5'000'000.0) / 1000, 0.01 * 59'900);
  histogram empty;
  EXPECT_EQ(empty.percentile(99), 0u);
  EXPECT_EQ(empty.min(), 0u);
  EXPECT_EQ(empty.max(), 0u);
}

TEST(histogram, merging_equals_recording_everything_in_one) {
  std::mt19937_64 rng(7);
  std::lognormal_distribution<> latency(10, 1.5);
  histogram parts[4], all;
  for (int i = 0; i < 40000; ++i) {
    const auto v = static_cast<std::uint64_t>(latency(rng));
    parts[i % 4].record(v);
    all.record(v);
  }
  histogram merged;
  for (const auto& p : parts)
    merged.merge(p);
  EXPECT_EQ(merged.count(), all.count());
  EXPECT_EQ(merged.min(), all.min());
  EXPECT_EQ(merged.max(), all.max());
  for (double p : {0.0, 50.0, 90.0, 99.0, 99.9, 99.99, 100.0})
    EXPECT_EQ(merged.percentile(p), all.percentile(p)) << p;
}

TEST(histogram, text_form_round_trips_and_rejects_damage) {
  histogram h;
  for (std::uint64_t v : {1u, 300u, 300u, 70'000u, 9'000'000u})
    h.record(v);
  const auto back = histogram::parse(h.serialize());
  EXPECT_EQ(back.count(), h.count());
  EXPECT_EQ(back.min(), h.min());
  EXPECT_EQ(back.max(), h.max());
  for (double p : {10.0, 50.0, 90.0, 100.0})
    EXPECT_EQ(back.percentile(p), h.percentile(p));
  EXPECT_EQ(histogram::parse(histogram().serialize()).count(), 0u);
  EXPECT_THROW(histogram::parse("3 1 5 1:1"), std::invalid_argument) << "counts do not add up";
  EXPECT_THROW(histogram::parse("1 1 1 999999:1"), std::invalid_argument) << "no such bucket";
  EXPECT_THROW(histogram::parse("x"), std::invalid_argument);
}

}  // namespace
}  // namespace netkit::loadgen
