// slmsim: implementation of parameter parsing (see at_params.hpp).
#include "at_params.hpp"

#include <cctype>

namespace slmsim {

std::optional<std::vector<Param>> parse_params(std::string_view a, bool strict, bool allow_space) {
  std::vector<Param> out;
  std::size_t i = 0;
  if (a.empty()) {
    out.push_back(Param{});
    return out;
  }
  for (;;) {
    Param p;
    if (allow_space && i < a.size() && a[i] == ' ') ++i;
    if (i < a.size() && a[i] == '"') {
      std::size_t end = a.find('"', i + 1);
      if (end == std::string_view::npos) return std::nullopt;
      p.type = Param::Type::Str;
      p.s = std::string(a.substr(i + 1, end - i - 1));
      if (p.s.find('\0') != std::string::npos) return std::nullopt;
      i = end + 1;
    } else if (i < a.size() && a[i] != ',') {
      std::size_t start = i;
      if (a[i] == '+' || a[i] == '-') ++i;
      std::size_t digits = i;
      while (i < a.size() && std::isdigit(static_cast<unsigned char>(a[i]))) ++i;
      if (i == digits) return std::nullopt;
      if (strict && a[digits] == '0' && i - digits > 1) return std::nullopt;
      if (i - digits > 18) return std::nullopt;
      p.type = Param::Type::Int;
      p.i = std::stoll(std::string(a.substr(start, i - start)));
    }
    out.push_back(std::move(p));
    if (i == a.size()) break;
    if (a[i] != ',') return std::nullopt;
    ++i;
  }
  if (out.size() > 42) return std::nullopt;  // CONFIG_SLM_AT_MAX_PARAM
  return out;
}

bool send_flags_enter_data_mode(const std::vector<Param>& params) {
  if (params.empty() || params[0].type != Param::Type::Empty) return false;
  return params.size() == 1 || (params.size() == 2 && params[1].type == Param::Type::Int);
}

}  // namespace slmsim
