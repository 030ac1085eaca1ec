// Reading /proc/net/tcp text: an app socket is owned while some matching line has a non-zero inode.
#include "net/socket_table.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

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

// UDP and listening sockets (UDP stand-ins and modem servers): is there a socket at the app's port, and whose?
// Real lines (kernel 6.x) with the uid column set to 1000; port 0xA1B2 = 41394 (UDP), 0xA1B3 = 41395 (TCP).
namespace {
using slmd::net::SocketKind;
using slmd::net::socket_owner;
constexpr const char* udp_header =
    "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref "
    "pointer drops            \n";
constexpr const char* udp_bound =
    "10720: 0100007F:A1B2 00000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 655512 2 "
    "00000000994b4494 0        \n";
constexpr const char* udp6_bound =
    "10720: 00000000000000000000000001000000:A1B2 00000000000000000000000000000000:0000 07 00000000:00000000 "
    "00:00000000 00000000  1000        0 655513 2 00000000ef844d19 0\n";
// slmd's stand-in: bound to another port, connected to the app's.
constexpr const char* udp_stand_in =
    "10721: 0100007F:C001 0100007F:A1B2 01 00000000:00000000 00:00000000 00000000   105        0 655600 2 "
    "00000000994b4495 0        \n";
constexpr const char* udp_orphan =
    "10720: 0100007F:A1B2 00000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 0 2 "
    "00000000994b4494 0        \n";
constexpr const char* tcp_listening =
    "   0: 0100007F:A1B3 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 655514 1 "
    "00000000e3b405b3 100 0 0 10 0                    \n";
// The app's accepted socket (local port = the listening port) and slmd's end of that connection.
constexpr const char* tcp_accepted =
    "   4: 0100007F:A1B3 0100007F:CD78 01 00000000:00000000 00:00000000 00000000  1000        0 655516 1 "
    "0000000001d53ac8 20 0 0 10 -1                    \n";
constexpr const char* tcp_slmd_end =
    "   5: 0100007F:CD78 0100007F:A1B3 01 00000000:00000000 00:00000000 00000000   105        0 655515 2 "
    "000000001fa66b5f 20 0 0 10 -1                    \n";
}  // namespace

TEST(SocketTable, UdpSocketAndItsOwner) {
    EXPECT_EQ(socket_owner(std::string(udp_header) + udp_stand_in + udp_bound, SocketKind::udp, 41394), 1000u);
    EXPECT_EQ(socket_owner(std::string(udp_header) + udp6_bound, SocketKind::udp, 41394), 1000u);
}

TEST(SocketTable, UdpSocketGone) {
    // Only slmd's stand-in still mentions the port (as its remote end): the app's socket is gone.
    EXPECT_EQ(socket_owner(std::string(udp_header) + udp_stand_in, SocketKind::udp, 41394), std::nullopt);
    EXPECT_EQ(socket_owner(std::string(udp_header) + udp_orphan, SocketKind::udp, 41394), std::nullopt);
    EXPECT_EQ(socket_owner(std::string(udp_header) + udp_bound, SocketKind::udp, 41395), std::nullopt);
    EXPECT_EQ(socket_owner("", SocketKind::udp, 41394), std::nullopt);
    EXPECT_EQ(socket_owner("garbage\n 1: x y z\n", SocketKind::udp, 41394), std::nullopt);
}

TEST(SocketTable, OnlyListeningTcpSocketsCount) {
    EXPECT_EQ(socket_owner(std::string(header) + tcp_accepted + tcp_slmd_end + tcp_listening,
                           SocketKind::tcp_listener, 41395),
              1000u);
    // The listening socket closed; an accepted connection on the same local port does not keep it alive.
    EXPECT_EQ(socket_owner(std::string(header) + tcp_accepted + tcp_slmd_end, SocketKind::tcp_listener, 41395),
              std::nullopt);
}

TEST(SocketTable, ReadsTheKernelUdpAndTcpTables) {
    // Port 1 on loopback is held by nobody here.
    EXPECT_EQ(socket_owner(SocketKind::udp, slmsock::wire::Family::ipv4, 1), std::nullopt);
    EXPECT_EQ(socket_owner(SocketKind::tcp_listener, slmsock::wire::Family::ipv6, 1), std::nullopt);
}

// The identity (uid, inode) behind a socket: what ties a data connection, a UDP stand-in or a modem server to
// the one socket its requester owns.
namespace {
using slmd::net::connection_owner;
using slmd::net::socket_identity;
using slmd::net::SocketIdentity;
}  // namespace

TEST(SocketTable, ConnectionOwnerIsTheAppSideOfTheLoopbackConnection) {
    // tcp_accepted: local 41395 → remote 0xCD78 = 52600, uid 1000, inode 655516; tcp_slmd_end the other side.
    const std::string table = std::string(header) + tcp_slmd_end + tcp_accepted;
    EXPECT_EQ(connection_owner(table, 41395, 52600), (SocketIdentity{1000, 655516}));
    EXPECT_EQ(connection_owner(table, 52600, 41395), (SocketIdentity{105, 655515}));
    EXPECT_EQ(connection_owner(table, 41395, 52601), std::nullopt);
    // A socket no process holds any more (its program closed it or died after connecting): inode 0, and the
    // uid of the user who created it.
    EXPECT_EQ(connection_owner(std::string(header) + app_orphaned, 41394, 36003), (SocketIdentity{0, 0}));
    EXPECT_EQ(connection_owner(std::string(header) + app_owned, 41394, 36003), (SocketIdentity{0, 58211}));
    EXPECT_EQ(connection_owner("garbage\n 1: x y z\n", 41394, 36003), std::nullopt);
}

TEST(SocketTable, SocketIdentityTellsTwoSocketsAtOnePortApart) {
    EXPECT_EQ(socket_identity(std::string(udp_header) + udp_stand_in + udp_bound, SocketKind::udp, 41394),
              (SocketIdentity{1000, 655512}));
    EXPECT_EQ(socket_identity(std::string(udp_header) + udp6_bound, SocketKind::udp, 41394),
              (SocketIdentity{1000, 655513}));
    EXPECT_EQ(socket_identity(std::string(udp_header) + udp_orphan, SocketKind::udp, 41394), std::nullopt);
    // Another socket on the same port but another address (127.0.0.2, a host address) is not reached over
    // loopback: it is never taken for the app's.
    const std::string elsewhere =
        "10719: 0200007F:A1B2 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 700 2 "
        "00000000994b4490 0        \n"
        "10718: 0A00000A:A1B2 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 701 2 "
        "00000000994b4491 0        \n";
    EXPECT_EQ(socket_identity(std::string(udp_header) + elsewhere + udp_bound, SocketKind::udp, 41394),
              (SocketIdentity{1000, 655512}));
    EXPECT_EQ(socket_identity(std::string(udp_header) + elsewhere, SocketKind::udp, 41394), std::nullopt);
    EXPECT_EQ(socket_identity(std::string(header) + tcp_accepted + tcp_listening, SocketKind::tcp_listener, 41395),
              (SocketIdentity{1000, 655514}));
}

TEST(SocketTable, ConnectionOwnerOfARealLoopbackConnectionIsThisProcessSocket) {
    const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(listener, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    ASSERT_EQ(::listen(listener, 1), 0);
    socklen_t length = sizeof address;
    ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length), 0);
    const std::uint16_t server_port = ntohs(address.sin_port);
    const int client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_EQ(::connect(client, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    sockaddr_in local{};
    length = sizeof local;
    ASSERT_EQ(::getsockname(client, reinterpret_cast<sockaddr*>(&local), &length), 0);
    struct stat client_stat {};
    ASSERT_EQ(::fstat(client, &client_stat), 0);

    const auto owner = connection_owner(ntohs(local.sin_port), server_port);
    ASSERT_TRUE(owner.has_value());
    EXPECT_EQ(owner->uid, ::geteuid());
    EXPECT_EQ(owner->inode, client_stat.st_ino);
    const auto listening = socket_identity(SocketKind::tcp_listener, slmsock::wire::Family::ipv4, server_port);
    struct stat listener_stat {};
    ASSERT_EQ(::fstat(listener, &listener_stat), 0);
    ASSERT_TRUE(listening.has_value());
    EXPECT_EQ(listening->inode, listener_stat.st_ino);
    ::close(client);
    ::close(listener);
}
