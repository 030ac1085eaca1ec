// slmsim: implementation of the absolute-schedule pacer (see pacer.hpp).
#include "pacer.hpp"

#include <cmath>
#include <limits>

namespace slmsim {

namespace {
// A wake-up later than this after the schedule means the line was idle, not that we were slow.
constexpr auto kIdleSlack = std::chrono::milliseconds(50);
}  // namespace

Pacer::clock::time_point Pacer::due(std::uint64_t byte) const {
  if (!paced()) return clock::time_point{};
  auto offset =
      std::chrono::nanoseconds(static_cast<std::int64_t>(std::ceil(static_cast<double>(byte) * 1e9 / rate_)));
  return t0_ + offset;
}

Pacer::clock::time_point Pacer::next_due() const { return due(k_); }

Pacer::clock::time_point Pacer::last_due(std::size_t pending) const { return due(k_ + (pending ? pending - 1 : 0)); }

bool Pacer::starts_burst(clock::time_point now) const { return idle_ || now > next_due() + kIdleSlack; }

void Pacer::begin_burst(clock::time_point now) {
  t0_ = now;
  k_ = 0;
  idle_ = false;
}

std::size_t Pacer::allowance(clock::time_point now) {
  if (!paced()) return std::numeric_limits<std::size_t>::max();
  if (starts_burst(now)) begin_burst(now);
  auto elapsed = std::chrono::duration_cast<std::chrono::nanoseconds>(now - t0_).count();
  // Byte 0 is due at t0, byte k at t0 + k/rate.
  auto due = static_cast<std::uint64_t>(std::floor(static_cast<double>(elapsed) * rate_ / 1e9)) + 1;
  return due > k_ ? static_cast<std::size_t>(due - k_) : 0;
}

}  // namespace slmsim
