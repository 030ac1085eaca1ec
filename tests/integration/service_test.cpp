// slmd under the systemd service protocol, without systemd: the test plays the service manager. It listens on
// a NOTIFY_SOCKET and checks READY=1 (once the API socket listens, before the modem is up), STATUS= with the
// modem's state, WATCHDOG=1 at half of WATCHDOG_USEC and STOPPING=1 on SIGTERM; and it passes slmd a listening
// socket (systemd-socket-activate) that slmd must serve on instead of binding its own.
#include <gtest/gtest.h>

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "gateway.hpp"
#include "process.hpp"
#include "slmsock.h"

using namespace slmd::test;
using namespace std::chrono_literals;

namespace {

// The service manager's end of NOTIFY_SOCKET: an AF_UNIX datagram socket.
class NotifySocket {
public:
    explicit NotifySocket(const std::string& path) : path_(path) {
        fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
        ok_ = fd_ >= 0 && ::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
    }
    ~NotifySocket() {
        if (fd_ >= 0) ::close(fd_);
    }
    bool ok() const { return ok_; }

    // Reads datagrams until one contains `needle`; returns it. Every datagram read is kept in log().
    std::optional<std::string> wait_for(const std::string& needle, std::chrono::milliseconds timeout) {
        const auto deadline = Clock::now() + timeout;
        for (;;) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
            if (left.count() <= 0) return std::nullopt;
            pollfd pfd{fd_, POLLIN, 0};
            if (::poll(&pfd, 1, static_cast<int>(left.count())) <= 0) continue;
            char buffer[4096];
            const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
            if (n <= 0) continue;
            std::string message(buffer, static_cast<std::size_t>(n));
            log_ += message + "\n--\n";
            if (message.find(needle) != std::string::npos) return message;
        }
    }
    const std::string& log() const { return log_; }

private:
    std::string path_;
    int fd_ = -1;
    bool ok_ = false;
    std::string log_;
};

std::string empty_config(const TempDir& dir) {
    const auto path = dir / "slmd.conf";
    std::ofstream(path) << "# empty: everything from the command line\n";
    return path;
}

}  // namespace

TEST(SystemdNotify, ReadyBeforeTheModemThenStatusWatchdogAndStopping) {
    TempDir dir;
    // A slow attach: READY=1 must not wait for the modem.
    ChildProcess sim({SLMSIM_BIN, "--link", dir / "tty", "--baud", "0", "--profile", "v2.9", "--attach-delay-ms",
                      "2000"});
    ASSERT_TRUE(wait_for_path(dir / "tty", 10s)) << sim.output();
    NotifySocket notify(dir / "notify.sock");
    ASSERT_TRUE(notify.ok());
    // WATCHDOG_PID unset: sd_watchdog_enabled() then applies the watchdog to whichever process reads it.
    ChildProcess slmd({"/usr/bin/env", "NOTIFY_SOCKET=" + (dir / "notify.sock"), "WATCHDOG_USEC=200000", SLMD_BIN,
                       "--config", empty_config(dir), "--device", dir / "tty", "--api-socket", dir / "slmd.sock",
                       "--register-timeout-ms", "20000"});

    auto ready = notify.wait_for("READY=1", 10s);
    ASSERT_TRUE(ready) << notify.log() << slmd.output();
    EXPECT_NE(ready->find("STATUS=modem "), std::string::npos) << *ready;
    EXPECT_EQ(ready->find("serving"), std::string::npos) << "READY=1 waits for the socket, not the modem: " << *ready;
    EXPECT_TRUE(std::filesystem::exists(dir / "slmd.sock")) << "READY=1 before the API socket listens";

    // The state changes reach STATUS=.
    auto serving = notify.wait_for("STATUS=modem serving (SLM 2.9.0", 20s);
    ASSERT_TRUE(serving) << notify.log() << slmd.output();
    EXPECT_TRUE(slmd.wait_for_output("modem: ready", 5s)) << slmd.output();

    // Keep-alives at half of 200 ms: several arrive within a bounded wait.
    for (int i = 0; i < 3; ++i) {
        ASSERT_TRUE(notify.wait_for("WATCHDOG=1", 2s)) << "keep-alive " << i << "\n" << notify.log();
    }

    slmd.signal(SIGTERM);
    EXPECT_TRUE(notify.wait_for("STOPPING=1", 5s)) << notify.log();
    auto code = slmd.wait_exit(10s);
    ASSERT_TRUE(code) << slmd.output();
    EXPECT_EQ(*code, 0) << slmd.output();
}

TEST(SystemdNotify, NoWatchdogForAnotherPid) {
    TempDir dir;
    ChildProcess sim({SLMSIM_BIN, "--link", dir / "tty", "--baud", "0", "--profile", "v2.9"});
    ASSERT_TRUE(wait_for_path(dir / "tty", 10s)) << sim.output();
    NotifySocket notify(dir / "notify.sock");
    ASSERT_TRUE(notify.ok());
    // WATCHDOG_PID names another process (pid 1): the watchdog is not slmd's to feed.
    ChildProcess slmd({"/usr/bin/env", "NOTIFY_SOCKET=" + (dir / "notify.sock"), "WATCHDOG_USEC=200000",
                       "WATCHDOG_PID=1", SLMD_BIN, "--config", empty_config(dir), "--device", dir / "tty",
                       "--api-socket", dir / "slmd.sock", "--register-timeout-ms", "20000"});
    ASSERT_TRUE(notify.wait_for("READY=1", 10s)) << notify.log() << slmd.output();
    // Wait for a later, known message (serving) — a watchdog at 100 ms would have sent keep-alives by then.
    ASSERT_TRUE(notify.wait_for("STATUS=modem serving", 20s)) << notify.log();
    slmd.signal(SIGTERM);
    EXPECT_TRUE(notify.wait_for("STOPPING=1", 5s)) << notify.log();
    EXPECT_EQ(notify.log().find("WATCHDOG=1"), std::string::npos) << notify.log();
    EXPECT_EQ(slmd.output().find("systemd watchdog"), std::string::npos) << slmd.output();
}

TEST(SystemdNotify, WithoutSystemdNothingChanges) {
    TempDir dir;
    ChildProcess sim({SLMSIM_BIN, "--link", dir / "tty", "--baud", "0", "--profile", "v2.9"});
    ASSERT_TRUE(wait_for_path(dir / "tty", 10s)) << sim.output();
    ChildProcess slmd({"/usr/bin/env", "-u", "NOTIFY_SOCKET", "-u", "WATCHDOG_USEC", "-u", "LISTEN_FDS", SLMD_BIN,
                       "--config", empty_config(dir), "--device", dir / "tty", "--api-socket", dir / "slmd.sock",
                       "--register-timeout-ms", "20000"});
    ASSERT_TRUE(slmd.wait_for_output("modem: ready", 20s)) << slmd.output();
    slmd.signal(SIGTERM);
    auto code = slmd.wait_exit(10s);
    ASSERT_TRUE(code) << slmd.output();
    EXPECT_EQ(*code, 0) << slmd.output();
}

TEST(SystemdActivation, ServesOnThePassedSocket) {
    const char* activate = "/usr/bin/systemd-socket-activate";
    if (::access(activate, X_OK) != 0) GTEST_SKIP() << activate << " not installed (package systemd)";
    TempDir dir;
    ChildProcess sim({SLMSIM_BIN, "--link", dir / "tty", "--baud", "0", "--profile", "v2.9"});
    ASSERT_TRUE(wait_for_path(dir / "tty", 10s)) << sim.output();
    const std::string socket_path = dir / "activated.sock";
    // systemd-socket-activate binds the socket, waits for the first client, then execs slmd with LISTEN_FDS=1
    // and LISTEN_PID = its own (now slmd's) pid. --api-socket names a path that must NOT be bound.
    ChildProcess slmd({activate, "--seqpacket", "-l", socket_path, SLMD_BIN, "--config", empty_config(dir),
                       "--device", dir / "tty", "--api-socket", dir / "not-bound.sock", "--register-timeout-ms",
                       "20000"});
    ASSERT_TRUE(wait_for_path(socket_path, 10s)) << slmd.output();

    // The first client starts slmd (the connection waits in the backlog until slmd accepts it). The socket file
    // appears at bind(), a moment before systemd-socket-activate's listen(): until then a connect is refused.
    int first = -1;
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, socket_path.c_str(), sizeof address.sun_path - 1);
    int connect_error = 0;
    const bool connected = eventually([&] {
        if (first >= 0) ::close(first);
        first = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (::connect(first, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0) return true;
        connect_error = errno;
        return false;
    });
    ASSERT_TRUE(connected) << std::strerror(connect_error);
    ASSERT_TRUE(slmd.wait_for_output("api: listening on the socket passed by systemd", 10s)) << slmd.output();
    ::close(first);
    ASSERT_TRUE(slmd.wait_for_output("modem: ready", 20s)) << slmd.output();

    setenv("SLMSOCK_SOCKET", socket_path.c_str(), 1);
    struct slmsock_status status {};
    EXPECT_EQ(slmsock_status(&status), 0);
    EXPECT_STREQ(status.modem_state, "serving");
    EXPECT_STREQ(status.release, "2.9.0");
    unsetenv("SLMSOCK_SOCKET");
    EXPECT_FALSE(std::filesystem::exists(dir / "not-bound.sock"));

    slmd.signal(SIGTERM);
    auto code = slmd.wait_exit(10s);
    ASSERT_TRUE(code) << slmd.output();
    EXPECT_EQ(*code, 0) << slmd.output();
    // The socket belongs to whoever passed it: slmd leaves the path alone.
    EXPECT_TRUE(std::filesystem::exists(socket_path)) << "slmd unlinked a socket it did not create";
}

TEST(SystemdActivation, RefusesAStreamSocket) {
    const char* activate = "/usr/bin/systemd-socket-activate";
    if (::access(activate, X_OK) != 0) GTEST_SKIP() << activate << " not installed (package systemd)";
    TempDir dir;
    ChildProcess sim({SLMSIM_BIN, "--link", dir / "tty", "--baud", "0", "--profile", "v2.9"});
    ASSERT_TRUE(wait_for_path(dir / "tty", 10s)) << sim.output();
    const std::string socket_path = dir / "stream.sock";
    ChildProcess slmd({activate, "-l", socket_path, SLMD_BIN, "--config", empty_config(dir), "--device",
                       dir / "tty", "--api-socket", dir / "not-bound.sock"});
    ASSERT_TRUE(wait_for_path(socket_path, 10s)) << slmd.output();
    int first = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, socket_path.c_str(), sizeof address.sun_path - 1);
    ASSERT_EQ(::connect(first, reinterpret_cast<sockaddr*>(&address), sizeof address), 0) << std::strerror(errno);
    auto code = slmd.wait_exit(10s);
    ::close(first);
    ASSERT_TRUE(code) << slmd.output();
    EXPECT_EQ(*code, 1) << slmd.output();
    EXPECT_NE(slmd.output().find("not a listening AF_UNIX SOCK_SEQPACKET socket"), std::string::npos)
        << slmd.output();
}

// A stopping slmd removes its API socket only while the file is still the one it bound: a newer slmd that
// already took over the path (a restart racing the old process's exit, a second instance) keeps serving
// there, where the old one's unlink used to leave every client with ENETDOWN.
TEST(ApiSocket, AStoppingSlmdLeavesTheSocketOfTheSlmdThatReplacedItAlone) {
    Gateway older(GatewayOptions().with_baud("0"));
    ASSERT_TRUE(older.ready) << older.log();
    const std::string shared_path = older.dir / "slmd.sock";
    struct stat first {};
    ASSERT_EQ(stat(shared_path.c_str(), &first), 0);

    Gateway newer(GatewayOptions().with_baud("0").with_api_socket(shared_path));
    ASSERT_TRUE(newer.ready) << newer.log();
    struct stat second {};
    ASSERT_EQ(stat(shared_path.c_str(), &second), 0);
    ASSERT_NE(first.st_ino, second.st_ino);  // the newer slmd bound a socket of its own at the path

    older.slmd->signal(SIGTERM);
    ASSERT_EQ(older.slmd->wait_exit(10s), 0) << older.log();

    struct stat after {};
    ASSERT_EQ(stat(shared_path.c_str(), &after), 0) << "the older slmd removed the newer one's socket";
    EXPECT_EQ(after.st_ino, second.st_ino);
    setenv("SLMSOCK_SOCKET", shared_path.c_str(), 1);
    struct slmsock_status status {};
    ASSERT_EQ(slmsock_status(&status), 0);
    EXPECT_STREQ(status.modem_state, "serving");

    // The newer one, stopping, removes its own socket as before.
    newer.slmd->signal(SIGTERM);
    ASSERT_EQ(newer.slmd->wait_exit(10s), 0) << newer.log();
    EXPECT_NE(access(shared_path.c_str(), F_OK), 0);
}
