// Owns: the client side of slmd's API — every function of slmsock.h. Each call opens its own SOCK_SEQPACKET
// control connection, sends one request, reads one reply and closes: no global state, no threads, nothing to
// reinitialise after fork and nothing a close storm can break. It is linked statically into the preload shim,
// which calls it with its hooks switched off, so it uses plain libc, lets no exception out of the C API and has
// no static constructors. Protocol: docs/api.md.

// The shared library exports exactly the C API (everything else is -fvisibility=hidden); the static one
// keeps even the API hidden, so the preload shim that embeds it does not re-export slmsock_* to the app.
#ifndef SLMSOCK_STATIC_BUILD
#pragma GCC visibility push(default)
#endif
#include "slmsock.h"
#ifndef SLMSOCK_STATIC_BUILD
#pragma GCC visibility pop
#endif

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "wire.hpp"

namespace {

using namespace slmsock::wire;

// How long to wait for slmd to answer a request it answers at once (everything but a blocking connect and a
// resolve), and to finish the local steps (control connect on a full backlog, loopback connect).
constexpr int local_wait_ms = 5000;
// Added to a modem timeout: slmd answers when its own timeout fires; this is the margin for it to do so.
constexpr std::int64_t reply_margin_ms = 5000;

std::int64_t now_ms() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return std::int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1000000;
}

int clamp_wait(std::int64_t ms) { return ms > INT_MAX ? INT_MAX : ms < 0 ? 0 : static_cast<int>(ms); }

// Only there to catch a reply that answers something else; any value that changes between calls will do.
std::uint32_t new_request_id() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    const std::uint32_t id = static_cast<std::uint32_t>(ts.tv_nsec) ^
                             static_cast<std::uint32_t>(ts.tv_sec) * 2654435761u ^
                             static_cast<std::uint32_t>(getpid()) << 16;
    return id != 0 ? id : 1;
}

class Fd {
public:
    explicit Fd(int fd) : fd_(fd) {}
    ~Fd() {
        if (fd_ >= 0) close(fd_);  // not retried on EINTR: on Linux the fd is gone either way
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    int get() const { return fd_; }

private:
    int fd_;
};

// Waits for `events` on fd until the deadline, retrying EINTR. 0 when ready, -ETIMEDOUT or -errno.
int wait_for(int fd, short events, std::int64_t deadline) {
    for (;;) {
        const std::int64_t left = deadline - now_ms();
        if (left <= 0) return -ETIMEDOUT;
        pollfd p{fd, events, 0};
        const int r = poll(&p, 1, clamp_wait(left));
        if (r > 0) return 0;
        if (r < 0 && errno != EINTR) return -errno;
    }
}

// Opens the control connection. Every way of "slmd is not there" is -ENETDOWN, at once; a socket this user
// may not open is -EACCES.
int control_connect() {
    const char* path = slmsock_socket_path();
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    const std::size_t len = std::strlen(path);
    if (len >= sizeof sa.sun_path) return -ENAMETOOLONG;
    std::memcpy(sa.sun_path, path, len);
    const int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    // A blocking AF_UNIX connect waits while slmd's backlog is full, for at most SO_SNDTIMEO; the same
    // bound covers the send.
    const timeval tv{local_wait_ms / 1000, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    const auto sa_len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len + 1);
    for (;;) {
        if (connect(fd, reinterpret_cast<const sockaddr*>(&sa), sa_len) == 0) return fd;
        const int e = errno;
        if (e == EINTR) continue;  // an AF_UNIX connect is all-or-nothing: retrying is safe
        if (e == EISCONN) return fd;
        close(fd);
        switch (e) {
        case ENOENT:
        case ENOTDIR:
        case ECONNREFUSED:
        case EAGAIN:  // backlog still full after SO_SNDTIMEO: slmd is not serving
            return -ENETDOWN;
        case EACCES:
        case EPERM:
            // The socket file's permissions keep this user out (0660, group slm): say so, not "no slmd".
            return -EACCES;
        default:
            return -e;
        }
    }
}

// One request, one reply. 0 with `reply` set, or a negative errno: -ENETDOWN (slmd absent or gone before
// answering), -ETIMEDOUT (no answer within wait_ms), -EPROTO (a reply we cannot accept), or the -errno of an
// ErrorReply (-EACCES, -EPROTONOSUPPORT, ...).
int transact(const Message& request, std::int64_t wait_ms, Message& reply) {
    const std::uint32_t id = new_request_id();
    const std::vector<std::uint8_t> bytes = encode(Envelope{id, request});
    const int raw = control_connect();
    if (raw < 0) return raw;
    const Fd fd(raw);
    for (;;) {
        const ssize_t n = send(fd.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (n == static_cast<ssize_t>(bytes.size())) break;
        if (n >= 0) return -EPROTO;  // SEQPACKET sends all or nothing
        const int e = errno;
        if (e == EINTR) continue;
        if (e == EAGAIN) return -ETIMEDOUT;
        if (e != EPIPE && e != ECONNRESET) return -e;
        // slmd may refuse (ErrorReply -EACCES) and close before reading anything: that answer is still
        // queued for us and says more than "gone".
        wait_ms = 0;
        break;
    }
    const std::int64_t deadline = now_ms() + wait_ms;
    std::array<std::uint8_t, max_message_size> buffer;
    for (;;) {
        if (wait_ms > 0) {
            if (const int rc = wait_for(fd.get(), POLLIN, deadline); rc < 0) return rc;
        }
        // MSG_TRUNC reports a message's real length, so an over-long reply is seen, not silently cut.
        const ssize_t n = recv(fd.get(), buffer.data(), buffer.size(), MSG_TRUNC | MSG_DONTWAIT);
        if (n < 0) {
            const int e = errno;
            if (e == EINTR || (e == EAGAIN && wait_ms > 0)) continue;
            if (e == ECONNRESET && wait_ms > 0) {
                // slmd closed without reading our request (a refusal). The reset is reported before the
                // messages still queued for us: look once more, without waiting, for its answer.
                wait_ms = 0;
                continue;
            }
            if (e == ECONNRESET || e == EAGAIN) return -ENETDOWN;
            return -e;
        }
        if (n == 0) return -ENETDOWN;  // closed without an answer (slmd stopped or crashed)
        if (static_cast<std::size_t>(n) > buffer.size()) return -EPROTO;
        auto decoded = decode(std::span<const std::uint8_t>(buffer.data(), static_cast<std::size_t>(n)));
        auto* envelope = std::get_if<Envelope>(&decoded);
        if (envelope == nullptr) return -EPROTO;
        // An ErrorReply may carry request_id 0: slmd sends it when it answers before or without reading a
        // request (refused credentials, an undecodable message). One request per connection makes it ours.
        if (const auto* error = std::get_if<ErrorReply>(&envelope->message);
            error != nullptr && (envelope->request_id == id || envelope->request_id == 0))
            return error->error < 0 ? error->error : -EPROTO;
        if (envelope->request_id != id) return -EPROTO;
        reply = std::move(envelope->message);
        return 0;
    }
}

// A status slmd reports must be 0 or a negative errno; anything else is a protocol error.
int checked_status(std::int32_t status) { return status <= 0 ? status : -EPROTO; }

// Runs a C API body, turning any exception into an errno: nothing may unwind into C (or into the shim).
template <typename F>
int no_throw(F&& body) noexcept {
    try {
        return body();
    } catch (const std::bad_alloc&) {
        return -ENOMEM;
    } catch (...) {
        return -EIO;
    }
}

// sockaddr → wire address. IPv4-mapped IPv6 addresses go to the modem as IPv4 (which is what they mean).
int to_wire(const sockaddr* addr, socklen_t len, Address& out, std::uint16_t& port) {
    if (addr == nullptr) return -EFAULT;
    if (len < static_cast<socklen_t>(sizeof(sa_family_t))) return -EINVAL;
    out = Address{};
    if (addr->sa_family == AF_INET) {
        if (len < static_cast<socklen_t>(sizeof(sockaddr_in))) return -EINVAL;
        sockaddr_in sin;
        std::memcpy(&sin, addr, sizeof sin);
        out.family = Family::ipv4;
        std::memcpy(out.bytes.data(), &sin.sin_addr, 4);
        port = ntohs(sin.sin_port);
        return 0;
    }
    if (addr->sa_family == AF_INET6) {
        if (len < static_cast<socklen_t>(sizeof(sockaddr_in6))) return -EINVAL;
        sockaddr_in6 sin6;
        std::memcpy(&sin6, addr, sizeof sin6);
        if (IN6_IS_ADDR_V4MAPPED(&sin6.sin6_addr)) {
            out.family = Family::ipv4;
            std::memcpy(out.bytes.data(), sin6.sin6_addr.s6_addr + 12, 4);
        } else {
            out.family = Family::ipv6;
            std::memcpy(out.bytes.data(), sin6.sin6_addr.s6_addr, 16);
        }
        port = ntohs(sin6.sin6_port);
        return 0;
    }
    return -EAFNOSUPPORT;
}

// wire address → sockaddr; false for an unspecified family.
bool to_sockaddr(const Address& a, std::uint16_t port, sockaddr_storage& out, socklen_t& len) {
    std::memset(&out, 0, sizeof out);
    if (a.family == Family::ipv4) {
        sockaddr_in sin{};
        sin.sin_family = AF_INET;
        sin.sin_port = htons(port);
        std::memcpy(&sin.sin_addr, a.bytes.data(), 4);
        std::memcpy(&out, &sin, sizeof sin);
        len = sizeof sin;
        return true;
    }
    if (a.family == Family::ipv6) {
        sockaddr_in6 sin6{};
        sin6.sin6_family = AF_INET6;
        sin6.sin6_port = htons(port);
        std::memcpy(sin6.sin6_addr.s6_addr, a.bytes.data(), 16);
        std::memcpy(&out, &sin6, sizeof sin6);
        len = sizeof sin6;
        return true;
    }
    len = 0;
    return false;
}

// connect() on a blocking socket that may still be interrupted (EINTR) or cut short by SO_SNDTIMEO
// (EINPROGRESS): in both cases the kernel goes on connecting, so wait for the outcome instead of failing.
int connect_and_wait(int fd, const sockaddr* addr, socklen_t len, std::int64_t wait_ms) {
    if (connect(fd, addr, len) == 0) return 0;
    const int e = errno;
    if (e != EINTR && e != EINPROGRESS && e != EALREADY) return -e;
    if (const int rc = wait_for(fd, POLLOUT, now_ms() + wait_ms); rc < 0) return rc;
    int so_error = 0;
    socklen_t so_len = sizeof so_error;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &so_len) < 0) return -errno;
    return -so_error;
}

int connect_loopback(int fd, int domain, std::uint16_t data_port) {
    int rc;
    if (domain == AF_INET) {
        sockaddr_in sin{};
        sin.sin_family = AF_INET;
        sin.sin_port = htons(data_port);
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        rc = connect_and_wait(fd, reinterpret_cast<const sockaddr*>(&sin), sizeof sin, local_wait_ms);
    } else {
        sockaddr_in6 sin6{};
        sin6.sin6_family = AF_INET6;
        sin6.sin6_port = htons(data_port);
        sin6.sin6_addr = in6addr_loopback;
        rc = connect_and_wait(fd, reinterpret_cast<const sockaddr*>(&sin6), sizeof sin6, local_wait_ms);
        if (rc == -EADDRNOTAVAIL || rc == -ENETUNREACH) {
            // IPv6 disabled on this host (no ::1): the v4-mapped loopback reaches slmd's 127.0.0.1 listener.
            static const std::uint8_t mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1};
            std::memcpy(sin6.sin6_addr.s6_addr, mapped, 16);
            rc = connect_and_wait(fd, reinterpret_cast<const sockaddr*>(&sin6), sizeof sin6, local_wait_ms);
        }
    }
    // A refused data endpoint means slmd went away, not that the remote host refused.
    return rc == -ECONNREFUSED ? -ENETDOWN : rc;
}

int send_all(int fd, const std::uint8_t* p, std::size_t n) {
    const std::int64_t deadline = now_ms() + local_wait_ms;
    while (n > 0) {
        const ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= static_cast<std::size_t>(w);
            continue;
        }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno == EAGAIN) {  // SO_SNDTIMEO on the caller's socket
            if (const int rc = wait_for(fd, POLLOUT, deadline); rc < 0) return rc;
            continue;
        }
        return w < 0 ? (errno == EPIPE || errno == ECONNRESET ? -ENETDOWN : -errno) : -EIO;
    }
    return 0;
}

// Connects fd to slmd's data endpoint and presents the credential. Both steps are local and immediate, so a
// non-blocking fd is made blocking for them and its flags are then put back exactly as they were.
int attach(int fd, int domain, int flags, std::uint16_t data_port, const ConnectReply& reply) {
    const bool nonblocking = (flags & O_NONBLOCK) != 0;
    if (nonblocking && fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0) return -errno;
    int rc = connect_loopback(fd, domain, data_port);
    if (rc == 0) {
        const auto credential = encode_credential(reply.flow_id, reply.token);
        rc = send_all(fd, credential.data(), credential.size());
    }
    if (nonblocking && fcntl(fd, F_SETFL, flags) < 0 && rc == 0) rc = -errno;
    return rc;
}

// slmsock_tls → the request's TLS block; -EINVAL for a value out of range, -EFAULT for NULL.
int to_wire_tls(const struct slmsock_tls* tls, TlsParameters& out) {
    if (tls == nullptr) return -EFAULT;
    auto choice = [](int v, int max, std::uint8_t& field) {
        if (v == SLMSOCK_TLS_DEFAULT) {
            field = tls_default;
            return true;
        }
        if (v < 0 || v > max) return false;
        field = static_cast<std::uint8_t>(v);
        return true;
    };
    if (tls->sec_tag < 0) return -EINVAL;
    out.sec_tag = tls->sec_tag;
    if (!choice(tls->peer_verify, 2, out.peer_verify) || !choice(tls->hostname_verify, 1, out.hostname_verify) ||
        !choice(tls->dtls_cid, 2, out.dtls_cid))
        return -EINVAL;
    out.hostname.clear();
    if (tls->hostname != nullptr) {
        const std::size_t n = strnlen(tls->hostname, max_name_length + 1);
        if (n == 0 || n > max_name_length || std::strchr(tls->hostname, '"') != nullptr) return -EINVAL;
        out.hostname.assign(tls->hostname, n);
    }
    return 0;
}

int connect_fd(int fd, const sockaddr* addr, socklen_t addrlen, std::uint64_t* flow_id,
               const struct slmsock_tls* tls = nullptr) {
    TlsParameters tls_block;
    if (tls != nullptr) {
        if (const int rc = to_wire_tls(tls, tls_block); rc < 0) return rc;
    }
    Address destination;
    std::uint16_t port = 0;
    if (const int rc = to_wire(addr, addrlen, destination, port); rc < 0) return rc;

    int domain = 0, type = 0;
    socklen_t optlen = sizeof domain;
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &optlen) < 0) return -errno;
    optlen = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &optlen) < 0) return -errno;
    if (domain != AF_INET && domain != AF_INET6) return -EAFNOSUPPORT;
    if (type != SOCK_STREAM) return -EPROTOTYPE;
    if (addr->sa_family != domain) return -EAFNOSUPPORT;  // what the kernel's connect() says too
    sockaddr_storage peer;
    socklen_t peer_len = sizeof peer;
    if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_len) == 0) return -EISCONN;

    const int flags = fcntl(fd, F_GETFL);
    if (flags < 0) return -errno;
    ConnectRequest request;
    request.transport = Transport::tcp;
    request.destination = destination;
    request.port = port;
    request.nonblocking = (flags & O_NONBLOCK) != 0;
    if (tls != nullptr) request.tls = tls_block;
    // slmd hands the flow only to a data connection from this very socket (not to another one that learnt
    // the credential, e.g. a process that took the data endpoint's port on ::1).
    struct stat socket_stat {};
    if (fstat(fd, &socket_stat) == 0) request.socket_inode = socket_stat.st_ino;
    std::int64_t wait_ms = local_wait_ms;
    if (!request.nonblocking) {
        // A send timeout on the socket is the caller's connect timeout (what connect() honours in Linux).
        timeval tv{};
        optlen = sizeof tv;
        if (getsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, &optlen) == 0 && (tv.tv_sec > 0 || tv.tv_usec > 0)) {
            const std::int64_t ms = std::int64_t{tv.tv_sec} * 1000 + (tv.tv_usec + 999) / 1000;
            request.timeout_ms = ms > UINT32_MAX ? UINT32_MAX : static_cast<std::uint32_t>(ms);
        }
        wait_ms = (request.timeout_ms != 0 ? request.timeout_ms : max_default_connect_timeout_ms) +
                  reply_margin_ms;
    }

    Message message;
    if (const int rc = transact(request, wait_ms, message); rc < 0) return rc;
    const auto* reply = std::get_if<ConnectReply>(&message);
    if (reply == nullptr) return -EPROTO;
    if (reply->route == Route::bypass) return reply->status == 0 ? 1 : checked_status(reply->status);
    if (reply->status != 0 && reply->status != -EINPROGRESS) return checked_status(reply->status);
    if (reply->data_port == 0) return -EPROTO;
    if (const int rc = attach(fd, domain, flags, reply->data_port, *reply); rc < 0) return rc;
    if (flow_id != nullptr) *flow_id = reply->flow_id;
    return reply->status;
}

int fill_flow_status(const Message& message, std::uint64_t expected_id, struct slmsock_flow_status* status) {
    const auto* reply = std::get_if<FlowStatusReply>(&message);
    // flow_id 0 is slmd's answer for a flow it does not know (state closed, error -ENOTCONN).
    if (reply == nullptr || (expected_id != 0 && reply->flow_id != 0 && reply->flow_id != expected_id))
        return -EPROTO;
    std::memset(status, 0, sizeof *status);
    status->state = static_cast<slmsock_flow_state>(reply->state);
    status->error = reply->error;
    to_sockaddr(reply->peer, reply->peer_port, status->peer, status->peer_len);
    return 0;
}

int flow_status(std::uint64_t flow_id, std::uint16_t port, struct slmsock_flow_status* status) {
    if (status == nullptr) return -EFAULT;
    Message message;
    if (const int rc = transact(FlowStatusRequest{flow_id, port}, local_wait_ms, message); rc < 0) return rc;
    return fill_flow_status(message, flow_id, status);
}

int shutdown_flow(std::uint64_t flow_id, std::uint16_t port, int how) {
    ShutdownHow wire_how;
    switch (how) {
    case SHUT_RD: wire_how = ShutdownHow::read; break;
    case SHUT_WR: wire_how = ShutdownHow::write; break;
    case SHUT_RDWR: wire_how = ShutdownHow::both; break;
    default: return -EINVAL;
    }
    Message message;
    if (const int rc = transact(ShutdownRequest{flow_id, port, wire_how}, local_wait_ms, message); rc < 0)
        return rc;
    const auto* reply = std::get_if<ShutdownReply>(&message);
    return reply != nullptr ? checked_status(reply->status) : -EPROTO;
}

int status_request(StatusReply& out) {
    Message message;
    if (const int rc = transact(StatusRequest{}, local_wait_ms, message); rc < 0) return rc;
    auto* reply = std::get_if<StatusReply>(&message);
    if (reply == nullptr) return -EPROTO;
    out = std::move(*reply);
    return 0;
}

template <std::size_t N>
void copy_text(char (&dst)[N], const std::string& src) {
    const std::size_t n = std::min(N - 1, std::strlen(src.c_str()));  // stop at an embedded NUL, too
    std::memcpy(dst, src.data(), n);
    dst[n] = '\0';
}

// slmsock_resolve's EAI_* → the errno slmsock_tcp_connect documents.
int eai_to_errno(int eai, int saved_errno) {
    switch (eai) {
    case EAI_SYSTEM: return saved_errno > 0 ? -saved_errno : -EIO;
    case EAI_NONAME:
    case EAI_NODATA:
    case EAI_ADDRFAMILY:
    case EAI_FAIL: return -EHOSTUNREACH;
    case EAI_AGAIN: return -EAGAIN;
    case EAI_MEMORY: return -ENOMEM;
    case EAI_FAMILY: return -EAFNOSUPPORT;
    default: return -EIO;
    }
}

int resolve(const char* name, int family, sockaddr_storage* addresses, std::size_t capacity, std::size_t* count) {
    if (name == nullptr || count == nullptr || (capacity > 0 && addresses == nullptr)) {
        errno = EINVAL;
        return EAI_SYSTEM;
    }
    *count = 0;
    ResolveRequest request;
    switch (family) {
    case AF_UNSPEC: request.family = Family::unspecified; break;
    case AF_INET: request.family = Family::ipv4; break;
    case AF_INET6: request.family = Family::ipv6; break;
    default: return EAI_FAMILY;
    }
    const std::size_t len = std::strlen(name);
    if (len == 0 || len > max_name_length) return EAI_NONAME;
    request.name.assign(name, len);
    Message message;
    if (const int rc = transact(request, max_default_connect_timeout_ms + reply_margin_ms, message); rc < 0) {
        errno = -rc;
        return EAI_SYSTEM;
    }
    const auto* reply = std::get_if<ResolveReply>(&message);
    if (reply == nullptr || reply->status > 0) {
        errno = EPROTO;
        return EAI_SYSTEM;
    }
    if (reply->status != 0) return reply->status;
    for (const Address& a : reply->addresses) {
        if (*count == capacity) break;
        if ((family == AF_INET && a.family != Family::ipv4) || (family == AF_INET6 && a.family != Family::ipv6))
            continue;  // slmd should not send them; never hand the caller a family it did not ask for
        socklen_t unused;
        if (to_sockaddr(a, 0, addresses[*count], unused)) ++*count;
    }
    return 0;
}

// Errors after which trying the host's next address cannot help.
bool address_specific(int rc) {
    return rc == -ECONNREFUSED || rc == -EHOSTUNREACH || rc == -ENETUNREACH || rc == -EADDRNOTAVAIL ||
           rc == -EAFNOSUPPORT;
}

int tcp_connect(const char* host, std::uint16_t port, int family, const struct slmsock_tls* tls = nullptr) {
    if (host == nullptr) return -EFAULT;
    if (family != AF_UNSPEC && family != AF_INET && family != AF_INET6) return -EAFNOSUPPORT;
    std::array<sockaddr_storage, max_addresses> addresses{};
    std::size_t count = 0;
    struct slmsock_tls named {};
    in_addr in4;
    in6_addr in6;
    if (family != AF_INET6 && inet_pton(AF_INET, host, &in4) == 1) {
        sockaddr_in sin{};
        sin.sin_family = AF_INET;
        sin.sin_addr = in4;
        std::memcpy(&addresses[0], &sin, sizeof sin);
        count = 1;
    } else if (family != AF_INET && inet_pton(AF_INET6, host, &in6) == 1) {
        sockaddr_in6 sin6{};
        sin6.sin6_family = AF_INET6;
        sin6.sin6_addr = in6;
        std::memcpy(&addresses[0], &sin6, sizeof sin6);
        count = 1;
    } else {
        const int eai = resolve(host, family, addresses.data(), addresses.size(), &count);
        if (eai != 0) return eai_to_errno(eai, errno);
        if (count == 0) return -EHOSTUNREACH;
        if (tls != nullptr && tls->hostname == nullptr) {
            // The name the caller gave is the one the modem must verify (it connects to the name itself).
            named = *tls;
            named.hostname = host;
            tls = &named;
        }
    }

    int last = -EHOSTUNREACH;
    for (std::size_t i = 0; i < count; ++i) {
        sockaddr_storage& ss = addresses[i];
        socklen_t len;
        if (ss.ss_family == AF_INET) {
            reinterpret_cast<sockaddr_in&>(ss).sin_port = htons(port);
            len = sizeof(sockaddr_in);
        } else {
            reinterpret_cast<sockaddr_in6&>(ss).sin6_port = htons(port);
            len = sizeof(sockaddr_in6);
        }
        const int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) return -errno;
        const auto* sa = reinterpret_cast<const sockaddr*>(&ss);
        int rc = connect_fd(fd, sa, len, nullptr, tls);
        if (rc == 1) rc = connect_and_wait(fd, sa, len, max_default_connect_timeout_ms);  // local route
        if (rc == 0) return fd;
        close(fd);
        last = rc > 0 ? -EPROTO : rc;
        if (!address_specific(last)) break;
    }
    return last;
}

// ---- Servers and UDP ----------------------------------------------------------------------------------------

// Requests that reach the modem (a UDP server starting, the TCP server starting, the UDP client opening, the
// firmware's read commands) are answered when the modem has; slmd bounds them with its own timeouts.
constexpr std::int64_t modem_wait_ms = max_default_connect_timeout_ms + reply_margin_ms;

int to_wire_family(int family, Family& out) {
    switch (family) {
    case AF_INET: out = Family::ipv4; return 0;
    case AF_INET6: out = Family::ipv6; return 0;
    default: return -EAFNOSUPPORT;
    }
}

int to_wire_transport(int type, Transport& out) {
    switch (type) {
    case SOCK_STREAM: out = Transport::tcp; return 0;
    case SOCK_DGRAM: out = Transport::udp; return 0;
    default: return -EPROTOTYPE;
    }
}

int bind_request(int type, int family, std::uint16_t modem_port, std::uint16_t app_port) {
    BindRequest request;
    if (const int rc = to_wire_transport(type, request.transport); rc < 0) return rc;
    if (const int rc = to_wire_family(family, request.family); rc < 0) return rc;
    if (modem_port == 0 || app_port == 0) return -EINVAL;
    request.modem_port = modem_port;
    request.app_port = app_port;
    Message message;
    if (const int rc = transact(request, modem_wait_ms, message); rc < 0) return rc;
    const auto* reply = std::get_if<BindReply>(&message);
    return reply != nullptr ? checked_status(reply->status) : -EPROTO;
}

int listen_request(int family, std::uint16_t app_port) {
    ListenRequest request;
    if (const int rc = to_wire_family(family, request.family); rc < 0) return rc;
    if (app_port == 0) return -EINVAL;
    request.app_port = app_port;
    Message message;
    if (const int rc = transact(request, modem_wait_ms, message); rc < 0) return rc;
    const auto* reply = std::get_if<ListenReply>(&message);
    return reply != nullptr ? checked_status(reply->status) : -EPROTO;
}

int udp_associate(int family, std::uint16_t app_port, const sockaddr* peer, socklen_t len,
                  std::uint16_t* stand_in_port, const struct slmsock_tls* tls = nullptr) {
    UdpAssociateRequest request;
    if (stand_in_port == nullptr) return -EFAULT;
    if (tls != nullptr) {
        TlsParameters block;
        if (const int rc = to_wire_tls(tls, block); rc < 0) return rc;
        request.tls = block;
    }
    if (const int rc = to_wire_family(family, request.family); rc < 0) return rc;
    if (const int rc = to_wire(peer, len, request.peer, request.peer_port); rc < 0) return rc;
    if (app_port == 0 || request.peer_port == 0) return -EINVAL;
    request.app_port = app_port;
    Message message;
    if (const int rc = transact(request, modem_wait_ms, message); rc < 0) return rc;
    const auto* reply = std::get_if<UdpAssociateReply>(&message);
    if (reply == nullptr) return -EPROTO;
    if (reply->status != 0) return checked_status(reply->status);
    if (reply->route == Route::bypass) return 1;
    if (reply->stand_in_port == 0) return -EPROTO;
    *stand_in_port = reply->stand_in_port;
    return 0;
}

int lookup(int type, int family, std::uint16_t app_port, std::uint16_t loopback_peer_port, sockaddr_storage* local,
           socklen_t* local_len, sockaddr_storage* peer, socklen_t* peer_len) {
    LookupRequest request;
    if ((local != nullptr && local_len == nullptr) || (peer != nullptr && peer_len == nullptr)) return -EFAULT;
    if (const int rc = to_wire_transport(type, request.transport); rc < 0) return rc;
    if (const int rc = to_wire_family(family, request.family); rc < 0) return rc;
    if (app_port == 0) return -EINVAL;
    request.app_port = app_port;
    request.loopback_peer_port = loopback_peer_port;
    Message message;
    if (const int rc = transact(request, local_wait_ms, message); rc < 0) return rc;
    const auto* reply = std::get_if<LookupReply>(&message);
    if (reply == nullptr) return -EPROTO;
    if (reply->status != 0) return checked_status(reply->status);
    if (local != nullptr) {
        *local_len = 0;
        std::memset(local, 0, sizeof *local);
        if (reply->local_port != 0) {
            Address a = reply->local;
            // "unspecified": the socket stands for the wildcard address of its own family.
            if (a.family == Family::unspecified) a = Address{request.family, {}};
            to_sockaddr(a, reply->local_port, *local, *local_len);
        }
    }
    if (peer != nullptr) {
        *peer_len = 0;
        std::memset(peer, 0, sizeof *peer);
        if (loopback_peer_port != 0) to_sockaddr(reply->peer, reply->peer_port, *peer, *peer_len);
    }
    return 0;
}

int proxies(struct slmsock_proxies* out) {
    if (out == nullptr) return -EFAULT;
    Message message;
    if (const int rc = transact(ProxiesRequest{}, modem_wait_ms, message); rc < 0) return rc;
    const auto* reply = std::get_if<ProxiesReply>(&message);
    if (reply == nullptr) return -EPROTO;
    std::memset(out, 0, sizeof *out);
    for (const ProxyInfo& p : reply->proxies) {
        if (out->count == SLMSOCK_MAX_PROXIES) break;
        struct slmsock_proxy& q = out->proxy[out->count++];
        q.type = p.transport == Transport::udp ? SOCK_DGRAM : SOCK_STREAM;
        q.role = static_cast<slmsock_proxy_role>(p.role);
        q.port = p.port;
        copy_text(q.peer, p.peer);
        q.owner_pid = p.owner_pid;
        q.bytes_up = p.bytes_up;
        q.bytes_down = p.bytes_down;
    }
    out->waiting = reply->waiting;
    copy_text(out->modem_view, reply->modem_view);
    return 0;
}

int stats(struct slmsock_stats* out) {
    if (out == nullptr) return -EFAULT;
    Message message;
    if (const int rc = transact(StatsRequest{}, local_wait_ms, message); rc < 0) return rc;
    const auto* reply = std::get_if<StatsReply>(&message);
    if (reply == nullptr) return -EPROTO;
    std::memset(out, 0, sizeof *out);
    out->uptime_s = reply->uptime_s;
    out->tcp_bytes_up = reply->tcp_bytes_up;
    out->tcp_bytes_down = reply->tcp_bytes_down;
    out->udp_bytes_up = reply->udp_bytes_up;
    out->udp_bytes_down = reply->udp_bytes_down;
    out->udp_datagrams_up = reply->udp_datagrams_up;
    out->udp_datagrams_down = reply->udp_datagrams_down;
    out->flows_opened = reply->flows_opened;
    out->flows_failed = reply->flows_failed;
    out->tcp_dropped_app_gone = reply->tcp_dropped_app_gone;
    out->tcp_dropped_peer_gone = reply->tcp_dropped_peer_gone;
    out->tcp_refused_busy = reply->tcp_refused_busy;
    out->udp_dropped_not_last_peer = reply->udp_dropped_not_last_peer;
    out->udp_dropped_too_big = reply->udp_dropped_too_big;
    out->udp_dropped_busy = reply->udp_dropped_busy;
    out->udp_dropped_no_proxy = reply->udp_dropped_no_proxy;
    out->udp_dropped_queue_full = reply->udp_dropped_queue_full;
    out->udp_dropped_send_failed = reply->udp_dropped_send_failed;
    out->udp_dropped_app_gone = reply->udp_dropped_app_gone;
    out->udp_suspensions = reply->udp_suspensions;
    out->udp_refused_tcp_busy = reply->udp_refused_tcp_busy;
    out->data_mode_sessions = reply->data_mode_sessions;
    out->at_commands = reply->at_commands;
    out->at_errors = reply->at_errors;
    out->at_timeouts = reply->at_timeouts;
    out->modem_resets = reply->modem_resets;
    out->admin_resets = reply->admin_resets;
    out->registration_losses = reply->registration_losses;
    out->recoveries = reply->recoveries;
    out->recovery_backoffs = reply->recovery_backoffs;
    out->downlink = {reply->downlink.p50_us, reply->downlink.p99_us, reply->downlink.samples};
    out->uplink = {reply->uplink.p50_us, reply->uplink.p99_us, reply->uplink.samples};
    return 0;
}

// Whole lines, each ended by '\n', as many as fit with the NUL; *truncated when some did not.
void copy_lines(const std::vector<std::string>& lines, char* out, std::size_t size, int* truncated) {
    if (out == nullptr || size == 0) {
        if (truncated != nullptr) *truncated = lines.empty() ? 0 : 1;
        return;
    }
    std::size_t used = 0;
    out[0] = '\0';
    for (const auto& line : lines) {
        const std::size_t n = std::strlen(line.c_str());  // stop at an embedded NUL
        if (used + n + 1 >= size) {
            if (truncated != nullptr) *truncated = 1;
            return;
        }
        std::memcpy(out + used, line.data(), n);
        used += n;
        out[used++] = '\n';
        out[used] = '\0';
    }
}

int at_command(const char* command, int force, std::uint32_t timeout_ms, struct slmsock_at_answer* answer,
               char* lines, std::size_t size) {
    if (command == nullptr || answer == nullptr) return -EFAULT;
    std::memset(answer, 0, sizeof *answer);
    if (lines != nullptr && size > 0) lines[0] = '\0';
    const std::size_t length = std::strlen(command);
    if (length == 0 || length > max_at_command_length || timeout_ms > max_at_timeout_ms) return -EINVAL;
    AtRequest request{std::string(command, length), force != 0, timeout_ms};
    // slmd answers when the modem did or its timeout fired; the command may first wait for one in flight.
    const std::int64_t wait = std::int64_t{timeout_ms != 0 ? timeout_ms : 10000} + 2 * reply_margin_ms;
    Message message;
    if (const int rc = transact(request, wait, message); rc < 0) return rc;
    const auto* reply = std::get_if<AtReply>(&message);
    if (reply == nullptr) return -EPROTO;
    if (reply->status != 0) {
        copy_lines(reply->lines, lines, size, nullptr);
        return checked_status(reply->status);
    }
    answer->final = static_cast<slmsock_at_final>(reply->outcome);
    answer->code = reply->code;
    answer->line_count = reply->lines.size();
    copy_lines(reply->lines, lines, size, &answer->truncated);
    return 0;
}

int reset() {
    Message message;
    if (const int rc = transact(ResetRequest{}, local_wait_ms, message); rc < 0) return rc;
    const auto* reply = std::get_if<ResetReply>(&message);
    return reply != nullptr ? checked_status(reply->status) : -EPROTO;
}

// Credentials (slmctl cred). A write or delete on the default build waits for AT+CFUN=4, %CMNG, AT+CFUN=1 and
// the registration after it: slmd's register timeout (180 s by default) and the two radio commands.
constexpr std::int64_t credential_change_wait_ms = 300000 + reply_margin_ms;
thread_local std::string credential_message;

int credential_call(const CredentialRequest& request, std::int64_t wait_ms, CredentialReply& reply) {
    credential_message.clear();
    Message message;
    if (const int rc = transact(request, wait_ms, message); rc < 0) return rc;
    auto* answer = std::get_if<CredentialReply>(&message);
    if (answer == nullptr) return -EPROTO;
    reply = std::move(*answer);
    credential_message = reply.message;
    return checked_status(reply.status);
}

bool credential_type_ok(int type) { return type >= 0 && type <= 4; }

int credential_write(int sec_tag, int type, const char* content, std::size_t length, int force) {
    credential_message.clear();
    if (content == nullptr) return -EFAULT;
    if (sec_tag < 0 || !credential_type_ok(type)) return -EINVAL;
    if (length > max_credential_length) return -EMSGSIZE;
    CredentialRequest request;
    request.op = CredentialOp::write;
    request.sec_tag = sec_tag;
    request.type = static_cast<std::uint8_t>(type);
    request.content.assign(content, length);
    request.force = force != 0;
    CredentialReply reply;
    return credential_call(request, credential_change_wait_ms, reply);
}

int credential_list(int sec_tag, int type, struct slmsock_credential* out, std::size_t capacity, std::size_t* count) {
    credential_message.clear();
    if (count == nullptr || (out == nullptr && capacity > 0)) return -EFAULT;
    *count = 0;
    if (sec_tag < -1 || type < -1 || type > 4) return -EINVAL;
    CredentialRequest request;
    request.op = CredentialOp::list;
    request.sec_tag = sec_tag < 0 ? any_sec_tag : sec_tag;
    request.type = type < 0 ? any_credential_type : static_cast<std::uint8_t>(type);
    CredentialReply reply;
    if (const int rc = credential_call(request, modem_wait_ms, reply); rc < 0) return rc;
    *count = reply.entries.size();
    for (std::size_t i = 0; i < reply.entries.size() && i < capacity; ++i) {
        const auto& entry = reply.entries[i];
        out[i].sec_tag = entry.sec_tag;
        out[i].type = static_cast<int>(entry.type);
        const std::size_t n = std::min(entry.sha256.size(), sizeof out[i].sha256 - 1);
        std::memcpy(out[i].sha256, entry.sha256.data(), n);
        out[i].sha256[n] = '\0';
    }
    return 0;
}

int credential_delete(int sec_tag, int type, int force) {
    credential_message.clear();
    if (sec_tag < 0 || !credential_type_ok(type)) return -EINVAL;
    CredentialRequest request;
    request.op = CredentialOp::remove;
    request.sec_tag = sec_tag;
    request.type = static_cast<std::uint8_t>(type);
    request.force = force != 0;
    CredentialReply reply;
    return credential_call(request, credential_change_wait_ms, reply);
}

}  // namespace

extern "C" {

const char* slmsock_socket_path(void) {
    // secure_getenv: a set-uid program must not be pointed at another socket by its caller.
    const char* path = secure_getenv("SLMSOCK_SOCKET");
    return (path != nullptr && path[0] != '\0') ? path : SLMSOCK_DEFAULT_SOCKET;
}

int slmsock_connect_fd(int fd, const struct sockaddr* addr, socklen_t addrlen, uint64_t* flow_id) {
    return no_throw([&] { return connect_fd(fd, addr, addrlen, flow_id); });
}

int slmsock_tcp_connect(const char* host, uint16_t port, int family) {
    return no_throw([&] { return tcp_connect(host, port, family); });
}

int slmsock_tls_connect_fd(int fd, const struct sockaddr* addr, socklen_t addrlen, const struct slmsock_tls* tls,
                           uint64_t* flow_id) {
    if (tls == nullptr) return -EFAULT;
    return no_throw([&] { return connect_fd(fd, addr, addrlen, flow_id, tls); });
}

int slmsock_tls_connect(const char* host, uint16_t port, int family, const struct slmsock_tls* tls) {
    if (tls == nullptr) return -EFAULT;
    return no_throw([&] { return tcp_connect(host, port, family, tls); });
}

void slmsock_tls_init(struct slmsock_tls* tls, int sec_tag) {
    if (tls == nullptr) return;
    *tls = slmsock_tls{sec_tag, SLMSOCK_TLS_DEFAULT, SLMSOCK_TLS_DEFAULT, SLMSOCK_TLS_DEFAULT, nullptr};
}

int slmsock_flow_status(uint64_t flow_id, struct slmsock_flow_status* status) {
    if (flow_id == 0) return -EINVAL;  // 0 means "by port" on the wire
    return no_throw([&] { return flow_status(flow_id, 0, status); });
}

int slmsock_flow_status_by_port(uint16_t data_local_port, struct slmsock_flow_status* status) {
    if (data_local_port == 0) return -EINVAL;
    return no_throw([&] { return flow_status(0, data_local_port, status); });
}

int slmsock_shutdown(uint64_t flow_id, int how) {
    if (flow_id == 0) return -EINVAL;
    return no_throw([&] { return shutdown_flow(flow_id, 0, how); });
}

int slmsock_shutdown_by_port(uint16_t data_local_port, int how) {
    if (data_local_port == 0) return -EINVAL;
    return no_throw([&] { return shutdown_flow(0, data_local_port, how); });
}

int slmsock_resolve(const char* name, int family, struct sockaddr_storage* addresses, size_t capacity,
                    size_t* count) {
    // Not no_throw(): its errno values would be mistaken for EAI_* ones (-EIO == EAI_NODATA).
    try {
        return resolve(name, family, addresses, capacity, count);
    } catch (const std::bad_alloc&) {
        return EAI_MEMORY;
    } catch (...) {
        errno = EIO;
        return EAI_SYSTEM;
    }
}

int slmsock_status(struct slmsock_status* status) {
    if (status == nullptr) return -EFAULT;
    return no_throw([&] {
        StatusReply reply;
        if (const int rc = status_request(reply); rc < 0) return rc;
        std::memset(status, 0, sizeof *status);
        copy_text(status->modem_state, reply.modem_state);
        copy_text(status->registration, reply.registration);
        copy_text(status->release, reply.release);
        copy_text(status->ipv4, reply.ipv4);
        copy_text(status->ipv6, reply.ipv6);
        status->active_flows = reply.active_flows;
        status->queued_flows = reply.queued_flows;
        return 0;
    });
}

int slmsock_data_port(void) {
    return no_throw([&] {
        StatusReply reply;
        if (const int rc = status_request(reply); rc < 0) return rc;
        return reply.data_port != 0 ? int{reply.data_port} : -ENETDOWN;
    });
}

int slmsock_bind(int type, int family, uint16_t modem_port, uint16_t app_port) {
    return no_throw([&] { return bind_request(type, family, modem_port, app_port); });
}

int slmsock_listen(int family, uint16_t app_port) {
    return no_throw([&] { return listen_request(family, app_port); });
}

int slmsock_udp_associate(int family, uint16_t app_port, const struct sockaddr* peer, socklen_t len,
                          uint16_t* stand_in_port) {
    return no_throw([&] { return udp_associate(family, app_port, peer, len, stand_in_port); });
}

int slmsock_dtls_associate(int family, uint16_t app_port, const struct sockaddr* peer, socklen_t len,
                           const struct slmsock_tls* tls, uint16_t* stand_in_port) {
    if (tls == nullptr) return -EFAULT;
    return no_throw([&] { return udp_associate(family, app_port, peer, len, stand_in_port, tls); });
}

int slmsock_lookup(int type, int family, uint16_t app_port, uint16_t loopback_peer_port,
                   struct sockaddr_storage* local, socklen_t* local_len, struct sockaddr_storage* peer,
                   socklen_t* peer_len) {
    return no_throw(
        [&] { return lookup(type, family, app_port, loopback_peer_port, local, local_len, peer, peer_len); });
}

int slmsock_proxies(struct slmsock_proxies* out) {
    return no_throw([&] { return proxies(out); });
}

int slmsock_stats(struct slmsock_stats* out) {
    return no_throw([&] { return stats(out); });
}

int slmsock_at(const char* command, int force, uint32_t timeout_ms, struct slmsock_at_answer* answer, char* lines,
               size_t size) {
    return no_throw([&] { return at_command(command, force, timeout_ms, answer, lines, size); });
}

int slmsock_reset(void) {
    return no_throw([&] { return reset(); });
}

int slmsock_cred_write(int sec_tag, int type, const char* content, size_t length, int force) {
    return no_throw([&] { return credential_write(sec_tag, type, content, length, force); });
}

int slmsock_cred_list(int sec_tag, int type, struct slmsock_credential* out, size_t capacity, size_t* count) {
    return no_throw([&] { return credential_list(sec_tag, type, out, capacity, count); });
}

int slmsock_cred_delete(int sec_tag, int type, int force) {
    return no_throw([&] { return credential_delete(sec_tag, type, force); });
}

const char* slmsock_cred_message(void) { return credential_message.c_str(); }

const char* slmsock_strerror(int error) {
    if (error == 0) return "Success";
    if (error == INT_MIN) return "Unknown error";
    const int e = error < 0 ? -error : error;
    const char* text = strerrordesc_np(e);  // static and thread-safe, unlike strerror() for unknown values
    return text != nullptr ? text : "Unknown error";
}

const char* slmsock_resolve_strerror(int eai_error) {
    return eai_error == 0 ? "Success" : gai_strerror(eai_error);
}

}  // extern "C"
