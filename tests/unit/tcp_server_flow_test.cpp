// The modem's TCP server through TcpFlowManager, against an in-memory modem and a real listening socket of the
// app's: reservation and listen, each peer as a loopback connection to the app relayed like a client flow,
// closing from either side, LOOKUP, and the one TCP proxy shared with client flows.
#include "core/tcp_flow_manager.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include "fake_modem_driver.hpp"
#include "io_test_support.hpp"

namespace wire = slmsock::wire;
using slmd::core::TcpFlowManager;
using slmd::core::Requester;
using namespace slmd::test;
using namespace std::chrono_literals;

namespace {

class TcpServerFlowTest : public ::testing::Test {
protected:
    TcpServerFlowTest() {
        flows.set_modem_address([](wire::Family) { return std::string("10.64.1.2"); });
        listener = app_socket(SOCK_STREAM);
        app_port = local_port(listener);
        ::listen(listener, 4);
    }
    ~TcpServerFlowTest() override {
        flows.stop();
        for (int fd : {listener, accepted}) {
            if (fd >= 0) ::close(fd);
        }
        io.restart();
        io.run_for(20ms);
    }

    static slmd::core::FlowOptions options() {
        slmd::core::FlowOptions result;
        result.socket_poll = 20ms;
        return result;
    }
    static Requester me() { return Requester{static_cast<unsigned>(::getuid()), static_cast<unsigned>(::getpid())}; }

    int bind_and_listen(std::uint16_t modem_port = 8080) {
        const auto bound = flows.bind(wire::BindRequest{wire::Transport::tcp, wire::Family::ipv4, modem_port, app_port},
                                      me());
        if (bound.status != 0) return bound.status;
        return listen_now();
    }
    int listen_now(Requester who = me()) {
        std::optional<wire::ListenReply> reply;
        flows.listen(wire::ListenRequest{wire::Family::ipv4, app_port}, who,
                     [&](wire::ListenReply answer) { reply = answer; });
        EXPECT_TRUE(run_until(io, [&] { return reply.has_value(); }));
        return reply ? reply->status : -ETIMEDOUT;
    }
    // A peer arrives at the modem; the app accepts slmd's loopback connection for it.
    slmd::modem::ConnectionId peer_arrives(const char* address = "198.51.100.9") {
        const auto id = driver.tcp_peer_arrives(address);
        EXPECT_TRUE(run_until(io, [&] { return (accepted = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK)) >= 0; }));
        return id;
    }
    std::string app_reads(std::size_t size) {
        std::string bytes;
        char buffer[4096];
        run_until(io, [&] {
            const ssize_t n = ::recv(accepted, buffer, sizeof buffer, MSG_DONTWAIT);
            if (n > 0) bytes.append(buffer, static_cast<std::size_t>(n));
            return bytes.size() >= size;
        });
        return bytes;
    }
    bool app_sees_eof() {
        return run_until(io, [&] {
            char byte;
            return ::recv(accepted, &byte, 1, MSG_DONTWAIT) == 0;
        });
    }

    boost::asio::io_context io{1};
    FakeModemDriver driver{io.get_executor()};
    TcpFlowManager flows{io.get_executor(), driver, options()};
    int listener = -1;
    int accepted = -1;
    std::uint16_t app_port = 0;
};

TEST_F(TcpServerFlowTest, APeerBecomesAConnectionToTheAppRelayedBothWays) {
    ASSERT_EQ(bind_and_listen(), 0);
    EXPECT_EQ(driver.calls, std::vector<std::string>{"tcp_listen 8080 v4"});
    const auto id = peer_arrives();
    ASSERT_GE(accepted, 0);
    EXPECT_EQ(flows.counters().server_peers_accepted, 1u);

    driver.tcp_arrives(id, std::string("GET /\0\r\n", 8));
    EXPECT_EQ(app_reads(8), std::string("GET /\0\r\n", 8));
    const std::string answer(5000, 'z');
    ASSERT_EQ(::send(accepted, answer.data(), answer.size(), 0), static_cast<ssize_t>(answer.size()));
    ASSERT_TRUE(run_until(io, [&] { return driver.tcp_sent[id].size() == answer.size(); }));
    EXPECT_EQ(driver.tcp_sent[id], answer);

    // LOOKUP: the accepted socket's peer (slmd's loopback port) stands for the modem's peer, port unknown.
    sockaddr_in peer{};
    socklen_t length = sizeof peer;
    ::getpeername(accepted, reinterpret_cast<sockaddr*>(&peer), &length);
    const auto found =
        flows.lookup(wire::LookupRequest{wire::Transport::tcp, wire::Family::ipv4, app_port, ntohs(peer.sin_port)});
    EXPECT_EQ(found.status, 0);
    EXPECT_EQ(found.peer, v4("198.51.100.9"));
    EXPECT_EQ(found.peer_port, 0);
    EXPECT_EQ(found.local, v4("10.64.1.2"));
    EXPECT_EQ(found.local_port, 8080);
    EXPECT_EQ(flows.lookup(wire::LookupRequest{wire::Transport::tcp, wire::Family::ipv4, app_port, 1}).status, -ENXIO);
    EXPECT_EQ(flows.lookup(wire::LookupRequest{wire::Transport::tcp, wire::Family::ipv4,
                                               static_cast<std::uint16_t>(app_port + 1), 1})
                  .status,
              -ENOENT);

    const auto proxy = flows.proxy_info();
    EXPECT_EQ(proxy.role, wire::ProxyRole::server);
    EXPECT_EQ(proxy.port, 8080);
    EXPECT_EQ(proxy.peer, "198.51.100.9");
    EXPECT_EQ(proxy.bytes_up, answer.size());
    EXPECT_EQ(proxy.bytes_down, 8u);
}

TEST_F(TcpServerFlowTest, TheAppClosingHangsThePeerUp) {
    ASSERT_EQ(bind_and_listen(), 0);
    const auto id = peer_arrives();
    ::close(accepted);
    accepted = -1;
    ASSERT_TRUE(run_until(io, [&] { return driver.count("tcp_close " + std::to_string(id)) == 1; }));
    EXPECT_EQ(driver.count("tcp_stop_listen"), 0u);  // the server keeps listening
}

TEST_F(TcpServerFlowTest, ThePeerClosingIsEofAtTheApp) {
    ASSERT_EQ(bind_and_listen(), 0);
    const auto id = peer_arrives();
    driver.tcp_arrives(id, "bye");
    driver.tcp_peer_closes(id);
    EXPECT_EQ(app_reads(3), "bye");
    EXPECT_TRUE(app_sees_eof());
}

TEST_F(TcpServerFlowTest, DataBeforeTheAppAcceptedIsKept) {
    ASSERT_EQ(bind_and_listen(), 0);
    const auto id = driver.tcp_peer_arrives("198.51.100.9");
    driver.tcp_arrives(id, "early");  // before slmd's loopback connect completed
    ASSERT_TRUE(run_until(io, [&] { return (accepted = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK)) >= 0; }));
    EXPECT_EQ(app_reads(5), "early");
}

TEST_F(TcpServerFlowTest, ARefusedLoopbackConnectHangsThePeerUp) {
    ASSERT_EQ(bind_and_listen(), 0);
    // The app's listening socket is gone before the poll saw it: the connect is refused.
    ::close(listener);
    listener = -1;
    const auto id = driver.tcp_peer_arrives("198.51.100.9");
    ASSERT_TRUE(run_until(io, [&] { return driver.count("tcp_close " + std::to_string(id)) == 1; }));
    EXPECT_EQ(flows.counters().server_peers_refused, 1u);
}

TEST_F(TcpServerFlowTest, TheListeningSocketClosingStopsTheServer) {
    ASSERT_EQ(bind_and_listen(), 0);
    ::close(listener);
    listener = -1;
    ASSERT_TRUE(run_until(io, [&] { return driver.count("tcp_stop_listen 7") == 1; }, 2s));
    EXPECT_EQ(flows.lookup(wire::LookupRequest{wire::Transport::tcp, wire::Family::ipv4, app_port, 0}).status,
              -ENOENT);
    EXPECT_EQ(flows.proxy_info().role, wire::ProxyRole::none);
}

TEST_F(TcpServerFlowTest, ListenNeedsABindAndAFreeProxy) {
    EXPECT_EQ(listen_now(), -ENOENT);
    // A client flow holds the TCP proxy.
    std::optional<wire::ConnectReply> connected;
    flows.connect(wire::ConnectRequest{wire::Transport::tcp, v4("203.0.113.5"), 80, false, 0, std::nullopt}, 1,
                  [&](wire::ConnectReply reply) { connected = reply; });
    ASSERT_TRUE(run_until(io, [&] { return connected.has_value(); }));
    ASSERT_EQ(connected->status, 0);
    EXPECT_EQ(bind_and_listen(), -EBUSY);
    EXPECT_EQ(driver.count("tcp_listen"), 0u);
}

TEST_F(TcpServerFlowTest, AFirmwareWithoutServersRefusesTheListenAtOnce) {
    driver.listen_supported = false;
    EXPECT_EQ(bind_and_listen(), -EOPNOTSUPP);
    EXPECT_EQ(driver.count("tcp_listen"), 0u);
}

TEST_F(TcpServerFlowTest, WhereServersAreSocketsOfTheirOwnOneStartsBesideAClient) {
    driver.listen_beside_connections = true;
    std::optional<wire::ConnectReply> connected;
    flows.connect(wire::ConnectRequest{wire::Transport::tcp, v4("203.0.113.5"), 80, false, 0, std::nullopt}, 1,
                  [&](wire::ConnectReply reply) { connected = reply; });
    ASSERT_TRUE(run_until(io, [&] { return connected.has_value(); }));
    ASSERT_EQ(connected->status, 0);
    EXPECT_EQ(bind_and_listen(), 0);
    EXPECT_EQ(driver.count("tcp_listen"), 1u);
    peer_arrives();
    EXPECT_EQ(driver.count("tcp_close"), 0u) << "the client keeps its connection";
}

TEST_F(TcpServerFlowTest, WhereServersAreSocketsOfTheirOwnAClientConnectsBesideTheServer) {
    driver.listen_beside_connections = true;
    ASSERT_EQ(bind_and_listen(), 0);
    std::optional<wire::ConnectReply> connected;
    flows.connect(wire::ConnectRequest{wire::Transport::tcp, v4("203.0.113.5"), 80, false, 0, std::nullopt}, 1,
                  [&](wire::ConnectReply reply) { connected = reply; });
    ASSERT_TRUE(run_until(io, [&] { return connected.has_value(); }));
    EXPECT_EQ(connected->status, 0);
    EXPECT_EQ(driver.count("tcp_connect"), 1u);
}

TEST_F(TcpServerFlowTest, ClientConnectsAreRefusedWhileTheServerRuns) {
    ASSERT_EQ(bind_and_listen(), 0);
    std::optional<wire::ConnectReply> connected;
    flows.connect(wire::ConnectRequest{wire::Transport::tcp, v4("203.0.113.5"), 80, false, 0, std::nullopt}, 1,
                  [&](wire::ConnectReply reply) { connected = reply; });
    ASSERT_TRUE(connected);
    EXPECT_EQ(connected->status, -EBUSY);
}

TEST_F(TcpServerFlowTest, ReservationsAndOwnership) {
    const unsigned stranger = ::getuid() == 0 ? 1000 : ::getuid() + 1;
    ASSERT_EQ(flows.bind(wire::BindRequest{wire::Transport::tcp, wire::Family::ipv4, 8080, app_port}, me()).status, 0);
    // The socket listens (kernel) and belongs to us: a stranger may neither listen nor rebind it.
    EXPECT_EQ(listen_now(Requester{stranger, 1}), -EPERM);
    EXPECT_EQ(flows.bind(wire::BindRequest{wire::Transport::tcp, wire::Family::ipv4, 8080, app_port},
                         Requester{stranger, 1}).status,
              -EPERM);
    // Another live socket cannot take the same modem port.
    const int second = app_socket(SOCK_STREAM);
    ::listen(second, 1);
    EXPECT_EQ(flows.bind(wire::BindRequest{wire::Transport::tcp, wire::Family::ipv4, 8080, local_port(second)}, me())
                  .status,
              -EADDRINUSE);
    ::close(second);
    EXPECT_EQ(driver.count("tcp_listen"), 0u);
}

TEST_F(TcpServerFlowTest, TheDriverRefusingTheServerIsTheReply) {
    driver.tcp_listen_error = ENETDOWN;
    EXPECT_EQ(bind_and_listen(), -ENETDOWN);
    EXPECT_EQ(flows.proxy_info().role, wire::ProxyRole::none);
}

}  // namespace
