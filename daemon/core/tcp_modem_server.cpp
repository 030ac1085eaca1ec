// Owns: the modem's TCP server half of TcpFlowManager (see tcp_flow_manager.hpp): port reservations
// (BindRequest), the server itself (ListenRequest, deferred while the proxy is busy), its peers, each relayed by
// the client flows' machinery over a loopback connection slmd opens to the app's listening socket, and polling
// the kernel's socket table to notice that the listening socket closed.
#include <cerrno>

#include "core/tcp_flow_manager.hpp"
#include "core/tcp_flow_records.hpp"
#include "net/socket_table.hpp"
#include "sys/log.hpp"

namespace slmd::core {

wire::BindReply TcpFlowManager::bind(const wire::BindRequest& request, const Requester& requester) {
    wire::BindReply reply;
    if (request.transport != wire::Transport::tcp) {
        reply.status = -EPROTONOSUPPORT;
        return reply;
    }
    if (request.family != wire::Family::ipv4 && request.family != wire::Family::ipv6) {
        reply.status = -EAFNOSUPPORT;
        return reply;
    }
    if (request.app_port == 0 || request.modem_port == 0) {
        reply.status = -EINVAL;
        return reply;
    }
    // A bound TCP socket that does not listen yet is in no /proc table: the owner is checked when it is there
    // (an earlier listen()), and otherwise against the reservation's requester.
    if (auto owner = net::socket_owner(net::SocketKind::tcp_listener, request.family, request.app_port)) {
        if (int error = check_owner(requester, owner)) {
            reply.status = error;
            return reply;
        }
    }
    const std::pair key{request.family, request.app_port};
    if (auto it = reservations_.find(key); it != reservations_.end()) {
        auto& existing = it->second;
        if (requester.uid != 0 && existing->requester.uid != requester.uid && reservation_live(*existing)) {
            reply.status = -EPERM;
            return reply;
        }
        if (existing->state != Reservation::State::reserved && existing->modem_port != request.modem_port) {
            reply.status = -EINVAL;  // already serving another port
            return reply;
        }
    }
    for (auto it = reservations_.begin(); it != reservations_.end();) {
        auto other = it++->second;
        if (other->modem_port != request.modem_port || (other->family == request.family &&
                                                        other->app_port == request.app_port)) {
            continue;
        }
        if (reservation_live(*other)) {
            reply.status = -EADDRINUSE;
            return reply;
        }
        drop_reservation(other);
    }
    auto& reservation = reservations_[key];
    if (!reservation) {
        reservation = std::make_shared<Reservation>();
        reservation->family = request.family;
        reservation->app_port = request.app_port;
    }
    reservation->modem_port = request.modem_port;
    reservation->requester = requester;
    SLMD_INFO("tcp server: modem port {} reserved for loopback port {}", request.modem_port, request.app_port);
    watch_sockets();
    return reply;
}

void TcpFlowManager::listen(const wire::ListenRequest& request, const Requester& requester, ListenReplyHandler reply) {
    auto it = reservations_.find({request.family, request.app_port});
    if (it == reservations_.end()) {
        reply(wire::ListenReply{-ENOENT});
        return;
    }
    auto reservation = it->second;
    const auto listening = net::socket_identity(net::SocketKind::tcp_listener, request.family, request.app_port);
    const auto owner = listening ? std::optional<unsigned>(listening->uid) : std::nullopt;
    if ((requester.uid != 0 && reservation->requester.uid != requester.uid) ||
        (owner && check_owner(requester, owner) != 0)) {
        reply(wire::ListenReply{-EPERM});
        return;
    }
    if (listening) reservation->listening_socket = listening;
    if (server_ == reservation) {
        reply(wire::ListenReply{0});  // listen() again on a listening socket changes the backlog only
        return;
    }
    if (server_ && !reservation_live(*server_)) {
        // The previous server's socket closed since the last poll (a program that restarts its server):
        // release the modem's server now rather than answer EBUSY until the poll notices. (A copy: dropping it
        // resets server_.)
        const auto previous = server_;
        drop_reservation(previous);
    }
    if (!driver_.tcp_listen_supported()) {
        reply(wire::ListenReply{-EOPNOTSUPP});
        return;
    }
    const bool clients_in_the_way =
        (active_flows() > 0 || !waiting_.empty()) && !driver_.tcp_listen_beside_connections();
    if (server_ || clients_in_the_way || deferred_listen_) {
        // SLM's one TCP proxy runs a client or a server, not both at once; slmd runs one server at a time.
        ++counters_.refused_busy;
        reply(wire::ListenReply{-EBUSY});
        return;
    }
    if (!driver_.serving()) {
        reply(wire::ListenReply{-ENETDOWN});
        return;
    }
    if (!driver_.tcp_listen_available()) {
        // Nothing of slmd's holds the proxy any more: a server or connection is being closed on the modem. The
        // listen starts as soon as that answers (schedule()).
        SLMD_INFO("tcp server: modem port {} starts once the modem's TCP proxy is free", reservation->modem_port);
        deferred_listen_ = DeferredListen{reservation, std::move(reply)};
        return;
    }
    start_listen(reservation, std::move(reply));
}

void TcpFlowManager::start_listen(const ReservationPtr& reservation, ListenReplyHandler reply) {
    if (reservation->gone) {
        reply(wire::ListenReply{-ECONNABORTED});  // its socket closed while the listen waited
        return;
    }
    server_ = reservation;
    reservation->state = Reservation::State::starting;
    reservation->bytes_up = reservation->bytes_down = 0;
    std::weak_ptr<Reservation> weak = reservation;
    modem::TcpListenerEvents events{
        .incoming =
            [this, alive = lifetime_.guard(), weak](modem::ConnectionId id, const std::string& peer) {
                auto server = weak.lock();
                if (!*alive || !server) return modem::TcpConnectionEvents{};
                return on_incoming(server, id, peer);
            },
        .stopped =
            [this, alive = lifetime_.guard(), weak](int error) {
                auto server = weak.lock();
                if (!*alive || !server) return;
                SLMD_WARN("tcp server: modem port {} stopped: {}", server->modem_port,
                          error ? std::strerror(error) : "no reason given");
                server->state = Reservation::State::reserved;
                if (server_ == server) server_.reset();
                schedule();
            },
    };
    driver_.tcp_listen(reservation->modem_port, reservation->family == wire::Family::ipv6, std::move(events),
                       [this, alive = lifetime_.guard(), reservation, reply](int error, modem::ListenerId id) {
                           if (!*alive) return;
                           if (error) {
                               SLMD_INFO("tcp server: listening on modem port {} failed: {}",
                                         reservation->modem_port, std::strerror(error));
                               reservation->state = Reservation::State::reserved;
                               if (server_ == reservation) server_.reset();
                               reply(wire::ListenReply{-error});
                               schedule();
                               return;
                           }
                           reservation->listener = id;
                           reservation->state = Reservation::State::listening;
                           if (reservation->gone || server_ != reservation) {
                               // The app's socket went away while the modem was starting.
                               driver_.tcp_stop_listen(id);
                               reply(wire::ListenReply{-ECONNABORTED});
                               return;
                           }
                           SLMD_INFO("tcp server: modem port {} listening for loopback port {}",
                                     reservation->modem_port, reservation->app_port);
                           reply(wire::ListenReply{0});
                       });
}

modem::TcpConnectionEvents TcpFlowManager::on_incoming(const ReservationPtr& server, modem::ConnectionId id,
                                                    const std::string& peer) {
    auto flow = std::make_shared<Flow>(executor_);
    flow->id = next_id_++;
    flow->server_peer = true;
    flow->server = server;
    flow->requester = server->requester;
    flow->destination = parse_address(peer).value_or(unspecified(server->family));
    flow->port = 0;  // the firmware never reports the peer's port
    flow->host = peer;
    flow->phase = Phase::connected;
    flow->connection = id;
    flow->modem_open = true;
    flow->app_port = server->app_port;
    flows_[flow->id] = flow;
    ++counters_.opened;
    auto events = connection_events(flow);
    if (!reservation_live(*server)) {
        // The app's listening socket is gone or is another socket now: the peer is hung up, never handed to
        // whoever listens there (not from inside the driver's event: closing is a driver call).
        SLMD_INFO("flow {}: peer {} on modem port {}, but the app's socket at loopback port {} is gone; hung up",
                  flow->id, peer, server->modem_port, server->app_port);
        ++counters_.server_peers_refused;
        std::weak_ptr<Flow> weak = flow;
        asio::post(executor_, [this, alive = lifetime_.guard(), weak, server] {
            auto flow = weak.lock();
            if (!*alive) return;
            if (flow) {
                flow->error = ECONNREFUSED;
                finish(flow);
            }
            drop_reservation(server);
            schedule();
        });
        return events;
    }
    ++counters_.server_peers_accepted;
    SLMD_INFO("flow {}: peer {} on modem port {}; connecting to loopback port {}", flow->id, peer,
              server->modem_port, server->app_port);
    flow->connecting_app.emplace(executor_);
    std::weak_ptr<Flow> weak = flow;
    flow->connecting_app->async_connect(loopback(server->family, server->app_port),
                                        [this, alive = lifetime_.guard(), weak](boost::system::error_code error) {
                                            auto flow = weak.lock();
                                            if (!*alive || !flow) return;
                                            on_app_connected(flow, error);
                                        });
    return events;
}

void TcpFlowManager::on_app_connected(const FlowPtr& flow, boost::system::error_code error) {
    auto socket = std::move(flow->connecting_app);
    flow->connecting_app.reset();
    if (!socket) return;
    if (!error && flow->phase == Phase::finished) {
        // The modem lost the peer meanwhile: the app must not take a half-dead connection for a live one.
        graveyard_.bury(*socket, /*reset=*/true);
        return;
    }
    if (error) {
        // The app's listening socket refused (closed, backlog full): hang the modem's peer up.
        ++counters_.server_peers_refused;
        SLMD_INFO("flow {}: the app's listening socket refused the peer: {}", flow->id, error.message());
        flow->error = error.value();
        finish(flow);
        return;
    }
    boost::system::error_code ignored;
    flow->data_port = socket->local_endpoint(ignored).port();  // S: the app sees the peer at this port
    flow->attached = true;
    flow->app.emplace(std::move(*socket));
    read_uplink(flow);
    write_downlink(flow);
}

bool TcpFlowManager::reservation_live(const Reservation& reservation) const {
    if (reservation.gone) return false;
    if (reservation.state == Reservation::State::reserved) return net::tcp_port_held(reservation.family, reservation.app_port);
    const auto now = net::socket_identity(net::SocketKind::tcp_listener, reservation.family, reservation.app_port);
    if (reservation.listening_socket) return now == reservation.listening_socket;
    return now.has_value();
}

void TcpFlowManager::drop_reservation(const ReservationPtr& reservation) {
    if (reservation->gone) return;
    reservation->gone = true;
    reservations_.erase({reservation->family, reservation->app_port});
    SLMD_INFO("tcp server: the app's socket at loopback port {} is gone; modem port {} released",
              reservation->app_port, reservation->modem_port);
    if (server_ == reservation) {
        server_.reset();
        // Hangs up the current peer too (its closed(local_close) follows); when still starting, the start's
        // completion stops it.
        if (reservation->state == Reservation::State::listening) driver_.tcp_stop_listen(reservation->listener);
        reservation->state = Reservation::State::reserved;
    }
}

void TcpFlowManager::watch_sockets() {
    if (polling_ || reservations_.empty()) return;
    polling_ = true;
    socket_poll_.expires_after(options_.socket_poll);
    socket_poll_.async_wait([this, alive = lifetime_.guard()](boost::system::error_code error) {
        if (!*alive) return;
        polling_ = false;
        if (error) return;
        std::vector<ReservationPtr> gone;
        for (const auto& [key, reservation] : reservations_) {
            if (!reservation_live(*reservation)) gone.push_back(reservation);
        }
        for (const auto& reservation : gone) drop_reservation(reservation);
        if (!gone.empty()) schedule();
        watch_sockets();
    });
}

wire::LookupReply TcpFlowManager::lookup(const wire::LookupRequest& request) const {
    wire::LookupReply reply;
    reply.local = unspecified(request.family);
    reply.peer = unspecified(request.family);
    auto it = reservations_.find({request.family, request.app_port});
    if (it == reservations_.end()) {
        reply.status = -ENOENT;
        return reply;
    }
    const auto& reservation = it->second;
    if (modem_address_) {
        if (auto address = parse_address(modem_address_(reservation->family))) reply.local = *address;
    }
    reply.local_port = reservation->modem_port;
    if (request.loopback_peer_port != 0) {
        FlowPtr found;
        for (const auto& [id, flow] : flows_) {
            auto server = flow->server.lock();
            if (server == reservation && flow->data_port == request.loopback_peer_port) found = flow;
        }
        if (!found) {
            reply.status = -ENXIO;  // the socket is known, the peer is not: the shim must not take it for a stranger
            return reply;
        }
        reply.peer = found->destination;
        reply.peer_port = 0;  // the firmware never reports it
    }
    return reply;
}

wire::ProxyInfo TcpFlowManager::proxy_info() const {
    wire::ProxyInfo info;
    info.transport = wire::Transport::tcp;
    if (server_) {
        info.role = wire::ProxyRole::server;
        info.port = server_->modem_port;
        info.owner_pid = server_->requester.pid;
        info.bytes_up = server_->bytes_up;
        info.bytes_down = server_->bytes_down;
        for (const auto& [id, flow] : flows_) {
            if (flow->server.lock() == server_ && flow->phase == Phase::connected) info.peer = flow->host;
        }
        return info;
    }
    for (const auto& [id, flow] : flows_) {
        if (!flow->server_peer && (flow->phase == Phase::connecting || flow->phase == Phase::connected)) {
            info.role = wire::ProxyRole::client;
            info.port = flow->port;
            info.peer = flow->host;
            info.owner_pid = flow->requester.pid;
            info.bytes_up = flow->bytes_up;
            info.bytes_down = flow->bytes_down;
        }
    }
    return info;
}

}  // namespace slmd::core
