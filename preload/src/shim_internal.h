/* shim_internal.h — what the hook files share: the real libc functions, the recursion guard, the routing
 * log and the environment switches. Everything here is hidden; only the hooks are exported
 * (see preload/exports.map). */
#ifndef SLMSOCK_PRELOAD_SHIM_INTERNAL_H
#define SLMSOCK_PRELOAD_SHIM_INTERNAL_H

#include <netdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#define SHIM_HIDDEN __attribute__((visibility("hidden")))
#define SHIM_EXPORT __attribute__((visibility("default")))

/* The real functions (the next definition after this library), or NULL when there is none. Each is
 * resolved lazily on first use and eagerly by the constructor; a lookup never returns one of our hooks. */
typedef int (*connect_fn)(int, const struct sockaddr*, socklen_t);
typedef int (*getpeername_fn)(int, struct sockaddr*, socklen_t*);
typedef int (*getsockname_fn)(int, struct sockaddr*, socklen_t*);
typedef int (*getsockopt_fn)(int, int, int, void*, socklen_t*);
typedef int (*shutdown_fn)(int, int);
typedef ssize_t (*sendto_fn)(int, const void*, size_t, int, const struct sockaddr*, socklen_t);
typedef ssize_t (*sendmsg_fn)(int, const struct msghdr*, int);
typedef long (*syscall_fn)(long, ...);
typedef int (*bind_fn)(int, const struct sockaddr*, socklen_t);
typedef int (*listen_fn)(int, int);
typedef int (*accept_fn)(int, struct sockaddr*, socklen_t*);
typedef int (*accept4_fn)(int, struct sockaddr*, socklen_t*, int);
typedef ssize_t (*recvfrom_fn)(int, void*, size_t, int, struct sockaddr*, socklen_t*);
typedef ssize_t (*recvmsg_fn)(int, struct msghdr*, int);
typedef int (*recvmmsg_fn)(int, struct mmsghdr*, unsigned int, int, struct timespec*);
typedef int (*sendmmsg_fn)(int, struct mmsghdr*, unsigned int, int);
typedef int (*getaddrinfo_fn)(const char*, const char*, const struct addrinfo*, struct addrinfo**);
typedef struct hostent* (*gethostbyname_fn)(const char*);
typedef struct hostent* (*gethostbyname2_fn)(const char*, int);
typedef int (*gethostbyname_r_fn)(const char*, struct hostent*, char*, size_t, struct hostent**, int*);
typedef int (*gethostbyname2_r_fn)(const char*, int, struct hostent*, char*, size_t, struct hostent**, int*);
typedef struct hostent* (*gethostbyaddr_fn)(const void*, socklen_t, int);
typedef int (*gethostbyaddr_r_fn)(const void*, socklen_t, int, struct hostent*, char*, size_t, struct hostent**,
                                  int*);
typedef int (*getnameinfo_fn)(const struct sockaddr*, socklen_t, char*, socklen_t, char*, socklen_t, int);

enum shim_symbol {
    SYM_connect,
    SYM_getpeername,
    SYM_getsockname,
    SYM_getsockopt,
    SYM_shutdown,
    SYM_sendto,
    SYM_sendmsg,
    SYM_syscall,
    SYM_bind,
    SYM_listen,
    SYM_accept,
    SYM_accept4,
    SYM_recvfrom,
    SYM_recvmsg,
    SYM_recvmmsg,
    SYM_sendmmsg,
    SYM_getaddrinfo,
    SYM_gethostbyname,
    SYM_gethostbyname2,
    SYM_gethostbyname_r,
    SYM_gethostbyname2_r,
    SYM_gethostbyaddr,
    SYM_gethostbyaddr_r,
    SYM_getnameinfo,
    SYM_COUNT
};

SHIM_HIDDEN void* shim_real(enum shim_symbol symbol);
#define REAL(name) ((name##_fn)shim_real(SYM_##name))

/* Set while the shim runs libslmsock (or its own lookups): every hook then passes straight through. */
extern __thread int shim_in_library __attribute__((tls_model("initial-exec"))) SHIM_HIDDEN;
#define SHIM_ENTER() (++shim_in_library)
#define SHIM_LEAVE() (--shim_in_library)

/* Every environment variable the shim reads, through secure_getenv (NULL in a secure-execution program). */
SHIM_HIDDEN const char* shim_env(const char* name);
/* SLMSOCK_STRICT=1: anything that would not go through the modem (except loopback) fails. */
SHIM_HIDDEN bool shim_strict(void);
/* SLMSOCK_DEBUG=1: one line on stderr per routing decision. */
SHIM_HIDDEN bool shim_debug(void);
SHIM_HIDDEN void shim_log(const char* format, ...) __attribute__((format(printf, 1, 2)));
/* "203.0.113.10:80" / "[2001:db8::1]:80" into buf. */
SHIM_HIDDEN const char* shim_format_address(const struct sockaddr* addr, socklen_t len, char* buf, size_t size);

/* ---- Servers and UDP (inbound.c) ------------------------------------------------------------------------ */

/* What a socket is, from the kernel (SO_DOMAIN, SO_TYPE, SO_PROTOCOL). */
struct shim_socket {
    int domain;
    int type;
    int protocol;
};
/* False (errno kept) when fd is not a socket or not AF_INET/AF_INET6. */
SHIM_HIDDEN bool shim_inet_socket(int fd, struct shim_socket* s);
SHIM_HIDDEN bool shim_is_udp(const struct shim_socket* s);
SHIM_HIDDEN bool shim_is_tcp(const struct shim_socket* s);

/* The route of a datagram (or a UDP connect) from fd to `dest`: 1 with *stand_in set (slmd's loopback stand-in
 * for dest: send there instead), 0 for the kernel (a local destination, or slmd says a local route reaches it),
 * or -errno (-ENETUNREACH in strict mode for a local route, -ENETDOWN without slmd, -EBUSY, ...). Binds fd to
 * its family's wildcard, port 0, first when it is not bound. `what` names the call for the debug log. */
SHIM_HIDDEN int shim_udp_route(int fd, const struct shim_socket* s, const struct sockaddr* dest, socklen_t len,
                               struct sockaddr_storage* stand_in, socklen_t* stand_in_len, const char* what);

/* getpeername() for a socket whose kernel peer is loopback but not slmd's data endpoint: the real peer behind
 * slmd's loopback port (an accepted modem connection, a connected UDP socket's stand-in), written as the
 * socket's family would report it, whole (callers truncate). True when `out` was filled. Keeps errno. */
SHIM_HIDDEN bool shim_lookup_peer(int fd, const struct sockaddr* kernel_peer, socklen_t kernel_len,
                                  struct sockaddr_storage* out, socklen_t* out_len);

/* True when `peer` is slmd's loopback data endpoint (shim.c; asks slmd for the port at most once a second). */
SHIM_HIDDEN bool shim_peer_is_data_endpoint(const struct sockaddr* peer, socklen_t len);

#endif
