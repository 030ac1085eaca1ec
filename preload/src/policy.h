/* policy.h — the pure decisions of the preload shim: which destinations stay local, how a modem flow's real
 * destination is shown to the application, which names the C library resolves, and error mapping.
 * No I/O except hosts_text_lists()'s caller reading a file; everything here is unit-tested on its own. */
#ifndef SLMSOCK_PRELOAD_POLICY_H
#define SLMSOCK_PRELOAD_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SLMSOCK_PL_HIDDEN __attribute__((visibility("hidden")))

/* A destination the kernel delivers on this host: 127.0.0.0/8, ::1, ::ffff:127.0.0.0/104, and the
 * unspecified addresses 0.0.0.0, :: and ::ffff:0.0.0.0 (Linux connects those to the local host).
 * False for anything that is not a complete AF_INET/AF_INET6 address. */
SLMSOCK_PL_HIDDEN bool slmsock_pl_is_local_destination(const struct sockaddr* addr, socklen_t len);

/* True when `peer` is slmd's loopback data endpoint: 127.0.0.1, ::1 or ::ffff:127.0.0.1 at `data_port`. */
SLMSOCK_PL_HIDDEN bool slmsock_pl_is_data_endpoint(const struct sockaddr* peer, socklen_t len, uint16_t data_port);

/* True when `addr` is a loopback address (any port), i.e. a possible local end of a data connection. */
SLMSOCK_PL_HIDDEN bool slmsock_pl_is_loopback(const struct sockaddr* addr, socklen_t len);

/* The port of an AF_INET/AF_INET6 address in host order, 0 otherwise. */
SLMSOCK_PL_HIDDEN uint16_t slmsock_pl_port(const struct sockaddr* addr, socklen_t len);

/* Writes `dest` as the socket of family `socket_family` would report it (an IPv4 destination on an AF_INET6
 * socket becomes ::ffff:a.b.c.d) into `out`, truncated to *out_len bytes as the kernel does, and sets
 * *out_len to the full length. Returns false (nothing written) if the combination is impossible. */
SLMSOCK_PL_HIDDEN bool slmsock_pl_fill_address(int socket_family, const struct sockaddr* dest, socklen_t dest_len,
                                               struct sockaddr* out, socklen_t* out_len);

/* An IP literal getaddrinfo() would accept without any lookup ("10.1", "0x7f.1", "fe80::1%eth0", ...). */
SLMSOCK_PL_HIDDEN bool slmsock_pl_is_numeric_host(const char* name);

/* "localhost", "localhost." and names under .localhost (RFC 6761): always the C library's. */
SLMSOCK_PL_HIDDEN bool slmsock_pl_is_localhost_name(const char* name);

/* True when the hosts(5)-format text lists `name` (case-insensitive) as a canonical name or alias. */
SLMSOCK_PL_HIDDEN bool slmsock_pl_hosts_text_lists(const char* text, size_t len, const char* name);

/* Maps a slmsock_resolve() failure to a getaddrinfo() EAI_* code: EAI_* values pass, anything else (slmd
 * unreachable, an errno) is EAI_AGAIN. */
SLMSOCK_PL_HIDDEN int slmsock_pl_resolve_error_to_eai(int rc);

/* Maps a getaddrinfo() EAI_* code to an h_errno value for the gethostbyname family. */
SLMSOCK_PL_HIDDEN int slmsock_pl_eai_to_h_errno(int eai);

/* Removes repeated addresses (SLM repeats the first answer once per result), keeping the first occurrence's
 * order. Returns the new count. */
SLMSOCK_PL_HIDDEN size_t slmsock_pl_dedupe(struct sockaddr_storage* addresses, size_t count);

/* ---- Servers and UDP ---------------------------------------------------------------------------------- */

/* The unspecified ("any") address: 0.0.0.0, :: or ::ffff:0.0.0.0. */
SLMSOCK_PL_HIDDEN bool slmsock_pl_is_wildcard(const struct sockaddr* addr, socklen_t len);

/* The loopback host address slmd uses for its stand-ins and connections: exactly 127.0.0.1, ::1 or
 * ::ffff:127.0.0.1 (any port). Other 127/8 addresses are never slmd's. */
SLMSOCK_PL_HIDDEN bool slmsock_pl_is_loopback_host(const struct sockaddr* addr, socklen_t len);

/* Writes the loopback host of `family` (127.0.0.1 for AF_INET, ::1 for AF_INET6) with `port` into `out`; 0 for
 * another family, else the address length. Used for the shim's own binds and for slmd's stand-ins. */
SLMSOCK_PL_HIDDEN socklen_t slmsock_pl_loopback(int family, uint16_t port, struct sockaddr_storage* out);

/* The wildcard address of `family` with `port` (0.0.0.0 / ::); 0 for another family, else the length. */
SLMSOCK_PL_HIDDEN socklen_t slmsock_pl_wildcard(int family, uint16_t port, struct sockaddr_storage* out);

/* True when `addr` (AF_INET, AF_INET6 or v4-mapped) is the host address written as `text` (the modem's IPv4 or
 * IPv6 address as slmd reports it; "" never matches). */
SLMSOCK_PL_HIDDEN bool slmsock_pl_address_is(const struct sockaddr* addr, socklen_t len, const char* text);

/* Copies the `full_len` bytes of `full` to `out` truncated to *out_len, and sets *out_len to full_len: what the
 * kernel does for every address it returns (accept, getsockname, recvfrom, ...). */
SLMSOCK_PL_HIDDEN void slmsock_pl_copy_address(const void* full, socklen_t full_len, struct sockaddr* out,
                                               socklen_t* out_len);

/* SLMSOCK_LISTEN: where a bind() to the wildcard address with a port is served. */
enum slmsock_pl_listen { SLMSOCK_PL_LISTEN_MODEM, SLMSOCK_PL_LISTEN_LOCAL };
/* "modem" → modem; NULL, "", "local" or anything else → local (the documented default: an unmodified program's
 * wildcard server stays reachable from this host, and nothing is exposed on the cellular side unasked). */
SLMSOCK_PL_HIDDEN enum slmsock_pl_listen slmsock_pl_listen_policy(const char* value);

#ifdef __cplusplus
}
#endif

#endif
