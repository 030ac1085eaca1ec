// Reading /proc/net/tcp text: an app socket is owned while some matching line has a non-zero inode.
#include "net/socket_table.hpp"

#include <gtest/gtest.h>

using slmd::net::app_socket_owned;

namespace {
// Real lines (kernel 6.x): app port 0xA1B2 = 41394, slmd data port 0x8CA3 = 36003.
constexpr const char* header =
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";
constexpr const char* app_owned =
    "   3: 0100007F:A1B2 0100007F:8CA3 01 00000000:00000000 00:00000000 00000000     0        0 58211 1 "
    "0000000000000000 20 4 30 10 -1\n";
constexpr const char* app_orphaned =
    "   4: 0100007F:A1B2 0100007F:8CA3 05 00000000:00000000 00:00000000 00000000     0        0 0 2 "
    "0000000000000000 20 4 30 10 -1\n";
constexpr const char* slmd_side =
    "   5: 0100007F:8CA3 0100007F:A1B2 08 00000000:00000000 00:00000000 00000000     0        0 58212 1 "
    "0000000000000000 20 4 30 10 -1\n";
}  // namespace

TEST(SocketTable, OwnedWhileTheAppHoldsIt) {
    EXPECT_TRUE(app_socket_owned(std::string(header) + app_owned + slmd_side, 41394, 36003));
}

TEST(SocketTable, OrphanedOrGoneMeansClosed) {
    EXPECT_FALSE(app_socket_owned(std::string(header) + app_orphaned + slmd_side, 41394, 36003));
    EXPECT_FALSE(app_socket_owned(std::string(header) + slmd_side, 41394, 36003));
    EXPECT_FALSE(app_socket_owned("", 41394, 36003));
}

TEST(SocketTable, OtherPortsDoNotCount) {
    EXPECT_FALSE(app_socket_owned(std::string(header) + app_owned, 41395, 36003));
    EXPECT_FALSE(app_socket_owned(std::string(header) + app_owned, 41394, 36004));
    EXPECT_FALSE(app_socket_owned("garbage line\n   9: nonsense\n", 41394, 36003));
}

TEST(SocketTable, ReadsTheKernelTable) {
    // No such connection exists on this host.
    EXPECT_FALSE(app_socket_owned(1, 2));
}
