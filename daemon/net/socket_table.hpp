// Owns: asking the kernel about app sockets slmd cannot see closing.
//  * A loopback data connection after the app's shutdown(SHUT_WR): its later close() sends nothing on the
//    wire, so slmd looks for the app's socket losing its owner (inode 0) or going in /proc/net/tcp{,6}.
//  * An app's UDP socket or listening TCP socket that slmd serves (UDP stand-ins, modem servers): a close()
//    sends nothing to slmd at all, so slmd polls /proc/net/{udp,udp6,tcp,tcp6} for the socket at the app's
//    port and, while it is there, learns which uid owns it (so one local user cannot take over another's).
// The parsers are pure functions of the table text; the readers only add the file reads.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "wire.hpp"

namespace slmd::net {

// Pure: whether `table` (the text of /proc/net/tcp or tcp6) has a socket with local port `app_port` and remote
// port `data_port` that a process still owns.
bool app_socket_owned(std::string_view table, std::uint16_t app_port, std::uint16_t data_port);

// Reads the kernel's tables (of slmd's own network namespace, which is the app's for a loopback connection).
bool app_socket_owned(std::uint16_t app_port, std::uint16_t data_port);

// Who holds a socket: its owner's uid and its inode. The inode tells one socket from the next one at the same
// port: a port another process binds after the first closed it is a different socket, even for the same uid.
struct SocketIdentity {
    unsigned uid = 0;
    std::uint64_t inode = 0;
    bool operator==(const SocketIdentity&) const = default;
};

// Pure: the identity of the socket with local port `local_port` and remote port `remote_port` in `table` (the
// text of /proc/net/tcp or tcp6) that a process holds. For slmd's data endpoint: the app side of a loopback
// connection (its local port is the app's, its remote port slmd's). A socket whose program closed it (or died)
// after connecting is returned with inode 0 and its creator's uid: nobody can read from it any more.
std::optional<SocketIdentity> connection_owner(std::string_view table, std::uint16_t local_port,
                                               std::uint16_t remote_port);
// Reads /proc/net/tcp and tcp6.
std::optional<SocketIdentity> connection_owner(std::uint16_t local_port, std::uint16_t remote_port);

enum class SocketKind {
    udp,           // any UDP socket (/proc/net/udp, udp6)
    tcp_listener,  // a TCP socket in LISTEN state (/proc/net/tcp, tcp6); bound-only sockets are not listed
};

// Pure: the uid owning a socket with local port `port` in `table` (the text of one of the files above) that a
// process holds (inode ≠ 0) and that loopback reaches (bound to the loopback or wildcard address: slmd reaches
// app sockets only over loopback); for tcp_listener only rows in state 0A (LISTEN). nullopt when there is none.
std::optional<unsigned> socket_owner(std::string_view table, SocketKind kind, std::uint16_t port);

// Reads /proc/net/udp (Family::ipv4) or udp6 (ipv6), resp. tcp / tcp6.
std::optional<unsigned> socket_owner(SocketKind kind, slmsock::wire::Family family, std::uint16_t port);

// As socket_owner, with the socket's inode.
std::optional<SocketIdentity> socket_identity(std::string_view table, SocketKind kind, std::uint16_t port);
std::optional<SocketIdentity> socket_identity(SocketKind kind, slmsock::wire::Family family, std::uint16_t port);

// Whether some socket holds TCP port `port` on loopback (127.0.0.1 or ::1), found by trying to bind it: a
// bound-but-not-listening socket appears in no /proc table. A port that cannot be probed counts as held.
bool tcp_port_held(slmsock::wire::Family family, std::uint16_t port);

}  // namespace slmd::net
