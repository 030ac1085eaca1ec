// slmd.conf's tls/dtls mappings: parsing (every problem named) and which connection gets which TLS block.
#include "net/tls_policy.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>

namespace slmd::net {
namespace {

namespace wire = slmsock::wire;
using namespace std::chrono_literals;

wire::Address ip(const char* text) {
    wire::Address a;
    if (inet_pton(AF_INET, text, a.bytes.data()) == 1) {
        a.family = wire::Family::ipv4;
    } else {
        EXPECT_EQ(inet_pton(AF_INET6, text, a.bytes.data()), 1) << text;
        a.family = wire::Family::ipv6;
    }
    return a;
}

TlsRule rule(const char* text, bool datagram = false) {
    std::string problem;
    auto r = parse_tls_rule(text, datagram, problem);
    EXPECT_TRUE(r) << text << ": " << problem;
    return r.value_or(TlsRule{});
}

TEST(TlsRuleParse, Forms) {
    auto r = rule("Broker.Example:8883 sec-tag=42");
    EXPECT_EQ(r.host, "broker.example");
    EXPECT_FALSE(r.address);
    EXPECT_EQ(r.port, 8883);
    EXPECT_EQ(r.parameters, (wire::TlsParameters{42, wire::tls_default, wire::tls_default, wire::tls_default, ""}));

    r = rule("192.0.2.10:443  sec-tag=7 peer-verify=1\thostname-verify=0 hostname=api.example");
    EXPECT_EQ(r.address, ip("192.0.2.10"));
    EXPECT_EQ(r.parameters, (wire::TlsParameters{7, 1, 0, wire::tls_default, "api.example"}));

    r = rule("[2001:db8::1]:5684 sec-tag=2147483647 dtls-cid=2", true);
    EXPECT_TRUE(r.datagram);
    EXPECT_EQ(r.address, ip("2001:db8::1"));
    EXPECT_EQ(r.parameters.sec_tag, wire::max_sec_tag);
    EXPECT_EQ(r.parameters.dtls_cid, 2);

    r = rule("*:8883 sec-tag=0");
    EXPECT_TRUE(r.host.empty());
    EXPECT_FALSE(r.address);
}

TEST(TlsRuleParse, ProblemsAreNamed) {
    const std::pair<const char*, const char*> bad[] = {
        {"", "expected HOST:PORT sec-tag=N"},
        {"broker.example sec-tag=1", "\"broker.example\" is not HOST:PORT"},
        {"broker.example:0 sec-tag=1", "\"0\" is not a port (1-65535)"},
        {"broker.example:8883", "sec-tag=N is required"},
        {"broker.example:8883 sec-tag=-1", "sec-tag must be 0-2147483647"},
        {"broker.example:8883 sec-tag=2147483648", "sec-tag must be 0-2147483647"},
        {"broker.example:8883 sec-tag=1 peer-verify=3", "peer-verify must be 0-2"},
        {"broker.example:8883 sec-tag=1 hostname-verify=2", "hostname-verify must be 0-1"},
        {"broker.example:8883 sec-tag=1 dtls-cid=1", "dtls-cid is for dtls mappings"},
        {"broker.example:8883 sec-tag=1 verify", "\"verify\" is not NAME=VALUE"},
        {"broker.example:8883 sec-tag=1 colour=red",
         "unknown option \"colour\" (sec-tag, peer-verify, hostname-verify, hostname)"},
        {"bro\"ker:8883 sec-tag=1", "\"bro\"ker\" is not a host name, an address or *"},
        {"2001:db8::1:5684 sec-tag=1", "an IPv6 address needs brackets: [2001:db8::1]:5684"},
        {"[192.0.2.1]:5684 sec-tag=1", "\"192.0.2.1\" is not an IPv6 address"},
        {"a.example:1 sec-tag=1 hostname=x\"y", "hostname \"x\"y\" is not a host name"},
    };
    for (const auto& [text, expected] : bad) {
        std::string problem;
        EXPECT_FALSE(parse_tls_rule(text, false, problem)) << text;
        EXPECT_EQ(problem, expected) << text;
    }
}

TEST(TlsPolicy, AddressRuleMatchesOnlyItsTransportAndPort) {
    TlsPolicy policy({rule("192.0.2.10:8883 sec-tag=42")});
    auto t = policy.lookup(false, ip("192.0.2.10"), 8883);
    ASSERT_TRUE(t);
    EXPECT_EQ(t->sec_tag, 42);
    EXPECT_EQ(t->hostname, "");  // nothing resolved: the modem gets the numeric address
    EXPECT_FALSE(policy.lookup(false, ip("192.0.2.10"), 1883));
    EXPECT_FALSE(policy.lookup(true, ip("192.0.2.10"), 8883));
    EXPECT_FALSE(policy.lookup(false, ip("192.0.2.11"), 8883));
}

TEST(TlsPolicy, NameRuleMatchesAddressesTheNameResolvedTo) {
    TlsPolicy policy({rule("broker.example:8883 sec-tag=42")});
    const auto t0 = std::chrono::steady_clock::time_point{} + 100h;
    EXPECT_FALSE(policy.lookup(false, ip("192.0.2.10"), 8883, t0));
    policy.remember("Broker.EXAMPLE", {ip("192.0.2.10"), ip("2001:db8::10")}, t0);
    for (const char* a : {"192.0.2.10", "2001:db8::10"}) {
        auto t = policy.lookup(false, ip(a), 8883, t0 + 1s);
        ASSERT_TRUE(t) << a;
        EXPECT_EQ(t->hostname, "broker.example") << a;  // the name the modem connects to and verifies
    }
    // Forgotten after an hour (the firmware gives no TTL).
    EXPECT_FALSE(policy.lookup(false, ip("192.0.2.10"), 8883, t0 + TlsPolicy::remember_for + 1s));
}

TEST(TlsPolicy, MostSpecificRuleWins) {
    TlsPolicy policy({rule("*:8883 sec-tag=1"), rule("broker.example:8883 sec-tag=2"),
                      rule("192.0.2.10:8883 sec-tag=3 hostname=pinned.example")});
    const auto now = std::chrono::steady_clock::now();
    policy.remember("broker.example", {ip("192.0.2.10"), ip("192.0.2.20")}, now);
    policy.remember("other.example", {ip("192.0.2.30")}, now);
    auto by_address = policy.lookup(false, ip("192.0.2.10"), 8883, now);
    auto by_name = policy.lookup(false, ip("192.0.2.20"), 8883, now);
    auto any_named = policy.lookup(false, ip("192.0.2.30"), 8883, now);
    auto any_numeric = policy.lookup(false, ip("192.0.2.40"), 8883, now);
    ASSERT_TRUE(by_address && by_name && any_named && any_numeric);
    EXPECT_EQ(by_address->sec_tag, 3);
    EXPECT_EQ(by_address->hostname, "pinned.example");
    EXPECT_EQ(by_name->sec_tag, 2);
    EXPECT_EQ(by_name->hostname, "broker.example");
    EXPECT_EQ(any_named->sec_tag, 1);
    EXPECT_EQ(any_named->hostname, "other.example");
    EXPECT_EQ(any_numeric->sec_tag, 1);
    EXPECT_EQ(any_numeric->hostname, "");
}

TEST(TlsPolicy, MemoryIsBounded) {
    TlsPolicy policy({rule("*:8883 sec-tag=1")});
    const auto t0 = std::chrono::steady_clock::now();
    wire::Address a = ip("10.0.0.0");
    for (std::size_t i = 0; i < TlsPolicy::max_remembered + 10; ++i) {
        a.bytes[2] = static_cast<std::uint8_t>(i >> 8);
        a.bytes[3] = static_cast<std::uint8_t>(i);
        policy.remember("n" + std::to_string(i) + ".example", {a}, t0 + std::chrono::milliseconds(i));
    }
    // The oldest went first; the newest is there.
    EXPECT_FALSE(policy.name_of(ip("10.0.0.0"), t0 + 2s));
    EXPECT_EQ(policy.name_of(a, t0 + 2s), "n" + std::to_string(TlsPolicy::max_remembered + 9) + ".example");
}

TEST(TlsPolicy, NothingRememberedWithoutRules) {
    TlsPolicy policy;
    policy.remember("broker.example", {ip("192.0.2.10")});
    EXPECT_FALSE(policy.name_of(ip("192.0.2.10"), std::chrono::steady_clock::now()));
}

}  // namespace
}  // namespace slmd::net

namespace slmd::net {
namespace {

TEST(TlsServerParse, PortAndSecTagOnly) {
    std::string problem;
    auto server = parse_tls_server("  8443 sec-tag=43", problem);
    ASSERT_TRUE(server) << problem;
    EXPECT_EQ(server->first, 8443);
    EXPECT_EQ(server->second, 43);
    EXPECT_FALSE(parse_tls_server("8443", problem));
    EXPECT_EQ(problem, "sec-tag=N is required");
    EXPECT_FALSE(parse_tls_server("8443 sec-tag=1 peer-verify=0", problem));
    EXPECT_EQ(problem, "a TLS server takes only sec-tag=N");
    EXPECT_FALSE(parse_tls_server("", problem));
    EXPECT_EQ(problem, "expected PORT sec-tag=N");
    EXPECT_FALSE(parse_tls_server("70000 sec-tag=1", problem));
    EXPECT_EQ(problem, "\"70000\" is not a port (1-65535)");
}

}  // namespace
}  // namespace slmd::net
