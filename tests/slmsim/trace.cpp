// slmsim: implementation of the byte trace (see trace.hpp).
#include "trace.hpp"

namespace slmsim {

Trace::Trace(const std::string& path) : f_(std::fopen(path.c_str(), "w")) {}
Trace::~Trace() {
  if (f_) std::fclose(f_);
}

std::string Trace::escape(std::string_view b) {
  std::string out;
  static const char* hex = "0123456789abcdef";
  for (unsigned char c : b) {
    switch (c) {
      case '\r': out += "\\r"; break;
      case '\n': out += "\\n"; break;
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      default:
        if (c >= 0x20 && c < 0x7f) {
          out += static_cast<char>(c);
        } else {
          out += "\\x";
          out += hex[c >> 4];
          out += hex[c & 15];
        }
    }
  }
  return out;
}

void Trace::log(const char* dir, std::string_view bytes) {
  if (!f_) return;
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0_).count();
  std::fprintf(f_, "%lld.%06lld %s %zu \"%s\"\n", static_cast<long long>(us / 1000000),
               static_cast<long long>(us % 1000000), dir, bytes.size(), escape(bytes).c_str());
  std::fflush(f_);
}

void Trace::note(const std::string& text) {
  if (!f_) return;
  std::fprintf(f_, "# %s\n", text.c_str());
  std::fflush(f_);
}

}  // namespace slmsim
