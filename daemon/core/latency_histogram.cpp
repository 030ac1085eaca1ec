// Owns: the latency histogram (see latency_histogram.hpp).
#include "core/latency_histogram.hpp"

#include <algorithm>
#include <bit>
#include <limits>

namespace slmd::core {

std::size_t LatencyHistogram::bucket_of(std::uint32_t us) {
    if (us < 4) return us;
    const auto octave = static_cast<std::size_t>(std::bit_width(us) - 1);  // 2..31
    const std::size_t sub = (us >> (octave - 2)) & 3u;
    return 4 + (octave - 2) * 4 + sub;
}

std::uint32_t LatencyHistogram::upper_bound(std::size_t bucket) {
    if (bucket < 4) return static_cast<std::uint32_t>(bucket);
    const std::size_t octave = (bucket - 4) / 4 + 2;
    const std::size_t sub = (bucket - 4) % 4;
    const std::uint64_t lower = std::uint64_t{4 + sub} << (octave - 2);
    const std::uint64_t upper = lower + (std::uint64_t{1} << (octave - 2)) - 1;
    return static_cast<std::uint32_t>(
        std::min<std::uint64_t>(upper, std::numeric_limits<std::uint32_t>::max()));
}

void LatencyHistogram::record(std::chrono::steady_clock::duration elapsed) {
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count();
    record_us(us < 0 ? 0 : static_cast<std::uint64_t>(us));
}

void LatencyHistogram::record_us(std::uint64_t microseconds) {
    const auto us = static_cast<std::uint32_t>(
        std::min<std::uint64_t>(microseconds, std::numeric_limits<std::uint32_t>::max()));
    ++counts_[bucket_of(us)];
    ++samples_;
    max_us_ = std::max(max_us_, us);
}

void LatencyHistogram::merge(const LatencyHistogram& other) {
    for (std::size_t bucket = 0; bucket < counts_.size(); ++bucket) counts_[bucket] += other.counts_[bucket];
    samples_ += other.samples_;
    max_us_ = std::max(max_us_, other.max_us_);
}

std::uint32_t LatencyHistogram::percentile_us(unsigned percent) const {
    if (samples_ == 0) return 0;
    percent = std::clamp(percent, 1u, 100u);
    // The rank of the sample the percentile names, 1-based: ceil(samples * percent / 100).
    const std::uint64_t rank = (samples_ * percent + 99) / 100;
    std::uint64_t seen = 0;
    for (std::size_t bucket = 0; bucket < counts_.size(); ++bucket) {
        seen += counts_[bucket];
        if (seen >= rank) return std::min(upper_bound(bucket), max_us_);
    }
    return max_us_;
}

}  // namespace slmd::core
