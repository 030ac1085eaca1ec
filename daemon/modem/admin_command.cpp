// Owns: the administrator's AT command policy (see admin_command.hpp).
#include "modem/admin_command.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <utility>
#include <vector>

namespace slmd::modem {

namespace {

// Extended commands whose set and action forms break what slmd relies on. Read (`?`) and test (`=?`) forms of
// every command are harmless and always allowed.
constexpr std::array<std::pair<std::string_view, std::string_view>, 44> guarded = {{
    // Radio, power, reset: the proxies, the registration and bring-up state go with them (slmctl reset does
    // this gracefully and within the recovery budget).
    {"+CFUN", "switches the radio: slmd's proxies and registration go with it"},
    {"#XRESET", "resets the firmware (use slmctl reset: graceful and within the recovery budget)"},
    {"#XMODEMRESET", "resets the modem (use slmctl reset: graceful and within the recovery budget)"},
    {"#XSHUTDOWN", "powers the modem off"},
    {"#XSLEEP", "puts the modem to sleep"},
    {"#XPOWERPIN", "changes how the modem wakes"},
    // URCs and result format that slmd parses.
    {"+CEREG", "changes the registration URCs slmd follows"},
    {"+CMEE", "changes the error result format slmd parses"},
    {"+CSCS", "changes the character set slmd parses"},
    // The proxies and sockets are slmd's; a command on them desynchronises its flows.
    {"#XTCPCLI", "the TCP proxy belongs to slmd"},
    {"#XTCPSVR", "the TCP proxy belongs to slmd"},
    {"#XTCPSEND", "the TCP proxy belongs to slmd (and the bare form enters data mode)"},
    {"#XTCPHANGUP", "the TCP proxy belongs to slmd"},
    {"#XUDPCLI", "the UDP proxy belongs to slmd"},
    {"#XUDPSVR", "the UDP proxy belongs to slmd"},
    {"#XUDPSEND", "the UDP proxy belongs to slmd (and the bare form enters data mode)"},
    {"#XSOCKET", "the modem's sockets belong to slmd"},
    {"#XSSOCKET", "the modem's sockets belong to slmd"},
    {"#XSOCKETOPT", "the modem's sockets belong to slmd"},
    {"#XSSOCKETOPT", "the modem's sockets belong to slmd"},
    {"#XSOCKETSELECT", "the modem's sockets belong to slmd"},
    {"#XSEND", "the modem's sockets belong to slmd (and the bare form enters data mode)"},
    {"#XSENDTO", "the modem's sockets belong to slmd (and the bare form enters data mode)"},
    {"#XRECV", "the modem's sockets belong to slmd"},
    {"#XRECVFROM", "the modem's sockets belong to slmd"},
    {"#XCONNECT", "the modem's sockets belong to slmd"},
    {"#XBIND", "the modem's sockets belong to slmd"},
    {"#XLISTEN", "the modem's sockets belong to slmd"},
    {"#XACCEPT", "the modem's sockets belong to slmd"},
    {"#XCLOSE", "the modem's sockets belong to slmd (Serial Modem)"},
    {"#XRECVCFG", "slmd's receive path relies on automatic reception (Serial Modem)"},
    {"#XAPOLL", "slmd relies on the close reports it set up (Serial Modem)"},
    {"#XCMUX", "multiplexing the UART takes the line from slmd"},
    {"#XPPP", "PPP takes the line and the PDN's sockets from slmd"},
    {"+IPR", "changes the line rate slmd talks at"},
    {"+CMUX", "multiplexing the UART takes the line from slmd"},
    {"+CGDATA", "enters a data state that takes the line from slmd"},
    {"#XDATACTRL", "changes the data-mode timing slmd relies on"},
    {"#XTCPFILTER", "filters the peers of slmd's TCP server"},
    {"#XUDPFILTER", "filters the peers of slmd's UDP server"},
    // Other services that enter data mode: slmd's AT channel must own every data-mode session.
    {"#XFTP", "can enter data mode"},
    {"#XHTTPCREQ", "can enter data mode"},
    {"#XMQTTPUB", "can enter data mode"},
    {"#XNRFCLOUD", "can enter data mode"},
}};

// V.250 basic commands that change echo, result codes or settings, or enter a data/online state.
constexpr std::string_view basic_guarded = "EVQZDOAS";

std::string upper(std::string_view text) {
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    return out;
}

// Splits the text after "AT" at ';' outside double quotes: one entry per concatenated command.
std::vector<std::string_view> commands_of(std::string_view body) {
    std::vector<std::string_view> out;
    bool quoted = false;
    std::size_t start = 0;
    for (std::size_t i = 0; i < body.size(); ++i) {
        if (body[i] == '"') quoted = !quoted;
        if (body[i] == ';' && !quoted) {
            out.push_back(body.substr(start, i - start));
            start = i + 1;
        }
    }
    out.push_back(body.substr(start));
    return out;
}

AdminCheck check_one(std::string_view command) {
    if (command.empty()) return {AdminVerdict::allowed, ""};  // "AT" itself
    const char first = command.front();
    if (first == '+' || first == '#' || first == '%') {
        const std::size_t end = std::min(command.find('='), command.find('?'));
        const std::string name = upper(command.substr(0, end));
        const std::string_view form =
            end == std::string_view::npos ? std::string_view{} : command.substr(end);
        if (form == "?" || form == "=?") return {AdminVerdict::allowed, ""};
        for (const auto& [guarded_name, reason] : guarded) {
            if (name == guarded_name)
                return {AdminVerdict::needs_force, "AT" + name + " " + std::string(reason)};
        }
        return {AdminVerdict::allowed, ""};
    }
    if (!command.empty() && command.back() == '?') return {AdminVerdict::allowed, ""};  // ATS3?
    const char letter = static_cast<char>(std::toupper(static_cast<unsigned char>(first)));
    if (basic_guarded.find(letter) != std::string_view::npos) {
        return {AdminVerdict::needs_force,
                std::string("AT") + letter +
                    " changes echo, result codes or settings slmd relies on, or enters "
                    "data mode"};
    }
    if (first == '&' && command.size() > 1 && std::toupper(static_cast<unsigned char>(command[1])) == 'F') {
        return {AdminVerdict::needs_force, "AT&F restores factory settings slmd relies on"};
    }
    return {AdminVerdict::allowed, ""};
}

bool starts_with_at(std::string_view line) {
    return line.size() >= 2 && std::toupper(static_cast<unsigned char>(line[0])) == 'A' &&
           std::toupper(static_cast<unsigned char>(line[1])) == 'T';
}

}  // namespace

AdminCheck check_admin_command(std::string_view line) {
    if (line.size() > max_admin_command_length) {
        return {AdminVerdict::invalid,
                "longer than " + std::to_string(max_admin_command_length) + " characters"};
    }
    if (!std::all_of(line.begin(), line.end(), [](char c) { return c >= 0x20 && c <= 0x7e; })) {
        return {AdminVerdict::invalid, "only printable ASCII, without CR or LF"};
    }
    if (!starts_with_at(line)) return {AdminVerdict::invalid, "an AT command starts with AT"};
    AdminCheck result{AdminVerdict::allowed, ""};
    for (auto command : commands_of(line.substr(2))) {
        auto check = check_one(command);
        if (check.verdict != AdminVerdict::allowed) return check;
    }
    return result;
}

std::string admin_response_prefix(std::string_view line) {
    if (!starts_with_at(line)) return {};
    const auto command = commands_of(line.substr(2)).front();
    if (command.empty() || (command.front() != '+' && command.front() != '#' && command.front() != '%'))
        return {};
    return upper(command.substr(0, std::min(command.find('='), command.find('?'))));
}

}  // namespace slmd::modem
