// Owns: the SLM TCP proxy driver (see slm_proxy_driver.hpp).
#include "modem/slm_proxy_driver.hpp"

#include <boost/asio/post.hpp>

#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

#include "modem/firmware_errno.hpp"
#include "modem/at_string.hpp"
#include "modem/answer_parsers.hpp"
#include "modem/dns_query.hpp"
#include "modem/slm_commands.hpp"
#include "modem/tls_command.hpp"
#include "sys/log.hpp"

namespace slmd::modem {

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

bool is_numeric_address(const std::string& host) {
    return !host.empty() && host.find_first_not_of("0123456789.:abcdefABCDEF") == std::string::npos &&
           (host.find('.') != std::string::npos || host.find(':') != std::string::npos);
}

}  // namespace

SlmProxyDriver::SlmProxyDriver(asio::any_io_executor executor, at::Channel& channel, DataModeGate& gate,
                               SlmProxyDriverHooks hooks, SlmProxyDriverOptions options)
    : executor_(executor),
      channel_(channel),
      gate_(gate),
      hooks_(std::move(hooks)),
      options_(options),
      tail_timer_(executor),
      idle_timer_(executor) {
    // A TCP session that ended with an error lost its connection: said before the steps waiting for the exit
    // run, so none of them enters data mode again (or sends) for it. on_data_mode_exited() then finds it gone.
    gate_.set_broken_session_handler(
        [this](const DataModeGate::Session& session, int status) { tcp_session_broke(session, status); });
}

SlmProxyDriver::~SlmProxyDriver() { lifetime_.end(); }

// Connect ------------------------------------------------------------------------------------------------------

void SlmProxyDriver::tcp_connect(const TcpEndpoint& destination, std::chrono::milliseconds timeout,
                                 TcpConnectionEvents events, std::function<void(int, ConnectionId)> done) {
    if (!serving()) {
        done(ENETDOWN, 0);
        return;
    }
    if (slot_busy_) {
        done(EBUSY, 0);
        return;
    }
    // The url goes inside quotes: only what at_string.hpp lets a host name hold.
    if (!at_string_allowed(AtStringKind::host, destination.host)) {
        SLMD_NOTICE("slm: refused a connect to a host name the modem cannot be given: \"{}\"",
                    destination.host);
        done(EINVAL, 0);
        return;
    }
    if (destination.tls) {
        const auto tail = tls_parameters(*destination.tls, TlsTransport::tcp, channel_.profile());
        if (const int* error = std::get_if<int>(&tail)) {
            SLMD_INFO("slm: TLS to {}:{} not possible on this firmware: {}", destination.host, destination.port,
                      std::strerror(*error));
            done(*error, 0);
            return;
        }
    }
    slot_busy_ = true;
    // Orphans from a previous slmd are closed first (on_serving), or this connect would find the proxy busy.
    when_reconciled([this, alive = lifetime_.guard(), destination, timeout, done = std::move(done),
                     events = std::move(events)]() mutable {
        if (!*alive) return;
        connect_attempt(destination, timeout, false, std::move(done), std::move(events));
    });
}

void SlmProxyDriver::connect_attempt(TcpEndpoint destination, std::chrono::milliseconds timeout, bool retried,
                                     std::function<void(int, ConnectionId)> done, TcpConnectionEvents events) {
    const auto url = at_quoted(AtStringKind::host, destination.host);  // checked in tcp_connect()
    if (!url) {
        slot_busy_ = false;
        done(EINVAL, 0);
        return;
    }
    std::string line = "AT#XTCPCLI=" + std::string(destination.ipv6 ? "2" : "1") + "," + *url + "," +
                       std::to_string(destination.port);
    // Checked in tcp_connect(); a TLS handshake is part of the firmware's connect.
    if (destination.tls) line += std::get<std::string>(tls_parameters(*destination.tls, TlsTransport::tcp, channel_.profile()));
    // The firmware's connect blocks for as long as the network takes; allow that plus the UART round trip.
    submit({line, "#XTCPCLI", timeout + 5s}, [this, alive = lifetime_.guard(), destination, timeout, retried,
                                              done = std::move(done), events = std::move(events)](
                                                 at::CommandResponse response) mutable {
        if (!*alive) return;
        std::optional<ProxyStatus> info;
        for (const auto& text : response.info) {
            if (auto parsed = parse_tcpcli(text)) info = parsed;
        }
        if (response.ok() && info && info->word == "connected") {
            connection_ = Connection{next_id_++, std::move(events), false, false};
            SLMD_INFO("slm: connected to {}:{} (handle {})", destination.host, destination.port, info->value);
            done(0, connection_->id);
            return;
        }
        if (response.error) {
            // Reset or lost link: the slot is gone with the modem. A timeout leaves the firmware busy: free it.
            if (response.error == at::ChannelError::timeout) {
                release_slot_then([done = std::move(done)] { done(ETIMEDOUT, 0); });
            } else {
                free_slot();
                done(ENETDOWN, 0);
            }
            return;
        }
        if (info && info->word == "not connected") {
            const int error = linux_errno_from_connect_failure(info->value, !is_numeric_address(destination.host));
            free_slot();
            SLMD_INFO("slm: connect to {}:{} failed: {}", destination.host, destination.port, std::strerror(error));
            done(error, 0);
            return;
        }
        // Plain ERROR: the proxy is still held (e.g. by an slmd that died). Free it once and try again.
        if (!retried) {
            SLMD_WARN("slm: TCP proxy busy; closing the stale connection and retrying");
            submit(command::tcp_client_close(),
                   [this, alive = lifetime_.guard(), destination, timeout, done = std::move(done),
                    events = std::move(events)](at::CommandResponse) mutable {
                       if (!*alive) return;
                       connect_attempt(destination, timeout, true, std::move(done), std::move(events));
                   });
            return;
        }
        free_slot();
        done(EBUSY, 0);
    });
}

// Uplink -------------------------------------------------------------------------------------------------------

void SlmProxyDriver::tcp_send(ConnectionId id, std::string bytes, std::function<void(int)> done) {
    if (!alive_connection(id) || connection_->closing) {
        done(ENOTCONN);
        return;
    }
    tail_timer_.cancel();
    idle_timer_.cancel();
    sends_.push_back({std::move(bytes), std::move(done)});
    pump();
}

void SlmProxyDriver::pump() {
    if (pumping_) return;
    if (sends_.empty()) {
        after_uplink_idle();
        return;
    }
    pumping_ = true;
    auto plan = plan_uplink(held_tail_ + sends_.front().bytes, channel_.profile().max_send_string);
    held_tail_ = plan.held_tail;
    auto pieces = std::make_shared<std::deque<UplinkPiece>>(plan.pieces.begin(), plan.pieces.end());
    run_pieces(pieces, [this, alive = lifetime_.guard()](int error) {
        if (!*alive) return;
        pumping_ = false;
        if (sends_.empty()) return;  // the connection went away meanwhile
        auto job = std::move(sends_.front());
        sends_.pop_front();
        stats_.bytes_up += job.bytes.size();
        job.done(error);
        if (error) return;
        pump();
    });
}

void SlmProxyDriver::run_pieces(std::shared_ptr<std::deque<UplinkPiece>> pieces, std::function<void(int)> finished) {
    if (pieces->empty()) {
        // Report the chunk taken only once the serial line has room: that is the back-pressure to the app.
        when_drained([finished = std::move(finished)] { finished(0); });
        return;
    }
    auto piece = std::move(pieces->front());
    pieces->pop_front();
    auto next = [this, alive = lifetime_.guard(), pieces, finished](int error) mutable {
        if (!*alive) return;
        if (error) {
            finished(error);
            return;
        }
        run_pieces(pieces, std::move(finished));
    };
    const bool short_and_quotable = piece.bytes.size() <= options_.quoted_send_limit &&
                                    at_string_allowed(AtStringKind::tcp_send, piece.bytes);
    if (piece.kind == UplinkPiece::Kind::quoted ||
        (gate_.in_command_mode() && short_and_quotable)) {
        send_quoted(std::move(piece.bytes), std::move(next));
    } else {
        send_in_data_mode(std::move(piece.bytes), std::move(next));
    }
}

void SlmProxyDriver::send_quoted(std::string bytes, std::function<void(int)> finished) {
    ++stats_.quoted_sends;
    const auto expected = bytes.size();
    const auto quoted = at_quoted(AtStringKind::tcp_send, bytes);
    if (!quoted) {  // the plan quotes only '+' runs and the caller checked everything else
        finished(EINVAL);
        return;
    }
    submit(command::tcp_send_string(*quoted),
           [finished = std::move(finished), expected](at::CommandResponse response) {
               if (!response.ok()) {
                   finished(response.error == at::ChannelError::timeout ? ETIMEDOUT : ECONNRESET);
                   return;
               }
               (void)expected;
               finished(0);
           });
}

void SlmProxyDriver::send_in_data_mode(std::string bytes, std::function<void(int)> finished) {
    if (gate_.writable()) {
        auto error = channel_.write_data(bytes);
        finished(error ? ECONNRESET : 0);
        return;
    }
    const ConnectionId id = connection_ ? connection_->id : 0;
    gate_.with_command_mode([this, alive = lifetime_.guard(), id, bytes = std::move(bytes), finished = std::move(finished)]() mutable {
        if (!*alive) return;
        // The connection can be gone by the time the link is back in command mode (the session that just ended
        // reported its loss). Entering data mode for it would carry its bytes nowhere (v2.9 enters data mode
        // even unconnected) and hold the link there, with the commands queued behind the entry stuck.
        if (!alive_connection(id)) {
            finished(ECONNRESET);
            return;
        }
        // In data mode the firmware writes every proxy's downlink raw, without saying whose: with the UDP proxy
        // closed for the session, raw bytes can only be TCP's (the attribution rule, slm_udp_proxy.cpp).
        suspend_udp_then([] {});
        ++stats_.data_mode_entries;
        channel_.enter_data_mode(command::tcp_send_data_mode(),
                                 [this, alive, id, bytes = std::move(bytes),
                                  finished = std::move(finished)](at::CommandResponse response) mutable {
                                     if (!*alive) return;
                                     if (!response.ok()) {
                                         finished(ECONNRESET);
                                         return;
                                     }
                                     gate_.begin_session({DataModeGate::Owner::tcp, id});
                                     if (!alive_connection(id)) {
                                         // Lost while the entry was in flight: leave at once, write nothing.
                                         finished(ECONNRESET);
                                         gate_.with_command_mode([] {});
                                         return;
                                     }
                                     auto error = channel_.write_data(bytes);
                                     finished(error ? ECONNRESET : 0);
                                 });
    });
}

void SlmProxyDriver::when_drained(std::function<void()> then) {
    if (hooks_.link_backlog() <= options_.link_backlog_limit) {
        then();
        return;
    }
    drain_waiters_.push_back(std::move(then));
}

void SlmProxyDriver::when_written(std::function<void()> then) {
    if (!hooks_.link_written || hooks_.link_backlog() == 0) {
        then();
        return;
    }
    written_waiters_.push_back({hooks_.link_written() + hooks_.link_backlog(), std::move(then)});
}

void SlmProxyDriver::on_link_drained() {
    while (!written_waiters_.empty() && hooks_.link_written() >= written_waiters_.front().target) {
        auto then = std::move(written_waiters_.front().then);
        written_waiters_.pop_front();
        then();
    }
    if (drain_waiters_.empty() || hooks_.link_backlog() > options_.link_backlog_limit) return;
    auto waiters = std::move(drain_waiters_);
    drain_waiters_.clear();
    for (auto& waiter : waiters) waiter();
}

void SlmProxyDriver::after_uplink_idle() {
    if (!held_tail_.empty()) {
        tail_timer_.expires_after(options_.tail_flush_delay);
        tail_timer_.async_wait([this, alive = lifetime_.guard()](boost::system::error_code error) {
            if (!*alive || error || held_tail_.empty() || pumping_ || !sends_.empty()) return;
            auto tail = std::exchange(held_tail_, {});
            pumping_ = true;
            send_quoted(std::move(tail), [this, alive](int) {
                if (!*alive) return;
                pumping_ = false;
                pump();
            });
        });
        return;
    }
    if (connection_ && connection_->closing) {
        finish_close();
        return;
    }
    if (channel_.mode() == at::LinkMode::data) {
        idle_timer_.expires_after(options_.data_mode_idle_exit);
        idle_timer_.async_wait([this, alive = lifetime_.guard()](boost::system::error_code error) {
            if (!*alive || error || pumping_ || !sends_.empty()) return;
            gate_.leave_data_mode();
        });
    }
}

void SlmProxyDriver::free_slot() {
    if (!slot_busy_) return;
    slot_busy_ = false;
    if (!capacity_listener_) return;
    asio::post(executor_, [this, alive = lifetime_.guard()] {
        if (*alive && !slot_busy_ && capacity_listener_) capacity_listener_();
    });
}

// Close --------------------------------------------------------------------------------------------------------

void SlmProxyDriver::tcp_close(ConnectionId id) {
    if (!alive_connection(id) || connection_->closing) return;
    connection_->closing = true;
    if (!pumping_ && sends_.empty() && held_tail_.empty()) finish_close();
    // Otherwise pump() reaches after_uplink_idle() once the uplink is flushed, and closes then.
}

void SlmProxyDriver::finish_close() {
    if (!connection_) return;
    if (connection_->server_peer) {
        hang_up_peer();
        return;
    }
    const auto id = connection_->id;
    submit(command::tcp_client_close(), [this, alive = lifetime_.guard(), id](at::CommandResponse) {
        if (!*alive || !alive_connection(id)) return;
        auto events = std::move(connection_->events);
        connection_.reset();
        free_slot();
        if (events.closed) events.closed(CloseReason::local_close, 0);
    });
}

void SlmProxyDriver::release_slot_then(std::function<void()> then) {
    submit(command::tcp_client_close(), [this, alive = lifetime_.guard(), then = std::move(then)](at::CommandResponse) {
        if (!*alive) return;
        free_slot();
        then();
    });
}

void SlmProxyDriver::connection_lost(CloseReason reason, int error) {
    if (!connection_) return;
    struct {
        TcpConnectionEvents events;
        bool server_peer;
    } lost{std::move(connection_->events), connection_->server_peer};
    connection_.reset();
    held_tail_.clear();
    tail_timer_.cancel();
    idle_timer_.cancel();
    auto sends = std::move(sends_);
    sends_.clear();
    for (auto& job : sends) job.done(ECONNRESET);
    if (lost.server_peer) {
        // A server's peer: the listener keeps the slot and goes on listening.
    } else if (reason == CloseReason::modem_lost) {
        free_slot();
    } else {
        // The firmware may still hold the socket; make sure the proxy is free before the next connect.
        release_slot_then([] {});
    }
    if (lost.events.closed) lost.events.closed(reason, error);
}

// Events from the link -----------------------------------------------------------------------------------------

bool SlmProxyDriver::on_urc(const std::string& text) {
    if (on_tcpsvr_line(text) || on_udp_line(text)) return true;
    auto parsed = parse_tcpcli(text);
    if (!parsed) return false;
    if (parsed->word == "disconnected" && connection_ && !connection_->server_peer) {
        SLMD_INFO("slm: connection closed by the network ({})", parsed->value);
        // v2.5/v2.6 print this inside the data-mode stream and then drop input until our "+++".
        gate_.leave_data_mode();
        connection_lost(CloseReason::peer_closed, linux_errno_from_firmware(parsed->value));
    }
    return true;
}

void SlmProxyDriver::on_proxy_data(at::ProxyData&& data) {
    if (data.proxy == at::Proxy::udp) {
        std::optional<UdpPeer> peer;
        // Only a v2.8+ server's header names the sender; a client's always says "::",0 (or a stale server peer).
        if (udp_ && udp_->role == UdpRole::server && data.peer_address && data.peer_port &&
            channel_.profile().udp_data_header == at::UdpDataHeader::size_addr_port) {
            peer = UdpPeer{*data.peer_address, *data.peer_port};
        }
        udp_deliver(data.bytes, peer);
        return;
    }
    stats_.bytes_down += data.bytes.size();
    if (!connection_ && listener_ && listener_->started && !listener_->stopping) {
        // A server peer's first bytes can overtake its "connected": that URC shares its prefix with the
        // #XTCPSVR read and test forms, and one arriving while such a command runs is handed back only with the
        // command's answer (route_stray_lines). Keep the bytes for the peer about to be announced.
        if (early_peer_data_.size() + data.bytes.size() <= max_early_peer_data) {
            early_peer_data_ += data.bytes;
        } else {
            SLMD_WARN("slm: {} bytes for a TCP server peer not yet announced dropped", data.bytes.size());
        }
        return;
    }
    if (connection_ && connection_->events.data) connection_->events.data(data.bytes);
}

void SlmProxyDriver::on_payload_lost(const at::PayloadLost& lost) {
    if (lost.proxy == at::Proxy::udp) {
        ++stats_.udp_datagrams_lost;
        return;  // a datagram: lost like any other on the way; the proxy goes on
    }
    ++stats_.tcp_payloads_lost;
    if (!connection_) return;
    SLMD_WARN("slm: {} of {} bytes of a TCP payload arrived; resetting the connection (its stream has a gap)",
              lost.received, lost.expected);
    if (connection_->server_peer) {
        // The listener stays; only this peer goes. Its flow hears of it now, the hang-up follows.
        auto events = std::move(connection_->events);
        connection_->events = {};
        hang_up_peer();
        if (events.closed) events.closed(CloseReason::data_lost, ECONNRESET);
        return;
    }
    connection_lost(CloseReason::data_lost, ECONNRESET);  // and closes it on the modem (AT#XTCPCLI=0)
}

void SlmProxyDriver::on_raw_data(std::string_view bytes) {
    // Raw bytes carry no header: they belong to whoever owns this data-mode session. A UDP send's session is
    // a single datagram long, so what arrives meanwhile is an early reply, kept whole until the session ends.
    // In a generic socket's session (or one whose owner is unknown) they are a proxy's: the TCP connection's
    // while there is one (the UDP proxy is suspended around a socket's session), else the UDP proxy's.
    auto owner = gate_.session().owner;
    if (owner == DataModeGate::Owner::none || owner == DataModeGate::Owner::socket)
        owner = connection_ ? DataModeGate::Owner::tcp : DataModeGate::Owner::udp;
    if (owner == DataModeGate::Owner::udp) {
        udp_early_echo_.append(bytes);
        return;
    }
    stats_.bytes_down += bytes.size();
    if (connection_ && connection_->events.data) connection_->events.data(bytes);
}

void SlmProxyDriver::tcp_session_broke(const DataModeGate::Session& session, int status) {
    if (session.owner != DataModeGate::Owner::tcp || !connection_ || connection_->id != session.connection) return;
    SLMD_INFO("slm: data mode ended with {}; connection closed", status);
    connection_lost(CloseReason::peer_closed, linux_errno_from_firmware(status));
}

void SlmProxyDriver::on_data_mode_exited(int status) {
    gate_.note_exit_status(status);
    const auto session = gate_.end_session();
    if (!udp_early_echo_.empty()) {
        auto datagram = std::exchange(udp_early_echo_, {});
        udp_deliver(datagram, std::nullopt);
    }
    if (session.owner == DataModeGate::Owner::udp) {
        // -139 (EOVERFLOW): the datagram did not fit; the proxy itself is fine. Anything else: the proxy broke.
        if (status != 0 && status != -139 && udp_) {
            SLMD_INFO("slm: data mode ended with {}; UDP proxy closed", status);
            udp_lost(CloseReason::peer_closed, linux_errno_from_firmware(status));
        }
        return;
    }
    // A non-zero status means the proxy broke while the link was in data mode (peer gone, send failure) — the
    // connection of that session. A server's next peer can connect before our "+++" (v2.5+ null mode) and
    // must not inherit its predecessor's loss.
    if (status != 0) tcp_session_broke(session, status);
    data_mode_ended();
}

void SlmProxyDriver::on_modem_lost() {
    tail_timer_.cancel();
    idle_timer_.cancel();
    gate_.reset();
    pumping_ = false;
    auto waiters = std::move(drain_waiters_);
    drain_waiters_.clear();
    written_waiters_.clear();  // those bytes never reached the modem: no latency sample
    udp_early_echo_.clear();
    hangup_urcs_expected_ = 0;
    hangup_in_flight_ = false;
    connection_lost(CloseReason::modem_lost, ECONNRESET);
    if (listener_) listener_ended(ECONNRESET);
    if (udp_) udp_lost(CloseReason::modem_lost, ECONNRESET);
    free_slot();
    // Opens deferred behind a reconciliation that will never finish: they find their object gone and stop.
    reconciling_ = false;
    auto steps = std::exchange(after_reconcile_, {});
    for (auto& step : steps) step();
}

// DNS ----------------------------------------------------------------------------------------------------------

void SlmProxyDriver::resolve(const std::string& name, int family,
                             std::function<void(int, std::vector<std::string>)> done) {
    if (!serving()) {
        done(EAI_AGAIN, {});
        return;
    }
    resolve_name(gate_, channel_.profile(), name, family, std::move(done));
}

}  // namespace slmd::modem
