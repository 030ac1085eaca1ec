// Owns: fault recovery of the real slmd against slmsim's fault injection, with measured recovery times: a
// modem reset with an idle connection and in the middle of a transfer, registration loss, noise on the line
// between commands, the serial device vanishing and coming back (idle and mid-transfer), and slmd killed
// (SIGKILL) and restarted while the firmware still holds its proxy (in command mode and in data mode). Each
// test checks the state slmd reaches (slmsock_status), the errno the app sees, and that recovery finishes
// within a generous hang guard, and prints one "RECOVERY <fault> <milliseconds>" line so the figures can be
// quoted (docs/design.md). Every wait is on a condition with a deadline, never a sleep. (The reset without
// connections, the recovery budget and registration loss without a connection are in lifecycle_test.cpp.)
#include <gtest/gtest.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <thread>

#include "gateway.hpp"
#include "slmsock.h"

using namespace slmd::test;
using namespace std::chrono_literals;

namespace {

// Generous: a hang guard, not a performance assertion (CI machines are slow and shared).
constexpr auto recovery_guard = 30s;

// Prints the parsable figure and checks the hang guard.
void report(const char* fault, Clock::time_point since) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - since).count();
    std::printf("RECOVERY %s %lld\n", fault, static_cast<long long>(ms));
    std::fflush(stdout);
    EXPECT_LT(ms, std::chrono::duration_cast<std::chrono::milliseconds>(recovery_guard).count()) << fault;
}

// A new connection through the modem carries one round trip, byte for byte.
void expect_echo(const LocalServer& server, const std::string& ping = "ping after recovery\r\n") {
    const int fd = slmsock_tcp_connect("203.0.113.10", server.port(), AF_INET);
    ASSERT_GE(fd, 0) << slmsock_strerror(fd);
    EXPECT_TRUE(write_all(fd, ping));
    EXPECT_EQ(read_n(fd, ping.size(), 10s), ping);
    close(fd);
}

// A connect through slmd while it cannot serve: refused at once with ENETDOWN.
void expect_enetdown(const LocalServer& server) {
    const int fd = slmsock_tcp_connect("203.0.113.10", server.port(), AF_INET);
    EXPECT_EQ(fd, -ENETDOWN) << (fd < 0 ? slmsock_strerror(fd) : "connected");
    if (fd >= 0) close(fd);
}

// Waits until the app's socket fails and returns the errno of the failing read (0 for EOF).
int app_error(int fd, std::chrono::milliseconds limit = 15s) {
    const auto deadline = Clock::now() + limit;
    char buffer[4096];
    while (Clock::now() < deadline) {
        pollfd pfd{fd, POLLIN, 0};
        if (poll(&pfd, 1, 100) <= 0) continue;
        const ssize_t n = read(fd, buffer, sizeof buffer);
        if (n < 0) return errno;
        if (n == 0) return 0;
    }
    return ETIME;  // still alive: the test fails on this value
}

// A bulk echo transfer through the modem: one thread writes `total` bytes of a pattern as fast as the link
// takes them, the test thread counts what comes back. The writer stops early at the first error (the fault).
class Transfer {
  public:
    explicit Transfer(const LocalServer& server, std::size_t total = 64 * 1024) : total_(total) {
        fd_ = slmsock_tcp_connect("203.0.113.10", server.port(), AF_INET);
        if (fd_ < 0) return;
        writer_ = std::thread([this, total] {
            std::string chunk(1024, '\0');
            for (std::size_t i = 0; i < chunk.size(); ++i) chunk[i] = static_cast<char>('a' + i % 26);
            for (std::size_t sent = 0; sent < total && !stop_; sent += chunk.size()) {
                // MSG_NOSIGNAL: the reset must show up as an errno here, not as SIGPIPE killing the test.
                const ssize_t n = send(fd_, chunk.data(), chunk.size(), MSG_NOSIGNAL);
                if (n < 0) {
                    write_errno_ = errno;
                    break;
                }
                accepted_ += static_cast<std::size_t>(n);
            }
            writer_done_ = true;
        });
    }
    ~Transfer() {
        stop_ = true;
        if (fd_ >= 0) shutdown(fd_, SHUT_RDWR);
        if (writer_.joinable()) writer_.join();
        if (fd_ >= 0) close(fd_);
    }
    int fd() const { return fd_; }
    // Reads the echo until at least `bytes` came back (the transfer is really flowing).
    bool flowing(std::size_t bytes) {
        const auto deadline = Clock::now() + 15s;
        char buffer[8192];
        while (received_ < bytes && Clock::now() < deadline) {
            pollfd pfd{fd_, POLLIN, 0};
            if (poll(&pfd, 1, 100) <= 0) continue;
            const ssize_t n = read(fd_, buffer, sizeof buffer);
            if (n <= 0) return false;
            received_ += static_cast<std::size_t>(n);
        }
        return received_ >= bytes;
    }
    // Reads the echo to its end, counting it; the errno of the read that ended it (0 for EOF, ETIME if none).
    int read_to_end(std::chrono::milliseconds limit = 15s) {
        const auto deadline = Clock::now() + limit;
        char buffer[8192];
        while (Clock::now() < deadline) {
            pollfd pfd{fd_, POLLIN, 0};
            if (poll(&pfd, 1, 100) <= 0) continue;
            const ssize_t n = read(fd_, buffer, sizeof buffer);
            if (n < 0) return errno;
            if (n == 0) return 0;
            received_ += static_cast<std::size_t>(n);
        }
        return ETIME;
    }
    // Waits until the writer stopped: every byte written, or a failed send.
    bool writer_stopped(std::chrono::milliseconds limit = 15s) {
        return eventually([&] { return writer_done_.load(); }, limit);
    }
    std::size_t total() const { return total_; }
    std::size_t accepted() const { return accepted_; }  // bytes the kernel took from the writer
    int write_errno() const { return write_errno_; }
    std::size_t received() const { return received_; }  // echoed bytes read: they reached the far end

  private:
    std::size_t total_ = 0;
    std::atomic<std::size_t> accepted_{0};
    std::atomic<int> write_errno_{0};
    std::atomic<bool> writer_done_{false};
    int fd_ = -1;
    std::size_t received_ = 0;
    std::atomic<bool> stop_{false};
    std::thread writer_;
};

}  // namespace

TEST(Recovery, ModemResetWithAnIdleConnection) {
    LocalServer server;
    // A 1 s registration keeps the bring-up window wide enough to see ENETDOWN in it on a loaded machine.
    Gateway gateway(GatewayOptions().sim({"--attach-delay-ms", "1000"}));
    ASSERT_TRUE(gateway.ready) << gateway.log();
    const int idle = slmsock_tcp_connect("203.0.113.10", server.port(), AF_INET);
    ASSERT_GE(idle, 0) << slmsock_strerror(idle);
    ASSERT_TRUE(write_all(idle, "x"));
    ASSERT_EQ(read_n(idle, 1), "x");
    const auto fault = Clock::now();
    ASSERT_EQ(gateway.control("reset"), "ok");
    EXPECT_EQ(app_error(idle), ECONNRESET) << gateway.log();
    close(idle);
    ASSERT_TRUE(gateway.slmd->wait_for_output("modem: recovery 1 (", 10s)) << gateway.log();
    EXPECT_NE(gateway.state(), "serving");
    expect_enetdown(server);
    ASSERT_TRUE(gateway.slmd->wait_for_output("modem: ready", recovery_guard)) << gateway.log();
    EXPECT_EQ(gateway.state(), "serving");
    expect_echo(server);
    report("modem-reset-idle", fault);
}

// In data mode the firmware's "Ready" cannot be told from payload (docs/at-framer.md): the reset shows up
// when slmd's "+++" goes unconfirmed, which makes slmd start over as after a reset.
TEST(Recovery, ModemResetInTheMiddleOfATransfer) {
    LocalServer server;
    Gateway gateway;
    ASSERT_TRUE(gateway.ready) << gateway.log();
    Transfer transfer(server);
    ASSERT_GE(transfer.fd(), 0) << slmsock_strerror(transfer.fd());
    ASSERT_TRUE(transfer.flowing(16 * 1024)) << gateway.log();
    const auto fault = Clock::now();
    ASSERT_EQ(gateway.control("reset"), "ok");
    EXPECT_EQ(app_error(transfer.fd()), ECONNRESET) << gateway.log();
    ASSERT_TRUE(gateway.slmd->wait_for_output("modem: recovery 1 (", 10s)) << gateway.log();
    ASSERT_TRUE(gateway.slmd->wait_for_output("modem: ready", recovery_guard)) << gateway.log();
    EXPECT_EQ(gateway.state(), "serving");
    expect_echo(server);
    report("modem-reset-transfer", fault);
}

TEST(Recovery, RegistrationLossWithAnIdleConnection) {
    LocalServer server;
    Gateway gateway;
    ASSERT_TRUE(gateway.ready) << gateway.log();
    const int idle = slmsock_tcp_connect("203.0.113.10", server.port(), AF_INET);
    ASSERT_GE(idle, 0) << slmsock_strerror(idle);
    ASSERT_TRUE(write_all(idle, "x"));
    ASSERT_EQ(read_n(idle, 1), "x");
    ASSERT_EQ(gateway.control("detach"), "ok");
    // The firmware drops the connection with the network (-104, which cannot tell FIN from RST): the app's
    // stream ends or is reset.
    const int seen = app_error(idle);
    EXPECT_TRUE(seen == 0 || seen == ECONNRESET) << std::strerror(seen) << "\n" << gateway.log();
    close(idle);
    ASSERT_TRUE(gateway.slmd->wait_for_output("registration lost", 10s)) << gateway.log();
    EXPECT_EQ(gateway.state(), "deregistered");
    expect_enetdown(server);
    const auto back = Clock::now();
    ASSERT_EQ(gateway.control("attach"), "ok");
    ASSERT_TRUE(gateway.slmd->wait_for_output("modem: serving again", recovery_guard)) << gateway.log();
    EXPECT_EQ(gateway.state(), "serving");
    expect_echo(server);
    report("detach-attach", back);
    // Registration loss is not a reset: no recovery, no second bring-up.
    EXPECT_EQ(gateway.log().find("modem: recovery"), std::string::npos) << gateway.log();
}

// Registration lost while an upload holds the link in data mode. The firmware drops the +CEREG URC there
// (reference section 1: modem URCs are dropped in data mode, not held), and the network loss breaks its TCP
// socket: v2.9 writes a raw "+++", slmd answers "+++", the firmware says #XDATAMODE: -104. slmd must read
// the registration again after that exit (AT+CEREG?), and must not enter data mode again for the connection that
// is gone (v2.9 enters it even unconnected, which held the link there with the slot's AT#XTCPCLI=0 queued behind
// it: every later connect timed out, also after the network was back).
void registration_loss_in_the_middle_of_a_transfer(const std::string& profile) {
    LocalServer server;
    Gateway gateway(GatewayOptions().with_profile(profile));
    ASSERT_TRUE(gateway.ready) << gateway.log();
    Transfer transfer(server);
    ASSERT_GE(transfer.fd(), 0) << slmsock_strerror(transfer.fd());
    ASSERT_TRUE(transfer.flowing(16 * 1024)) << gateway.log();
    ASSERT_TRUE(eventually([&] { return gateway.control("state").find("mode=data") != std::string::npos; }))
        << gateway.control("state");
    const auto fault = Clock::now();
    ASSERT_EQ(gateway.control("detach"), "ok");
    // The firmware reports the loss as -104, the same as a peer's close (docs/data-path.md): the echo ends with
    // EOF or ECONNRESET, and the writer's bytes that did not arrive are an error for it.
    const int seen = transfer.read_to_end();
    EXPECT_TRUE(seen == 0 || seen == ECONNRESET) << std::strerror(seen) << "\n" << gateway.log();
    ASSERT_TRUE(transfer.writer_stopped()) << "the writer neither finished nor failed\n" << gateway.log();
    // No silent loss: what the kernel took from the writer came back (so it reached the far end), or the
    // program was told (a failed send, or a read that failed instead of ending).
    if (transfer.received() < transfer.accepted()) {
        EXPECT_TRUE(transfer.write_errno() != 0 || seen == ECONNRESET)
            << "accepted " << transfer.accepted() << ", echoed " << transfer.received() << ", read ended with "
            << std::strerror(seen);
    }
    std::printf("FAULT registration-loss-upload %s accepted=%zu echoed=%zu write_errno=%s read=%s\n",
                profile.c_str(), transfer.accepted(), transfer.received(), std::strerror(transfer.write_errno()),
                seen == 0 ? "EOF" : std::strerror(seen));
    ASSERT_TRUE(eventually([&] { return gateway.state() == "deregistered"; })) << gateway.state() << "\n"
                                                                               << gateway.log();
    report(("detach-transfer-to-deregistered-" + profile).c_str(), fault);
    const auto uplink = gateway.uplink_trace();
    const auto reread = uplink.rfind("AT+CEREG?\r\n");
    EXPECT_TRUE(reread != std::string::npos && reread > uplink.find("AT#XTCPSEND\r\n"))
        << "the registration read again after the data-mode exit";
    expect_enetdown(server);
    const auto back = Clock::now();
    ASSERT_EQ(gateway.control("attach"), "ok");
    ASSERT_TRUE(gateway.slmd->wait_for_output("modem: serving again", recovery_guard)) << gateway.log();
    EXPECT_EQ(gateway.state(), "serving");
    expect_echo(server);
    report(("detach-attach-transfer-" + profile).c_str(), back);
    // Registration loss is not a reset: no recovery, no second bring-up.
    EXPECT_EQ(gateway.log().find("modem: recovery"), std::string::npos) << gateway.log();
}

// v2.7+: a raw "+++" from the firmware, answered with ours, then #XDATAMODE: -104.
TEST(Recovery, RegistrationLossInTheMiddleOfATransfer) { registration_loss_in_the_middle_of_a_transfer("v2.9"); }
// v2.5/v2.6: "#XTCPCLI: -104,"disconnected"" inside the downlink, null mode until our "+++".
TEST(Recovery, RegistrationLossInTheMiddleOfATransferOnV25) { registration_loss_in_the_middle_of_a_transfer("v2.5"); }
// v2.1-v2.4: the firmware leaves data mode by itself with #XDATAMODE: -104.
TEST(Recovery, RegistrationLossInTheMiddleOfATransferOnV24) { registration_loss_in_the_middle_of_a_transfer("v2.4"); }

TEST(Recovery, NoiseOnTheLineBetweenCommandsIsIgnored) {
    LocalServer server;
    Gateway gateway;
    ASSERT_TRUE(gateway.ready) << gateway.log();
    expect_echo(server);
    // Glitch bytes, a stray final result and a stray CR LF: nothing a command is waiting for.
    const auto fault = Clock::now();
    ASSERT_EQ(gateway.control("noise 00 ff 7f 0d 0a 4f 4b 0d 0a 0d 0a 45 52 52 4f 52 0d 0a 41 0d"), "ok");
    ASSERT_TRUE(eventually([&] {
        return gateway.control("stats").find("noise_bytes=20") != std::string::npos;
    })) << gateway.control("stats");
    EXPECT_EQ(gateway.state(), "serving");
    expect_echo(server, "after the noise\r\n");
    expect_echo(server, "and again\r\n");
    report("noise", fault);
    EXPECT_EQ(gateway.log().find("modem: recovery"), std::string::npos) << gateway.log();
    EXPECT_EQ(count(gateway.log(), "modem: ready"), 1u) << gateway.log();
}

TEST(Recovery, SerialDeviceVanishesAndComesBack) {
    LocalServer server;
    Gateway gateway;
    ASSERT_TRUE(gateway.ready) << gateway.log();
    const int idle = slmsock_tcp_connect("203.0.113.10", server.port(), AF_INET);
    ASSERT_GE(idle, 0) << slmsock_strerror(idle);
    ASSERT_TRUE(write_all(idle, "x"));
    ASSERT_EQ(read_n(idle, 1), "x");
    // The USB-serial adapter goes away under an open connection...
    const auto fault = Clock::now();
    ASSERT_EQ(gateway.control("close-link"), "ok");
    ASSERT_TRUE(gateway.slmd->wait_for_output("serial: lost", 10s)) << gateway.log();
    EXPECT_EQ(app_error(idle), ECONNRESET) << gateway.log();
    close(idle);
    EXPECT_TRUE(eventually([&] {
        const auto state = gateway.state();
        return state != "serving" && state != "?";
    })) << gateway.state();
    expect_enetdown(server);
    // ...and comes back: slmd reopens it, brings the modem up again (the firmware kept its state, so the
    // connection it still holds is closed as an orphan) and serves.
    EXPECT_EQ(gateway.control("reopen").rfind("ok", 0), 0u);
    ASSERT_TRUE(gateway.slmd->wait_for_output("is back", recovery_guard)) << gateway.log();
    ASSERT_TRUE(gateway.slmd->wait_for_output("modem: ready", recovery_guard)) << gateway.log();
    EXPECT_EQ(gateway.state(), "serving");
    expect_echo(server);
    report("serial-loss", fault);
}

// The firmware keeps its state over a serial loss, so the link is still in data mode when the device comes
// back: the bring-up's "AT" is payload to it until slmd sends "+++".
TEST(Recovery, SerialDeviceVanishesInTheMiddleOfATransfer) {
    LocalServer server;
    Gateway gateway;
    ASSERT_TRUE(gateway.ready) << gateway.log();
    Transfer transfer(server);
    ASSERT_GE(transfer.fd(), 0) << slmsock_strerror(transfer.fd());
    ASSERT_TRUE(transfer.flowing(16 * 1024)) << gateway.log();
    const auto fault = Clock::now();
    ASSERT_EQ(gateway.control("close-link"), "ok");
    ASSERT_TRUE(gateway.slmd->wait_for_output("serial: lost", 10s)) << gateway.log();
    EXPECT_EQ(app_error(transfer.fd()), ECONNRESET) << gateway.log();
    EXPECT_EQ(gateway.control("reopen").rfind("ok", 0), 0u);
    ASSERT_TRUE(gateway.slmd->wait_for_output("modem: ready", recovery_guard)) << gateway.log();
    EXPECT_EQ(gateway.state(), "serving");
    expect_echo(server);
    report("serial-loss-transfer", fault);
}

TEST(Recovery, SlmdKilledWithAProxyOpenReconcilesTheOrphanAfterRestart) {
    LocalServer server;
    Gateway gateway;
    ASSERT_TRUE(gateway.ready) << gateway.log();
    const int held = slmsock_tcp_connect("203.0.113.10", server.port(), AF_INET);
    ASSERT_GE(held, 0) << slmsock_strerror(held);
    ASSERT_TRUE(write_all(held, "held"));
    ASSERT_EQ(read_n(held, 4), "held");
    // The firmware holds the connection in command mode when slmd dies.
    ASSERT_TRUE(eventually([&] {
        const auto state = gateway.control("state");
        return state.find("tcp=client") != std::string::npos &&
               state.find("mode=command") != std::string::npos;
    })) << gateway.control("state");
    const auto fault = Clock::now();
    gateway.slmd->signal(SIGKILL);
    ASSERT_TRUE(gateway.slmd->wait_exit(10s));
    // The kernel closes slmd's end of the app's socket: the app sees the end of the stream.
    const int seen = app_error(held);
    EXPECT_TRUE(seen == 0 || seen == ECONNRESET) << std::strerror(seen);
    close(held);
    // Without slmd, libslmsock refuses at once.
    expect_enetdown(server);
    EXPECT_EQ(gateway.state(), "?");
    EXPECT_NE(gateway.control("state").find("tcp=client"), std::string::npos) << "the orphan is still open";
    ASSERT_TRUE(gateway.start_slmd()) << gateway.log();
    // The new slmd reads the firmware's proxies and closes the one nobody owns.
    ASSERT_TRUE(gateway.slmd->wait_for_output("closing a TCPCLI proxy the firmware kept from before", 10s))
        << gateway.log();
    EXPECT_TRUE(eventually([&] { return gateway.control("state").find("tcp=none") != std::string::npos; }))
        << gateway.control("state");
    const auto uplink = gateway.uplink_trace();
    const auto read_form = uplink.rfind("AT#XTCPCLI?\r\n");
    ASSERT_NE(read_form, std::string::npos) << "the read form";
    EXPECT_NE(uplink.find("AT#XTCPCLI=0\r\n", read_form), std::string::npos)
        << "the orphan's close, after the read";
    EXPECT_EQ(gateway.state(), "serving");
    expect_echo(server);
    report("slmd-restart", fault);
}

// A modem that rebooted while slmd was writing a payload takes the rest of it for a command; one odd '"' among
// those bytes leaves SLM's parser inside a quoted string, where it ignores every CR LF (the firmware's rule, no
// escape), so no "AT" is ever answered. Here the bytes come from a process that held the line before slmd:
// bring-up gets no answer, "+++" does not help, and the quote closer does.
TEST(Recovery, AFirmwareParserStuckInsideQuotesIsFreed) {
    LocalServer server;
    Gateway gateway;
    ASSERT_TRUE(gateway.ready) << gateway.log();
    gateway.slmd->signal(SIGKILL);
    ASSERT_TRUE(gateway.slmd->wait_exit(10s));
    {
        const int tty = open((gateway.dir / "tty").c_str(), O_RDWR | O_NOCTTY | O_CLOEXEC);
        ASSERT_GE(tty, 0) << std::strerror(errno);
        const std::string payload = "\"\x00\r\nOK\r\nAT\r\n";  // one quote, then line ends it hides
        ASSERT_EQ(write(tty, payload.data(), payload.size()), static_cast<ssize_t>(payload.size()));
        close(tty);
    }
    ASSERT_TRUE(gateway.start_slmd()) << gateway.log();
    EXPECT_NE(gateway.log().find("in case the firmware's parser is inside quotes"), std::string::npos)
        << gateway.log();
    EXPECT_EQ(gateway.state(), "serving");
    expect_echo(server);
}

TEST(Recovery, SlmdKilledInTheMiddleOfATransferLeavesDataModeAfterRestart) {
    LocalServer server;
    Gateway gateway;
    ASSERT_TRUE(gateway.ready) << gateway.log();
    Clock::time_point fault;
    {
        Transfer transfer(server);
        ASSERT_GE(transfer.fd(), 0) << slmsock_strerror(transfer.fd());
        ASSERT_TRUE(transfer.flowing(16 * 1024)) << gateway.log();
        ASSERT_TRUE(eventually([&] {
            return gateway.control("state").find("mode=data") != std::string::npos;
        })) << gateway.control("state");
        fault = Clock::now();
        gateway.slmd->signal(SIGKILL);
        ASSERT_TRUE(gateway.slmd->wait_exit(10s));
    }
    // The firmware is still in data mode, holding the connection: the new slmd's "AT" is payload to it.
    EXPECT_NE(gateway.control("state").find("mode=data"), std::string::npos) << gateway.control("state");
    ASSERT_TRUE(gateway.start_slmd()) << gateway.log();
    EXPECT_NE(gateway.log().find("in case the firmware is still in data mode"), std::string::npos)
        << gateway.log();
    ASSERT_TRUE(gateway.slmd->wait_for_output("closing a TCPCLI proxy the firmware kept from before", 10s))
        << gateway.log();
    EXPECT_TRUE(eventually([&] { return gateway.control("state").find("tcp=none") != std::string::npos; }))
        << gateway.control("state");
    EXPECT_EQ(gateway.state(), "serving");
    expect_echo(server);
    report("slmd-restart-transfer", fault);
}
