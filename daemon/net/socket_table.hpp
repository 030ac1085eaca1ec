// Owns: asking the kernel whether the app still holds its end of a loopback data connection. After an app's
// shutdown(SHUT_WR), its later close() sends nothing on the wire, so slmd cannot see it on its own socket;
// the kernel's TCP table (/proc/net/tcp, tcp6) shows the app's socket losing its owner (inode 0) or going.
#pragma once

#include <cstdint>
#include <string_view>

namespace slmd::net {

// Pure: whether `table` (the text of /proc/net/tcp or tcp6) has a socket with local port `app_port` and remote
// port `data_port` that a process still owns.
bool app_socket_owned(std::string_view table, std::uint16_t app_port, std::uint16_t data_port);

// Reads the kernel's tables (of slmd's own network namespace, which is the app's for a loopback connection).
bool app_socket_owned(std::uint16_t app_port, std::uint16_t data_port);

}  // namespace slmd::net
