// Owns: the daemon's log sink (stderr, with journald priority prefixes when stderr is the journal).
#include "sys/log.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace slmd::sys {
namespace {

LogLevel threshold = LogLevel::info;

// systemd sets JOURNAL_STREAM=<dev>:<inode> for services whose stderr is the journal.
bool stderr_is_journal() {
    const char* stream = std::getenv("JOURNAL_STREAM");
    if (!stream) return false;
    struct stat st {};
    if (fstat(STDERR_FILENO, &st) != 0) return false;
    unsigned long long dev = 0, ino = 0;
    if (std::sscanf(stream, "%llu:%llu", &dev, &ino) != 2) return false;
    return dev == static_cast<unsigned long long>(st.st_dev) && ino == static_cast<unsigned long long>(st.st_ino);
}

}  // namespace

void set_log_threshold(LogLevel level) { threshold = level; }
LogLevel log_threshold() { return threshold; }

void log_line(LogLevel level, std::string_view message) {
    static const bool journal = stderr_is_journal();
    std::string line;
    line.reserve(message.size() + 16);
    if (journal) {
        line += '<';
        line += static_cast<char>('0' + static_cast<int>(level));
        line += '>';
    }
    line += "slmd: ";
    line += message;
    line += '\n';
    // One write per line keeps lines whole when several processes share the terminal.
    [[maybe_unused]] auto written = ::write(STDERR_FILENO, line.data(), line.size());
}

}  // namespace slmd::sys
