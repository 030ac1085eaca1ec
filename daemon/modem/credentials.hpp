// Owns: the modem's credential store as AT commands (slmctl cred): checking and normalising a credential before
// anything reaches the UART, the %CMNG / #XCMNG command lines, the list parser, the mapping of the modem's
// answers to errno values, the redaction of a credential's content for logs, and the sequencer that runs one
// operation (AT+CFUN=4 → %CMNG → AT+CFUN=1 on the default firmware build; #XCMNG alone with native TLS).
// Everything but the sequencer is pure and table-tested (tests/unit/credentials_test.cpp). The lifecycle
// side of the radio-off window (the maintenance state) is modem::Modem's. docs/credentials.md.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "at/channel.hpp"

namespace slmd::modem {

enum class CredentialOperation { write, list, remove };

inline constexpr std::int64_t max_credential_sec_tag = 2147483647;
inline constexpr std::size_t max_credential_content = 4000;  // the API's max_credential_length
inline constexpr int credential_types = 5;                     // 0 CA … 4 PSK identity
inline constexpr std::size_t max_credential_list = 48;         // entries per answer (the API's max_credential_entries)

struct CredentialCommand {
    CredentialOperation operation = CredentialOperation::list;
    std::int64_t sec_tag = -1;  // write/remove: 0 … max_credential_sec_tag; list: -1 = every sec_tag
    int type = -1;              // 0 … 4; list: -1 = every type
    std::string content;        // write only
    bool force = false;         // write/remove with connections open (they are reset)
};

struct CredentialInfo {
    std::int64_t sec_tag = 0;
    int type = 0;
    std::string sha256;  // upper-case hex as the modem prints it; "" from #XCMNG (it prints none)
    bool operator==(const CredentialInfo&) const = default;
};

// error: 0, or a positive errno (EINVAL, EMSGSIZE, EBUSY, ENOENT, EACCES, ENOSPC, EIO, ENETDOWN, ETIMEDOUT,
// ECONNRESET); message: one line saying why when error != 0.
struct CredentialResult {
    int error = 0;
    std::string message;
    std::vector<CredentialInfo> entries;  // list
};

// Pure: checks `command` (sec_tag, type, content) and normalises a write's content in place: line endings
// become LF (CRLF and lone CR alike). Returns nullopt when it may go to the modem, else the refusal.
std::optional<CredentialResult> validate_credential(CredentialCommand& command);

// Pure: the command line for `command` (already validated), for the default build (%CMNG) or native TLS (#XCMNG).
// nullopt when the content cannot be carried in a quoted AT parameter (validate_credential() refuses it first).
std::optional<std::string> credential_command_line(const CredentialCommand& command, bool native_tls);
// "%CMNG" or "#XCMNG": the prefix of the list's info lines.
std::string_view credential_response_prefix(bool native_tls);

// Pure: one list line, "%CMNG: <sec_tag>,<type>[,\"<sha256>\"]" or "#XCMNG: <sec_tag>,<type>". nullopt for
// anything else, including sec_tags beyond max_credential_sec_tag (the modem's own reserved tags) and types
// beyond 4 (the modem's public keys), which the API cannot name.
std::optional<CredentialInfo> parse_credential_line(std::string_view line, bool native_tls);

// Pure: what a final result other than OK means: +CME ERROR 513 → ENOENT, 514 → EACCES, 515 → ENOSPC,
// 518 → EBUSY, anything else (ERROR, other codes, no answer) → EIO/ETIMEDOUT/ECONNRESET/ENETDOWN, with the
// modem's answer in the message. {0, ""} for OK.
CredentialResult credential_failure(const at::CommandResponse& response, std::string_view line_for_log);

// Pure: `line` as logs may show it: every quoted string of a %CMNG / #XCMNG command (any case, also when
// concatenated after other commands with ';', as in "AT+CMEE?;%CMNG=0,…") replaced by "<N bytes redacted>";
// everything else unchanged.
std::string redact_credential_line(std::string_view line);

// What the sequencer needs from the modem around the radio-off window (default build only).
struct CredentialHooks {
    bool native_tls = false;
    // Just before AT+CFUN=4: the lifecycle enters its maintenance state (no registration-loss counting).
    std::function<void()> radio_going_off;
    // After AT+CFUN=1 was sent (whatever it answered) or the sequence was cut short by a reset/serial loss.
    std::function<void()> radio_back;
    std::chrono::milliseconds cfun_timeout{30000};
    std::chrono::milliseconds cmng_timeout{10000};
};

// Runs one validated operation on `channel`. `command` lives in the caller's frame for the whole co_await
// (GCC 12, see docs/design.md "Build notes"). Write/remove on the default build: AT+CFUN=4, %CMNG, then
// AT+CFUN=1 always (also when %CMNG failed); an AT+CFUN=4 that failed sends no %CMNG.
boost::asio::awaitable<CredentialResult> run_credential_command(at::Channel& channel, const CredentialCommand& command,
                                                                const CredentialHooks& hooks);

}  // namespace slmd::modem
