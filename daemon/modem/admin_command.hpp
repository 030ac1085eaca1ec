// Owns: the policy for an administrator's AT command (slmctl at): which lines are well-formed, which would
// break slmd's own state and so need `force`, and which info lines answer it. Pure: no I/O. The AT strings
// of the policy live here and nowhere above the modem layer. Table test: tests/unit/admin_command_test.cpp.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace slmd::modem {

// One line a person typed, not a script: a bound far inside SLM's 4096-byte AT command buffer and the API's
// message size, so a command and everything slmd must queue for it on the shared UART stay small.
inline constexpr std::size_t max_admin_command_length = 256;

enum class AdminVerdict {
    allowed,      // harmless to slmd: read and test forms, identification, network reads, ...
    needs_force,  // would break slmd's state (radio, reset, URC/echo/format, proxies, data mode)
    invalid,      // not one printable AT command line
};

struct AdminCheck {
    AdminVerdict verdict = AdminVerdict::invalid;
    std::string reason;  // for the log and the client's message: why it is invalid or needs force
};

AdminCheck check_admin_command(std::string_view line);

// The prefix of the info lines that answer `line` ("+CGMR" for "AT+CGMR", "#XSLMVER" for "AT#XSLMVER?"),
// empty for basic commands. Lines without any prefix (AT+CGMR's "mfw_nrf9160_1.3.5") are taken as well.
std::string admin_response_prefix(std::string_view line);

}  // namespace slmd::modem
