// slmsim: AT command line assembly (SLM: CR-LF termination outside quotes, BS/DEL editing even inside quotes,
// length limit; Serial Modem: CR termination, nothing kept before "AT"), the firmwares' grammar checks, junk
// skipping (v2.5+) and splitting a line into name / kind / arguments.
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

// The Serial Modem's AT host with CONFIG_SM_CR_TERMINATION (sm_at_host.c, cmd_rx_handler()): nothing is kept until
// a line starts with "A" then "T" (either case), so bytes before a command, such as the LF of a host's CR LF, are
// skipped (as is the byte that breaks an "A" not followed by "T"); a CR outside double quotes ends the line.
//   v1.0.x: BS/DEL delete the previous character; a line of more than 4096 characters is one ERROR at its CR.
//   v2.0.0-preview1 (byte-wise rewrite): BS/DEL delete the previous character and are then stored in its place
//   (the switch only `break`s); the buffer grows up to 8192 bytes and the byte that would take the line to 8190
//   characters is an ERROR at once: the line is dropped there and what follows is new input.
class SmLineAssembler {
 public:
  enum class Event { None, Line, Overflow };

  explicit SmLineAssembler(bool preview) : preview_(preview) {}
  Event feed(char c);
  const std::string& line() const { return done_; }
  void reset();

 private:
  static constexpr std::size_t kV1Limit = 4096;  // CONFIG_SM_AT_BUF_SIZE
  static constexpr std::size_t kPreviewGrowLimit = 8190;  // AT_BUF_MAX_SIZE - 2
  bool preview_;
  std::string buf_;  // the characters kept (v1.0.x keeps at most 4096; len_ counts them all)
  std::size_t len_ = 0;
  bool in_quotes_ = false;
  char prev_ = 0;
  std::string done_;
};

// The Serial Modem's grammar check: also ATE0/ATE1, and '_' in the command name.
bool sm_grammar_ok(std::string_view line);

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
