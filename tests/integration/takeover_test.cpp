// Owns: the takeover and abandonment tests of the hardening issue (issue 15, sections 3 and 5), against the
// real slmd and slmsim: a data endpoint whose [::1] port is taken, a flow credential presented from a socket
// that is not the requester's (another user's, or another socket of the same user), a UDP port another user
// binds after its owner closed it, and connects whose program went away while they waited for the modem's one
// TCP connection. Another user is "nobody" in a forked child (the tests need root; they skip otherwise).
#include <arpa/inet.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <array>
#include <span>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "gateway.hpp"
#include "slmsock.h"
#include "wire.hpp"

using namespace slmd::test;
using namespace std::chrono_literals;
namespace wire = slmsock::wire;

namespace {

constexpr unsigned nobody = 65534;

bool become_nobody() { return setgroups(0, nullptr) == 0 && setgid(nobody) == 0 && setuid(nobody) == 0; }

// Runs `body` as nobody in a child; its exit status (100: could not change user).
template <typename Body>
int as_nobody(Body body) {
    const pid_t child = fork();
    if (child == 0) {
        if (!become_nobody()) _exit(100);
        _exit(body());
    }
    int status = 0;
    waitpid(child, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 200;
}

// One request on a fresh API connection, as libslmsock sends it; the decoded reply.
std::optional<wire::Message> transact(const std::string& socket_path, const wire::Message& request) {
    const int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, socket_path.c_str(), sizeof address.sun_path - 1);
    std::optional<wire::Message> reply;
    if (connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0) {
        const auto bytes = wire::encode({1, request});
        pollfd p{fd, POLLIN, 0};
        if (send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size()) &&
            poll(&p, 1, 10000) == 1) {
            std::array<std::uint8_t, wire::max_message_size> buffer{};
            const ssize_t n = recv(fd, buffer.data(), buffer.size(), 0);
            if (n > 0) {
                auto decoded = wire::decode(std::span<const std::uint8_t>(buffer.data(), static_cast<std::size_t>(n)));
                if (auto* envelope = std::get_if<wire::Envelope>(&decoded)) reply = envelope->message;
            }
        }
    }
    close(fd);
    return reply;
}

sockaddr_in loopback4(std::uint16_t port) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return address;
}

// A TCP socket connected to slmd's data endpoint on 127.0.0.1 that presents `credential`; -1 on failure.
int present(std::uint16_t data_port, std::span<const std::uint8_t> credential, int fd = -1) {
    if (fd < 0) fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const auto to = loopback4(data_port);
    if (connect(fd, reinterpret_cast<const sockaddr*>(&to), sizeof to) != 0) return -1;
    if (write(fd, credential.data(), credential.size()) != static_cast<ssize_t>(credential.size())) return -1;
    return fd;
}

// True once slmd has closed or reset the connection (within `limit`); false if it stays open.
bool refused_by_slmd(int fd, std::chrono::milliseconds limit = 5s) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(limit.count())) != 1) return false;
    char byte = 0;
    const ssize_t n = recv(fd, &byte, 1, MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno == ECONNRESET);
}

wire::Address documentation_address() {
    wire::Address address;
    address.family = wire::Family::ipv4;
    inet_pton(AF_INET, "203.0.113.10", address.bytes.data());
    return address;
}

class Takeover : public ::testing::Test {
protected:
    void SetUp() override {
        if (geteuid() != 0) GTEST_SKIP() << "needs root to run a child as another user";
        const group* nogroup = getgrgid(nobody);
        if (!nogroup) GTEST_SKIP() << "no group 65534 on this machine";
        // nobody may use the modem (group slm's role here), so what stops it is the ownership rule alone.
        gateway.emplace(GatewayOptions().daemon({"--api-group", nogroup->gr_name, "--socket-poll-ms", "60000"}));
        ASSERT_TRUE(gateway->ready) << gateway->log();
        ASSERT_EQ(chmod(gateway->dir.path().c_str(), 0755), 0);
        socket_path = gateway->dir / "slmd.sock";
    }
    // A non-blocking CONNECT as a raw request (the shim's first step), naming `socket_inode` (0: none).
    wire::ConnectReply connect_request(std::uint16_t port, std::uint64_t socket_inode) {
        wire::ConnectRequest request;
        request.destination = documentation_address();
        request.port = port;
        request.nonblocking = true;
        request.socket_inode = socket_inode;
        auto reply = transact(socket_path, request);
        const auto* answer = reply ? std::get_if<wire::ConnectReply>(&*reply) : nullptr;
        return answer ? *answer : wire::ConnectReply{-EPROTO};
    }

    std::optional<Gateway> gateway;
    std::string socket_path;
};

}  // namespace

// A process of another user that learnt a flow's credential (it held [::1] at the data endpoint's port, say)
// presents it on 127.0.0.1: refused, and the credential still works for the requester's own socket.
TEST_F(Takeover, ACredentialPresentedFromAnotherUsersSocketIsRefused) {
    LocalServer server(LocalServer::Mode::echo);
    const auto reply = connect_request(server.port(), 0);
    ASSERT_EQ(reply.status, -EINPROGRESS) << gateway->log();
    const auto credential = wire::encode_credential(reply.flow_id, reply.token);
    const int theirs = as_nobody([&] {
        const int fd = present(reply.data_port, credential);
        if (fd < 0) return 1;
        return refused_by_slmd(fd) ? 0 : 2;
    });
    EXPECT_EQ(theirs, 0) << gateway->log();
    EXPECT_TRUE(gateway->slmd->wait_for_output("not the requester's (uid 0", 5s)) << gateway->log();

    const int mine = present(reply.data_port, credential);
    ASSERT_GE(mine, 0);
    ASSERT_TRUE(write_all(mine, "mine"));
    EXPECT_EQ(read_n(mine, 4), "mine") << gateway->log();
    close(mine);
}

// libslmsock names its socket (inode) in the request: another socket, even the same user's, is refused.
TEST_F(Takeover, ACredentialPresentedFromAnotherSocketThanTheOneNamedIsRefused) {
    LocalServer server(LocalServer::Mode::echo);
    const int named = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct stat named_stat {};
    ASSERT_EQ(fstat(named, &named_stat), 0);
    const auto reply = connect_request(server.port(), named_stat.st_ino);
    ASSERT_EQ(reply.status, -EINPROGRESS) << gateway->log();
    const auto credential = wire::encode_credential(reply.flow_id, reply.token);

    const int other = present(reply.data_port, credential);
    ASSERT_GE(other, 0);
    EXPECT_TRUE(refused_by_slmd(other)) << gateway->log();
    close(other);

    ASSERT_EQ(present(reply.data_port, credential, named), named);
    ASSERT_TRUE(write_all(named, "named"));
    EXPECT_EQ(read_n(named, 5), "named") << gateway->log();
    close(named);
}

// Alice's UDP socket closes; nobody binds the same port at once (before any poll could notice) and sends to
// alice's stand-in. Nothing of nobody's reaches the modem: the next datagram the far end receives is alice's.
TEST_F(Takeover, AUdpPortRetakenByAnotherUserSendsNothingThroughTheModem) {
    const int far = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    auto far_address = loopback4(0);
    ASSERT_EQ(bind(far, reinterpret_cast<sockaddr*>(&far_address), sizeof far_address), 0);
    socklen_t length = sizeof far_address;
    getsockname(far, reinterpret_cast<sockaddr*>(&far_address), &length);
    sockaddr_in peer{};
    peer.sin_family = AF_INET;
    peer.sin_port = far_address.sin_port;
    inet_pton(AF_INET, "203.0.113.10", &peer.sin_addr);
    auto receive = [far] {
        pollfd p{far, POLLIN, 0};
        if (poll(&p, 1, 10000) != 1) return std::string("(nothing)");
        char buffer[256];
        const ssize_t n = recv(far, buffer, sizeof buffer, 0);
        return std::string(buffer, n > 0 ? static_cast<std::size_t>(n) : 0);
    };
    // Alice: a socket at L, its stand-in S, one datagram through.
    auto open_app = [](std::uint16_t port, std::uint16_t& bound) {
        const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        auto local = loopback4(port);
        if (bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) return -1;
        socklen_t local_length = sizeof local;
        getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_length);
        bound = ntohs(local.sin_port);
        return fd;
    };
    std::uint16_t app_port = 0;
    const int alice = open_app(0, app_port);
    ASSERT_GE(alice, 0);
    std::uint16_t stand_in = 0;
    ASSERT_EQ(slmsock_udp_associate(AF_INET, app_port, reinterpret_cast<sockaddr*>(&peer), sizeof peer, &stand_in), 0)
        << gateway->log();
    const auto to_stand_in = loopback4(stand_in);
    ASSERT_EQ(sendto(alice, "alice", 5, 0, reinterpret_cast<const sockaddr*>(&to_stand_in), sizeof to_stand_in), 5);
    ASSERT_EQ(receive(), "alice") << gateway->log();
    close(alice);

    // nobody holds the port while slmd reads its datagram (as a program taking the port over would).
    int done[2];
    ASSERT_EQ(pipe(done), 0);
    const pid_t eve = fork();
    if (eve == 0) {
        close(done[1]);
        if (!become_nobody()) _exit(100);
        std::uint16_t bound = 0;
        const int fd = open_app(app_port, bound);
        if (fd < 0) _exit(1);
        if (sendto(fd, "eve", 3, 0, reinterpret_cast<const sockaddr*>(&to_stand_in), sizeof to_stand_in) != 3)
            _exit(2);
        char byte = 0;
        (void)read(done[0], &byte, 1);  // until the test has seen slmd's verdict
        _exit(0);
    }
    close(done[0]);
    EXPECT_TRUE(gateway->slmd->wait_for_output("loopback port " + std::to_string(app_port) + " is gone", 5s))
        << gateway->log();
    close(done[1]);
    int status = 0;
    waitpid(eve, &status, 0);
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0);

    // The modem's UDP path is one queue: had nobody's datagram gone out, it would arrive first.
    std::uint16_t again_port = 0;
    const int again = open_app(0, again_port);
    std::uint16_t again_stand_in = 0;
    ASSERT_EQ(slmsock_udp_associate(AF_INET, again_port, reinterpret_cast<sockaddr*>(&peer), sizeof peer,
                                    &again_stand_in),
              0);
    const auto to_again = loopback4(again_stand_in);
    ASSERT_EQ(sendto(again, "alice2", 6, 0, reinterpret_cast<const sockaddr*>(&to_again), sizeof to_again), 6);
    EXPECT_EQ(receive(), "alice2") << gateway->log();
    close(again);
    close(far);
}

// A configured data port whose [::1] side another process holds: slmd refuses to start rather than let that
// process receive IPv6 apps' credentials.
TEST(DataEndpoint, AConfiguredPortTakenOnIpv6LoopbackStopsSlmdWithAClearError) {
    const int squatter = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(squatter, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    sockaddr_in6 address{};
    address.sin6_family = AF_INET6;
    address.sin6_addr = in6addr_loopback;
    if (bind(squatter, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0)
        GTEST_SKIP() << "no ::1 on this machine";
    ASSERT_EQ(listen(squatter, 1), 0);
    socklen_t length = sizeof address;
    getsockname(squatter, reinterpret_cast<sockaddr*>(&address), &length);
    const auto port = std::to_string(ntohs(address.sin6_port));
    Gateway gateway(GatewayOptions().daemon({"--data-port", port}));
    EXPECT_FALSE(gateway.ready);
    ASSERT_TRUE(gateway.slmd.has_value());
    const auto status = gateway.slmd->wait_exit(10s);
    ASSERT_TRUE(status.has_value()) << gateway.log();
    EXPECT_NE(*status, 0);
    EXPECT_NE(gateway.log().find("port " + port + " is taken"), std::string::npos) << gateway.log();
    close(squatter);
}

// The modem's one TCP connection (modem-connections 1) is held by a first flow; a second program's connect waits
// for it and the program is killed (Ctrl-C, timeout(1)) while it waits. slmd drops that connect at once: when
// the first flow ends the modem connects nobody for the dead program, and the next program is served at once.
class Abandon : public ::testing::TestWithParam<bool> {};

// Once the held flow ends, the next program gets the modem's connection at once: the dead program's connect
// did not take it, and its destination was never connected.
void expect_the_next_program_served(Gateway& gateway, LocalServer& dead_programs_server) {
    LocalServer next_server(LocalServer::Mode::echo);
    const int next = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in next_to{};
    next_to.sin_family = AF_INET;
    next_to.sin_port = htons(next_server.port());
    inet_pton(AF_INET, "203.0.113.10", &next_to.sin_addr);
    ASSERT_EQ(slmsock_connect_fd(next, reinterpret_cast<sockaddr*>(&next_to), sizeof next_to, nullptr), 0)
        << gateway.log();
    ASSERT_TRUE(write_all(next, "next"));
    EXPECT_EQ(read_n(next, 4), "next");
    close(next);
    EXPECT_EQ(dead_programs_server.accepted(), 0) << "the modem connected for a program that was gone\n"
                                                  << gateway.log();
    EXPECT_EQ(next_server.accepted(), 1);
}

TEST_P(Abandon, AConnectWhoseProgramDiedWhileQueuedNeverReachesTheModem) {
    const bool nonblocking = GetParam();
    LocalServer held_server(LocalServer::Mode::echo);
    LocalServer queued_server(LocalServer::Mode::echo);
    Gateway gateway(GatewayOptions().with_profile("v2.9").daemon({"--modem-connections", "1"}));
    ASSERT_TRUE(gateway.ready) << gateway.log();
    auto destination = [](std::uint16_t port) {
        sockaddr_in to{};
        to.sin_family = AF_INET;
        to.sin_port = htons(port);
        inet_pton(AF_INET, "203.0.113.10", &to.sin_addr);
        return to;
    };
    const int holder = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    auto held_to = destination(held_server.port());
    ASSERT_EQ(slmsock_connect_fd(holder, reinterpret_cast<sockaddr*>(&held_to), sizeof held_to, nullptr), 0);
    ASSERT_TRUE(write_all(holder, "held"));
    ASSERT_EQ(read_n(holder, 4), "held");

    int attached[2];
    ASSERT_EQ(pipe(attached), 0);
    const pid_t program = fork();
    if (program == 0) {
        const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);
        auto to = destination(queued_server.port());
        const int rc = slmsock_connect_fd(fd, reinterpret_cast<sockaddr*>(&to), sizeof to, nullptr);
        if (nonblocking && rc == -EINPROGRESS) {
            // Its socket is attached (connect() returned): tell the test, then hold it until killed.
            if (write(attached[1], "a", 1) != 1) _exit(4);
            pause();
        }
        _exit(3);
    }
    close(attached[1]);
    ASSERT_TRUE(gateway.slmd->wait_for_output("waits for a modem TCP connection", 10s)) << gateway.log();
    if (nonblocking) {
        pollfd p{attached[0], POLLIN, 0};
        ASSERT_EQ(poll(&p, 1, 10000), 1);
    }
    close(attached[0]);
    kill(program, SIGKILL);
    waitpid(program, nullptr, 0);
    EXPECT_TRUE(gateway.slmd->wait_for_output("the app gave up", 5s)) << gateway.log();

    close(holder);
    expect_the_next_program_served(gateway, queued_server);
}

// The narrowest case: the program sends its credential and is killed before slmd accepts the data connection
// (slmd is stopped across that window, so the order is certain). The socket slmd then accepts is orphaned; it
// is still the requester's, so the connect is dropped at once rather than at the attach deadline.
TEST(Abandon, AProgramKilledBeforeSlmdAcceptedItsCredentialIsDroppedAtOnce) {
    LocalServer held_server(LocalServer::Mode::echo);
    LocalServer queued_server(LocalServer::Mode::echo);
    Gateway gateway(GatewayOptions().with_profile("v2.9").daemon({"--modem-connections", "1"}));
    ASSERT_TRUE(gateway.ready) << gateway.log();
    const int holder = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in held_to{};
    held_to.sin_family = AF_INET;
    held_to.sin_port = htons(held_server.port());
    inet_pton(AF_INET, "203.0.113.10", &held_to.sin_addr);
    ASSERT_EQ(slmsock_connect_fd(holder, reinterpret_cast<sockaddr*>(&held_to), sizeof held_to, nullptr), 0);

    wire::ConnectRequest request;
    request.destination = documentation_address();
    request.port = queued_server.port();
    request.nonblocking = true;
    const int app = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct stat app_stat {};
    ASSERT_EQ(fstat(app, &app_stat), 0);
    request.socket_inode = app_stat.st_ino;
    const auto reply = transact(gateway.dir / "slmd.sock", request);
    const auto* answer = reply ? std::get_if<wire::ConnectReply>(&*reply) : nullptr;
    ASSERT_NE(answer, nullptr) << gateway.log();
    ASSERT_EQ(answer->status, -EINPROGRESS) << gateway.log();

    ASSERT_EQ(kill(gateway.slmd->pid(), SIGSTOP), 0);
    const auto credential = wire::encode_credential(answer->flow_id, answer->token);
    const bool presented = present(answer->data_port, credential, app) == app;
    close(app);
    ASSERT_EQ(kill(gateway.slmd->pid(), SIGCONT), 0);
    ASSERT_TRUE(presented);
    // Well inside the 5 s attach deadline, which is all that would end the flow if the orphan were refused.
    EXPECT_TRUE(gateway.slmd->wait_for_output("the app gave up (closed its socket)", 3s)) << gateway.log();

    close(holder);
    expect_the_next_program_served(gateway, queued_server);
}

INSTANTIATE_TEST_SUITE_P(BlockingAndNonBlocking, Abandon, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "nonblocking" : "blocking"; });

// Another user floods the data endpoint with connections that never present a credential: slmd refuses those
// beyond max_unauthenticated_per_uid, closes every one of them (the rest at the credential timeout), and the
// requester's own connect is served meanwhile.
TEST_F(Takeover, AFloodOfSilentDataConnectionsFromAnotherUserDoesNotDenyService) {
    const int port = slmsock_data_port();
    ASSERT_GT(port, 0);
    int ready[2], done[2];
    ASSERT_EQ(pipe(ready), 0);
    ASSERT_EQ(pipe(done), 0);
    constexpr int flood = 200;
    const pid_t eve = fork();
    if (eve == 0) {
        close(ready[0]);
        close(done[1]);
        if (!become_nobody()) _exit(100);
        int held = 0, reset = 0;
        std::vector<int> fds;
        for (int i = 0; i < flood; ++i) {
            const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            const auto to = loopback4(static_cast<std::uint16_t>(port));
            if (connect(fd, reinterpret_cast<const sockaddr*>(&to), sizeof to) == 0) fds.push_back(fd);
        }
        // Every connection is closed by slmd: over the cap at once, under it at the credential timeout (2 s).
        for (const int fd : fds) {
            if (refused_by_slmd(fd, 10s)) {
                ++reset;
            } else {
                ++held;  // never closed
            }
        }
        const std::string counts = std::to_string(held) + " " + std::to_string(reset) + "\n";
        if (write(ready[1], counts.data(), counts.size()) < 0) _exit(2);
        char byte = 0;
        (void)read(done[0], &byte, 1);
        _exit(0);
    }
    close(ready[1]);
    close(done[0]);
    char counts[64] = {};
    pollfd p{ready[0], POLLIN, 0};
    ASSERT_EQ(poll(&p, 1, 30000), 1);
    ASSERT_GT(read(ready[0], counts, sizeof counts - 1), 0);
    int held = 0, reset = 0;
    ASSERT_EQ(sscanf(counts, "%d %d", &held, &reset), 2);
    EXPECT_EQ(held, 0) << "data connections slmd never closed";
    EXPECT_EQ(reset, flood);
    // More than max_unauthenticated_per_uid (32) waited at once: the cap refused the rest.
    EXPECT_TRUE(gateway->slmd->wait_for_output("await their credential; refusing more", 5s)) << gateway->log();

    // Meanwhile the requester (root) is served.
    LocalServer server(LocalServer::Mode::echo);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(server.port());
    inet_pton(AF_INET, "203.0.113.10", &to.sin_addr);
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_EQ(slmsock_connect_fd(fd, reinterpret_cast<sockaddr*>(&to), sizeof to, nullptr), 0) << gateway->log();
    ASSERT_TRUE(write_all(fd, "served"));
    EXPECT_EQ(read_n(fd, 6), "served");
    close(fd);
    close(done[1]);
    waitpid(eve, nullptr, 0);
    close(ready[0]);
}

namespace {

int api_connection(const std::string& path, bool nonblocking) {
    const int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
    if (connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

}  // namespace

// A client that sends requests and never reads the replies: slmd stops reading its requests once its unread
// replies reach the bound, so the client's own sends block (EAGAIN here), slmd's memory stays where it was,
// another client is served meanwhile, and the stuck connection is closed after the idle timeout. Before the
// bound, slmd read on and grew from 7 MB to 541 MB in 20 s.
TEST(Bounds, AClientThatNeverReadsItsRepliesIsHeldBackAndSlmdStaysSmall) {
    Gateway gateway(GatewayOptions().daemon({"--api-idle-timeout-ms", "1000"}));
    ASSERT_TRUE(gateway.ready) << gateway.log();
    const long rss_before = resident_kib(gateway.slmd->pid());
    const int fd = api_connection(gateway.dir / "slmd.sock", true);
    ASSERT_GE(fd, 0);
    const auto request = wire::encode({1, wire::StatusRequest{}});
    std::size_t sent = 0;
    const auto deadline = Clock::now() + 20s;
    while (sent < 200000 && Clock::now() < deadline) {
        if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size())) {
            ++sent;
            continue;
        }
        if (errno != EAGAIN) break;
        // Blocked: give slmd the chance to take more if it would (it must not).
        pollfd p{fd, POLLOUT, 0};
        if (poll(&p, 1, 500) == 0) break;
    }
    EXPECT_LT(sent, 20000u) << "slmd kept reading the requests of a client that reads no replies";
    const long rss_after = resident_kib(gateway.slmd->pid());
    EXPECT_LT(rss_after - rss_before, 8 * 1024) << rss_before << " KiB before, " << rss_after << " after";

    struct slmsock_status status {};
    EXPECT_EQ(slmsock_status(&status), 0) << "another client is served meanwhile";

    // Nothing in progress, replies unread: closed after the idle timeout (its unread replies are then dropped).
    const auto closed_by = Clock::now() + 10s;
    bool closed = false;
    while (!closed && Clock::now() < closed_by) {
        char buffer[wire::max_message_size];
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, 100) != 1) continue;
        const ssize_t n = recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
        closed = n == 0 || (n < 0 && errno == ECONNRESET);
    }
    EXPECT_TRUE(closed);
    close(fd);
}

// One uid (not root, not slmd's own) has at most max_requests_per_uid (128) requests in progress across all its
// connections: with the modem's TCP connection held, 130 blocking connects of "nobody" from 130 connections wait
// (max-queued 256), 128 of them queued and 2 answered EAGAIN at once; root is served meanwhile.
TEST(Bounds, OneUserHasAtMost128RequestsInProgress) {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to run a child as another user";
    const group* nogroup = getgrgid(nobody);
    if (!nogroup) GTEST_SKIP() << "no group 65534 on this machine";
    LocalServer server(LocalServer::Mode::echo);
    Gateway gateway(GatewayOptions().daemon(
        {"--max-queued", "256", "--api-group", nogroup->gr_name, "--modem-connections", "1"}));
    ASSERT_TRUE(gateway.ready) << gateway.log();
    ASSERT_EQ(chmod(gateway.dir.path().c_str(), 0755), 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(server.port());
    inet_pton(AF_INET, "203.0.113.10", &to.sin_addr);
    const int holder = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_EQ(slmsock_connect_fd(holder, reinterpret_cast<sockaddr*>(&to), sizeof to, nullptr), 0);

    const std::string socket_path = gateway.dir / "slmd.sock";
    int done[2];
    ASSERT_EQ(pipe(done), 0);
    int result[2];
    ASSERT_EQ(pipe(result), 0);
    const pid_t child = fork();
    if (child == 0) {
        close(done[1]);
        close(result[0]);
        if (!become_nobody()) _exit(100);
        wire::ConnectRequest request;
        request.destination = documentation_address();
        request.port = server.port();
        const auto bytes = wire::encode({9, request});
        std::vector<pollfd> polled;
        for (int i = 0; i < 130; ++i) {
            const int fd = api_connection(socket_path, false);
            if (fd < 0 || send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(bytes.size()))
                _exit(1);
            polled.push_back({fd, POLLIN, 0});
        }
        // Two answers come at once; the other 128 wait for the holder. Once two are in and this uid is still
        // saturated, all 130 were taken in: exactly those two are readable, and both are EAGAIN.
        int readable = 0;
        const auto deadline = Clock::now() + 10s;
        while (readable < 2 && Clock::now() < deadline) readable = poll(polled.data(), polled.size(), 100);
        if (readable != 2) _exit(2);
        struct slmsock_status status {};
        if (slmsock_status(&status) != -EAGAIN) _exit(3);
        if (poll(polled.data(), polled.size(), 0) != 2) _exit(4);
        for (const auto& p : polled) {
            if (!(p.revents & POLLIN)) continue;
            std::array<std::uint8_t, wire::max_message_size> buffer{};
            const ssize_t n = recv(p.fd, buffer.data(), buffer.size(), 0);
            if (n <= 0) _exit(5);
            auto decoded = wire::decode(std::span<const std::uint8_t>(buffer.data(), static_cast<std::size_t>(n)));
            const auto* envelope = std::get_if<wire::Envelope>(&decoded);
            const auto* error = envelope ? std::get_if<wire::ErrorReply>(&envelope->message) : nullptr;
            if (!error || error->error != -EAGAIN || envelope->request_id != 9) _exit(6);
        }
        if (write(result[1], "k", 1) != 1) _exit(7);
        char byte = 0;
        (void)read(done[0], &byte, 1);  // holds its 128 requests until the test is done with root's
        _exit(0);
    }
    close(done[0]);
    close(result[1]);
    pollfd p{result[0], POLLIN, 0};
    ASSERT_EQ(poll(&p, 1, 30000), 1);
    char byte = 0;
    const bool saturated = read(result[0], &byte, 1) == 1;
    // Root is not bounded: served while nobody's 128 wait.
    struct slmsock_status status {};
    EXPECT_EQ(slmsock_status(&status), 0);
    close(done[1]);
    int child_status = 0;
    waitpid(child, &child_status, 0);
    ASSERT_TRUE(WIFEXITED(child_status));
    EXPECT_TRUE(saturated) << "child exit " << WEXITSTATUS(child_status) << "\n" << gateway.log();
    EXPECT_EQ(WEXITSTATUS(child_status), 0) << gateway.log();
    close(result[0]);
    close(holder);
}
