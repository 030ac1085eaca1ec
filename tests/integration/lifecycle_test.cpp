// The modem lifecycle of the real slmd against slmsim: the graceful stop (SIGTERM -> AT+CFUN=0 -> exit 0),
// recovery from a modem reset while serving (counted), the recovery budget (resets beyond it make slmd back off
// instead of bringing the modem up again), and registration loss and return (ENETDOWN while deregistered).
// Every wait is bounded and waits on a condition (a log line, a control-socket answer), never on a sleep.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "gateway.hpp"
#include "slmsock.h"

using namespace slmd::test;
using namespace std::chrono_literals;

namespace {

// Connects through slmd to the echo server and checks one round trip, byte for byte.
void expect_echo(const LocalServer& server) {
    int fd = slmsock_tcp_connect("203.0.113.10", server.port(), AF_INET);
    ASSERT_GE(fd, 0) << slmsock_strerror(fd);
    const std::string ping = "ping after recovery\r\n+++";
    ASSERT_EQ(write(fd, ping.data(), ping.size()), static_cast<ssize_t>(ping.size()));
    std::string echoed;
    const auto deadline = Clock::now() + 10s;
    while (echoed.size() < ping.size() && Clock::now() < deadline) {
        pollfd pfd{fd, POLLIN, 0};
        if (poll(&pfd, 1, 200) <= 0) continue;
        char buffer[256];
        ssize_t n = read(fd, buffer, sizeof buffer);
        if (n <= 0) break;
        echoed.append(buffer, static_cast<std::size_t>(n));
    }
    EXPECT_EQ(echoed, ping);
    close(fd);
}

}  // namespace

TEST(Lifecycle, SigtermSwitchesTheRadioOffWithCfun0AndExitsZero) {
    Gateway gateway(GatewayOptions().with_baud("0"));
    ASSERT_TRUE(gateway.ready) << gateway.log();
    EXPECT_NE(gateway.control("state").find("cfun=1"), std::string::npos);
    const auto signalled = Clock::now();
    gateway.slmd->signal(SIGTERM);
    auto code = gateway.slmd->wait_exit(10s);
    const auto took = Clock::now() - signalled;
    ASSERT_TRUE(code) << "slmd did not exit\n" << gateway.log();
    EXPECT_EQ(*code, 0) << gateway.log();
    EXPECT_LT(took, 6s) << "the stop is bounded by stop-timeout-ms (5 s)";
    EXPECT_NE(gateway.log().find("stopping on signal 15"), std::string::npos) << gateway.log();
    EXPECT_NE(gateway.log().find("modem: radio off (AT+CFUN=0 OK"), std::string::npos) << gateway.log();
    // The firmware saw it: the simulator is still running and in CFUN=0, and its trace has the command.
    const auto state = gateway.control("state");
    EXPECT_NE(state.find("cfun=0"), std::string::npos) << state;
    const auto trace = gateway.trace();
    EXPECT_NE(trace.find("AT+CFUN=0\\r\\n"), std::string::npos) << trace.substr(trace.size() > 2000 ? trace.size() - 2000 : 0);
    EXPECT_EQ(trace.find("XRESET"), std::string::npos) << "slmd must never reset the modem";
}

TEST(Lifecycle, SigtermWithASilentModemIsBoundedByTheStopTimeout) {
    Gateway gateway(GatewayOptions().with_baud("0").daemon({"--stop-timeout-ms", "700"}));
    ASSERT_TRUE(gateway.ready) << gateway.log();
    EXPECT_EQ(gateway.control("hang"), "ok");
    const auto signalled = Clock::now();
    gateway.slmd->signal(SIGTERM);
    auto code = gateway.slmd->wait_exit(10s);
    const auto took = Clock::now() - signalled;
    ASSERT_TRUE(code) << gateway.log();
    EXPECT_EQ(*code, 0) << gateway.log();
    EXPECT_GE(took, 600ms) << gateway.log();
    EXPECT_LT(took, 4s) << gateway.log();
    EXPECT_NE(gateway.log().find("modem: radio off (AT+CFUN=0 unanswered after 700 ms)"), std::string::npos)
        << gateway.log();
}

TEST(Lifecycle, ModemResetWhileServingIsRecoveredAndCounted) {
    LocalServer server;
    Gateway gateway(GatewayOptions().with_baud("0"));
    ASSERT_TRUE(gateway.ready) << gateway.log();
    expect_echo(server);
    EXPECT_EQ(gateway.control("reset"), "ok");
    ASSERT_TRUE(gateway.slmd->wait_for_output("modem: recovery 1 (1 within 600 s, budget 5)", 10s)) << gateway.log();
    ASSERT_TRUE(gateway.slmd->wait_for_output("modem: ready", 20s)) << gateway.log();
    EXPECT_NE(gateway.log().find("firmware rebooted (Ready) while serving: 1 reboot(s) within 600 s, 1 in total"),
              std::string::npos)
        << gateway.log();
    EXPECT_EQ(count(gateway.log(), "modem: ready"), 2u) << gateway.log();
    EXPECT_EQ(gateway.state(), "serving");
    expect_echo(server);
    EXPECT_NE(gateway.control("stats").find("resets=1"), std::string::npos) << gateway.control("stats");
}

TEST(Lifecycle, ResetsBeyondTheRecoveryBudgetBackOffInsteadOfBringingUpAgain) {
    Gateway gateway(GatewayOptions().with_baud("0").daemon({"--recovery-max", "2", "--recovery-window-ms", "60000", "--recovery-backoff-ms", "60000"}));
    ASSERT_TRUE(gateway.ready) << gateway.log();
    for (int recovery = 1; recovery <= 2; ++recovery) {
        EXPECT_EQ(gateway.control("reset"), "ok");
        ASSERT_TRUE(gateway.slmd->wait_for_output("modem: recovery " + std::to_string(recovery) + " (", 10s))
            << gateway.log();
        ASSERT_TRUE(gateway.slmd->wait_for_output("modem: ready", 20s)) << gateway.log();
    }
    EXPECT_EQ(gateway.control("reset"), "ok");
    ASSERT_TRUE(gateway.slmd->wait_for_output(
        "modem: recovery budget spent (2 recoveries within 60 s); backing off for 60 s", 10s))
        << gateway.log();
    EXPECT_TRUE(eventually([&] { return gateway.state() == "backing off"; })) << gateway.state();
    // Backing off means no bring-up: the modem stays in CFUN=0 and no third recovery started.
    EXPECT_NE(gateway.control("state").find("cfun=0"), std::string::npos) << gateway.control("state");
    EXPECT_EQ(count(gateway.log(), "modem: ready"), 3u) << gateway.log();
    EXPECT_EQ(gateway.log().find("modem: recovery 3"), std::string::npos) << gateway.log();
    // Another firmware reboot while backing off is counted and logged, and adds nothing of slmd's own.
    EXPECT_EQ(gateway.control("reset"), "ok");
    ASSERT_TRUE(gateway.slmd->wait_for_output("while backing off: 4 reboot(s) within 60 s, 4 in total", 10s))
        << gateway.log();
    EXPECT_EQ(gateway.state(), "backing off");
    // A stop while backing off is still graceful and prompt.
    gateway.slmd->signal(SIGTERM);
    auto code = gateway.slmd->wait_exit(10s);
    ASSERT_TRUE(code) << gateway.log();
    EXPECT_EQ(*code, 0) << gateway.log();
    EXPECT_EQ(count(gateway.log(), "modem: ready"), 3u) << gateway.log();
    EXPECT_EQ(gateway.trace().find("XRESET"), std::string::npos);
}

TEST(Lifecycle, RegistrationLossFailsNewConnectsWithEnetdownUntilAttachedAgain) {
    LocalServer server;
    Gateway gateway(GatewayOptions().with_baud("0"));
    ASSERT_TRUE(gateway.ready) << gateway.log();
    EXPECT_EQ(gateway.control("detach"), "ok");
    ASSERT_TRUE(gateway.slmd->wait_for_output("registration lost", 10s)) << gateway.log();
    EXPECT_EQ(gateway.state(), "deregistered");
    const auto asked = Clock::now();
    const int refused = slmsock_tcp_connect("203.0.113.10", server.port(), AF_INET);
    EXPECT_EQ(refused, -ENETDOWN) << (refused < 0 ? slmsock_strerror(refused) : "connected");
    if (refused >= 0) close(refused);
    EXPECT_LT(Clock::now() - asked, 2s);
    // Refused by slmd itself: the firmware was never asked to connect while deregistered.
    EXPECT_EQ(gateway.trace().find("AT#XTCPCLI=1"), std::string::npos);
    EXPECT_EQ(gateway.control("attach"), "ok");
    ASSERT_TRUE(gateway.slmd->wait_for_output("modem: serving again (registered (home), 10.0.0.2)", 10s))
        << gateway.log();
    EXPECT_EQ(gateway.state(), "serving");
    expect_echo(server);
    // Registration loss is not a reset: no recovery, no second bring-up.
    EXPECT_EQ(gateway.log().find("modem: recovery"), std::string::npos) << gateway.log();
    EXPECT_EQ(count(gateway.log(), "modem: ready"), 1u) << gateway.log();
}
