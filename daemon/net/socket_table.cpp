// Owns: the app-socket ownership check (see socket_table.hpp).
#include "net/socket_table.hpp"

#include <charconv>
#include <optional>
#include <fstream>
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

}  // namespace

bool app_socket_owned(std::string_view table, std::uint16_t app_port, std::uint16_t data_port) {
    std::size_t start = 0;
    while (start < table.size()) {
        auto end = table.find('\n', start);
        if (end == std::string_view::npos) end = table.size();
        std::istringstream fields{std::string(table.substr(start, end - start))};
        start = end + 1;
        // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
        std::string slot, local, remote, state, queues, timer, retransmits, uid, timeout, inode;
        if (!(fields >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid >> timeout >> inode))
            continue;
        if (port_of(local) != app_port || port_of(remote) != data_port) continue;
        if (inode != "0") return true;
    }
    return false;
}

bool app_socket_owned(std::uint16_t app_port, std::uint16_t data_port) {
    for (const char* path : {"/proc/net/tcp", "/proc/net/tcp6"}) {
        std::ifstream file(path);
        if (!file) continue;
        std::stringstream text;
        text << file.rdbuf();
        if (app_socket_owned(text.str(), app_port, data_port)) return true;
    }
    return false;
}

}  // namespace slmd::net
