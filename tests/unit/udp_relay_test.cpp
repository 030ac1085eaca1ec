// UdpRelay against an in-memory modem and real loopback sockets: stand-ins, the modem's one UDP client and its
// re-targeting, the UDP server and its last-peer rule, LRU eviction, ownership and the lifetime poll.
#include "core/udp_relay.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include <filesystem>
#include <iterator>

#include "fake_modem_driver.hpp"
#include "io_test_support.hpp"

namespace wire = slmsock::wire;
using slmd::core::Requester;
using slmd::core::UdpRelay;
using namespace slmd::test;
using namespace std::chrono_literals;

namespace {

class UdpRelayTest : public ::testing::Test {
protected:
    UdpRelayTest() {
        relay.set_modem_address([](wire::Family family) {
            return family == wire::Family::ipv6 ? std::string("2001:db8::9") : std::string("10.64.1.2");
        });
        app = app_socket(SOCK_DGRAM);
        app_port = local_port(app);
    }
    ~UdpRelayTest() override {
        relay.stop();
        for (int fd : {app, other}) {
            if (fd >= 0) ::close(fd);
        }
        io.restart();
        io.run_for(20ms);  // the closed stand-ins' aborted receives complete while their owners exist
    }

    static slmd::core::UdpOptions options() {
        slmd::core::UdpOptions result;
        result.socket_poll = 20ms;
        return result;
    }

    // Associates and waits for the reply.
    wire::UdpAssociateReply associate(std::uint16_t port, const char* peer, std::uint16_t peer_port,
                                      Requester who = me()) {
        std::optional<wire::UdpAssociateReply> reply;
        relay.associate(wire::UdpAssociateRequest{wire::Family::ipv4, port, v4(peer), peer_port, std::nullopt}, who,
                        [&](wire::UdpAssociateReply answer) { reply = answer; });
        EXPECT_TRUE(run_until(io, [&] { return reply.has_value(); }));
        return reply.value_or(wire::UdpAssociateReply{-ETIMEDOUT});
    }

    int bind_server(std::uint16_t modem_port, std::uint16_t port) {
        std::optional<wire::BindReply> reply;
        relay.bind(wire::BindRequest{wire::Transport::udp, wire::Family::ipv4, modem_port, port}, me(),
                   [&](wire::BindReply answer) { reply = answer; });
        EXPECT_TRUE(run_until(io, [&] { return reply.has_value(); }));
        return reply ? reply->status : -ETIMEDOUT;
    }

    std::optional<Datagram> app_receives(int fd) {
        std::optional<Datagram> datagram;
        run_until(io, [&] { return (datagram = receive_from(fd)).has_value(); });
        return datagram;
    }

    wire::LookupReply lookup(std::uint16_t port, std::uint16_t stand_in) {
        return relay.lookup(wire::LookupRequest{wire::Transport::udp, wire::Family::ipv4, port, stand_in});
    }

    static std::size_t open_descriptors() {
        return static_cast<std::size_t>(std::distance(std::filesystem::directory_iterator("/proc/self/fd"),
                                                      std::filesystem::directory_iterator{}));
    }

    static Requester me() { return Requester{static_cast<unsigned>(::getuid()), static_cast<unsigned>(::getpid())}; }

    boost::asio::io_context io{1};
    FakeModemDriver driver{io.get_executor()};
    UdpRelay relay{io.get_executor(), driver, options()};
    int app = -1;
    int other = -1;
    std::uint16_t app_port = 0;
};

TEST_F(UdpRelayTest, ClientAssociateOpensTheModemClientAndRelaysBothWays) {
    const auto reply = associate(app_port, "203.0.113.5", 7);
    ASSERT_EQ(reply.status, 0);
    EXPECT_EQ(reply.route, wire::Route::modem);
    ASSERT_NE(reply.stand_in_port, 0);
    EXPECT_EQ(driver.calls, std::vector<std::string>{"udp_connect 203.0.113.5:7"});

    // App → stand-in → modem, bytes exact (NUL and all).
    const std::string up("ping\0\x01\xff", 7);
    ASSERT_TRUE(send_to(app, up, reply.stand_in_port));
    ASSERT_TRUE(run_until(io, [&] { return relay.counters().datagrams_up == 1; }));
    EXPECT_EQ(driver.udp_sent, std::vector<std::string>{up});
    EXPECT_EQ(relay.counters().bytes_up, up.size());

    // Modem → the app, from the stand-in.
    driver.udp_arrives(std::string("pong\0", 5));
    auto down = app_receives(app);
    ASSERT_TRUE(down);
    EXPECT_EQ(down->bytes, std::string("pong\0", 5));
    EXPECT_EQ(down->from_address, "127.0.0.1");
    EXPECT_EQ(down->from_port, reply.stand_in_port);
    EXPECT_EQ(relay.counters().datagrams_down, 1u);

    // The stand-in stands for the destination; a client socket has no modem-side address to report.
    const auto found = lookup(app_port, reply.stand_in_port);
    EXPECT_EQ(found.status, 0);
    EXPECT_EQ(found.peer, v4("203.0.113.5"));
    EXPECT_EQ(found.peer_port, 7);
    EXPECT_EQ(found.local, v4("0.0.0.0"));
    EXPECT_EQ(found.local_port, 0);
    EXPECT_EQ(lookup(app_port, 1).status, -ENXIO);  // a known socket, an unknown stand-in
    EXPECT_EQ(lookup(static_cast<std::uint16_t>(app_port + 1), 0).status, -ENOENT);

    const auto proxy = relay.proxy_info();
    EXPECT_EQ(proxy.role, wire::ProxyRole::client);
    EXPECT_EQ(proxy.peer, "203.0.113.5");
    EXPECT_EQ(proxy.port, 7);
    EXPECT_EQ(proxy.owner_pid, static_cast<unsigned>(::getpid()));
    EXPECT_EQ(proxy.bytes_up, up.size());
    EXPECT_EQ(proxy.bytes_down, 5u);
}

TEST_F(UdpRelayTest, ANewDestinationRetargetsInOrder) {
    const auto first = associate(app_port, "203.0.113.5", 7);
    const auto second = associate(app_port, "203.0.113.6", 9);
    ASSERT_EQ(first.status, 0);
    ASSERT_EQ(second.status, 0);
    EXPECT_EQ(driver.calls,
              (std::vector<std::string>{"udp_connect 203.0.113.5:7", "udp_close 1", "udp_connect 203.0.113.6:9"}));
    EXPECT_EQ(relay.counters().retargets, 1u);

    // Datagrams queued behind a re-target leave in the order the app sent them.
    ASSERT_TRUE(send_to(app, "a", first.stand_in_port));
    ASSERT_TRUE(run_until(io, [&] { return driver.udp_sent.size() == 1; }));
    ASSERT_TRUE(send_to(app, "b", second.stand_in_port));
    ASSERT_TRUE(send_to(app, "c", second.stand_in_port));
    ASSERT_TRUE(run_until(io, [&] { return driver.udp_sent.size() == 3; }));
    EXPECT_EQ(driver.udp_sent, (std::vector<std::string>{"a", "b", "c"}));
    EXPECT_EQ(driver.calls, (std::vector<std::string>{"udp_connect 203.0.113.5:7", "udp_close 1",
                                                      "udp_connect 203.0.113.6:9", "udp_close 2",
                                                      "udp_connect 203.0.113.5:7", "udp_send 3", "udp_close 3",
                                                      "udp_connect 203.0.113.6:9", "udp_send 4", "udp_send 4"}));
    EXPECT_EQ(relay.counters().retargets, 3u);

    // Downlink comes from the stand-in of the current destination.
    driver.udp_arrives("from 6");
    auto down = app_receives(app);
    ASSERT_TRUE(down);
    EXPECT_EQ(down->from_port, second.stand_in_port);
}

TEST_F(UdpRelayTest, ASecondAppSocketGetsEbusy) {
    ASSERT_EQ(associate(app_port, "203.0.113.5", 7).status, 0);
    other = app_socket(SOCK_DGRAM);
    EXPECT_EQ(associate(local_port(other), "203.0.113.5", 7).status, -EBUSY);
    // Also as a server: the one UDP proxy is taken.
    EXPECT_EQ(bind_server(5683, local_port(other)), -EBUSY);
    EXPECT_EQ(driver.count("udp_connect"), 1u);
    EXPECT_EQ(driver.count("udp_serve"), 0u);
}

// A driver with more than one UDP socket (the Serial Modem's): each app socket gets its own, both carry their
// datagrams at once without re-targeting each other, and one more than the driver has gets EBUSY.
TEST_F(UdpRelayTest, EachAppSocketGetsItsOwnModemSocketWhenTheDriverHasSeveral) {
    driver.udp_sockets = 2;
    const auto first = associate(app_port, "203.0.113.5", 7);
    other = app_socket(SOCK_DGRAM);
    const auto second = associate(local_port(other), "203.0.113.6", 9);
    ASSERT_EQ(first.status, 0);
    ASSERT_EQ(second.status, 0);
    EXPECT_EQ(driver.calls, (std::vector<std::string>{"udp_connect 203.0.113.5:7", "udp_connect 203.0.113.6:9"}));
    EXPECT_EQ(relay.carriers_in_use(), 2u);
    const auto ids = driver.udp_ids();
    ASSERT_EQ(ids.size(), 2u);

    ASSERT_TRUE(send_to(app, std::string("one\0", 4), first.stand_in_port));
    ASSERT_TRUE(send_to(other, "two", second.stand_in_port));
    ASSERT_TRUE(run_until(io, [&] { return driver.udp_sent.size() == 2; }));
    EXPECT_EQ(driver.udp_sent_on[ids[0]], std::vector<std::string>{std::string("one\0", 4)});
    EXPECT_EQ(driver.udp_sent_on[ids[1]], std::vector<std::string>{"two"});
    EXPECT_EQ(relay.counters().retargets, 0u);

    // Each socket's replies reach its own app socket, from its own stand-in.
    driver.udp_arrives_on(ids[1], "to two");
    driver.udp_arrives_on(ids[0], "to one");
    auto at_app = app_receives(app);
    auto at_other = app_receives(other);
    ASSERT_TRUE(at_app && at_other);
    EXPECT_EQ(at_app->bytes, "to one");
    EXPECT_EQ(at_app->from_port, first.stand_in_port);
    EXPECT_EQ(at_other->bytes, "to two");
    EXPECT_EQ(at_other->from_port, second.stand_in_port);

    // A third app socket: every modem socket serves a live one.
    const int third = app_socket(SOCK_DGRAM);
    EXPECT_EQ(associate(local_port(third), "203.0.113.7", 7).status, -EBUSY);
    EXPECT_EQ(relay.counters().dropped_busy, 1u);
    // The second app closes its socket: the third takes its modem socket (re-aimed at its own peer).
    ::close(other);
    other = -1;
    const auto third_reply = associate(local_port(third), "203.0.113.7", 7);
    EXPECT_EQ(third_reply.status, 0);
    EXPECT_EQ(driver.count("udp_connect 203.0.113.7:7"), 1u);
    EXPECT_EQ(relay.carriers_in_use(), 2u);
    ::close(third);
}

TEST_F(UdpRelayTest, TheModemAnswersAnErrorForTheClient) {
    driver.udp_open_error = ENETDOWN;
    EXPECT_EQ(associate(app_port, "203.0.113.5", 7).status, -ENETDOWN);
}

TEST_F(UdpRelayTest, SendErrorsDropTheDatagramAndCountTheReason) {
    const auto reply = associate(app_port, "203.0.113.5", 7);
    ASSERT_EQ(reply.status, 0);
    ASSERT_TRUE(send_to(app, std::string(1025, 'x'), reply.stand_in_port));  // over max_send (1024)
    ASSERT_TRUE(run_until(io, [&] { return relay.counters().dropped_too_big == 1; }));
    driver.udp_send_error = EINVAL;
    ASSERT_TRUE(send_to(app, "y", reply.stand_in_port));
    ASSERT_TRUE(run_until(io, [&] { return relay.counters().dropped_send_failed == 1; }));
    EXPECT_TRUE(driver.udp_sent.empty());
    EXPECT_EQ(relay.counters().datagrams_up, 0u);
}

TEST_F(UdpRelayTest, ServerWithPeersAndTheLastPeerRule) {
    ASSERT_EQ(bind_server(5683, app_port), 0);
    EXPECT_EQ(driver.calls, std::vector<std::string>{"udp_serve 5683 v4"});

    driver.udp_arrives("hello", slmd::modem::UdpPeer{"198.51.100.7", 5000});
    auto down = app_receives(app);
    ASSERT_TRUE(down);
    EXPECT_EQ(down->bytes, "hello");
    const std::uint16_t peer_a = down->from_port;
    auto found = lookup(app_port, peer_a);
    EXPECT_EQ(found.status, 0);
    EXPECT_EQ(found.peer, v4("198.51.100.7"));
    EXPECT_EQ(found.peer_port, 5000);
    EXPECT_EQ(found.local, v4("10.64.1.2"));
    EXPECT_EQ(found.local_port, 5683);

    // The answer to the last peer goes out.
    ASSERT_TRUE(send_to(app, "reply", peer_a));
    ASSERT_TRUE(run_until(io, [&] { return driver.udp_sent.size() == 1; }));
    EXPECT_EQ(driver.udp_sent.back(), "reply");

    // A second peer writes; the first is no longer the last one the firmware heard from.
    driver.udp_arrives("second", slmd::modem::UdpPeer{"198.51.100.8", 6000});
    down = app_receives(app);
    ASSERT_TRUE(down);
    EXPECT_NE(down->from_port, peer_a);
    ASSERT_TRUE(send_to(app, "late", peer_a));
    ASSERT_TRUE(run_until(io, [&] { return relay.counters().dropped_not_last_peer == 1; }));
    // A peer the app names itself (sendto an address that never wrote) is not the last peer either.
    const auto named = associate(app_port, "198.51.100.9", 53);
    ASSERT_EQ(named.status, 0);
    EXPECT_EQ(driver.count("udp_connect"), 0u);  // a server's stand-in needs no modem command
    ASSERT_TRUE(send_to(app, "unsolicited", named.stand_in_port));
    ASSERT_TRUE(run_until(io, [&] { return relay.counters().dropped_not_last_peer == 2; }));
    EXPECT_EQ(driver.udp_sent, std::vector<std::string>{"reply"});

    const auto proxy = relay.proxy_info();
    EXPECT_EQ(proxy.role, wire::ProxyRole::server);
    EXPECT_EQ(proxy.port, 5683);
    EXPECT_EQ(proxy.peer, "198.51.100.8:6000");
}

TEST_F(UdpRelayTest, ServerOnOlderFirmwareUsesTheAnonymousLastPeer) {
    ASSERT_EQ(bind_server(5683, app_port), 0);
    driver.udp_arrives("who am i");  // no peer: the firmware does not say
    auto down = app_receives(app);
    ASSERT_TRUE(down);
    const auto found = lookup(app_port, down->from_port);
    EXPECT_EQ(found.status, 0);
    EXPECT_EQ(found.peer, v4("0.0.0.0"));
    EXPECT_EQ(found.peer_port, 0);
    ASSERT_TRUE(send_to(app, "answer", down->from_port));
    ASSERT_TRUE(run_until(io, [&] { return driver.udp_sent.size() == 1; }));
    EXPECT_EQ(driver.udp_sent.back(), "answer");
}

TEST_F(UdpRelayTest, BindConflicts) {
    ASSERT_EQ(bind_server(5683, app_port), 0);
    EXPECT_EQ(bind_server(5683, app_port), 0);  // again: harmless
    EXPECT_EQ(bind_server(5684, app_port), -EINVAL);
    other = app_socket(SOCK_DGRAM);
    EXPECT_EQ(bind_server(5683, local_port(other)), -EADDRINUSE);
    EXPECT_EQ(driver.count("udp_serve"), 1u);
}

TEST_F(UdpRelayTest, TheLeastRecentlyUsedStandInIsEvicted) {
    ASSERT_EQ(bind_server(5683, app_port), 0);
    std::vector<std::uint16_t> ports;
    for (int i = 0; i < 16; ++i) {
        const auto reply = associate(app_port, "198.51.100.1", static_cast<std::uint16_t>(1000 + i));
        ASSERT_EQ(reply.status, 0);
        ports.push_back(reply.stand_in_port);
    }
    EXPECT_EQ(relay.counters().stand_ins_created, 16u);
    ASSERT_EQ(associate(app_port, "198.51.100.1", 1000).stand_in_port, ports[0]);  // used again: now the newest
    const auto seventeenth = associate(app_port, "198.51.100.1", 2000);
    ASSERT_EQ(seventeenth.status, 0);
    EXPECT_EQ(relay.counters().stand_ins_evicted, 1u);
    EXPECT_EQ(lookup(app_port, ports[1]).status, -ENXIO);  // the least recently used went
    EXPECT_EQ(lookup(app_port, ports[0]).peer_port, 1000);
    EXPECT_EQ(lookup(app_port, seventeenth.stand_in_port).peer_port, 2000);
}

TEST_F(UdpRelayTest, AnotherUsersSocketIsRefused) {
    const unsigned stranger = ::getuid() == 0 ? 1000 : ::getuid() + 1;
    EXPECT_EQ(associate(app_port, "203.0.113.5", 7, Requester{stranger, 1}).status, -EPERM);
    std::optional<wire::BindReply> bound;
    relay.bind(wire::BindRequest{wire::Transport::udp, wire::Family::ipv4, 5683, app_port}, Requester{stranger, 1},
               [&](wire::BindReply answer) { bound = answer; });
    ASSERT_TRUE(bound);
    EXPECT_EQ(bound->status, -EPERM);
    // Root may act for anyone; no socket at all is ENOENT.
    other = app_socket(SOCK_DGRAM);
    const auto gone_port = local_port(other);
    ::close(other);
    other = -1;
    EXPECT_EQ(associate(gone_port, "203.0.113.5", 7).status, -ENOENT);
    EXPECT_TRUE(driver.calls.empty());
}

TEST_F(UdpRelayTest, BypassDestinationsUseTheKernel) {
    relay.set_bypass([](const wire::Address& address) { return address == v4("192.168.1.1"); });
    const auto reply = associate(app_port, "192.168.1.1", 53);
    EXPECT_EQ(reply.status, 0);
    EXPECT_EQ(reply.route, wire::Route::bypass);
    EXPECT_TRUE(driver.calls.empty());
}

TEST_F(UdpRelayTest, ClosingTheAppSocketReleasesTheProxy) {
    const auto reply = associate(app_port, "203.0.113.5", 7);
    ASSERT_EQ(reply.status, 0);
    ::close(app);
    app = -1;
    ASSERT_TRUE(run_until(io, [&] { return driver.count("udp_close") == 1; }, 2s));
    EXPECT_EQ(relay.counters().sockets_released, 1u);
    EXPECT_EQ(relay.app_sockets(), 0u);
    EXPECT_EQ(relay.proxy_info().role, wire::ProxyRole::none);
    // The proxy is free for the next socket.
    other = app_socket(SOCK_DGRAM);
    EXPECT_EQ(associate(local_port(other), "203.0.113.5", 7).status, 0);
}

// The soak run found every released app socket leaving its stand-in's descriptor open (14 -> 303 in 12 minutes).
TEST_F(UdpRelayTest, ReleasedAndEvictedStandInsCloseTheirDescriptors) {
    const auto baseline = open_descriptors();
    for (int i = 0; i < 40; ++i) {
        const int fd = app_socket(SOCK_DGRAM);
        ASSERT_EQ(associate(local_port(fd), "203.0.113.5", 7).status, 0);
        ::close(fd);
        ASSERT_TRUE(run_until(io, [&] { return relay.counters().sockets_released == static_cast<unsigned>(i + 1); }));
    }
    EXPECT_TRUE(run_until(io, [&] { return open_descriptors() == baseline; }))
        << open_descriptors() << " descriptors open, " << baseline << " before";

    // A server's least recently used stand-in goes when the seventeenth peer arrives, and so does its socket.
    ASSERT_EQ(bind_server(5683, app_port), 0);
    for (int i = 0; i < 17; ++i) {
        ASSERT_EQ(associate(app_port, "198.51.100.1", static_cast<std::uint16_t>(1000 + i)).status, 0);
    }
    EXPECT_EQ(relay.counters().stand_ins_evicted, 1u);
    EXPECT_TRUE(run_until(io, [&] { return open_descriptors() == baseline + 16; }))
        << open_descriptors() << " descriptors open, " << baseline << " + 16 expected";
}

TEST_F(UdpRelayTest, AServerSocketClosingStopsTheServer) {
    ASSERT_EQ(bind_server(5683, app_port), 0);
    ::close(app);
    app = -1;
    ASSERT_TRUE(run_until(io, [&] { return driver.count("udp_close") == 1; }, 2s));
    driver.udp_arrives("late");  // nothing is listening for it any more
    EXPECT_EQ(relay.app_sockets(), 0u);
}

TEST_F(UdpRelayTest, AModemLossEndsAServerAndAClientComesBack) {
    const auto reply = associate(app_port, "203.0.113.5", 7);
    ASSERT_EQ(reply.status, 0);
    driver.udp_lost(ENETDOWN);
    ASSERT_TRUE(send_to(app, "again", reply.stand_in_port));
    ASSERT_TRUE(run_until(io, [&] { return driver.udp_sent.size() == 1; }));
    EXPECT_EQ(driver.count("udp_connect"), 2u);
    EXPECT_EQ(driver.udp_sent.back(), "again");
}

}  // namespace
