/* shim.c — libslmsock-preload.so: the socket hooks.
 *
 * Design (docs/preload.md): the application's fd is always a real kernel socket. connect() on a TCP socket
 * to a non-loopback destination asks slmd (slmsock_connect_fd); for a modem route libslmsock connects the
 * fd itself to slmd's loopback data endpoint and presents the flow's credential. From then on the kernel does
 * all the I/O, readiness, dup, fork and exec. The shim keeps no per-fd table: a socket whose kernel peer is
 * slmd's data endpoint is a modem flow, named to slmd by the local port of that data connection.
 * UDP and servers (bind, listen, accept, getsockname, the receive calls) are in inbound.c. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* struct mmsghdr in shim_internal.h */
#endif
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "policy.h"
#include "shim_internal.h"
#include "slmsock.h"

#ifndef RTLD_NEXT
#define RTLD_NEXT ((void*)-1l)
#endif
#ifndef MSG_FASTOPEN
#define MSG_FASTOPEN 0x20000000
#endif
#ifndef IPPROTO_MPTCP
#define IPPROTO_MPTCP 262
#endif

__thread int shim_in_library __attribute__((tls_model("initial-exec")));

/* True while dlsym() runs on this thread: a syscall() hook reached from inside it (an allocator making raw
 * system calls) must not call dlsym() again. */
static __thread int shim_resolving __attribute__((tls_model("initial-exec")));

/* ---- Real functions ------------------------------------------------------------------------------------ */

static const char* const symbol_names[SYM_COUNT] = {
    [SYM_connect] = "connect",
    [SYM_getpeername] = "getpeername",
    [SYM_getsockname] = "getsockname",
    [SYM_getsockopt] = "getsockopt",
    [SYM_shutdown] = "shutdown",
    [SYM_sendto] = "sendto",
    [SYM_sendmsg] = "sendmsg",
    [SYM_syscall] = "syscall",
    [SYM_bind] = "bind",
    [SYM_listen] = "listen",
    [SYM_accept] = "accept",
    [SYM_accept4] = "accept4",
    [SYM_recvfrom] = "recvfrom",
    [SYM_recvmsg] = "recvmsg",
    [SYM_recvmmsg] = "recvmmsg",
    [SYM_sendmmsg] = "sendmmsg",
    [SYM_getaddrinfo] = "getaddrinfo",
    [SYM_gethostbyname] = "gethostbyname",
    [SYM_gethostbyname2] = "gethostbyname2",
    [SYM_gethostbyname_r] = "gethostbyname_r",
    [SYM_gethostbyname2_r] = "gethostbyname2_r",
    [SYM_gethostbyaddr] = "gethostbyaddr",
    [SYM_gethostbyaddr_r] = "gethostbyaddr_r",
    [SYM_getnameinfo] = "getnameinfo",
};

static void* real_functions[SYM_COUNT];

/* Our own definition of each hooked symbol, as the rest of the process sees it. */
static void* own_definition(enum shim_symbol symbol) {
    switch (symbol) {
    case SYM_connect: return (void*)&connect;
    case SYM_getpeername: return (void*)&getpeername;
    case SYM_getsockname: return (void*)&getsockname;
    case SYM_bind: return (void*)&bind;
    case SYM_listen: return (void*)&listen;
    case SYM_accept: return (void*)&accept;
    case SYM_accept4: return (void*)&accept4;
    case SYM_recvfrom: return (void*)&recvfrom;
    case SYM_recvmsg: return (void*)&recvmsg;
    case SYM_recvmmsg: return (void*)&recvmmsg;
    case SYM_sendmmsg: return (void*)&sendmmsg;
    case SYM_getsockopt: return (void*)&getsockopt;
    case SYM_shutdown: return (void*)&shutdown;
    case SYM_sendto: return (void*)&sendto;
    case SYM_sendmsg: return (void*)&sendmsg;
    case SYM_syscall: return (void*)&syscall;
    case SYM_getaddrinfo: return (void*)&getaddrinfo;
    case SYM_gethostbyname: return (void*)&gethostbyname;
    case SYM_gethostbyname2: return (void*)&gethostbyname2;
    case SYM_gethostbyname_r: return (void*)&gethostbyname_r;
    case SYM_gethostbyname2_r: return (void*)&gethostbyname2_r;
    case SYM_gethostbyaddr: return (void*)&gethostbyaddr;
    case SYM_gethostbyaddr_r: return (void*)&gethostbyaddr_r;
    case SYM_getnameinfo: return (void*)&getnameinfo;
    default: return NULL;
    }
}

void* shim_real(enum shim_symbol symbol) {
    void* p = __atomic_load_n(&real_functions[symbol], __ATOMIC_ACQUIRE);
    if (p != NULL) return p;
    ++shim_resolving;
    p = dlsym(RTLD_NEXT, symbol_names[symbol]);
    --shim_resolving;
    /* Never bind to one of our own hooks (a loop would recurse forever). */
    if (p != NULL && p == own_definition(symbol)) p = NULL;
    if (p != NULL) __atomic_store_n(&real_functions[symbol], p, __ATOMIC_RELEASE);
    return p;
}

/* Resolves every real function before main(); does nothing else (no threads, no allocation of our own). */
__attribute__((constructor)) static void shim_init(void) {
    for (int i = 0; i < SYM_COUNT; ++i) (void)shim_real((enum shim_symbol)i);
}

/* ---- Environment and logging ----------------------------------------------------------------------------- */

/* secure_getenv: in a program running with more privilege than its caller (set-uid, capabilities, AT_SECURE),
 * the caller's environment must not change where or how its sockets go. */
const char* shim_env(const char* name) { return secure_getenv(name); }

static bool env_flag(const char* name) {
    const char* v = shim_env(name);
    return v != NULL && v[0] != '\0' && strcmp(v, "0") != 0;
}

bool shim_strict(void) { return env_flag("SLMSOCK_STRICT"); }
bool shim_debug(void) { return env_flag("SLMSOCK_DEBUG"); }

void shim_log(const char* format, ...) {
    if (!shim_debug()) return;
    int saved = errno;
    char line[512];
    int n = snprintf(line, sizeof line, "slmsock[%ld]: ", (long)getpid());
    va_list ap;
    va_start(ap, format);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, format, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : ((size_t)m < sizeof line - (size_t)n - 1 ? (size_t)m : sizeof line - (size_t)n - 2));
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
    errno = saved;
}

const char* shim_format_address(const struct sockaddr* addr, socklen_t len, char* buf, size_t size) {
    char text[INET6_ADDRSTRLEN];
    if (addr != NULL && addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in* in = (const struct sockaddr_in*)addr;
        inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
        snprintf(buf, size, "%s:%u", text, (unsigned)ntohs(in->sin_port));
    } else if (addr != NULL && addr->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6* in6 = (const struct sockaddr_in6*)addr;
        inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
        snprintf(buf, size, "[%s]:%u", text, (unsigned)ntohs(in6->sin6_port));
    } else {
        snprintf(buf, size, "(family %d)", addr != NULL ? addr->sa_family : -1);
    }
    return buf;
}

/* ---- slmd's data endpoint -------------------------------------------------------------------------------- */

/* slmd's loopback data port is fixed for one slmd run. Learned from our own connects (the fd's peer) or asked
 * from slmd (at most once a second, so a stopped or restarted slmd is noticed without a query per call). */
static uint16_t data_port_cache;
static int64_t data_port_checked_ns;

static int64_t monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void remember_data_port(uint16_t port) {
    __atomic_store_n(&data_port_cache, port, __ATOMIC_RELAXED);
    __atomic_store_n(&data_port_checked_ns, monotonic_ns(), __ATOMIC_RELAXED);
}

bool shim_peer_is_data_endpoint(const struct sockaddr* peer, socklen_t len) {
    if (!slmsock_pl_is_loopback(peer, len)) return false;
    uint16_t cached = __atomic_load_n(&data_port_cache, __ATOMIC_RELAXED);
    if (cached != 0 && slmsock_pl_port(peer, len) == cached) return slmsock_pl_is_data_endpoint(peer, len, cached);
    int64_t now = monotonic_ns();
    int64_t last = __atomic_load_n(&data_port_checked_ns, __ATOMIC_RELAXED);
    if (last != 0 && now - last < 1000000000) return false;
    __atomic_store_n(&data_port_checked_ns, now, __ATOMIC_RELAXED);
    SHIM_ENTER();
    int port = slmsock_data_port();
    SHIM_LEAVE();
    if (port <= 0 || port > 65535) return false;
    __atomic_store_n(&data_port_cache, (uint16_t)port, __ATOMIC_RELAXED);
    return slmsock_pl_is_data_endpoint(peer, len, (uint16_t)port);
}

/* The data port if known; otherwise asks slmd (at most once a second). 0 when unknown. */
static uint16_t known_data_port(void) {
    uint16_t cached = __atomic_load_n(&data_port_cache, __ATOMIC_RELAXED);
    if (cached != 0) return cached;
    int64_t now = monotonic_ns();
    int64_t last = __atomic_load_n(&data_port_checked_ns, __ATOMIC_RELAXED);
    if (last != 0 && now - last < 1000000000) return 0;
    __atomic_store_n(&data_port_checked_ns, now, __ATOMIC_RELAXED);
    SHIM_ENTER();
    int port = slmsock_data_port();
    SHIM_LEAVE();
    if (port <= 0 || port > 65535) return 0;
    __atomic_store_n(&data_port_cache, (uint16_t)port, __ATOMIC_RELAXED);
    return (uint16_t)port;
}

/* The local port of fd's data connection when fd is a modem flow, else 0. With `allow_reset`, a TCP socket
 * that is no longer connected (slmd reset it: the flow failed) but still has a loopback local address is
 * looked up by that port too. Keeps errno. */
static uint16_t flow_local_port(int fd, bool allow_reset) {
    int saved = errno;
    uint16_t result = 0;
    getpeername_fn real_getpeername = REAL(getpeername);
    getsockname_fn real_getsockname = REAL(getsockname);
    if (real_getpeername == NULL || real_getsockname == NULL) goto out;
    struct sockaddr_storage peer;
    socklen_t peer_len = sizeof peer;
    if (real_getpeername(fd, (struct sockaddr*)&peer, &peer_len) == 0) {
        if (!shim_peer_is_data_endpoint((struct sockaddr*)&peer, peer_len)) goto out;
    } else if (!allow_reset || errno != ENOTCONN) {
        goto out;
    }
    /* Not connected (any more): only a process that knows slmd's data port asks slmd about the port. */
    if (allow_reset && __atomic_load_n(&data_port_cache, __ATOMIC_RELAXED) == 0 && known_data_port() == 0) goto out;
    struct sockaddr_storage local;
    socklen_t local_len = sizeof local;
    if (real_getsockname(fd, (struct sockaddr*)&local, &local_len) != 0) goto out;
    if (!slmsock_pl_is_loopback((struct sockaddr*)&local, local_len)) goto out;
    result = slmsock_pl_port((struct sockaddr*)&local, local_len);
out:
    errno = saved;
    return result;
}

static bool flow_status(uint16_t local_port, struct slmsock_flow_status* status) {
    int saved = errno;
    memset(status, 0, sizeof *status);
    SHIM_ENTER();
    int rc = slmsock_flow_status_by_port(local_port, status);
    SHIM_LEAVE();
    errno = saved;
    return rc == 0;
}

static int socket_int_option(int fd, int level, int name, int* value) {
    getsockopt_fn real_getsockopt = REAL(getsockopt);
    socklen_t len = sizeof *value;
    *value = 0;
    if (real_getsockopt == NULL) return -1;
    return real_getsockopt(fd, level, name, value, &len);
}

/* ---- connect() ------------------------------------------------------------------------------------------- */

static int fail(int error) {
    errno = error;
    return -1;
}

SHIM_EXPORT int connect(int fd, const struct sockaddr* addr, socklen_t len) {
    connect_fn real_connect = REAL(connect);
    if (real_connect == NULL) return fail(ENOSYS);
    if (shim_in_library != 0 || addr == NULL || len < (socklen_t)sizeof(sa_family_t)) {
        return real_connect(fd, addr, len);
    }
    const int family = addr->sa_family;
    if (family != AF_INET && family != AF_INET6) return real_connect(fd, addr, len);
    /* A local destination goes to the kernel whatever the socket is (TCP, UDP, raw): decide it before any
     * getsockopt, so local traffic pays nothing for the shim (docs/performance.md, shim overhead). */
    if (slmsock_pl_is_local_destination(addr, len)) {
        if (shim_debug()) {
            char local_where[80];
            shim_log("connect fd=%d %s: kernel (loopback)", fd,
                     shim_format_address(addr, len, local_where, sizeof local_where));
        }
        return real_connect(fd, addr, len);
    }

    const int saved = errno;
    int type = 0;
    int domain = 0;
    int protocol = 0;
    if (socket_int_option(fd, SOL_SOCKET, SO_TYPE, &type) != 0 ||
        socket_int_option(fd, SOL_SOCKET, SO_DOMAIN, &domain) != 0 ||
        socket_int_option(fd, SOL_SOCKET, SO_PROTOCOL, &protocol) != 0) {
        errno = saved;
        return real_connect(fd, addr, len);  // not a socket, bad fd: the kernel says so
    }
    errno = saved;
    if (domain != AF_INET && domain != AF_INET6) return real_connect(fd, addr, len);

    char where[80];
    const struct shim_socket sock = {domain, type, protocol};
    if (shim_is_udp(&sock)) {
        /* UDP: connect the socket to slmd's loopback stand-in for the destination; send/recv then work natively. */
        struct sockaddr_storage stand_in;
        socklen_t stand_in_len = 0;
        const int route = shim_udp_route(fd, &sock, addr, len, &stand_in, &stand_in_len, "connect");
        if (route < 0) return fail(-route);
        if (route == 0) return real_connect(fd, addr, len);
        errno = saved;
        return real_connect(fd, (const struct sockaddr*)&stand_in, stand_in_len);
    }
    const bool stream = shim_is_tcp(&sock);
    if (!stream) {
        if (shim_strict()) {
            shim_log("connect fd=%d %s: refused (strict: raw and other socket types cannot go through the modem)", fd,
                     shim_format_address(addr, len, where, sizeof where));
            return fail(ENETUNREACH);
        }
        return real_connect(fd, addr, len);
    }
    if ((family == AF_INET && len < (socklen_t)sizeof(struct sockaddr_in)) ||
        (family == AF_INET6 && len < (socklen_t)sizeof(struct sockaddr_in6)) || (domain == AF_INET && family != AF_INET)) {
        return real_connect(fd, addr, len);  // malformed for this socket: the kernel's EINVAL/EAFNOSUPPORT
    }

    /* connect() again on a socket we already routed (apps that poll a non-blocking connect that way). */
    const uint16_t routed_port = flow_local_port(fd, false);
    if (routed_port != 0) {
        struct slmsock_flow_status status;
        if (flow_status(routed_port, &status)) {
            if (status.state == SLMSOCK_FAILED) return fail(status.error < 0 ? -status.error : ECONNRESET);
            if (status.state == SLMSOCK_CONNECTING) return fail(EALREADY);
        }
        return fail(EISCONN);
    }
    /* ... or on one slmd already reset because its flow failed: report that failure again. */
    const uint16_t reset_port = flow_local_port(fd, true);
    if (reset_port != 0) {
        struct slmsock_flow_status status;
        if (flow_status(reset_port, &status) && status.state == SLMSOCK_FAILED) {
            return fail(status.error < 0 ? -status.error : ECONNRESET);
        }
    }

    uint64_t flow_id = 0;
    SHIM_ENTER();
    int rc = slmsock_connect_fd(fd, addr, len, &flow_id);
    SHIM_LEAVE();
    if (rc == 0 || rc == -EINPROGRESS) {
        getpeername_fn real_getpeername = REAL(getpeername);
        struct sockaddr_storage peer;
        socklen_t peer_len = sizeof peer;
        if (real_getpeername != NULL && real_getpeername(fd, (struct sockaddr*)&peer, &peer_len) == 0) {
            uint16_t port = slmsock_pl_port((struct sockaddr*)&peer, peer_len);
            if (port != 0) remember_data_port(port);
        } else {
            (void)known_data_port();  // slmd already reset it (a fast failure): learn the port from slmd
        }
        shim_log("connect fd=%d %s: modem flow %llu (%s)", fd, shim_format_address(addr, len, where, sizeof where),
                 (unsigned long long)flow_id, rc == 0 ? "connected" : "in progress");
        if (rc == 0) {
            errno = saved;
            return 0;
        }
        return fail(EINPROGRESS);
    }
    if (rc == 1) {
        if (shim_strict()) {
            shim_log("connect fd=%d %s: refused (strict: slmd routes it locally)", fd,
                     shim_format_address(addr, len, where, sizeof where));
            return fail(ENETUNREACH);
        }
        shim_log("connect fd=%d %s: kernel (local route)", fd, shim_format_address(addr, len, where, sizeof where));
        return real_connect(fd, addr, len);
    }
    int error = rc < 0 ? -rc : EIO;
    shim_log("connect fd=%d %s: failed: %s", fd, shim_format_address(addr, len, where, sizeof where), strerror(error));
    return fail(error);
}

/* ---- getpeername(), getsockopt(SO_ERROR), shutdown() ------------------------------------------------------- */

SHIM_EXPORT int getpeername(int fd, struct sockaddr* addr, socklen_t* len) {
    getpeername_fn real_getpeername = REAL(getpeername);
    if (real_getpeername == NULL) return fail(ENOSYS);
    if (shim_in_library != 0 || addr == NULL || len == NULL || (int)*len < 0) return real_getpeername(fd, addr, len);
    struct sockaddr_storage kernel_peer;
    socklen_t kernel_len = sizeof kernel_peer;
    if (real_getpeername(fd, (struct sockaddr*)&kernel_peer, &kernel_len) != 0) return -1;
    const int saved = errno;
    /* Only a loopback peer can be slmd: everything else is the kernel's answer, unchanged. */
    if (slmsock_pl_is_loopback((const struct sockaddr*)&kernel_peer, kernel_len)) {
        uint16_t port = flow_local_port(fd, false);
        struct slmsock_flow_status status;
        int domain = 0;
        struct sockaddr_storage real_peer;
        socklen_t real_len = sizeof real_peer;
        if (port != 0) {
            /* A TCP modem flow: its real destination. */
            if (flow_status(port, &status) && socket_int_option(fd, SOL_SOCKET, SO_DOMAIN, &domain) == 0 &&
                slmsock_pl_fill_address(domain, (const struct sockaddr*)&status.peer, status.peer_len,
                                        (struct sockaddr*)&real_peer, &real_len)) {
                slmsock_pl_copy_address(&real_peer, real_len, addr, len);
                errno = saved;
                return 0;
            }
        } else if (shim_lookup_peer(fd, (const struct sockaddr*)&kernel_peer, kernel_len, &real_peer, &real_len)) {
            /* An accepted modem connection, or a UDP socket connected to a stand-in: the peer it stands for. */
            slmsock_pl_copy_address(&real_peer, real_len, addr, len);
            errno = saved;
            return 0;
        }
    }
    slmsock_pl_copy_address(&kernel_peer, kernel_len, addr, len);
    errno = saved;
    return 0;
}

SHIM_EXPORT int getsockopt(int fd, int level, int name, void* value, socklen_t* len) {
    getsockopt_fn real_getsockopt = REAL(getsockopt);
    if (real_getsockopt == NULL) return fail(ENOSYS);
    int rc = real_getsockopt(fd, level, name, value, len);
    if (rc != 0 || shim_in_library != 0 || level != SOL_SOCKET || name != SO_ERROR || value == NULL || len == NULL ||
        *len < (socklen_t)sizeof(int)) {
        return rc;
    }
    const int saved = errno;
    int type = 0;
    if (socket_int_option(fd, SOL_SOCKET, SO_TYPE, &type) == 0 && type == SOCK_STREAM) {
        uint16_t port = flow_local_port(fd, true);
        struct slmsock_flow_status status;
        if (port != 0 && flow_status(port, &status)) {
            int kernel_error = *(int*)value;
            int reported = kernel_error;
            if (status.state == SLMSOCK_FAILED && status.error != 0) {
                reported = status.error < 0 ? -status.error : status.error;
            } else if (status.state == SLMSOCK_CONNECTING) {
                reported = kernel_error;  // 0 unless the data connection itself broke
            }
            *(int*)value = reported;
        }
    }
    errno = saved;
    return 0;
}

SHIM_EXPORT int shutdown(int fd, int how) {
    shutdown_fn real_shutdown = REAL(shutdown);
    if (real_shutdown == NULL) return fail(ENOSYS);
    if (shim_in_library == 0) {
        uint16_t port = flow_local_port(fd, false);
        if (port != 0) {
            const int saved = errno;
            SHIM_ENTER();
            int rc = slmsock_shutdown_by_port(port, how);
            SHIM_LEAVE();
            shim_log("shutdown fd=%d how=%d: modem flow (%d)", fd, how, rc);
            errno = saved;
        }
    }
    return real_shutdown(fd, how);
}

/* ---- sendto()/sendmsg(): UDP through slmd's stand-ins, TCP Fast Open connects, strict mode ---------------- */

/* Returns 1 to go on with the real call (to *dest_out when it was rewritten to a UDP stand-in), 0 when *result
 * holds the answer. */
static int route_send(int fd, const struct sockaddr* dest, socklen_t dest_len, int flags, ssize_t* result,
                      bool* drop_fastopen, struct sockaddr_storage* stand_in, socklen_t* stand_in_len) {
    *drop_fastopen = false;
    *stand_in_len = 0;
    if (shim_in_library != 0 || dest == NULL || dest_len < (socklen_t)sizeof(sa_family_t)) return 1;
    if (dest->sa_family != AF_INET && dest->sa_family != AF_INET6) return 1;
    /* Local destinations go to the kernel without a look at the socket: the fast path. */
    if (slmsock_pl_is_local_destination(dest, dest_len)) return 1;
    const int saved = errno;
    struct shim_socket sock;
    if (!shim_inet_socket(fd, &sock)) return 1;  // not a socket, not INET: the kernel says what it says
    char where[80];
    if (shim_is_udp(&sock)) {
        const int route = shim_udp_route(fd, &sock, dest, dest_len, stand_in, stand_in_len, "send");
        if (route < 0) {
            *result = fail(-route);
            return 0;
        }
        errno = saved;
        return 1;
    }
    if (sock.type != SOCK_STREAM) {
        if (shim_strict()) {
            shim_log("send fd=%d %s: refused (strict: raw and other socket types cannot go through the modem)", fd,
                     shim_format_address(dest, dest_len, where, sizeof where));
            *result = fail(ENETUNREACH);
            return 0;
        }
        return 1;
    }
    if ((flags & MSG_FASTOPEN) == 0) return 1;  // a TCP socket ignores the address unless it is a Fast Open connect
    /* A Fast Open connect: make it an ordinary (hooked) connect, then send without the flag. */
    getpeername_fn real_getpeername = REAL(getpeername);
    struct sockaddr_storage peer;
    socklen_t peer_len = sizeof peer;
    if (real_getpeername != NULL && real_getpeername(fd, (struct sockaddr*)&peer, &peer_len) == 0) {
        *drop_fastopen = true;  // already connected (through us or not): a plain send
        errno = saved;
        return 1;
    }
    errno = saved;
    if (connect(fd, dest, dest_len) != 0 && errno != EINPROGRESS) {
        *result = -1;
        return 0;
    }
    errno = saved;
    *drop_fastopen = true;
    return 1;
}

SHIM_EXPORT ssize_t sendto(int fd, const void* buf, size_t n, int flags, const struct sockaddr* dest,
                           socklen_t dest_len) {
    sendto_fn real_sendto = REAL(sendto);
    if (real_sendto == NULL) return fail(ENOSYS);
    ssize_t result = -1;
    bool drop_fastopen = false;
    struct sockaddr_storage stand_in;
    socklen_t stand_in_len = 0;
    if (route_send(fd, dest, dest_len, flags, &result, &drop_fastopen, &stand_in, &stand_in_len) == 0) return result;
    if (drop_fastopen) return real_sendto(fd, buf, n, flags & ~MSG_FASTOPEN, NULL, 0);
    if (stand_in_len != 0) return real_sendto(fd, buf, n, flags, (const struct sockaddr*)&stand_in, stand_in_len);
    return real_sendto(fd, buf, n, flags, dest, dest_len);
}

SHIM_EXPORT ssize_t sendmsg(int fd, const struct msghdr* message, int flags) {
    sendmsg_fn real_sendmsg = REAL(sendmsg);
    if (real_sendmsg == NULL) return fail(ENOSYS);
    if (message == NULL) return real_sendmsg(fd, message, flags);
    ssize_t result = -1;
    bool drop_fastopen = false;
    struct sockaddr_storage stand_in;
    socklen_t stand_in_len = 0;
    if (route_send(fd, (const struct sockaddr*)message->msg_name, message->msg_namelen, flags, &result,
                   &drop_fastopen, &stand_in, &stand_in_len) == 0) {
        return result;
    }
    if (drop_fastopen || stand_in_len != 0) {
        struct msghdr changed = *message;
        changed.msg_name = drop_fastopen ? NULL : &stand_in;
        changed.msg_namelen = drop_fastopen ? 0 : stand_in_len;
        return real_sendmsg(fd, &changed, drop_fastopen ? flags & ~MSG_FASTOPEN : flags);
    }
    return real_sendmsg(fd, message, flags);
}

/* ---- syscall() --------------------------------------------------------------------------------------------- */

/* A raw system call for the one moment the real syscall() is not known yet and dlsym() is running. */
static long raw_syscall(long n, long a, long b, long c, long d, long e, long f) {
#if defined(__x86_64__)
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    long ret;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
#elif defined(__aarch64__)
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d;
    register long x4 __asm__("x4") = e;
    register long x5 __asm__("x5") = f;
    __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5) : "memory");
    long ret = x0;
#else
    (void)n, (void)a, (void)b, (void)c, (void)d, (void)e, (void)f;
    long ret = -ENOSYS;
#endif
    if (ret < 0 && ret > -4096) {
        errno = (int)-ret;
        return -1;
    }
    return ret;
}

SHIM_EXPORT long syscall(long number, ...) {
    va_list ap;
    va_start(ap, number);
    long a[6];
    for (int i = 0; i < 6; ++i) a[i] = va_arg(ap, long);
    va_end(ap);
    if (shim_in_library == 0) {
        switch (number) {
#ifdef SYS_connect
        case SYS_connect:
            return connect((int)a[0], (const struct sockaddr*)a[1], (socklen_t)a[2]);
#endif
#ifdef SYS_getpeername
        case SYS_getpeername:
            return getpeername((int)a[0], (struct sockaddr*)a[1], (socklen_t*)a[2]);
#endif
#ifdef SYS_getsockopt
        case SYS_getsockopt:
            return getsockopt((int)a[0], (int)a[1], (int)a[2], (void*)a[3], (socklen_t*)a[4]);
#endif
#ifdef SYS_shutdown
        case SYS_shutdown:
            return shutdown((int)a[0], (int)a[1]);
#endif
#ifdef SYS_sendto
        case SYS_sendto:
            return sendto((int)a[0], (const void*)a[1], (size_t)a[2], (int)a[3], (const struct sockaddr*)a[4],
                          (socklen_t)a[5]);
#endif
#ifdef SYS_sendmsg
        case SYS_sendmsg:
            return sendmsg((int)a[0], (const struct msghdr*)a[1], (int)a[2]);
#endif
#ifdef SYS_bind
        case SYS_bind:
            return bind((int)a[0], (const struct sockaddr*)a[1], (socklen_t)a[2]);
#endif
#ifdef SYS_listen
        case SYS_listen:
            return listen((int)a[0], (int)a[1]);
#endif
#ifdef SYS_accept
        case SYS_accept:
            return accept((int)a[0], (struct sockaddr*)a[1], (socklen_t*)a[2]);
#endif
#ifdef SYS_accept4
        case SYS_accept4:
            return accept4((int)a[0], (struct sockaddr*)a[1], (socklen_t*)a[2], (int)a[3]);
#endif
#ifdef SYS_getsockname
        case SYS_getsockname:
            return getsockname((int)a[0], (struct sockaddr*)a[1], (socklen_t*)a[2]);
#endif
#ifdef SYS_recvfrom
        case SYS_recvfrom:
            return recvfrom((int)a[0], (void*)a[1], (size_t)a[2], (int)a[3], (struct sockaddr*)a[4], (socklen_t*)a[5]);
#endif
#ifdef SYS_recvmsg
        case SYS_recvmsg:
            return recvmsg((int)a[0], (struct msghdr*)a[1], (int)a[2]);
#endif
#ifdef SYS_recvmmsg
        case SYS_recvmmsg:
            return recvmmsg((int)a[0], (struct mmsghdr*)a[1], (unsigned int)a[2], (int)a[3], (struct timespec*)a[4]);
#endif
#ifdef SYS_sendmmsg
        case SYS_sendmmsg:
            return sendmmsg((int)a[0], (struct mmsghdr*)a[1], (unsigned int)a[2], (int)a[3]);
#endif
        default:
            break;
        }
    }
    syscall_fn real_syscall = (syscall_fn)__atomic_load_n(&real_functions[SYM_syscall], __ATOMIC_ACQUIRE);
    if (real_syscall == NULL && shim_resolving == 0) real_syscall = REAL(syscall);
    if (real_syscall == NULL) return raw_syscall(number, a[0], a[1], a[2], a[3], a[4], a[5]);
    return real_syscall(number, a[0], a[1], a[2], a[3], a[4], a[5]);
}
