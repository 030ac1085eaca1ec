// Owns: a fixed-size, log-scaled latency histogram for slmctl stats: recording a sample is a few integer
// operations and never allocates (it runs on the data path for every chunk), and percentiles are read from
// bucket counts. Buckets: exact below 4 µs, then 4 per power of two (each at most 25 % wide) up to 2^32 µs.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>

namespace slmd::core {

class LatencyHistogram {
  public:
    static constexpr std::size_t bucket_count = 4 + 30 * 4;

    void record(std::chrono::steady_clock::duration elapsed);
    void record_us(std::uint64_t microseconds);

    // The smallest bucket bound that at least `percent` % of the samples are at or below, capped at the
    // largest sample seen; 0 without samples. percent in 1..100.
    std::uint32_t percentile_us(unsigned percent) const;
    std::uint64_t samples() const { return samples_; }
    // Adds another histogram's samples (TCP and UDP make one figure per direction).
    void merge(const LatencyHistogram& other);

    // The bucket of a value and the largest value that bucket holds (exposed for the unit test).
    static std::size_t bucket_of(std::uint32_t microseconds);
    static std::uint32_t upper_bound(std::size_t bucket);

  private:
    std::array<std::uint64_t, bucket_count> counts_{};
    std::uint64_t samples_ = 0;
    std::uint32_t max_us_ = 0;
};

}  // namespace slmd::core
