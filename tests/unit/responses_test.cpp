// Table tests of the bring-up answer parsers with real lines from the nRF91/SLM reference.
#include "modem/responses.hpp"

#include <gtest/gtest.h>

using namespace slmd::modem;

TEST(ParseSlmver, RealLines) {
    struct Case {
        const char* line;
        bool ok;
        const char* ncs;
        const char* lib;
        const char* customer;
    };
    const Case cases[] = {
        {R"(#XSLMVER: "2.9.0","2.9.0")", true, "2.9.0", "2.9.0", ""},
        {R"(#XSLMVER: "2.5.0","2.5.0","acme-1")", true, "2.5.0", "2.5.0", "acme-1"},
        {R"(#XSLMVER:"2.7.0","2.7.0")", true, "2.7.0", "2.7.0", ""},
        {R"(#XSLMVER: "2.9.0")", false, "", "", ""},
        {R"(#XSLMVER: "2.9.0,"2.9.0")", false, "", "", ""},
        {R"(#XSLMVERX: "2.9.0","2.9.0")", false, "", "", ""},
        {"", false, "", "", ""},
        {R"(#XSLMVER: "","1")", false, "", "", ""},
    };
    for (const auto& c : cases) {
        auto parsed = parse_slmver(c.line);
        ASSERT_EQ(parsed.has_value(), c.ok) << c.line;
        if (!c.ok) continue;
        EXPECT_EQ(parsed->ncs_version, c.ncs) << c.line;
        EXPECT_EQ(parsed->modem_library, c.lib) << c.line;
        EXPECT_EQ(parsed->customer, c.customer) << c.line;
    }
}

TEST(ParseCereg, UrcAndReadForms) {
    struct Case {
        const char* line;
        std::optional<Registration> urc;
        std::optional<Registration> read;
    };
    const Case cases[] = {
        {"+CEREG: 1", Registration::home, std::nullopt},
        {"+CEREG: 5", Registration::roaming, std::nullopt},
        {"+CEREG: 2", Registration::searching, std::nullopt},
        {R"(+CEREG: 1,"0A0B","01020304",7)", Registration::home, std::nullopt},
        {R"(+CEREG: 5,1,"0A0B","01020304",7)", std::nullopt, Registration::home},
        {"+CEREG: 5,1", std::nullopt, Registration::home},
        {"+CEREG: 5,0", std::nullopt, Registration::not_registered},
        {"+CEREG: 0", Registration::not_registered, std::nullopt},
        {"+CEREG: 7", std::nullopt, std::nullopt},
        {"+CEREG: x", std::nullopt, std::nullopt},
        {"+CEREG:", std::nullopt, std::nullopt},
        {"+CGREG: 1", std::nullopt, std::nullopt},
    };
    for (const auto& c : cases) {
        EXPECT_EQ(parse_cereg_urc(c.line), c.urc) << c.line;
        EXPECT_EQ(parse_cereg_read(c.line), c.read) << c.line;
    }
}

TEST(ParseCgpaddr, Ipv4AndIpv6) {
    auto both = parse_cgpaddr(R"(+CGPADDR: 0,"10.1.2.3","2001:DB8:0:0:0:0:0:1")");
    ASSERT_TRUE(both);
    EXPECT_EQ(both->cid, 0);
    EXPECT_EQ(both->ipv4, "10.1.2.3");
    EXPECT_EQ(both->ipv6, "2001:DB8:0:0:0:0:0:1");
    auto v4 = parse_cgpaddr(R"(+CGPADDR: 0,"10.0.0.2")");
    ASSERT_TRUE(v4);
    EXPECT_EQ(v4->ipv4, "10.0.0.2");
    EXPECT_EQ(v4->ipv6, "");
    auto none = parse_cgpaddr("+CGPADDR: 0");
    ASSERT_TRUE(none);
    EXPECT_TRUE(none->ipv4.empty());
    EXPECT_FALSE(parse_cgpaddr(R"(+CGPADDR: x,"10.0.0.2")"));
    EXPECT_FALSE(parse_cgpaddr(R"(+CGPADDR: 0,"10.0.0.2)"));
}

TEST(ParseCfun, Values) {
    EXPECT_EQ(parse_cfun("+CFUN: 1"), 1);
    EXPECT_EQ(parse_cfun("+CFUN: 4"), 4);
    EXPECT_EQ(parse_cfun("+CFUN: "), std::nullopt);
    EXPECT_EQ(parse_cfun("+CFUN: 1,2"), std::nullopt);
}

TEST(ParseTcpcli, Forms) {
    EXPECT_EQ(parse_tcpcli(R"(#XTCPCLI: 0,"connected")"), (ProxyStatus{0, "connected"}));
    EXPECT_EQ(parse_tcpcli(R"(#XTCPCLI: -111,"not connected")"), (ProxyStatus{-111, "not connected"}));
    EXPECT_EQ(parse_tcpcli(R"(#XTCPCLI: -104,"disconnected")"), (ProxyStatus{-104, "disconnected"}));
    EXPECT_FALSE(parse_tcpcli("#XTCPCLI: -1,0"));  // the read form has no word
    EXPECT_FALSE(parse_tcpcli(R"(#XTCPSVR: 0,"started")"));
    EXPECT_FALSE(parse_tcpcli(R"(#XTCPCLI: x,"connected")"));
}

TEST(ParseGetaddrinfo, RepeatedFirstAddressQuirkAndFailures) {
    using V = std::vector<std::string>;
    EXPECT_EQ(parse_getaddrinfo(R"(#XGETADDRINFO: "203.0.113.10")"), (V{"203.0.113.10"}));
    // v1.9–v2.9 print the first address once per result.
    EXPECT_EQ(parse_getaddrinfo(R"(#XGETADDRINFO: "203.0.113.10 203.0.113.10 203.0.113.10")"), (V{"203.0.113.10"}));
    EXPECT_EQ(parse_getaddrinfo(R"(#XGETADDRINFO: "2001:db8::1 192.0.2.1")"), (V{"2001:db8::1", "192.0.2.1"}));
    EXPECT_EQ(parse_getaddrinfo(R"(#XGETADDRINFO: "EAI_AGAIN")"), (V{"EAI_AGAIN"}));
    EXPECT_FALSE(parse_getaddrinfo(R"(#XSLMVER: "2.9.0")"));
}
