// The TLS/DTLS tail of #XTCPCLI / #XUDPCLI for each release: exact bytes, or the errno of what the release
// cannot do.
#include "modem/tls_command.hpp"

#include <gtest/gtest.h>

#include <cerrno>

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

}  // namespace
}  // namespace slmd::modem
