// The shim's pure decisions: which destinations stay local, how a flow's destination is shown, which names
// the C library keeps, and the error mappings.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include <cstring>
#include <string>

#include "policy.h"

namespace {

sockaddr_storage v4(const char* text, uint16_t port, socklen_t* len) {
    sockaddr_storage ss{};
    auto* in = reinterpret_cast<sockaddr_in*>(&ss);
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    EXPECT_EQ(inet_pton(AF_INET, text, &in->sin_addr), 1) << text;
    *len = sizeof(sockaddr_in);
    return ss;
}

sockaddr_storage v6(const char* text, uint16_t port, socklen_t* len) {
    sockaddr_storage ss{};
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    EXPECT_EQ(inet_pton(AF_INET6, text, &in6->sin6_addr), 1) << text;
    *len = sizeof(sockaddr_in6);
    return ss;
}

bool local(const sockaddr_storage& ss, socklen_t len) {
    return slmsock_pl_is_local_destination(reinterpret_cast<const sockaddr*>(&ss), len);
}

}  // namespace

TEST(LocalDestination, LoopbackAndUnspecifiedStayLocal) {
    socklen_t len;
    for (const char* a : {"127.0.0.1", "127.1.2.3", "127.255.255.254", "0.0.0.0"}) {
        auto ss = v4(a, 80, &len);
        EXPECT_TRUE(local(ss, len)) << a;
    }
    for (const char* a : {"::1", "::", "::ffff:127.0.0.1", "::ffff:127.9.9.9", "::ffff:0.0.0.0"}) {
        auto ss = v6(a, 80, &len);
        EXPECT_TRUE(local(ss, len)) << a;
    }
}

TEST(LocalDestination, EverythingElseGoesToTheModem) {
    socklen_t len;
    for (const char* a : {"203.0.113.10", "10.0.0.1", "192.168.1.1", "128.0.0.1", "126.255.255.255", "1.0.0.0"}) {
        auto ss = v4(a, 80, &len);
        EXPECT_FALSE(local(ss, len)) << a;
    }
    for (const char* a : {"2001:db8::1", "::ffff:203.0.113.10", "fe80::1", "::2", "::127.0.0.1"}) {
        auto ss = v6(a, 80, &len);
        EXPECT_FALSE(local(ss, len)) << a;
    }
}

TEST(LocalDestination, ShortOrForeignAddressesAreNotClassified) {
    socklen_t len;
    auto ss = v4("127.0.0.1", 80, &len);
    EXPECT_FALSE(local(ss, len - 1));
    auto ss6 = v6("::1", 80, &len);
    EXPECT_FALSE(local(ss6, 8));
    sockaddr_storage unix_addr{};
    unix_addr.ss_family = AF_UNIX;
    EXPECT_FALSE(local(unix_addr, sizeof unix_addr));
    EXPECT_FALSE(slmsock_pl_is_local_destination(nullptr, 16));
}

TEST(DataEndpoint, OnlyLoopbackHostAtTheDataPort) {
    socklen_t len;
    auto a = v4("127.0.0.1", 4000, &len);
    EXPECT_TRUE(slmsock_pl_is_data_endpoint(reinterpret_cast<sockaddr*>(&a), len, 4000));
    EXPECT_FALSE(slmsock_pl_is_data_endpoint(reinterpret_cast<sockaddr*>(&a), len, 4001));
    EXPECT_FALSE(slmsock_pl_is_data_endpoint(reinterpret_cast<sockaddr*>(&a), len, 0));
    auto b = v4("127.0.0.2", 4000, &len);
    EXPECT_FALSE(slmsock_pl_is_data_endpoint(reinterpret_cast<sockaddr*>(&b), len, 4000));
    auto c = v6("::1", 4000, &len);
    EXPECT_TRUE(slmsock_pl_is_data_endpoint(reinterpret_cast<sockaddr*>(&c), len, 4000));
    auto d = v6("::ffff:127.0.0.1", 4000, &len);
    EXPECT_TRUE(slmsock_pl_is_data_endpoint(reinterpret_cast<sockaddr*>(&d), len, 4000));
    auto e = v6("::ffff:203.0.113.1", 4000, &len);
    EXPECT_FALSE(slmsock_pl_is_data_endpoint(reinterpret_cast<sockaddr*>(&e), len, 4000));
}

TEST(FillAddress, SameFamilyCopiesAndReportsTheFullLength) {
    socklen_t len;
    auto dest = v4("203.0.113.10", 8080, &len);
    sockaddr_in out{};
    socklen_t out_len = sizeof out;
    ASSERT_TRUE(slmsock_pl_fill_address(AF_INET, reinterpret_cast<sockaddr*>(&dest), len,
                                        reinterpret_cast<sockaddr*>(&out), &out_len));
    EXPECT_EQ(out_len, sizeof(sockaddr_in));
    EXPECT_EQ(out.sin_family, AF_INET);
    EXPECT_EQ(ntohs(out.sin_port), 8080);
    char text[64];
    EXPECT_STREQ(inet_ntop(AF_INET, &out.sin_addr, text, sizeof text), "203.0.113.10");
}

TEST(FillAddress, IPv4DestinationOnAnIPv6SocketIsV4Mapped) {
    socklen_t len;
    auto dest = v4("203.0.113.10", 443, &len);
    sockaddr_in6 out{};
    socklen_t out_len = sizeof out;
    ASSERT_TRUE(slmsock_pl_fill_address(AF_INET6, reinterpret_cast<sockaddr*>(&dest), len,
                                        reinterpret_cast<sockaddr*>(&out), &out_len));
    EXPECT_EQ(out_len, sizeof(sockaddr_in6));
    char text[64];
    EXPECT_STREQ(inet_ntop(AF_INET6, &out.sin6_addr, text, sizeof text), "::ffff:203.0.113.10");
    EXPECT_EQ(ntohs(out.sin6_port), 443);
}

TEST(FillAddress, V4MappedDestinationOnAnIPv4SocketIsPlainIPv4) {
    socklen_t len;
    auto dest = v6("::ffff:203.0.113.10", 443, &len);
    sockaddr_in out{};
    socklen_t out_len = sizeof out;
    ASSERT_TRUE(slmsock_pl_fill_address(AF_INET, reinterpret_cast<sockaddr*>(&dest), len,
                                        reinterpret_cast<sockaddr*>(&out), &out_len));
    EXPECT_EQ(out.sin_family, AF_INET);
    auto real6 = v6("2001:db8::1", 443, &len);
    EXPECT_FALSE(slmsock_pl_fill_address(AF_INET, reinterpret_cast<sockaddr*>(&real6), len,
                                         reinterpret_cast<sockaddr*>(&out), &out_len));
}

TEST(FillAddress, TruncatesLikeTheKernel) {
    socklen_t len;
    auto dest = v4("203.0.113.10", 0x1234, &len);
    unsigned char out[6];
    std::memset(out, 0xAA, sizeof out);
    socklen_t out_len = 4;
    ASSERT_TRUE(slmsock_pl_fill_address(AF_INET, reinterpret_cast<sockaddr*>(&dest), len,
                                        reinterpret_cast<sockaddr*>(out), &out_len));
    EXPECT_EQ(out_len, sizeof(sockaddr_in));
    EXPECT_EQ(out[2], 0x12);
    EXPECT_EQ(out[3], 0x34);
    EXPECT_EQ(out[4], 0xAA) << "nothing written past the caller's length";
    out_len = 0;
    ASSERT_TRUE(slmsock_pl_fill_address(AF_INET, reinterpret_cast<sockaddr*>(&dest), len,
                                        reinterpret_cast<sockaddr*>(out), &out_len));
    EXPECT_EQ(out_len, sizeof(sockaddr_in));
}

TEST(Names, NumericHostsAreRecognisedAsLibcDoes) {
    for (const char* n : {"10.1.2.3", "10.1", "127.1", "0x7f.1", "2001:db8::1", "fe80::1%eth0", "::ffff:1.2.3.4"}) {
        EXPECT_TRUE(slmsock_pl_is_numeric_host(n)) << n;
    }
    for (const char* n : {"", "example.com", "1.2.3.4.example", "fe80::1::2", "files.example"}) {
        EXPECT_FALSE(slmsock_pl_is_numeric_host(n)) << n;
    }
    EXPECT_FALSE(slmsock_pl_is_numeric_host(nullptr));
}

TEST(Names, LocalhostAndItsSubdomains) {
    for (const char* n : {"localhost", "LOCALHOST", "localhost.", "a.localhost", "x.y.Localhost."}) {
        EXPECT_TRUE(slmsock_pl_is_localhost_name(n)) << n;
    }
    for (const char* n : {"localhost.example", "mylocalhost", "localhostx", "example.com", ""}) {
        EXPECT_FALSE(slmsock_pl_is_localhost_name(n)) << n;
    }
}

TEST(Names, HostsFileParsing) {
    const std::string text =
        "127.0.0.1\tlocalhost\n"
        "# 192.168.1.9 commented-out\n"
        "192.168.1.5   printer.lan  Printer   # trailing comment\r\n"
        "::1 ip6-localhost ip6-loopback\n"
        "10.0.0.1";  // no newline, no name
    auto lists = [&](const char* name) { return slmsock_pl_hosts_text_lists(text.data(), text.size(), name); };
    EXPECT_TRUE(lists("localhost"));
    EXPECT_TRUE(lists("printer.lan"));
    EXPECT_TRUE(lists("PRINTER"));
    EXPECT_TRUE(lists("printer.lan."));
    EXPECT_TRUE(lists("ip6-loopback"));
    EXPECT_FALSE(lists("commented-out"));
    EXPECT_FALSE(lists("trailing"));
    EXPECT_FALSE(lists("192.168.1.5")) << "addresses are not names";
    EXPECT_FALSE(lists("printer.la"));
    EXPECT_FALSE(lists(""));
}

TEST(Errors, ResolveFailuresBecomeEaiCodes) {
    EXPECT_EQ(slmsock_pl_resolve_error_to_eai(EAI_NONAME), EAI_NONAME);
    EXPECT_EQ(slmsock_pl_resolve_error_to_eai(EAI_AGAIN), EAI_AGAIN);
    EXPECT_EQ(slmsock_pl_resolve_error_to_eai(EAI_FAIL), EAI_FAIL);
    EXPECT_EQ(slmsock_pl_resolve_error_to_eai(EAI_NODATA), EAI_NODATA);
    EXPECT_EQ(slmsock_pl_resolve_error_to_eai(EAI_SYSTEM), EAI_AGAIN) << "slmd absent: try again later";
    EXPECT_EQ(slmsock_pl_eai_to_h_errno(EAI_NONAME), HOST_NOT_FOUND);
    EXPECT_EQ(slmsock_pl_eai_to_h_errno(EAI_AGAIN), TRY_AGAIN);
    EXPECT_EQ(slmsock_pl_eai_to_h_errno(EAI_NODATA), NO_DATA);
    EXPECT_EQ(slmsock_pl_eai_to_h_errno(EAI_FAIL), NO_RECOVERY);
}

TEST(Dedupe, KeepsFirstOccurrenceOrder) {
    sockaddr_storage a[5];
    socklen_t len;
    a[0] = v4("203.0.113.10", 0, &len);
    a[1] = v4("203.0.113.10", 0, &len);
    a[2] = v6("2001:db8::1", 0, &len);
    a[3] = v4("203.0.113.11", 0, &len);
    a[4] = v6("2001:db8::1", 0, &len);
    ASSERT_EQ(slmsock_pl_dedupe(a, 5), 3u);
    EXPECT_EQ(a[0].ss_family, AF_INET);
    EXPECT_EQ(a[1].ss_family, AF_INET6);
    EXPECT_EQ(reinterpret_cast<sockaddr_in*>(&a[2])->sin_addr.s_addr, inet_addr("203.0.113.11"));
}

// ---- Servers and UDP ----------------------------------------------------------------------------------------

namespace {
const sockaddr* as_sa(const sockaddr_storage& ss) { return reinterpret_cast<const sockaddr*>(&ss); }

// An address from text (IPv4 or IPv6) and a port; its length in *len.
struct Addr {
    sockaddr_storage ss;
    socklen_t len;
    Addr(const char* text, uint16_t port) {
        ss = std::strchr(text, ':') != nullptr ? v6(text, port, &len) : v4(text, port, &len);
    }
    const sockaddr* sa() const { return reinterpret_cast<const sockaddr*>(&ss); }
};
bool wildcard(const char* text) { Addr a(text, 80); return slmsock_pl_is_wildcard(a.sa(), a.len); }
bool loopback_host(const char* text) { Addr a(text, 5); return slmsock_pl_is_loopback_host(a.sa(), a.len); }
bool address_is(const char* text, const char* modem) { Addr a(text, 80); return slmsock_pl_address_is(a.sa(), a.len, modem); }
}  // namespace

TEST(Wildcard, OnlyTheUnspecifiedAddresses) {
    socklen_t len = 0;
    EXPECT_TRUE(wildcard("0.0.0.0"));
    EXPECT_TRUE(wildcard("::"));
    EXPECT_TRUE(wildcard("::ffff:0.0.0.0"));
    EXPECT_FALSE(wildcard("127.0.0.1"));
    EXPECT_FALSE(wildcard("10.0.0.2"));
    EXPECT_FALSE(wildcard("::1"));
    auto any = v4("0.0.0.0", 80, &len);
    EXPECT_FALSE(slmsock_pl_is_wildcard(as_sa(any), len - 1));  // incomplete
    EXPECT_FALSE(slmsock_pl_is_wildcard(nullptr, 0));
}

TEST(LoopbackHost, ExactlySlmdsAddresses) {
    EXPECT_TRUE(loopback_host("127.0.0.1"));
    EXPECT_TRUE(loopback_host("::1"));
    EXPECT_TRUE(loopback_host("::ffff:127.0.0.1"));
    EXPECT_FALSE(loopback_host("127.0.0.2"));
    EXPECT_FALSE(loopback_host("0.0.0.0"));
    EXPECT_FALSE(loopback_host("::"));
    EXPECT_FALSE(loopback_host("10.0.0.1"));
}

TEST(LoopbackAndWildcard, AreBuiltInTheSocketsFamily) {
    sockaddr_storage ss;
    ASSERT_EQ(slmsock_pl_loopback(AF_INET, 4242, &ss), sizeof(sockaddr_in));
    auto* in = reinterpret_cast<sockaddr_in*>(&ss);
    EXPECT_EQ(in->sin_family, AF_INET);
    EXPECT_EQ(ntohs(in->sin_port), 4242);
    EXPECT_EQ(ntohl(in->sin_addr.s_addr), INADDR_LOOPBACK);
    ASSERT_EQ(slmsock_pl_loopback(AF_INET6, 4243, &ss), sizeof(sockaddr_in6));
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
    EXPECT_EQ(in6->sin6_family, AF_INET6);
    EXPECT_EQ(ntohs(in6->sin6_port), 4243);
    EXPECT_TRUE(IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr));
    EXPECT_EQ(slmsock_pl_loopback(AF_UNIX, 1, &ss), 0u);
    ASSERT_EQ(slmsock_pl_wildcard(AF_INET, 0, &ss), sizeof(sockaddr_in));
    EXPECT_TRUE(slmsock_pl_is_wildcard(as_sa(ss), sizeof(sockaddr_in)));
    ASSERT_EQ(slmsock_pl_wildcard(AF_INET6, 7, &ss), sizeof(sockaddr_in6));
    EXPECT_TRUE(slmsock_pl_is_wildcard(as_sa(ss), sizeof(sockaddr_in6)));
    EXPECT_EQ(ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port), 7);
    EXPECT_EQ(slmsock_pl_wildcard(AF_UNIX, 1, &ss), 0u);
}

TEST(AddressIs, ComparesWithTheModemsAddressText) {
    EXPECT_TRUE(address_is("10.0.0.2", "10.0.0.2"));
    EXPECT_TRUE(address_is("::ffff:10.0.0.2", "10.0.0.2"));
    EXPECT_FALSE(address_is("10.0.0.3", "10.0.0.2"));
    EXPECT_TRUE(address_is("2001:db8::2", "2001:db8::2"));
    EXPECT_FALSE(address_is("10.0.0.2", "2001:db8::2"));
    EXPECT_FALSE(address_is("10.0.0.2", ""));
    EXPECT_FALSE(address_is("10.0.0.2", "not an address"));
    EXPECT_FALSE(address_is("10.0.0.2", nullptr));
}

TEST(CopyAddress, TruncatesLikeTheKernel) {
    socklen_t len = 0;
    auto full = v6("2001:db8::1", 9, &len);
    sockaddr_storage out;
    std::memset(&out, 0xee, sizeof out);
    socklen_t out_len = 4;
    slmsock_pl_copy_address(&full, len, reinterpret_cast<sockaddr*>(&out), &out_len);
    EXPECT_EQ(out_len, sizeof(sockaddr_in6));
    EXPECT_EQ(std::memcmp(&out, &full, 4), 0);
    EXPECT_EQ(reinterpret_cast<unsigned char*>(&out)[4], 0xee);  // nothing past the caller's length
    out_len = 0;
    slmsock_pl_copy_address(&full, len, nullptr, &out_len);  // a zero-length buffer is never touched
    EXPECT_EQ(out_len, sizeof(sockaddr_in6));
}

TEST(ListenPolicy, LocalUnlessModem) {
    EXPECT_EQ(slmsock_pl_listen_policy(nullptr), SLMSOCK_PL_LISTEN_LOCAL);
    EXPECT_EQ(slmsock_pl_listen_policy(""), SLMSOCK_PL_LISTEN_LOCAL);
    EXPECT_EQ(slmsock_pl_listen_policy("modem"), SLMSOCK_PL_LISTEN_MODEM);
    EXPECT_EQ(slmsock_pl_listen_policy("local"), SLMSOCK_PL_LISTEN_LOCAL);
    EXPECT_EQ(slmsock_pl_listen_policy("bogus"), SLMSOCK_PL_LISTEN_LOCAL);
}
