// Owns: the kernel socket-table questions (see socket_table.hpp).
#include "net/socket_table.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace slmd::net {

namespace {

std::optional<std::uint16_t> port_of(std::string_view address) {
    auto colon = address.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    unsigned value = 0;
    auto text = address.substr(colon + 1);
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, 16);
    if (ec != std::errc{} || end != text.data() + text.size() || value > 0xffff) return std::nullopt;
    return static_cast<std::uint16_t>(value);
}

// One row of a /proc/net/{tcp,udp}{,6} table:
// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
struct Row {
    std::string local, remote, state, uid, inode;
};

template <typename Visit>
void for_each_row(std::string_view table, Visit visit) {
    std::size_t start = 0;
    while (start < table.size()) {
        auto end = table.find('\n', start);
        if (end == std::string_view::npos) end = table.size();
        std::istringstream fields{std::string(table.substr(start, end - start))};
        start = end + 1;
        Row row;
        std::string slot, queues, timer, retransmits, timeout;
        if (!(fields >> slot >> row.local >> row.remote >> row.state >> queues >> timer >> retransmits >> row.uid >>
              timeout >> row.inode))
            continue;
        if (visit(row)) return;
    }
}

std::string read_file(const char* path) {
    std::ifstream file(path);
    if (!file) return {};
    std::stringstream text;
    text << file.rdbuf();
    return text.str();
}

}  // namespace

bool app_socket_owned(std::string_view table, std::uint16_t app_port, std::uint16_t data_port) {
    bool owned = false;
    for_each_row(table, [&](const Row& row) {
        if (port_of(row.local) != app_port || port_of(row.remote) != data_port) return false;
        owned = row.inode != "0";
        return owned;
    });
    return owned;
}

bool app_socket_owned(std::uint16_t app_port, std::uint16_t data_port) {
    for (const char* path : {"/proc/net/tcp", "/proc/net/tcp6"}) {
        if (app_socket_owned(read_file(path), app_port, data_port)) return true;
    }
    return false;
}

namespace {

// `orphaned_too`: an orphaned socket (inode 0: its process closed it or died; the kernel still finishes the
// connection) keeps its creator's uid and is returned with inode 0.
std::optional<SocketIdentity> identity_of(const Row& row, bool orphaned_too = false) {
    SocketIdentity identity;
    auto [uid_end, uid_ec] = std::from_chars(row.uid.data(), row.uid.data() + row.uid.size(), identity.uid);
    if (uid_ec != std::errc{} || uid_end != row.uid.data() + row.uid.size()) return std::nullopt;
    auto [inode_end, inode_ec] = std::from_chars(row.inode.data(), row.inode.data() + row.inode.size(), identity.inode);
    if (inode_ec != std::errc{} || inode_end != row.inode.data() + row.inode.size()) return std::nullopt;
    if (identity.inode == 0 && !orphaned_too) return std::nullopt;  // no process holds it
    return identity;
}

// Whether a socket bound to this local address (the table's hex text, "ADDR:PORT") receives what is sent to
// the loopback address of its family: bound to it or to the wildcard. slmd only ever reaches app sockets
// over loopback, and another socket may share the port on another address (a host address, 127.0.0.2).
bool reaches_loopback(std::string_view local) {
    const auto address = local.substr(0, local.rfind(':'));
    return address == "00000000" || address == "0100007F" ||                         // 0.0.0.0, 127.0.0.1
           address == "00000000000000000000000000000000" ||                          // ::
           address == "00000000000000000000000001000000" ||                          // ::1
           address == "0000000000000000FFFF00000100007F";                            // ::ffff:127.0.0.1
}

const char* table_path(SocketKind kind, slmsock::wire::Family family) {
    const bool v6 = family == slmsock::wire::Family::ipv6;
    return kind == SocketKind::udp ? (v6 ? "/proc/net/udp6" : "/proc/net/udp")
                                   : (v6 ? "/proc/net/tcp6" : "/proc/net/tcp");
}

}  // namespace

std::optional<SocketIdentity> connection_owner(std::string_view table, std::uint16_t local_port,
                                               std::uint16_t remote_port) {
    std::optional<SocketIdentity> owner;
    for_each_row(table, [&](const Row& row) {
        if (port_of(row.local) != local_port || port_of(row.remote) != remote_port) return false;
        owner = identity_of(row, true);
        return owner.has_value();
    });
    return owner;
}

std::optional<SocketIdentity> connection_owner(std::uint16_t local_port, std::uint16_t remote_port) {
    for (const char* path : {"/proc/net/tcp", "/proc/net/tcp6"}) {
        if (auto owner = connection_owner(read_file(path), local_port, remote_port)) return owner;
    }
    return std::nullopt;
}

std::optional<SocketIdentity> socket_identity(std::string_view table, SocketKind kind, std::uint16_t port) {
    std::optional<SocketIdentity> identity;
    for_each_row(table, [&](const Row& row) {
        if (port_of(row.local) != port || !reaches_loopback(row.local)) return false;
        if (kind == SocketKind::tcp_listener && row.state != "0A") return false;
        identity = identity_of(row);
        return identity.has_value();
    });
    return identity;
}

std::optional<SocketIdentity> socket_identity(SocketKind kind, slmsock::wire::Family family, std::uint16_t port) {
    return socket_identity(read_file(table_path(kind, family)), kind, port);
}

std::optional<unsigned> socket_owner(std::string_view table, SocketKind kind, std::uint16_t port) {
    if (auto identity = socket_identity(table, kind, port)) return identity->uid;
    return std::nullopt;
}

std::optional<unsigned> socket_owner(SocketKind kind, slmsock::wire::Family family, std::uint16_t port) {
    return socket_owner(read_file(table_path(kind, family)), kind, port);
}

bool tcp_port_held(slmsock::wire::Family family, std::uint16_t port) {
    const bool v6 = family == slmsock::wire::Family::ipv6;
    const int fd = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return true;
    int result = 0;
    if (v6) {
        sockaddr_in6 address{};
        address.sin6_family = AF_INET6;
        address.sin6_addr = in6addr_loopback;
        address.sin6_port = htons(port);
        result = ::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address);
    } else {
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        address.sin_port = htons(port);
        result = ::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address);
    }
    const int error = result == 0 ? 0 : errno;
    ::close(fd);
    return result != 0 && error != EADDRNOTAVAIL;  // EADDRNOTAVAIL: no such loopback here, nothing can hold it
}

}  // namespace slmd::net
