// Owns: the daemon's log output. Plain lines on stderr; when stderr is the journal (JOURNAL_STREAM matches),
// lines carry the sd-daemon "<N>" priority prefix so journald records the level.
#pragma once

#include <fmt/format.h>
#include <string_view>

namespace slmd::sys {

enum class LogLevel { error = 3, warning = 4, notice = 5, info = 6, debug = 7 };

void set_log_threshold(LogLevel level);
LogLevel log_threshold();
void log_line(LogLevel level, std::string_view message);

}  // namespace slmd::sys

// Convenience macros keep call sites short and skip formatting when the level is filtered out.
#define SLMD_LOG(level, ...)                                                                 \
    do {                                                                                     \
        if (static_cast<int>(level) <= static_cast<int>(::slmd::sys::log_threshold()))       \
            ::slmd::sys::log_line(level, ::fmt::format(__VA_ARGS__));              \
    } while (0)
#define SLMD_ERROR(...) SLMD_LOG(::slmd::sys::LogLevel::error, __VA_ARGS__)
#define SLMD_WARN(...) SLMD_LOG(::slmd::sys::LogLevel::warning, __VA_ARGS__)
#define SLMD_NOTICE(...) SLMD_LOG(::slmd::sys::LogLevel::notice, __VA_ARGS__)
#define SLMD_INFO(...) SLMD_LOG(::slmd::sys::LogLevel::info, __VA_ARGS__)
#define SLMD_DEBUG(...) SLMD_LOG(::slmd::sys::LogLevel::debug, __VA_ARGS__)
