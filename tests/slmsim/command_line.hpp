// slmsim: AT command line assembly (CR-LF termination outside quotes, BS/DEL editing even inside quotes,
// length limit), the firmware's grammar check, junk skipping (v2.5+) and splitting a line into
// name / kind / arguments.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace slmsim {

class LineAssembler {
 public:
  enum class Event { None, Line, Overflow };

  explicit LineAssembler(std::size_t max_line) : max_(max_line) {}
  void set_max(std::size_t max_line) { max_ = max_line; }

  // Feeds one byte. Line: line() holds the completed line without its CR LF (empty lines are
  // reported as None). Overflow: the line exceeded the limit; reported once, on the byte that
  // overflowed; the rest of that line up to its CR LF is discarded.
  Event feed(char c);
  const std::string& line() const { return done_; }
  void reset();
  std::size_t pending() const { return buf_.size(); }

 private:
  std::size_t max_;
  std::string buf_;
  std::string done_;
  bool in_quotes_ = false;
  bool discarding_ = false;
  bool discard_cr_ = false;
};

// The grammar the firmware accepts before dispatch: AT, AT<sep><alnum>+ optionally followed by
// "=", "?", "=?" or "=<anything>"; <sep> is '+', '%' or '#'. "AT" may be in either case.
bool grammar_ok(std::string_view line);

// v2.5+: skip anything before the first "AT"/"at". Returns nullopt if there is none.
std::optional<std::string_view> skip_junk(std::string_view line);

struct ParsedCommand {
  enum class Kind { Action, Set, Read, Test };
  std::string at;    // the "AT" prefix exactly as sent
  std::string name;  // e.g. "#XTCPCLI" exactly as sent (empty for plain "AT")
  Kind kind = Kind::Action;
  std::string args;  // text after '=' for Set
};

// Splits a grammar-checked line.
ParsedCommand split_command(std::string_view line);

}  // namespace slmsim
