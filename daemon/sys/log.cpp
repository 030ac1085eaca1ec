// Owns: the daemon's log sink: readable lines on stderr, or structured journal entries when stderr is the
// journal (see log.hpp).
#include "sys/log.hpp"

// CODE_FILE/CODE_LINE would always name this file: the call site is log_line, not the message's origin.
#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-journal.h>

#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>

namespace slmd::sys {
namespace {

LogLevel threshold = LogLevel::info;
std::function<std::string()> modem_state_source;

// systemd sets JOURNAL_STREAM=<dev>:<inode> for services whose stderr is the journal.
bool stderr_is_journal() {
    const char* stream = std::getenv("JOURNAL_STREAM");
    if (!stream) return false;
    struct stat st {};
    if (fstat(STDERR_FILENO, &st) != 0) return false;
    unsigned long long dev = 0, ino = 0;
    if (std::sscanf(stream, "%llu:%llu", &dev, &ino) != 2) return false;
    return dev == static_cast<unsigned long long>(st.st_dev) &&
           ino == static_cast<unsigned long long>(st.st_ino);
}

// sd_journal_sendv drops entries silently (and reports success) when journald's socket is missing; the stream
// is still read by systemd then.
bool journal_socket_present() {
    struct stat st {};
    return stat("/run/systemd/journal/socket", &st) == 0;
}

bool is_word(std::string_view word) {
    if (word.empty()) return false;
    for (char c : word) {
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) return false;
    }
    return word.front() >= 'a' && word.front() <= 'z';
}

void write_stderr(LogLevel level, std::string_view message, bool priority_prefix) {
    const auto line = stderr_line(level, message, priority_prefix, std::chrono::system_clock::now());
    // One write per line keeps lines whole when several processes share the terminal.
    [[maybe_unused]] auto written = ::write(STDERR_FILENO, line.data(), line.size());
}

}  // namespace

std::string log_escaped(std::string_view bytes) {
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    out.reserve(bytes.size());
    for (const char c : bytes) {
        const auto byte = static_cast<unsigned char>(c);
        switch (c) {
            case '\r': out += "\\r"; break;
            case '\n': out += "\\n"; break;
            case '\t': out += "\\t"; break;
            case '\\': out += "\\\\"; break;
            default:
                if (byte >= 0x20 && byte < 0x7f) {
                    out += c;
                } else {
                    out += "\\x";
                    out += hex[byte >> 4];
                    out += hex[byte & 0xf];
                }
        }
    }
    return out;
}

std::string stderr_line(LogLevel level, std::string_view message, bool priority_prefix,
                        std::chrono::system_clock::time_point now) {
    std::string line;
    line.reserve(message.size() + 40);
    if (priority_prefix) {
        line += '<';
        line += static_cast<char>('0' + static_cast<int>(level));
        line += '>';
    } else {
        const auto since_epoch = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch());
        const std::time_t seconds = static_cast<std::time_t>(since_epoch.count() / 1000);
        std::tm utc{};
        gmtime_r(&seconds, &utc);
        char stamp[40];
        const auto length = std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &utc);
        line.append(stamp, length);
        line += fmt::format(".{:03d}Z ", static_cast<int>(since_epoch.count() % 1000));
    }
    line += "slmd: ";
    line += log_escaped(message);
    line += '\n';
    return line;
}

void set_log_threshold(LogLevel level) {
    threshold = level;
}
LogLevel log_threshold() {
    return threshold;
}

std::string log_subsystem(std::string_view message) {
    const auto colon = message.find(": ");
    if (colon == std::string_view::npos || colon == 0) return "daemon";
    const auto prefix = message.substr(0, colon);
    const auto space = prefix.find(' ');
    if (space == std::string_view::npos) return is_word(prefix) ? std::string(prefix) : "daemon";
    const auto first = prefix.substr(0, space), rest = prefix.substr(space + 1);
    if (!is_word(first)) return "daemon";
    // "flow 7: …": a numbered object belongs to its kind.
    if (!rest.empty() && rest.find_first_not_of("0123456789") == std::string_view::npos)
        return std::string(first);
    // "tcp server: …", "data endpoint: …": two words, one field value without spaces.
    if (is_word(rest)) return std::string(first) + "-" + std::string(rest);
    return "daemon";
}

std::vector<std::string> journal_fields(LogLevel level, std::string_view message,
                                        std::string_view modem_state) {
    std::vector<std::string> fields;
    fields.reserve(5);
    fields.push_back("MESSAGE=" + std::string(message));
    fields.push_back("PRIORITY=" + std::to_string(static_cast<int>(level)));
    fields.emplace_back("SYSLOG_IDENTIFIER=slmd");
    fields.push_back("SLMD_SUBSYSTEM=" + log_subsystem(message));
    if (!modem_state.empty()) fields.push_back("SLMD_MODEM_STATE=" + std::string(modem_state));
    return fields;
}

LogContext::LogContext(std::function<std::string()> modem_state) {
    modem_state_source = std::move(modem_state);
}
LogContext::~LogContext() {
    modem_state_source = nullptr;
}

void log_line(LogLevel level, std::string_view message) {
    static const bool journal = stderr_is_journal();
    static const bool structured = journal && journal_socket_present();
    if (structured) {
        const auto fields = journal_fields(level, log_escaped(message),
                                           modem_state_source ? modem_state_source() : std::string{});
        std::vector<iovec> entry;
        entry.reserve(fields.size());
        for (const auto& field : fields) entry.push_back({const_cast<char*>(field.data()), field.size()});
        // Falls back to the stream (priority prefix, no fields) if the journal socket is not reachable.
        if (sd_journal_sendv(entry.data(), static_cast<int>(entry.size())) >= 0) return;
    }
    write_stderr(level, message, journal);
}

}  // namespace slmd::sys
