// Owns: the credential store's AT commands and their sequencer (see credentials.hpp).
#include "modem/credentials.hpp"

#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>

#include "modem/at_string.hpp"
#include "modem/slm_commands.hpp"
#include "sys/log.hpp"

namespace slmd::modem {

namespace asio = boost::asio;

namespace {

const char* type_name(int type) {
    switch (type) {
        case 0: return "CA certificate";
        case 1: return "client certificate";
        case 2: return "private key";
        case 3: return "PSK";
        case 4: return "PSK identity";
    }
    return "credential";
}

CredentialResult refuse(int error, std::string message) { return CredentialResult{error, std::move(message), {}}; }

bool starts_with_nocase(std::string_view text, std::string_view prefix) {
    if (text.size() < prefix.size()) return false;
    for (std::size_t i = 0; i < prefix.size(); ++i) {
        if (std::toupper(static_cast<unsigned char>(text[i])) != prefix[i]) return false;
    }
    return true;
}

// CRLF and lone CR become LF.
std::string to_lf(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '\r') {
            out.push_back('\n');
            if (i + 1 < text.size() && text[i + 1] == '\n') ++i;
        } else {
            out.push_back(text[i]);
        }
    }
    return out;
}

// The PEM blocks of `text` (LF line endings): their labels in order, or a reason they are not well-formed.
// Text outside blocks (a bundle's comments, "Bag Attributes") is allowed; inside a block every line is
// base64 or an RFC 1421 header ("Proc-Type: …").
struct PemScan {
    std::vector<std::string> labels;
    std::string problem;
};

PemScan scan_pem(std::string_view text) {
    constexpr std::string_view begin = "-----BEGIN ";
    constexpr std::string_view end = "-----END ";
    constexpr std::string_view dashes = "-----";
    PemScan scan;
    std::optional<std::string> open;
    std::size_t line_number = 0;
    std::size_t pos = 0;
    while (pos < text.size()) {
        auto next = text.find('\n', pos);
        if (next == std::string_view::npos) next = text.size();
        auto line = text.substr(pos, next - pos);
        pos = next + 1;
        ++line_number;
        while (!line.empty() && (line.back() == ' ' || line.back() == '\t')) line.remove_suffix(1);
        const bool is_begin = line.starts_with(begin);
        const bool is_end = line.starts_with(end);
        if (is_begin || is_end) {
            const auto head = is_begin ? begin : end;
            if (line.size() < head.size() + dashes.size() || !line.ends_with(dashes)) {
                scan.problem = "line " + std::to_string(line_number) + " is not a PEM boundary";
                return scan;
            }
            std::string label(line.substr(head.size(), line.size() - head.size() - dashes.size()));
            if (is_begin) {
                if (open) {
                    scan.problem = "line " + std::to_string(line_number) + ": BEGIN " + label + " inside " + *open;
                    return scan;
                }
                open = label;
            } else {
                if (!open || *open != label) {
                    scan.problem = "line " + std::to_string(line_number) + ": END " + label + " without its BEGIN";
                    return scan;
                }
                scan.labels.push_back(label);
                open.reset();
            }
            continue;
        }
        if (!open || line.empty()) continue;
        const bool header = line.find(':') != std::string_view::npos;
        const bool base64 = std::all_of(line.begin(), line.end(), [](char c) {
            return std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/' || c == '=';
        });
        if (!header && !base64) {
            scan.problem = "line " + std::to_string(line_number) + " of the " + *open + " block is not base64";
            return scan;
        }
    }
    if (open) scan.problem = "the " + *open + " block has no END line";
    return scan;
}

bool certificate_label(const std::string& label) { return label == "CERTIFICATE" || label == "TRUSTED CERTIFICATE"; }
bool key_label(const std::string& label) { return label.ends_with("PRIVATE KEY"); }

std::optional<CredentialResult> check_pem(std::string_view text, int type) {
    const auto scan = scan_pem(text);
    const std::string what = type_name(type);
    if (!scan.problem.empty()) return refuse(EINVAL, "the " + what + " is not PEM: " + scan.problem);
    if (scan.labels.empty()) {
        return refuse(EINVAL, "the " + what + " is not PEM: no -----BEGIN …----- / -----END …----- block");
    }
    if (type == 2) {
        // A key file: key blocks, and the EC PARAMETERS block `openssl ecparam -genkey` puts before one.
        const bool keys = std::any_of(scan.labels.begin(), scan.labels.end(), key_label);
        const bool only_keys = std::all_of(scan.labels.begin(), scan.labels.end(), [](const std::string& label) {
            return key_label(label) || label == "EC PARAMETERS";
        });
        if (!keys || !only_keys) {
            return refuse(EINVAL, "a private key must be a PEM key block (BEGIN … PRIVATE KEY), not " +
                                      scan.labels.front());
        }
        return std::nullopt;
    }
    for (const auto& label : scan.labels) {
        if (!certificate_label(label)) {
            return refuse(EINVAL, "a " + what + " must be PEM CERTIFICATE blocks, not " + label);
        }
    }
    return std::nullopt;
}

}  // namespace

std::optional<CredentialResult> validate_credential(CredentialCommand& command) {
    const bool list = command.operation == CredentialOperation::list;
    if (list ? (command.sec_tag < -1 || command.sec_tag > max_credential_sec_tag)
             : (command.sec_tag < 0 || command.sec_tag > max_credential_sec_tag)) {
        return refuse(EINVAL, "sec_tag " + std::to_string(command.sec_tag) + " is not in 0…" +
                                  std::to_string(max_credential_sec_tag));
    }
    if (list ? (command.type < -1 || command.type >= credential_types)
             : (command.type < 0 || command.type >= credential_types)) {
        return refuse(EINVAL, "credential type " + std::to_string(command.type) +
                                  " is not 0 (CA), 1 (certificate), 2 (private key), 3 (PSK) or 4 (PSK identity)");
    }
    if (command.operation != CredentialOperation::write) {
        if (!command.content.empty()) return refuse(EINVAL, "only a write carries content");
        return std::nullopt;
    }
    auto& content = command.content;
    const std::string what = type_name(command.type);
    if (content.size() > max_credential_content) {
        return refuse(EMSGSIZE, "the " + what + " is " + std::to_string(content.size()) + " bytes; the modem takes at most " +
                                    std::to_string(max_credential_content));
    }
    if (content.empty()) return refuse(EINVAL, "the " + what + " is empty");
    if (content.find('"') != std::string::npos) {
        return refuse(EINVAL, "the " + what + " contains '\"', which an AT string cannot carry");
    }
    if (content.find('\0') != std::string::npos) {
        return refuse(EINVAL, "the " + what + " contains a NUL byte, which an AT string cannot carry");
    }
    content = to_lf(content);
    if (command.type == 3 || command.type == 4) {
        // A PSK or identity is one value: the line ending a file gives it is not part of it.
        while (!content.empty() && content.back() == '\n') content.pop_back();
        if (content.empty()) return refuse(EINVAL, "the " + what + " is empty");
    }
    if (command.type == 3) {
        if (!std::all_of(content.begin(), content.end(),
                         [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; })) {
            return refuse(EINVAL, "a PSK is hex digits only (0-9, a-f)");
        }
        if (content.size() % 2 != 0) {
            return refuse(EINVAL, "a PSK is whole bytes: an even number of hex digits, not " +
                                      std::to_string(content.size()));
        }
        return std::nullopt;
    }
    if (command.type == 4) {
        if (!std::all_of(content.begin(), content.end(), [](char c) { return c >= 0x20 && c <= 0x7e; })) {
            return refuse(EINVAL, "a PSK identity is printable ASCII on one line");
        }
        return std::nullopt;
    }
    // PEM: printable ASCII, tabs and line feeds. Backspace and DEL would edit the modem's line buffer even
    // inside quotes; other control bytes have no place in PEM.
    if (!std::all_of(content.begin(), content.end(),
                     [](char c) { return (c >= 0x20 && c <= 0x7e) || c == '\n' || c == '\t'; })) {
        return refuse(EINVAL, "the " + what + " is not PEM text (it holds control or non-ASCII bytes)");
    }
    return check_pem(content, command.type);
}

std::string_view credential_response_prefix(bool native_tls) { return native_tls ? "#XCMNG" : "%CMNG"; }

std::optional<std::string> credential_command_line(const CredentialCommand& command, bool native_tls) {
    std::string line = native_tls ? "AT#XCMNG=" : "AT%CMNG=";
    switch (command.operation) {
        case CredentialOperation::write: {
            // check_credential_command() has vetted the content; at_quoted() is the last word on the quotes.
            const auto content = at_quoted(AtStringKind::credential, command.content);
            if (!content) return std::nullopt;
            line += "0," + std::to_string(command.sec_tag) + "," + std::to_string(command.type) + "," + *content;
            break;
        }
        case CredentialOperation::list:
            line += "1";
            // #XCMNG lists everything (its filters differ between releases); the host filters instead.
            if (!native_tls && command.sec_tag >= 0) {
                line += "," + std::to_string(command.sec_tag);
                if (command.type >= 0) line += "," + std::to_string(command.type);
            }
            break;
        case CredentialOperation::remove:
            line += "3," + std::to_string(command.sec_tag) + "," + std::to_string(command.type);
            break;
    }
    return line;
}

std::optional<CredentialInfo> parse_credential_line(std::string_view line, bool native_tls) {
    const std::string prefix = std::string(credential_response_prefix(native_tls)) + ":";
    if (!line.starts_with(prefix)) return std::nullopt;
    line.remove_prefix(prefix.size());
    while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
    auto number = [&line](std::uint64_t& out) {
        if (line.empty() || !std::isdigit(static_cast<unsigned char>(line.front()))) return false;
        auto [end, ec] = std::from_chars(line.data(), line.data() + line.size(), out);
        if (ec != std::errc{}) return false;
        line.remove_prefix(static_cast<std::size_t>(end - line.data()));
        return true;
    };
    std::uint64_t tag = 0;
    std::uint64_t type = 0;
    if (!number(tag) || line.empty() || line.front() != ',') return std::nullopt;
    line.remove_prefix(1);
    if (!number(type)) return std::nullopt;
    CredentialInfo info;
    if (!line.empty()) {
        if (native_tls || line.size() < 3 || line[0] != ',' || line[1] != '"' || line.back() != '"') return std::nullopt;
        const auto hash = line.substr(2, line.size() - 3);
        if (!std::all_of(hash.begin(), hash.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }))
            return std::nullopt;
        info.sha256 = std::string(hash);
    }
    if (tag > static_cast<std::uint64_t>(max_credential_sec_tag) || type >= credential_types) return std::nullopt;
    info.sec_tag = static_cast<std::int64_t>(tag);
    info.type = static_cast<int>(type);
    return info;
}

CredentialResult credential_failure(const at::CommandResponse& response, std::string_view line_for_log) {
    if (response.ok()) return {};
    const std::string command(line_for_log);
    if (response.error == at::ChannelError::timeout) return refuse(ETIMEDOUT, "the modem did not answer " + command);
    if (response.error == at::ChannelError::modem_reset) return refuse(ECONNRESET, "the modem reset during " + command);
    if (response.error) return refuse(ENETDOWN, "the modem is gone (" + response.error.message() + ")");
    const auto answer = response.describe();
    if (response.final.kind == at::FinalKind::cme_error) {
        switch (response.final.code) {
            case 513: return refuse(ENOENT, "no such credential (" + answer + ")");
            case 514: return refuse(EACCES, "the modem does not allow that (" + answer + ")");
            case 515: return refuse(ENOSPC, "the modem's credential store is full (" + answer + ")");
            case 518: return refuse(EBUSY, "the modem's credential store is busy: the radio is on (" + answer + ")");
            default: break;
        }
    }
    return refuse(EIO, command + " -> " + answer);
}

std::string redact_credential_line(std::string_view line) {
    // Walks the line command by command (';' outside quotes separates concatenated commands, as in
    // "AT+CMEE?;%CMNG=0,…"); inside a %CMNG or #XCMNG command every quoted string is replaced by its length,
    // whatever the operation, and an unclosed one runs to the end of the line.
    std::string out;
    out.reserve(line.size());
    bool credential_command = false;
    bool at_command_start = true;
    std::size_t i = 0;
    while (i < line.size()) {
        if (at_command_start) {
            // Spaces and a repeated "AT" are no part of a command's name, whatever the firmware makes of them.
            std::string_view rest = line.substr(i);
            while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
            if (starts_with_nocase(rest, "AT")) rest.remove_prefix(2);
            while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
            credential_command = starts_with_nocase(rest, "%CMNG") || starts_with_nocase(rest, "#XCMNG");
            at_command_start = false;
        }
        const char c = line[i];
        if (c == '"' && credential_command) {
            const auto closing = line.find('"', i + 1);
            const std::size_t end = closing == std::string_view::npos ? line.size() : closing;
            out += "\"<" + std::to_string(end - i - 1) + " bytes redacted>\"";
            i = closing == std::string_view::npos ? line.size() : closing + 1;
            continue;
        }
        if (c == '"') {  // a quoted string of another command: copied, and a ';' inside it separates nothing
            const auto closing = line.find('"', i + 1);
            const std::size_t end = closing == std::string_view::npos ? line.size() : closing + 1;
            out.append(line.substr(i, end - i));
            i = end;
            continue;
        }
        out += c;
        if (c == ';') at_command_start = true;
        ++i;
    }
    return out;
}

asio::awaitable<CredentialResult> run_credential_command(at::Channel& channel, const CredentialCommand& command,
                                                         const CredentialHooks& hooks) {
    const auto built = credential_command_line(command, hooks.native_tls);
    if (!built) co_return CredentialResult{EINVAL, "the content cannot be given to the modem", {}};
    const auto& line = *built;
    at::CommandRequest request{line, std::string(credential_response_prefix(hooks.native_tls)), hooks.cmng_timeout};
    request.log_as = redact_credential_line(line);
    const auto shown = request.loggable();

    if (command.operation == CredentialOperation::list) {
        auto response = co_await channel.async_command(request, asio::use_awaitable);
        if (!response.ok()) co_return credential_failure(response, shown);
        CredentialResult result;
        std::size_t more = 0;
        for (const auto& text : response.info) {
            auto info = parse_credential_line(text, hooks.native_tls);
            if (!info) continue;
            if (command.sec_tag >= 0 && info->sec_tag != command.sec_tag) continue;
            if (command.type >= 0 && info->type != command.type) continue;
            if (result.entries.size() == max_credential_list) {
                ++more;
                continue;
            }
            result.entries.push_back(std::move(*info));
        }
        if (more) result.message = std::to_string(more) + " more not shown (ask for one sec_tag)";
        co_return result;
    }

    if (hooks.native_tls) {
        // Mbed TLS in the application keeps credentials in Zephyr settings: the radio is not involved.
        auto response = co_await channel.async_command(request, asio::use_awaitable);
        co_return credential_failure(response, shown);
    }

    // The modem's store takes writes only outside CFUN=1.
    auto gone = [](const at::CommandResponse& response) {
        return response.error == at::ChannelError::modem_reset || response.error == at::ChannelError::link_lost ||
               response.error == at::ChannelError::cancelled;
    };
    if (hooks.radio_going_off) hooks.radio_going_off();
    SLMD_NOTICE("modem: AT+CFUN=4 for {}", shown);
    const at::CommandRequest radio_off = command::set_functional_mode(4, hooks.cfun_timeout);
    auto off = co_await channel.async_command(radio_off, asio::use_awaitable);
    CredentialResult result;
    if (!off.ok()) {
        result = credential_failure(off, "AT+CFUN=4");
        result.message = "the modem did not switch its radio off: " + result.message;
    } else {
        auto response = co_await channel.async_command(request, asio::use_awaitable);
        result = credential_failure(response, shown);
        if (gone(response)) {
            if (hooks.radio_back) hooks.radio_back();
            co_return result;
        }
    }
    if (gone(off)) {
        // A reset or serial loss: the lifecycle brings the modem up again (AT+CFUN=1 included).
        if (hooks.radio_back) hooks.radio_back();
        co_return result;
    }
    // Always back on, also after a failed %CMNG or CFUN=4: a radio left off is an outage. Noise on the line
    // can cost one attempt, as in bring-up.
    const at::CommandRequest radio_on = command::set_functional_mode(1, hooks.cfun_timeout);
    at::CommandResponse on;
    for (int attempt = 1; attempt <= 3; ++attempt) {
        on = co_await channel.async_command(radio_on, asio::use_awaitable);
        if (on.ok() || gone(on)) break;
        SLMD_WARN("modem: AT+CFUN=1 after {} -> {} (attempt {}/3)", shown, on.describe(), attempt);
    }
    if (hooks.radio_back) hooks.radio_back();
    if (!on.ok() && !gone(on)) {
        SLMD_ERROR("modem: AT+CFUN=1 failed ({}); the radio stays off until the modem is reset", on.describe());
        if (result.error == 0) result = refuse(EIO, "done, but AT+CFUN=1 answered " + on.describe() + ": the radio is off");
    }
    co_return result;
}

}  // namespace slmd::modem
