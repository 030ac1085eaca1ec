// slmsim: implementation of line assembly, grammar check and command splitting (see command_line.hpp).
#include "command_line.hpp"

#include <cctype>

namespace slmsim {

void LineAssembler::reset() {
  buf_.clear();
  in_quotes_ = false;
  discarding_ = false;
  discard_cr_ = false;
}

LineAssembler::Event LineAssembler::feed(char c) {
  if (discarding_) {
    // Throw away the rest of an over-long line up to its CR LF (outside quotes).
    if (c == '"') in_quotes_ = !in_quotes_;
    if (!in_quotes_ && c == '\n' && discard_cr_) {
      discarding_ = false;
      in_quotes_ = false;
    }
    discard_cr_ = (c == '\r');
    return Event::None;
  }
  if (c == 0x08 || c == 0x7f) {
    // Editing applies even inside quotes; deleting a quote flips the quote state back.
    if (!buf_.empty()) {
      if (buf_.back() == '"') in_quotes_ = !in_quotes_;
      buf_.pop_back();
    }
    return Event::None;
  }
  if (!in_quotes_ && c == '\n' && !buf_.empty() && buf_.back() == '\r') {
    buf_.pop_back();
    done_.swap(buf_);
    buf_.clear();
    in_quotes_ = false;
    return done_.empty() ? Event::None : Event::Line;
  }
  // The limit counts the command text; the CR of the terminator may sit just past it.
  if (buf_.size() > max_ || (buf_.size() == max_ && !(c == '\r' && !in_quotes_))) {
    buf_.clear();
    discarding_ = true;
    discard_cr_ = (c == '\r');
    if (c == '"') in_quotes_ = !in_quotes_;
    return Event::Overflow;
  }
  buf_.push_back(c);
  if (c == '"') in_quotes_ = !in_quotes_;
  return Event::None;
}

void SmLineAssembler::reset() {
  buf_.clear();
  len_ = 0;
  in_quotes_ = false;
  prev_ = 0;
}

SmLineAssembler::Event SmLineAssembler::feed(char c) {
  const auto up = std::toupper(static_cast<unsigned char>(c));
  if ((len_ == 0 && up != 'A') || (len_ == 1 && up != 'T')) {
    buf_.clear();
    len_ = 0;
    in_quotes_ = false;
    return Event::None;
  }
  if (preview_ && len_ >= kPreviewGrowLimit) {
    reset();  // "AT command buffer overflow, max size reached": ERROR, and the line is gone
    return Event::Overflow;
  }
  if (c == 0x08 || c == 0x7f) {
    --len_;  // len_ >= 2 here
    if (buf_.size() > len_) buf_.pop_back();
    if (prev_ == '"') in_quotes_ = !in_quotes_;
    prev_ = len_ > 0 && len_ <= buf_.size() ? buf_[len_ - 1] : 0;
    if (!preview_) return Event::None;
    // preview1 goes on and stores the BS/DEL itself.
  }
  if (!in_quotes_ && c == '\r') {
    const bool over = len_ > kV1Limit && !preview_;
    done_.swap(buf_);
    reset();
    return over ? Event::Overflow : Event::Line;
  }
  if (preview_ || len_ < kV1Limit) buf_.push_back(c);
  ++len_;
  if (c == '"') in_quotes_ = !in_quotes_;
  prev_ = c;
  return Event::None;
}

bool sm_grammar_ok(std::string_view s) {
  if (s.size() < 2) return false;
  if (std::toupper(static_cast<unsigned char>(s[0])) != 'A' ||
      std::toupper(static_cast<unsigned char>(s[1])) != 'T')
    return false;
  if (s.size() == 2) return true;
  if (s.size() == 4 && std::toupper(static_cast<unsigned char>(s[2])) == 'E' && (s[3] == '0' || s[3] == '1'))
    return true;
  char sep = s[2];
  if (sep != '+' && sep != '%' && sep != '#') return false;
  std::size_t i = 3;
  while (i < s.size() && (std::isalnum(static_cast<unsigned char>(s[i])) || s[i] == '_')) ++i;
  if (i == 3) return false;
  if (i == s.size()) return true;
  if (s[i] == '?') return i + 1 == s.size();
  if (s[i] != '=') return false;
  if (i + 1 < s.size() && s[i + 1] == '?') return i + 2 == s.size();
  return true;  // "=" and "=<anything>"
}

bool grammar_ok(std::string_view s) {
  if (s.size() < 2) return false;
  if (std::toupper(static_cast<unsigned char>(s[0])) != 'A' ||
      std::toupper(static_cast<unsigned char>(s[1])) != 'T')
    return false;
  if (s.size() == 2) return true;
  char sep = s[2];
  if (sep != '+' && sep != '%' && sep != '#') return false;
  std::size_t i = 3;
  while (i < s.size() && std::isalnum(static_cast<unsigned char>(s[i]))) ++i;
  if (i == 3) return false;
  if (i == s.size()) return true;
  if (s[i] == '?') return i + 1 == s.size();
  if (s[i] == '=') return true;  // "=", "=?" and "=<anything>"
  return false;
}

std::optional<std::string_view> skip_junk(std::string_view s) {
  for (std::size_t i = 0; i + 1 < s.size(); ++i) {
    if ((s[i] == 'A' && s[i + 1] == 'T') || (s[i] == 'a' && s[i + 1] == 't')) return s.substr(i);
  }
  return std::nullopt;
}

ParsedCommand split_command(std::string_view s) {
  ParsedCommand pc;
  pc.at = std::string(s.substr(0, 2));
  std::size_t i = 2;
  while (i < s.size() && s[i] != '=' && s[i] != '?') ++i;
  pc.name = std::string(s.substr(2, i - 2));
  if (i == s.size()) {
    pc.kind = ParsedCommand::Kind::Action;
  } else if (s[i] == '?') {
    pc.kind = ParsedCommand::Kind::Read;
  } else if (s.substr(i) == "=?") {
    pc.kind = ParsedCommand::Kind::Test;
  } else {
    pc.kind = ParsedCommand::Kind::Set;
    pc.args = std::string(s.substr(i + 1));
  }
  return pc;
}

}  // namespace slmsim
