// Table tests of the bring-up answer parsers with real lines from the nRF91/SLM reference.
#include "modem/answer_parsers.hpp"

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

// Every status line the proxies print, byte-exact from the reference (§2.3), against the prefix it answers.
TEST(ParseProxyStatus, EveryStatusLineShape) {
    struct Case {
        const char* line;
        const char* prefix;
        std::optional<ProxyStatus> expected;
    };
    const Case cases[] = {
        {R"(#XTCPSVR: 0,"started")", "#XTCPSVR", ProxyStatus{0, "started"}},
        {R"(#XTCPSVR: -115,"not started")", "#XTCPSVR", ProxyStatus{-115, "not started"}},
        {R"(#XTCPSVR: 0,"disconnected")", "#XTCPSVR", ProxyStatus{0, "disconnected"}},
        {R"(#XTCPSVR: -104,"disconnected")", "#XTCPSVR", ProxyStatus{-104, "disconnected"}},
        {R"(#XTCPSVR: -5,"disconnected")", "#XTCPSVR", ProxyStatus{-5, "disconnected"}},
        {R"(#XTCPSVR: 0,"stopped")", "#XTCPSVR", ProxyStatus{0, "stopped"}},
        {R"(#XUDPCLI: 1,"connected")", "#XUDPCLI", ProxyStatus{1, "connected"}},
        {R"(#XUDPCLI: -2,"not connected")", "#XUDPCLI", ProxyStatus{-2, "not connected"}},
        {R"(#XUDPCLI: 0,"disconnected")", "#XUDPCLI", ProxyStatus{0, "disconnected"}},
        {R"(#XUDPCLI: -104,"disconnected")", "#XUDPCLI", ProxyStatus{-104, "disconnected"}},
        {R"(#XUDPSVR: 0,"started")", "#XUDPSVR", ProxyStatus{0, "started"}},
        {R"(#XUDPSVR: 0,"stopped")", "#XUDPSVR", ProxyStatus{0, "stopped"}},
        {R"(#XUDPSVR: -104,"stopped")", "#XUDPSVR", ProxyStatus{-104, "stopped"}},
        // v2.8+ spells the failure line without the X (commit e0aaba1c2f); it still answers #XUDPSVR.
        {R"(#UDPSVR: -134,"not started")", "#XUDPSVR", ProxyStatus{-134, "not started"}},
        {R"(#UDPSVR: -115,"not started")", "#XUDPSVR", ProxyStatus{-115, "not started"}},
        {R"(#UDPSVR: -115,"not started")", "#XUDPCLI", std::nullopt},
        // Shapes that are not statuses.
        {R"(#XTCPSVR: "127.0.0.1","connected")", "#XTCPSVR", std::nullopt},  // a peer, not a number
        {"#XTCPSVR: 0,1,1", "#XTCPSVR", std::nullopt},                        // read form
        {"#XUDPCLI: -1,0", "#XUDPCLI", std::nullopt},                         // read form
        {R"(#XUDPSVR: 0,"started")", "#XUDPCLI", std::nullopt},               // other proxy
        {R"(#XTCPSVRX: 0,"started")", "#XTCPSVR", std::nullopt},
        {R"(#XTCPSVR: 0,"")", "#XTCPSVR", std::nullopt},
        {R"(#XTCPSVR: 0,"started)", "#XTCPSVR", std::nullopt},
        {R"(#XTCPSVR: ,"started")", "#XTCPSVR", std::nullopt},
        {"", "#XTCPSVR", std::nullopt},
    };
    for (const auto& c : cases) EXPECT_EQ(parse_proxy_status(c.line, c.prefix), c.expected) << c.line;
}

TEST(ParseTcpsvrPeer, ConnectedUrc) {
    EXPECT_EQ(parse_tcpsvr_peer(R"(#XTCPSVR: "127.0.0.1","connected")"), "127.0.0.1");
    EXPECT_EQ(parse_tcpsvr_peer(R"(#XTCPSVR: "2001:db8::7","connected")"), "2001:db8::7");
    EXPECT_EQ(parse_tcpsvr_peer(R"(#XTCPSVR:"10.0.0.9","connected")"), "10.0.0.9");
    EXPECT_EQ(parse_tcpsvr_peer(R"(#XTCPSVR: 0,"connected")"), std::nullopt);
    EXPECT_EQ(parse_tcpsvr_peer(R"(#XTCPSVR: "127.0.0.1","disconnected")"), std::nullopt);
    EXPECT_EQ(parse_tcpsvr_peer(R"(#XTCPSVR: "","connected")"), std::nullopt);
    EXPECT_EQ(parse_tcpsvr_peer(R"(#XTCPCLI: "127.0.0.1","connected")"), std::nullopt);
}

TEST(ParseProxyRead, ReadForms) {
    using V = std::vector<int>;
    struct Case {
        const char* line;
        const char* prefix;
        std::size_t count;
        std::optional<V> expected;
    };
    const Case cases[] = {
        {"#XTCPCLI: -1,0", "#XTCPCLI", 2, V{-1, 0}},  // initial state
        {"#XTCPCLI: 0,1", "#XTCPCLI", 2, V{0, 1}},
        {"#XTCPCLI: -1,2", "#XTCPCLI", 2, V{-1, 2}},  // family is not reset after a disconnect
        {"#XTCPSVR: 0,1,1", "#XTCPSVR", 3, V{0, 1, 1}},
        {"#XTCPSVR: 0,-1,1", "#XTCPSVR", 3, V{0, -1, 1}},
        {"#XTCPSVR: -1,-1,0", "#XTCPSVR", 3, V{-1, -1, 0}},
        {"#XUDPCLI: 1,1", "#XUDPCLI", 2, V{1, 1}},
        {"#XUDPSVR: -1,0", "#XUDPSVR", 2, V{-1, 0}},
        {"#XTCPSVR: 0,1", "#XTCPSVR", 3, std::nullopt},
        {R"(#XTCPSVR: "127.0.0.1","connected")", "#XTCPSVR", 3, std::nullopt},
        {R"(#XUDPCLI: 1,"connected")", "#XUDPCLI", 2, std::nullopt},
        {"#XUDPCLI: 1,x", "#XUDPCLI", 2, std::nullopt},
        {"#XUDPSVR: 1,1", "#XUDPCLI", 2, std::nullopt},
    };
    for (const auto& c : cases) EXPECT_EQ(parse_proxy_read(c.line, c.prefix, c.count), c.expected) << c.line;
}

TEST(ParseSendCount, Forms) {
    EXPECT_EQ(parse_send_count("#XUDPSEND: 5", "#XUDPSEND"), 5);
    EXPECT_EQ(parse_send_count("#XUDPSEND: 0", "#XUDPSEND"), 0);
    EXPECT_EQ(parse_send_count("#XTCPSEND: 1024", "#XTCPSEND"), 1024);
    EXPECT_EQ(parse_send_count("#XUDPSEND: -1", "#XUDPSEND"), std::nullopt);
    EXPECT_EQ(parse_send_count("#XUDPSEND: 5", "#XTCPSEND"), std::nullopt);
    EXPECT_EQ(parse_send_count("#XUDPSEND: 5,1", "#XUDPSEND"), std::nullopt);
}

TEST(ParseTestForm, EveryTestAnswer) {
    using V = std::vector<std::string>;
    struct Case {
        const char* line;
        const char* prefix;
        std::optional<V> expected;
    };
    const Case cases[] = {
        {"#XTCPCLI: (0,1,2),<url>,<port>,<sec_tag>", "#XTCPCLI", V{"(0,1,2)", "<url>", "<port>", "<sec_tag>"}},
        {"#XTCPCLI: (0,1,2),<url>,<port>,<sec_tag>,<peer_verify>,<hostname_verify>", "#XTCPCLI",
         V{"(0,1,2)", "<url>", "<port>", "<sec_tag>", "<peer_verify>", "<hostname_verify>"}},
        {"#XTCPSVR: (0,1,2),<port>,<sec_tag>", "#XTCPSVR", V{"(0,1,2)", "<port>", "<sec_tag>"}},
        {"#XUDPCLI: (0,1,2),<url>,<port>,<sec_tag>,<use_dtls_cid>", "#XUDPCLI",
         V{"(0,1,2)", "<url>", "<port>", "<sec_tag>", "<use_dtls_cid>"}},
        {"#XUDPSVR: (0,1,2),<port>", "#XUDPSVR", V{"(0,1,2)", "<port>"}},
        {"#XUDPSVR: (0,1,2),<port>,<sec_tag>", "#XUDPSVR", V{"(0,1,2)", "<port>", "<sec_tag>"}},
        {"#XTCPHANGUP: <handle>", "#XTCPHANGUP", V{"<handle>"}},
        {"#TCPHANGUP: <handle>", "#XTCPHANGUP", V{"<handle>"}},  // the docs' misprint
        {"#TCPHANGUP: <handle>", "#XTCPCLI", std::nullopt},
        {"#XTCPCLI: (0,1,2,<url>", "#XTCPCLI", std::nullopt},
        {"#XTCPCLI: (0,1,2),,<port>", "#XTCPCLI", std::nullopt},
        {"#XTCPSVR: (0,1,2),<port>", "#XTCPCLI", std::nullopt},
        // URCs that share the prefix and arrive while the test command is pending are not its answer.
        {"#XTCPCLI: -104,\"disconnected\"", "#XTCPCLI", std::nullopt},
        {"#XTCPSVR: \"192.0.2.1\",\"connected\"", "#XTCPSVR", std::nullopt},
        {"#XUDPSVR: 0,\"stopped\"", "#XUDPSVR", std::nullopt},
    };
    for (const auto& c : cases) EXPECT_EQ(parse_test_form(c.line, c.prefix), c.expected) << c.line;
}

TEST(AnswerParsers, OpenedSocketHandleFromEitherFamily) {
    EXPECT_EQ(parse_opened_socket({"#XSOCKET: 3,1,6"}), 3);            // SLM generic socket, Serial Modem TCP
    EXPECT_EQ(parse_opened_socket({"#XSOCKET: 12,2,17"}), 12);          // a descriptor, not a slot
    EXPECT_EQ(parse_opened_socket({"+CEREG: 1", "#XSOCKET: 0,1,6"}), 0);
    EXPECT_EQ(parse_opened_socket({}), std::nullopt);
    EXPECT_EQ(parse_opened_socket({"#XSOCKET: x,1,6"}), std::nullopt);
    EXPECT_EQ(parse_opened_socket({"#XSSOCKET: 3,1,258"}), 3);         // Serial Modem TLS socket (258: TLS 1.2)
    EXPECT_EQ(parse_opened_socket({"#XSSOCKET: x,1,258"}), std::nullopt);
    EXPECT_EQ(parse_leading_int("-104,\"x\""), -104);
    EXPECT_EQ(parse_leading_int(""), std::nullopt);
}

TEST(AnswerParsers, SerialModemAccept) {
    struct Row {
        const char* line;
        std::optional<int> handle;
        const char* address;
        int port;
    };
    const Row rows[] = {
        {"#XACCEPT: 4,0,\"127.0.0.1\",50412", 4, "127.0.0.1", 50412},
        {"#XACCEPT: 5,1,\"2001:db8::7\",1", 5, "2001:db8::7", 1},
        {"#XACCEPT: 4,0,\"\",50412", std::nullopt, "", 0},            // no address
        {"#XACCEPT: 4,\"127.0.0.1\",50412", std::nullopt, "", 0},       // SLM's older form has no cid
        {"#XACCEPT: -1,0,\"127.0.0.1\",50412", std::nullopt, "", 0},
        {"#XACCEPT: 4,0,\"127.0.0.1\",70000", std::nullopt, "", 0},
        {"#XACCEPT: 4,0,\"127.0.0.1", std::nullopt, "", 0},               // unterminated quote
        {"#XSOCKET: 4,0,\"127.0.0.1\",50412", std::nullopt, "", 0},
    };
    for (const auto& row : rows) {
        SCOPED_TRACE(row.line);
        const auto peer = parse_sm_accept(row.line);
        ASSERT_EQ(peer.has_value(), row.handle.has_value());
        if (!peer) continue;
        EXPECT_EQ(peer->handle, *row.handle);
        EXPECT_EQ(peer->address, row.address);
        EXPECT_EQ(peer->port, row.port);
    }
}

TEST(AnswerParsers, SerialModemVersion) {
    const auto v = parse_smver("#XSMVER: \"v1.0.1\",\"3.2.4\"");
    ASSERT_TRUE(v);
    EXPECT_EQ(v->ncs_version, "v1.0.1");
    EXPECT_EQ(v->modem_library, "3.2.4");
    const auto custom = parse_smver("#XSMVER: \"v2.0.0-preview1\",\"3.3.0-rc1\",\"Onomondo 2.1.0\"");
    ASSERT_TRUE(custom);
    EXPECT_EQ(custom->customer, "Onomondo 2.1.0");
    EXPECT_FALSE(parse_smver("#XSLMVER: \"2.9.0\",\"2.9.0\""));
    EXPECT_FALSE(parse_smver("#XSMVER: \"v1.0.1\""));
}
