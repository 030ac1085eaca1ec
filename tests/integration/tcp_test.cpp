// slmd's TCP data path end to end, through libslmsock: a real local server reached at a test "internet"
// address through slmsim (real sockets behind a simulated SLM on a pty), for each firmware release.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <memory>
#include <random>
#include <thread>

#include "gateway.hpp"
#include "slmsock.h"

using namespace slmd::test;
using namespace std::chrono_literals;

namespace {

// The app's socket was reset: after the bytes that arrived before the reset (an echo can beat it), a read fails
// with ECONNRESET, never a clean end of file.
void expect_reset(int fd) {
    char buffer[4096];
    std::size_t before_reset = 0;
    for (;;) {
        pollfd pfd{fd, POLLIN, 0};
        ASSERT_EQ(poll(&pfd, 1, 10000), 1) << "no reset after " << before_reset << " bytes";
        const ssize_t n = read(fd, buffer, sizeof buffer);
        if (n > 0 && (before_reset += static_cast<std::size_t>(n)) < (1u << 20)) continue;
        EXPECT_EQ(n, -1) << "a clean end of file (or endless bytes) instead of a reset";
        EXPECT_EQ(errno, ECONNRESET);
        return;
    }
}

// A download read to its end on a thread of its own, as an app reads one beside its interactive traffic.
class BackgroundDownload {
  public:
    explicit BackgroundDownload(int fd)
        : thread_([this, fd] {
              char buffer[4096];
              for (;;) {
                  const ssize_t n = read(fd, buffer, sizeof buffer);
                  if (n <= 0) break;
                  bytes_.append(buffer, static_cast<std::size_t>(n));
                  so_far_ = bytes_.size();
              }
          }) {}
    ~BackgroundDownload() {
        if (thread_.joinable()) thread_.join();
    }
    std::size_t so_far() const { return so_far_.load(); }
    // Waits for the end of the stream: every byte read.
    const std::string& finish() {
        if (thread_.joinable()) thread_.join();
        return bytes_;
    }

  private:
    std::atomic<std::size_t> so_far_{0};
    std::string bytes_;
    std::thread thread_;  // last: it starts once the others exist
};

// A download under way (16 KiB in, read on its own thread) and then an interactive connection beside it.
struct DownloadBesideEcho {
    int bulk = -1;
    int echo = -1;
    std::unique_ptr<BackgroundDownload> download;
    bool ok() const { return download && echo >= 0; }
};

DownloadBesideEcho download_beside_echo(std::uint16_t bulk_port, std::uint16_t echo_port) {
    DownloadBesideEcho flows;
    flows.bulk = slmsock_tcp_connect("203.0.113.10", bulk_port, AF_INET);
    if (flows.bulk < 0) {
        ADD_FAILURE() << "download: " << slmsock_strerror(flows.bulk);
        return flows;
    }
    flows.download = std::make_unique<BackgroundDownload>(flows.bulk);
    if (!eventually([&] { return flows.download->so_far() >= 16384; })) {
        ADD_FAILURE() << "the download did not start";
        return flows;
    }
    flows.echo = slmsock_tcp_connect("203.0.113.10", echo_port, AF_INET);
    if (flows.echo < 0) ADD_FAILURE() << "echo: " << slmsock_strerror(flows.echo);
    return flows;
}

void expect_same_bytes(const std::string& received, const std::string& expected) {
    EXPECT_EQ(received.size(), expected.size());
    EXPECT_TRUE(received == expected) << "first difference at "
                                      << std::mismatch(received.begin(), received.end(), expected.begin(),
                                                       expected.end())
                                                 .first -
                                             received.begin();
}

sockaddr_in test_address(const char* ip, std::uint16_t port) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    inet_pton(AF_INET, ip, &address.sin_addr);
    return address;
}

// Every byte the firmware's framing could trip over, and terminators in all positions.
std::string nasty_payload(std::size_t size) {
    static const char framing[] = "+++\"\0\r\n\x08\x7fOK\r\nERROR\r\n#XTCPDATA: 5\r\nReady\r\n";
    std::string payload = std::string(framing, sizeof framing - 1) + "a+" + "++" + "b++" + "+++";
    std::mt19937 rng(42);
    while (payload.size() < size) {
        payload += static_cast<char>(rng() % 256);
        if (rng() % 97 == 0) payload += "+++";
        if (rng() % 89 == 0) payload += "\r\nOK\r\n";
    }
    payload.resize(size);
    payload.back() = '+';  // a trailing '+' must still arrive
    return payload;
}

class TcpPerProfile : public ::testing::TestWithParam<std::string> {};
class ManyConnections : public ::testing::TestWithParam<std::string> {};

bool serial_modem(const std::string& profile) { return profile.starts_with("sm-"); }

}  // namespace

TEST_P(TcpPerProfile, BinaryEchoIsByteExact) {
    LocalServer server(LocalServer::Mode::echo);
    Gateway gateway(GatewayOptions().with_profile(GetParam()).with_baud("0"));
    ASSERT_TRUE(gateway.ready) << gateway.slmd->output();
    int fd = slmsock_tcp_connect("203.0.113.10", server.port(), AF_INET);
    ASSERT_GE(fd, 0) << slmsock_strerror(fd) << "\n" << gateway.slmd->output();
    const auto payload = nasty_payload(20000);
    std::thread writer([&] { EXPECT_TRUE(write_all(fd, payload)); });
    auto echoed = read_n(fd, payload.size());
    writer.join();
    EXPECT_EQ(echoed.size(), payload.size());
    EXPECT_TRUE(echoed == payload) << "first difference at "
                                   << std::mismatch(echoed.begin(), echoed.end(), payload.begin()).first - echoed.begin();
    sockaddr_in peer{};
    socklen_t length = sizeof peer;
    ASSERT_EQ(getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &length), 0);
    // Without the shim the kernel peer is slmd's data endpoint; the flow knows the real one.
    sockaddr_in local{};
    length = sizeof local;
    getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length);
    struct slmsock_flow_status status{};
    ASSERT_EQ(slmsock_flow_status_by_port(ntohs(local.sin_port), &status), 0);
    EXPECT_EQ(status.state, SLMSOCK_CONNECTED);
    const auto* real = reinterpret_cast<const sockaddr_in*>(&status.peer);
    EXPECT_EQ(ntohs(real->sin_port), server.port());
    char text[INET_ADDRSTRLEN];
    EXPECT_STREQ(inet_ntop(AF_INET, &real->sin_addr, text, sizeof text), "203.0.113.10");
    close(fd);
    EXPECT_EQ(server.accepted(), 1);
}

INSTANTIATE_TEST_SUITE_P(Releases, TcpPerProfile,
                         ::testing::Values("v2.5", "v2.7", "v2.9", "v3.1", "sm-v1.0", "sm-v2.0-preview1"),
                         [](const auto& info) {
                             std::string name = info.param;
                             for (auto& c : name) {
                                 if (c == '.' || c == '-') c = '_';
                             }
                             return name;
                         });

// Issue 16, the MQTT + HTTP case: a first connection holds the TCP proxy and more run beside it on the
// firmware's generic sockets, each with its own bytes both ways (the framing bytes too). One more than the
// firmware's descriptors allow waits in slmd's queue, and runs as soon as one closes.
TEST_P(ManyConnections, AsManyAsTheFirmwareHoldsRunAtOnceAndOneMoreWaits) {
    LocalServer server(LocalServer::Mode::echo);
    Gateway gateway(GatewayOptions().with_profile(GetParam()).with_baud("0"));
    ASSERT_TRUE(gateway.ready) << gateway.slmd->output();
    // v3.1 keeps one descriptor for #XAPOLL; Serial Modem v1.0.x one of its 8 (SM_FDS_COUNT - 1).
    const std::size_t limit = GetParam() == "v3.1" || GetParam() == "sm-v1.0" ? 7 : 8;
    std::vector<int> fds;
    for (std::size_t i = 0; i < limit; ++i) {
        const int fd = slmsock_tcp_connect("203.0.113.10", server.port(), AF_INET);
        ASSERT_GE(fd, 0) << i << ": " << slmsock_strerror(fd) << "\n" << gateway.slmd->output();
        fds.push_back(fd);
    }
    if (serial_modem(GetParam())) {
        // Every connection is a socket of the Serial Modem's, its commands ended by CR alone.
        EXPECT_TRUE(gateway.sent("AT#XSOCKET=1,1,0\r"));
        EXPECT_FALSE(gateway.sent("AT#XSOCKET=1,1,0\r\n"));
        EXPECT_FALSE(gateway.sent("AT#XTCPCLI"));
    } else {
        EXPECT_TRUE(gateway.sent("AT#XTCPCLI=1,"));
        EXPECT_TRUE(gateway.sent("AT#XSOCKET=1,1,0\r\n"));
    }
    // All write before any reads: each echo must come back on its own connection, whole.
    std::vector<std::string> payloads;
    for (std::size_t i = 0; i < limit; ++i) {
        payloads.push_back("connection " + std::to_string(i) + ":" + nasty_payload(300 + 131 * i));
        ASSERT_TRUE(write_all(fds[i], payloads[i]));
    }
    std::string short_echoes;
    for (std::size_t i = 0; i < limit; ++i) {
        const auto echoed = read_n(fds[i], payloads[i].size());
        if (echoed != payloads[i])
            short_echoes += "connection " + std::to_string(i) + ": " + std::to_string(echoed.size()) + " of " +
                            std::to_string(payloads[i].size()) + " bytes\n";
    }
    EXPECT_EQ(short_echoes, "") << gateway.trace();

    std::atomic<int> extra{-1000};
    std::thread waiter([&] { extra = slmsock_tcp_connect("203.0.113.10", server.port(), AF_INET); });
    struct slmsock_status status{};
    EXPECT_TRUE(eventually([&] { return slmsock_status(&status) == 0 && status.queued_flows == 1; }));
    EXPECT_EQ(extra.load(), -1000) << "one more than the firmware holds waits";
    close(fds[limit / 2]);  // a generic socket frees its descriptor
    waiter.join();
    ASSERT_GE(extra.load(), 0) << slmsock_strerror(extra.load()) << "\n" << gateway.slmd->output();
    ASSERT_TRUE(write_all(extra, "after"));
    EXPECT_EQ(read_n(extra, 5), "after");
    // The proxy's connection still carries its own bytes after all that.
    ASSERT_TRUE(write_all(fds[0], "first"));
    EXPECT_EQ(read_n(fds[0], 5), "first");
    close(extra);
    for (std::size_t i = 0; i < limit; ++i)
        if (i != limit / 2) close(fds[i]);
    EXPECT_EQ(server.accepted(), static_cast<int>(limit + 1));
}

// A modem reset with a connection on the proxy and two on generic sockets, one of them mid-echo: every app hears
// ECONNRESET (no connection lingers half-alive, none survives on a stale handle), and once the modem is back
// all three open again from a fresh descriptor pool.
TEST_P(ManyConnections, AModemResetEndsEveryConnectionAndTheyOpenAgain) {
    LocalServer server(LocalServer::Mode::echo);
    Gateway gateway(GatewayOptions().with_profile(GetParam()));
    ASSERT_TRUE(gateway.ready) << gateway.slmd->output();
    auto open_three = [&](std::vector<int>& fds) {
        for (int i = 0; i < 3; ++i) {
            int fd = -1;
            // ENETDOWN at once while the modem comes back: try again until it serves.
            ASSERT_TRUE(eventually([&] { return (fd = slmsock_tcp_connect("203.0.113.10", server.port(), AF_INET)) >= 0; },
                                   60s))
                << slmsock_strerror(fd) << ", modem " << gateway.state() << "\n" << gateway.slmd->output();
            const std::string hello = "hello " + std::to_string(i);
            ASSERT_TRUE(write_all(fd, hello));
            ASSERT_EQ(read_n(fd, hello.size()), hello);
            fds.push_back(fd);
        }
    };
    std::vector<int> before;
    open_three(before);
    ASSERT_TRUE(write_all(before[2], nasty_payload(4000)));  // in flight on a generic socket when the modem resets
    ASSERT_EQ(gateway.control("reset"), "ok");
    for (const int fd : before) {
        expect_reset(fd);
        close(fd);
    }
    std::vector<int> after;
    open_three(after);
    for (const int fd : after) close(fd);
    EXPECT_EQ(server.accepted(), 6);
}

INSTANTIATE_TEST_SUITE_P(Releases, ManyConnections,
                         ::testing::Values("v2.3", "v2.5", "v2.9", "v3.0", "v3.1", "sm-v1.0", "sm-v2.0-preview1"),
                         [](const auto& info) {
                             std::string name = info.param;
                             for (auto& c : name) {
                                 if (c == '.' || c == '-') c = '_';
                             }
                             return name;
                         });

// Issue 16, scheduling on the Serial Modem: a download's 2048-byte automatic reads would hold up an interactive
// connection's sends and replies. Once one connection sends beside the download, the download is read in
// 128-byte slices instead, and when the echoes stop, automatic reception comes back for it. Every byte arrives
// on its own connection, in order, through both switches.
TEST(SerialModemScheduling, ABulkDownloadIsReadInSlicesBesideAnInteractiveConnection) {
    const std::string download = nasty_payload(500000);
    LocalServer bulk_server(LocalServer::Mode::greet_and_close, download);
    LocalServer echo_server(LocalServer::Mode::echo);
    Gateway gateway(GatewayOptions().with_profile("sm-v1.0"));
    ASSERT_TRUE(gateway.ready) << gateway.slmd->output();
    auto flows = download_beside_echo(bulk_server.port(), echo_server.port());
    ASSERT_TRUE(flows.ok()) << gateway.slmd->output();
    const int echo = flows.echo;
    auto& downloaded = *flows.download;
    std::string echo_failures;
    for (int round = 0; round < 40; ++round) {
        const std::string message = "round " + std::to_string(round) + ":" + nasty_payload(56).substr(0, 56);
        if (!write_all(echo, message) || read_n(echo, message.size()) != message)
            echo_failures += std::to_string(round) + " ";
    }
    const std::size_t at_last_echo = downloaded.so_far();
    EXPECT_EQ(echo_failures, "");
    // The download was switched to slices (on one handle only: the echo keeps automatic reception).
    const auto uplink = gateway.uplink_trace();
    const auto switched = uplink.find("AT#XRECVCFG=3,0\r");
    ASSERT_NE(switched, std::string::npos) << uplink.substr(0, 2000);
    EXPECT_EQ(count(uplink, "AT#XRECVCFG=4,0\r"), 0u);
    EXPECT_GE(count(uplink, "AT#XRECV=3,0,64,0,128\r"), 3u);
    EXPECT_EQ(count(uplink, "AT#XRECV=4,"), 0u);
    // One window (1 s) after the last echo, automatic reception is back, while the download still runs.
    EXPECT_TRUE(eventually([&] { return gateway.sent("AT#XRECVCFG=3,1\r"); })) << gateway.log();
    EXPECT_LT(at_last_echo, download.size()) << "the download ended before the echoes did: nothing was tested";
    expect_same_bytes(downloaded.finish(), download);
    close(echo);
    close(flows.bulk);
}

// Issue 16, scheduling on SLM generic sockets: the firmware reads up to 2048 bytes per #XRECV, so a reply queued
// behind a download's reads waits one such read each. After a connection sends, slmd reads its answer before the
// download's next bytes (answer-wait-ms): on v2.9 (polling) and v3.1 (reports), the first #XRECV after every echo
// request is on the echo's socket (no #XSOCKETSELECT between them), while the download runs, and every byte of
// both arrives in order. With answer-wait-ms = 0 none of the twelve is (the download's reads come first).
class AnswerFirst : public ::testing::TestWithParam<const char*> {};

TEST_P(AnswerFirst, AnEchoRequestsReplyIsReadBeforeTheDownloadsNextBytes) {
    const std::string download = nasty_payload(600000);
    LocalServer bulk_server(LocalServer::Mode::greet_and_close, download);
    LocalServer echo_server(LocalServer::Mode::echo);
    // The longest wait: the order is what is tested, and a loaded machine may take its time to echo.
    Gateway gateway(
        GatewayOptions().with_profile(GetParam()).daemon({"--tcp-proxy", "tls-only", "--answer-wait-ms", "1000"}));
    ASSERT_TRUE(gateway.ready) << gateway.slmd->output();
    auto flows = download_beside_echo(bulk_server.port(), echo_server.port());
    ASSERT_TRUE(flows.ok()) << gateway.slmd->output();
    const int echo = flows.echo;
    auto& downloaded = *flows.download;
    constexpr int rounds = 12;
    std::string echo_failures;
    for (int round = 0; round < rounds; ++round) {
        std::string message = "echo request " + std::to_string(round) + " ";
        message.resize(64, 'x');  // quotable: one AT#XSEND="..." per request
        if (!write_all(echo, message) || read_n(echo, message.size()) != message)
            echo_failures += std::to_string(round) + " ";
    }
    const std::size_t at_last_echo = downloaded.so_far();
    EXPECT_EQ(echo_failures, "");
    const auto uplink = gateway.uplink_trace();
    std::size_t requests = 0, answered_first = 0;
    for (auto at = uplink.find("AT#XSEND=\"echo request "); at != std::string::npos;
         at = uplink.find("AT#XSEND=\"echo request ", at + 1)) {
        ++requests;
        const auto next_read = uplink.find("AT#XRECV=", at);
        if (next_read == std::string::npos) continue;
        const auto between = uplink.substr(at, next_read - at);
        if (between.find("AT#XSOCKETSELECT=") == std::string::npos) ++answered_first;
        else ADD_FAILURE() << "the download was read first after request " << requests << ":\n" << between;
    }
    EXPECT_EQ(requests, static_cast<std::size_t>(rounds));
    EXPECT_EQ(answered_first, static_cast<std::size_t>(rounds));
    EXPECT_LT(at_last_echo, download.size()) << "the download ended before the echoes did: nothing was tested";
    expect_same_bytes(downloaded.finish(), download);
    close(echo);
    close(flows.bulk);
}

INSTANTIATE_TEST_SUITE_P(Releases, AnswerFirst, ::testing::Values("v2.9", "v3.1"), [](const auto& info) {
    std::string name = info.param;
    for (auto& c : name) {
        if (c == '.') c = '_';
    }
    return name;
});

// tcp-proxy = tls-only: plain connections never take the TCP proxy, also while it is free; each runs on a
// generic socket of its own with its bytes intact both ways.
TEST(Tcp, TlsOnlyProxyPutsEveryPlainConnectionOnAGenericSocket) {
    LocalServer server(LocalServer::Mode::echo);
    Gateway gateway(GatewayOptions().with_profile("v2.9").daemon({"--tcp-proxy", "tls-only"}));
    ASSERT_TRUE(gateway.ready) << gateway.slmd->output();
    std::vector<int> fds;
    for (int i = 0; i < 2; ++i) {
        const int fd = slmsock_tcp_connect("203.0.113.10", server.port(), AF_INET);
        ASSERT_GE(fd, 0) << slmsock_strerror(fd) << "\n" << gateway.slmd->output();
        fds.push_back(fd);
    }
    for (int i = 0; i < 2; ++i) {
        const auto payload = "connection " + std::to_string(i) + ":" + nasty_payload(3000 + 500 * i);
        ASSERT_TRUE(write_all(fds[i], payload));
        EXPECT_TRUE(read_n(fds[i], payload.size()) == payload) << i;
    }
    const auto uplink = gateway.uplink_trace();
    EXPECT_EQ(count(uplink, "AT#XTCPCLI=1,"), 0u);
    EXPECT_EQ(count(uplink, "AT#XSOCKET=1,1,0\r\n"), 2u);
    for (const int fd : fds) close(fd);
    EXPECT_EQ(server.accepted(), 2);
}

// SLM v3.1: the firmware reports received bytes (AT#XAPOLL=1,1 once; one "#XAPOLL: <h>,1" per arrival, armed
// again by each read), so slmd never polls: every connection's bytes come back exact, a server that speaks first
// and closes is heard (its greeting, then the end), and no #XPOLL goes out once the reports run.
TEST(Tcp, Version31LearnsOfReceivedBytesFromReportsWithoutPolling) {
    LocalServer server(LocalServer::Mode::echo);
    LocalServer greeter(LocalServer::Mode::greet_and_close, "220 greeting first\r\n");
    Gateway gateway(GatewayOptions().with_profile("v3.1").daemon({"--tcp-proxy", "tls-only"}));
    ASSERT_TRUE(gateway.ready) << gateway.slmd->output();
    std::vector<int> fds;
    for (int i = 0; i < 3; ++i) {
        const int fd = slmsock_tcp_connect("203.0.113.10", server.port(), AF_INET);
        ASSERT_GE(fd, 0) << slmsock_strerror(fd) << "\n" << gateway.slmd->output();
        fds.push_back(fd);
    }
    std::vector<std::string> payloads;
    for (int i = 0; i < 3; ++i) {
        payloads.push_back("connection " + std::to_string(i) + ":" + nasty_payload(2500 + 700 * i));
        ASSERT_TRUE(write_all(fds[i], payloads[i]));
    }
    for (int i = 0; i < 3; ++i) EXPECT_TRUE(read_n(fds[i], payloads[i].size()) == payloads[i]) << i;
    const int greeted = slmsock_tcp_connect("203.0.113.10", greeter.port(), AF_INET);
    ASSERT_GE(greeted, 0) << slmsock_strerror(greeted);
    EXPECT_EQ(read_n(greeted, 1000), "220 greeting first\r\n");  // up to the end of the stream
    pollfd pfd{greeted, POLLIN, 0};
    ASSERT_EQ(poll(&pfd, 1, 10000), 1) << "no EOF within 10 s\n" << gateway.slmd->output();
    char byte;
    EXPECT_EQ(read(greeted, &byte, 1), 0) << "EOF after the greeter closed";
    close(greeted);
    const auto uplink = gateway.uplink_trace();
    EXPECT_EQ(count(uplink, "AT#XAPOLL=1,1\r\n"), 1u) << uplink;
    const auto started = uplink.find("AT#XAPOLL=1,1\r\n");
    ASSERT_NE(started, std::string::npos);
    // A poll queued before the answer may still go; none after the reports run (the firmware refuses #XPOLL then).
    const auto after = uplink.substr(started);
    EXPECT_LE(count(after, "AT#XPOLL"), 1u) << after;
    EXPECT_GE(count(gateway.trace(), "#XAPOLL: "), 4u);
    for (const int fd : fds) close(fd);
}

TEST(Tcp, RefusedTimedOutAndUnreachableCarryTheirErrno) {
    Gateway gateway(GatewayOptions().with_baud("0").sim({"--connect-timeout-ms", "300"}));
    ASSERT_TRUE(gateway.ready) << gateway.slmd->output();
    // A mapped address whose local port has no listener: the real connect is refused.
    LocalServer closed_port_probe(LocalServer::Mode::echo);
    const auto unused_port = static_cast<std::uint16_t>(closed_port_probe.port() + 1);
    EXPECT_EQ(slmsock_tcp_connect("203.0.113.10", unused_port, AF_INET), -ECONNREFUSED);
    // An unmapped documentation address: the simulated network never answers.
    EXPECT_EQ(slmsock_tcp_connect("198.51.100.7", 80, AF_INET), -ETIMEDOUT);
}

TEST(Tcp, UnreachableCarriesItsErrno) {
    Gateway gateway(GatewayOptions().with_baud("0").sim({"--unmapped", "unreachable"}));
    ASSERT_TRUE(gateway.ready) << gateway.slmd->output();
    EXPECT_EQ(slmsock_tcp_connect("198.51.100.7", 80, AF_INET), -EHOSTUNREACH);
}

TEST(Tcp, NonBlockingConnectReportsInProgressThenConnected) {
    LocalServer server(LocalServer::Mode::echo);
    Gateway gateway(GatewayOptions().with_baud("0"));
    ASSERT_TRUE(gateway.ready) << gateway.slmd->output();
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    auto address = test_address("203.0.113.10", server.port());
    std::uint64_t flow = 0;
    ASSERT_EQ(slmsock_connect_fd(fd, reinterpret_cast<sockaddr*>(&address), sizeof address, &flow), -EINPROGRESS);
    EXPECT_NE(fcntl(fd, F_GETFL) & O_NONBLOCK, 0) << "the app's flags are restored";
    pollfd pfd{fd, POLLOUT, 0};
    ASSERT_EQ(poll(&pfd, 1, 5000), 1);
    struct slmsock_flow_status status{};
    EXPECT_TRUE(eventually([&] { return slmsock_flow_status(flow, &status) == 0 && status.state == SLMSOCK_CONNECTED; }));
    ASSERT_TRUE(write_all(fd, "ping"));
    int flags = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    EXPECT_EQ(read_n(fd, 4), "ping");
    close(fd);
}

TEST(Tcp, FailedNonBlockingConnectResetsTheSocketAndNamesTheCause) {
    Gateway gateway(GatewayOptions().with_baud("0"));
    ASSERT_TRUE(gateway.ready) << gateway.slmd->output();
    LocalServer probe(LocalServer::Mode::echo);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    auto address = test_address("203.0.113.10", static_cast<std::uint16_t>(probe.port() + 1));
    std::uint64_t flow = 0;
    ASSERT_EQ(slmsock_connect_fd(fd, reinterpret_cast<sockaddr*>(&address), sizeof address, &flow), -EINPROGRESS);
    // The reset arrives as POLLHUP/POLLERR; the flow remembers why.
    expect_reset(fd);
    struct slmsock_flow_status status{};
    ASSERT_EQ(slmsock_flow_status(flow, &status), 0);
    EXPECT_EQ(status.state, SLMSOCK_FAILED);
    EXPECT_EQ(status.error, -ECONNREFUSED);
    close(fd);
}

TEST(Tcp, PeerCloseIsEndOfFileAfterTheData) {
    LocalServer server(LocalServer::Mode::greet_and_close, "hello from the server\r\nOK\r\n");
    Gateway gateway(GatewayOptions().with_baud("0"));
    ASSERT_TRUE(gateway.ready) << gateway.slmd->output();
    int fd = slmsock_tcp_connect("203.0.113.10", server.port(), AF_INET);
    ASSERT_GE(fd, 0) << slmsock_strerror(fd);
    EXPECT_EQ(read_n(fd, 1000), "hello from the server\r\nOK\r\n");
    pollfd pfd{fd, POLLIN, 0};
    ASSERT_EQ(poll(&pfd, 1, 10000), 1) << "no EOF within 10 s\n" << gateway.slmd->output();
    char byte;
    EXPECT_EQ(read(fd, &byte, 1), 0) << "EOF after the peer closed";
    close(fd);
}

// modem-connections 1, and data-first releases (v2.0-v2.2): the TCP proxy only, one connection at a time.
class OneModemConnection : public ::testing::TestWithParam<bool> {};

TEST_P(OneModemConnection, TheSecondConnectionWaitsForTheProxy) {
    const bool configured = GetParam();
    LocalServer server(LocalServer::Mode::echo);
    Gateway gateway(configured ? GatewayOptions().with_baud("0").daemon({"--modem-connections", "1"})
                               : GatewayOptions().with_baud("0").with_profile("v2.0"));
    ASSERT_TRUE(gateway.ready) << gateway.slmd->output();
    int first = slmsock_tcp_connect("203.0.113.10", server.port(), AF_INET);
    ASSERT_GE(first, 0) << slmsock_strerror(first);
    std::atomic<int> second{-1000};
    std::thread waiter([&] { second = slmsock_tcp_connect("203.0.113.10", server.port(), AF_INET); });
    // While the first holds the proxy, the second is queued, not failed.
    struct slmsock_status status{};
    EXPECT_TRUE(eventually([&] { return slmsock_status(&status) == 0 && status.queued_flows == 1; }));
    EXPECT_EQ(second.load(), -1000);
    close(first);
    waiter.join();
    ASSERT_GE(second.load(), 0) << slmsock_strerror(second.load());
    ASSERT_TRUE(write_all(second, "after"));
    EXPECT_EQ(read_n(second, 5), "after");
    close(second);
    EXPECT_FALSE(gateway.sent("AT#XSOCKET=")) << "no generic socket";
}

INSTANTIATE_TEST_SUITE_P(Tcp, OneModemConnection, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "configured" : "data_first_release"; });

TEST(Tcp, ResolveGoesThroughTheModem) {
    TempDir hosts_dir;
    {
        FILE* hosts = fopen((hosts_dir / "hosts").c_str(), "w");
        fputs("203.0.113.10 www.example.test\n", hosts);
        fclose(hosts);
    }
    Gateway gateway(GatewayOptions().with_baud("0").sim({"--hosts", hosts_dir / "hosts"}));
    ASSERT_TRUE(gateway.ready) << gateway.slmd->output();
    sockaddr_storage addresses[4];
    std::size_t count = 0;
    ASSERT_EQ(slmsock_resolve("www.example.test", AF_INET, addresses, 4, &count), 0);
    ASSERT_EQ(count, 1u);
    char text[INET_ADDRSTRLEN];
    EXPECT_STREQ(inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&addresses[0])->sin_addr, text, sizeof text),
                 "203.0.113.10");
    EXPECT_LT(slmsock_resolve("nowhere.example.test", AF_INET, addresses, 4, &count), 0);
}

TEST(Tcp, SigtermWithAnOpenConnectionExitsCleanly) {
    LocalServer server(LocalServer::Mode::echo);
    Gateway gateway(GatewayOptions().with_baud("0"));
    ASSERT_TRUE(gateway.ready) << gateway.slmd->output();
    int fd = slmsock_tcp_connect("203.0.113.10", server.port(), AF_INET);
    ASSERT_GE(fd, 0) << slmsock_strerror(fd);
    ASSERT_TRUE(write_all(fd, "y"));
    EXPECT_EQ(read_n(fd, 1), "y");
    gateway.slmd->signal(SIGTERM);
    auto code = gateway.slmd->wait_exit(10s);
    ASSERT_TRUE(code) << "slmd did not stop";
    EXPECT_EQ(*code, 0) << gateway.slmd->output();
    // The app's connection does not linger half-alive: it is reset.
    pollfd pfd{fd, POLLIN, 0};
    ASSERT_EQ(poll(&pfd, 1, 5000), 1);
    char byte;
    EXPECT_EQ(read(fd, &byte, 1), -1);
    EXPECT_EQ(errno, ECONNRESET);
    close(fd);
}

TEST(Tcp, CloseAfterHalfCloseFreesTheProxy) {
    LocalServer server(LocalServer::Mode::echo);
    Gateway gateway(GatewayOptions().with_baud("0"));
    ASSERT_TRUE(gateway.ready) << gateway.slmd->output();
    int fd = slmsock_tcp_connect("203.0.113.10", server.port(), AF_INET);
    ASSERT_GE(fd, 0) << slmsock_strerror(fd);
    sockaddr_in local{};
    socklen_t length = sizeof local;
    getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length);
    const auto port = ntohs(local.sin_port);
    ASSERT_TRUE(write_all(fd, "half"));
    EXPECT_EQ(read_n(fd, 4), "half");
    ASSERT_EQ(slmsock_shutdown_by_port(port, SHUT_WR), 0);
    ASSERT_EQ(shutdown(fd, SHUT_WR), 0);
    struct slmsock_flow_status status{};
    ASSERT_EQ(slmsock_flow_status_by_port(port, &status), 0);
    EXPECT_EQ(status.state, SLMSOCK_CONNECTED) << "half-closed: the app may still read";
    close(fd);
    EXPECT_TRUE(eventually(
        [&] { return slmsock_flow_status_by_port(port, &status) == 0 && status.state != SLMSOCK_CONNECTED; }));
    EXPECT_EQ(status.state, SLMSOCK_CLOSED);
    // The single TCP proxy is free again.
    int again = slmsock_tcp_connect("203.0.113.10", server.port(), AF_INET);
    ASSERT_GE(again, 0) << slmsock_strerror(again);
    ASSERT_TRUE(write_all(again, "next"));
    EXPECT_EQ(read_n(again, 4), "next");
    close(again);
}

// SLM cannot send a FIN: after an app's shutdown(SHUT_WR) a peer that waits for its end of file (nc -N on the
// other side, a program reading to the end of a pipe) would wait for ever, and the app with it. Once the peer
// has been quiet for half-close-idle-ms, slmd closes the connection: both ends read their end of file, and
// every byte sent before arrives.
TEST(Tcp, AHalfClosedConnectionEndsForBothOnceThePeerIsQuiet) {
    std::uint16_t peer_port = 0;
    const int listener = loopback_tcp_listener(peer_port);
    ASSERT_GE(listener, 0);
    Gateway gateway(GatewayOptions().with_baud("0").daemon({"--half-close-idle-ms", "1000"}));
    ASSERT_TRUE(gateway.ready) << gateway.slmd->output();
    const int fd = slmsock_tcp_connect("203.0.113.10", peer_port, AF_INET);
    ASSERT_GE(fd, 0) << slmsock_strerror(fd);
    pollfd incoming{listener, POLLIN, 0};
    ASSERT_EQ(poll(&incoming, 1, 10000), 1);
    const int peer = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    ASSERT_GE(peer, 0);
    ASSERT_TRUE(write_all(fd, "request"));
    EXPECT_EQ(read_n(peer, 7, 10s), "request");
    ASSERT_TRUE(write_all(peer, "reply"));
    EXPECT_EQ(read_n(fd, 5, 10s), "reply");

    sockaddr_in local{};
    socklen_t length = sizeof local;
    getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length);
    ASSERT_EQ(slmsock_shutdown_by_port(ntohs(local.sin_port), SHUT_WR), 0);
    ASSERT_EQ(shutdown(fd, SHUT_WR), 0);
    // Both ends now read to their end of file, without another byte: bounded by the test, not timed.
    auto read_to_end = [](int socket) {
        std::string bytes;
        char buffer[256];
        pollfd readable{socket, POLLIN, 0};
        while (poll(&readable, 1, 15000) == 1) {
            const ssize_t n = read(socket, buffer, sizeof buffer);
            if (n <= 0) return std::make_pair(bytes, n == 0 ? 0 : errno);
            bytes.append(buffer, static_cast<std::size_t>(n));
        }
        return std::make_pair(bytes, ETIME);
    };
    const auto [peer_got, peer_error] = read_to_end(peer);
    EXPECT_EQ(peer_got, "");
    EXPECT_EQ(peer_error, 0) << "the peer reads its end of file";
    const auto [app_got, app_error] = read_to_end(fd);
    EXPECT_EQ(app_got, "");
    EXPECT_EQ(app_error, 0) << "the app reads its end of file, not an error";
    EXPECT_TRUE(gateway.slmd->wait_for_output("the app half-closed and the peer sent nothing", 5s));
    close(fd);
    close(peer);
    close(listener);
}

TEST(Api, CallersOutsideTheGroupAreRefused) {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to run a client as another user";
    Gateway gateway(GatewayOptions().with_baud("0"));
    ASSERT_TRUE(gateway.ready) << gateway.slmd->output();
    // The socket file is 0660; the check that matters is SO_PEERCRED, so open the file to everyone.
    ASSERT_EQ(chmod((gateway.dir / "slmd.sock").c_str(), 0666), 0);
    ASSERT_EQ(chmod(gateway.dir.path().c_str(), 0755), 0);
    pid_t child = fork();
    if (child == 0) {
        if (setgid(65534) != 0 || setuid(65534) != 0) _exit(3);
        struct slmsock_status status {};
        _exit(slmsock_status(&status) == -EACCES ? 0 : 1);
    }
    int wstatus = 0;
    ASSERT_EQ(waitpid(child, &wstatus, 0), child);
    ASSERT_TRUE(WIFEXITED(wstatus));
    EXPECT_EQ(WEXITSTATUS(wstatus), 0) << "nobody must get EACCES";
    // Root is allowed.
    struct slmsock_status status {};
    EXPECT_EQ(slmsock_status(&status), 0);
    EXPECT_STREQ(status.release, "2.9.0");
    EXPECT_STREQ(status.modem_state, "serving");
}
