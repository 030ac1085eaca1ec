// slmsim: parameter parsing for SLM commands (integers and double-quoted strings, comma separated),
// with the per-release strictness of the at_parser (v2.8+) versus the older at_cmd_parser.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace slmsim {

struct Param {
  enum class Type { Empty, Int, Str };
  Type type = Type::Empty;
  std::int64_t i = 0;
  std::string s;
};

// Returns nullopt on a syntax error (unquoted text, bad integer, unterminated string).
std::optional<std::vector<Param>> parse_params(std::string_view args, bool strict_integers,
                                               bool allow_space);

// v3.1 #XTCPSEND/#XUDPSEND=[<data>][,<flags>]: no data means data mode — "=" alone or "=,<flags>"
// ("=," and "=\"x\"," are errors).
bool send_flags_enter_data_mode(const std::vector<Param>& params);

}  // namespace slmsim
