// Owns: deciding whether a destination goes through the modem or is reached by a local route (loopback, a
// configured CIDR, any kernel route other than the default route). Routes come from the kernel through
// libnl-route; the decision itself is a pure longest-prefix match, tested without netlink.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "wire.hpp"

namespace slmd::net {

struct Prefix {
    slmsock::wire::Family family = slmsock::wire::Family::ipv4;
    std::array<std::uint8_t, 16> bytes{};
    int length = 0;  // bits
    bool operator==(const Prefix&) const = default;
};

// "10.0.0.0/8", "192.168.1.7", "fd00::/8"; nullopt for anything else.
std::optional<Prefix> parse_prefix(std::string_view text);
bool prefix_contains(const Prefix& prefix, const slmsock::wire::Address& address);

// Pure decision: true (bypass) for loopback, a configured prefix, or a best-matching kernel route that is
// not a default route.
bool should_bypass(const slmsock::wire::Address& destination, const std::vector<Prefix>& configured,
                   const std::vector<Prefix>& kernel_routes);

class RoutePolicy {
public:
    explicit RoutePolicy(std::vector<Prefix> configured) : configured_(std::move(configured)) {}
    // Reads the kernel's routes (main and local tables) and decides. A netlink failure means "modem".
    bool bypass(const slmsock::wire::Address& destination) const;
    // The kernel's unicast/local route prefixes, or an empty list if netlink fails.
    static std::vector<Prefix> kernel_routes();

private:
    std::vector<Prefix> configured_;
};

}  // namespace slmd::net
