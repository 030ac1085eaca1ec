// Owns: the table test of the administrator's AT command policy (modem/admin_command.hpp): every guarded
// command in set/action form needs force, its read and test forms do not, malformed lines are invalid, and
// the response prefix an administrator's command is answered with.
#include "modem/admin_command.hpp"

#include <gtest/gtest.h>

#include <string>

using slmd::modem::admin_response_prefix;
using slmd::modem::AdminVerdict;
using slmd::modem::check_admin_command;
using slmd::modem::max_admin_command_length;

namespace {

struct Row {
    const char* line;
    AdminVerdict verdict;
};

const char* name(AdminVerdict verdict) {
    switch (verdict) {
        case AdminVerdict::allowed:
            return "allowed";
        case AdminVerdict::needs_force:
            return "needs force";
        case AdminVerdict::invalid:
            return "invalid";
    }
    return "?";
}

}  // namespace

TEST(AdminCommand, PolicyTable) {
    constexpr auto ok = AdminVerdict::allowed;
    constexpr auto force = AdminVerdict::needs_force;
    constexpr auto bad = AdminVerdict::invalid;
    const Row rows[] = {
        // Harmless: identification, network reads, the bare AT.
        {"AT", ok},
        {"AT+CGMR", ok},
        {"at+cgmr", ok},
        {"AT+CGSN=1", ok},
        {"AT+CESQ", ok},
        {"AT%XMONITOR", ok},
        {"AT#XSLMVER", ok},
        {"AT+COPS?", ok},
        {"ATI", ok},
        {"AT#XPING=\"example.com\",45,5000", ok},
        {"AT#XGETADDRINFO=\"example.com\"", ok},
        {"AT+CGPADDR=0", ok},
        // Radio, power, reset.
        {"AT+CFUN=0", force},
        {"AT+CFUN=4", force},
        {"at+cfun=1", force},
        {"AT#XRESET", force},
        {"AT#XMODEMRESET", force},
        {"AT#XSHUTDOWN", force},
        {"AT#XSLEEP=2", force},
        // URCs, echo, result format.
        {"AT+CEREG=0", force},
        {"AT+CMEE=0", force},
        {"ATE1", force},
        {"ATE", force},
        {"ATV0", force},
        {"ATQ1", force},
        {"ATZ", force},
        {"AT&F", force},
        {"ATS3=10", force},
        // Every socket and proxy command.
        {"AT#XTCPCLI=1,\"example.com\",80", force},
        {"AT#XTCPCLI=0", force},
        {"AT#XTCPSVR=1,8080", force},
        {"AT#XTCPSEND", force},
        {"AT#XTCPSEND=\"hello\"", force},
        {"AT#XTCPHANGUP=1", force},
        {"AT#XUDPCLI=1,\"example.com\",53", force},
        {"AT#XUDPSVR=1,5683", force},
        {"AT#XUDPSEND", force},
        {"AT#XSOCKET=1,1,0", force},
        {"AT#XSSOCKET=1,1,0,16842753", force},
        {"AT#XSEND=\"x\"", force},
        {"AT#XSENDTO=\"a\",1,\"x\"", force},
        {"AT#XRECV=10", force},
        {"AT#XRECVFROM=10", force},
        {"AT#XCONNECT=\"a\",1", force},
        {"AT#XBIND=1", force},
        {"AT#XLISTEN", force},
        {"AT#XACCEPT=10", force},
        {"AT#XDATACTRL=50", force},
        {"AT#XTCPFILTER=1,\"1.2.3.4\"", force},
        {"AT#XUDPFILTER=0", force},
        // Serial Modem: slmd's receive path and the line itself.
        {"AT#XCLOSE", force},
        {"AT#XCLOSE=3", force},
        {"AT#XRECVCFG=,0", force},
        {"AT#XAPOLL=,0", force},
        {"AT+IPR=921600", force},
        {"AT+CMUX=0", force},
        {"AT#XPPP=1", force},
        // Anything that enters data mode.
        {"ATD*99#", force},
        {"ATO", force},
        {"AT#XFTP=\"put\",\"f\"", force},
        {"AT#XMQTTPUB=\"t\"", force},
        // Read and test forms of guarded commands are harmless.
        {"AT+CFUN?", ok},
        {"AT+CFUN=?", ok},
        {"AT+CEREG?", ok},
        {"AT+CEREG=?", ok},
        {"AT+CMEE?", ok},
        {"AT#XTCPCLI?", ok},
        {"AT#XTCPCLI=?", ok},
        {"AT#XUDPSVR?", ok},
        {"AT#XSOCKET?", ok},
        {"AT#XRECVCFG?", ok},
        {"AT#XDATACTRL?", ok},
        {"AT#XTCPHANGUP=?", ok},
        {"ATS3?", ok},
        // Concatenated commands: the most dangerous one decides; ';' inside quotes does not split.
        {"AT+CGMR;+CFUN=0", force},
        {"AT+CGMR;+CGSN", ok},
        {"AT#XPING=\"a;+CFUN=0\",45,5000", ok},
        // Not one printable AT command line.
        {"", bad},
        {"A", bad},
        {"+CGMR", bad},
        {"XAT+CGMR", bad},
        {"AT+CGMR\r", bad},
        {"AT+CGMR\nAT+CFUN=0", bad},
        {"AT\x01", bad},
        {"AT+CGMR\xc3\xa9", bad},
    };
    for (const auto& row : rows) {
        const auto check = check_admin_command(row.line);
        EXPECT_EQ(check.verdict, row.verdict)
            << '"' << row.line << "\": " << name(check.verdict) << " (" << check.reason << ")";
        if (row.verdict != AdminVerdict::allowed) {
            EXPECT_FALSE(check.reason.empty()) << row.line;
        }
    }
}

TEST(AdminCommand, LengthIsBounded) {
    const std::string longest = "AT+CGMR" + std::string(max_admin_command_length - 7, 'x');
    EXPECT_EQ(check_admin_command(longest).verdict, AdminVerdict::allowed);
    EXPECT_EQ(check_admin_command(longest + "x").verdict, AdminVerdict::invalid);
}

TEST(AdminCommand, ReasonsNameTheCommand) {
    EXPECT_NE(check_admin_command("AT+CFUN=0").reason.find("+CFUN"), std::string::npos);
    EXPECT_NE(check_admin_command("AT#XRESET").reason.find("slmctl reset"), std::string::npos);
}

TEST(AdminCommand, ResponsePrefix) {
    EXPECT_EQ(admin_response_prefix("AT+CGMR"), "+CGMR");
    EXPECT_EQ(admin_response_prefix("at+cesq"), "+CESQ");
    EXPECT_EQ(admin_response_prefix("AT#XSLMVER"), "#XSLMVER");
    EXPECT_EQ(admin_response_prefix("AT+CFUN?"), "+CFUN");
    EXPECT_EQ(admin_response_prefix("AT+CEREG=?"), "+CEREG");
    EXPECT_EQ(admin_response_prefix("AT%XMONITOR"), "%XMONITOR");
    EXPECT_EQ(admin_response_prefix("AT+CGSN=1;+CGMR"), "+CGSN");
    EXPECT_EQ(admin_response_prefix("ATI"), "");
    EXPECT_EQ(admin_response_prefix("AT"), "");
}
