// Owns: which SLM carrier (proxy or generic socket) each flow takes, and the ids the flow layer sees (see
// slm_driver.hpp).
#include "modem/slm_driver.hpp"

#include <algorithm>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <limits>
#include <memory>

#include "sys/log.hpp"

namespace slmd::modem {

namespace asio = boost::asio;

SlmDriver::SlmDriver(asio::any_io_executor executor, at::Channel& channel, SlmProxyDriverHooks hooks,
                     SlmDriverOptions options)
    : channel_(channel),
      gate_(channel),
      proxy_(executor, channel, gate_, hooks, options.proxy),
      sockets_(executor, channel, gate_, hooks.serving, options.sockets),
      options_(options) {
    sockets_.set_descriptors_elsewhere([this] { return proxy_.descriptors_in_use(); });
    sockets_.set_before_data_mode([this] { proxy_.before_foreign_data_mode(); });
    auto forward = [this, alive = lifetime_.guard()] {
        if (*alive && capacity_listener_) capacity_listener_();
    };
    proxy_.set_capacity_listener(forward);
    sockets_.set_capacity_listener(forward);
}

SlmDriver::~SlmDriver() {
    lifetime_.end();
}

void SlmDriver::on_modem_lost() {
    proxy_.on_modem_lost();
    sockets_.on_modem_lost();
}

// Data-first releases (v2.0-v2.2) write a proxy payload before its header: the framer can tell it from lines
// only by holding lines back, and the commands and data-mode switches of generic sockets in between cut such
// payloads off (docs/at-framer.md); they also answer nothing on entering data mode. There slmd keeps to the
// TCP proxy, one connection at a time, as with modem-connections = 1.
bool SlmDriver::sockets_enabled() const {
    return options_.max_connections != 1 &&
           channel_.profile().receive_order == at::ReceiveOrder::header_first;
}

std::size_t SlmDriver::descriptor_limit() const {
    return sockets_.socket_limit();
}

std::size_t SlmDriver::tcp_capacity() const {
    if (!sockets_enabled()) return 1;
    const auto limit =
        options_.max_connections ? options_.max_connections : std::numeric_limits<std::size_t>::max();
    return std::min(limit, descriptor_limit());
}

std::size_t SlmDriver::tcp_available() const {
    if (!sockets_enabled()) return proxy_.tcp_available();
    const std::size_t pool_free = sockets_.tcp_available();  // what the proxies and sockets left of the pool
    if (options_.max_connections == 0) return pool_free;
    const std::size_t tcp_open = (proxy_.tcp_available() == 0 ? 1 : 0) + sockets_.open_count();
    const std::size_t room = tcp_open >= options_.max_connections ? 0 : options_.max_connections - tcp_open;
    return std::min(room, pool_free);
}

std::size_t SlmDriver::udp_available() const {
    if (!sockets_enabled()) return proxy_.udp_available();
    // The UDP proxy first, then generic UDP sockets: every one takes a descriptor of the pool.
    return sockets_.tcp_available();
}

const SlmDriver::Route* SlmDriver::route(ConnectionId id) const {
    auto it = routes_.find(id);
    return it == routes_.end() ? nullptr : &it->second;
}

ConnectionId SlmDriver::add_route(Carrier carrier, ConnectionId inner) {
    const auto id = next_id_++;
    routes_[id] = Route{carrier, inner};
    return id;
}

// The done of an open on `carrier`: the inner id gets a route, which `outer` names for the closed event.
std::function<void(int, ConnectionId)> SlmDriver::routed_done(Carrier carrier,
                                                              std::function<void(int, ConnectionId)> done,
                                                              std::shared_ptr<ConnectionId> outer) {
    return [this, alive = lifetime_.guard(), carrier, done = std::move(done), outer](int error,
                                                                                     ConnectionId inner) {
        if (!*alive) return;
        if (error) return done(error, 0);
        *outer = add_route(carrier, inner);
        done(0, *outer);
    };
}

namespace {

// A closed event that forgets the route first (the flow layer may open again from inside it).
template <typename Closed>
Closed forget_on_close(Closed closed, std::function<void()> forget) {
    return [closed = std::move(closed), forget = std::move(forget)](CloseReason reason, int error) {
        forget();
        if (closed) closed(reason, error);
    };
}

}  // namespace

void SlmDriver::tcp_connect(const TcpEndpoint& destination, std::chrono::milliseconds timeout,
                            TcpConnectionEvents events, std::function<void(int, ConnectionId)> done) {
    // The proxy first: it streams the downlink without polling. TLS by the modem runs only there (generic
    // sockets with #XSSOCKET are not offered yet), so a TLS connect while the proxy is busy gets EBUSY.
    const bool proxy_free = proxy_.tcp_available() > 0;
    const bool use_proxy = proxy_free || destination.tls || !sockets_enabled();
    if (tcp_available() == 0 || (use_proxy && !proxy_free)) {
        if (destination.tls && tcp_available() > 0) {
            SLMD_INFO("slm: a TLS connection needs the TCP proxy, which another connection holds");
        }
        proxy_.tcp_connect(destination, timeout, std::move(events), std::move(done));  // EBUSY (or ENETDOWN)
        return;
    }
    const auto carrier = use_proxy ? Carrier::proxy : Carrier::socket;
    auto outer = std::make_shared<ConnectionId>(0);
    events.closed = forget_on_close(std::move(events.closed), [this, alive = lifetime_.guard(), outer] {
        if (*alive) routes_.erase(*outer);
    });
    auto finish = routed_done(carrier, std::move(done), outer);
    if (carrier == Carrier::proxy) {
        proxy_.tcp_connect(destination, timeout, std::move(events), std::move(finish));
    } else {
        sockets_.tcp_connect(destination, timeout, std::move(events), std::move(finish));
    }
}

void SlmDriver::tcp_send(ConnectionId id, std::string bytes, std::function<void(int)> done) {
    const auto* to = route(id);
    if (!to) return proxy_.tcp_send(0, std::move(bytes), std::move(done));  // ENOTCONN, from the event loop
    if (to->carrier == Carrier::proxy) return proxy_.tcp_send(to->inner, std::move(bytes), std::move(done));
    sockets_.tcp_send(to->inner, std::move(bytes), std::move(done));
}

void SlmDriver::tcp_close(ConnectionId id) {
    const auto* to = route(id);
    if (!to) return;
    if (to->carrier == Carrier::proxy) return proxy_.tcp_close(to->inner);
    sockets_.tcp_close(to->inner);
}

void SlmDriver::pause_receive(bool paused) {
    proxy_.pause_receive(paused);
    sockets_.pause_receive(paused);
}

void SlmDriver::tcp_listen(std::uint16_t port, bool ipv6, TcpListenerEvents events,
                           std::function<void(int, ListenerId)> done) {
    // The server's peers get ids of this driver like any connection.
    auto incoming = std::move(events.incoming);
    events.incoming = [this, alive = lifetime_.guard(), incoming = std::move(incoming)](
                          ConnectionId inner, const std::string& peer) -> TcpConnectionEvents {
        if (!*alive || !incoming) return {};
        const auto outer = add_route(Carrier::proxy, inner);
        auto peer_events = incoming(outer, peer);
        peer_events.closed = forget_on_close(std::move(peer_events.closed), [this, alive, outer] {
            if (*alive) routes_.erase(outer);
        });
        return peer_events;
    };
    proxy_.tcp_listen(port, ipv6, std::move(events), std::move(done));
}

void SlmDriver::udp_connect(const TcpEndpoint& destination, UdpEvents events,
                            std::function<void(int, ConnectionId)> done) {
    auto outer = std::make_shared<ConnectionId>(0);
    events.closed = forget_on_close(std::move(events.closed), [this, alive = lifetime_.guard(), outer] {
        if (*alive) routes_.erase(*outer);
    });
    // A second UDP client at once (DNS beside CoAP) takes a generic socket; DTLS stays on the proxy.
    const bool on_socket = sockets_enabled() && proxy_.udp_available() == 0 && !destination.tls &&
                           sockets_.tcp_available() > 0;
    if (on_socket) {
        sockets_.udp_connect(destination, std::move(events), routed_done(Carrier::socket, std::move(done), outer));
        return;
    }
    proxy_.udp_connect(destination, std::move(events), routed_done(Carrier::proxy, std::move(done), outer));
}

void SlmDriver::udp_serve(std::uint16_t port, bool ipv6, UdpEvents events,
                          std::function<void(int, ConnectionId)> done) {
    auto outer = std::make_shared<ConnectionId>(0);
    events.closed = forget_on_close(std::move(events.closed), [this, alive = lifetime_.guard(), outer] {
        if (*alive) routes_.erase(*outer);
    });
    proxy_.udp_serve(port, ipv6, std::move(events), routed_done(Carrier::proxy, std::move(done), outer));
}

void SlmDriver::udp_send(ConnectionId id, std::string datagram, std::function<void(int)> done) {
    const auto* to = route(id);
    if (to && to->carrier == Carrier::socket) return sockets_.udp_send(to->inner, std::move(datagram), std::move(done));
    proxy_.udp_send(to ? to->inner : 0, std::move(datagram), std::move(done));
}

void SlmDriver::udp_close(ConnectionId id) {
    const auto* to = route(id);
    if (!to) return;
    if (to->carrier == Carrier::socket) return sockets_.udp_close(to->inner);
    proxy_.udp_close(to->inner);
}

void SlmDriver::describe_proxies(std::function<void(std::string)> done) {
    proxy_.describe_proxies(
        [this, alive = lifetime_.guard(), done = std::move(done)](std::string text) mutable {
            if (!*alive) return done(text);
            sockets_.describe_proxies([text = std::move(text), done = std::move(done)](std::string sockets) {
                done(sockets.empty() ? text : text.empty() ? sockets : text + "\n" + sockets);
            });
        });
}

}  // namespace slmd::modem
