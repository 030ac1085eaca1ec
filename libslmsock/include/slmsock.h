/* slmsock.h — use the nRF91 modem managed by slmd from a program, on purpose.
 *
 * Every function opens its own short-lived control connection to slmd (AF_UNIX SOCK_SEQPACKET), so the
 * library keeps no hidden state: it is thread-safe, fork-safe and unaffected by close storms. Sockets it
 * returns or connects are real kernel sockets: read/write/poll/epoll/sendfile/stdio work on them unchanged.
 *
 * Errors are returned as negative errno values (e.g. -ECONNREFUSED) unless stated otherwise.
 * The control socket is SLMSOCK_SOCKET from the environment, else SLMSOCK_DEFAULT_SOCKET. */
#ifndef SLMSOCK_H
#define SLMSOCK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SLMSOCK_DEFAULT_SOCKET "/run/slmd/slmd.sock"
#define SLMSOCK_API_VERSION 1

/* The control socket path in force: $SLMSOCK_SOCKET or SLMSOCK_DEFAULT_SOCKET. */
const char* slmsock_socket_path(void);

/* Connects the caller's own, unconnected TCP socket `fd` (AF_INET or AF_INET6) to `addr` through the modem.
 * Blocking (no O_NONBLOCK on fd): returns 0 once the modem connected, or the modem's error
 * (-ECONNREFUSED, -ETIMEDOUT, -EHOSTUNREACH, -ENETDOWN, ...).
 * Non-blocking: returns -EINPROGRESS at once; the socket becomes writable shortly after and the outcome is
 * read with slmsock_flow_status() (a failure also resets the socket: first I/O gives ECONNRESET).
 * Returns 1 when slmd says a local route reaches addr: the caller should connect() by itself.
 * On success *flow_id (if not NULL) names the connection for the other calls. */
int slmsock_connect_fd(int fd, const struct sockaddr* addr, socklen_t addrlen, uint64_t* flow_id);

/* Opens a new TCP socket connected through the modem to host:port (a name is resolved by the modem).
 * Returns the fd (blocking, close-on-exec) or a negative errno. */
int slmsock_tcp_connect(const char* host, uint16_t port, int family);

enum slmsock_flow_state { SLMSOCK_CONNECTING = 1, SLMSOCK_CONNECTED = 2, SLMSOCK_CLOSED = 3, SLMSOCK_FAILED = 4 };

struct slmsock_flow_status {
    enum slmsock_flow_state state;
    int error;                      /* negative errno when failed, else 0 */
    struct sockaddr_storage peer;   /* the real destination */
    socklen_t peer_len;
};

/* The state of a connection made with slmsock_connect_fd(). */
int slmsock_flow_status(uint64_t flow_id, struct slmsock_flow_status* status);

/* shutdown() for a modem connection: SHUT_WR, SHUT_RD or SHUT_RDWR. */
int slmsock_shutdown(uint64_t flow_id, int how);

/* The same two calls naming the connection by its socket instead of its id: `data_local_port` is the local
 * port (getsockname) of a socket whose peer (getpeername) is the data endpoint, 127.0.0.1 or ::1 at
 * slmsock_data_port(). For code that holds only the fd (the preload shim, an fd inherited through exec). */
int slmsock_flow_status_by_port(uint16_t data_local_port, struct slmsock_flow_status* status);
int slmsock_shutdown_by_port(uint16_t data_local_port, int how);

/* slmd's loopback data endpoint port (> 0), or a negative errno. Asks slmd each time. */
int slmsock_data_port(void);

/* Resolves `name` through the modem's DNS (#XGETADDRINFO). family: AF_UNSPEC, AF_INET or AF_INET6.
 * Fills up to `capacity` addresses (port 0) and sets *count. Returns 0 or a (negative) EAI_* value; when
 * slmd cannot be asked (absent, refused, protocol error) it returns EAI_SYSTEM with errno set. */
int slmsock_resolve(const char* name, int family, struct sockaddr_storage* addresses, size_t capacity,
                    size_t* count);

struct slmsock_status {
    char modem_state[32];
    char registration[32];
    char release[32];
    char ipv4[48];
    char ipv6[64];
    uint32_t active_flows;
    uint32_t queued_flows;
};

/* The daemon's view of the modem. */
int slmsock_status(struct slmsock_status* status);

/* A static description of a return value that is a negative errno (0 gives "Success"), for messages. */
const char* slmsock_strerror(int error);

/* The same for slmsock_resolve()'s EAI_* results (gai_strerror). A separate call because glibc's EAI_*
 * values are negative too and overlap errno numbers (EAI_NONAME == -2 == -ENOENT). */
const char* slmsock_resolve_strerror(int eai_error);

#ifdef __cplusplus
}
#endif

#endif /* SLMSOCK_H */
