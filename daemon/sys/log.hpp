// Owns: the daemon's log output. Plain lines on stderr, each with a UTC timestamp unless journald reads
// stderr (it stamps lines itself); when stderr is the journal (JOURNAL_STREAM matches), structured journal
// entries (sd_journal_send): MESSAGE, PRIORITY, SYSLOG_IDENTIFIER=slmd, SLMD_SUBSYSTEM (from the message's
// "<subsystem>:" prefix) and SLMD_MODEM_STATE, so operators can filter with journalctl.
// Messages carry bytes from outside (modem lines and payloads with -v, names from clients): every message is
// escaped here, in one place, so no client can forge a log line or send a terminal control sequence.
#pragma once

#include <fmt/format.h>

#include <chrono>
#include <functional>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace slmd::sys {

enum class LogLevel { error = 3, warning = 4, notice = 5, info = 6, debug = 7 };

void set_log_threshold(LogLevel level);
LogLevel log_threshold();
void log_line(LogLevel level, std::string_view message);

// Whether the `count`-th occurrence of a repeated event is logged: the first, then every hundredth, so a
// hostile or broken client cannot flood the journal with one line per refusal. Pure.
inline bool worth_logging(std::uint64_t count) { return count == 1 || count % 100 == 0; }

// `bytes` with everything but printable ASCII escaped: \r \n \t \\ and \xNN (control bytes, DEL, bytes
// >= 0x80). Pure.
std::string log_escaped(std::string_view bytes);

// The stderr line for one message: "[<N>]" when journald reads stderr, else "YYYY-MM-DDTHH:MM:SS.mmmZ ",
// then "slmd: <escaped message>\n". Pure.
std::string stderr_line(LogLevel level, std::string_view message, bool priority_prefix,
                        std::chrono::system_clock::time_point now);

// The subsystem a message belongs to, from its prefix: "modem: …" -> "modem", "tcp server: …" ->
// "tcp-server", "flow 7: …" -> "flow"; "daemon" for a message without one. Pure.
std::string log_subsystem(std::string_view message);
// The fields of the journal entry for one log line ("KEY=value" each); SLMD_MODEM_STATE only when
// `modem_state` is known (not empty). Pure: what log_line hands to sd_journal_sendv.
std::vector<std::string> journal_fields(LogLevel level, std::string_view message,
                                        std::string_view modem_state);

// While alive, journal entries carry the modem state `modem_state` returns (main installs one next to the
// modem and drops it before the modem goes away).
class LogContext {
  public:
    explicit LogContext(std::function<std::string()> modem_state);
    ~LogContext();
    LogContext(const LogContext&) = delete;
    LogContext& operator=(const LogContext&) = delete;
};

}  // namespace slmd::sys

// Convenience macros keep call sites short and skip formatting when the level is filtered out.
#define SLMD_LOG(level, ...)                                                           \
    do {                                                                               \
        if (static_cast<int>(level) <= static_cast<int>(::slmd::sys::log_threshold())) \
            ::slmd::sys::log_line(level, ::fmt::format(__VA_ARGS__));                  \
    } while (0)
#define SLMD_ERROR(...) SLMD_LOG(::slmd::sys::LogLevel::error, __VA_ARGS__)
#define SLMD_WARN(...) SLMD_LOG(::slmd::sys::LogLevel::warning, __VA_ARGS__)
#define SLMD_NOTICE(...) SLMD_LOG(::slmd::sys::LogLevel::notice, __VA_ARGS__)
#define SLMD_INFO(...) SLMD_LOG(::slmd::sys::LogLevel::info, __VA_ARGS__)
#define SLMD_DEBUG(...) SLMD_LOG(::slmd::sys::LogLevel::debug, __VA_ARGS__)
