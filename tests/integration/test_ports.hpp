// Owns: ports for servers that the simulated modem opens on the host later in a test (slmsim binds them when
// slmd sends #XTCPSVR/#XUDPSVR/#XBIND). A port the kernel has just handed out and taken back is an ephemeral
// one: another test running in parallel can get the same one for an outgoing connection before slmsim binds it
// (seen in CI as EADDRINUSE from slmsock_listen). So the ports come from below the kernel's ephemeral range
// (ip_local_port_range starts at 32768), from a window that depends on the process id so that parallel test
// processes walk different ports, and each is checked to bind right now, for TCP and UDP, on the wildcard and on
// both loopbacks.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>

namespace slmd::test {

namespace ports_detail {

inline bool binds(int family, int type, std::uint16_t port, bool loopback) {
    const int fd = socket(family, type | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    int ok = -1;
    if (family == AF_INET) {
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_port = htons(port);
        address.sin_addr.s_addr = htonl(loopback ? INADDR_LOOPBACK : INADDR_ANY);
        ok = bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
    } else {
        sockaddr_in6 address{};
        address.sin6_family = AF_INET6;
        address.sin6_port = htons(port);
        address.sin6_addr = loopback ? in6addr_loopback : in6addr_any;
        const int v6only = 1;
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
        ok = bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
    }
    close(fd);
    return ok == 0;
}

inline bool free_everywhere(std::uint16_t port) {
    for (int type : {SOCK_STREAM, SOCK_DGRAM}) {
        for (bool loopback : {false, true}) {
            if (!binds(AF_INET, type, port, loopback)) return false;
            // IPv6 may be off in a test's namespace: then only IPv4 counts.
            if (!binds(AF_INET6, type, port, loopback) && binds(AF_INET6, type, 0, loopback)) return false;
        }
    }
    return true;
}

}  // namespace ports_detail

// A port for a modem server that nothing on the host uses now and that no outgoing connection will take.
inline std::uint16_t unused_server_port() {
    constexpr std::uint16_t first = 20000, span = 12000;  // 20000-31999: below the ephemeral range
    static std::uint16_t next = static_cast<std::uint16_t>(getpid() * 97 % span);
    for (int tries = 0; tries < span; ++tries) {
        const std::uint16_t port = first + next;
        next = static_cast<std::uint16_t>((next + 1) % span);
        if (ports_detail::free_everywhere(port)) return port;
    }
    return 0;
}

}  // namespace slmd::test
