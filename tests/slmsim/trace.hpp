// slmsim: byte trace of both UART directions (--trace FILE): one line per chunk with a monotonic
// timestamp, the direction ("H>M" host to modem, "M>H" modem to host) and C-escaped bytes.
#pragma once

#include <chrono>
#include <cstdio>
#include <string>
#include <string_view>

namespace slmsim {

class Trace {
 public:
  explicit Trace(const std::string& path);
  ~Trace();
  bool ok() const { return f_ != nullptr; }
  void log(const char* dir, std::string_view bytes);
  void note(const std::string& text);  // "# text" line (e.g. counters at exit)
  static std::string escape(std::string_view bytes);

 private:
  std::FILE* f_ = nullptr;
  std::chrono::steady_clock::time_point t0_ = std::chrono::steady_clock::now();
};

}  // namespace slmsim
