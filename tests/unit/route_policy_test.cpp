// The modem-or-local-route decision, with routing tables written out by hand.
#include "net/route_policy.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>

using namespace slmd::net;
namespace wire = slmsock::wire;

namespace {
wire::Address address(const char* text) {
    wire::Address a;
    if (inet_pton(AF_INET, text, a.bytes.data()) == 1) {
        a.family = wire::Family::ipv4;
    } else {
        EXPECT_EQ(inet_pton(AF_INET6, text, a.bytes.data()), 1) << text;
        a.family = wire::Family::ipv6;
    }
    return a;
}
Prefix prefix(const char* text) {
    auto p = parse_prefix(text);
    EXPECT_TRUE(p) << text;
    return p.value_or(Prefix{});
}
}  // namespace

TEST(RoutePolicy, ParsePrefix) {
    EXPECT_EQ(prefix("10.0.0.0/8").length, 8);
    EXPECT_EQ(prefix("192.168.1.7").length, 32);
    EXPECT_EQ(prefix("fd00::/8").length, 8);
    EXPECT_EQ(prefix("fd00::/8").family, wire::Family::ipv6);
    EXPECT_FALSE(parse_prefix("10.0.0.0/33"));
    EXPECT_FALSE(parse_prefix("10.0.0.0/"));
    EXPECT_FALSE(parse_prefix("example.com"));
    EXPECT_FALSE(parse_prefix("10.0.0.0/8x"));
}

TEST(RoutePolicy, Decisions) {
    // A gateway whose LAN is 192.168.1.0/24 on eth0, with a default route out of it.
    const std::vector<Prefix> kernel{prefix("0.0.0.0/0"), prefix("192.168.1.0/24"), prefix("127.0.0.0/8"),
                                     prefix("::/0"), prefix("fe80::/64")};
    const std::vector<Prefix> configured{prefix("10.20.0.0/16")};
    struct Case {
        const char* destination;
        bool bypass;
    };
    const Case cases[] = {
        {"127.0.0.1", true},     {"127.8.9.10", true},   {"::1", true},          {"::ffff:127.0.0.1", true},
        {"192.168.1.50", true},  {"192.168.2.50", false}, {"203.0.113.10", false}, {"10.20.3.4", true},
        {"10.21.3.4", false},    {"fe80::1", true},      {"2001:db8::1", false},
    };
    for (const auto& c : cases) EXPECT_EQ(should_bypass(address(c.destination), configured, kernel), c.bypass)
        << c.destination;
}

TEST(RoutePolicy, NoRoutesAtAllMeansModem) {
    EXPECT_FALSE(should_bypass(address("198.51.100.1"), {}, {}));
    EXPECT_TRUE(should_bypass(address("127.0.0.1"), {}, {}));
}

TEST(RoutePolicy, KernelRoutesAreReadable) {
    // Whatever namespace the test runs in, its loopback route exists in the local table.
    auto routes = RoutePolicy::kernel_routes();
    bool has_loopback = false;
    for (const auto& route : routes) {
        if (prefix_contains(route, address("127.0.0.1")) && route.length > 0) has_loopback = true;
    }
    EXPECT_TRUE(has_loopback);
}
