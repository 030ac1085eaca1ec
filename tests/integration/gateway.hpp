// Owns: the shared integration-test gateway: slmsim on a temporary pty (control socket, byte trace,
// test-address maps) with a serving slmd in front of it, the reader of slmsim's byte trace, a loopback TCP
// server to reach through the modem, and the bounded waits and socket helpers every gateway test needs. One
// copy, so a change to how the pair is started (an option, a wait) reaches every test at once.
#pragma once

#include <poll.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <mutex>
#include <thread>
#include <vector>

#include "process.hpp"

namespace slmd::test {

using Clock = std::chrono::steady_clock;

// The line rate most tests use: fast enough to keep the suite short, paced like a real UART.
inline constexpr const char* fast_baud = "921600";

// How to start the pair; the setters chain: GatewayOptions().with_profile("v2.4").sim({"--hosts", path}).
struct GatewayOptions {
    std::string profile = "v2.9";
    // slmsim's --baud; "0" is unpaced (slmd is then told 115200, the rate slmsim computes its time limits
    // for).
    std::string baud = fast_baud;
    std::vector<std::string> sim_extra;   // more slmsim arguments
    std::vector<std::string> slmd_extra;  // more slmd arguments
    std::string api_socket;               // slmd's --api-socket; empty: slmd.sock in the gateway's directory

    GatewayOptions& with_profile(std::string value) {
        profile = std::move(value);
        return *this;
    }
    GatewayOptions& with_baud(std::string value) {
        baud = std::move(value);
        return *this;
    }
    GatewayOptions& sim(const std::vector<std::string>& arguments) {
        sim_extra.insert(sim_extra.end(), arguments.begin(), arguments.end());
        return *this;
    }
    GatewayOptions& with_api_socket(std::string path) {
        api_socket = std::move(path);
        return *this;
    }
    GatewayOptions& daemon(const std::vector<std::string>& arguments) {
        slmd_extra.insert(slmd_extra.end(), arguments.begin(), arguments.end());
        return *this;
    }
};

// slmsim + slmd for one test. The simulator maps 203.0.113.0/24 to 127.0.0.1 and 2001:db8::/32 to ::1, so a
// connect to a documentation address reaches a local server through the simulated modem.
class Gateway {
  public:
    explicit Gateway(GatewayOptions options = {});
    Gateway(const Gateway&) = delete;
    Gateway& operator=(const Gateway&) = delete;

    // Starts (or, after a kill, starts again) slmd on the simulator's tty and waits for "modem: ready".
    bool start_slmd();

    std::string control(const std::string& line) const;
    std::string log() const { return slmd ? slmd->output() : std::string{}; }
    // slmd's modem state as an app sees it (slmsock_status), "?" when slmd does not answer.
    std::string state() const;
    // The raw trace file and what the host sent the modem (its H>M chunks, unescaped), to search command
    // lines.
    std::string trace() const;
    std::string uplink_trace() const;
    bool sent(const std::string& command) const { return uplink_trace().find(command) != std::string::npos; }

    GatewayOptions options;
    TempDir dir;
    std::optional<ChildProcess> sim;
    std::optional<ChildProcess> slmd;
    bool ready = false;
};

// A loopback TCP server on its own thread: echo, or send a greeting and close.
class LocalServer {
  public:
    enum class Mode { echo, greet_and_close };
    explicit LocalServer(Mode mode = Mode::echo, std::string greeting = {});
    ~LocalServer();
    LocalServer(const LocalServer&) = delete;
    LocalServer& operator=(const LocalServer&) = delete;
    std::uint16_t port() const { return port_; }
    int accepted() const { return accepted_; }

  private:
    void serve();
    Mode mode_;
    std::string greeting_;
    int fd_ = -1;
    std::uint16_t port_ = 0;
    std::atomic<bool> stop_{false};
    std::atomic<int> accepted_{0};
    std::thread thread_;
    std::mutex clients_mutex_;
    std::vector<int> clients_;  // open echo connections, shut down on destruction
    std::vector<std::thread> echoes_;
};

// Re-evaluates `done` until it holds or the limit passes (a bounded wait on a condition, not a sleep).
template <typename Predicate>
bool eventually(Predicate done, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    const auto deadline = Clock::now() + limit;
    while (!done()) {
        if (Clock::now() >= deadline) return false;
        poll(nullptr, 0, 10);
    }
    return true;
}

std::string read_file(const std::string& path);
// A listening TCP socket on 127.0.0.1 at a free port (set in `port`); the descriptor.
int loopback_tcp_listener(std::uint16_t& port, int backlog = 8);
// A process's open descriptors and resident size (VmRSS, KiB), from /proc.
std::size_t descriptors_of(int pid);
long resident_kib(int pid);
std::size_t count(const std::string& text, const std::string& needle);
bool write_all(int fd, const std::string& bytes);
// Reads until `count` bytes, EOF or an error, within an overall deadline.
std::string read_n(int fd, std::size_t count, std::chrono::milliseconds limit = std::chrono::seconds(30));

}  // namespace slmd::test
