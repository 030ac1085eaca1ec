// Owns: the systemd service protocol (see service.hpp).
#include "sys/service.hpp"

#include <sys/socket.h>
#include <systemd/sd-daemon.h>

#include <cstring>

#include "sys/log.hpp"

namespace slmd::sys {

namespace asio = boost::asio;

Service::Service(asio::any_io_executor executor) : watchdog_timer_(executor), status_timer_(executor) {}

Service::~Service() {
    lifetime_.end();
    stop();
}

void Service::notify(const std::string& state) {
    // unset_environment = 0: later notifications (STATUS=, WATCHDOG=1) need NOTIFY_SOCKET too.
    const int result = sd_notify(0, state.c_str());
    if (result < 0) SLMD_DEBUG("sd_notify {}: {}", state, std::strerror(-result));
}

void Service::ready(std::string_view status) {
    last_status_ = std::string(status);
    notify("READY=1\nSTATUS=" + last_status_);
}

void Service::status(std::string_view status) {
    if (status == last_status_) return;
    last_status_ = std::string(status);
    notify("STATUS=" + last_status_);
}

void Service::stopping() { notify("STOPPING=1\nSTATUS=stopping"); }

std::chrono::microseconds Service::start_watchdog() {
    std::uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return std::chrono::microseconds(0);
    watchdog_period_ = std::chrono::microseconds(usec / 2);
    SLMD_INFO("systemd watchdog: {} ms, keep-alive every {} ms", usec / 1000, usec / 2000);
    notify("WATCHDOG=1");
    ++watchdog_pings_;
    arm_watchdog();
    return std::chrono::microseconds(usec);
}

void Service::arm_watchdog() {
    watchdog_timer_.expires_after(watchdog_period_);
    watchdog_timer_.async_wait([this, alive = lifetime_.guard()](boost::system::error_code error) {
        if (error || !*alive) return;
        notify("WATCHDOG=1");
        ++watchdog_pings_;
        arm_watchdog();
    });
}

void Service::watch_status(std::function<std::string()> describe, std::chrono::milliseconds period) {
    describe_ = std::move(describe);
    status_period_ = period;
    status(describe_());
    arm_status();
}

void Service::arm_status() {
    status_timer_.expires_after(status_period_);
    status_timer_.async_wait([this, alive = lifetime_.guard()](boost::system::error_code error) {
        if (error || !*alive) return;
        status(describe_());
        arm_status();
    });
}

void Service::stop() {
    watchdog_timer_.cancel();
    status_timer_.cancel();
}

std::optional<int> activated_socket(std::string& problem) {
    const int count = sd_listen_fds(1);
    if (count < 0) {
        problem = std::string("socket activation: ") + std::strerror(-count);
        return std::nullopt;
    }
    if (count == 0) return std::nullopt;
    if (count != 1) {
        problem = "socket activation: " + std::to_string(count) + " sockets passed, slmd takes one";
        return std::nullopt;
    }
    const int fd = SD_LISTEN_FDS_START;
    if (sd_is_socket_unix(fd, SOCK_SEQPACKET, /*listening=*/1, nullptr, 0) <= 0) {
        problem = "socket activation: the socket passed is not a listening AF_UNIX SOCK_SEQPACKET socket "
                  "(slmd.socket needs ListenSequentialPacket=)";
        return std::nullopt;
    }
    return fd;
}

}  // namespace slmd::sys
