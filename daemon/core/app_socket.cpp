// Owns: requester checks and address helpers (see app_socket.hpp).
#include "core/app_socket.hpp"

#include <arpa/inet.h>

#include <cerrno>

namespace slmd::core {

namespace wire = slmsock::wire;

int check_owner(const Requester& requester, std::optional<unsigned> owner) {
    if (!owner) return -ENOENT;
    if (requester.uid != 0 && *owner != requester.uid) return -EPERM;
    return 0;
}

std::optional<wire::Address> parse_address(const std::string& text) {
    wire::Address address;
    if (inet_pton(AF_INET, text.c_str(), address.bytes.data()) == 1) {
        address.family = wire::Family::ipv4;
        return address;
    }
    address.bytes = {};
    if (inet_pton(AF_INET6, text.c_str(), address.bytes.data()) == 1) {
        address.family = wire::Family::ipv6;
        return address;
    }
    return std::nullopt;
}

std::string address_text(const wire::Address& address) {
    char text[INET6_ADDRSTRLEN] = {};
    const int family = address.family == wire::Family::ipv6 ? AF_INET6 : AF_INET;
    inet_ntop(family, address.bytes.data(), text, sizeof text);
    return text;
}

wire::Address unspecified(wire::Family family) {
    wire::Address address;
    address.family = family == wire::Family::ipv6 ? wire::Family::ipv6 : wire::Family::ipv4;
    return address;
}

}  // namespace slmd::core
