// Owns: the tests of the latency histogram (core/latency_histogram.hpp): bucket layout (exact below 4 µs,
// then at most 25 % wide), percentiles by rank, the cap at the largest sample, and the extremes.
#include "core/latency_histogram.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <limits>

using slmd::core::LatencyHistogram;

TEST(LatencyHistogram, EmptyHasNoPercentiles) {
    LatencyHistogram h;
    EXPECT_EQ(h.samples(), 0u);
    EXPECT_EQ(h.percentile_us(50), 0u);
    EXPECT_EQ(h.percentile_us(99), 0u);
}

TEST(LatencyHistogram, BucketsAreContiguousAndAtMostAQuarterWide) {
    EXPECT_EQ(LatencyHistogram::bucket_of(0), 0u);
    EXPECT_EQ(LatencyHistogram::bucket_of(3), 3u);
    EXPECT_EQ(LatencyHistogram::bucket_of(4), 4u);
    EXPECT_EQ(LatencyHistogram::bucket_of(7), 7u);
    EXPECT_EQ(LatencyHistogram::bucket_of(8), 8u);
    EXPECT_EQ(LatencyHistogram::bucket_of(9), 8u);
    EXPECT_EQ(LatencyHistogram::bucket_of(std::numeric_limits<std::uint32_t>::max()),
              LatencyHistogram::bucket_count - 1);
    std::uint32_t previous_upper = 0;
    for (std::size_t bucket = 1; bucket < LatencyHistogram::bucket_count; ++bucket) {
        const auto upper = LatencyHistogram::upper_bound(bucket);
        const auto lower = previous_upper + 1;
        EXPECT_EQ(LatencyHistogram::bucket_of(lower), bucket);
        EXPECT_EQ(LatencyHistogram::bucket_of(upper), bucket);
        EXPECT_LE(upper - lower, lower / 4) << "bucket " << bucket;
        previous_upper = upper;
    }
    EXPECT_EQ(previous_upper, std::numeric_limits<std::uint32_t>::max());
}

TEST(LatencyHistogram, PercentilesByRank) {
    LatencyHistogram h;
    // 98 fast samples at 100 µs, 2 slow ones at 10 ms: p50 is fast, p99 slow.
    for (int i = 0; i < 98; ++i) h.record_us(100);
    h.record_us(10000);
    h.record_us(10000);
    EXPECT_EQ(h.samples(), 100u);
    const auto p50 = h.percentile_us(50);
    EXPECT_GE(p50, 100u);
    EXPECT_LE(p50, 125u);
    const auto p99 = h.percentile_us(99);
    EXPECT_GE(p99, 8192u);
    EXPECT_LE(p99, 10000u) << "capped at the largest sample";
    EXPECT_EQ(h.percentile_us(100), 10000u);
}

TEST(LatencyHistogram, MergeAddsSamplesBucketByBucket) {
    LatencyHistogram tcp;
    LatencyHistogram udp;
    for (int i = 0; i < 60; ++i) tcp.record_us(100);
    for (int i = 0; i < 40; ++i) udp.record_us(5000);
    LatencyHistogram both = tcp;
    both.merge(udp);
    EXPECT_EQ(both.samples(), 100u);
    EXPECT_LE(both.percentile_us(50), 111u);       // rank 50 is among the 60 fast ones
    EXPECT_GE(both.percentile_us(61), 4096u);      // rank 61 is the first slow one
    EXPECT_EQ(both.percentile_us(100), 5000u);
    EXPECT_EQ(tcp.samples(), 60u);  // the parts are untouched
}

TEST(LatencyHistogram, SmallValuesAreExactAndDurationsConvert) {
    LatencyHistogram h;
    h.record(std::chrono::microseconds(3));
    EXPECT_EQ(h.percentile_us(50), 3u);
    h.record(std::chrono::nanoseconds(-5));  // a clock oddity counts as 0, never wraps
    EXPECT_EQ(h.samples(), 2u);
    EXPECT_EQ(h.percentile_us(1), 0u);
    h.record(std::chrono::hours(24 * 365 * 200));  // beyond 2^32 µs: the last bucket
    EXPECT_EQ(h.percentile_us(100), std::numeric_limits<std::uint32_t>::max());
}
