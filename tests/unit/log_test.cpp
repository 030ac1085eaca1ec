// The journal fields of a log line: subsystem from the message prefix, priority, identifier, modem state.
#include "sys/log.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

using namespace slmd::sys;

TEST(Log, SubsystemComesFromTheMessagePrefix) {
    EXPECT_EQ(log_subsystem("modem: ready (SLM 2.9.0)"), "modem");
    EXPECT_EQ(log_subsystem("slm: closing a TCPCLI proxy the firmware kept from before (#XTCPCLI: 0,1)"),
              "slm");
    EXPECT_EQ(log_subsystem("serial: lost /dev/ttyACM0 (End of file), reopening with backoff"), "serial");
    EXPECT_EQ(log_subsystem("udp: datagram dropped"), "udp");
    EXPECT_EQ(log_subsystem("api: resolve -> 0 (1 addresses)"), "api");
    EXPECT_EQ(log_subsystem("route: 198.51.100.7 -> modem"), "route");
    EXPECT_EQ(log_subsystem("sd_notify READY=1: ok"), "daemon");
    EXPECT_EQ(log_subsystem("tcp server: peer 1 connected"), "tcp-server");
    EXPECT_EQ(log_subsystem("data endpoint: bind failed"), "data-endpoint");
    EXPECT_EQ(log_subsystem("flow 17: connected"), "flow");
    // No prefix, or a prefix that is a value rather than a name: the daemon itself.
    EXPECT_EQ(log_subsystem("stopping on signal 15"), "daemon");
    EXPECT_EQ(log_subsystem("/dev/ttyACM0: modem does not respond to AT"), "daemon");
    EXPECT_EQ(log_subsystem("cannot open /dev/ttyACM0: No such file"), "daemon");
    EXPECT_EQ(log_subsystem("Modem: upper case is not a prefix"), "daemon");
    EXPECT_EQ(log_subsystem(": empty"), "daemon");
    EXPECT_EQ(log_subsystem(""), "daemon");
}

TEST(Log, JournalFieldsCarryPriorityIdentifierSubsystemAndModemState) {
    const std::vector<std::string> expected{"MESSAGE=modem: registration lost", "PRIORITY=5",
                                            "SYSLOG_IDENTIFIER=slmd", "SLMD_SUBSYSTEM=modem",
                                            "SLMD_MODEM_STATE=deregistered"};
    EXPECT_EQ(journal_fields(LogLevel::notice, "modem: registration lost", "deregistered"), expected);
}

TEST(Log, JournalFieldsLeaveOutAnUnknownModemState) {
    const std::vector<std::string> expected{"MESSAGE=stopping on signal 15", "PRIORITY=3",
                                            "SYSLOG_IDENTIFIER=slmd", "SLMD_SUBSYSTEM=daemon"};
    EXPECT_EQ(journal_fields(LogLevel::error, "stopping on signal 15", ""), expected);
}

TEST(Log, JournalFieldsKeepTheMessageWhole) {
    // '=' stays inside MESSAGE: sd_journal_sendv takes binary-safe iovecs (log_line escapes before this).
    const auto fields = journal_fields(LogLevel::debug, "at: -> AT#XTCPSEND=\"a=b\"", "serving");
    ASSERT_GE(fields.size(), 2u);
    EXPECT_EQ(fields[0], "MESSAGE=at: -> AT#XTCPSEND=\"a=b\"");
    EXPECT_EQ(fields[1], "PRIORITY=7");
}

TEST(Log, EscapingLeavesOnlyPrintableAscii) {
    struct Row {
        std::string raw, shown;
    };
    const std::vector<Row> rows = {
        {"modem: ready (SLM 2.9.0)", "modem: ready (SLM 2.9.0)"},
        {"at: <- #XTCPDATA: 5\r\n", "at: <- #XTCPDATA: 5\\r\\n"},
        // A client's name that tries to forge a second log line, and a terminal escape sequence.
        {"api: resolve evil\nslmd: modem: uid 0 forces AT+CFUN=4", "api: resolve evil\\nslmd: modem: uid 0 forces AT+CFUN=4"},
        {"\x1b]0;pwned\x07\x1b[2J", "\\x1b]0;pwned\\x07\\x1b[2J"},
        {std::string("a\0b\x08\x7f\t\\", 7), "a\\x00b\\x08\\x7f\\t\\\\"},
        {"caf\xc3\xa9 \x9b", "caf\\xc3\\xa9 \\x9b"},
    };
    for (const auto& row : rows) EXPECT_EQ(log_escaped(row.raw), row.shown);
}

TEST(Log, StderrLinesAreOneLineWithATimestampUnlessJournaldReadsThem) {
    // 2026-12-05T06:20:01.042Z
    const auto when = std::chrono::system_clock::time_point{std::chrono::milliseconds{1796451601042}};
    EXPECT_EQ(stderr_line(LogLevel::info, "flow 3: connected\r\nslmd: forged", false, when),
              "2026-12-05T06:20:01.042Z slmd: flow 3: connected\\r\\nslmd: forged\n");
    // journald stamps lines itself and reads the sd-daemon priority prefix instead.
    EXPECT_EQ(stderr_line(LogLevel::warning, "serial: lost", true, when), "<4>slmd: serial: lost\n");
}
