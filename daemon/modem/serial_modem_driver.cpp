// Owns: the Serial Modem add-on's sockets as a ModemDriver (see serial_modem_driver.hpp).
#include "modem/serial_modem_driver.hpp"

#include <netdb.h>

#include <boost/asio/post.hpp>
#include <cerrno>
#include <charconv>
#include <memory>
#include <utility>

#include "modem/answer_parsers.hpp"
#include "modem/command_sequence.hpp"
#include "modem/at_string.hpp"
#include "modem/dns_query.hpp"
#include "modem/tls_command.hpp"
#include "sys/log.hpp"

namespace slmd::modem {

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

// "#XAPOLL: <h>,<revents>" → (h, revents).
std::optional<std::pair<int, int>> poll_report(std::string_view line) {
    if (!line.starts_with("#XAPOLL: ")) return std::nullopt;
    line.remove_prefix(9);
    const auto comma = line.find(',');
    if (comma == std::string_view::npos) return std::nullopt;
    const auto handle = parse_leading_int(line.substr(0, comma));
    const auto events = parse_leading_int(line.substr(comma + 1));
    if (!handle || !events) return std::nullopt;
    return std::pair{*handle, *events};
}

constexpr int poll_error = 8;
constexpr int poll_hangup = 16;
constexpr int poll_invalid = 32;

}  // namespace

SerialModemDriver::SerialModemDriver(asio::any_io_executor executor, at::Channel& channel, DataModeGate& gate,
                                     std::function<bool()> serving, SerialModemDriverOptions options)
    : executor_(executor),
      channel_(channel),
      gate_(gate),
      serving_(std::move(serving)),
      options_(options),
      interactive_timer_(executor) {}

SerialModemDriver::~SerialModemDriver() {
    lifetime_.end();
    interactive_timer_.cancel();
}

std::size_t SerialModemDriver::socket_limit() const {
    // v1.0.x keeps one of the 8 descriptors (SM_MAX_SOCKET_COUNT = SM_FDS_COUNT - 1); from the v2.0 previews
    // (main 1.99) the table is NRF_MODEM_MAX_SOCKET_COUNT itself (commit f19f4db).
    if (options_.socket_limit) return options_.socket_limit;
    return channel_.profile().version >= at::FirmwareVersion{1, 99, 0} ? 8 : 7;
}

std::size_t SerialModemDriver::tcp_capacity() const {
    return options_.max_connections == 0 ? socket_limit()
                                         : std::min(options_.max_connections, socket_limit());
}

std::size_t SerialModemDriver::tcp_available() const {
    const auto used = open_count();
    return used >= tcp_capacity() ? 0 : tcp_capacity() - used;
}

std::size_t SerialModemDriver::udp_max_send() const {
    return channel_.profile().data_mode_buffer;
}
std::size_t SerialModemDriver::udp_max_receive() const {
    return channel_.profile().receive_chunk_max;
}

SerialModemDriver::Socket* SerialModemDriver::find(ConnectionId id) {
    auto it = sockets_.find(id);
    return it == sockets_.end() ? nullptr : &it->second;
}

SerialModemDriver::Socket* SerialModemDriver::find_handle(int handle) {
    for (auto& [id, socket] : sockets_) {
        if (socket.handle == handle) return &socket;
    }
    return nullptr;
}

// Bring-up and loss
// ------------------------------------------------------------------------------------------------------

void SerialModemDriver::on_serving() {
    // Sockets outlive slmd (a restart, a crash): whatever the firmware still holds is nobody's now.
    gate_.submit({"AT#XCLOSE", "#XCLOSE", 10s}, [](at::CommandResponse) {});
    // Without a handle both apply to every socket, including those opened later. Events 0: only the reports
    // the firmware always gives once started (error, hang-up, invalid); data comes by automatic reception.
    gate_.submit({"AT#XRECVCFG=," + std::string(paused_ ? "0" : "1"), "", 5s},
                 [](at::CommandResponse response) {
                     if (!response.ok())
                         SLMD_WARN("serial modem: AT#XRECVCFG answered {}", response.describe());
                 });
    gate_.submit({"AT#XAPOLL=,1,0", "", 5s}, [](at::CommandResponse response) {
        if (!response.ok()) SLMD_WARN("serial modem: AT#XAPOLL answered {}", response.describe());
    });
}

void SerialModemDriver::on_modem_lost() {
    std::vector<ConnectionId> ids;
    for (const auto& [id, socket] : sockets_) ids.push_back(id);
    for (const auto id : ids) lose(id, CloseReason::modem_lost, ECONNRESET);
}

// Opening
// ------------------------------------------------------------------------------------------------------

void SerialModemDriver::tcp_connect(const TcpEndpoint& destination, std::chrono::milliseconds timeout,
                                    TcpConnectionEvents events, std::function<void(int, ConnectionId)> done) {
    Socket socket;
    socket.kind = Kind::tcp;
    socket.tcp_events = std::move(events);
    open(Kind::tcp, destination, 0, timeout, std::move(socket), std::move(done));
}

void SerialModemDriver::udp_connect(const TcpEndpoint& destination, UdpEvents events,
                                    std::function<void(int, ConnectionId)> done) {
    Socket socket;
    socket.kind = Kind::udp_client;
    socket.udp_events = std::move(events);
    open(Kind::udp_client, destination, 0, 10s, std::move(socket), std::move(done));
}

void SerialModemDriver::udp_serve(std::uint16_t port, bool ipv6, UdpEvents events,
                                  std::function<void(int, ConnectionId)> done) {
    Socket socket;
    socket.kind = Kind::udp_server;
    socket.udp_events = std::move(events);
    open_bound(port, ipv6, std::move(socket), std::move(done));
}

void SerialModemDriver::open_bound(std::uint16_t port, bool ipv6, Socket socket,
                                   std::function<void(int, ConnectionId)> done) {
    TcpEndpoint local;
    local.ipv6 = ipv6;
    const auto kind = socket.kind;
    open(kind, local, port, 10s, std::move(socket), std::move(done));
}

bool SerialModemDriver::listens() const {
    return channel_.profile().version >= at::FirmwareVersion{2, 0, 0};
}

void SerialModemDriver::tcp_listen(std::uint16_t port, bool ipv6, TcpListenerEvents events,
                                   std::function<void(int, ListenerId)> done) {
    if (!listens()) {
        // v0.2 to v1.0.x have no #XLISTEN/#XACCEPT (removed in v0.2, back in the v2.0 previews).
        asio::post(executor_, [done = std::move(done)] { done(EOPNOTSUPP, 0); });
        return;
    }
    Socket socket;
    socket.kind = Kind::listener;
    socket.listener_events = std::move(events);
    open_bound(port, ipv6, std::move(socket), std::move(done));
}

void SerialModemDriver::tcp_stop_listen(ListenerId id) {
    auto* listener = find(id);
    if (!listener || listener->kind != Kind::listener) return;
    // Its peers are hung up with it, as on SLM (ModemDriver::tcp_stop_listen); each hears closed(local_close).
    std::vector<ConnectionId> peers;
    for (const auto& [peer_id, socket] : sockets_) {
        if (socket.server == id) peers.push_back(peer_id);
    }
    for (const auto peer : peers) close(peer);
    close(id);
}

void SerialModemDriver::open(Kind kind, const TcpEndpoint& destination, std::uint16_t local_port,
                             std::chrono::milliseconds timeout, Socket socket,
                             std::function<void(int, ConnectionId)> done) {
    auto fail_soon = [this, &done](int error) {
        asio::post(executor_, [done = std::move(done), error] { done(error, 0); });
    };
    if (!serving()) return fail_soon(ENETDOWN);
    // TLS or DTLS by the modem: a TLS/DTLS socket (#XSSOCKET) whose handshake runs inside #XCONNECT, its options
    // set first (#XSSOCKETOPT TLS_HOSTNAME, so that the modem checks the name; DTLS_CID). Servers stay plain.
    std::optional<TlsSocket> tls;
    std::vector<std::string> tls_options;  // the #XSSOCKETOPT settings after "<handle>,"
    if (destination.tls) {
        if (kind != Kind::tcp && kind != Kind::udp_client) return fail_soon(EOPNOTSUPP);
        auto checked = tls_socket(*destination.tls, destination.host,
                                  kind == Kind::tcp ? TlsTransport::tcp : TlsTransport::udp);
        if (const int* error = std::get_if<int>(&checked)) return fail_soon(*error);
        tls = std::get<TlsSocket>(checked);
        if (tls->quoted_hostname) tls_options.push_back("1,2," + *tls->quoted_hostname);
        if (tls->dtls_cid) tls_options.push_back("1,14," + std::to_string(*tls->dtls_cid));
    }
    // The second command: connect a client to its destination, or bind a server to its port.
    at::CommandRequest second;
    const bool binds = kind == Kind::udp_server || kind == Kind::listener;
    if (binds) {
        if (local_port == 0) return fail_soon(EINVAL);
    } else {
        const auto host = at_quoted(AtStringKind::host, destination.host);
        if (!host || destination.port == 0) return fail_soon(EINVAL);
        second = {"," + *host + "," + std::to_string(destination.port), "#XCONNECT", timeout + 5s};
    }
    if (tcp_available() == 0) return fail_soon(EBUSY);
    ++opening_;
    const std::string family = destination.ipv6 ? "2" : "1";
    const std::string type_role = kind == Kind::tcp          ? ",1,0"
                                  : kind == Kind::listener   ? ",1,1"
                                  : kind == Kind::udp_client ? ",2,0"
                                                             : ",2,1";
    auto pending = std::make_shared<Socket>(std::move(socket));
    const at::CommandRequest create =
        tls ? at::CommandRequest{"AT#XSSOCKET=" + family + type_role + tls->socket_tail, "#XSSOCKET", 5s}
            : at::CommandRequest{"AT#XSOCKET=" + family + type_role, "#XSOCKET", 5s};
    const bool secure = tls.has_value();
    gate_.submit(create,
                 [this, alive = lifetime_.guard(), kind, binds, secure, local_port, tls_options,
                  second = std::move(second), pending, done = std::move(done)](at::CommandResponse response) mutable {
                     if (!*alive) return;
                     const auto handle = parse_opened_socket(response.info);
                     if (!response.ok() || !handle) {
                         --opening_;
                         slot_freed();
                         done(response.error ? ENETDOWN : EMFILE, 0);  // plain ERROR: no socket left
                         return;
                     }
                     const std::string h = std::to_string(*handle);
                     second.line = binds ? "AT#XBIND=" + h + "," + std::to_string(local_port)
                                         : "AT#XCONNECT=" + h + second.line;
                     if (binds) second.timeout = 5s;
                     auto close_and_fail = [this, handle = *handle](int error,
                                                                    std::function<void(int, ConnectionId)> done) {
                         abandon_opening(handle, error, std::move(done));
                     };
                     auto submit_second = [this, alive, kind, binds, secure, handle = *handle, pending, second,
                                           close_and_fail](std::function<void(int, ConnectionId)> done) {
                     gate_.submit(second, [this, alive, kind, binds, secure, handle, pending, close_and_fail,
                                           done = std::move(done)](at::CommandResponse answer) mutable {
                         if (!*alive) return;
                         if (kind == Kind::listener && answer.ok())
                             return start_listening(handle, std::move(pending), std::move(done));
                         const bool ok =
                             binds
                                 ? answer.ok()
                                 : answer.ok() && !answer.info.empty() &&
                                       answer.info.front() == "#XCONNECT: " + std::to_string(handle) + ",1";
                         if (ok) {
                             --opening_;
                             const auto id = next_id_++;
                             pending->id = id;
                             pending->handle = handle;
                             sockets_.emplace(id, std::move(*pending));
                             SLMD_INFO("serial modem socket {}: {} (connection {})", handle,
                                       kind == Kind::udp_server ? "bound" : "connected", id);
                             done(0, id);
                             return;
                         }
                         // Plain ERROR says no more: refused, unreachable, no route, port in use; on a TLS socket
                         // also a failed handshake, which SLM reports as ECONNABORTED.
                         const int error = answer.error == at::ChannelError::timeout ? ETIMEDOUT
                                           : answer.error                            ? ENETDOWN
                                           : binds                                   ? EADDRINUSE
                                           : secure                                  ? ECONNABORTED
                                           : kind == Kind::tcp                       ? ECONNREFUSED
                                                                                     : EHOSTUNREACH;
                         close_and_fail(error, std::move(done));
                     });
                     };
                     // The options must be set before the connect: without the name the modem would not check
                     // it.
                     std::vector<at::CommandRequest> settings;
                     for (const auto& option : tls_options) settings.push_back({"AT#XSSOCKETOPT=" + h + "," + option, "", 5s});
                     submit_in_order(
                         alive, std::move(settings),
                         [this](at::CommandRequest request, at::Channel::ResponseHandler handler) {
                             gate_.submit(std::move(request), std::move(handler));
                         },
                         [submit_second, close_and_fail,
                          done = std::move(done)](std::optional<at::CommandResponse> refused) mutable {
                             if (!refused) return submit_second(std::move(done));
                             close_and_fail(refused->error ? ENETDOWN : EINVAL, std::move(done));
                         });
                 });
}

// A socket being opened failed a later step: it is closed, and its descriptor counts as free once the firmware
// answered.
void SerialModemDriver::abandon_opening(int handle, int error, std::function<void(int, ConnectionId)> done) {
    gate_.submit({"AT#XCLOSE=" + std::to_string(handle), "#XCLOSE", 5s},
                 [this, alive = lifetime_.guard(), error, done = std::move(done)](at::CommandResponse) {
                     if (!*alive) return;
                     --opening_;
                     slot_freed();
                     done(error, 0);
                 });
}

// A bound TCP socket becomes a server: #XLISTEN, then POLLIN reports on it (a peer is waiting to be accepted).
void SerialModemDriver::start_listening(int handle, std::shared_ptr<Socket> pending,
                                        std::function<void(int, ConnectionId)> done) {
    const std::string h = std::to_string(handle);
    auto fail = [this, handle](int error, std::function<void(int, ConnectionId)> done) {
        abandon_opening(handle, error, std::move(done));
    };
    gate_.submit({"AT#XLISTEN=" + h, "", 5s}, [this, alive = lifetime_.guard(), handle, h, pending, fail,
                                               done = std::move(done)](at::CommandResponse listened) mutable {
        if (!*alive) return;
        if (!listened.ok()) return fail(listened.error ? ENETDOWN : EADDRINUSE, std::move(done));
        gate_.submit({"AT#XAPOLL=" + h + ",1,1", "", 5s},
                     [this, alive, handle, pending, fail, done = std::move(done)](at::CommandResponse polled) mutable {
                         if (!*alive) return;
                         if (!polled.ok()) return fail(polled.error ? ENETDOWN : EIO, std::move(done));
                         --opening_;
                         const auto id = next_id_++;
                         pending->id = id;
                         pending->handle = handle;
                         sockets_.emplace(id, std::move(*pending));
                         SLMD_INFO("serial modem socket {}: listening (server {})", handle, id);
                         done(0, id);
                     });
    });
}

// A peer waits on a listener: #XACCEPT gives it a socket of its own, which automatic reception and close reports
// cover already (both were switched on for every socket to come). The firmware re-arms the listener's POLLIN with
// the accept, so a second waiting peer is reported again.
void SerialModemDriver::accept(ConnectionId listener_id) {
    auto* listener = find(listener_id);
    if (!listener || listener->accepting || listener->closing) return;
    if (tcp_available() == 0) {
        // modem-connections (or the firmware's table) is reached: the peer waits in the modem's backlog until
        // a connection closes (slot_freed), as a peer waits in a kernel's accept queue. The firmware reports it
        // once, so the wait is remembered here.
        if (!listener->accept_waiting)
            SLMD_INFO("serial modem socket {}: a peer waits to be accepted: no connection left", listener->handle);
        listener->accept_waiting = true;
        return;
    }
    listener->accept_waiting = false;
    listener->accepting = true;
    ++opening_;  // the peer's socket takes a descriptor once accepted
    gate_.submit({"AT#XACCEPT=" + std::to_string(listener->handle), "#XACCEPT", 5s},
                 [this, alive = lifetime_.guard(), listener_id](at::CommandResponse answer) {
                     if (!*alive) return;
                     --opening_;
                     auto* listener = find(listener_id);
                     if (listener) listener->accepting = false;
                     std::optional<AcceptedPeer> peer;
                     for (const auto& line : answer.info) {
                         if (!peer) peer = parse_sm_accept(line);
                     }
                     if (!answer.ok() || !peer) {
                         slot_freed();
                         return;  // ERROR: the peer left, or no socket was left for it
                     }
                     if (!listener || listener->closing) {
                         // Stopped meanwhile: the peer is hung up.
                         gate_.submit({"AT#XCLOSE=" + std::to_string(peer->handle), "#XCLOSE", 5s},
                                      [](at::CommandResponse) {});
                         return;
                     }
                     Socket socket;
                     socket.kind = Kind::tcp;
                     socket.id = next_id_++;
                     socket.handle = peer->handle;
                     socket.server = listener_id;
                     const auto id = socket.id;
                     auto incoming = listener->listener_events.incoming;
                     sockets_.emplace(id, std::move(socket));
                     SLMD_INFO("serial modem socket {}: peer {} port {} accepted (connection {})", peer->handle,
                               peer->address, peer->port, id);
                     auto events = incoming ? incoming(id, peer->address) : TcpConnectionEvents{};
                     if (auto* s = find(id)) s->tcp_events = std::move(events);
                 });
}

// Sending
// ------------------------------------------------------------------------------------------------------

void SerialModemDriver::tcp_send(ConnectionId id, std::string bytes, std::function<void(int)> done) {
    auto* socket = find(id);
    if (!socket || socket->closing || socket->kind != Kind::tcp) {
        asio::post(executor_, [done = std::move(done)] { done(ENOTCONN); });
        return;
    }
    note_send(*socket);
    socket->sends.push_back({std::move(bytes), std::move(done)});
    pump(id);
}

void SerialModemDriver::udp_send(ConnectionId id, std::string datagram, std::function<void(int)> done) {
    auto* socket = find(id);
    int refusal = 0;
    if (!socket || socket->closing || socket->kind == Kind::tcp) {
        refusal = ENOTCONN;
    } else if (datagram.size() > udp_max_send()) {
        refusal = EMSGSIZE;
    } else if (socket->kind == Kind::udp_server && !socket->last_peer) {
        refusal = EDESTADDRREQ;
    }
    if (refusal) {
        asio::post(executor_, [done = std::move(done), refusal] { done(refusal); });
        return;
    }
    note_send(*socket);
    socket->sends.push_back({std::move(datagram), std::move(done)});
    pump(id);
}

void SerialModemDriver::pump(ConnectionId id) {
    auto* socket = find(id);
    if (!socket || socket->sending) return;
    if (socket->sends.empty()) {
        if (socket->closing) close(id);
        return;
    }
    socket->sending = true;
    auto job = std::make_shared<SendJob>(std::move(socket->sends.front()));
    socket->sends.pop_front();
    // A TCP send goes in pieces of at most one data-mode buffer; a datagram is always one piece.
    auto offset = std::make_shared<std::size_t>(0);
    auto next = std::make_shared<std::function<void(int)>>();
    *next = [this, alive = lifetime_.guard(), id, job, offset, next](int error) {
        if (!*alive) return;
        auto* s = find(id);
        if (!error && s && *offset < job->bytes.size()) {
            const std::size_t piece =
                std::min(job->bytes.size() - *offset, channel_.profile().data_mode_buffer);
            auto bytes = job->bytes.substr(*offset, piece);
            *offset += piece;
            send_chunk(id, std::move(bytes), *next);
            return;
        }
        if (!error) stats_.bytes_up += job->bytes.size();
        if (s) s->sending = false;
        // Done with this job: everything below uses locals only, because releasing `next` (which breaks
        // the cycle through it) destroys this very closure.
        SerialModemDriver* self = this;
        const ConnectionId finished_id = id;
        auto done = std::move(job->done);
        auto closure = std::exchange(*next, nullptr);
        done(s ? error : ECONNRESET);
        self->pump(finished_id);
    };
    (*next)(0);
}

void SerialModemDriver::send_chunk(ConnectionId id, std::string bytes, std::function<void(int)> finished) {
    auto* socket = find(id);
    if (!socket) return finished(ECONNRESET);
    const std::string h = std::to_string(socket->handle);
    const bool to_peer = socket->kind == Kind::udp_server;
    std::string target;
    if (to_peer) {
        const auto address = at_quoted(AtStringKind::host, socket->last_peer->address);
        if (!address) return finished(EDESTADDRREQ);
        target = "," + *address + "," + std::to_string(socket->last_peer->port);
    }
    const std::string verb = to_peer ? "AT#XSENDTO=" : "AT#XSEND=";
    const std::string answer = to_peer ? "#XSENDTO" : "#XSEND";
    const auto text =
        bytes.size() <= options_.quoted_send_limit ? at_quoted(AtStringKind::tcp_send, bytes) : std::nullopt;
    // The add-on's documentation sends data holding ',' through data mode only.
    if (text && text->find(',') == std::string::npos) {
        ++stats_.quoted_sends;
        const std::string line = verb + h + ",0,0" + target + "," + *text;
        gate_.submit({line, answer, 10s}, [finished = std::move(finished), size = bytes.size(),
                                           expect = answer + ": " + h + ",0,"](at::CommandResponse response) {
            // "#XSEND: <h>,0,<n>": n short of the size means the socket failed part-way (ERROR follows).
            const bool whole = response.ok() && !response.info.empty() &&
                               response.info.front() == expect + std::to_string(size);
            finished(whole ? 0 : response.error == at::ChannelError::timeout ? ETIMEDOUT : ECONNRESET);
        });
        return;
    }
    std::string command = verb + h + ",2,0" + target + "," + std::to_string(bytes.size());
    send_counted(id, std::move(command), std::move(bytes), std::move(finished));
}

void SerialModemDriver::send_counted(ConnectionId id, std::string command, std::string bytes,
                                     std::function<void(int)> finished) {
    ++stats_.counted_sends;
    gate_.with_command_mode([this, alive = lifetime_.guard(), id, command = std::move(command),
                             bytes = std::move(bytes), finished = std::move(finished)]() mutable {
        if (!*alive) return;
        if (!find(id)) return finished(ECONNRESET);
        channel_.enter_data_mode(
            {std::move(command), "", 5s}, [this, alive, id, bytes = std::move(bytes),
                                           finished = std::move(finished)](at::CommandResponse response) {
                if (!*alive) return;
                if (!response.ok()) return finished(ECONNRESET);
                gate_.begin_session({DataModeGate::Owner::socket, id});
                auto shared = std::make_shared<std::function<void(int)>>(std::move(finished));
                const auto error = channel_.write_counted_data(
                    bytes, [this, alive, shared](std::error_code exit_error, int status) {
                        if (!*alive) return;
                        gate_.end_session();
                        // #XDATAMODE: 0, or -1 when the socket failed (the firmware says no more).
                        (*shared)(exit_error ? ETIMEDOUT : status == 0 ? 0 : ECONNRESET);
                    });
                if (error) {
                    gate_.end_session();
                    (*shared)(ECONNRESET);
                }
            });
    });
}

// Receiving
// ------------------------------------------------------------------------------------------------------

void SerialModemDriver::on_proxy_data(at::ProxyData&& data) {
    if (!data.handle) return;
    auto* socket = find_handle(*data.handle);
    if (!socket) {
        // A socket slmd already closed (its last bytes crossed the close) or never knew.
        stats_.unknown_handle_bytes += data.bytes.size();
        return;
    }
    stats_.bytes_down += data.bytes.size();
    if (socket->draining) socket->drain_got_bytes = true;
    if (socket->closing) return;  // the app is gone; nobody reads these
    if (socket->slice_reading) {
        socket->slice_bytes += data.bytes.size();
    } else if (socket->kind == Kind::tcp && data.bytes.size() >= options_.bulk_chunk_threshold) {
        consider_slicing(*socket);
    }
    if (socket->kind == Kind::tcp) {
        if (socket->tcp_events.data) socket->tcp_events.data(data.bytes);
        return;
    }
    std::optional<UdpPeer> peer;
    if (data.peer_address && data.peer_port) peer = UdpPeer{*data.peer_address, *data.peer_port};
    if (socket->kind == Kind::udp_server && peer) socket->last_peer = peer;
    if (socket->udp_events.datagram) socket->udp_events.datagram(data.bytes, peer);
}

void SerialModemDriver::on_payload_lost(const at::PayloadLost& lost) {
    if (!lost.handle) return;
    if (auto* socket = find_handle(*lost.handle)) lose(socket->id, CloseReason::data_lost, ECONNRESET);
}

bool SerialModemDriver::on_urc(const std::string& text) {
    const auto report = poll_report(text);
    if (!report) return false;
    auto* socket = find_handle(report->first);
    if (!socket || socket->draining || socket->closing) return true;
    if (socket->kind == Kind::listener) {
        if (report->second & (poll_error | poll_hangup | poll_invalid)) {
            SLMD_INFO("serial modem socket {}: the server failed (server {})", socket->handle, socket->id);
            lose(socket->id, CloseReason::peer_closed, ENETDOWN);
        } else if (report->second & 1) {
            accept(socket->id);
        }
        return true;
    }
    if (!(report->second & (poll_error | poll_hangup | poll_invalid))) {
        // POLLIN, asked for by a sliced socket that ran dry: bytes wait again.
        if ((report->second & 1) && socket->sliced && socket->slice_watching) {
            watch_slice(*socket, false);
            read_slice(socket->id);
        }
        return true;
    }
    // Reported once; automatic reception stops with it. What the socket still holds is read on request.
    socket->draining = true;
    socket->drain_error = (report->second & (poll_error | poll_invalid)) != 0;
    SLMD_INFO("serial modem socket {}: {} (connection {})", socket->handle,
              socket->drain_error ? "error reported" : "peer closed", socket->id);
    drain(socket->id);
    return true;
}

void SerialModemDriver::drain(ConnectionId id) {
    auto* socket = find(id);
    if (!socket || socket->closing) return;
    socket->drain_got_bytes = false;
    ++stats_.drains;
    // DONTWAIT (64): a read that blocks would hold the firmware's AT channel. Bytes come as "#XRECV: …" (to
    // on_proxy_data); the end of the stream as OK with none.
    const std::string line = std::string(socket->kind == Kind::udp_server ? "AT#XRECVFROM=" : "AT#XRECV=") +
                             std::to_string(socket->handle) + ",0,64,0";
    gate_.submit({line, "", 5s}, [this, alive = lifetime_.guard(), id](at::CommandResponse response) {
        if (!*alive) return;
        auto* s = find(id);
        if (!s || s->closing) return;
        if (response.ok() && s->drain_got_bytes) return drain(id);
        if (response.error == at::ChannelError::modem_reset || response.error == at::ChannelError::link_lost)
            return;
        // OK without bytes: the stream ended. ERROR: nothing to read and the socket failed.
        const bool clean = response.ok() && !s->drain_error;
        lose(id, CloseReason::peer_closed, clean ? 0 : ECONNRESET);
    });
}

void SerialModemDriver::pause_receive(bool paused) {
    if (paused == paused_) return;
    paused_ = paused;
    // Sliced reads stop with the pause (read_slice() checks it); the resume below switches automatic
    // reception on for every socket, so slicing starts afresh when still needed.
    if (!paused && serving()) {
        for (auto& [id, socket] : sockets_) {
            if (!socket.sliced) continue;
            socket.sliced = false;
            watch_slice(socket, false);
        }
    }
    // Automatic reception off for every socket: bytes wait in the modem (TCP's window then slows the peer),
    // and switching it on again re-arms every socket that holds some.
    if (!serving()) return;
    gate_.submit({"AT#XRECVCFG=," + std::string(paused ? "0" : "1"), "", 5s},
                 [](at::CommandResponse response) {
                     if (!response.ok())
                         SLMD_WARN("serial modem: AT#XRECVCFG answered {}", response.describe());
                 });
}

// Scheduling beside bulk
// ------------------------------------------------------------------------------------------------------

bool SerialModemDriver::interactive(const Socket& socket, std::chrono::steady_clock::time_point now) const {
    return !socket.sliced && socket.last_send != std::chrono::steady_clock::time_point{} &&
           now - socket.last_send < options_.interactive_window;
}

void SerialModemDriver::note_send(Socket& socket) {
    socket.last_send = std::chrono::steady_clock::now();
}

// An automatic read brought a large chunk: the socket receives in bulk. Beside an interactive socket its
// 2048-byte reads would hold up everything else on the wire, so it is read in slices from now on.
void SerialModemDriver::consider_slicing(Socket& socket) {
    if (socket.sliced || paused_ || socket.draining || socket.closing || socket.handle < 0) return;
    const auto now = std::chrono::steady_clock::now();
    if (interactive(socket, now)) return;  // bulk both ways (a request just sent): it is the interactive one
    bool beside_interactive = false;
    for (const auto& [id, other] : sockets_) {
        if (&other != &socket && !other.closing && interactive(other, now)) beside_interactive = true;
    }
    if (!beside_interactive) return;
    socket.sliced = true;
    ++stats_.slicings;
    SLMD_DEBUG("serial modem socket {}: read in slices beside an interactive socket (connection {})",
               socket.handle, socket.id);
    gate_.submit({"AT#XRECVCFG=" + std::to_string(socket.handle) + ",0", "", 5s}, [](at::CommandResponse) {
        // An ERROR means the socket is gone already; its close report and drain follow.
    });
    read_slice(socket.id);
    arm_interactive_timer();
}

void SerialModemDriver::read_slice(ConnectionId id) {
    auto* socket = find(id);
    if (!socket || !socket->sliced || socket->slice_reading || socket->slice_watching || socket->draining ||
        socket->closing || paused_)
        return;
    socket->slice_reading = true;
    socket->slice_bytes = 0;
    ++stats_.slice_reads;
    const auto slice = options_.bulk_read_slice;
    // DONTWAIT (64), as every read: a blocking one would hold the firmware's AT channel.
    const std::string line =
        "AT#XRECV=" + std::to_string(socket->handle) + ",0,64,0," + std::to_string(slice);
    gate_.submit({line, "", 5s}, [this, alive = lifetime_.guard(), id, slice](at::CommandResponse response) {
        if (!*alive) return;
        auto* s = find(id);
        if (!s) return;
        s->slice_reading = false;
        if (s->closing || s->draining || response.error) return;
        if (response.ok() && s->slice_bytes == 0) {
            // OK without bytes: the stream ended. The drain reads nothing more and reports the end; the
            // hang-up report that follows is then ignored.
            s->draining = true;
            s->drain_error = false;
            return drain(id);
        }
        if (!s->sliced || paused_) return;
        if (response.ok() && s->slice_bytes >= slice) return read_slice(id);
        // A short read or ERROR (EAGAIN): dry for now. A POLLIN report says when bytes wait again.
        watch_slice(*s, true);
    });
}

void SerialModemDriver::watch_slice(Socket& socket, bool on) {
    if (socket.slice_watching == on || socket.handle < 0) return;
    socket.slice_watching = on;
    // Events 1 (POLLIN) while watching; 0 again after, or every read that re-arms POLLIN would report it.
    gate_.submit({"AT#XAPOLL=" + std::to_string(socket.handle) + ",1," + (on ? "1" : "0"), "", 5s},
                 [](at::CommandResponse) {});
}

void SerialModemDriver::unslice_all() {
    for (auto& [id, socket] : sockets_) {
        if (!socket.sliced) continue;
        socket.sliced = false;  // a slice read on its way ends the loop when it comes back
        if (socket.closing || socket.handle < 0) continue;
        watch_slice(socket, false);
        SLMD_DEBUG("serial modem socket {}: automatic reception again (connection {})", socket.handle, id);
        // Re-arms POLLIN: what waits in the modem comes at once.
        gate_.submit({"AT#XRECVCFG=" + std::to_string(socket.handle) + ",1", "", 5s}, [](at::CommandResponse) {});
    }
}

// While sockets are sliced, checks once per window whether any socket is still interactive.
void SerialModemDriver::arm_interactive_timer() {
    if (interactive_timer_armed_) return;
    interactive_timer_armed_ = true;
    interactive_timer_.expires_after(options_.interactive_window);
    interactive_timer_.async_wait([this, alive = lifetime_.guard()](const boost::system::error_code& error) {
        if (!*alive) return;
        interactive_timer_armed_ = false;
        if (error) return;
        const auto now = std::chrono::steady_clock::now();
        bool sliced = false;
        bool still_interactive = false;
        for (const auto& [id, socket] : sockets_) {
            sliced = sliced || socket.sliced;
            still_interactive = still_interactive || (!socket.closing && interactive(socket, now));
        }
        if (!sliced) return;
        if (still_interactive) return arm_interactive_timer();
        unslice_all();
    });
}

// Closing
// ------------------------------------------------------------------------------------------------------

void SerialModemDriver::close(ConnectionId id) {
    auto* socket = find(id);
    if (!socket || (socket->closing && socket->handle < 0)) return;
    socket->closing = true;
    if (socket->sending || !socket->sends.empty()) return;  // pump() closes once the queue is sent
    const int handle = std::exchange(socket->handle, -1);   // bytes still on their way for it are dropped
    // The descriptor stays taken, and `closed` waits, until the firmware has closed it.
    gate_.submit({"AT#XCLOSE=" + std::to_string(handle), "#XCLOSE", 5s},
                 [this, alive = lifetime_.guard(), id](at::CommandResponse) {
                     if (!*alive) return;
                     auto it = sockets_.find(id);
                     if (it == sockets_.end()) return;  // the modem was lost meanwhile
                     Socket closed = std::move(it->second);
                     sockets_.erase(it);
                     slot_freed();
                     deliver_closed(closed, CloseReason::local_close, 0);
                 });
}

void SerialModemDriver::lose(ConnectionId id, CloseReason reason, int error) {
    auto it = sockets_.find(id);
    if (it == sockets_.end()) return;
    Socket socket = std::move(it->second);
    sockets_.erase(it);
    for (auto& job : socket.sends) job.done(ECONNRESET);
    socket.sends.clear();
    if (reason != CloseReason::modem_lost) {
        ++opening_;
        gate_.submit({"AT#XCLOSE=" + std::to_string(socket.handle), "#XCLOSE", 5s},
                     [this, alive = lifetime_.guard()](at::CommandResponse) {
                         if (!*alive) return;
                         --opening_;
                         slot_freed();
                     });
    } else {
        slot_freed();
    }
    deliver_closed(socket, reason, error);
}

void SerialModemDriver::deliver_closed(Socket& socket, CloseReason reason, int error) {
    if (socket.kind == Kind::listener) {
        // A stop asked for by tcp_stop_listen() is not reported.
        if (reason != CloseReason::local_close && socket.listener_events.stopped)
            socket.listener_events.stopped(error ? error : ENETDOWN);
    } else if (socket.kind == Kind::tcp) {
        if (socket.tcp_events.closed) socket.tcp_events.closed(reason, error);
    } else if (socket.udp_events.closed) {
        socket.udp_events.closed(reason, error);
    }
}

void SerialModemDriver::slot_freed() {
    asio::post(executor_, [this, alive = lifetime_.guard()] {
        if (!*alive) return;
        // Peers waiting in a server's backlog were there first; then connects waiting in slmd's queue.
        for (auto& [id, socket] : sockets_) {
            if (socket.kind == Kind::listener && socket.accept_waiting && tcp_available() > 0) accept(id);
        }
        if (capacity_listener_ && tcp_available() > 0) capacity_listener_();
    });
}

// Operators and DNS
// ------------------------------------------------------------------------------------------------------

void SerialModemDriver::describe_proxies(std::function<void(std::string)> done) {
    std::string text;
    for (const auto& [id, socket] : sockets_) {
        if (!text.empty()) text += "\n";
        text += "#XSOCKET: " + std::to_string(socket.handle) +
                (socket.kind == Kind::tcp          ? (socket.server ? ",tcp peer" : ",tcp")
                 : socket.kind == Kind::listener   ? ",tcp server"
                 : socket.kind == Kind::udp_client ? ",udp"
                                                   : ",udp server");
    }
    asio::post(executor_, [done = std::move(done), text = std::move(text)] { done(text); });
}

void SerialModemDriver::resolve(const std::string& name, int family,
                                std::function<void(int, std::vector<std::string>)> done) {
    if (!serving()) {
        asio::post(executor_, [done = std::move(done)] { done(EAI_AGAIN, {}); });
        return;
    }
    resolve_name(gate_, channel_.profile(), name, family, std::move(done));
}

}  // namespace slmd::modem
