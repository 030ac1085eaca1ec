/* inbound.c — servers and UDP through the modem: bind, listen, accept, getsockname, the receive calls, and the
 * UDP routing used by connect()/sendto()/sendmsg() in shim.c.
 *
 * Design (docs/preload.md, "Servers and UDP"): the application keeps a real kernel socket, bound on loopback;
 * slmd stands in for the modem side of it.
 *   - A server bind (the modem's address, or the wildcard under SLMSOCK_LISTEN=modem) binds the kernel socket to
 *     127.0.0.1:0 / [::1]:0 instead and tells slmd (BindRequest); listen() starts the modem's TCP server. Modem
 *     peers arrive as loopback connections (TCP) or datagrams (UDP) from slmd's ports.
 *   - A UDP datagram to a remote peer R goes to slmd's loopback stand-in S for R (UdpAssociateRequest);
 *     datagrams from R arrive from S.
 *   - Addresses the application sees are translated back with LookupRequest: accept()'s peer, recvfrom()'s
 *     source, getsockname() and getpeername().
 * Like the rest of the shim it keeps no per-fd state: everything is asked of the kernel and slmd, so dup, fork
 * and exec need no bookkeeping. slmd is asked only for INET sockets with a loopback address in play. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "policy.h"
#include "shim_internal.h"
#include "slmsock.h"

#ifndef IPPROTO_MPTCP
#define IPPROTO_MPTCP 262
#endif

static int fail(int error) {
    errno = error;
    return -1;
}

/* ---- What a socket is ---------------------------------------------------------------------------------- */

static int int_option(int fd, int level, int name, int* value) {
    getsockopt_fn real_getsockopt = REAL(getsockopt);
    socklen_t len = sizeof *value;
    *value = 0;
    if (real_getsockopt == NULL) return -1;
    return real_getsockopt(fd, level, name, value, &len);
}

bool shim_inet_socket(int fd, struct shim_socket* s) {
    const int saved = errno;
    bool ok = int_option(fd, SOL_SOCKET, SO_DOMAIN, &s->domain) == 0 &&
              (s->domain == AF_INET || s->domain == AF_INET6) && int_option(fd, SOL_SOCKET, SO_TYPE, &s->type) == 0 &&
              int_option(fd, SOL_SOCKET, SO_PROTOCOL, &s->protocol) == 0;
    errno = saved;
    return ok;
}

bool shim_is_udp(const struct shim_socket* s) {
    return s->type == SOCK_DGRAM && (s->protocol == 0 || s->protocol == IPPROTO_UDP);
}

bool shim_is_tcp(const struct shim_socket* s) {
    return s->type == SOCK_STREAM && (s->protocol == 0 || s->protocol == IPPROTO_TCP || s->protocol == IPPROTO_MPTCP);
}

/* The kernel's local address of fd; the port (0 when unbound), or -1 (errno kept). */
static int local_address(int fd, struct sockaddr_storage* out, socklen_t* len) {
    const int saved = errno;
    getsockname_fn real_getsockname = REAL(getsockname);
    *len = sizeof *out;
    int rc = real_getsockname != NULL ? real_getsockname(fd, (struct sockaddr*)out, len) : -1;
    errno = saved;
    return rc == 0 ? slmsock_pl_port((const struct sockaddr*)out, *len) : -1;
}

/* Asks slmd what fd's loopback address (and, with peer_port, slmd's loopback peer) stands for: 0, -ENOENT when
 * slmd knows no socket at app_port, -ENXIO when it knows the socket but not that peer, or another -errno. */
static int lookup_status(const struct shim_socket* s, uint16_t app_port, uint16_t peer_port,
                         struct sockaddr_storage* local, socklen_t* local_len, struct sockaddr_storage* peer,
                         socklen_t* peer_len) {
    const int saved = errno;
    SHIM_ENTER();
    int rc = slmsock_lookup(shim_is_udp(s) ? SOCK_DGRAM : SOCK_STREAM, s->domain, app_port, peer_port, local,
                            local_len, peer, peer_len);
    SHIM_LEAVE();
    errno = saved;
    return rc;
}

/* ---- TCP sockets slmd does not know --------------------------------------------------------------------------
 * A loopback server of the app's own (a test server, a local proxy) would otherwise cost a round trip to slmd on
 * every accept() and getpeername(): 34 us against a 43 us loopback connect (docs/performance.md). Whether slmd
 * knows a TCP socket is settled when it is bound (a modem server is a fresh socket the shim bound and registered;
 * an accepted connection shares its listener's port), so once slmd says it knows no socket at the port, the
 * socket's inode is remembered and later calls go straight to the kernel. Inodes are never reused while the
 * socket lives. UDP sockets are not remembered: one may start talking through the modem at any time. */
enum { KERNEL_TCP_SOCKETS = 32 };
static _Atomic unsigned long kernel_tcp_sockets[KERNEL_TCP_SOCKETS];
static atomic_uint kernel_tcp_next;

static unsigned long socket_inode(int fd) {
    const int saved = errno;
    struct stat st;
    const unsigned long inode = fstat(fd, &st) == 0 ? (unsigned long)st.st_ino : 0;
    errno = saved;
    return inode;
}

static bool known_kernel_tcp_socket(unsigned long inode) {
    if (inode == 0) return false;
    for (int i = 0; i < KERNEL_TCP_SOCKETS; ++i) {
        if (atomic_load_explicit(&kernel_tcp_sockets[i], memory_order_relaxed) == inode) return true;
    }
    return false;
}

static void remember_kernel_tcp_socket(unsigned long inode) {
    if (inode == 0 || known_kernel_tcp_socket(inode)) return;
    const unsigned slot = atomic_fetch_add_explicit(&kernel_tcp_next, 1, memory_order_relaxed) % KERNEL_TCP_SOCKETS;
    atomic_store_explicit(&kernel_tcp_sockets[slot], inode, memory_order_relaxed);
}

/* ---- Replacing a socket (undoing the shim's loopback bind) ---------------------------------------------- */

/* The options applications set before bind() that a replacement socket must carry. Read before the shim's own
 * loopback bind: binding an IPv6 socket to [::1] turns IPV6_V6ONLY on, and a dual-stack server that fell back
 * to the kernel would otherwise come back IPv6-only. */
static const struct {
    int level, name;
} carried_options[] = {{SOL_SOCKET, SO_REUSEADDR}, {SOL_SOCKET, SO_REUSEPORT}, {SOL_SOCKET, SO_BROADCAST},
                       {IPPROTO_IPV6, IPV6_V6ONLY}};
enum { CARRIED_OPTIONS = sizeof carried_options / sizeof carried_options[0] };
struct carried {
    int values[CARRIED_OPTIONS];
    bool have[CARRIED_OPTIONS];
};

static void read_carried_options(int fd, const struct shim_socket* s, struct carried* out) {
    const int saved = errno;
    for (size_t i = 0; i < CARRIED_OPTIONS; ++i) {
        out->have[i] = (carried_options[i].level != IPPROTO_IPV6 || s->domain == AF_INET6) &&
                       int_option(fd, carried_options[i].level, carried_options[i].name, &out->values[i]) == 0;
    }
    errno = saved;
}

/* Puts a fresh socket of the same domain/type/protocol on fd's number, with fd's O_NONBLOCK and FD_CLOEXEC and
 * the options read before bind. 0 or -errno (fd untouched then). */
static int replace_socket(int fd, const struct shim_socket* s, const struct carried* options) {
    const int fl = fcntl(fd, F_GETFL);
    const int fd_flags = fcntl(fd, F_GETFD);
    if (fl < 0 || fd_flags < 0) return -errno;
    const int fresh = socket(s->domain, s->type | SOCK_CLOEXEC | ((fl & O_NONBLOCK) ? SOCK_NONBLOCK : 0), s->protocol);
    if (fresh < 0) return -errno;
    for (size_t i = 0; i < CARRIED_OPTIONS; ++i) {
        if (options->have[i])
            setsockopt(fresh, carried_options[i].level, carried_options[i].name, &options->values[i],
                       sizeof options->values[i]);
    }
    if (fcntl(fresh, F_SETFL, fl) < 0 || dup2(fresh, fd) < 0) {
        const int e = errno;
        close(fresh);
        return -e;
    }
    close(fresh);
    if (fd_flags & FD_CLOEXEC) fcntl(fd, F_SETFD, fd_flags);
    return 0;
}

/* ---- bind() ------------------------------------------------------------------------------------------------ */

static bool listen_on_modem(void) { return slmsock_pl_listen_policy(shim_env("SLMSOCK_LISTEN")) == SLMSOCK_PL_LISTEN_MODEM; }

/* True when addr is the modem's own address (asks slmd). */
static bool is_modem_address(const struct sockaddr* addr, socklen_t len) {
    const int saved = errno;
    struct slmsock_status status;
    SHIM_ENTER();
    int rc = slmsock_status(&status);
    SHIM_LEAVE();
    errno = saved;
    return rc == 0 && (slmsock_pl_address_is(addr, len, status.ipv4) || slmsock_pl_address_is(addr, len, status.ipv6));
}

SHIM_EXPORT int bind(int fd, const struct sockaddr* addr, socklen_t len) {
    bind_fn real_bind = REAL(bind);
    if (real_bind == NULL) return fail(ENOSYS);
    if (shim_in_library != 0 || addr == NULL || len < (socklen_t)sizeof(sa_family_t) ||
        (addr->sa_family != AF_INET && addr->sa_family != AF_INET6)) {
        return real_bind(fd, addr, len);
    }
    const uint16_t port = slmsock_pl_port(addr, len);  // 0 for an incomplete address
    if (port == 0 || slmsock_pl_is_loopback(addr, len)) return real_bind(fd, addr, len);
    struct shim_socket s;
    if (!shim_inet_socket(fd, &s) || !(shim_is_udp(&s) || shim_is_tcp(&s)) ||
        (s.domain == AF_INET && addr->sa_family != AF_INET)) {
        return real_bind(fd, addr, len);
    }
    const bool wildcard = slmsock_pl_is_wildcard(addr, len);
    if (wildcard ? !listen_on_modem() : !is_modem_address(addr, len)) return real_bind(fd, addr, len);

    const int saved = errno;
    char where[80];
    const char* kind = shim_is_udp(&s) ? "udp" : "tcp";
    struct sockaddr_storage loopback;
    socklen_t loopback_len = slmsock_pl_loopback(s.domain, 0, &loopback);
    struct carried options;
    read_carried_options(fd, &s, &options);
    if (real_bind(fd, (const struct sockaddr*)&loopback, loopback_len) != 0) return -1;  // e.g. EINVAL: bound
    struct sockaddr_storage local;
    socklen_t local_len;
    const int app_port = local_address(fd, &local, &local_len);
    int rc = -EIO;
    if (app_port > 0) {
        SHIM_ENTER();
        rc = slmsock_bind(shim_is_udp(&s) ? SOCK_DGRAM : SOCK_STREAM, s.domain, port, (uint16_t)app_port);
        SHIM_LEAVE();
    }
    if (rc == 0) {
        shim_log("bind fd=%d %s %s: modem server (loopback port %d)", fd, kind,
                 shim_format_address(addr, len, where, sizeof where), app_port);
        errno = saved;
        return 0;
    }
    /* Refused, or slmd absent: the socket must not stay bound to loopback. */
    const int replaced = replace_socket(fd, &s, &options);
    if (!wildcard || replaced != 0) {
        shim_log("bind fd=%d %s %s: failed: %s", fd, kind, shim_format_address(addr, len, where, sizeof where),
                 strerror(-rc));
        return fail(replaced != 0 ? -replaced : -rc);
    }
    shim_log("bind fd=%d %s %s: kernel (slmd: %s)", fd, kind, shim_format_address(addr, len, where, sizeof where),
             strerror(-rc));
    errno = saved;
    return real_bind(fd, addr, len);
}

/* ---- listen() -------------------------------------------------------------------------------------------- */

SHIM_EXPORT int listen(int fd, int backlog) {
    listen_fn real_listen = REAL(listen);
    if (real_listen == NULL) return fail(ENOSYS);
    if (shim_in_library != 0) return real_listen(fd, backlog);
    struct sockaddr_storage local;
    socklen_t local_len;
    const int app_port = local_address(fd, &local, &local_len);
    struct shim_socket s;
    if (app_port <= 0 || !slmsock_pl_is_loopback_host((const struct sockaddr*)&local, local_len) ||
        !shim_inet_socket(fd, &s) || !shim_is_tcp(&s)) {
        return real_listen(fd, backlog);
    }
    struct sockaddr_storage modem_side;
    socklen_t modem_side_len = 0;
    const unsigned long inode = socket_inode(fd);
    const int rc_known = known_kernel_tcp_socket(inode)
                             ? -ENOENT
                             : lookup_status(&s, (uint16_t)app_port, 0, &modem_side, &modem_side_len, NULL, NULL);
    if (rc_known == -ENOENT) remember_kernel_tcp_socket(inode);
    if (rc_known != 0 || modem_side_len == 0) {
        return real_listen(fd, backlog);  // a loopback server of the host's own
    }
    if (real_listen(fd, backlog) != 0) return -1;
    const int saved = errno;
    SHIM_ENTER();
    int rc = slmsock_listen(s.domain, (uint16_t)app_port);
    SHIM_LEAVE();
    char where[80];
    shim_format_address((const struct sockaddr*)&modem_side, modem_side_len, where, sizeof where);
    if (rc != 0) {
        shim_log("listen fd=%d %s: failed: %s", fd, where, strerror(-rc));
        return fail(-rc);
    }
    shim_log("listen fd=%d %s: modem server listening", fd, where);
    errno = saved;
    return 0;
}

/* ---- accept()/accept4() ------------------------------------------------------------------------------------ */

/* The peer of a connection accepted on fd (or of fd itself, connected), when its kernel peer is one of slmd's
 * loopback ports: the real peer, whole, as the socket's family reports it. */
bool shim_lookup_peer(int fd, const struct sockaddr* kernel_peer, socklen_t kernel_len, struct sockaddr_storage* out,
                      socklen_t* out_len) {
    if (!slmsock_pl_is_loopback_host(kernel_peer, kernel_len)) return false;
    const unsigned long inode = socket_inode(fd);
    if (known_kernel_tcp_socket(inode)) return false;
    struct shim_socket s;
    struct sockaddr_storage local;
    socklen_t local_len;
    const int app_port = local_address(fd, &local, &local_len);
    if (app_port <= 0 || !shim_inet_socket(fd, &s) || !(shim_is_udp(&s) || shim_is_tcp(&s))) return false;
    struct sockaddr_storage peer;
    socklen_t peer_len = 0;
    const int rc = lookup_status(&s, (uint16_t)app_port, slmsock_pl_port(kernel_peer, kernel_len), NULL, NULL, &peer,
                                 &peer_len);
    if (rc == -ENOENT && shim_is_tcp(&s)) remember_kernel_tcp_socket(inode);
    if (rc != 0 || peer_len == 0) return false;
    /* An unknown peer (a UDP server on firmware that does not say who sent): the stand-in is the better answer,
     * since a reply to it reaches the peer and a reply to 0.0.0.0:0 could not be sent at all. */
    if (slmsock_pl_is_wildcard((const struct sockaddr*)&peer, peer_len)) return false;
    *out_len = sizeof *out;
    return slmsock_pl_fill_address(s.domain, (const struct sockaddr*)&peer, peer_len, (struct sockaddr*)out, out_len);
}

static int after_accept(int listener, int fd, struct sockaddr* addr, socklen_t* addrlen,
                        const struct sockaddr_storage* kernel_peer, socklen_t kernel_len) {
    if (fd < 0) return fd;
    const int saved = errno;
    struct sockaddr_storage real_peer;
    socklen_t real_len;
    if (shim_lookup_peer(listener, (const struct sockaddr*)kernel_peer, kernel_len, &real_peer, &real_len)) {
        char where[80];
        shim_log("accept fd=%d: modem peer %s", fd,
                 shim_format_address((const struct sockaddr*)&real_peer, real_len, where, sizeof where));
        slmsock_pl_copy_address(&real_peer, real_len, addr, addrlen);
    } else {
        slmsock_pl_copy_address(kernel_peer, kernel_len, addr, addrlen);
    }
    errno = saved;
    return fd;
}

SHIM_EXPORT int accept4(int fd, struct sockaddr* addr, socklen_t* addrlen, int flags) {
    accept4_fn real_accept4 = REAL(accept4);
    if (real_accept4 == NULL) return fail(ENOSYS);
    if (shim_in_library != 0 || addr == NULL || addrlen == NULL || (int)*addrlen < 0) {
        return real_accept4(fd, addr, addrlen, flags);
    }
    struct sockaddr_storage peer;
    socklen_t peer_len = sizeof peer;
    int c = real_accept4(fd, (struct sockaddr*)&peer, &peer_len, flags);
    return after_accept(fd, c, addr, addrlen, &peer, peer_len);
}

SHIM_EXPORT int accept(int fd, struct sockaddr* addr, socklen_t* addrlen) {
    accept_fn real_accept = REAL(accept);
    if (real_accept == NULL) return fail(ENOSYS);
    if (shim_in_library != 0 || addr == NULL || addrlen == NULL || (int)*addrlen < 0) {
        return real_accept(fd, addr, addrlen);
    }
    struct sockaddr_storage peer;
    socklen_t peer_len = sizeof peer;
    int c = real_accept(fd, (struct sockaddr*)&peer, &peer_len);
    return after_accept(fd, c, addr, addrlen, &peer, peer_len);
}

/* ---- getsockname() ----------------------------------------------------------------------------------------- */

SHIM_EXPORT int getsockname(int fd, struct sockaddr* addr, socklen_t* len) {
    getsockname_fn real_getsockname = REAL(getsockname);
    if (real_getsockname == NULL) return fail(ENOSYS);
    if (shim_in_library != 0 || addr == NULL || len == NULL || (int)*len < 0) return real_getsockname(fd, addr, len);
    struct sockaddr_storage local;
    socklen_t local_len = sizeof local;
    if (real_getsockname(fd, (struct sockaddr*)&local, &local_len) != 0) return -1;
    const int saved = errno;
    const uint16_t app_port = slmsock_pl_port((const struct sockaddr*)&local, local_len);
    struct shim_socket s;
    if (app_port != 0 && slmsock_pl_is_loopback_host((const struct sockaddr*)&local, local_len) &&
        shim_inet_socket(fd, &s) && (shim_is_udp(&s) || shim_is_tcp(&s))) {
        /* A TCP modem flow (connected to slmd's data endpoint) is a client: nothing to ask. Nor is a TCP socket
         * slmd already said it does not know. */
        const unsigned long inode = shim_is_tcp(&s) ? socket_inode(fd) : 0;
        bool ask = !known_kernel_tcp_socket(inode);
        if (ask && shim_is_tcp(&s)) {
            struct sockaddr_storage peer;
            socklen_t peer_len = sizeof peer;
            getpeername_fn real_getpeername = REAL(getpeername);
            if (real_getpeername != NULL && real_getpeername(fd, (struct sockaddr*)&peer, &peer_len) == 0 &&
                shim_peer_is_data_endpoint((const struct sockaddr*)&peer, peer_len)) {
                ask = false;
            }
        }
        struct sockaddr_storage modem_side;
        socklen_t modem_side_len = 0;
        const int rc = ask ? lookup_status(&s, app_port, 0, &modem_side, &modem_side_len, NULL, NULL) : -ENOENT;
        if (ask && rc == -ENOENT) remember_kernel_tcp_socket(inode);  // 0 (not remembered) for UDP
        if (rc == 0 && modem_side_len != 0) {
            socklen_t out_len = *len;
            if (slmsock_pl_fill_address(s.domain, (const struct sockaddr*)&modem_side, modem_side_len, addr,
                                        &out_len)) {
                *len = out_len;
                errno = saved;
                return 0;
            }
        }
    }
    slmsock_pl_copy_address(&local, local_len, addr, len);
    errno = saved;
    return 0;
}

/* ---- UDP routing ------------------------------------------------------------------------------------------- */

int shim_udp_route(int fd, const struct shim_socket* s, const struct sockaddr* dest, socklen_t len,
                   struct sockaddr_storage* stand_in, socklen_t* stand_in_len, const char* what) {
    if (slmsock_pl_is_local_destination(dest, len)) return 0;
    if ((dest->sa_family == AF_INET && len < (socklen_t)sizeof(struct sockaddr_in)) ||
        (dest->sa_family == AF_INET6 && len < (socklen_t)sizeof(struct sockaddr_in6)) ||
        (s->domain == AF_INET && dest->sa_family != AF_INET) || slmsock_pl_port(dest, len) == 0) {
        return 0;  // malformed for this socket: the kernel's own error
    }
    const int saved = errno;
    char where[80];
    struct sockaddr_storage local;
    socklen_t local_len;
    int app_port = local_address(fd, &local, &local_len);
    if (app_port == 0) {
        /* Unbound: bind to the wildcard, port 0, as the kernel would on the first send, so slmd knows the port. */
        bind_fn real_bind = REAL(bind);
        struct sockaddr_storage any;
        socklen_t any_len = slmsock_pl_wildcard(s->domain, 0, &any);
        if (real_bind == NULL || real_bind(fd, (const struct sockaddr*)&any, any_len) != 0) {
            const int e = errno;
            errno = saved;
            return -e;
        }
        app_port = local_address(fd, &local, &local_len);
    }
    if (app_port <= 0) {
        errno = saved;
        return -EINVAL;
    }
    uint16_t port = 0;
    SHIM_ENTER();
    int rc = slmsock_udp_associate(s->domain, (uint16_t)app_port, dest, len, &port);
    SHIM_LEAVE();
    errno = saved;
    if (rc == 0) {
        *stand_in_len = slmsock_pl_loopback(s->domain, port, stand_in);
        shim_log("%s fd=%d udp %s: modem (stand-in port %u)", what, fd, shim_format_address(dest, len, where, sizeof where),
                 (unsigned)port);
        return 1;
    }
    if (rc == 1) {
        if (shim_strict()) {
            shim_log("%s fd=%d udp %s: refused (strict: slmd routes it locally)", what, fd,
                     shim_format_address(dest, len, where, sizeof where));
            return -ENETUNREACH;
        }
        shim_log("%s fd=%d udp %s: kernel (local route)", what, fd, shim_format_address(dest, len, where, sizeof where));
        return 0;
    }
    shim_log("%s fd=%d udp %s: failed: %s", what, fd, shim_format_address(dest, len, where, sizeof where),
             strerror(-rc));
    return rc < 0 ? rc : -EIO;
}

/* ---- Receiving: the source of a datagram from a stand-in is the real peer ---------------------------------- */

/* Writes a datagram's source into addr/addrlen: the real peer when the kernel's source is one of slmd's stand-ins.
 * Only a source on slmd's loopback host is looked up (the fast path asks nothing for the others). */
static void report_source(int fd, const struct sockaddr_storage* kernel_src, socklen_t kernel_len,
                          struct sockaddr* addr, socklen_t* addrlen) {
    const int saved = errno;
    struct sockaddr_storage real_peer;
    socklen_t real_len;
    if (shim_lookup_peer(fd, (const struct sockaddr*)kernel_src, kernel_len, &real_peer, &real_len)) {
        slmsock_pl_copy_address(&real_peer, real_len, addr, addrlen);
    } else {
        slmsock_pl_copy_address(kernel_src, kernel_len, addr, addrlen);
    }
    errno = saved;
}

SHIM_EXPORT ssize_t recvfrom(int fd, void* buf, size_t n, int flags, struct sockaddr* addr, socklen_t* addrlen) {
    recvfrom_fn real_recvfrom = REAL(recvfrom);
    if (real_recvfrom == NULL) return fail(ENOSYS);
    if (shim_in_library != 0 || addr == NULL || addrlen == NULL || (int)*addrlen < 0) {
        return real_recvfrom(fd, buf, n, flags, addr, addrlen);
    }
    struct sockaddr_storage src;
    socklen_t src_len = sizeof src;
    ssize_t r = real_recvfrom(fd, buf, n, flags, (struct sockaddr*)&src, &src_len);
    if (r < 0) return r;
    report_source(fd, &src, src_len, addr, addrlen);
    return r;
}

/* _FORTIFY_SOURCE programs call this instead of recvfrom (glibc's own goes to __recvfrom, past any hook). */
extern void __chk_fail(void) __attribute__((noreturn));
SHIM_EXPORT ssize_t __recvfrom_chk(int fd, void* buf, size_t n, size_t buflen, int flags, struct sockaddr* addr,
                                   socklen_t* addrlen) {
    if (n > buflen) __chk_fail();
    return recvfrom(fd, buf, n, flags, addr, addrlen);
}

SHIM_EXPORT ssize_t recvmsg(int fd, struct msghdr* message, int flags) {
    recvmsg_fn real_recvmsg = REAL(recvmsg);
    if (real_recvmsg == NULL) return fail(ENOSYS);
    if (shim_in_library != 0 || message == NULL || message->msg_name == NULL || (int)message->msg_namelen < 0 ||
        (flags & MSG_ERRQUEUE) != 0) {
        return real_recvmsg(fd, message, flags);
    }
    struct sockaddr_storage src;
    struct msghdr copy = *message;
    copy.msg_name = &src;
    copy.msg_namelen = sizeof src;
    ssize_t r = real_recvmsg(fd, &copy, flags);
    if (r < 0) return r;
    message->msg_controllen = copy.msg_controllen;
    message->msg_flags = copy.msg_flags;
    report_source(fd, &src, copy.msg_namelen, (struct sockaddr*)message->msg_name, &message->msg_namelen);
    return r;
}

/* Each message's source is rewritten when the caller's name buffer held the whole address; a shorter buffer
 * keeps the kernel's truncated loopback address. */
#define SHIM_MAX_MMSG 1024 /* UIO_MAXIOV: the kernel takes no more per call */
SHIM_EXPORT int recvmmsg(int fd, struct mmsghdr* messages, unsigned int count, int flags, struct timespec* timeout) {
    recvmmsg_fn real_recvmmsg = REAL(recvmmsg);
    if (real_recvmmsg == NULL) return fail(ENOSYS);
    if (shim_in_library != 0 || messages == NULL || (flags & MSG_ERRQUEUE) != 0) {
        return real_recvmmsg(fd, messages, count, flags, timeout);
    }
    if (count > SHIM_MAX_MMSG) count = SHIM_MAX_MMSG;
    socklen_t capacity[SHIM_MAX_MMSG];
    for (unsigned int i = 0; i < count; ++i) capacity[i] = messages[i].msg_hdr.msg_namelen;
    int r = real_recvmmsg(fd, messages, count, flags, timeout);
    if (r <= 0) return r;
    const int saved = errno;
    for (int i = 0; i < r; ++i) {
        struct msghdr* m = &messages[i].msg_hdr;
        if (m->msg_name == NULL || m->msg_namelen > capacity[i] || m->msg_namelen > sizeof(struct sockaddr_storage)) {
            continue;
        }
        struct sockaddr_storage src;
        memcpy(&src, m->msg_name, m->msg_namelen);
        socklen_t len = capacity[i];
        report_source(fd, &src, m->msg_namelen, (struct sockaddr*)m->msg_name, &len);
        m->msg_namelen = len;
    }
    errno = saved;
    return r;
}

/* Datagrams with destinations: each one is routed like sendmsg() (the hook), so they go one by one. */
SHIM_EXPORT int sendmmsg(int fd, struct mmsghdr* messages, unsigned int count, int flags) {
    sendmmsg_fn real_sendmmsg = REAL(sendmmsg);
    if (real_sendmmsg == NULL) return fail(ENOSYS);
    if (shim_in_library != 0 || messages == NULL) return real_sendmmsg(fd, messages, count, flags);
    bool routed = false;
    for (unsigned int i = 0; i < count && !routed; ++i) {
        const struct msghdr* m = &messages[i].msg_hdr;
        routed = m->msg_name != NULL && m->msg_namelen >= sizeof(sa_family_t) &&
                 (((const struct sockaddr*)m->msg_name)->sa_family == AF_INET ||
                  ((const struct sockaddr*)m->msg_name)->sa_family == AF_INET6) &&
                 !slmsock_pl_is_local_destination((const struct sockaddr*)m->msg_name, m->msg_namelen);
    }
    struct shim_socket s;
    if (!routed || !shim_inet_socket(fd, &s) || !shim_is_udp(&s)) return real_sendmmsg(fd, messages, count, flags);
    unsigned int sent = 0;
    for (; sent < count; ++sent) {
        ssize_t n = sendmsg(fd, &messages[sent].msg_hdr, flags);
        if (n < 0) {
            if (sent > 0) break;  // the kernel's rule: report what went, the error comes with the next call
            return -1;
        }
        messages[sent].msg_len = (unsigned int)n;
    }
    return (int)sent;
}
