// Owns: deciding whether a destination goes through the modem or is reached by a local route (loopback, a
// configured CIDR, any kernel route other than the default route). Routes come from the kernel through
// libnl-route: a cache manager subscribed to route and link notifications keeps the table current on the
// daemon's io_context, so a decision costs no netlink round trip and sees a route added or removed, or a link
// going down, at once. The decision itself is a pure longest-prefix match, tested without netlink.
#pragma once

#include <array>
#include <boost/asio/any_io_executor.hpp>
#include <cstdint>
#include <memory>
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
    explicit RoutePolicy(std::vector<Prefix> configured);
    ~RoutePolicy();
    RoutePolicy(const RoutePolicy&) = delete;
    RoutePolicy& operator=(const RoutePolicy&) = delete;

    // Subscribes to the kernel's route and link changes, served on `executor`; decisions then use the kept
    // table. Returns false (and logs why) if netlink refuses: decisions then read the routes each time, as
    // before, and a netlink failure there means "modem" (only loopback and configured prefixes bypass).
    bool watch(const boost::asio::any_io_executor& executor);
    // Decides with the kept table (or a fresh read without a watch); logs the decision at debug level.
    bool bypass(const slmsock::wire::Address& destination) const;
    // The kernel's unicast/local route prefixes (main and local tables) in one dump, empty if netlink fails.
    static std::vector<Prefix> kernel_routes();

  private:
    class Watch;
    std::vector<Prefix> configured_;
    std::unique_ptr<Watch> watch_;
};

}  // namespace slmd::net
