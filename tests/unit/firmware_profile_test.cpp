// Table test: each release maps to the behaviour the reference documents for it.
#include "at/firmware_profile.hpp"

#include <gtest/gtest.h>

using namespace slmd::at;

TEST(FirmwareVersion, Parses) {
    EXPECT_EQ(parse_firmware_version("2.9.0"), (FirmwareVersion{2, 9, 0}));
    EXPECT_EQ(parse_firmware_version("v2.5.1"), (FirmwareVersion{2, 5, 1}));
    EXPECT_EQ(parse_firmware_version("2.7.99-cs1"), (FirmwareVersion{2, 7, 99}));
    EXPECT_EQ(parse_firmware_version("2.6"), (FirmwareVersion{2, 6, 0}));
    EXPECT_EQ(parse_firmware_version(""), std::nullopt);
    EXPECT_EQ(parse_firmware_version("abc"), std::nullopt);
    EXPECT_EQ(parse_firmware_version("2"), std::nullopt);
}

TEST(FirmwareProfile, PerReleaseTable) {
    struct Row {
        FirmwareVersion version;
        ReceiveOrder order;
        UdpDataHeader udp;
        DataModeExitRule exit;
        DataModePeerLoss loss;
        bool ok_on_entry;
        bool case_sensitive;
        std::size_t chunk;
    };
    const Row rows[] = {
        {{1, 7, 0}, ReceiveOrder::data_first, UdpDataHeader::size_only, DataModeExitRule::silence_both_sides,
         DataModePeerLoss::immediate_exit, false, false, 1272},
        {{2, 2, 0}, ReceiveOrder::data_first, UdpDataHeader::size_only, DataModeExitRule::trailing_silence,
         DataModePeerLoss::immediate_exit, true, false, 1272},
        {{2, 5, 0}, ReceiveOrder::header_first, UdpDataHeader::size_only, DataModeExitRule::anywhere,
         DataModePeerLoss::null_mode_with_urc, true, false, 2048},
        {{2, 7, 0}, ReceiveOrder::header_first, UdpDataHeader::size_only, DataModeExitRule::anywhere,
         DataModePeerLoss::null_mode_with_terminator, true, true, 2048},
        {{2, 8, 0}, ReceiveOrder::header_first, UdpDataHeader::size_addr_port, DataModeExitRule::anywhere,
         DataModePeerLoss::null_mode_with_terminator, true, true, 2048},
        {{2, 9, 0}, ReceiveOrder::header_first, UdpDataHeader::size_addr_port, DataModeExitRule::anywhere,
         DataModePeerLoss::null_mode_with_terminator, true, true, 2048},
    };
    for (const auto& row : rows) {
        auto p = FirmwareProfile::for_version(row.version);
        SCOPED_TRACE(row.version.to_string());
        EXPECT_EQ(p.receive_order, row.order);
        EXPECT_EQ(p.udp_data_header, row.udp);
        EXPECT_EQ(p.data_mode_exit, row.exit);
        EXPECT_EQ(p.data_mode_peer_loss, row.loss);
        EXPECT_EQ(p.ok_on_data_mode_entry, row.ok_on_entry);
        EXPECT_EQ(p.commands_case_sensitive, row.case_sensitive);
        EXPECT_EQ(p.receive_chunk_max, row.chunk);
    }
    EXPECT_TRUE(FirmwareProfile::for_version({2, 9, 0}).tcp_send_enters_data_mode_unconnected);
    EXPECT_FALSE(FirmwareProfile::for_version({2, 7, 0}).tcp_send_enters_data_mode_unconnected);
}

// v3.0 and v3.1 change no proxy behaviour slmd relies on (their additions, a trailing <cid> and send <flags>,
// are optional parameters slmd does not send): they get v2.9's answer to every question.
TEST(FirmwareProfile, Release3xBehavesAs29) {
    const auto p29 = FirmwareProfile::for_version({2, 9, 0});
    const FirmwareVersion releases[] = {{3, 0, 0}, {3, 1, 0}, {3, 1, 99}};
    for (const auto& version : releases) {
        SCOPED_TRACE(version.to_string());
        auto p = FirmwareProfile::for_version(version);
        EXPECT_EQ(p.version, version);
        p.version = p29.version;
        EXPECT_EQ(p, p29);
    }
    EXPECT_EQ(parse_firmware_version("3.1.99"), (FirmwareVersion{3, 1, 99}));
}

TEST(FirmwareProfile, DataModeTimeLimitMatchesFirmwareArithmetic) {
    EXPECT_EQ(FirmwareProfile::data_mode_min_time_limit(115200).count(), 32);
    EXPECT_EQ(FirmwareProfile::data_mode_min_time_limit(1000000).count(), 12);
    EXPECT_EQ(FirmwareProfile::data_mode_min_time_limit(9600).count(), 276);
}
