// The TLS/DTLS tail of #XTCPCLI / #XUDPCLI for each release: exact bytes, or the errno of what the release
// cannot do.
#include "modem/tls_command.hpp"

#include <gtest/gtest.h>

#include <cerrno>
#include <optional>
#include <string>
#include <variant>

namespace slmd::modem {
namespace {

at::FirmwareProfile release(int major, int minor) { return at::FirmwareProfile::for_version({major, minor, 0}); }

struct Row {
    const char* name;
    int major, minor;
    TlsTransport transport;
    TlsOptions tls;
    std::variant<std::string, int> expected;
};

constexpr auto tcp = TlsTransport::tcp;
constexpr auto udp = TlsTransport::udp;

const Row rows[] = {
    {"tcp_sec_tag_only_v29", 2, 9, tcp, {42, {}, {}, {}}, std::string(",42")},
    {"tcp_peer_verify_none_v29", 2, 9, tcp, {42, 0, {}, {}}, std::string(",42,0")},
    {"tcp_hostname_off_fills_peer_default_v26", 2, 6, tcp, {7, {}, 0, {}}, std::string(",7,2,0")},
    {"tcp_all_v29", 2, 9, tcp, {16842753, 1, 1, {}}, std::string(",16842753,1,1")},
    {"tcp_sec_tag_only_v25", 2, 5, tcp, {42, {}, {}, {}}, std::string(",42")},
    {"tcp_required_is_what_v25_does", 2, 5, tcp, {42, 2, 0, {}}, std::string(",42")},
    {"tcp_no_peer_check_impossible_v25", 2, 5, tcp, {42, 0, {}, {}}, EOPNOTSUPP},
    {"tcp_optional_impossible_v25", 2, 5, tcp, {42, 1, {}, {}}, EOPNOTSUPP},
    {"tcp_hostname_check_impossible_v25", 2, 5, tcp, {42, {}, 1, {}}, EOPNOTSUPP},
    {"tcp_cid_is_udp_only", 2, 9, tcp, {42, {}, {}, 1}, EINVAL},
    {"negative_sec_tag", 2, 9, tcp, {-1, {}, {}, {}}, EINVAL},
    {"peer_verify_3", 2, 9, tcp, {1, 3, {}, {}}, EINVAL},
    {"hostname_verify_2", 2, 9, udp, {1, {}, 2, {}}, EINVAL},
    {"udp_sec_tag_only_v29", 2, 9, udp, {5, {}, {}, {}}, std::string(",5")},
    {"udp_cid_v25", 2, 5, udp, {5, {}, {}, 2}, std::string(",5,2")},
    {"udp_peer_verify_fills_cid_v26", 2, 6, udp, {5, 0, {}, {}}, std::string(",5,0,0")},
    {"udp_all_v29", 2, 9, udp, {5, 1, 0, 1}, std::string(",5,1,1,0")},
    {"udp_cid_impossible_v24", 2, 4, udp, {5, {}, {}, 1}, EOPNOTSUPP},
    {"udp_cid_disabled_is_fine_v24", 2, 4, udp, {5, {}, {}, 0}, std::string(",5")},
    {"udp_peer_verify_impossible_v24", 2, 4, udp, {5, 0, {}, {}}, EOPNOTSUPP},
    {"udp_cid_but_no_verify_params_v25", 2, 5, udp, {5, 1, {}, {}}, EOPNOTSUPP},
};

class TlsCommand : public testing::TestWithParam<Row> {};

TEST_P(TlsCommand, ParametersPerRelease) {
    const Row& row = GetParam();
    EXPECT_EQ(tls_parameters(row.tls, row.transport, release(row.major, row.minor)), row.expected);
}

INSTANTIATE_TEST_SUITE_P(Rows, TlsCommand, testing::ValuesIn(rows),
                         [](const testing::TestParamInfo<Row>& info) { return std::string(info.param.name); });

// A TLS socket of the modem's own (#XSSOCKET on SLM's generic sockets and on the Serial Modem): (sec_tag,
// peer_verify, hostname_verify, dtls_cid) and the host → the AT#XSSOCKET tail and the quoted name for
// #XSSOCKETOPT TLS_HOSTNAME (none: the modem checks no name), or the errno.
struct TlsSocketRow {
    const char* name;
    TlsOptions tls;
    const char* host;
    std::variant<std::pair<std::string, std::optional<std::string>>, int> expected;
};

using TailAndName = std::pair<std::string, std::optional<std::string>>;
const TlsSocketRow tls_socket_rows[] = {
    {"sec_tag_only_checks_the_name", {42, {}, {}, {}}, "mqtt.example.com",
     TailAndName{",42", "\"mqtt.example.com\""}},
    {"peer_verify_none", {42, 0, {}, {}}, "a.example", TailAndName{",42,0", "\"a.example\""}},
    {"peer_verify_optional", {7, 1, {}, {}}, "a.example", TailAndName{",7,1", "\"a.example\""}},
    {"name_not_checked", {42, 2, 0, {}}, "a.example", TailAndName{",42,2", std::nullopt}},
    {"ipv4_address_has_no_name", {42, {}, {}, {}}, "192.0.2.7", TailAndName{",42", std::nullopt}},
    {"ipv6_address_has_no_name", {42, {}, 1, {}}, "2001:db8::7", TailAndName{",42", std::nullopt}},
    {"name_with_a_quote", {42, {}, {}, {}}, "a\".example", EINVAL},
    {"name_with_a_quote_not_checked", {42, {}, 0, {}}, "a\".example", TailAndName{",42", std::nullopt}},
    {"negative_sec_tag", {-1, {}, {}, {}}, "a.example", EINVAL},
    {"peer_verify_3", {42, 3, {}, {}}, "a.example", EINVAL},
    {"hostname_verify_2", {42, {}, 2, {}}, "a.example", EINVAL},
    {"dtls_cid_on_tls", {42, {}, {}, 0}, "a.example", EINVAL},
};

class TlsSocketCommand : public testing::TestWithParam<TlsSocketRow> {};

// DTLS sockets take the same tail and name; DTLS_CID (0 disabled, 1 supported, 2 enabled) only when chosen.
TEST(DtlsSocketCommand, TakesTheConnectionIdChoice) {
    const auto chosen = tls_socket({45, 0, {}, 2}, "coap.example", TlsTransport::udp);
    ASSERT_TRUE(std::holds_alternative<TlsSocket>(chosen));
    EXPECT_EQ(std::get<TlsSocket>(chosen).socket_tail, ",45,0");
    EXPECT_EQ(std::get<TlsSocket>(chosen).quoted_hostname, "\"coap.example\"");
    EXPECT_EQ(std::get<TlsSocket>(chosen).dtls_cid, 2);
    const auto unset = tls_socket({45, {}, 0, {}}, "coap.example", TlsTransport::udp);
    ASSERT_TRUE(std::holds_alternative<TlsSocket>(unset));
    EXPECT_EQ(std::get<TlsSocket>(unset).socket_tail, ",45");
    EXPECT_EQ(std::get<TlsSocket>(unset).quoted_hostname, std::nullopt);
    EXPECT_EQ(std::get<TlsSocket>(unset).dtls_cid, std::nullopt);
    const auto out_of_range = tls_socket({45, {}, {}, 3}, "coap.example", TlsTransport::udp);
    ASSERT_TRUE(std::holds_alternative<int>(out_of_range));
    EXPECT_EQ(std::get<int>(out_of_range), EINVAL);
}

TEST_P(TlsSocketCommand, SocketTailAndHostName) {
    const auto& row = GetParam();
    const auto got = tls_socket(row.tls, row.host);
    if (const int* error = std::get_if<int>(&row.expected)) {
        ASSERT_TRUE(std::holds_alternative<int>(got));
        EXPECT_EQ(std::get<int>(got), *error);
        return;
    }
    ASSERT_TRUE(std::holds_alternative<TlsSocket>(got));
    const auto& want = std::get<TailAndName>(row.expected);
    EXPECT_EQ(std::get<TlsSocket>(got).socket_tail, want.first);
    EXPECT_EQ(std::get<TlsSocket>(got).quoted_hostname, want.second);
}

INSTANTIATE_TEST_SUITE_P(Rows, TlsSocketCommand, testing::ValuesIn(tls_socket_rows),
                         [](const testing::TestParamInfo<TlsSocketRow>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace slmd::modem
