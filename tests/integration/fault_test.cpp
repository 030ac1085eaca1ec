// Owns: the byte-accounting fault tests of the reliability issue, against the real slmd and slmsim: a download
// cut by a peer reset, a modem reset in the middle of an upload, URCs interleaved at every legal place during a
// download (slmsim's interleave mode, injected +CEREG URCs and a UDP proxy's datagrams between #XTCPDATA
// headers and their payloads), and a client killed in the middle of a transfer. The rule checked each time:
// every byte the program saw arrive is a byte the far end sent, in order, and what the far end received is a
// prefix of what the program wrote — and whenever less arrived than was sent, the program saw an error. No
// silent loss. (Modem reset, serial loss, slmd restart and noise recoveries are in recovery_test.cpp.)
// Also a program that stops reading a download (docs/reliability.md, "slow readers"): alone on the link it is
// held back without loss; while another program needs the link, that program is served at once, and the slow
// one either resumes in time and gets every byte, or is reset (ECONNRESET after an exact prefix).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <string>
#include <functional>
#include <thread>

#include "gateway.hpp"
#include "slmsock.h"

using namespace slmd::test;
using namespace std::chrono_literals;

namespace {

std::string pattern(std::size_t size, unsigned seed) {
    std::mt19937 random(seed);
    std::string bytes(size, '\0');
    for (auto& byte : bytes) byte = static_cast<char>(random());
    return bytes;
}

// A loopback server that sends `payload` to the first client (optionally resetting the connection after
// `reset_after` bytes) and records everything that client sends. With a reset it waits for the client's first
// byte before sending: a reset racing the modem's own connect would be a refused connect, not a cut download.
class Source {
public:
    explicit Source(std::string payload, std::size_t reset_after = std::string::npos)
        : payload_(std::move(payload)), reset_after_(reset_after) {
        fd_ = loopback_tcp_listener(port_, 4);
        thread_ = std::thread([this] { serve(); });
    }
    ~Source() {
        stop_ = true;
        shutdown(fd_, SHUT_RDWR);
        if (thread_.joinable()) thread_.join();
        close(fd_);
    }
    std::uint16_t port() const { return port_; }
    std::string received() {
        std::lock_guard lock(mutex_);
        return received_;
    }
    bool finished() const { return finished_; }
    std::size_t sent() const { return sent_; }
    // Holds the reset back until `ready()` (bounded at 10 s). Set before the program sends its request.
    void reset_when(std::function<bool()> ready) { reset_when_ = std::move(ready); }
    // Sends nothing until the program's first bytes arrive (set before the program connects): the reply then
    // meets whatever link mode the request left behind.
    void reply_to_request() { reply_to_request_ = true; }

private:
    void serve() {
        const int client = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (client < 0) return;
        const std::size_t limit = std::min(reset_after_, payload_.size());
        std::size_t sent = 0;
        bool half_closed = false;
        bool go = reset_after_ == std::string::npos && !reply_to_request_;
        while (!stop_) {
            pollfd p{client, static_cast<short>(POLLIN | (go && sent < limit ? POLLOUT : 0)), 0};
            if (poll(&p, 1, 50) <= 0) continue;
            if (p.revents & POLLIN) {
                char buffer[8192];
                const ssize_t n = recv(client, buffer, sizeof buffer, MSG_DONTWAIT);
                if (n <= 0) break;
                std::lock_guard lock(mutex_);
                received_.append(buffer, static_cast<std::size_t>(n));
                go = true;
            }
            if (go && (p.revents & POLLOUT) && sent < limit) {
                const ssize_t n = send(client, payload_.data() + sent, std::min<std::size_t>(limit - sent, 4096),
                                       MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n > 0) sent += static_cast<std::size_t>(n);
                sent_ = sent;
            }
            if (sent == payload_.size() && !payload_.empty() && !half_closed) {
                shutdown(client, SHUT_WR);  // all sent: the program reads to a clean end of file
                half_closed = true;
            }
            if (go && sent == limit && reset_after_ != std::string::npos) {
                if (reset_when_) eventually(reset_when_, std::chrono::seconds(10));
                linger hard{1, 0};  // close with RST: the peer reset the connection
                setsockopt(client, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
                break;
            }
        }
        finished_ = true;
        close(client);
    }

    std::string payload_;
    std::size_t reset_after_;
    int fd_ = -1;
    std::uint16_t port_ = 0;
    std::thread thread_;
    std::atomic<bool> stop_{false};
    std::atomic<bool> finished_{false};
    std::atomic<bool> reply_to_request_{false};
    std::atomic<std::size_t> sent_{0};
    std::function<bool()> reset_when_;
    std::mutex mutex_;
    std::string received_;
};

// Reads until EOF or an error; returns the bytes and the errno (0 for a clean EOF, ETIME for the hang guard).
std::pair<std::string, int> read_all(int fd, std::chrono::milliseconds limit = 60s) {
    std::string bytes;
    const auto deadline = Clock::now() + limit;
    char buffer[8192];
    while (Clock::now() < deadline) {
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0) continue;
        const ssize_t n = read(fd, buffer, sizeof buffer);
        if (n < 0) return {bytes, errno};
        if (n == 0) return {bytes, 0};
        bytes.append(buffer, static_cast<std::size_t>(n));
    }
    return {bytes, ETIME};
}

TEST(Faults, APeerResetInTheMiddleOfADownloadIsAnErrorAfterExactBytes) {
    const std::string payload = pattern(48 * 1024, 1);
    Source source(payload, 20 * 1024);
    Gateway gateway;
    ASSERT_TRUE(gateway.ready) << gateway.log();
    // The peer resets once the modem has taken its 20 KiB off the network. (A reset that overtakes bytes still
    // in the modem's socket discards them in the modem's own TCP stack, and the firmware reports it as it
    // reports a close: no host can tell, docs/data-path.md. What slmd must not do is lose bytes the modem
    // already handed over when the disconnect URC follows them.)
    source.reset_when([&] {
        const std::string stats = gateway.control("stats");
        const auto at = stats.find("tcp_down_bytes=");
        return at != std::string::npos && std::stoull(stats.substr(at + 15)) >= 20u * 1024;
    });
    const int fd = slmsock_tcp_connect("203.0.113.10", source.port(), AF_INET);
    ASSERT_GE(fd, 0) << slmsock_strerror(fd);
    ASSERT_TRUE(write_all(fd, "GET\n"));
    const auto [got, error] = read_all(fd);
    close(fd);
    EXPECT_EQ(got, payload.substr(0, 20 * 1024)) << "every byte the modem received, in order (" << got.size()
                                                   << " of 20480)";
    EXPECT_NE(error, ETIME) << gateway.log();
    std::printf("FAULT peer-reset-download bytes %zu of 20480 errno %d\n", got.size(), error);
    // The modem is free for the next program.
    LocalServer echo;
    const int next = slmsock_tcp_connect("203.0.113.10", echo.port(), AF_INET);
    ASSERT_GE(next, 0) << slmsock_strerror(next);
    EXPECT_TRUE(write_all(next, "next\n"));
    EXPECT_EQ(read_n(next, 5, 10s), "next\n");
    close(next);
}

TEST(Faults, AModemResetInTheMiddleOfAnUploadLosesNothingSilently) {
    Source sink("");
    Gateway gateway;
    ASSERT_TRUE(gateway.ready) << gateway.log();
    const int fd = slmsock_tcp_connect("203.0.113.10", sink.port(), AF_INET);
    ASSERT_GE(fd, 0) << slmsock_strerror(fd);
    const std::string payload = pattern(256 * 1024, 2);
    std::size_t accepted = 0;
    int error = 0;
    std::atomic<bool> reset_sent{false};
    std::thread fault([&] {
        if (eventually([&] { return sink.received().size() >= 16 * 1024; }, 30s)) {
            gateway.control("reset");
            reset_sent = true;
        }
    });
    while (accepted < payload.size()) {
        pollfd p{fd, POLLOUT, 0};
        if (poll(&p, 1, 30000) != 1) {
            error = ETIME;
            break;
        }
        const ssize_t n = send(fd, payload.data() + accepted, payload.size() - accepted, MSG_NOSIGNAL);
        if (n < 0) {
            error = errno;
            break;
        }
        accepted += static_cast<std::size_t>(n);
    }
    fault.join();
    ASSERT_TRUE(reset_sent) << gateway.log();
    // The whole upload may have been accepted into socket buffers before the reset; the error then shows on
    // the next read. Either way the program must hear of it unless every byte reached the far end.
    if (error == 0) error = read_all(fd, 30s).second;
    close(fd);
    const std::string arrived = sink.received();
    EXPECT_EQ(arrived, payload.substr(0, arrived.size())) << "the far end saw a prefix of what was written";
    if (arrived.size() < accepted) {
        EXPECT_NE(error, 0) << accepted - arrived.size() << " bytes lost silently";
    }
    EXPECT_NE(error, ETIME) << gateway.log();
    std::printf("FAULT modem-reset-upload accepted %zu arrived %zu errno %d\n", accepted, arrived.size(), error);
}

TEST(Faults, UrcsInterleavedAtEveryLegalPlaceLeaveADownloadByteExact) {
    const std::string payload = pattern(96 * 1024, 3);
    Source source(payload);
    Gateway gateway;
    ASSERT_TRUE(gateway.ready) << gateway.log();
    ASSERT_EQ(gateway.control("interleave on").rfind("ok", 0), 0u);
    // A UDP proxy receiving datagrams the whole time: its #XUDPDATA lands between #XTCPDATA headers and their
    // payloads (interleave mode), and URCs of the modem are injected on top.
    const int udp_server = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(bind(udp_server, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    socklen_t length = sizeof address;
    getsockname(udp_server, reinterpret_cast<sockaddr*>(&address), &length);
    const int app_udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in loopback{};
    loopback.sin_family = AF_INET;
    loopback.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(bind(app_udp, reinterpret_cast<sockaddr*>(&loopback), sizeof loopback), 0);
    socklen_t app_length = sizeof loopback;
    getsockname(app_udp, reinterpret_cast<sockaddr*>(&loopback), &app_length);
    sockaddr_in peer{};
    peer.sin_family = AF_INET;
    peer.sin_port = address.sin_port;
    inet_pton(AF_INET, "203.0.113.10", &peer.sin_addr);
    std::uint16_t stand_in_port = 0;
    ASSERT_EQ(slmsock_udp_associate(AF_INET, ntohs(loopback.sin_port), reinterpret_cast<sockaddr*>(&peer),
                                    sizeof peer, &stand_in_port),
              0);
    sockaddr_in stand_in{};
    stand_in.sin_family = AF_INET;
    stand_in.sin_port = htons(stand_in_port);
    stand_in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const socklen_t stand_in_length = sizeof stand_in;
    // Open the UDP proxy (the modem learns the far end when the app sends first), then let the far end talk.
    ASSERT_EQ(sendto(app_udp, "hello", 5, 0, reinterpret_cast<sockaddr*>(&stand_in), stand_in_length), 5);
    sockaddr_in from{};
    socklen_t from_length = sizeof from;
    char hello[16];
    pollfd first{udp_server, POLLIN, 0};
    ASSERT_EQ(poll(&first, 1, 10000), 1) << gateway.log();
    ASSERT_EQ(recvfrom(udp_server, hello, sizeof hello, 0, reinterpret_cast<sockaddr*>(&from), &from_length), 5);

    std::atomic<bool> stop{false};
    std::atomic<int> datagrams_sent{0};
    std::thread noise([&] {
        for (int i = 0; !stop; ++i) {
            const std::string datagram = "datagram " + std::to_string(i);
            sendto(udp_server, datagram.data(), datagram.size(), 0, reinterpret_cast<sockaddr*>(&from), from_length);
            ++datagrams_sent;
            if (i % 3 == 0) gateway.control("urc +CEREG: 1");
            poll(nullptr, 0, 15);  // pacing of the far end's traffic, not a synchronisation
        }
    });
    const int fd = slmsock_tcp_connect("203.0.113.10", source.port(), AF_INET);
    ASSERT_GE(fd, 0) << slmsock_strerror(fd);
    const auto [got, error] = read_all(fd);
    stop = true;
    noise.join();
    close(fd);
    EXPECT_EQ(error, 0) << gateway.log();
    EXPECT_EQ(got.size(), payload.size());
    if (got != payload) {
        std::size_t at = 0;
        while (at < got.size() && at < payload.size() && got[at] == payload[at]) ++at;
        ADD_FAILURE() << "the download differs from byte " << at << " on; got "
                      << testing::PrintToString(got.substr(at, 48)) << ", sent "
                      << testing::PrintToString(payload.substr(at, 48));
    }
    // Every datagram that reached the app is whole.
    int whole = 0, broken = 0;
    char buffer[2048];
    for (;;) {
        const ssize_t n = recv(app_udp, buffer, sizeof buffer, MSG_DONTWAIT);
        if (n < 0) break;
        const std::string text(buffer, static_cast<std::size_t>(n));
        (text.rfind("datagram ", 0) == 0 ? whole : broken)++;
    }
    EXPECT_EQ(broken, 0);
    EXPECT_GT(whole, 0) << datagrams_sent << " sent";
    std::printf("FAULT interleave download %zu bytes %s, %d/%d datagrams whole\n", got.size(),
                got == payload ? "exact" : "DIFFERENT", whole,
                datagrams_sent.load());
    close(app_udp);
    close(udp_server);
}

TEST(Faults, AClientKilledInTheMiddleOfATransferFreesTheProxyAtOnce) {
    LocalServer echo;
    Gateway gateway;
    ASSERT_TRUE(gateway.ready) << gateway.log();
    int ready_pipe[2];
    ASSERT_EQ(pipe(ready_pipe), 0);
    const pid_t child = fork();
    if (child == 0) {
        const int fd = slmsock_tcp_connect("203.0.113.10", echo.port(), AF_INET);
        if (fd < 0) _exit(2);
        const std::string chunk(1024, 'k');
        [[maybe_unused]] auto w = write(ready_pipe[1], "r", 1);
        for (;;) {
            if (send(fd, chunk.data(), chunk.size(), MSG_NOSIGNAL) < 0) _exit(3);
            char sink[4096];
            [[maybe_unused]] auto r = recv(fd, sink, sizeof sink, MSG_DONTWAIT);
        }
    }
    close(ready_pipe[1]);
    char ready = 0;
    pollfd p{ready_pipe[0], POLLIN, 0};
    ASSERT_EQ(poll(&p, 1, 15000), 1) << gateway.log();
    ASSERT_EQ(read(ready_pipe[0], &ready, 1), 1);
    close(ready_pipe[0]);
    ASSERT_TRUE(eventually([&] { return gateway.sent("AT#XTCPSEND"); }, 10s)) << "the transfer is running";
    kill(child, SIGKILL);
    waitpid(child, nullptr, 0);
    const auto killed = Clock::now();
    // The next program is served as soon as slmd noticed: no waiting for a timeout.
    const int fd = slmsock_tcp_connect("203.0.113.10", echo.port(), AF_INET);
    ASSERT_GE(fd, 0) << slmsock_strerror(fd) << "\n" << gateway.log();
    const auto served_ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - killed).count();
    EXPECT_TRUE(write_all(fd, "after\n"));
    EXPECT_EQ(read_n(fd, 6, 10s), "after\n");
    close(fd);
    EXPECT_LT(served_ms, 10000) << "a hang guard, not a performance bound";
    std::printf("FAULT client-killed next-served-ms %lld\n", static_cast<long long>(served_ms));
}

// ---- Slow readers ----------------------------------------------------------------------------------------------

// A program's TCP socket that reads nothing: its receive buffer is made small, so what slmd holds for it (and
// not the kernel) is what fills up. Connected through the modem to 203.0.113.10:port.
int slow_reader(std::uint16_t port) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    const int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(port);
    inet_pton(AF_INET, "203.0.113.10", &to.sin_addr);
    const int status = slmsock_connect_fd(fd, reinterpret_cast<sockaddr*>(&to), sizeof to, nullptr);
    if (status != 0) {
        close(fd);
        return status < 0 ? status : -EINVAL;
    }
    return fd;
}

// TCP bytes slmd took from the modem so far (its counters; asking sends no AT command).
std::uint64_t tcp_bytes_down() {
    struct slmsock_stats stats {};
    return slmsock_stats(&stats) == 0 ? stats.tcp_bytes_down : 0;
}

// Another program's UDP socket, through the modem to a far end on loopback that echoes every datagram.
class UdpEchoThroughModem {
public:
    UdpEchoThroughModem() {
        far_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        bind(far_, reinterpret_cast<sockaddr*>(&address), sizeof address);
        socklen_t length = sizeof address;
        getsockname(far_, reinterpret_cast<sockaddr*>(&address), &length);
        far_port_ = ntohs(address.sin_port);
        thread_ = std::thread([this] {
            char buffer[2048];
            while (!stop_) {
                pollfd p{far_, POLLIN, 0};
                if (poll(&p, 1, 50) <= 0) continue;
                sockaddr_in from{};
                socklen_t from_length = sizeof from;
                const ssize_t n = recvfrom(far_, buffer, sizeof buffer, 0, reinterpret_cast<sockaddr*>(&from),
                                           &from_length);
                if (n > 0) sendto(far_, buffer, static_cast<std::size_t>(n), 0, reinterpret_cast<sockaddr*>(&from),
                                  from_length);
            }
        });
        app_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        sockaddr_in local{};
        local.sin_family = AF_INET;
        local.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        bind(app_, reinterpret_cast<sockaddr*>(&local), sizeof local);
        socklen_t local_length = sizeof local;
        getsockname(app_, reinterpret_cast<sockaddr*>(&local), &local_length);
        app_port_ = ntohs(local.sin_port);
    }
    ~UdpEchoThroughModem() {
        stop_ = true;
        thread_.join();
        close_app();
        close(far_);
    }
    // UDP_ASSOCIATE for the far end at 203.0.113.10 (slmsim maps it to loopback): 0 or -errno.
    int associate() {
        sockaddr_in peer{};
        peer.sin_family = AF_INET;
        peer.sin_port = htons(far_port_);
        inet_pton(AF_INET, "203.0.113.10", &peer.sin_addr);
        std::uint16_t stand_in_port = 0;
        const int status = slmsock_udp_associate(AF_INET, app_port_, reinterpret_cast<sockaddr*>(&peer),
                                                 sizeof peer, &stand_in_port);
        stand_in_.sin_family = AF_INET;
        stand_in_.sin_port = htons(stand_in_port);
        stand_in_.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        return status;
    }
    // Sends `datagram` through the modem and waits for its echo: the reply, or "" after `limit`.
    std::string echo(const std::string& datagram, std::chrono::milliseconds limit) {
        if (sendto(app_, datagram.data(), datagram.size(), 0, reinterpret_cast<sockaddr*>(&stand_in_),
                   sizeof stand_in_) != static_cast<ssize_t>(datagram.size())) {
            return {};
        }
        pollfd p{app_, POLLIN, 0};
        if (poll(&p, 1, static_cast<int>(limit.count())) != 1) return {};
        char buffer[2048];
        const ssize_t n = recv(app_, buffer, sizeof buffer, 0);
        return n > 0 ? std::string(buffer, static_cast<std::size_t>(n)) : std::string();
    }
    // The program closes its socket: slmd releases the modem's UDP proxy at its next socket poll.
    void close_app() {
        if (app_ >= 0) close(app_);
        app_ = -1;
    }

private:
    int far_ = -1;
    int app_ = -1;
    std::uint16_t far_port_ = 0;
    std::uint16_t app_port_ = 0;
    sockaddr_in stand_in_{};
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

long long ms_since(Clock::time_point start) {
    return static_cast<long long>(
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count());
}

// Reads slmd's log until a line contains `text` (or it was read before), within `limit`.
bool logged(Gateway& gateway, const std::string& text, std::chrono::milliseconds limit) {
    if (gateway.log().find(text) != std::string::npos) return true;
    return gateway.slmd->wait_for_output(text, limit);
}

// slmd's log so far, with everything it has written read.
std::string whole_log(Gateway& gateway) {
    while (gateway.slmd->read_line(0ms)) {
    }
    return gateway.log();
}

constexpr const char* slow_reset_line = "resetting its connection";

// (1) A program stops reading a download and slmd has paused the line for it; another program's DNS lookup
// and UDP echo are served at once (the line is read for them), and the download stays whole.
TEST(Faults, AProgramThatStopsReadingDoesNotHoldUpAnotherProgramsDnsAndUdp) {
    // More than the kernel's socket buffers between slmd and the program absorb (several MiB on loopback), so
    // that slmd itself ends up holding bytes for the program.
    const std::string payload = pattern(8 * 1024 * 1024, 11);
    Source source(payload);
    TempDir hosts_dir;
    {
        std::ofstream hosts(hosts_dir / "hosts");
        hosts << "203.0.113.10 www.example.test\n";
    }
    Gateway gateway(GatewayOptions()
                        .with_baud("0")
                        .sim({"--hosts", hosts_dir / "hosts"})
                        // A bound the download cannot reach: this test is about the others (the unpaced line
                        // carries megabytes while the UDP program holds it).
                        .daemon({"--log-level", "debug", "--socket-poll-ms", "100", "--slow-reader-limit",
                                 "16777216"}));
    ASSERT_TRUE(gateway.ready) << gateway.log();
    const int slow = slow_reader(source.port());
    ASSERT_GE(slow, 0) << slmsock_strerror(slow);
    // slmd holds 256 KiB for the program and stops reading the line (nothing else needs it yet).
    ASSERT_TRUE(logged(gateway, "serial line paused", 60s)) << gateway.log();
    const auto held = tcp_bytes_down();

    sockaddr_storage addresses[4];
    std::size_t found = 0;
    const auto dns_start = Clock::now();
    const int dns = slmsock_resolve("www.example.test", AF_INET, addresses, 4, &found);
    const auto dns_ms = ms_since(dns_start);
    EXPECT_EQ(dns, 0) << gateway.log();
    EXPECT_EQ(found, 1u);
    char text[INET_ADDRSTRLEN] = "";
    inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&addresses[0])->sin_addr, text, sizeof text);
    EXPECT_STREQ(text, "203.0.113.10");

    long long udp_ms = -1;
    {
        UdpEchoThroughModem udp;
        const auto udp_start = Clock::now();
        ASSERT_EQ(udp.associate(), 0) << gateway.log();
        EXPECT_EQ(udp.echo("ping through the modem", 10s), "ping through the modem") << gateway.log();
        udp_ms = ms_since(udp_start);
    }  // the UDP program ends; slmd releases the proxy and may pause the line again

    // Hang guards, not performance bounds: without the fix both wait behind the program that does not read.
    EXPECT_LT(dns_ms, 5000);
    EXPECT_LT(udp_ms, 5000);
    const auto [got, error] = read_all(slow, 90s);
    close(slow);
    EXPECT_EQ(error, 0) << gateway.log();
    EXPECT_EQ(got.size(), payload.size());
    EXPECT_TRUE(got == payload) << "the download is byte-exact";
    EXPECT_EQ(count(whole_log(gateway), slow_reset_line), 0u);
    std::printf("FAULT slow-reader-others held %llu dns-ms %lld udp-associate+echo-ms %lld download %zu/%zu\n",
                static_cast<unsigned long long>(held), dns_ms, udp_ms, got.size(), payload.size());
}

// (2) While another program's UDP socket needs the line, slmd keeps reading it and holds the download for the
// program that does not read, beyond the pause threshold; the program resumes before slow-reader-limit and
// gets every byte in order.
TEST(Faults, ASlowReaderThatResumesBeforeTheBoundGetsEveryByteInOrder) {
    const std::string payload = pattern(8 * 1024 * 1024, 12);
    Source source(payload);
    Gateway gateway(
        GatewayOptions().with_baud("0").daemon({"--slow-reader-limit", "16777216", "--log-level", "debug"}));
    ASSERT_TRUE(gateway.ready) << gateway.log();
    UdpEchoThroughModem udp;
    ASSERT_EQ(udp.associate(), 0) << gateway.log();
    ASSERT_EQ(udp.echo("open", 10s), "open") << gateway.log();
    const int slow = slow_reader(source.port());
    ASSERT_GE(slow, 0) << slmsock_strerror(slow);
    // slmd holds 256 KiB for the program and asks for a pause; the line is read on for the UDP program, and
    // slmd takes another MiB off it while the program reads nothing.
    ASSERT_TRUE(logged(gateway, "asking the modem to pause", 60s)) << gateway.log();
    const auto at_pause = tcp_bytes_down();
    ASSERT_TRUE(eventually([&] { return tcp_bytes_down() >= at_pause + 1024 * 1024; }, 60s)) << gateway.log();
    EXPECT_EQ(udp.echo("still served", 10s), "still served") << gateway.log();
    const auto held = tcp_bytes_down();
    const auto [got, error] = read_all(slow, 90s);
    close(slow);
    EXPECT_EQ(error, 0) << gateway.log();
    EXPECT_EQ(got.size(), payload.size());
    EXPECT_TRUE(got == payload.substr(0, got.size())) << "every byte read is the far end's, in order";
    EXPECT_EQ(count(whole_log(gateway), slow_reset_line), 0u);
    std::printf("FAULT slow-reader-resumes held %llu read %zu of %zu errno %d\n",
                static_cast<unsigned long long>(held), got.size(), payload.size(), error);
}

// (3) The program never resumes while another program's UDP socket needs the line: beyond slow-reader-limit
// its connection is reset — it reads an exact prefix, then ECONNRESET — the modem connection is closed, and
// the other program and the next connection are served.
TEST(Faults, ASlowReaderThatNeverResumesWhileOthersNeedTheLinkIsResetAfterAnExactPrefix) {
    const std::string payload = pattern(4 * 1024 * 1024, 13);
    Source source(payload);
    const std::size_t limit = 512 * 1024;
    Gateway gateway(GatewayOptions().with_baud("0").daemon({"--slow-reader-limit", std::to_string(limit)}));
    ASSERT_TRUE(gateway.ready) << gateway.log();
    UdpEchoThroughModem udp;
    ASSERT_EQ(udp.associate(), 0) << gateway.log();
    ASSERT_EQ(udp.echo("open", 10s), "open") << gateway.log();
    const int slow = slow_reader(source.port());
    ASSERT_GE(slow, 0) << slmsock_strerror(slow);
    const auto start = Clock::now();
    ASSERT_TRUE(logged(gateway, slow_reset_line, 60s)) << gateway.log();
    const auto reset_ms = ms_since(start);
    const auto [got, error] = read_all(slow, 30s);
    close(slow);
    EXPECT_EQ(error, ECONNRESET) << "a reset, never a silent end of file";
    EXPECT_LT(got.size(), payload.size());
    EXPECT_TRUE(got == payload.substr(0, got.size())) << "what was read is an exact prefix";
    EXPECT_TRUE(eventually([&] { return source.finished(); }, 10s)) << "the modem connection was closed";
    EXPECT_EQ(udp.echo("after", 10s), "after") << whole_log(gateway);
    LocalServer echo;
    const int next = slmsock_tcp_connect("203.0.113.10", echo.port(), AF_INET);
    ASSERT_GE(next, 0) << slmsock_strerror(next) << "\n" << whole_log(gateway);
    EXPECT_TRUE(write_all(next, "next\n"));
    EXPECT_EQ(read_n(next, 5, 10s), "next\n");
    close(next);
    std::printf("FAULT slow-reader-reset after-ms %lld read %zu of %zu (limit %zu) errno %d\n", reset_ms,
                got.size(), payload.size(), limit, error);
}

// (4) Alone on the line, a program that stops reading is held back (slmd stops reading the line) and never
// reset, even when far more than slow-reader-limit waits upstream; once it reads, every byte arrives.
TEST(Faults, ASlowReaderAloneOnTheLinkIsHeldBackNotReset) {
    const std::string payload = pattern(8 * 1024 * 1024, 14);
    Source source(payload);
    const std::size_t limit = 512 * 1024;
    Gateway gateway(GatewayOptions().with_baud("0").daemon(
        {"--slow-reader-limit", std::to_string(limit), "--log-level", "debug"}));
    ASSERT_TRUE(gateway.ready) << gateway.log();
    const int slow = slow_reader(source.port());
    ASSERT_GE(slow, 0) << slmsock_strerror(slow);
    ASSERT_TRUE(logged(gateway, "serial line paused", 60s)) << gateway.log();
    // Held: slmd takes nothing more from the modem (the same count over half a second, within a bound).
    std::uint64_t last = tcp_bytes_down();
    int steady = 0;
    ASSERT_TRUE(eventually(
        [&] {
            const auto now = tcp_bytes_down();
            steady = now == last ? steady + 1 : 0;
            last = now;
            return steady >= 5;
        },
        30s));
    EXPECT_LT(last, payload.size()) << "the far end is held back";
    const auto upstream = source.sent();
    const auto [got, error] = read_all(slow, 90s);
    close(slow);
    EXPECT_EQ(error, 0) << gateway.log();
    EXPECT_EQ(got.size(), payload.size());
    EXPECT_TRUE(got == payload) << "the download is byte-exact";
    EXPECT_EQ(count(whole_log(gateway), slow_reset_line), 0u);
    std::printf("FAULT slow-reader-alone held %llu far-end-sent %zu read %zu of %zu errno %d\n",
                static_cast<unsigned long long>(last), upstream, got.size(), payload.size(), error);
}

}  // namespace

// The modem reboots, or UART bytes go missing, part-way through a counted #XTCPDATA payload (issue 15):
// before, slmd took "Ready" and every later answer as payload and was wedged for good. On every release, at
// pseudo-random offsets inside the downlink (printed, seeded by the profile), the program gets an exact
// prefix of the far end's bytes and then an error, within a bound, and the next connect is served.
struct PayloadFaultCase {
    const char* profile;
    const char* kind;  // "reset", "drop" (bytes lost inside a payload) or "header" (inside its header)
    const char* baud = "0";
    // The request needs data mode (CRLF in it), and the reply comes while the link is still there: raw bytes
    // with no framing, where a reboot's banner looks like any other downlink.
    bool in_data_mode = false;
};

class PayloadFaults : public ::testing::TestWithParam<PayloadFaultCase> {};

TEST_P(PayloadFaults, AnExactPrefixThenAnErrorAndTheNextConnectIsServed) {
    const auto& param = GetParam();
    const std::string payload = pattern(24 * 1024, 7);
    Source source(payload);
    Gateway gateway(GatewayOptions().with_profile(param.profile).with_baud(param.baud));
    ASSERT_TRUE(gateway.ready) << gateway.log();
    // Somewhere inside the stream, not on a chunk boundary by design: one offset per profile and fault.
    std::mt19937 random(std::hash<std::string>{}(std::string(param.profile) + param.kind));
    const std::size_t offset = 1 + random() % (8 * 1024);
    const std::string kind = param.kind;
    const std::string fault = kind == "reset"    ? "payload-fault reset " + std::to_string(offset)
                              : kind == "header" ? "payload-fault header " + std::to_string(offset) + " " +
                                                       std::to_string(1 + random() % 19)  // "\r\n#XTCPDATA: 2048\r\n"
                                                 : "payload-fault drop " + std::to_string(offset) + " " +
                                                       std::to_string(1 + random() % 300);
    ASSERT_EQ(gateway.control(fault), "ok");
    if (param.in_data_mode) source.reply_to_request();

    const auto start = Clock::now();
    const int fd = slmsock_tcp_connect("203.0.113.10", source.port(), AF_INET);
    ASSERT_GE(fd, 0) << slmsock_strerror(fd);
    // Outside the in-data-mode cases the request is plain text, sent quoted: no data mode, so the fault lands in
    // framed downlink whatever the timing. ("GET\n" went in data mode; when it beat the download, the loss struck
    // the raw downlink, the known gap in docs/reliability.md, and the stream ended shifted but clean.)
    ASSERT_TRUE(write_all(fd, param.in_data_mode ? "GET /\r\n\r\n" : "GET"));
    const auto [got, error] = read_all(fd, 30s);
    const auto elapsed = ms_since(start);
    close(fd);
    std::size_t wrong = 0;
    for (std::size_t i = 0; i < got.size(); ++i) wrong += got[i] != payload[i];
    std::printf("FAULT payload-%s profile %s baud %s offset %zu: %zu bytes (%zu wrong) then errno %d after %lld ms; %s\n",
                param.kind, param.profile, param.baud, offset, got.size(), wrong, error, elapsed,
                gateway.control("stats").c_str());
    // Every byte before the fault is the far end's, in order, and the stream ends in an error, never a clean
    // end of file.
    const std::size_t before_fault = std::min(got.size(), offset);
    EXPECT_EQ(got.substr(0, before_fault), payload.substr(0, before_fault)) << whole_log(gateway);
    // Except when nothing was lost: a header whose lost bytes were its framing only (the CRLF before it, and it
    // still parsed) leaves every byte exact, and the stream then ends as the far end ended it. Where the loss
    // strikes depends on how slmsim's reads cut the stream into chunks.
    const bool nothing_lost = kind == "header" && got == payload;
    if (nothing_lost) {
        EXPECT_EQ(error, 0) << whole_log(gateway);
    } else {
        EXPECT_EQ(error, ECONNRESET) << whole_log(gateway);
    }
    if (kind == "reset") {
        // A reboot cuts the stream: nothing from the cut chunk on is delivered.
        EXPECT_LE(got.size(), offset) << "bytes past the fault were delivered";
    } else if (kind == "header") {
        // A lost header leaves its payload unannounced: never delivered, and nothing after that hole either.
        // When the lost bytes were framing only (the CRLF before a header that still parsed), nothing is
        // missing and every byte may arrive, exact.
        EXPECT_TRUE(got.size() <= offset || got == payload)
            << got.size() << " bytes, past the fault at " << offset << " and not the whole download";
    } else {
        // A loss is caught before delivery when the next message follows within the confirm gap; a payload
        // delivered on a quiet line before its successor showed the gap may carry foreign bytes (at most that
        // one chunk), and the connection is then reset at once. docs/reliability.md, "Known gaps".
        EXPECT_LE(got.size(), offset + 2048) << "more than the one chunk the loss was in";
    }
    EXPECT_NE(gateway.control("stats").find("payload_faults=1"), std::string::npos);
    if (param.in_data_mode) {
        EXPECT_NE(gateway.control("stats").find("payload_faults_in_data_mode=1"), std::string::npos);
    }

    // Served again: the modem (after a reboot, once bring-up is done) takes the next connect.
    ASSERT_TRUE(eventually([&] { return gateway.state() == "serving"; }, 20s)) << whole_log(gateway);
    LocalServer echo;
    int next = -1;
    ASSERT_TRUE(eventually(
        [&] {
            next = slmsock_tcp_connect("203.0.113.10", echo.port(), AF_INET);
            return next >= 0;
        },
        20s))
        << slmsock_strerror(next) << whole_log(gateway);
    EXPECT_TRUE(write_all(next, "next\n"));
    EXPECT_EQ(read_n(next, 5, 10s), "next\n");
    close(next);
}

// Every release: header-first (v2.3+) and data-first (v2.0-v2.2, the payload before its header).
std::vector<PayloadFaultCase> payload_fault_cases() {
    std::vector<PayloadFaultCase> cases;
    for (const char* profile :
         {"v2.0", "v2.1", "v2.2", "v2.3", "v2.4", "v2.5", "v2.6", "v2.7", "v2.8", "v2.9", "v3.0", "v3.1"}) {
        cases.push_back({profile, "reset"});
        cases.push_back({profile, "drop", "921600"});
    }
    // The report's case: v2.9 on a paced 115200 line, 2048-byte chunks.
    cases.push_back({"v2.9", "reset", "115200"});
    cases.push_back({"v2.9", "drop", "115200"});
    // Unpaced: the downlink outruns slmd, so the loss lands while AT#XTCPSEND waits for its OK. The skip after
    // the lost payload once resumed at a CRLF inside it and took the next bytes for early data-mode downlink.
    cases.push_back({"v2.5", "drop"});
    // A header's bytes lost, its payload whole (issue 15): data-first, the payload was once released as a URC
    // line, a silent hole in the stream.
    for (const char* profile : {"v2.0", "v2.2", "v2.5", "v2.9"}) cases.push_back({profile, "header", "921600"});
    // The modem reboots while the link is in data mode (issue 15): its "Ready" came as raw downlink and was
    // once handed to the program as data.
    for (const char* profile : {"v2.0", "v2.2", "v2.5", "v2.9", "v3.1"}) cases.push_back({profile, "reset", "0", true});
    cases.push_back({"v2.0", "reset", "115200", true});
    return cases;
}

INSTANTIATE_TEST_SUITE_P(EveryRelease, PayloadFaults, ::testing::ValuesIn(payload_fault_cases()),
                         [](const ::testing::TestParamInfo<PayloadFaultCase>& info) {
                             std::string name = std::string(info.param.profile) + "_" + info.param.kind +
                                                (std::string(info.param.baud) == "0" ? "" : "_" + std::string(info.param.baud)) +
                                                (info.param.in_data_mode ? "_in_data_mode" : "");
                             for (auto& c : name) c = c == '.' ? '_' : c;
                             return name;
                         });
