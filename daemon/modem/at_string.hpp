// Owns: every value slmd writes between double quotes in an SLM command, and what each kind of value may
// hold. SLM has no escape inside quotes: '"' ends the string, the firmware's line editing (BS, DEL) acts even
// inside quotes (a BS can delete the opening quote, after which CR ends the command and whatever follows is
// the next command), and NUL ends the firmware's C string. Values that reach these parameters come from local
// clients (host names, payloads) or administrators (credentials), so every quoted parameter is built here and
// nowhere else: a command builder asks `at_quoted()` and gets nothing for a value the firmware cannot carry.
// Pure; table-tested in tests/unit/at_string_test.cpp and fuzzed by tests/fuzz/at_string_fuzz.cpp.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace slmd::modem {

enum class AtStringKind {
    // <url> of #XTCPCLI/#XUDPCLI and <hostname> of #XGETADDRINFO: a DNS name or an IPv4/IPv6 literal, 1 to
    // 127
    // characters (the firmware's 128-byte buffer with its NUL) of letters, digits and ". - _ :".
    host,
    // AT#XTCPSEND="…": no '"', NUL, BS, DEL, and (conservatively: the firmware takes them literally inside
    // quotes, but data mode carries them at no cost) no CR or LF.
    tcp_send,
    // AT#XUDPSEND="…": no '"', NUL, BS or DEL. CR and LF inside quotes are taken literally (reference §1,
    // every
    // release), which matters from v2.5, where data mode cannot carry "+++".
    udp_send,
    // AT%CMNG=0 / AT#XCMNG=0 content: printable ASCII, TAB and LF (PEM text, hex PSKs, identities); the
    // credential checks in credentials.cpp decide the finer structure first.
    credential,
};

inline constexpr std::size_t max_at_host_length = 127;

// Whether `value` can stand between the quotes of a parameter of `kind`.
bool at_string_allowed(AtStringKind kind, std::string_view value);

// `"value"` for the command line, or nothing when `value` cannot be carried as that kind of parameter.
std::optional<std::string> at_quoted(AtStringKind kind, std::string_view value);

}  // namespace slmd::modem
