// Fuzzes the quoted AT parameters (daemon/modem/at_string): for every kind, a value that at_quoted() accepts,
// written into a command line and read back the way the firmware's line editor reads it (BS/DEL delete the
// previous byte, NUL ends the C string, CR outside quotes ends the command; inside quotes CR is taken
// literally, reference section 1), is exactly one command whose quoted parameter is the value, unchanged.
// A value it refuses is never returned quoted.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "modem/at_string.hpp"

using slmd::modem::at_quoted;
using slmd::modem::at_string_allowed;
using slmd::modem::AtStringKind;

namespace {

// What the firmware's line buffer holds when CR arrives, and how many commands the bytes make.
struct LineRead {
    std::string command;
    int commands = 0;
};

LineRead read_like_the_firmware(std::string_view bytes) {
    LineRead out;
    std::string line;
    bool quoted = false;
    for (const char c : bytes) {
        if (c == '\0') break;
        if (c == '\x08' || c == '\x7f') {
            if (!line.empty()) {
                if (line.back() == '"') quoted = !quoted;
                line.pop_back();
            }
            continue;
        }
        if (c == '"') quoted = !quoted;
        if (c == '\r' && !quoted) {
            ++out.commands;
            if (out.commands == 1) out.command = line;
            line.clear();
            continue;
        }
        line += c;
    }
    if (!line.empty()) ++out.commands;  // bytes after the last CR start another command
    return out;
}

void check(bool condition) {
    if (!condition) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const AtStringKind kinds[] = {AtStringKind::host, AtStringKind::tcp_send, AtStringKind::udp_send,
                                  AtStringKind::credential};
    const AtStringKind kind = kinds[data[0] % 4];
    const std::string_view value(reinterpret_cast<const char*>(data + 1), size - 1);

    const auto quoted = at_quoted(kind, value);
    check(quoted.has_value() == at_string_allowed(kind, value));
    if (!quoted) return 0;

    check(*quoted == "\"" + std::string(value) + "\"");
    const std::string line = "AT#XGETADDRINFO=" + *quoted + "\r";
    const auto read = read_like_the_firmware(line);
    check(read.commands == 1);
    check(read.command == line.substr(0, line.size() - 1));
    // Exactly the two quotes we put there: the parameter cannot end early.
    std::size_t quotes = 0;
    for (const char c : read.command) quotes += c == '"';
    check(quotes == 2);
    if (kind == AtStringKind::host) {
        check(!value.empty() && value.size() <= slmd::modem::max_at_host_length);
        check(value.find_first_of(std::string_view(" ,;\r\n\t", 6)) == std::string_view::npos);
    }
    return 0;
}
