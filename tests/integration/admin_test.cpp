// Owns: the operators' API of the real slmd against slmsim: `at` (an administrator's command reaches the
// UART through slmd's channel and its answer comes back; refused commands never reach the UART; force sends
// them), authorisation (a non-administrator gets EACCES for at and reset but may read stats), `stats` (bytes
// of a TCP transfer counted exactly, latency sampled), `reset` (CFUN=0, #XRESET, back to serving, counted;
// EAGAIN once the recovery budget is spent), and slmctl's text, JSON and exit statuses for all of it.
// Every wait is bounded and waits on a condition (a log line, an API answer), never on a sleep.
#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json/src.hpp>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "process.hpp"
#include "slmsock.h"

using namespace slmd::test;
using namespace std::chrono_literals;
namespace json = boost::json;

namespace {

using Clock = std::chrono::steady_clock;

// A loopback echo server on its own thread.
class EchoServer {
  public:
    EchoServer() {
        fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int one = 1;
        setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address);
        listen(fd_, 8);
        socklen_t length = sizeof address;
        getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length);
        port_ = ntohs(address.sin_port);
        thread_ = std::thread([this] {
            for (;;) {
                int client = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
                if (client < 0) return;
                char buffer[4096];
                for (ssize_t n; (n = read(client, buffer, sizeof buffer)) > 0;) {
                    if (write(client, buffer, static_cast<std::size_t>(n)) != n) break;
                }
                close(client);
            }
        });
    }
    ~EchoServer() {
        shutdown(fd_, SHUT_RDWR);
        thread_.join();
        close(fd_);
    }
    std::uint16_t port() const { return port_; }

  private:
    int fd_ = -1;
    std::uint16_t port_ = 0;
    std::thread thread_;
};

// slmsim (with a byte trace) + a serving slmd.
class Gateway {
  public:
    explicit Gateway(std::vector<std::string> slmd_extra = {}) {
        sim.emplace(std::vector<std::string>{SLMSIM_BIN, "--link", dir / "tty", "--profile", "v2.9", "--baud",
                                             "0", "--control", dir / "control", "--trace", dir / "trace",
                                             "--map", "203.0.113.0/24=127.0.0.1"});
        if (!wait_for_path(dir / "tty", 10s) || !wait_for_path(dir / "control", 10s)) return;
        std::vector<std::string> argv{SLMD_BIN,       "--device",        dir / "tty",
                                      "--api-socket", dir / "slmd.sock", "--register-timeout-ms",
                                      "20000"};
        argv.insert(argv.end(), slmd_extra.begin(), slmd_extra.end());
        slmd.emplace(argv);
        ready = slmd->wait_for_output("modem: ready", 20s);
        setenv("SLMSOCK_SOCKET", (dir / "slmd.sock").c_str(), 1);
    }
    std::string log() const { return slmd->output(); }
    std::string state() {
        struct slmsock_status status {};
        if (slmsock_status(&status) != 0) return "?";
        return status.modem_state;
    }
    std::string trace() const {
        std::ifstream in(dir / "trace");
        std::stringstream text;
        text << in.rdbuf();
        return text.str();
    }

    TempDir dir;
    std::optional<ChildProcess> sim;
    std::optional<ChildProcess> slmd;
    bool ready = false;
};

std::size_t count(const std::string& text, const std::string& needle) {
    std::size_t n = 0;
    for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
    return n;
}

template <typename Predicate>
bool eventually(Predicate done, std::chrono::milliseconds limit = 10s) {
    const auto deadline = Clock::now() + limit;
    while (!done()) {
        if (Clock::now() >= deadline) return false;
        poll(nullptr, 0, 10);
    }
    return true;
}

// Reads until `want` bytes arrived, the peer closed or 10 s passed; returns what came (and the last errno).
std::string read_exactly(int fd, std::size_t want, int* error = nullptr) {
    std::string got;
    const auto deadline = Clock::now() + 10s;
    while (got.size() < want && Clock::now() < deadline) {
        pollfd pfd{fd, POLLIN, 0};
        if (poll(&pfd, 1, 200) <= 0) continue;
        char buffer[4096];
        const ssize_t n = read(fd, buffer, sizeof buffer);
        if (n < 0 && error != nullptr) *error = errno;
        if (n <= 0) break;
        got.append(buffer, static_cast<std::size_t>(n));
    }
    return got;
}

struct AtResult {
    int rc = 0;
    struct slmsock_at_answer answer {};
    std::string lines;
};

AtResult at(const char* command, bool force = false, std::uint32_t timeout_ms = 0) {
    AtResult result;
    char lines[4096];
    result.rc = slmsock_at(command, force ? 1 : 0, timeout_ms, &result.answer, lines, sizeof lines);
    result.lines = lines;
    return result;
}

struct SlmctlRun {
    int status = -1;
    std::string output;  // stdout and stderr, merged
};

SlmctlRun slmctl(std::vector<std::string> arguments) {
    arguments.insert(arguments.begin(), SLMCTL_BIN);
    ChildProcess child(arguments);
    SlmctlRun run;
    while (child.read_line(10s)) {
    }
    run.status = child.wait_exit(10s).value_or(-1);
    run.output = child.output();
    return run;
}

// Runs `body` in a child process with the given uid, gid and supplementary groups (the test runs as root).
// Returns the child's exit status: `body`'s return value, or 100+ when dropping privileges failed.
template <typename Body>
int as_user(uid_t uid, gid_t gid, std::vector<gid_t> groups, Body body) {
    const pid_t pid = fork();
    if (pid == 0) {
        if (setgroups(groups.size(), groups.data()) != 0) _exit(101);
        if (setgid(gid) != 0) _exit(102);
        if (setuid(uid) != 0) _exit(103);
        _exit(body());
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 200;
}

gid_t group_id(const char* name) {
    const group* entry = getgrnam(name);
    return entry != nullptr ? entry->gr_gid : static_cast<gid_t>(-1);
}

}  // namespace

TEST(Admin, AtCgmrReturnsTheFirmwareReleaseAndGoesOverTheUart) {
    Gateway gateway;
    ASSERT_TRUE(gateway.ready) << gateway.log();
    const auto result = at("AT+CGMR");
    ASSERT_EQ(result.rc, 0) << slmsock_strerror(result.rc) << ": " << result.lines;
    EXPECT_EQ(result.answer.final, SLMSOCK_AT_OK);
    EXPECT_EQ(result.answer.line_count, 1u);
    EXPECT_EQ(result.answer.truncated, 0);
    EXPECT_EQ(result.lines, "mfw_nrf9160_1.3.5\n");
    EXPECT_EQ(count(gateway.trace(), "AT+CGMR\\r\\n"), 1u);
    // A prefixed answer, and a read form of a guarded command (allowed without force).
    const auto version = at("AT#XSLMVER");
    ASSERT_EQ(version.rc, 0) << version.lines;
    EXPECT_EQ(version.lines.rfind("#XSLMVER: ", 0), 0u) << version.lines;
    const auto cfun = at("AT+CFUN?");
    ASSERT_EQ(cfun.rc, 0) << cfun.lines;
    EXPECT_EQ(cfun.lines, "+CFUN: 1\n");
    // The modem's ERROR is an answer, not a failure of the call.
    const auto wrong = at("AT+CGMR=7");
    ASSERT_EQ(wrong.rc, 0) << wrong.lines;
    EXPECT_NE(wrong.answer.final, SLMSOCK_AT_OK);
    EXPECT_EQ(wrong.lines, "");
    // slmd keeps serving: the answers did not disturb its own traffic.
    EXPECT_EQ(gateway.state(), "serving");
    struct slmsock_stats stats {};
    ASSERT_EQ(slmsock_stats(&stats), 0);
    EXPECT_GE(stats.at_errors, 1u);
}

TEST(Admin, ARefusedCommandNeverReachesTheUartAndForceSendsIt) {
    Gateway gateway;
    ASSERT_TRUE(gateway.ready) << gateway.log();
    const auto before = count(gateway.trace(), "AT+CEREG=5\\r\\n");  // bring-up's own
    EXPECT_EQ(before, 1u);
    for (const char* command :
         {"AT+CEREG=5", "AT+CFUN=0", "AT#XRESET", "AT#XTCPCLI=0", "AT#XUDPSEND", "ATE1"}) {
        const auto refused = at(command);
        EXPECT_EQ(refused.rc, -EPERM) << command << ": " << slmsock_strerror(refused.rc);
        EXPECT_NE(refused.lines.find("force"), std::string::npos) << refused.lines;
    }
    // Not valid command lines: refused before anything is queued.
    EXPECT_EQ(at("AT+CGMR\r").rc, -EINVAL);
    EXPECT_EQ(at("+CGMR").rc, -EINVAL);
    EXPECT_EQ(at("").rc, -EINVAL);
    auto trace = gateway.trace();
    EXPECT_EQ(count(trace, "AT+CEREG=5\\r\\n"), before);
    EXPECT_EQ(trace.find("AT+CFUN=0"), std::string::npos);
    EXPECT_EQ(trace.find("XRESET"), std::string::npos);
    EXPECT_EQ(trace.find("ATE1"), std::string::npos);
    EXPECT_EQ(trace.find("AT+CGMR"), std::string::npos);
    // With force the same command goes out, and slmd says who did it.
    const auto forced = at("AT+CEREG=5", true);
    ASSERT_EQ(forced.rc, 0) << forced.lines;
    EXPECT_EQ(forced.answer.final, SLMSOCK_AT_OK);
    EXPECT_EQ(count(gateway.trace(), "AT+CEREG=5\\r\\n"), before + 1);
    EXPECT_TRUE(gateway.slmd->wait_for_output("uid 0 forces AT+CEREG=5", 5s)) << gateway.log();
    EXPECT_EQ(gateway.state(), "serving");
}

TEST(Admin, OnlyAdministratorsMayUseAtAndResetButEveryClientReadsStats) {
    const gid_t users = group_id("users");
    const gid_t adm = group_id("adm");
    ASSERT_NE(users, static_cast<gid_t>(-1)) << "needs the group 'users'";
    ASSERT_NE(adm, static_cast<gid_t>(-1)) << "needs the group 'adm'";
    Gateway gateway({"--api-group", "users", "--admin-group", "adm"});
    ASSERT_TRUE(gateway.ready) << gateway.log();
    // The socket is 0660 root:users; its directory must let the unprivileged user through to it.
    ASSERT_EQ(chmod(gateway.dir.path().c_str(), 0711), 0);
    const std::size_t cgmr_before = count(gateway.trace(), "AT+CGMR");
    // A member of the API group, not of the admin group.
    const int user = as_user(65534, users, {users}, [] {
        struct slmsock_status status {};
        if (slmsock_status(&status) != 0) return 1;
        struct slmsock_stats stats {};
        if (slmsock_stats(&stats) != 0) return 2;
        struct slmsock_at_answer answer {};
        char lines[256];
        if (slmsock_at("AT+CGMR", 0, 0, &answer, lines, sizeof lines) != -EACCES) return 3;
        if (slmsock_at("AT+CFUN=0", 1, 0, &answer, lines, sizeof lines) != -EACCES) return 4;
        if (slmsock_reset() != -EACCES) return 5;
        return 0;
    });
    EXPECT_EQ(user, 0) << gateway.log();
    // slmctl says so with EX_NOPERM; stats works for the same user.
    const auto quiet = [] {
        const int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
    };
    EXPECT_EQ(as_user(65534, users, {users},
                      [&] {
                          quiet();
                          execl(SLMCTL_BIN, "slmctl", "at", "AT+CGMR", nullptr);
                          return 99;
                      }),
              77);
    EXPECT_EQ(as_user(65534, users, {users},
                      [&] {
                          quiet();
                          execl(SLMCTL_BIN, "slmctl", "reset", nullptr);
                          return 99;
                      }),
              77);
    EXPECT_EQ(as_user(65534, users, {users},
                      [&] {
                          quiet();
                          execl(SLMCTL_BIN, "slmctl", "--json", "stats", nullptr);
                          return 99;
                      }),
              0);
    EXPECT_EQ(count(gateway.trace(), "AT+CGMR"), cgmr_before);
    EXPECT_EQ(gateway.trace().find("AT+CFUN=0"), std::string::npos);
    EXPECT_TRUE(gateway.slmd->wait_for_output("api: refused AT from uid 65534", 5s)) << gateway.log();
    // The same user with the admin group among its supplementary groups (SO_PEERGROUPS) is an administrator.
    const int admin = as_user(65534, users, {users, adm}, [] {
        struct slmsock_at_answer answer {};
        char lines[256];
        if (slmsock_at("AT+CGMR", 0, 0, &answer, lines, sizeof lines) != 0) return 1;
        return std::strcmp(lines, "mfw_nrf9160_1.3.5\n") == 0 ? 0 : 2;
    });
    EXPECT_EQ(admin, 0) << gateway.log();
    EXPECT_EQ(count(gateway.trace(), "AT+CGMR"), cgmr_before + 1);
}

// The host-to-modem trace lines ("H>M") in order, as written.
std::vector<std::string> host_lines(const std::string& trace) {
    std::vector<std::string> out;
    std::istringstream in(trace);
    for (std::string line; std::getline(in, line);) {
        if (line.find(" H>M ") != std::string::npos) out.push_back(line);
    }
    return out;
}

std::size_t first_line_with(const std::vector<std::string>& lines, const std::string& needle,
                            std::size_t from = 0) {
    for (std::size_t i = from; i < lines.size(); ++i) {
        if (lines[i].find(needle) != std::string::npos) return i;
    }
    return lines.size();
}

TEST(Admin, AnAtCommandWaitsForTheDataModeSessionToEnd) {
    EchoServer server;
    Gateway gateway;
    ASSERT_TRUE(gateway.ready) << gateway.log();
    int fd = slmsock_tcp_connect("203.0.113.10", server.port(), AF_INET);
    ASSERT_GE(fd, 0) << slmsock_strerror(fd);
    const std::string payload(3000, 'd');  // too long to quote: the uplink goes in data mode
    ASSERT_EQ(write(fd, payload.data(), payload.size()), static_cast<ssize_t>(payload.size()));
    ASSERT_TRUE(
        eventually([&] { return gateway.trace().find("\"AT#XTCPSEND\\r\\n\"") != std::string::npos; }));
    const auto result = at("AT+CGMR");
    ASSERT_EQ(result.rc, 0) << result.lines;
    EXPECT_EQ(result.lines, "mfw_nrf9160_1.3.5\n");
    EXPECT_EQ(read_exactly(fd, payload.size()), payload);
    close(fd);
    // On the UART: the data-mode entry, the host's "+++" that ended it, and only then the command.
    const auto lines = host_lines(gateway.trace());
    const auto entered = first_line_with(lines, "\"AT#XTCPSEND\\r\\n\"");
    const auto left = first_line_with(lines, "\"+++\"", entered);
    const auto command = first_line_with(lines, "AT+CGMR");
    ASSERT_LT(entered, lines.size());
    ASSERT_LT(left, lines.size());
    EXPECT_LT(entered, left);
    EXPECT_LT(left, command);
    EXPECT_LT(command, lines.size());
}

TEST(Admin, StatsCountTheExactBytesOfATcpTransfer) {
    EchoServer server;
    Gateway gateway;
    ASSERT_TRUE(gateway.ready) << gateway.log();
    struct slmsock_stats before {};
    ASSERT_EQ(slmsock_stats(&before), 0);
    int fd = slmsock_tcp_connect("203.0.113.10", server.port(), AF_INET);
    ASSERT_GE(fd, 0) << slmsock_strerror(fd);
    std::string payload;
    for (int i = 0; i < 3000; ++i) payload += static_cast<char>('a' + i % 26);
    payload += "\r\n+++ end";  // bytes the uplink plan must handle, counted like any other
    ASSERT_EQ(write(fd, payload.data(), payload.size()), static_cast<ssize_t>(payload.size()));
    EXPECT_EQ(read_exactly(fd, payload.size()), payload);
    close(fd);
    struct slmsock_stats after {};
    // Uplink latency samples end when the last byte left for the UART: wait for them, not for a time.
    ASSERT_TRUE(eventually(
        [&] { return slmsock_stats(&after) == 0 && after.uplink.samples > before.uplink.samples; }));
    EXPECT_EQ(after.tcp_bytes_up - before.tcp_bytes_up, payload.size());
    EXPECT_EQ(after.tcp_bytes_down - before.tcp_bytes_down, payload.size());
    EXPECT_EQ(after.udp_bytes_up, before.udp_bytes_up);
    EXPECT_EQ(after.udp_bytes_down, before.udp_bytes_down);
    EXPECT_EQ(after.flows_opened - before.flows_opened, 1u);
    EXPECT_GT(after.downlink.samples, before.downlink.samples);
    EXPECT_GT(after.downlink.p50_us, 0u);
    EXPECT_GE(after.downlink.p99_us, after.downlink.p50_us);
    EXPECT_GE(after.uplink.p99_us, after.uplink.p50_us);
    EXPECT_GT(after.at_commands, before.at_commands);
    EXPECT_EQ(after.at_timeouts, 0u);
    EXPECT_EQ(after.modem_resets, 0u);
    EXPECT_GE(after.uptime_s, before.uptime_s);
}

TEST(Admin, StatsCountTheExactBytesOfAUdpExchange) {
    // A loopback UDP echo peer, reached as 203.0.113.10 through the simulated modem.
    const int peer = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in peer_address{};
    peer_address.sin_family = AF_INET;
    peer_address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(bind(peer, reinterpret_cast<sockaddr*>(&peer_address), sizeof peer_address), 0);
    socklen_t length = sizeof peer_address;
    getsockname(peer, reinterpret_cast<sockaddr*>(&peer_address), &length);
    const timeval patience{10, 0};  // the echo thread ends by itself even when the test fails early
    setsockopt(peer, SOL_SOCKET, SO_RCVTIMEO, &patience, sizeof patience);
    std::thread echo([peer] {
        char buffer[2048];
        sockaddr_in from{};
        socklen_t from_length = sizeof from;
        const ssize_t n =
            recvfrom(peer, buffer, sizeof buffer, 0, reinterpret_cast<sockaddr*>(&from), &from_length);
        if (n > 0)
            sendto(peer, buffer, static_cast<std::size_t>(n), 0, reinterpret_cast<sockaddr*>(&from),
                   from_length);
    });
    struct Joiner {
        std::thread& thread;
        ~Joiner() {
            if (thread.joinable()) thread.join();
        }
    } joiner{echo};
    Gateway gateway;
    ASSERT_TRUE(gateway.ready) << gateway.log();
    struct slmsock_stats before {};
    ASSERT_EQ(slmsock_stats(&before), 0);

    const int app = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in app_address{};
    app_address.sin_family = AF_INET;
    app_address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(bind(app, reinterpret_cast<sockaddr*>(&app_address), sizeof app_address), 0);
    length = sizeof app_address;
    getsockname(app, reinterpret_cast<sockaddr*>(&app_address), &length);
    sockaddr_in remote{};
    remote.sin_family = AF_INET;
    remote.sin_port = peer_address.sin_port;
    inet_pton(AF_INET, "203.0.113.10", &remote.sin_addr);
    std::uint16_t stand_in = 0;
    ASSERT_EQ(slmsock_udp_associate(AF_INET, ntohs(app_address.sin_port),
                                    reinterpret_cast<sockaddr*>(&remote), sizeof remote, &stand_in),
              0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(stand_in);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const std::string datagram = "one datagram of 31 bytes, exact";
    ASSERT_EQ(sendto(app, datagram.data(), datagram.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to),
              static_cast<ssize_t>(datagram.size()));
    pollfd pfd{app, POLLIN, 0};
    ASSERT_EQ(poll(&pfd, 1, 10000), 1);
    char buffer[2048];
    EXPECT_EQ(recv(app, buffer, sizeof buffer, 0), static_cast<ssize_t>(datagram.size()));
    echo.join();
    close(app);
    close(peer);
    struct slmsock_stats after {};
    ASSERT_TRUE(eventually(
        [&] { return slmsock_stats(&after) == 0 && after.uplink.samples > before.uplink.samples; }));
    EXPECT_EQ(after.udp_bytes_up - before.udp_bytes_up, datagram.size());
    EXPECT_EQ(after.udp_bytes_down - before.udp_bytes_down, datagram.size());
    EXPECT_EQ(after.udp_datagrams_up - before.udp_datagrams_up, 1u);
    EXPECT_EQ(after.udp_datagrams_down - before.udp_datagrams_down, 1u);
    EXPECT_EQ(after.tcp_bytes_up, before.tcp_bytes_up);
    EXPECT_EQ(after.downlink.samples - before.downlink.samples, 1u);
    EXPECT_EQ(after.uplink.samples - before.uplink.samples, 1u);
}

TEST(Admin, ResetGoesThroughCfun0AndXresetBackToServingAndIsRefusedOnceTheBudgetIsSpent) {
    EchoServer server;
    Gateway gateway(
        {"--recovery-max", "1", "--recovery-window-ms", "600000", "--recovery-backoff-ms", "600000"});
    ASSERT_TRUE(gateway.ready) << gateway.log();
    int open = slmsock_tcp_connect("203.0.113.10", server.port(), AF_INET);
    ASSERT_GE(open, 0) << slmsock_strerror(open);
    ASSERT_EQ(write(open, "x", 1), 1);
    ASSERT_EQ(read_exactly(open, 1), "x");

    ASSERT_EQ(slmsock_reset(), 0);
    // While the reset runs, the modem is not up for an administrator's command, and a second reset waits.
    EXPECT_EQ(at("AT+CGMR").rc, -ENETDOWN);
    const int again = slmsock_reset();
    EXPECT_TRUE(again == -EBUSY || again == -ENETDOWN) << slmsock_strerror(again);
    // The open connection is reset, not left hanging.
    int error = 0;
    EXPECT_EQ(read_exactly(open, 1, &error), "");
    EXPECT_EQ(error, ECONNRESET);
    close(open);
    ASSERT_TRUE(gateway.slmd->wait_for_output("firmware reset (administrator's request) done", 10s))
        << gateway.log();
    ASSERT_TRUE(gateway.slmd->wait_for_output("modem: ready", 20s)) << gateway.log();
    EXPECT_EQ(count(gateway.log(), "modem: ready"), 2u) << gateway.log();
    EXPECT_EQ(gateway.state(), "serving");
    // The firmware saw CFUN=0 before the reset, then the normal bring-up.
    const auto trace = gateway.trace();
    const auto off = trace.find("AT+CFUN=0\\r\\n");
    const auto reset = trace.find("AT#XRESET\\r\\n");
    ASSERT_NE(off, std::string::npos) << trace;
    ASSERT_NE(reset, std::string::npos) << trace;
    EXPECT_LT(off, reset);
    EXPECT_EQ(count(trace, "AT+CFUN=1\\r\\n"), 2u);
    EXPECT_EQ(count(trace, "AT#XRESET"), 1u);

    struct slmsock_stats stats {};
    ASSERT_EQ(slmsock_stats(&stats), 0);
    EXPECT_EQ(stats.admin_resets, 1u);
    EXPECT_EQ(stats.modem_resets, 1u);
    EXPECT_EQ(stats.recoveries, 1u);
    EXPECT_EQ(stats.recovery_backoffs, 0u);

    // recovery-max 1: the budget has no room for another bring-up, so another reset is refused up front.
    EXPECT_EQ(slmsock_reset(), -EAGAIN);
    EXPECT_EQ(count(gateway.trace(), "AT#XRESET"), 1u);
    EXPECT_EQ(gateway.state(), "serving");
    const int fd = slmsock_tcp_connect("203.0.113.10", server.port(), AF_INET);
    ASSERT_GE(fd, 0) << slmsock_strerror(fd);
    ASSERT_EQ(write(fd, "back", 4), 4);
    EXPECT_EQ(read_exactly(fd, 4), "back");
    close(fd);

    const auto refused = slmctl({"reset"});
    EXPECT_EQ(refused.status, 75) << refused.output;
    EXPECT_NE(refused.output.find("reset-loop"), std::string::npos) << refused.output;
}

TEST(Admin, SlmctlAtStatsAndResetTextJsonAndExitStatus) {
    Gateway gateway;
    ASSERT_TRUE(gateway.ready) << gateway.log();

    auto run = slmctl({"at", "AT+CGMR"});
    EXPECT_EQ(run.status, 0) << run.output;
    EXPECT_EQ(run.output, "mfw_nrf9160_1.3.5\nOK\n");

    run = slmctl({"--json", "at", "AT+CGMR"});
    ASSERT_EQ(run.status, 0) << run.output;
    auto parsed = json::parse(run.output).as_object();
    EXPECT_EQ(parsed.at("command").as_string(), "AT+CGMR");
    EXPECT_EQ(parsed.at("final").as_string(), "ok");
    EXPECT_EQ(parsed.at("result").as_string(), "OK");
    ASSERT_EQ(parsed.at("lines").as_array().size(), 1u);
    EXPECT_EQ(parsed.at("lines").as_array()[0].as_string(), "mfw_nrf9160_1.3.5");

    run = slmctl({"at", "AT+CGMR=7"});  // the modem's ERROR
    EXPECT_EQ(run.status, 1) << run.output;
    EXPECT_NE(run.output.find("ERROR"), std::string::npos) << run.output;

    run = slmctl({"at", "AT+CFUN=0"});
    EXPECT_EQ(run.status, 77) << run.output;
    EXPECT_NE(run.output.find("--force"), std::string::npos) << run.output;
    EXPECT_EQ(gateway.trace().find("AT+CFUN=0"), std::string::npos);

    run = slmctl({"at", "--force", "--timeout-ms", "5000", "AT+CEREG=5"});
    EXPECT_EQ(run.status, 0) << run.output;
    EXPECT_EQ(run.output, "OK\n");

    run = slmctl({"--json", "at", "AT+CFUN=0"});
    EXPECT_EQ(run.status, 77) << run.output;
    // stdout (the JSON) and stderr (the message) are merged in any order: take the JSON line.
    const auto json_at = run.output.find('{');
    ASSERT_NE(json_at, std::string::npos) << run.output;
    const auto json_line = run.output.substr(json_at, run.output.find('\n', json_at) - json_at);
    EXPECT_EQ(json::parse(json_line).as_object().at("error").as_string(), "EPERM") << run.output;

    run = slmctl({"at"});
    EXPECT_EQ(run.status, 2) << run.output;

    run = slmctl({"--json", "stats"});
    ASSERT_EQ(run.status, 0) << run.output;
    parsed = json::parse(run.output).as_object();
    const auto& latency = parsed.at("latency").as_object();
    EXPECT_EQ(latency.size(), 6u);
    for (const char* key : {"downlink_p50_us", "downlink_p99_us", "uplink_p50_us", "uplink_p99_us",
                            "samples_downlink", "samples_uplink"}) {
        EXPECT_TRUE(latency.contains(key)) << key;
    }
    EXPECT_TRUE(parsed.at("bytes_downlink").is_number());
    EXPECT_TRUE(parsed.at("bytes_uplink").is_number());
    EXPECT_GE(parsed.at("at_commands").to_number<std::uint64_t>(), 4u);
    EXPECT_EQ(parsed.at("admin_resets").to_number<std::uint64_t>(), 0u);

    run = slmctl({"stats"});
    EXPECT_EQ(run.status, 0) << run.output;
    EXPECT_NE(run.output.find("latency downlink:"), std::string::npos) << run.output;
    EXPECT_NE(run.output.find("modem resets:        0"), std::string::npos) << run.output;

    run = slmctl({"--json", "reset"});
    EXPECT_EQ(run.status, 0) << run.output;
    EXPECT_EQ(json::parse(run.output).as_object().at("reset").as_string(), "started");
    ASSERT_TRUE(gateway.slmd->wait_for_output("firmware reset (administrator's request) done", 10s))
        << gateway.log();
    ASSERT_TRUE(gateway.slmd->wait_for_output("modem: ready", 20s)) << gateway.log();

    run = slmctl({"--socket", gateway.dir / "absent.sock", "stats"});
    EXPECT_EQ(run.status, 69) << run.output;
    run = slmctl({"--socket", gateway.dir / "absent.sock", "at", "AT"});
    EXPECT_EQ(run.status, 69) << run.output;
}
