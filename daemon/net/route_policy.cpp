// Owns: the modem-or-local-route decision (see route_policy.hpp).
#include "net/route_policy.hpp"

#include <arpa/inet.h>
#include <linux/rtnetlink.h>
#include <netlink/netlink.h>
#include <netlink/route/route.h>

#include <charconv>
#include <cstring>

namespace slmd::net {

namespace wire = slmsock::wire;

std::optional<Prefix> parse_prefix(std::string_view text) {
    Prefix prefix;
    std::string address(text.substr(0, text.find('/')));
    if (inet_pton(AF_INET, address.c_str(), prefix.bytes.data()) == 1) {
        prefix.family = wire::Family::ipv4;
        prefix.length = 32;
    } else if (inet_pton(AF_INET6, address.c_str(), prefix.bytes.data()) == 1) {
        prefix.family = wire::Family::ipv6;
        prefix.length = 128;
    } else {
        return std::nullopt;
    }
    if (auto slash = text.find('/'); slash != std::string_view::npos) {
        auto length_text = text.substr(slash + 1);
        int length = -1;
        auto [end, ec] = std::from_chars(length_text.data(), length_text.data() + length_text.size(), length);
        if (ec != std::errc{} || end != length_text.data() + length_text.size() || length < 0 || length > prefix.length)
            return std::nullopt;
        prefix.length = length;
    }
    return prefix;
}

bool prefix_contains(const Prefix& prefix, const wire::Address& address) {
    if (prefix.family != address.family) return false;
    int bits = prefix.length;
    for (std::size_t i = 0; bits > 0; ++i, bits -= 8) {
        const std::uint8_t mask = bits >= 8 ? 0xff : static_cast<std::uint8_t>(0xff << (8 - bits));
        if ((prefix.bytes[i] & mask) != (address.bytes[i] & mask)) return false;
    }
    return true;
}

namespace {

bool is_loopback(const wire::Address& address) {
    if (address.family == wire::Family::ipv4) return address.bytes[0] == 127;
    static const std::array<std::uint8_t, 16> ipv6_loopback{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    if (address.bytes == ipv6_loopback) return true;
    // ::ffff:127.x.y.z
    static const std::uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return std::memcmp(address.bytes.data(), mapped, 12) == 0 && address.bytes[12] == 127;
}

}  // namespace

bool should_bypass(const wire::Address& destination, const std::vector<Prefix>& configured,
                   const std::vector<Prefix>& kernel_routes) {
    if (is_loopback(destination)) return true;
    for (const auto& prefix : configured) {
        if (prefix_contains(prefix, destination)) return true;
    }
    int best = -1;
    for (const auto& route : kernel_routes) {
        if (route.length > best && prefix_contains(route, destination)) best = route.length;
    }
    return best > 0;
}

std::vector<Prefix> RoutePolicy::kernel_routes() {
    std::vector<Prefix> routes;
    nl_sock* sock = nl_socket_alloc();
    if (!sock) return routes;
    nl_cache* cache = nullptr;
    if (nl_connect(sock, NETLINK_ROUTE) == 0 && rtnl_route_alloc_cache(sock, AF_UNSPEC, 0, &cache) == 0) {
        for (nl_object* object = nl_cache_get_first(cache); object; object = nl_cache_get_next(object)) {
            auto* route = reinterpret_cast<rtnl_route*>(object);
            const auto table = rtnl_route_get_table(route);
            const auto type = rtnl_route_get_type(route);
            if (table != RT_TABLE_MAIN && table != RT_TABLE_LOCAL) continue;
            if (type != RTN_UNICAST && type != RTN_LOCAL) continue;
            Prefix prefix;
            const int family = rtnl_route_get_family(route);
            if (family == AF_INET) {
                prefix.family = wire::Family::ipv4;
            } else if (family == AF_INET6) {
                prefix.family = wire::Family::ipv6;
            } else {
                continue;
            }
            nl_addr* destination = rtnl_route_get_dst(route);
            if (destination) {
                prefix.length = static_cast<int>(nl_addr_get_prefixlen(destination));
                const auto length = std::min<std::size_t>(nl_addr_get_len(destination), prefix.bytes.size());
                std::memcpy(prefix.bytes.data(), nl_addr_get_binary_addr(destination), length);
            }
            routes.push_back(prefix);
        }
        nl_cache_free(cache);
    }
    nl_socket_free(sock);
    return routes;
}

bool RoutePolicy::bypass(const wire::Address& destination) const {
    return should_bypass(destination, configured_, kernel_routes());
}

}  // namespace slmd::net
