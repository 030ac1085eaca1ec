// Owns: slmd's side of the systemd service protocol (libsystemd's sd-daemon): READY=1, STATUS=, STOPPING=1,
// the watchdog keep-alive, and the socket passed by socket activation. Without systemd (no NOTIFY_SOCKET, no
// WATCHDOG_USEC, no LISTEN_FDS) every call is a no-op, so slmd runs the same under any supervisor.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "sys/lifetime.hpp"

namespace slmd::sys {

class Service {
public:
    explicit Service(boost::asio::any_io_executor executor);
    ~Service();
    Service(const Service&) = delete;
    Service& operator=(const Service&) = delete;

    // READY=1 with a first STATUS= line: the API socket is listening (the modem may still be coming up).
    void ready(std::string_view status);
    // STATUS=, sent only when the text differs from the last one sent.
    void status(std::string_view status);
    void stopping();

    // When systemd asked for a watchdog (WATCHDOG_USEC, and WATCHDOG_PID unset or ours), sends WATCHDOG=1
    // from a timer on the io_context at half the interval: if the event loop stops turning, the keep-alives
    // stop and systemd kills and restarts slmd. Returns the interval systemd asked for, 0 when none.
    std::chrono::microseconds start_watchdog();

    // Calls `describe` every `period` and sends STATUS= when its text changed: the modem's state as systemctl
    // status shows it. Polled rather than pushed so the modem layer needs no hook for it.
    void watch_status(std::function<std::string()> describe, std::chrono::milliseconds period);

    // Cancels the timers; nothing is sent afterwards except by explicit calls.
    void stop();

    std::uint64_t watchdog_pings() const { return watchdog_pings_; }

private:
    void notify(const std::string& state);
    void arm_watchdog();
    void arm_status();

    boost::asio::steady_timer watchdog_timer_;
    boost::asio::steady_timer status_timer_;
    std::chrono::microseconds watchdog_period_{0};
    std::chrono::milliseconds status_period_{0};
    std::function<std::string()> describe_;
    std::string last_status_;
    std::uint64_t watchdog_pings_ = 0;
    sys::Lifetime lifetime_;
};

// Socket activation: the listening AF_UNIX SOCK_SEQPACKET socket systemd passed (LISTEN_FDS for this pid),
// or nullopt when none was passed. Anything else passed (several fds, another kind of socket) is an error
// written to `problem`. Unsets LISTEN_* so nothing slmd starts inherits them.
std::optional<int> activated_socket(std::string& problem);

}  // namespace slmd::sys
