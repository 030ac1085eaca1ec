// Owns: which SLM carrier (proxy or generic socket) each flow takes, and the ids the flow layer sees (see
// slm_driver.hpp).
#include "modem/slm_driver.hpp"

#include <algorithm>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <limits>
#include <memory>
#include <string>
#include <variant>

#include "modem/tls_command.hpp"
#include "sys/log.hpp"

namespace slmd::modem {

namespace asio = boost::asio;

SlmDriver::SlmDriver(asio::any_io_executor executor, at::Channel& channel, SlmProxyDriverHooks hooks,
                     SlmDriverOptions options)
    : executor_(executor),
      channel_(channel),
      gate_(channel),
      proxy_(executor, channel, gate_, hooks, options.proxy),
      sockets_(executor, channel, gate_, hooks.serving, options.sockets),
      options_(options) {
    sockets_.set_descriptors_elsewhere([this] { return proxy_.descriptors_in_use(); });
    sockets_.set_before_data_mode([this] { proxy_.before_foreign_data_mode(); });
    proxy_.set_udp_suspended_listener([this](ConnectionId proxy_id) { on_udp_suspended(proxy_id); });
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
    // The proxy first (unless tcp-proxy = tls-only, which keeps it for TLS): it streams the downlink without
    // polling. A TLS connection the proxy cannot take (it is busy, or the release's #XTCPCLI cannot do what the
    // app asked, e.g. check the host name before v2.6) becomes a TLS socket of the modem's own (#XSSOCKET).
    const bool proxy_free = proxy_.tcp_available() > 0;
    const bool proxy_can_carry =
        !destination.tls ||
        std::holds_alternative<std::string>(tls_parameters(*destination.tls, TlsTransport::tcp, channel_.profile()));
    const bool use_proxy = !sockets_enabled() || (proxy_free && proxy_can_carry &&
                                                  (destination.tls || !options_.proxy_for_tls_only));
    if (tcp_available() == 0 || (use_proxy && !proxy_free)) {
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

UdpEvents SlmDriver::routed_udp_events(UdpEvents events, Carrier carrier, std::shared_ptr<ConnectionId> outer) {
    events.closed = [this, alive = lifetime_.guard(), carrier, outer,
                     closed = std::move(events.closed)](CloseReason reason, int error) {
        if (*alive) {
            auto it = routes_.find(*outer);
            if (it != routes_.end() && it->second.carrier != carrier) return;
            if (it != routes_.end()) routes_.erase(it);
        }
        if (closed) closed(reason, error);
    };
    return events;
}

void SlmDriver::udp_connect(const TcpEndpoint& destination, UdpEvents events,
                            std::function<void(int, ConnectionId)> done) {
    auto outer = std::make_shared<ConnectionId>(0);
    // A generic socket for a second UDP client at once (DNS beside CoAP), and for one opened while a TCP
    // connection holds the TCP proxy: beside it the UDP proxy could carry no binary datagram, and moving later
    // changes the source port, which a peer that has connected its socket to the first one drops (iperf3's
    // server). DTLS alike, on a DTLS socket of the modem's own (#XSSOCKET): a second association at once, and
    // binary plaintext (CoAP) beside an open TCP connection.
    const bool on_socket = sockets_enabled() && sockets_.tcp_available() > 0 &&
                           (proxy_.udp_available() == 0 || proxy_.tcp_connection_open());
    if (on_socket) {
        sockets_.udp_connect(destination, routed_udp_events(std::move(events), Carrier::socket, outer),
                             routed_done(Carrier::socket, std::move(done), outer));
        return;
    }
    auto on_proxy = routed_udp_events(events, Carrier::proxy, outer);
    if (sockets_enabled()) {
        // Remembered for a move to a generic socket (move_udp_to_socket, on_udp_suspended); DTLS to a DTLS socket.
        done = [this, alive = lifetime_.guard(), destination, events = std::make_shared<UdpEvents>(std::move(events)),
                done = std::move(done)](int error, ConnectionId id) {
            if (*alive && !error) {
                if (auto it = routes_.find(id); it != routes_.end()) {
                    it->second.udp_client = destination;
                    it->second.udp_events = events;
                }
            }
            done(error, id);
        };
    }
    proxy_.udp_connect(destination, std::move(on_proxy), routed_done(Carrier::proxy, std::move(done), outer));
}

void SlmDriver::udp_serve(std::uint16_t port, bool ipv6, UdpEvents events,
                          std::function<void(int, ConnectionId)> done) {
    auto outer = std::make_shared<ConnectionId>(0);
    proxy_.udp_serve(port, ipv6, routed_udp_events(std::move(events), Carrier::proxy, outer),
                     routed_done(Carrier::proxy, std::move(done), outer));
}

void SlmDriver::udp_send(ConnectionId id, std::string datagram, std::function<void(int)> done) {
    auto it = routes_.find(id);
    if (it == routes_.end()) return proxy_.udp_send(0, std::move(datagram), std::move(done));  // ENOTCONN
    auto& to = it->second;
    if (to.moving) {
        to.moving->push_back({std::move(datagram), std::move(done)});
        return;
    }
    if (to.carrier == Carrier::socket) return sockets_.udp_send(to.inner, std::move(datagram), std::move(done));
    if (to.udp_client && proxy_.udp_send_blocked_by_tcp(datagram) && sockets_.tcp_available() > 0 &&
        std::chrono::steady_clock::now() >= to.next_move_attempt)
        return move_udp_to_socket(id, std::move(datagram), std::move(done));
    proxy_.udp_send(to.inner, std::move(datagram), std::move(done));
}

// The UDP proxy cannot carry a binary datagram while a TCP connection is open (the firmware's raw downlink
// could be either's), but a generic socket can: the client reopens on one, to the same destination, and stays
// there. Datagrams sent during the move wait for it; datagrams arriving on the proxy until it closes are still
// delivered. The peer sees a new source port from the first datagram the socket sends.
void SlmDriver::move_udp_to_socket(ConnectionId id, std::string datagram, std::function<void(int)> done) {
    auto& route = routes_.at(id);
    route.moving = std::make_shared<std::deque<HeldDatagram>>();
    route.moving->push_back({std::move(datagram), std::move(done)});
    SLMD_INFO("slm: a binary datagram cannot take the UDP proxy while a TCP connection is open; the UDP client "
              "moves to a generic socket");
    open_moved_udp_socket(id);
}

// A data-mode session (a TCP send, or a generic socket's) closes the UDP proxy and opens it again when it ends,
// because the firmware would push the proxy's datagrams raw into the session. Each time the client gets a new
// source port and a DTLS client a new handshake, and datagrams that arrive meanwhile are lost. On a generic
// socket none of that happens again, so the client moves there at the first session: the proxy stays closed
// (it is not reopened), and the socket opens once the session has ended. If the firmware refuses the socket,
// the proxy is reopened as before, and the move waits as after a refused binary move.
void SlmDriver::on_udp_suspended(ConnectionId proxy_id) {
    for (auto& [id, route] : routes_) {
        if (route.carrier != Carrier::proxy || route.inner != proxy_id) continue;
        if (!route.udp_client || route.moving || route.closing || sockets_.tcp_available() == 0 ||
            std::chrono::steady_clock::now() < route.next_move_attempt)
            return;
        proxy_.keep_udp_suspended(proxy_id, true);
        route.moving = std::make_shared<std::deque<HeldDatagram>>();
        SLMD_INFO("slm: the UDP proxy is closed for a data-mode session; its {}client moves to a generic socket",
                  route.udp_client->tls ? "DTLS " : "");
        // Posted: the session's own commands are queued now, and the socket's wait for its end (the gate).
        asio::post(executor_, [this, alive = lifetime_.guard(), id = id] {
            if (*alive) open_moved_udp_socket(id);
        });
        return;
    }
}

// Opens the generic socket a moving UDP client goes to; datagrams sent meanwhile are held in route.moving.
void SlmDriver::open_moved_udp_socket(ConnectionId id) {
    auto it = routes_.find(id);
    if (it == routes_.end() || !it->second.moving) return;
    auto& route = it->second;
    // A socket given up during the move closes without the flow hearing of it: the proxy's close tells it.
    auto adopted = std::make_shared<bool>(false);
    auto events = routed_udp_events(*route.udp_events, Carrier::socket, std::make_shared<ConnectionId>(id));
    events.closed = [adopted, closed = std::move(events.closed)](CloseReason reason, int error) {
        if (*adopted && closed) closed(reason, error);
    };
    sockets_.udp_connect(
        *route.udp_client, std::move(events),
        [this, alive = lifetime_.guard(), id, adopted, held = route.moving](int error, ConnectionId inner) {
            if (!*alive) return;
            auto it = routes_.find(id);
            if (it == routes_.end() || it->second.closing) {
                // Closed (or lost) during the move: the proxy's close event ends the flow.
                if (it != routes_.end()) it->second.moving.reset();
                if (!error) sockets_.udp_close(inner);
                for (auto& datagram : *held) datagram.done(ENOTCONN);
                return;
            }
            auto& route = it->second;
            route.moving.reset();
            if (!error) {
                const auto proxy_id = std::exchange(route.inner, inner);
                route.carrier = Carrier::socket;
                route.udp_client.reset();
                route.udp_events.reset();
                *adopted = true;
                ++udp_moves_;
                proxy_.udp_close(proxy_id);  // its closed event is now the old carrier's
                for (auto& datagram : *held) udp_send(id, std::move(datagram.bytes), std::move(datagram.done));
                return;
            }
            // The held datagrams go to the proxy, which refuses the binary ones as before (EBUSY, counted) and
            // carries the others; a later binary datagram tries the move again, after a pause, so a firmware
            // that keeps saying no costs one #XSOCKET per pause, not one per datagram.
            route.next_move_attempt = std::chrono::steady_clock::now() + options_.udp_move_retry;
            SLMD_WARN("slm: no generic socket for the UDP client (error {}); binary datagrams are refused while TCP "
                      "is open, and the move is tried again in {} s",
                      error, std::chrono::duration_cast<std::chrono::seconds>(options_.udp_move_retry).count());
            proxy_.keep_udp_suspended(route.inner, false);  // reopened, if a session had closed it
            for (auto& datagram : *held) proxy_.udp_send(route.inner, std::move(datagram.bytes), std::move(datagram.done));
        });
}

void SlmDriver::udp_close(ConnectionId id) {
    auto it = routes_.find(id);
    if (it == routes_.end()) return;
    auto& to = it->second;
    if (to.carrier == Carrier::socket) return sockets_.udp_close(to.inner);
    if (to.moving) to.closing = true;
    proxy_.udp_close(to.inner);
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
