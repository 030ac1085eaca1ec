// Helpers for core/ tests that run real loopback sockets on an io_context in the test's own thread: run the
// loop until a condition holds (bounded, never a fixed sleep), and plain non-blocking app sockets.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "wire.hpp"

namespace slmd::test {

// Runs `io` until `done()` holds; false when `limit` passed first.
inline bool run_until(boost::asio::io_context& io, const std::function<bool()>& done,
                      std::chrono::milliseconds limit = std::chrono::seconds(5)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        io.restart();
        io.run_for(std::chrono::milliseconds(5));
    }
    return true;
}

// A socket of the app's, bound on 127.0.0.1 (port 0 = any); -1 on failure.
inline int app_socket(int type, std::uint16_t port = 0) {
    const int fd = ::socket(AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(port);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

inline std::uint16_t local_port(int fd) {
    sockaddr_in address{};
    socklen_t length = sizeof address;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
    return ntohs(address.sin_port);
}

inline sockaddr_in loopback4(std::uint16_t port) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(port);
    return address;
}

inline bool send_to(int fd, const std::string& bytes, std::uint16_t port) {
    const auto address = loopback4(port);
    return ::sendto(fd, bytes.data(), bytes.size(), 0, reinterpret_cast<const sockaddr*>(&address),
                    sizeof address) == static_cast<ssize_t>(bytes.size());
}

struct Datagram {
    std::string bytes;
    std::string from_address;
    std::uint16_t from_port = 0;
};

// One datagram if one is waiting (non-blocking).
inline std::optional<Datagram> receive_from(int fd) {
    char buffer[70000];
    sockaddr_in from{};
    socklen_t length = sizeof from;
    const ssize_t n = ::recvfrom(fd, buffer, sizeof buffer, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&from), &length);
    if (n < 0) return std::nullopt;
    char text[INET_ADDRSTRLEN] = {};
    inet_ntop(AF_INET, &from.sin_addr, text, sizeof text);
    return Datagram{std::string(buffer, static_cast<std::size_t>(n)), text, ntohs(from.sin_port)};
}

inline slmsock::wire::Address v4(const char* text) {
    slmsock::wire::Address address;
    address.family = slmsock::wire::Family::ipv4;
    inet_pton(AF_INET, text, address.bytes.data());
    return address;
}

}  // namespace slmd::test
