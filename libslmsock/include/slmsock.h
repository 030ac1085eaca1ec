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

/* ---- Servers and UDP (docs/api.md, "Servers and UDP") -------------------------------------------------------
 * The application keeps a real kernel socket bound on loopback (127.0.0.1 for AF_INET, ::1 for AF_INET6) at
 * `app_port`; slmd stands in for the modem side of it. These calls are what the preload shim uses; a program
 * can use them directly the same way. */

/* Serve `modem_port` through the modem for the caller's socket bound on loopback at `app_port`.
 * type: SOCK_STREAM or SOCK_DGRAM; family: AF_INET or AF_INET6 (the family of the caller's socket).
 * SOCK_DGRAM: the modem's UDP server starts now (the call waits for the modem). SOCK_STREAM: the port is
 * reserved; the modem's TCP server starts with slmsock_listen(). The service ends when the socket is gone.
 * Returns 0, or -EBUSY (the modem's single proxy of that kind is in use), -EADDRINUSE (the port is served
 * already), -ENETDOWN (slmd absent or the modem is down), -EINVAL (a port is 0), ... */
int slmsock_bind(int type, int family, uint16_t modem_port, uint16_t app_port);

/* listen() for a TCP socket named in slmsock_bind(): starts the modem's TCP server. Each peer the modem accepts
 * arrives as an ordinary connection to the caller's listening socket, from a loopback port of slmd's (see
 * slmsock_lookup() for who it really is). Call it after the real listen(). Returns 0 or -errno (-EBUSY: the
 * TCP proxy is in use by a client connection). */
int slmsock_listen(int family, uint16_t app_port);

/* The loopback stand-in for one remote UDP peer of the caller's UDP socket bound at `app_port` (the socket
 * must be bound: port 0 is -EINVAL). Datagrams sent to 127.0.0.1:*stand_in_port (::1 for AF_INET6) go to
 * `peer` through the modem, and datagrams from `peer` arrive from there. A v4-mapped IPv6 `peer` is sent to
 * the modem as IPv4. For a socket without slmsock_bind() this opens (or re-targets) the modem's UDP client.
 * Returns 0 with *stand_in_port set; 1 when slmd says a local route reaches `peer` (use the kernel); or
 * -errno (-EBUSY: the modem's single UDP proxy serves another socket; -ENETDOWN; -EAFNOSUPPORT; ...). */
int slmsock_udp_associate(int family, uint16_t app_port, const struct sockaddr* peer, socklen_t len,
                          uint16_t* stand_in_port);

/* What the loopback addresses of the caller's socket at `app_port` stand for. type: SOCK_STREAM or SOCK_DGRAM.
 * local (if not NULL): the modem-side local address and port, e.g. the modem's address or the wildcard
 * (0.0.0.0 / ::) with the served port; *local_len is 0 when slmd has no modem-side port for the socket (a UDP
 * client). peer (if not NULL): with `loopback_peer_port` != 0, the real peer behind that loopback port of
 * slmd's (an accepted connection's peer, a UDP stand-in's peer); a TCP peer's port is 0 (the firmware does not
 * report it); *peer_len is 0 when unknown. Addresses come in their own family (an IPv4 peer of an AF_INET6
 * socket is AF_INET). Returns 0, -ENOENT when slmd knows nothing of the socket, -ENXIO when it knows the socket
 * but not `loopback_peer_port`, or -errno. */
int slmsock_lookup(int type, int family, uint16_t app_port, uint16_t loopback_peer_port,
                   struct sockaddr_storage* local, socklen_t* local_len, struct sockaddr_storage* peer,
                   socklen_t* peer_len);

#define SLMSOCK_MAX_PROXIES 8

enum slmsock_proxy_role { SLMSOCK_PROXY_NONE = 0, SLMSOCK_PROXY_CLIENT = 1, SLMSOCK_PROXY_SERVER = 2 };

struct slmsock_proxy {
    int type;                     /* SOCK_STREAM or SOCK_DGRAM */
    enum slmsock_proxy_role role; /* what the proxy does now */
    uint16_t port;                /* the destination port (client) or the served port (server) */
    char peer[64];                /* destination or current peer as text, "" when none (truncated) */
    uint32_t owner_pid;           /* the process that asked for it, 0 when unknown */
    uint64_t bytes_up;            /* to the modem */
    uint64_t bytes_down;          /* from the modem */
};

struct slmsock_proxies {
    struct slmsock_proxy proxy[SLMSOCK_MAX_PROXIES];
    size_t count;           /* entries used in proxy[] */
    uint32_t waiting;       /* requests queued for a busy proxy */
    char modem_view[257];   /* the firmware's own answer to its read commands, one line per proxy */
};

/* The modem's proxies (TCP, UDP) as slmd sees them, for operators (slmctl) and tests. 0 or -errno. */
int slmsock_proxies(struct slmsock_proxies* out);

/* ---- TLS and DTLS run by the modem (docs/tls.md) -----------------------------------------------------------
 * The nRF91 runs TLS 1.2 / DTLS 1.2 itself with credentials provisioned in its store under a sec_tag
 * (slmctl cred): the program reads and writes plaintext on an ordinary socket and no key material is on the
 * host. What each firmware release can do differs; a request it cannot honour fails with -EOPNOTSUPP (e.g.
 * peer_verify 0/1 or hostname_verify 1 before SLM v2.6, where the firmware always requires a verified peer
 * and never checks the host name). A handshake that fails (unknown CA, wrong host name, alert) fails the
 * connect with -ECONNABORTED. TLS requests always go through the modem, even to destinations slmd would
 * otherwise reach by a local route. */

#define SLMSOCK_TLS_DEFAULT (-1)  /* leave the firmware's default (docs/tls.md lists them per release) */

struct slmsock_tls {
    int sec_tag;          /* the credentials in the modem's store, 0 ... 2147483647 */
    int peer_verify;      /* 0 none, 1 optional, 2 required, or SLMSOCK_TLS_DEFAULT (2 on every release) */
    int hostname_verify;  /* 0 off, 1 on, or SLMSOCK_TLS_DEFAULT (on from v2.6; there is no check before) */
    int dtls_cid;         /* DTLS connection id: 0 disabled, 1 supported, 2 enabled, or SLMSOCK_TLS_DEFAULT */
    const char* hostname; /* what the modem connects to and verifies; NULL: the numeric address */
};

/* Fills *tls with sec_tag and every other choice at SLMSOCK_TLS_DEFAULT. */
void slmsock_tls_init(struct slmsock_tls* tls, int sec_tag);

/* slmsock_connect_fd() with TLS by the modem. Same blocking/non-blocking behaviour and return values; never
 * 1 (a TLS request never takes a local route). */
int slmsock_tls_connect_fd(int fd, const struct sockaddr* addr, socklen_t addrlen, const struct slmsock_tls* tls,
                           uint64_t* flow_id);

/* slmsock_tcp_connect() with TLS by the modem. When `host` is a name and tls->hostname is NULL, the modem
 * connects to and verifies `host`. Returns the fd (plaintext to the program) or a negative errno. */
int slmsock_tls_connect(const char* host, uint16_t port, int family, const struct slmsock_tls* tls);

/* slmsock_udp_associate() with DTLS by the modem for the client toward `peer` (the handshake runs when the
 * modem's UDP client opens: -ECONNABORTED when it fails, -ETIMEDOUT after 10 s without an answer). */
int slmsock_dtls_associate(int family, uint16_t app_port, const struct sockaddr* peer, socklen_t len,
                           const struct slmsock_tls* tls, uint16_t* stand_in_port);

/* ---- Operators (slmctl) ------------------------------------------------------------------------------------ */

struct slmsock_latency {
    uint32_t p50_us;   /* median, microseconds (a log-scaled bucket's bound: within 25 %) */
    uint32_t p99_us;
    uint64_t samples;
};

/* Counters since slmd started. "up" = application → modem, "down" = modem → application. */
struct slmsock_stats {
    uint64_t uptime_s;
    uint64_t tcp_bytes_up, tcp_bytes_down;
    uint64_t udp_bytes_up, udp_bytes_down;
    uint64_t udp_datagrams_up, udp_datagrams_down;
    uint64_t flows_opened, flows_failed;
    uint64_t tcp_dropped_app_gone;    /* modem bytes for an app that had already closed */
    uint64_t tcp_dropped_peer_gone;   /* app bytes after the peer closed (the app saw ECONNRESET) */
    uint64_t tcp_refused_busy;        /* connects refused with EBUSY (queue full, proxy held by a server) */
    uint64_t udp_dropped_not_last_peer, udp_dropped_too_big, udp_dropped_busy, udp_dropped_no_proxy;
    uint64_t udp_dropped_queue_full, udp_dropped_send_failed, udp_dropped_app_gone;
    uint64_t udp_suspensions;         /* UDP proxy closed around a TCP data-mode session */
    uint64_t udp_refused_tcp_busy;    /* datagrams needing data mode refused while TCP was open */
    uint64_t data_mode_sessions;
    uint64_t at_commands, at_errors, at_timeouts;
    uint64_t modem_resets;            /* firmware reboots seen while up, administrators' resets included */
    uint64_t admin_resets;
    uint64_t registration_losses;
    uint64_t recoveries;              /* bring-ups after the first */
    uint64_t recovery_backoffs;       /* times the recovery budget was spent */
    struct slmsock_latency downlink;  /* chunk or datagram parsed off the UART → written to the app (TCP+UDP) */
    struct slmsock_latency uplink;    /* bytes read from the app → their last byte written to the UART (TCP+UDP) */
};

/* slmd's counters and latency. Open to every client slmd serves. 0 or -errno. */
int slmsock_stats(struct slmsock_stats* stats);

enum slmsock_at_final { SLMSOCK_AT_OK = 0, SLMSOCK_AT_ERROR = 1, SLMSOCK_AT_CME_ERROR = 2, SLMSOCK_AT_CMS_ERROR = 3 };

struct slmsock_at_answer {
    enum slmsock_at_final final;  /* the modem's final result */
    int code;                     /* n of "+CME ERROR: n" / "+CMS ERROR: n", else 0 */
    size_t line_count;            /* information lines the modem sent (all of them, even if cut from `lines`) */
    int truncated;                /* 1 when `lines` could not hold every line */
};

#define SLMSOCK_AT_MAX_COMMAND 256  /* characters of one command line */

/* Sends one AT command line (e.g. "AT+CGMR"; printable ASCII, no CR/LF, at most SLMSOCK_AT_MAX_COMMAND) through
 * slmd's own AT channel, after the command in flight and any data-mode session. Administrators only: root,
 * slmd's user, or a member of slmd's admin-group. Commands that would break slmd's state (radio, reset,
 * URC/echo/format settings, the modem's sockets and proxies, data mode) are refused unless `force` is non-zero;
 * their read (?) and test (=?) forms are always allowed. timeout_ms: 0 = slmd's default (10 s), at most 300000.
 * `lines` (if not NULL, `size` bytes) receives the information lines, each ended by '\n', NUL-terminated; whole
 * lines only. Returns 0 when the modem answered (then see answer->final: an ERROR is still 0), or:
 *   -EACCES   not an administrator          -EPERM     refused: would break slmd's state (see force)
 *   -EINVAL   not a valid command line      -ENETDOWN  slmd absent, or the modem not up
 *   -ETIMEDOUT no final result in time      -ECONNRESET the modem reset before it answered
 *   -EFAULT   command or answer is NULL
 * With -EPERM, -EINVAL, -ENETDOWN (from slmd), -ETIMEDOUT and -ECONNRESET, `lines` holds slmd's one-line reason. */
int slmsock_at(const char* command, int force, uint32_t timeout_ms, struct slmsock_at_answer* answer, char* lines,
               size_t size);

/* Graceful modem reset (administrators only): open connections are reset (ECONNRESET), the radio switched off
 * (AT+CFUN=0), the firmware reset, and the modem brought up again. Returns once the reset has started: 0, or
 * -EAGAIN (slmd's recovery budget — recovery-max per recovery-window-ms — has no room: a reset now would risk
 * the nRF91's 30-minute reset-loop lock-out; try again later), -EACCES, -ENETDOWN (slmd absent or the modem
 * not up), -EBUSY (a reset or stop is under way). */
int slmsock_reset(void);

/* The modem's credential store (TLS/DTLS run by the modem, docs/credentials.md). Administrators only, like
 * slmsock_at. Content is never logged by slmd. */
enum slmsock_credential_type {
    SLMSOCK_CRED_CA = 0,           /* root CA certificate(s), PEM */
    SLMSOCK_CRED_CERTIFICATE = 1,  /* client certificate, PEM */
    SLMSOCK_CRED_PRIVATE_KEY = 2,  /* client private key, PEM */
    SLMSOCK_CRED_PSK = 3,          /* pre-shared key, hex digits (an even number) */
    SLMSOCK_CRED_PSK_IDENTITY = 4, /* PSK identity, printable ASCII */
};

#define SLMSOCK_CRED_MAX_LENGTH 4000  /* bytes of one credential's content */
#define SLMSOCK_CRED_MAX_ENTRIES 48   /* entries one list answer holds */

struct slmsock_credential {
    int sec_tag;      /* 0 … 2147483647 */
    int type;         /* an slmsock_credential_type */
    char sha256[65];  /* SHA-256 of the stored content as the modem reports it (upper-case hex), "" when it
                         reports none (firmware built with native TLS) */
};

/* Stores `length` bytes of `content` as credential `type` of `sec_tag`, replacing one that is there. PEM for
 * types 0-2 (line endings are stored as LF), hex for a PSK, one line of printable ASCII for an identity; no '"'
 * or NUL. On the default firmware build the modem's radio is switched off for the write (AT+CFUN=4 … AT+CFUN=1)
 * and the call returns once the modem serves again: with a TCP connection, TCP server or UDP proxy open this is
 * refused with -EBUSY unless `force` is non-zero, which resets them (their apps see ECONNRESET). Returns 0, or:
 *   -EACCES   not an administrator, or the modem refused (+CME ERROR: 514)
 *   -EINVAL   sec_tag, type or content not acceptable     -EMSGSIZE content over SLMSOCK_CRED_MAX_LENGTH
 *   -EBUSY    connections open (see force), another credential operation under way, or the modem's store busy
 *   -ENOSPC   the modem's store is full                   -EIO       the modem refused otherwise
 *   -ENETDOWN slmd absent, or the modem not up            -ETIMEDOUT, -ECONNRESET  the modem did not answer
 *   -EFAULT   content is NULL
 * slmsock_cred_message() then says why in one line. */
int slmsock_cred_write(int sec_tag, int type, const char* content, size_t length, int force);

/* Lists stored credentials: sec_tag and type -1 for all. Up to `capacity` entries go to `out`; `*count` is set to
 * how many the modem reported (at most SLMSOCK_CRED_MAX_ENTRIES; more than `capacity` means `out` was too small).
 * Allowed in any radio state. 0, or -EACCES, -EINVAL, -EIO, -ENETDOWN, -ETIMEDOUT, -EFAULT (count NULL, or out
 * NULL with capacity > 0). */
int slmsock_cred_list(int sec_tag, int type, struct slmsock_credential* out, size_t capacity, size_t* count);

/* Deletes credential `type` of `sec_tag`; the radio and `force` as for slmsock_cred_write. 0, or -ENOENT (no such
 * credential, +CME ERROR: 513) and the errors of slmsock_cred_write. */
int slmsock_cred_delete(int sec_tag, int type, int force);

/* slmd's one-line reason for the calling thread's last slmsock_cred_* call that failed ("" when none; the
 * message of a list that had more entries than one answer holds). Valid until the thread's next cred call. */
const char* slmsock_cred_message(void);

/* A static description of a return value that is a negative errno (0 gives "Success"), for messages. */
const char* slmsock_strerror(int error);

/* The same for slmsock_resolve()'s EAI_* results (gai_strerror). A separate call because glibc's EAI_*
 * values are negative too and overlap errno numbers (EAI_NONAME == -2 == -ENOENT). */
const char* slmsock_resolve_strerror(int eai_error);

#ifdef __cplusplus
}
#endif

#endif /* SLMSOCK_H */
