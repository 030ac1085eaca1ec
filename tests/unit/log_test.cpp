// The journal fields of a log line: subsystem from the message prefix, priority, identifier, modem state.
#include "sys/log.hpp"

#include <gtest/gtest.h>

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
    // Newlines and '=' stay inside MESSAGE: sd_journal_sendv takes binary-safe iovecs.
    const auto fields = journal_fields(LogLevel::debug, "at: -> AT#XTCPSEND=\"a=b\"\r\n", "serving");
    ASSERT_GE(fields.size(), 2u);
    EXPECT_EQ(fields[0], "MESSAGE=at: -> AT#XTCPSEND=\"a=b\"\r\n");
    EXPECT_EQ(fields[1], "PRIORITY=7");
}
