// The quoted parameters of SLM commands (modem/at_string): which values each kind takes, table by table with
// real byte strings, including the injection a client sent as a host name (issue 15).
#include "modem/at_string.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

using slmd::modem::at_quoted;
using slmd::modem::at_string_allowed;
using slmd::modem::AtStringKind;

namespace {

struct Row {
    AtStringKind kind;
    std::string value;
    bool allowed;
};

std::string kind_name(AtStringKind kind) {
    switch (kind) {
        case AtStringKind::host:
            return "host";
        case AtStringKind::tcp_send:
            return "tcp_send";
        case AtStringKind::udp_send:
            return "udp_send";
        case AtStringKind::credential:
            return "credential";
    }
    return "?";
}

// What a getaddrinfo() of a plain group-slm user sent: BS deletes the opening quote in the firmware's line
// buffer, CR ends the command, and the rest were two more commands (radio off, delete a credential).
const std::string injection = "\b\r\nAT+CFUN=4\r\nAT%CMNG=3,42,3\r\nAT+CGMI=";

const std::vector<Row> rows = {
    // Host names and address literals: letters, digits, ". - _ :", 1 to 127 characters.
    {AtStringKind::host, "example.com", true},
    {AtStringKind::host, "broker-1.iot_eu.example.net", true},
    {AtStringKind::host, "192.0.2.7", true},
    {AtStringKind::host, "2001:db8::1", true},
    {AtStringKind::host, "::ffff:192.0.2.7", true},
    {AtStringKind::host, std::string(127, 'a'), true},
    {AtStringKind::host, std::string(128, 'a'), false},
    {AtStringKind::host, "", false},
    {AtStringKind::host, injection, false},
    {AtStringKind::host, "a\"b", false},
    {AtStringKind::host, "a\x08", false},
    {AtStringKind::host, "a\x7f", false},
    {AtStringKind::host, "a\rb", false},
    {AtStringKind::host, "a\nb", false},
    {AtStringKind::host, std::string("a\0b", 3), false},
    {AtStringKind::host, "a b", false},
    {AtStringKind::host, "a,b", false},
    {AtStringKind::host, "a;b", false},
    {AtStringKind::host, "fe80::1%eth0", false},
    {AtStringKind::host, "h\xc3\xa9.example",
     false},  // UTF-8: IDNs reach the modem as punycode or not at all
    {AtStringKind::host, "\x1b[31m", false},
    // #XTCPSEND strings: anything but '"', NUL, BS, DEL, CR, LF.
    {AtStringKind::tcp_send, "GET / HTTP/1.0", true},
    {AtStringKind::tcp_send, "+++,;'", true},
    {AtStringKind::tcp_send, "", true},
    {AtStringKind::tcp_send, "\xff\x01\x1b", true},
    {AtStringKind::tcp_send, "a\"b", false},
    {AtStringKind::tcp_send, std::string("a\0b", 3), false},
    {AtStringKind::tcp_send, "a\x08", false},
    {AtStringKind::tcp_send, "a\x7f", false},
    {AtStringKind::tcp_send, "a\r\n", false},
    {AtStringKind::tcp_send, injection, false},
    // #XUDPSEND strings: CR and LF are taken literally inside quotes; '"', NUL, BS, DEL are not.
    {AtStringKind::udp_send, "line one\r\nline two", true},
    {AtStringKind::udp_send, "+++", true},
    {AtStringKind::udp_send, "a\"b", false},
    {AtStringKind::udp_send, std::string("\0", 1), false},
    {AtStringKind::udp_send, "\x08", false},
    {AtStringKind::udp_send, "\x7f", false},
    {AtStringKind::udp_send, injection, false},
    // Credential content: printable ASCII, TAB and LF.
    {AtStringKind::credential, "-----BEGIN CERTIFICATE-----\nMIIB\tx=\n-----END CERTIFICATE-----\n", true},
    {AtStringKind::credential, "00ff", true},
    {AtStringKind::credential, "", false},
    {AtStringKind::credential, "a\"b", false},
    {AtStringKind::credential, "a\rb", false},
    {AtStringKind::credential, "a\x08", false},
    {AtStringKind::credential, "a\x7f", false},
    {AtStringKind::credential, std::string("a\0b", 3), false},
    {AtStringKind::credential, "caf\xc3\xa9", false},
};

}  // namespace

TEST(AtString, EveryKindTakesExactlyWhatTheFirmwareCanCarry) {
    for (const auto& row : rows) {
        EXPECT_EQ(at_string_allowed(row.kind, row.value), row.allowed)
            << kind_name(row.kind) << " \"" << row.value << "\" (" << row.value.size() << " bytes)";
    }
}

TEST(AtString, QuotedIsTheValueBetweenQuotesOrNothing) {
    for (const auto& row : rows) {
        const auto quoted = at_quoted(row.kind, row.value);
        if (!row.allowed) {
            EXPECT_FALSE(quoted.has_value()) << kind_name(row.kind) << " " << row.value;
            continue;
        }
        ASSERT_TRUE(quoted.has_value()) << kind_name(row.kind) << " " << row.value;
        EXPECT_EQ(*quoted, "\"" + row.value + "\"");
    }
}

TEST(AtString, TheInjectedNameFromTheReportIsRefusedForEveryKind) {
    for (const auto kind :
         {AtStringKind::host, AtStringKind::tcp_send, AtStringKind::udp_send, AtStringKind::credential}) {
        EXPECT_FALSE(at_quoted(kind, injection).has_value()) << kind_name(kind);
    }
}
