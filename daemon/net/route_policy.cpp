// Owns: the modem-or-local-route decision (see route_policy.hpp).
#include "net/route_policy.hpp"

#include <arpa/inet.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netlink/cache.h>
#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <netlink/route/route.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <charconv>
#include <cstring>

#include "sys/lifetime.hpp"
#include "sys/log.hpp"

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
        if (ec != std::errc{} || end != length_text.data() + length_text.size() || length < 0 ||
            length > prefix.length)
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

namespace {

// One kernel route as a prefix if it counts for the decision: main or local table, unicast or local type,
// IPv4 or IPv6 and, when the links are known, at least one next hop on a link that is up (IPv6 keeps routes
// over a link that went down; they must not keep a destination off the modem).
std::optional<Prefix> route_prefix(rtnl_route* route, nl_cache* links) {
    const auto table = rtnl_route_get_table(route);
    const auto type = rtnl_route_get_type(route);
    if (table != RT_TABLE_MAIN && table != RT_TABLE_LOCAL) return std::nullopt;
    if (type != RTN_UNICAST && type != RTN_LOCAL) return std::nullopt;
    Prefix prefix;
    const int family = rtnl_route_get_family(route);
    if (family == AF_INET) {
        prefix.family = wire::Family::ipv4;
    } else if (family == AF_INET6) {
        prefix.family = wire::Family::ipv6;
    } else {
        return std::nullopt;
    }
    if (links) {
        const int hops = rtnl_route_get_nnexthops(route);
        bool up = hops == 0;
        for (int i = 0; i < hops && !up; ++i) {
            rtnl_link* link = rtnl_link_get(links, rtnl_route_nh_get_ifindex(rtnl_route_nexthop_n(route, i)));
            // A link the cache does not know (yet): trust the kernel, which still has the route.
            up = !link || (rtnl_link_get_flags(link) & IFF_UP) != 0;
            if (link) rtnl_link_put(link);
        }
        if (!up) return std::nullopt;
    }
    nl_addr* destination = rtnl_route_get_dst(route);
    if (destination) {
        prefix.length = static_cast<int>(nl_addr_get_prefixlen(destination));
        const auto length = std::min<std::size_t>(nl_addr_get_len(destination), prefix.bytes.size());
        std::memcpy(prefix.bytes.data(), nl_addr_get_binary_addr(destination), length);
    }
    return prefix;
}

std::vector<Prefix> prefixes_of(nl_cache* routes, nl_cache* links) {
    std::vector<Prefix> prefixes;
    for (nl_object* object = nl_cache_get_first(routes); object; object = nl_cache_get_next(object)) {
        if (auto prefix = route_prefix(reinterpret_cast<rtnl_route*>(object), links))
            prefixes.push_back(*prefix);
    }
    return prefixes;
}

std::string address_text(const wire::Address& address) {
    char text[INET6_ADDRSTRLEN] = {};
    inet_ntop(address.family == wire::Family::ipv6 ? AF_INET6 : AF_INET, address.bytes.data(), text,
              sizeof text);
    return text;
}

}  // namespace

// The kernel's routes and links, kept current by netlink notifications read on the io_context.
class RoutePolicy::Watch {
  public:
    explicit Watch(const boost::asio::any_io_executor& executor) : descriptor_(executor) {}
    ~Watch() {
        lifetime_.end();
        // The descriptor is libnl's socket: give it back instead of closing it, libnl frees it.
        if (descriptor_.is_open()) descriptor_.release();
        if (manager_) nl_cache_mngr_free(manager_);
        if (sync_) nl_socket_free(sync_);
    }
    Watch(const Watch&) = delete;
    Watch& operator=(const Watch&) = delete;

    std::string start() {
        if (int error = nl_cache_mngr_alloc(nullptr, NETLINK_ROUTE, 0, &manager_); error < 0)
            return std::string("cache manager: ") + nl_geterror(error);
        // Links first, so the first route table already knows which links are down.
        if (int error = nl_cache_mngr_add(manager_, "route/link", &Watch::changed, this, &links_); error < 0)
            return std::string("link cache: ") + nl_geterror(error);
        if (int error = nl_cache_mngr_add(manager_, "route/route", &Watch::changed, this, &routes_);
            error < 0)
            return std::string("route cache: ") + nl_geterror(error);
        sync_ = nl_socket_alloc();
        if (!sync_) return "no memory for a netlink socket";
        if (int error = nl_connect(sync_, NETLINK_ROUTE); error < 0)
            return std::string("netlink socket: ") + nl_geterror(error);
        boost::system::error_code error;
        descriptor_.assign(nl_cache_mngr_get_fd(manager_), error);
        if (error) return "netlink descriptor: " + error.message();
        rebuild();
        wait();
        return {};
    }

    const std::vector<Prefix>& table() const { return table_; }

  private:
    static void changed(nl_cache* cache, nl_object*, int, void* self) {
        auto* watch = static_cast<Watch*>(self);
        watch->dirty_ = true;
        if (cache == watch->links_) watch->links_changed_ = true;
    }

    void wait() {
        descriptor_.async_wait(boost::asio::posix::descriptor_base::wait_read,
                               [this, alive = lifetime_.guard()](boost::system::error_code error) {
                                   if (!*alive || error) return;
                                   on_readable();
                                   wait();
                               });
    }

    void on_readable() {
        if (int error = nl_cache_mngr_data_ready(manager_); error < 0) {
            // Notifications were lost (socket buffer overrun): the caches may be stale, read them again.
            SLMD_NOTICE("route: netlink notifications lost ({}), reading the routes again",
                        nl_geterror(error));
            nl_cache_refill(sync_, links_);
            links_changed_ = true;
        }
        if (links_changed_) {
            // A link going down makes the kernel drop its IPv4 routes without a notification per route.
            nl_cache_refill(sync_, routes_);
            links_changed_ = false;
            dirty_ = true;
        }
        if (dirty_) rebuild();
    }

    void rebuild() {
        dirty_ = false;
        table_ = prefixes_of(routes_, links_);
        SLMD_DEBUG("route: {} kernel routes count for the bypass decision", table_.size());
    }

    boost::asio::posix::stream_descriptor descriptor_;
    nl_cache_mngr* manager_ = nullptr;
    nl_cache* links_ = nullptr;
    nl_cache* routes_ = nullptr;
    nl_sock* sync_ = nullptr;  // for refills; the manager's own socket only receives notifications
    std::vector<Prefix> table_;
    bool dirty_ = false;
    bool links_changed_ = false;
    sys::Lifetime lifetime_;
};

RoutePolicy::RoutePolicy(std::vector<Prefix> configured) : configured_(std::move(configured)) {}
RoutePolicy::~RoutePolicy() = default;

bool RoutePolicy::watch(const boost::asio::any_io_executor& executor) {
    auto watch = std::make_unique<Watch>(executor);
    if (auto problem = watch->start(); !problem.empty()) {
        SLMD_WARN("route: cannot follow the kernel's routes ({}); reading them at each decision instead",
                  problem);
        return false;
    }
    SLMD_INFO("route: following the kernel's routes ({} count for the bypass decision)",
              watch->table().size());
    watch_ = std::move(watch);
    return true;
}

std::vector<Prefix> RoutePolicy::kernel_routes() {
    std::vector<Prefix> routes;
    nl_sock* sock = nl_socket_alloc();
    if (!sock) return routes;
    nl_cache* cache = nullptr;
    if (nl_connect(sock, NETLINK_ROUTE) == 0 && rtnl_route_alloc_cache(sock, AF_UNSPEC, 0, &cache) == 0) {
        routes = prefixes_of(cache, nullptr);
        nl_cache_free(cache);
    }
    nl_socket_free(sock);
    return routes;
}

bool RoutePolicy::bypass(const wire::Address& destination) const {
    const bool local = watch_ ? should_bypass(destination, configured_, watch_->table())
                              : should_bypass(destination, configured_, kernel_routes());
    SLMD_DEBUG("route: {} -> {}", address_text(destination), local ? "bypass (local route)" : "modem");
    return local;
}

}  // namespace slmd::net
