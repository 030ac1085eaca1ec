// Owns: the table tests of the API codec (libslmsock/src/wire.cpp): the exact bytes of every message type
// (the same examples docs/api.md shows), round trips, every DecodeError, truncation at every offset, the
// encoder's clamping, peek_request_id and the data-connection credential.
#include <gtest/gtest.h>


#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>
#include <vector>

#include "wire.hpp"

using namespace slmsock::wire;
using Bytes = std::vector<std::uint8_t>;

namespace {

// "53 01 00*3 'abc'": hex bytes, NN*k repeats a byte k times, '...' is ASCII (may contain spaces).
Bytes hex(const std::string& text) {
    Bytes out;
    std::size_t i = 0;
    while (i < text.size()) {
        if (text[i] == ' ') {
            ++i;
        } else if (text[i] == '\'') {
            const std::size_t end = text.find('\'', i + 1);
            out.insert(out.end(), text.begin() + static_cast<std::ptrdiff_t>(i) + 1,
                       text.begin() + static_cast<std::ptrdiff_t>(end));
            i = end + 1;
        } else {
            const auto byte = static_cast<std::uint8_t>(std::stoul(text.substr(i, 2), nullptr, 16));
            i += 2;
            std::size_t repeat = 1;
            if (i < text.size() && text[i] == '*') {
                std::size_t used = 0;
                repeat = std::stoul(text.substr(i + 1), &used);
                i += 1 + used;
            }
            out.insert(out.end(), repeat, byte);
        }
    }
    return out;
}

Address v4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d) {
    Address x;
    x.family = Family::ipv4;
    x.bytes = {a, b, c, d};
    return x;
}

Address v6(std::initializer_list<std::uint8_t> bytes) {
    Address x;
    x.family = Family::ipv6;
    std::copy(bytes.begin(), bytes.end(), x.bytes.begin());
    return x;
}

Token counting_token() {
    Token t{};
    for (std::size_t i = 0; i < t.size(); ++i) t[i] = static_cast<std::uint8_t>(i);
    return t;
}

struct Case {
    const char* name;
    Envelope envelope;
    std::string bytes;
};

std::vector<Case> cases() {
    ConnectRequest connect4{Transport::tcp, v4(93, 184, 216, 34), 443, false, 30000, std::nullopt};
    ConnectRequest connect6{Transport::tcp, v6({0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}), 80,
                            true, 0, std::nullopt};
    ConnectRequest connect_udp{Transport::udp, v4(10, 0, 0, 1), 53, false, 0, std::nullopt};
    ResolveRequest resolve{Family::unspecified, "example.com"};
    ConnectReply connected{0, Route::modem, 42, counting_token(), 33333};
    ConnectReply refused{-ECONNREFUSED, Route::modem, 0, Token{}, 0};
    ConnectReply in_progress{-EINPROGRESS, Route::modem, 7, Token{}, 33333};
    ConnectReply bypass{0, Route::bypass, 0, Token{}, 0};
    FlowStatusReply flow{42, FlowState::connected, 0, v4(10, 0, 0, 1), 8080};
    FlowStatusReply failed{43, FlowState::failed, -ETIMEDOUT, Address{Family::unspecified, {}}, 0};
    ResolveReply resolved{0, {v4(1, 2, 3, 4), v6({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1})}};
    ResolveReply no_name{-2 /* EAI_NONAME */, {}};
    StatusReply status{"serving", "home", "2.9.0", "10.0.0.2", "", 2, 1, 33333};
    ErrorReply error{-EACCES, "not in group slm"};
    BindRequest bind_udp6{Transport::udp, Family::ipv6, 5683, 40001};
    UdpAssociateRequest associate{Family::ipv4, 40002, v4(192, 0, 2, 7), 7, std::nullopt};
    LookupRequest lookup{Transport::tcp, Family::ipv4, 8080, 45000};
    LookupReply looked_up{0, v4(10, 0, 0, 2), 8080, v4(192, 0, 2, 9), 0};
    ProxiesReply proxies{{{Transport::tcp, ProxyRole::server, 8080, "192.0.2.9", 4242, 3, 5},
                          {Transport::udp, ProxyRole::none, 0, "", 0, 0, 0}},
                         1,
                         "-1,0"};
    StatsReply stats;
    stats.uptime_s = 3600;
    stats.tcp_bytes_up = 1000;
    stats.tcp_bytes_down = 2000;
    stats.udp_dropped_busy = 3;
    stats.at_timeouts = 1;
    stats.admin_resets = 2;
    stats.recovery_backoffs = 0x0102030405060708;
    stats.downlink = {250, 1800, 12};
    stats.uplink = {100, 900, 5};
    AtReply at_ok{0, AtOutcome::ok, 0, {"mfw_nrf9160_1.3.5", "2.9.0"}};
    AtReply at_cme{0, AtOutcome::cme_error, 30, {}};
    ConnectRequest connect_tls{Transport::tcp, v4(192, 0, 2, 5), 8883, false, 0,
                               TlsParameters{42, 2, tls_default, tls_default, "tls.test"}};
    ConnectRequest connect_inode{Transport::tcp, v4(10, 0, 0, 1), 80, true, 0, std::nullopt, 0x0102030405060708};
    UdpAssociateRequest associate_dtls{Family::ipv4, 40002, v4(192, 0, 2, 7), 5684,
                                       TlsParameters{7, 0, 0, 2, ""}};
    CredentialRequest cred_write{CredentialOp::write, 16843009, 0, "-----BEGIN", false};
    CredentialRequest cred_list{CredentialOp::list, any_sec_tag, any_credential_type, "", false};
    CredentialRequest cred_remove{CredentialOp::remove, 3, 2, "", true};
    CredentialReply cred_listed{0, {{42, CredentialType::ca, "AB12"}, {42, CredentialType::private_key, ""}}, ""};
    CredentialReply cred_busy{-EBUSY, {}, "2 connections open"};

    return {
        {"connect_ipv4", {0x01020304, connect4},
         "53 01 01 00 04 03 02 01  01  04 5d b8 d8 22 00*12  bb 01  00  30 75 00 00"},
        {"connect_ipv6_nonblocking", {7, connect6},
         "53 01 01 00 07 00 00 00  01  06 20 01 0d b8 00*11 01  50 00  01  00 00 00 00"},
        {"connect_udp", {8, connect_udp}, "53 01 01 00 08 00 00 00  02  04 0a 00 00 01 00*12  35 00  00  00*4"},
        {"connect_tls", {3, connect_tls},
         "53 01 01 00 03 00 00 00  01  04 c0 00 02 05 00*12  b3 22  02  00*4"
         "  2a 00 00 00  02  ff  ff  08 00 'tls.test'"},
        {"connect_with_socket_inode", {4, connect_inode},
         "53 01 01 00 04 00 00 00  01  04 0a 00 00 01 00*12  50 00  05  00*4  08 07 06 05 04 03 02 01"},
        {"udp_associate_dtls", {15, associate_dtls},
         "53 01 08 00 0f 00 00 00  04  42 9c  04 c0 00 02 07 00*12  34 16  01  07 00 00 00  00  00  02  00 00"},
        {"credential_write", {22, cred_write},
         "53 01 0e 00 16 00 00 00  00  01 01 01 01  00  0a 00 '-----BEGIN'  00"},
        {"credential_list_all", {23, cred_list}, "53 01 0e 00 17 00 00 00  01  ff ff ff ff  ff  00 00  00"},
        {"credential_remove_forced", {24, cred_remove}, "53 01 0e 00 18 00 00 00  03  03 00 00 00  02  00 00  01"},
        {"credential_reply_list", {23, cred_listed},
         "53 01 0e 80 17 00 00 00  00*4  02  2a 00 00 00  00  04 00 'AB12'  2a 00 00 00  02  00 00  00 00"},
        {"credential_reply_busy", {22, cred_busy},
         "53 01 0e 80 16 00 00 00  f0 ff ff ff  00  12 00 '2 connections open'"},
        {"flow_status_by_id", {9, FlowStatusRequest{0x1122334455667788, 0}},
         "53 01 02 00 09 00 00 00  88 77 66 55 44 33 22 11  00 00"},
        {"flow_status_by_port", {9, FlowStatusRequest{0, 40000}}, "53 01 02 00 09 00 00 00  00*8  40 9c"},
        {"shutdown_write", {10, ShutdownRequest{5, 0, ShutdownHow::write}},
         "53 01 03 00 0a 00 00 00  05 00*7  00 00  01"},
        {"resolve", {11, resolve}, "53 01 04 00 0b 00 00 00  00  0b 00 'example.com'"},
        {"status", {12, StatusRequest{}}, "53 01 05 00 0c 00 00 00"},
        {"bind_udp6", {13, bind_udp6}, "53 01 06 00 0d 00 00 00  02  06  33 16  41 9c"},
        {"listen", {14, ListenRequest{Family::ipv4, 40001}}, "53 01 07 00 0e 00 00 00  04  41 9c"},
        {"udp_associate", {15, associate},
         "53 01 08 00 0f 00 00 00  04  42 9c  04 c0 00 02 07 00*12  07 00  00"},
        {"lookup", {16, lookup}, "53 01 09 00 10 00 00 00  01  04  90 1f  c8 af"},
        {"proxies", {17, ProxiesRequest{}}, "53 01 0a 00 11 00 00 00"},
        {"stats", {18, StatsRequest{}}, "53 01 0b 00 12 00 00 00"},
        {"at", {19, AtRequest{"AT+CGMR", false, 0}}, "53 01 0c 00 13 00 00 00  07 00 'AT+CGMR'  00  00*4"},
        {"at_forced", {20, AtRequest{"AT+CFUN=4", true, 15000}},
         "53 01 0c 00 14 00 00 00  09 00 'AT+CFUN=4'  01  98 3a 00 00"},
        {"reset", {21, ResetRequest{}}, "53 01 0d 00 15 00 00 00"},
        {"bind_reply_busy", {13, BindReply{-EBUSY}}, "53 01 06 80 0d 00 00 00  f0 ff ff ff"},
        {"listen_reply", {14, ListenReply{0}}, "53 01 07 80 0e 00 00 00  00*4"},
        {"udp_associate_reply", {15, UdpAssociateReply{0, Route::modem, 45001}},
         "53 01 08 80 0f 00 00 00  00*4  00  c9 af"},
        {"lookup_reply", {16, looked_up},
         "53 01 09 80 10 00 00 00  00*4  04 0a 00 00 02 00*12  90 1f  04 c0 00 02 09 00*12  00 00"},
        {"proxies_reply", {17, proxies},
         "53 01 0a 80 11 00 00 00  02"
         "  01 02 90 1f  09 00 '192.0.2.9'  92 10 00 00  03 00*7  05 00*7"
         "  02 00 00 00  00 00  00*4  00*8  00*8"
         "  01 00 00 00  04 00 '-1,0'"},
        {"connect_reply", {1, connected},
         "53 01 01 80 01 00 00 00  00 00 00 00  00  2a 00*7  00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f  35 82"},
        {"connect_reply_refused", {1, refused}, "53 01 01 80 01 00 00 00  91 ff ff ff  00  00*8  00*16  00 00"},
        {"connect_reply_in_progress", {1, in_progress},
         "53 01 01 80 01 00 00 00  8d ff ff ff  00  07 00*7  00*16  35 82"},
        {"connect_reply_bypass", {1, bypass}, "53 01 01 80 01 00 00 00  00*4  01  00*8  00*16  00 00"},
        {"flow_status_reply", {2, flow},
         "53 01 02 80 02 00 00 00  2a 00*7  02  00 00 00 00  04 0a 00 00 01 00*12  90 1f"},
        {"flow_status_reply_failed", {2, failed},
         "53 01 02 80 02 00 00 00  2b 00*7  04  92 ff ff ff  00 00*16  00 00"},
        {"shutdown_reply", {3, ShutdownReply{-ENOTCONN}}, "53 01 03 80 03 00 00 00  95 ff ff ff"},
        {"resolve_reply", {4, resolved},
         "53 01 04 80 04 00 00 00  00 00 00 00  02  04 01 02 03 04 00*12  06 00*15 01"},
        {"resolve_reply_no_name", {4, no_name}, "53 01 04 80 04 00 00 00  fe ff ff ff  00"},
        {"status_reply", {5, status},
         "53 01 05 80 05 00 00 00  07 00 'serving'  04 00 'home'  05 00 '2.9.0'  08 00 '10.0.0.2'  00 00"
         "  02 00 00 00  01 00 00 00  35 82"},
        {"stats_reply", {18, stats},
         "53 01 0b 80 12 00 00 00  10 0e 00*6  e8 03 00*6  d0 07 00*6  00*8  00*8  00*8  00*8  00*8  00*8"
         "  00*8  00*8  00*8  00*8  00*8  03 00*7  00*8  00*8  00*8  00*8  00*8  00*8  00*8  00*8  00*8  01 00*7"
         "  00*8  02 00*7  00*8  00*8  08 07 06 05 04 03 02 01"
         "  fa 00 00 00  08 07 00 00  0c 00*7  64 00 00 00  84 03 00 00  05 00*7"},
        {"at_reply", {19, at_ok},
         "53 01 0c 80 13 00 00 00  00*4  00  00*4  02  11 00 'mfw_nrf9160_1.3.5'  05 00 '2.9.0'"},
        {"at_reply_cme", {19, at_cme}, "53 01 0c 80 13 00 00 00  00*4  02  1e 00 00 00  00"},
        {"at_reply_refused", {20, AtReply{-EPERM, AtOutcome::ok, 0, {}}},
         "53 01 0c 80 14 00 00 00  ff ff ff ff  00  00*4  00"},
        {"reset_reply_budget_spent", {21, ResetReply{-EAGAIN}}, "53 01 0d 80 15 00 00 00  f5 ff ff ff"},
        {"error_reply", {6, error}, "53 01 ff 80 06 00 00 00  f3 ff ff ff  10 00 'not in group slm'"},
    };
}

std::variant<Envelope, DecodeError> decode_bytes(const Bytes& b) { return decode(b); }

DecodeError error_of(const Bytes& b) {
    auto r = decode(b);
    EXPECT_TRUE(std::holds_alternative<DecodeError>(r));
    return std::holds_alternative<DecodeError>(r) ? std::get<DecodeError>(r) : DecodeError::too_long;
}

class Table : public ::testing::TestWithParam<Case> {};

TEST_P(Table, EncodesToTheDocumentedBytes) {
    EXPECT_EQ(encode(GetParam().envelope), hex(GetParam().bytes));
}

TEST_P(Table, DecodesTheDocumentedBytes) {
    auto r = decode_bytes(hex(GetParam().bytes));
    ASSERT_TRUE(std::holds_alternative<Envelope>(r)) << to_string(std::get<DecodeError>(r));
    EXPECT_EQ(std::get<Envelope>(r), GetParam().envelope);
}

TEST_P(Table, TruncationAtEveryOffsetIsRefused) {
    const Bytes full = hex(GetParam().bytes);
    for (std::size_t n = 0; n < full.size(); ++n) {
        const Bytes cut(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
        const DecodeError e = error_of(cut);
        if (n < 8) {
            EXPECT_EQ(e, DecodeError::too_short) << "cut at " << n;
        } else {
            EXPECT_TRUE(e == DecodeError::too_short || e == DecodeError::malformed) << "cut at " << n;
        }
    }
}

TEST_P(Table, TrailingBytesAreMalformed) {
    Bytes b = hex(GetParam().bytes);
    b.push_back(0);
    EXPECT_EQ(error_of(b), DecodeError::malformed);
}

TEST_P(Table, OtherVersionIsUnsupportedButItsRequestIdReadable) {
    Bytes b = hex(GetParam().bytes);
    b[1] = 2;
    EXPECT_EQ(error_of(b), DecodeError::unsupported_version);
    EXPECT_EQ(peek_request_id(b), GetParam().envelope.request_id);
}

INSTANTIATE_TEST_SUITE_P(EveryMessage, Table, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(Decode, HeaderErrors) {
    EXPECT_EQ(error_of({}), DecodeError::too_short);
    EXPECT_EQ(error_of(hex("53 01 05 00 0c 00 00")), DecodeError::too_short);
    EXPECT_EQ(error_of(hex("58 01 05 00 0c 00 00 00")), DecodeError::bad_magic);
    EXPECT_EQ(error_of(hex("53 00 05 00 0c 00 00 00")), DecodeError::unsupported_version);
    EXPECT_EQ(error_of(hex("53 01 00 00 0c 00 00 00")), DecodeError::unknown_type);
    EXPECT_EQ(error_of(hex("53 01 0f 00 0c 00 00 00")), DecodeError::unknown_type);
    EXPECT_EQ(error_of(hex("53 01 00 80 0c 00 00 00")), DecodeError::unknown_type);
    EXPECT_EQ(error_of(hex("53 01 0f 80 0c 00 00 00")), DecodeError::unknown_type);
    EXPECT_EQ(error_of(hex("53 01 05 01 0c 00 00 00")), DecodeError::unknown_type);
}

TEST(Decode, OverLongMessagesAreTooLongWhateverTheyHold) {
    Bytes b = hex("53 01 05 00 0c 00 00 00");
    b.resize(max_message_size + 1);
    EXPECT_EQ(error_of(b), DecodeError::too_long);
    Bytes garbage(max_message_size + 1, 0xff);
    EXPECT_EQ(error_of(garbage), DecodeError::too_long);
}

TEST(Decode, EnumsOutOfRangeAreMalformed) {
    const char* bad[] = {
        "53 01 01 00 00*4  00  04 0a 00 00 01 00*12  50 00  00  00*4",  // transport 0
        "53 01 01 00 00*4  03  04 0a 00 00 01 00*12  50 00  00  00*4",  // transport 3
        "53 01 01 00 00*4  01  05 0a 00 00 01 00*12  50 00  00  00*4",  // family 5
        "53 01 01 00 00*4  01  04 0a 00 00 01 00*12  50 00  ff  00*4",  // flags: all bits
        "53 01 03 00 00*4  05 00*7  00 00  03",                         // how 3
        "53 01 04 00 00*4  01  01 00 'a'",                              // resolve family 1
        "53 01 01 80 00*4  00*4  02  00*8  00*16  00 00",               // route 2
        "53 01 02 80 00*4  00*8  00  00*4  00 00*16  00 00",            // state 0
        "53 01 02 80 00*4  00*8  05  00*4  00 00*16  00 00",            // state 5
        "53 01 04 80 00*4  00*4  01  07 00*16",                         // address family 7 in a list
        "53 01 06 00 00*4  03  04  00 00  00 00",                       // bind transport 3
        "53 01 09 00 00*4  01  02  00 00  00 00",                       // lookup family 2
        "53 01 0a 80 00*4  01  01 03 00 00  00 00  00*4 00*8 00*8  00*4  00 00",  // proxy role 3
        "53 01 0a 80 00*4  09",                                         // more proxies than max_proxies
        "53 01 01 00 00*4  01  04 0a 00 00 01 00*12  50 00  08  00*4",  // connect flags bit 3
        "53 01 01 00 00*4  01  04 0a 00 00 01 00*12  50 00  04  00*4  00*8",  // socket_inode 0 sent
        "53 01 01 00 00*4  01  04 0a 00 00 01 00*12  50 00  02  00*4  ff ff ff ff  ff ff ff  00 00",  // sec_tag -1
        "53 01 01 00 00*4  01  04 0a 00 00 01 00*12  50 00  02  00*4  01 00 00 00  03 ff ff  00 00",  // peer_verify 3
        "53 01 01 00 00*4  01  04 0a 00 00 01 00*12  50 00  02  00*4  01 00 00 00  ff 02 ff  00 00",  // hostname 2
        "53 01 01 00 00*4  01  04 0a 00 00 01 00*12  50 00  02  00*4  01 00 00 00  ff ff 03  00 00",  // dtls_cid 3
        "53 01 0e 00 00*4  02  00*4  00  00 00  00",                    // credential op 2 (read: never offered)
        "53 01 0e 00 00*4  00  fe ff ff ff  00  00 00  00",             // sec_tag -2
        "53 01 0e 00 00*4  00  00*4  05  00 00  00",                    // credential type 5
        "53 01 0e 00 00*4  00  00*4  00  00 00  02",                    // force 2
        "53 01 0e 80 00*4  00*4  01  00*4  05  00 00  00 00",           // listed type 5
        "53 01 0e 80 00*4  00*4  31",                                   // more entries than max_credential_entries
    };
    for (const char* b : bad) EXPECT_EQ(error_of(hex(b)), DecodeError::malformed) << b;
}

TEST(Decode, AddressPaddingMustBeZero) {
    // IPv4 uses 4 of the 16 bytes; unspecified uses none. Anything else would make two encodings of one value.
    EXPECT_EQ(error_of(hex("53 01 01 00 00*4  01  04 0a 00 00 01 00*11 01  50 00  00  00*4")), DecodeError::malformed);
    EXPECT_EQ(error_of(hex("53 01 02 80 00*4  00*8  04  00*4  00 01 00*15  00 00")), DecodeError::malformed);
    EXPECT_EQ(error_of(hex("53 01 02 80 00*4  00*8  04  00*4  00 00*15 01  00 00")), DecodeError::malformed);
}

TEST(Decode, StringLimitsAndLengthsPastTheEnd) {
    Bytes name = hex("53 01 04 00 00*4  00  fe 00");  // 254 > max_name_length
    name.insert(name.end(), 254, 'a');
    EXPECT_EQ(error_of(name), DecodeError::malformed);
    Bytes name_ok = hex("53 01 04 00 00*4  00  fd 00");  // exactly 253
    name_ok.insert(name_ok.end(), 253, 'a');
    EXPECT_TRUE(std::holds_alternative<Envelope>(decode(name_ok)));

    Bytes text = hex("53 01 ff 80 00*4  f3 ff ff ff  01 01");  // 257 > max_text_length
    text.insert(text.end(), 257, 'x');
    EXPECT_EQ(error_of(text), DecodeError::malformed);
    Bytes text_ok = hex("53 01 ff 80 00*4  f3 ff ff ff  00 01");  // exactly 256
    text_ok.insert(text_ok.end(), 256, 'x');
    EXPECT_TRUE(std::holds_alternative<Envelope>(decode(text_ok)));

    EXPECT_EQ(error_of(hex("53 01 04 00 00*4  00  05 00 'abcd'")), DecodeError::malformed);
    EXPECT_EQ(error_of(hex("53 01 04 00 00*4  00  ff ff")), DecodeError::malformed);
    // Arbitrary bytes, NUL included, are valid string content: the codec carries, the C API truncates.
    EXPECT_TRUE(std::holds_alternative<Envelope>(decode(hex("53 01 04 00 00*4  00  03 00 61 00 ff"))));
}

TEST(Decode, ListLimitsAndCountsPastTheEnd) {
    Bytes seventeen = hex("53 01 04 80 00*4  00*4  11");
    for (int i = 0; i < 17; ++i) {
        const Bytes a = hex("04 01 02 03 04 00*12");
        seventeen.insert(seventeen.end(), a.begin(), a.end());
    }
    EXPECT_EQ(error_of(seventeen), DecodeError::malformed);
    EXPECT_EQ(error_of(hex("53 01 04 80 00*4  00*4  02  04 01 02 03 04 00*12")), DecodeError::malformed);
    EXPECT_EQ(error_of(hex("53 01 04 80 00*4  00*4  ff")), DecodeError::malformed);
}

TEST(Decode, NegativeAndExtremeIntegersSurvive) {
    Envelope e{0xffffffff, ConnectReply{INT32_MIN, Route::modem, UINT64_MAX, Token{}, 65535}};
    auto r = decode(encode(e));
    ASSERT_TRUE(std::holds_alternative<Envelope>(r));
    EXPECT_EQ(std::get<Envelope>(r), e);
}

TEST(Encode, ClampsToLimitsSoTheResultDecodes) {
    ResolveRequest long_name{Family::ipv4, std::string(300, 'n')};
    auto r = decode(encode({1, long_name}));
    ASSERT_TRUE(std::holds_alternative<Envelope>(r));
    EXPECT_EQ(std::get<ResolveRequest>(std::get<Envelope>(r).message).name, std::string(max_name_length, 'n'));

    ErrorReply long_text{-EIO, std::string(1000, 't')};
    r = decode(encode({1, long_text}));
    ASSERT_TRUE(std::holds_alternative<Envelope>(r));
    EXPECT_EQ(std::get<ErrorReply>(std::get<Envelope>(r).message).message.size(), max_text_length);

    ResolveReply many{0, std::vector<Address>(40, v4(1, 1, 1, 1))};
    r = decode(encode({1, many}));
    ASSERT_TRUE(std::holds_alternative<Envelope>(r));
    EXPECT_EQ(std::get<ResolveReply>(std::get<Envelope>(r).message).addresses.size(), max_addresses);
}

TEST(Encode, NormalisesValuesOnlyACastCanMake) {
    Address messy = v4(10, 0, 0, 1);
    messy.bytes[9] = 0xee;  // padding
    Address alien;
    alien.family = static_cast<Family>(9);
    alien.bytes[0] = 1;
    ConnectRequest c{static_cast<Transport>(7), messy, 1, true, 0, std::nullopt};
    auto r = decode(encode({1, c}));
    ASSERT_TRUE(std::holds_alternative<Envelope>(r));
    const auto& got = std::get<ConnectRequest>(std::get<Envelope>(r).message);
    EXPECT_EQ(got.transport, Transport::tcp);
    EXPECT_EQ(got.destination, v4(10, 0, 0, 1));

    FlowStatusReply f{1, static_cast<FlowState>(0), 0, alien, 0};
    r = decode(encode({1, f}));
    ASSERT_TRUE(std::holds_alternative<Envelope>(r));
    EXPECT_EQ(std::get<FlowStatusReply>(std::get<Envelope>(r).message).peer.family, Family::unspecified);

    for (auto bad : {ShutdownRequest{1, 0, static_cast<ShutdownHow>(9)}}) {
        EXPECT_TRUE(std::holds_alternative<Envelope>(decode(encode({1, bad}))));
    }
    EXPECT_TRUE(std::holds_alternative<Envelope>(
        decode(encode({1, ConnectReply{0, static_cast<Route>(5), 0, Token{}, 0}}))));
    EXPECT_TRUE(std::holds_alternative<Envelope>(
        decode(encode({1, ResolveRequest{static_cast<Family>(200), "x"}}))));
}

TEST(Encode, LargestMessagesFitInOnePacket) {
    const std::string text(max_text_length, 'x');
    StatusReply s{text, text, text, text, text, UINT32_MAX, UINT32_MAX, 65535};
    EXPECT_LE(encode({1, s}).size(), max_message_size);
    ResolveReply r{0, std::vector<Address>(max_addresses, v6({1, 2, 3}))};
    EXPECT_LE(encode({1, r}).size(), max_message_size);
    EXPECT_LE(encode({1, ResolveRequest{Family::ipv6, std::string(max_name_length, 'a')}}).size(), max_message_size);
    ProxiesReply p{std::vector<ProxyInfo>(max_proxies, ProxyInfo{Transport::udp, ProxyRole::client, 1, text, 1, 1, 1}),
                   UINT32_MAX, text};
    EXPECT_LE(encode({1, p}).size(), max_message_size);
    AtReply a{0, AtOutcome::ok, 0, std::vector<std::string>(max_at_lines, text)};
    EXPECT_LE(encode({1, a}).size(), max_message_size);
    EXPECT_LE(encode({1, AtRequest{std::string(max_at_command_length, 'A'), true, max_at_timeout_ms}}).size(),
              max_message_size);
}

TEST(Decode, TlsBlockCutShortIsRefused) {
    // A TLS flag with nothing after it, and a DTLS block of a UDP association cut inside its host name.
    EXPECT_EQ(error_of(hex("53 01 01 00 00*4  01  04 0a 00 00 01 00*12  50 00  02  00*4")), DecodeError::too_short);
    EXPECT_EQ(error_of(hex("53 01 08 00 00*4  04  42 9c  04 c0 00 02 07 00*12  34 16  01  07 00 00 00  00 00 02  05 00 'ab'")),
              DecodeError::malformed);
}

TEST(Decode, CredentialLimits) {
    // The largest credential fits one message; the encoder cuts a longer one to max_credential_length.
    CredentialRequest big{CredentialOp::write, max_sec_tag, 2, std::string(max_credential_length, 'k'), true};
    const auto bytes = encode({1, big});
    EXPECT_LE(bytes.size(), max_message_size);
    auto r = decode(bytes);
    ASSERT_TRUE(std::holds_alternative<Envelope>(r));
    EXPECT_EQ(std::get<CredentialRequest>(std::get<Envelope>(r).message), big);
    big.content.push_back('x');
    r = decode(encode({1, big}));
    ASSERT_TRUE(std::holds_alternative<Envelope>(r));
    EXPECT_EQ(std::get<CredentialRequest>(std::get<Envelope>(r).message).content.size(), max_credential_length);
}

TEST(Decode, AtLimits) {
    // 13 lines is one more than max_at_lines; a timeout over max_at_timeout_ms; a force byte of 2.
    EXPECT_EQ(error_of(hex("53 01 0c 80 01 00 00 00  00*4  00  00*4  0d")), DecodeError::malformed);
    EXPECT_EQ(error_of(hex("53 01 0c 00 01 00 00 00  02 00 'AT'  00  e1 93 04 00")), DecodeError::malformed);
    EXPECT_EQ(error_of(hex("53 01 0c 00 01 00 00 00  02 00 'AT'  02  00*4")), DecodeError::malformed);
    EXPECT_EQ(error_of(hex("53 01 0c 80 01 00 00 00  00*4  04  00*4  00")), DecodeError::malformed);  // outcome 4
    // The encoder clamps what the decoder refuses.
    auto r = decode(encode({1, AtRequest{std::string(400, 'A'), false, UINT32_MAX}}));
    ASSERT_TRUE(std::holds_alternative<Envelope>(r));
    const auto& at = std::get<AtRequest>(std::get<Envelope>(r).message);
    EXPECT_EQ(at.command.size(), max_at_command_length);
    EXPECT_EQ(at.timeout_ms, max_at_timeout_ms);
    r = decode(encode({1, AtReply{0, AtOutcome::ok, 0, std::vector<std::string>(20, "x")}}));
    ASSERT_TRUE(std::holds_alternative<Envelope>(r));
    EXPECT_EQ(std::get<AtReply>(std::get<Envelope>(r).message).lines.size(), max_at_lines);
}

TEST(Peek, RequestIdNeedsHeaderAndMagic) {
    EXPECT_EQ(peek_request_id(hex("53 09 77 77 04 03 02 01")), 0x01020304u);
    EXPECT_EQ(peek_request_id(hex("53 01 05 00 0c 00 00")), std::nullopt);
    EXPECT_EQ(peek_request_id(hex("58 01 05 00 0c 00 00 00")), std::nullopt);
}

TEST(Credential, LayoutAndRoundTrip) {
    const auto c = encode_credential(0x0102030405060708, counting_token());
    EXPECT_EQ(Bytes(c.begin(), c.end()), hex("08 07 06 05 04 03 02 01  00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f"));
    const auto d = decode_credential(c);
    ASSERT_TRUE(d.has_value());
    EXPECT_EQ(d->first, 0x0102030405060708u);
    EXPECT_EQ(d->second, counting_token());
    EXPECT_FALSE(decode_credential(std::span(c).first(23)).has_value());
    Bytes longer(c.begin(), c.end());
    longer.push_back(0);
    EXPECT_FALSE(decode_credential(longer).has_value());
}

TEST(DecodeErrorText, EveryValueHasADistinctName) {
    const DecodeError all[] = {DecodeError::too_short,           DecodeError::too_long,
                               DecodeError::bad_magic,           DecodeError::unsupported_version,
                               DecodeError::unknown_type,        DecodeError::malformed};
    std::set<std::string> names;
    for (auto e : all) names.insert(to_string(e));
    EXPECT_EQ(names.size(), std::size(all));
}

}  // namespace
