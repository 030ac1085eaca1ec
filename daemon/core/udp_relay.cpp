// Owns: UDP stand-ins and the modem's UDP proxy (see udp_relay.hpp).
#include "core/udp_relay.hpp"
#include "core/tls_parameters.hpp"

#include <boost/asio/post.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "net/socket_table.hpp"
#include "sys/log.hpp"

namespace slmd::core {

namespace asio = boost::asio;
namespace wire = slmsock::wire;
using udp = asio::ip::udp;

namespace {
constexpr std::size_t max_datagram = 65536;  // any UDP payload over loopback fits

udp::endpoint loopback(wire::Family family, std::uint16_t port) {
    if (family == wire::Family::ipv6) return {asio::ip::address_v6::loopback(), port};
    return {asio::ip::address_v4::loopback(), port};
}
}  // namespace

struct UdpRelay::StandIn {
    explicit StandIn(asio::any_io_executor executor) : socket(executor) {}
    udp::socket socket;
    Peer peer;
    bool anonymous = false;  // the server's "last peer" of a firmware that does not name it (address unspecified)
    std::uint16_t port = 0;  // slmd's loopback port: what the app sends to, and receives from
    std::uint64_t last_used = 0;
    std::vector<char> buffer;
    std::weak_ptr<AppSocket> app;
    bool retired = false;    // cancelled; closed once its receive has completed
    bool receiving = false;  // a receive is pending
};

struct UdpRelay::AppSocket {
    wire::Family family = wire::Family::ipv4;
    std::uint16_t port = 0;  // L
    Requester requester;
    // The socket served (uid, inode). Another socket bound to L later — the owner's next one, or someone
    // else's — is not this app: the stand-ins are released instead of carrying its datagrams.
    net::SocketIdentity identity;
    bool server = false;
    std::uint16_t modem_port = 0;  // P, for a server
    std::vector<StandInPtr> stand_ins;
    bool gone = false;
    bool closed = false;  // seen closed after sending: its stand-ins were drained and retired
    std::shared_ptr<Carrier> carrier;  // the modem UDP socket it holds, if any
};

UdpRelay::UdpRelay(asio::any_io_executor executor, modem::ModemDriver& driver, UdpOptions options)
    : executor_(executor), driver_(driver), options_(options), poll_timer_(executor) {
    if (options_.max_stand_ins == 0) options_.max_stand_ins = 1;
}

UdpRelay::~UdpRelay() { lifetime_.end(); }

UdpRelay::AppPtr UdpRelay::find_app(wire::Family family, std::uint16_t port) const {
    auto it = apps_.find({family, port});
    return it == apps_.end() ? nullptr : it->second;
}

UdpRelay::AppPtr UdpRelay::app_for(wire::Family family, std::uint16_t port, const Requester& requester,
                                    const net::SocketIdentity& identity) {
    if (auto app = find_app(family, port)) {
        if (app->identity == identity) return app;
        release(app);  // the socket there now is another one
    }
    auto app = std::make_shared<AppSocket>();
    app->family = family;
    app->port = port;
    app->requester = requester;
    app->identity = identity;
    apps_[{family, port}] = app;
    watch();
    return app;
}

// Checks run before any request is served: the family, and that the socket at the app's port belongs to the
// requester (or the requester is root). `identity` is that socket's.
static int check_request(wire::Family family, std::uint16_t port, const Requester& requester,
                         net::SocketIdentity& identity) {
    if (family != wire::Family::ipv4 && family != wire::Family::ipv6) return -EAFNOSUPPORT;
    if (port == 0) return -EINVAL;
    const auto found = net::socket_identity(net::SocketKind::udp, family, port);
    if (found) identity = *found;
    return check_owner(requester, found ? std::optional<unsigned>(found->uid) : std::nullopt);
}

// Who holds the app's port now: its socket, nobody (closed), or another socket (which may belong to another
// user). Looked up at every datagram either way, not only at the poll: between a close and the next poll
// another process could bind the port and send through (or receive from) the modem as this app.
UdpRelay::Holder UdpRelay::holder(const AppSocket& app) {
    if (app.gone) return Holder::nobody;
    const auto now = net::socket_identity(net::SocketKind::udp, app.family, app.port);
    if (!now) return Holder::nobody;
    return *now == app.identity ? Holder::the_app : Holder::another_socket;
}

bool UdpRelay::still_there(const AppPtr& app) {
    if (holder(*app) == Holder::the_app) return true;
    release(app);
    return false;
}

bool UdpRelay::can_carry(const AppPtr& app) {
    if (app && app->carrier) return true;
    for (const auto& carrier : carriers_) {
        // A holder may have closed its socket since the last poll: look now rather than refuse for a second.
        if (!carrier->owner || !still_there(carrier->owner)) return true;
    }
    return driver_.udp_available() > 0;
}

UdpRelay::CarrierPtr UdpRelay::take_carrier(const AppPtr& app) {
    if (app->carrier) return app->carrier;
    CarrierPtr taken;
    for (const auto& carrier : carriers_) {
        if (!carrier->owner || !still_there(carrier->owner)) {
            taken = carrier;
            break;
        }
    }
    if (!taken) {
        if (driver_.udp_available() == 0) return nullptr;
        taken = std::make_shared<Carrier>();
        carriers_.push_back(taken);
    }
    taken->owner = app;
    app->carrier = taken;
    return taken;
}

std::size_t UdpRelay::carriers_in_use() const {
    return static_cast<std::size_t>(std::count_if(carriers_.begin(), carriers_.end(), [](const auto& carrier) {
        return carrier->state != ProxyState::idle;
    }));
}

void UdpRelay::associate(const wire::UdpAssociateRequest& request, const Requester& requester,
                         AssociateReplyHandler reply) {
    wire::UdpAssociateReply answer;
    if (request.peer.family != wire::Family::ipv4 && request.peer.family != wire::Family::ipv6) {
        answer.status = -EAFNOSUPPORT;
        reply(answer);
        return;
    }
    if (!request.tls && bypass_ && bypass_(request.peer)) {  // DTLS is the modem's to run
        answer.route = wire::Route::bypass;
        reply(answer);
        return;
    }
    net::SocketIdentity identity;
    if (int error = check_request(request.family, request.app_port, requester, identity)) {
        answer.status = error;
        reply(answer);
        return;
    }
    const Peer peer{request.peer, request.peer_port, request.tls};
    auto existing = find_app(request.family, request.app_port);
    if (existing && existing->identity != identity) {
        release(existing);
        existing = nullptr;
    }
    if (existing && existing->server) {
        // A server answers whoever sent last; DTLS belongs to its bind (native-TLS firmware), not to a peer.
        int error = 0;
        auto stand_in = stand_in_for(existing, Peer{request.peer, request.peer_port, std::nullopt}, false, error);
        answer.status = stand_in ? 0 : -error;
        answer.stand_in_port = stand_in ? stand_in->port : 0;
        reply(answer);
        return;
    }
    if (!can_carry(existing)) {
        ++counters_.dropped_busy;
        SLMD_INFO("udp: port {} asks for a modem UDP socket, and every one serves another app socket: EBUSY",
                  request.app_port);
        answer.status = -EBUSY;
        reply(answer);
        return;
    }
    if (!driver_.serving()) {
        answer.status = -ENETDOWN;
        reply(answer);
        return;
    }
    auto app = app_for(request.family, request.app_port, requester, identity);
    app->requester = requester;
    int error = 0;
    auto stand_in = stand_in_for(app, peer, false, error);
    if (!stand_in) {
        answer.status = -error;
        reply(answer);
        return;
    }
    auto carrier = take_carrier(app);
    if (!carrier) {
        ++counters_.dropped_busy;
        answer.status = -EBUSY;
        reply(answer);
        return;
    }
    carrier->server = false;
    carrier->ops.push_back(ClientOp{peer, std::nullopt, std::move(reply), stand_in->port});
    pump(carrier);
}

void UdpRelay::bind(const wire::BindRequest& request, const Requester& requester, BindReplyHandler reply) {
    wire::BindReply answer;
    if (request.transport != wire::Transport::udp) {
        answer.status = -EPROTONOSUPPORT;
        reply(answer);
        return;
    }
    net::SocketIdentity identity;
    if (int error = check_request(request.family, request.app_port, requester, identity)) {
        answer.status = error;
        reply(answer);
        return;
    }
    if (request.modem_port == 0) {
        answer.status = -EINVAL;
        reply(answer);
        return;
    }
    auto existing = find_app(request.family, request.app_port);
    if (existing && existing->identity != identity) {
        release(existing);
        existing = nullptr;
    }
    if (existing && existing->carrier) {
        // Served already (a repeated bind is harmless); bound to another port, or used as a client: not again.
        answer.status = existing->server && existing->modem_port == request.modem_port ? 0 : -EINVAL;
        reply(answer);
        return;
    }
    for (const auto& carrier : carriers_) {
        const auto& holder = carrier->owner;
        if (holder && holder != existing && holder->server && holder->modem_port == request.modem_port &&
            still_there(holder)) {
            answer.status = -EADDRINUSE;
            reply(answer);
            return;
        }
    }
    if (!can_carry(existing)) {
        answer.status = -EBUSY;
        reply(answer);
        return;
    }
    if (!driver_.serving()) {
        answer.status = -ENETDOWN;
        reply(answer);
        return;
    }
    auto app = app_for(request.family, request.app_port, requester, identity);
    app->requester = requester;
    auto carrier = take_carrier(app);
    if (!carrier) {
        reply(wire::BindReply{-EBUSY});
        return;
    }
    app->server = true;
    app->modem_port = request.modem_port;
    carrier->server = true;
    carrier->last_peer.reset();
    if (carrier->state == ProxyState::idle) {
        start_server(carrier, app, std::move(reply));
    } else {
        // The previous holder's client or server is still closing; serve once it has.
        carrier->after_close.push_back([this, carrier, app, reply = std::move(reply)]() mutable {
            if (carrier->owner != app) {
                reply(wire::BindReply{-EBUSY});
                return;
            }
            start_server(carrier, app, std::move(reply));
        });
    }
}

void UdpRelay::start_server(const CarrierPtr& carrier, const AppPtr& app, BindReplyHandler reply) {
    carrier->state = ProxyState::opening;
    const auto generation = carrier->generation = ++generation_;
    carrier->bytes_up = carrier->bytes_down = 0;
    SLMD_INFO("udp: serving modem port {} for loopback port {}", app->modem_port, app->port);
    driver_.udp_serve(
        app->modem_port, app->family == wire::Family::ipv6, proxy_events(carrier, generation),
        [this, alive = lifetime_.guard(), carrier, generation, app, reply](int error, modem::ConnectionId id) {
            if (!*alive || generation != carrier->generation) return;
            if (error) {
                SLMD_INFO("udp: serving modem port {} failed: {}", app->modem_port, std::strerror(error));
                carrier->state = ProxyState::idle;
                if (carrier->owner == app) {
                    carrier->owner.reset();
                    app->carrier.reset();
                }
                app->server = false;
                if (app->stand_ins.empty()) apps_.erase({app->family, app->port});
                reply(wire::BindReply{-error});
                post_pump(carrier);
                return;
            }
            carrier->connection = id;
            carrier->state = ProxyState::open;
            if (carrier->owner != app || app->gone) {
                close_proxy(carrier);  // the app went away while the modem was starting
                reply(wire::BindReply{-ECONNABORTED});
                return;
            }
            reply(wire::BindReply{0});
        });
}

modem::UdpEvents UdpRelay::proxy_events(const CarrierPtr& carrier, std::uint64_t generation) {
    return modem::UdpEvents{
        .datagram =
            [this, alive = lifetime_.guard(), carrier, generation](std::string_view datagram,
                                                                   const std::optional<modem::UdpPeer>& from) {
                if (!*alive || generation != carrier->generation) return;
                carrier->bytes_down += datagram.size();
                const auto owner = carrier->owner;
                if (!owner || owner->gone) {
                    ++counters_.dropped_app_gone;
                    return;
                }
                if (!carrier->server) {
                    deliver(owner, carrier->destination, false, datagram);
                    return;
                }
                if (from) {
                    if (auto address = parse_address(from->address)) {
                        carrier->last_peer = Peer{*address, from->port, std::nullopt};
                        deliver(owner, *carrier->last_peer, false, datagram);
                        return;
                    }
                }
                // Older firmware names no peer: the datagram comes from the one "anonymous last peer".
                carrier->last_peer.reset();
                deliver(owner, Peer{unspecified(owner->family), 0, std::nullopt}, true, datagram);
            },
        .closed =
            [this, alive = lifetime_.guard(), carrier, generation](modem::CloseReason reason, int error) {
                if (!*alive) return;
                on_proxy_closed(carrier, generation, reason, error);
            },
    };
}

void UdpRelay::on_proxy_closed(const CarrierPtr& carrier, std::uint64_t generation, modem::CloseReason reason,
                               int error) {
    if (generation != carrier->generation) return;
    const bool was_server = carrier->server;
    carrier->state = ProxyState::idle;
    if (reason != modem::CloseReason::local_close) {
        SLMD_WARN("udp: the modem's UDP {} ended: {}", was_server ? "server" : "client",
                  error ? std::strerror(error) : "modem lost");
        // A client comes back by itself on its next datagram; a server does not (its socket must be bound
        // again), so it lets go of the carrier.
        if (was_server && carrier->owner) {
            carrier->owner->carrier.reset();
            carrier->owner.reset();
        }
    }
    auto waiting = std::move(carrier->after_close);
    carrier->after_close.clear();
    asio::post(executor_, [this, alive = lifetime_.guard(), carrier, waiting = std::move(waiting)] {
        if (!*alive) return;
        for (const auto& then : waiting) then();
        pump(carrier);
    });
}

void UdpRelay::close_proxy(const CarrierPtr& carrier) {
    if (carrier->state != ProxyState::open) return;
    carrier->state = ProxyState::closing;
    driver_.udp_close(carrier->connection);  // closed(local_close) follows
}

void UdpRelay::post_pump(const CarrierPtr& carrier) {
    asio::post(executor_, [this, alive = lifetime_.guard(), carrier] {
        if (*alive) pump(carrier);
    });
}

void UdpRelay::pump(const CarrierPtr& carrier) {
    auto& ops = carrier->ops;
    while (!ops.empty()) {
        const auto& owner = carrier->owner;
        if (!owner || owner->gone || owner->server) {
            fail_ops(carrier, ECONNABORTED);
            return;
        }
        const auto state = carrier->state;
        if (state == ProxyState::opening || state == ProxyState::closing) return;
        if (state == ProxyState::open && !carrier->server && carrier->destination == ops.front().peer) {
            ClientOp op = std::move(ops.front());
            ops.pop_front();
            if (op.datagram) send_to_modem(carrier, std::move(*op.datagram), op.read_at);
            if (op.reply) op.reply(wire::UdpAssociateReply{0, wire::Route::modem, op.stand_in_port});
            continue;
        }
        if (state == ProxyState::open) {
            ++counters_.retargets;
            SLMD_DEBUG("udp: re-targeting the modem's client to {}:{}", address_text(ops.front().peer.address),
                       ops.front().peer.port);
            close_proxy(carrier);
            return;
        }
        open_client(carrier, ops.front().peer);
        return;
    }
}

void UdpRelay::open_client(const CarrierPtr& carrier, const Peer& peer) {
    carrier->state = ProxyState::opening;
    carrier->server = false;
    const auto generation = carrier->generation = ++generation_;
    carrier->bytes_up = carrier->bytes_down = 0;
    carrier->destination = peer;
    const auto endpoint =
        modem_endpoint(address_text(peer.address), peer.port, peer.address.family == wire::Family::ipv6, peer.tls);
    driver_.udp_connect(
        endpoint, proxy_events(carrier, generation),
        [this, alive = lifetime_.guard(), carrier, generation, peer](int error, modem::ConnectionId id) {
            if (!*alive || generation != carrier->generation) return;
            if (error) {
                SLMD_INFO("udp: client to {}:{} failed: {}", address_text(peer.address), peer.port,
                          std::strerror(error));
                carrier->state = ProxyState::idle;
                // Everything waiting for this destination fails; later ones get their turn.
                auto& ops = carrier->ops;
                while (!ops.empty() && ops.front().peer == peer) {
                    ClientOp op = std::move(ops.front());
                    ops.pop_front();
                    if (op.datagram) ++counters_.dropped_no_proxy;
                    if (op.reply) op.reply(wire::UdpAssociateReply{-error, wire::Route::modem, 0});
                }
                post_pump(carrier);
                return;
            }
            carrier->connection = id;
            carrier->state = ProxyState::open;
            if (!carrier->owner || carrier->owner->gone) {
                close_proxy(carrier);
                return;
            }
            pump(carrier);
        });
}

void UdpRelay::fail_ops(const CarrierPtr& carrier, int error) {
    auto ops = std::move(carrier->ops);
    carrier->ops.clear();
    for (auto& op : ops) {
        if (op.datagram) ++counters_.dropped_no_proxy;
        if (op.reply) op.reply(wire::UdpAssociateReply{-error, wire::Route::modem, 0});
    }
}

// Every datagram slmd cannot deliver is counted by reason and named in the debug log: UDP gives the app no
// error to see, so these are what an operator has (slmctl, journal).
void UdpRelay::dropped(std::uint64_t& counter, const char* why, std::size_t size) {
    ++counter;
    SLMD_DEBUG("udp: dropped a {}-byte datagram: {}", size, why);
}

void UdpRelay::send_to_modem(const CarrierPtr& carrier, std::string datagram,
                             std::chrono::steady_clock::time_point read_at) {
    const auto max = driver_.udp_max_send();
    if (max != 0 && datagram.size() > max) {
        dropped(counters_.dropped_too_big, "larger than the firmware can send", datagram.size());
        return;
    }
    const auto size = datagram.size();
    driver_.udp_send(carrier->connection, std::move(datagram),
                     [this, alive = lifetime_.guard(), carrier, size, read_at](int error) {
        if (!*alive) return;
        switch (error) {
            case 0:
                ++counters_.datagrams_up;
                counters_.bytes_up += size;
                carrier->bytes_up += size;
                driver_.when_written([this, alive, read_at] {
                    if (*alive) uplink_latency_.record(std::chrono::steady_clock::now() - read_at);
                });
                break;
            case EMSGSIZE: dropped(counters_.dropped_too_big, "larger than the firmware can send", size); break;
            case EBUSY: dropped(counters_.dropped_busy, "binary datagram while a TCP connection is open", size); break;
            default: dropped(counters_.dropped_send_failed, std::strerror(error), size); break;
        }
    });
}

UdpRelay::StandInPtr UdpRelay::stand_in_for(const AppPtr& app, const Peer& peer, bool anonymous, int& error) {
    for (auto& stand_in : app->stand_ins) {
        if (stand_in->anonymous == anonymous && stand_in->peer == peer) {
            stand_in->last_used = ++tick_;
            return stand_in;
        }
    }
    if (app->stand_ins.size() >= options_.max_stand_ins) {
        auto oldest = std::min_element(app->stand_ins.begin(), app->stand_ins.end(),
                                       [](const auto& a, const auto& b) { return a->last_used < b->last_used; });
        retire(*oldest);
        app->stand_ins.erase(oldest);
        ++counters_.stand_ins_evicted;
    }
    auto stand_in = std::make_shared<StandIn>(executor_);
    stand_in->peer = peer;
    stand_in->anonymous = anonymous;
    stand_in->app = app;
    boost::system::error_code failure;
    const auto protocol = app->family == wire::Family::ipv6 ? udp::v6() : udp::v4();
    stand_in->socket.open(protocol, failure);
    if (!failure) stand_in->socket.bind(loopback(app->family, 0), failure);
    // Connected to the app's socket: only it can feed this stand-in, and send() reaches only it.
    if (!failure) stand_in->socket.connect(loopback(app->family, app->port), failure);
    if (!failure) stand_in->port = stand_in->socket.local_endpoint(failure).port();
    if (failure) {
        error = failure.value() ? failure.value() : EIO;
        SLMD_WARN("udp: no stand-in for loopback port {}: {}", app->port, failure.message());
        return nullptr;
    }
    stand_in->buffer.resize(max_datagram);
    stand_in->last_used = ++tick_;
    app->stand_ins.push_back(stand_in);
    ++counters_.stand_ins_created;
    receive(stand_in);
    return stand_in;
}

// A stand-in's socket is closed once its pending receive has completed (cancelled), never under it: Asio
// frees the socket's operation queue on close, and the receive's completion must not find it reused.
// (The datagrams that vanished when a program closed its UDP socket and opened another were Boost 1.81's
// stale-user_data cancellation, fixed in compat/liburing.h; see tests/unit/asio_uring_cancel_test.cpp.)
void UdpRelay::retire(const StandInPtr& stand_in) {
    stand_in->retired = true;
    boost::system::error_code ignored;
    if (!stand_in->receiving) {
        stand_in->socket.close(ignored);
        return;
    }
    stand_in->socket.cancel(ignored);
    retired_.push_back(stand_in);
}

void UdpRelay::close_retired(const StandInPtr& stand_in) {
    boost::system::error_code ignored;
    stand_in->socket.close(ignored);
    std::erase(retired_, stand_in);
}

void UdpRelay::receive(const StandInPtr& stand_in) {
    std::weak_ptr<StandIn> weak = stand_in;
    stand_in->receiving = true;
    stand_in->socket.async_receive(
        asio::buffer(stand_in->buffer), [this, alive = lifetime_.guard(), weak](boost::system::error_code error, std::size_t n) {
            auto stand_in = weak.lock();
            if (!*alive || !stand_in) return;
            stand_in->receiving = false;
            if (stand_in->retired) {
                // A datagram that made it in before the cancel still goes where the app sent it.
                if (!error) on_app_datagram(stand_in, n);
                close_retired(stand_in);
                return;
            }
            if (error == asio::error::operation_aborted || !stand_in->socket.is_open()) return;
            // ECONNREFUSED: an earlier datagram to the app found its port closed (ICMP); the poll decides
            // whether the socket is gone.
            if (error && error != asio::error::connection_refused) {
                SLMD_DEBUG("udp: stand-in {}: {}", stand_in->port, error.message());
                return;
            }
            if (!error) on_app_datagram(stand_in, n);
            if (stand_in->retired) return;  // retired by that datagram (its app closed); already closed
            receive(stand_in);
        });
}

void UdpRelay::on_app_datagram(const StandInPtr& stand_in, std::size_t size) {
    auto app = stand_in->app.lock();
    if (!app || app->gone) return;
    if (app->closed) {
        // Read from a retired stand-in before its cancel took effect: it arrived before the close was seen.
        forward(app, stand_in, size);
        return;
    }
    switch (holder(*app)) {
        case Holder::the_app:
            forward(app, stand_in, size);
            return;
        case Holder::another_socket:
            // Another socket took the port (perhaps another user's): what it sends is never sent as the app's.
            release(app);
            dropped(counters_.dropped_app_gone, "another socket holds the app's port now", size);
            return;
        case Holder::nobody:
            // The app sent and closed (a reply, then exit): what it sent before the close is queued at the
            // stand-in now and goes out; anything later cannot be the app's, and the stand-ins are retired.
            forward(app, stand_in, size);
            drain_after_close(app, stand_in);
            return;
    }
}

void UdpRelay::drain_after_close(const AppPtr& app, const StandInPtr& reading) {
    app->closed = true;
    SLMD_INFO("udp: the app's socket at loopback port {} closed; its stand-ins are retired", app->port);
    while (reading->socket.is_open()) {
        const ssize_t n = ::recv(reading->socket.native_handle(), reading->buffer.data(), reading->buffer.size(),
                                 MSG_DONTWAIT);
        if (n < 0) break;
        forward(app, reading, static_cast<std::size_t>(n));
    }
    for (auto& stand_in : app->stand_ins) retire(stand_in);
    app->stand_ins.clear();
    watch();  // the poll releases the app once its datagrams are out
}

// Sends a datagram the app's socket sent to a stand-in on toward the modem.
void UdpRelay::forward(const AppPtr& app, const StandInPtr& stand_in, std::size_t size) {
    stand_in->last_used = ++tick_;
    const auto read_at = std::chrono::steady_clock::now();
    std::string datagram(stand_in->buffer.data(), size);
    if (app->server) {
        const auto& carrier = app->carrier;
        if (!carrier || carrier->owner != app || carrier->state != ProxyState::open) {
            dropped(counters_.dropped_no_proxy, "the UDP server is not running", size);
            return;
        }
        if (!stand_in->anonymous && (!carrier->last_peer || !(*carrier->last_peer == stand_in->peer))) {
            dropped(counters_.dropped_not_last_peer, "the firmware replies only to its last peer", size);
            return;
        }
        send_to_modem(carrier, std::move(datagram), read_at);
        return;
    }
    auto carrier = take_carrier(app);
    if (!carrier) {
        dropped(counters_.dropped_busy, "every modem UDP socket serves another socket", size);
        return;
    }
    if (carrier->ops.size() >= options_.max_queued_datagrams) {
        dropped(counters_.dropped_queue_full, "too many datagrams waiting for a re-target", size);
        return;
    }
    carrier->server = false;
    carrier->ops.push_back(ClientOp{stand_in->peer, std::move(datagram), nullptr, stand_in->port, read_at});
    pump(carrier);
}

void UdpRelay::deliver(const AppPtr& app, const Peer& peer, bool anonymous, std::string_view datagram) {
    if (app->closed || holder(*app) == Holder::another_socket) {
        ++counters_.dropped_app_gone;
        // Not from inside the driver's event: releasing closes the modem's proxy, a driver call.
        asio::post(executor_, [this, alive = lifetime_.guard(), app] {
            if (*alive) still_there(app);
        });
        return;
    }
    int error = 0;
    auto stand_in = stand_in_for(app, peer, anonymous, error);
    if (!stand_in) {
        ++counters_.dropped_app_gone;
        return;
    }
    auto bytes = std::make_shared<std::string>(datagram);
    const auto received = std::chrono::steady_clock::now();  // the driver hands datagrams over as it parses them
    stand_in->socket.async_send(asio::buffer(*bytes), [this, alive = lifetime_.guard(), bytes, received](
                                                          boost::system::error_code failure, std::size_t) {
        if (!*alive) return;
        if (failure) {
            ++counters_.dropped_app_gone;
            return;
        }
        ++counters_.datagrams_down;
        counters_.bytes_down += bytes->size();
        downlink_latency_.record(std::chrono::steady_clock::now() - received);
    });
}

void UdpRelay::release(const AppPtr& app) {
    if (app->gone) return;
    app->gone = true;
    ++counters_.sockets_released;
    SLMD_INFO("udp: the app's socket at loopback port {} is gone; releasing it", app->port);
    for (auto& stand_in : app->stand_ins) retire(stand_in);
    app->stand_ins.clear();
    apps_.erase({app->family, app->port});
    if (auto carrier = std::exchange(app->carrier, nullptr); carrier && carrier->owner == app) {
        carrier->owner.reset();
        fail_ops(carrier, ECONNABORTED);
        close_proxy(carrier);  // when still opening, the open's completion closes it
    }
}

void UdpRelay::watch() {
    if (polling_ || apps_.empty()) return;
    polling_ = true;
    poll_timer_.expires_after(options_.socket_poll);
    poll_timer_.async_wait([this, alive = lifetime_.guard()](boost::system::error_code error) {
        if (!*alive) return;
        polling_ = false;
        if (error) return;
        poll();
        watch();
    });
}

void UdpRelay::poll() {
    std::vector<AppPtr> gone;
    for (const auto& [key, app] : apps_) {
        if (holder(*app) != Holder::the_app) gone.push_back(app);
    }
    for (const auto& app : gone) release(app);
}

wire::LookupReply UdpRelay::lookup(const wire::LookupRequest& request) const {
    wire::LookupReply reply;
    reply.local = unspecified(request.family);
    reply.peer = unspecified(request.family);
    auto app = find_app(request.family, request.app_port);
    if (!app) {
        reply.status = -ENOENT;
        return reply;
    }
    if (app->server) {
        if (modem_address_) {
            if (auto address = parse_address(modem_address_(app->family))) reply.local = *address;
        }
        reply.local_port = app->modem_port;
    }
    if (request.loopback_peer_port != 0) {
        auto it = std::find_if(app->stand_ins.begin(), app->stand_ins.end(),
                               [&](const auto& stand_in) { return stand_in->port == request.loopback_peer_port; });
        if (it == app->stand_ins.end()) {
            reply.status = -ENXIO;  // the socket is known, that stand-in is not (any more)
            return reply;
        }
        reply.peer = (*it)->peer.address;
        reply.peer_port = (*it)->peer.port;
    }
    return reply;
}

wire::ProxyInfo UdpRelay::proxy_info() const {
    wire::ProxyInfo info;
    info.transport = wire::Transport::udp;
    const auto used = std::find_if(carriers_.begin(), carriers_.end(), [](const auto& carrier) {
        return carrier->owner && carrier->state != ProxyState::idle && carrier->state != ProxyState::closing;
    });
    if (used == carriers_.end()) return info;
    const Carrier& carrier = **used;
    info.owner_pid = carrier.owner->requester.pid;
    info.bytes_up = carrier.bytes_up;
    info.bytes_down = carrier.bytes_down;
    if (carrier.server) {
        info.role = wire::ProxyRole::server;
        info.port = carrier.owner->modem_port;
        if (carrier.last_peer)
            info.peer = address_text(carrier.last_peer->address) + ":" + std::to_string(carrier.last_peer->port);
    } else {
        info.role = wire::ProxyRole::client;
        info.port = carrier.destination.port;
        info.peer = address_text(carrier.destination.address);
    }
    return info;
}

void UdpRelay::stop() {
    poll_timer_.cancel();
    for (const auto& carrier : carriers_) {
        fail_ops(carrier, ENETDOWN);
        carrier->after_close.clear();
    }
    for (auto& [key, app] : apps_) {
        app->gone = true;
        for (auto& stand_in : app->stand_ins) {
            boost::system::error_code ignored;
            stand_in->socket.close(ignored);
        }
        app->stand_ins.clear();
    }
    for (auto& stand_in : retired_) {
        boost::system::error_code ignored;
        stand_in->socket.close(ignored);
    }
    retired_.clear();
    for (auto& [key, app] : apps_) app->carrier.reset();
    apps_.clear();
    for (const auto& carrier : carriers_) {
        carrier->owner.reset();
        carrier->state = ProxyState::idle;
    }
}

}  // namespace slmd::core
