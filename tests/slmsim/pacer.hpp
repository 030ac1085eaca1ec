// slmsim: line-rate pacing on an absolute schedule. Byte k of a burst is due at t0 + k/rate; a late
// wake-up is made up by a bigger batch, so the long-run rate stays exact. t0 restarts after the
// line went idle (nothing to send / nothing received).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace slmsim {

class Pacer {
 public:
  using clock = std::chrono::steady_clock;

  // bytes_per_second 0 = unpaced (allowance is unlimited).
  explicit Pacer(double bytes_per_second = 0) : rate_(bytes_per_second) {}

  bool paced() const { return rate_ > 0; }
  double rate() const { return rate_; }

  // Bytes that may go out at `now` (unpaced: SIZE_MAX). Starts a new burst if the line was idle.
  std::size_t allowance(clock::time_point now);
  // Whether allowance(now) would start a new burst.
  bool starts_burst(clock::time_point now) const;
  // A burst whose first byte is on the line at `now`: a read armed while the line was idle completes when the
  // host's first byte arrives, and the schedule counts from then, not from when the read was armed.
  void begin_burst(clock::time_point now);
  // n bytes went out.
  void consume(std::size_t n) { k_ += n; }
  // The line had nothing to transfer: the next allowance() starts a new burst.
  void mark_idle() { idle_ = true; }
  // When the next byte is due.
  clock::time_point next_due() const;
  // When the last of `pending` (>= 1) bytes waiting now is due.
  clock::time_point last_due(std::size_t pending) const;

 private:
  clock::time_point due(std::uint64_t byte) const;

  double rate_;
  clock::time_point t0_{};
  std::uint64_t k_ = 0;
  bool idle_ = true;
};

}  // namespace slmsim
