// Owns: the quoted parameters of SLM commands (see at_string.hpp).
#include "modem/at_string.hpp"

#include <algorithm>

namespace slmd::modem {

namespace {

bool host_character(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-' || c == '_' || c == ':';
}

// The bytes no quoted SLM string can hold: the quote itself, NUL and the line-editing bytes.
bool never_quotable(char c) {
    return c == '"' || c == '\0' || c == '\x08' || c == '\x7f';
}

bool credential_character(char c) {
    return (c >= 0x20 && c <= 0x7e && c != '"') || c == '\n' || c == '\t';
}

}  // namespace

bool at_string_allowed(AtStringKind kind, std::string_view value) {
    switch (kind) {
        case AtStringKind::host:
            return !value.empty() && value.size() <= max_at_host_length &&
                   std::all_of(value.begin(), value.end(), host_character);
        case AtStringKind::tcp_send:
            return std::none_of(value.begin(), value.end(),
                                [](char c) { return never_quotable(c) || c == '\r' || c == '\n'; });
        case AtStringKind::udp_send:
            return std::none_of(value.begin(), value.end(), never_quotable);
        case AtStringKind::credential:
            return !value.empty() && std::all_of(value.begin(), value.end(), credential_character);
    }
    return false;
}

std::optional<std::string> at_quoted(AtStringKind kind, std::string_view value) {
    if (!at_string_allowed(kind, value)) return std::nullopt;
    std::string out;
    out.reserve(value.size() + 2);
    out += '"';
    out += value;
    out += '"';
    return out;
}

}  // namespace slmd::modem
