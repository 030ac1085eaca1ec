// Owns: the SLM UDP proxy (#XUDPCLI or #XUDPSVR, one at a time, a slot of its own beside the TCP proxy):
// opening and closing it, sending exactly one datagram per udp_send(), delivering #XUDPDATA, the
// asynchronous "disconnected"/"stopped" lines, and the raw-downlink attribution rule.
//
// The attribution rule. In data mode the firmware writes whatever any proxy receives to the UART raw, with no
// header (reference §3, "In data mode"), so raw bytes can be attributed only while exactly one proxy can
// receive:
//  (a) a TCP data-mode session while the UDP proxy is open first closes the UDP proxy (=0), and reopens it to
//      the same destination or port when the session ends (suspend_udp_then / resume_udp). Datagrams sent
//      meanwhile wait; datagrams arriving meanwhile are lost (the socket is closed), and a reopened server has
//      forgotten the peer it would reply to. Counted as udp_suspensions. A client's owner may move it to a
//      generic socket instead (set_udp_suspended_listener, keep_udp_suspended): then it is not reopened.
//  (b) a datagram that needs data mode while a TCP connection or server peer is open fails with EBUSY
//      (udp_refused_tcp_busy) and data mode is never entered for it.
// Raw bytes during a UDP send's own session are that datagram's reply arriving early: one datagram.
//
// A firmware risk the host cannot prevent (v2.3+): the TCP and UDP receive threads share one buffer,
// slm_data_buf, without a lock (reference §3, "code risk"), so a TCP segment and a datagram arriving at the
// same moment can corrupt each other's payload even in command mode with headers. The framer still counts the
// header's n bytes; the corruption is invisible to slmd.
#include <cerrno>
#include <cstring>

#include "modem/at_string.hpp"
#include "modem/firmware_errno.hpp"
#include "modem/answer_parsers.hpp"
#include "modem/slm_commands.hpp"
#include "modem/tls_command.hpp"
#include "modem/slm_proxy_driver.hpp"
#include "sys/log.hpp"

namespace slmd::modem {

using namespace std::chrono_literals;

namespace {

bool is_name(const std::string& host) {
    return host.find_first_not_of("0123456789.:abcdefABCDEF") != std::string::npos ||
           (host.find('.') == std::string::npos && host.find(':') == std::string::npos);
}

int status_errno(int firmware_value) { return firmware_value == 0 ? 0 : linux_errno_from_firmware(firmware_value); }

// Whether a datagram can go as AT#XUDPSEND="…" (at_string.hpp: line breaks can, which matters from v2.5, where
// data mode cannot carry a "+++" at all).
bool quotable_datagram(std::string_view bytes) { return at_string_allowed(AtStringKind::udp_send, bytes); }

}  // namespace

std::size_t SlmProxyDriver::udp_available() const { return udp_ ? 0 : 1; }

std::size_t SlmProxyDriver::udp_max_send() const {
    const auto& profile = channel_.profile();
    // Data mode carries one datagram per flush of its buffer; without it only the quoted string is left.
    return profile.udp_send_data_mode ? profile.data_mode_buffer : profile.max_send_string;
}

std::size_t SlmProxyDriver::udp_max_receive() const { return channel_.profile().udp_receive_buffer; }

std::string SlmProxyDriver::udp_prefix() const {
    return udp_ && udp_->role == UdpRole::server ? "#XUDPSVR" : "#XUDPCLI";
}

std::optional<std::string> SlmProxyDriver::udp_open_line() const {
    const auto& d = udp_->destination;
    const std::string op = d.ipv6 ? "2" : "1";
    if (udp_->role == UdpRole::server) {
        std::string line = "AT#XUDPSVR=" + op + "," + std::to_string(d.port);
        // Checked in udp_serve(): a configured DTLS server on native-TLS firmware.
        if (const auto dtls = dtls_servers_.find(d.port); dtls != dtls_servers_.end())
            line += "," + std::to_string(dtls->second);
        return line;
    }
    const auto host = at_quoted(AtStringKind::host, d.host);
    if (!host) return std::nullopt;
    std::string line = "AT#XUDPCLI=" + op + "," + *host + "," + std::to_string(d.port);
    if (d.tls) {
        // The DTLS handshake is part of the firmware's open.
        const auto tail = tls_parameters(*d.tls, TlsTransport::udp, channel_.profile());
        if (!std::holds_alternative<std::string>(tail)) return std::nullopt;
        line += std::get<std::string>(tail);
    }
    return line;
}

// Open / close ------------------------------------------------------------------------------------------------

void SlmProxyDriver::udp_connect(const TcpEndpoint& destination, UdpEvents events,
                                 std::function<void(int, ConnectionId)> done) {
    if (!serving()) return done(ENETDOWN, 0);
    if (udp_) return done(EBUSY, 0);
    if (!at_string_allowed(AtStringKind::host, destination.host)) {
        SLMD_NOTICE("slm: refused a UDP socket to a host name the modem cannot be given: \"{}\"",
                    destination.host);
        return done(EINVAL, 0);
    }
    if (destination.tls) {
        const auto tail = tls_parameters(*destination.tls, TlsTransport::udp, channel_.profile());
        if (const int* error = std::get_if<int>(&tail)) return done(*error, 0);
    }
    udp_ = UdpProxy{next_id_++, UdpRole::client, destination, std::move(events), UdpState::open, false, {}, {}};
    udp_open(std::move(done));
}

void SlmProxyDriver::udp_serve(std::uint16_t port, bool ipv6, UdpEvents events,
                               std::function<void(int, ConnectionId)> done) {
    if (!serving()) return done(ENETDOWN, 0);
    if (udp_) return done(EBUSY, 0);
    if (const auto dtls = dtls_servers_.find(port); dtls != dtls_servers_.end() &&
                                                    (!native_tls_ || !channel_.profile().udp_server_takes_sec_tag)) {
        SLMD_WARN("slm: port {} is a DTLS server (sec_tag {}), which needs SLM v2.8+ built with native TLS "
                  "(native-tls = yes): not started",
                  port, dtls->second);
        return done(EOPNOTSUPP, 0);
    }
    udp_ = UdpProxy{next_id_++, UdpRole::server, TcpEndpoint{{}, port, ipv6, std::nullopt}, std::move(events), UdpState::open,
                    false, {}, {}};
    udp_open(std::move(done));
}

void SlmProxyDriver::udp_open(std::function<void(int, ConnectionId)> done) {
    auto line = udp_open_line();
    if (!line) {
        // The checks in udp_connect()/udp_serve() make this unreachable; never send a command built from a
        // value the firmware cannot carry.
        udp_.reset();
        return done(EINVAL, 0);
    }
    udp_->open_line = std::move(*line);
    udp_->open_done = std::move(done);
    const auto id = udp_->id;
    when_reconciled([this, alive = lifetime_.guard(), id] {
        if (!*alive || !udp_ || udp_->id != id) return;  // udp_lost() already answered the caller
        const auto prefix = udp_prefix();
        // A client's open may resolve a name: allow for DNS.
        submit({udp_->open_line, prefix, 35s}, [this, alive, id, prefix](at::CommandResponse response) {
            if (!*alive || !udp_ || udp_->id != id || !udp_->open_done) return;
            std::optional<ProxyStatus> status;
            for (const auto& text : response.info) {
                if (auto parsed = parse_proxy_status(text, prefix); parsed && !status) {
                    status = parsed;
                } else {
                    on_urc(text);
                }
            }
            auto done = std::exchange(udp_->open_done, {});
            if (response.ok() && status && (status->word == "connected" || status->word == "started")) {
                SLMD_INFO("slm: UDP {} open (handle {})", udp_->role == UdpRole::server ? "server" : "client",
                          status->value);
                done(0, id);
                udp_pump();
                return;
            }
            int error = EBUSY;  // plain ERROR: the proxy is in use
            if (response.error == at::ChannelError::timeout) {
                error = ETIMEDOUT;
            } else if (response.error) {
                error = ENETDOWN;
            } else if (status) {
                error = udp_->role == UdpRole::client
                            ? linux_errno_from_connect_failure(status->value, is_name(udp_->destination.host))
                            : linux_errno_from_firmware(status->value);
            } else if (udp_->role == UdpRole::server && !channel_.profile().udp_server_failure_typo) {
                error = EADDRNOTAVAIL;  // up to v2.7 a failed server start prints no reason at all
            }
            SLMD_INFO("slm: UDP open failed: {}", std::strerror(error));
            auto sends = std::exchange(udp_sends_, {});
            udp_.reset();
            for (auto& job : sends) job.done(ENOTCONN);
            done(error, 0);
        });
    });
}

void SlmProxyDriver::udp_close(ConnectionId id) {
    if (!udp_ || udp_->id != id || udp_->state == UdpState::closing) return;
    udp_->state = UdpState::closing;
    auto sends = std::exchange(udp_sends_, {});
    for (auto& job : sends) job.done(ENOTCONN);
    // Sent even when suspended (the proxy is then already closed and "=0" is harmless), so that `closed`
    // always follows asynchronously and after anything queued before.
    submit({udp_prefix().insert(0, "AT") + "=0", udp_prefix(), 15s},
           [this, alive = lifetime_.guard(), id](at::CommandResponse) {
               if (!*alive || !udp_ || udp_->id != id) return;
               auto events = std::move(udp_->events);
               udp_.reset();
               if (events.closed) events.closed(CloseReason::local_close, 0);
           });
}

void SlmProxyDriver::udp_lost(CloseReason reason, int error) {
    if (!udp_) return;
    auto proxy = std::move(*udp_);
    udp_.reset();
    auto sends = std::exchange(udp_sends_, {});
    for (auto& job : sends) job.done(ECONNRESET);
    if (proxy.open_done) {
        proxy.open_done(reason == CloseReason::modem_lost ? ENETDOWN : error, 0);
        return;
    }
    if (proxy.state == UdpState::closing) {
        if (proxy.events.closed) proxy.events.closed(CloseReason::local_close, 0);
        return;
    }
    if (proxy.events.closed) proxy.events.closed(reason, error);
}

// The attribution rule, part (a) ----------------------------------------------------------------------------------

void SlmProxyDriver::suspend_udp_then(Step then) {
    if (udp_ && udp_->state == UdpState::open) {
        udp_->state = UdpState::suspended;
        udp_->heard_from_peer = false;  // a reopened server has no peer to reply to
        ++stats_.udp_suspensions;
        SLMD_DEBUG("slm: UDP proxy suspended for a TCP data-mode session");
        if (udp_->role == UdpRole::client && udp_suspended_listener_) udp_suspended_listener_(udp_->id);
        const auto prefix = udp_prefix();
        submit({prefix.substr(0).insert(0, "AT") + "=0", prefix, 15s},
               [this, alive = lifetime_.guard(), prefix](at::CommandResponse response) {
                   if (!*alive) return;
                   for (const auto& text : response.info) {
                       auto status = parse_proxy_status(text, prefix);
                       if (!status || (status->word != "disconnected" && status->word != "stopped")) on_urc(text);
                   }
               });
    }
    then();
}

void SlmProxyDriver::data_mode_ended() { resume_udp(); }

void SlmProxyDriver::keep_udp_suspended(ConnectionId id, bool keep) {
    if (!udp_ || udp_->id != id) return;
    udp_->kept_suspended = keep;
    if (!keep && std::exchange(udp_->resume_due, false)) resume_udp();
}

void SlmProxyDriver::resume_udp() {
    if (!udp_ || udp_->state != UdpState::suspended) return;
    if (udp_->kept_suspended) {
        udp_->resume_due = true;  // its owner is moving it; keep_udp_suspended(false) reopens it after all
        return;
    }
    udp_->state = UdpState::open;
    const auto id = udp_->id;
    const auto prefix = udp_prefix();
    channel_.submit({udp_->open_line, prefix, 35s}, [this, alive = lifetime_.guard(), id, prefix](at::CommandResponse response) {
        if (!*alive || !udp_ || udp_->id != id) return;
        std::optional<ProxyStatus> status;
        for (const auto& text : response.info) {
            if (auto parsed = parse_proxy_status(text, prefix); parsed && !status) {
                status = parsed;
            } else {
                on_urc(text);
            }
        }
        if (response.ok() && status && (status->word == "connected" || status->word == "started")) {
            udp_pump();
            return;
        }
        const int error = response.error ? ENETDOWN
                          : status       ? linux_errno_from_firmware(status->value)
                                         : EADDRINUSE;
        SLMD_WARN("slm: UDP proxy could not be reopened after TCP data mode: {}", std::strerror(error));
        if (udp_->state != UdpState::closing) udp_lost(CloseReason::peer_closed, error);
    });
}

// Sending ---------------------------------------------------------------------------------------------------------

bool SlmProxyDriver::udp_data_mode_would_cut(std::string_view datagram) const {
    switch (channel_.profile().data_mode_exit) {
        case at::DataModeExitRule::anywhere:
            // "+++" anywhere ends data mode. (A trailing '+' is fine: the exit waits for the inactivity flush.)
            return datagram.find("+++") != std::string_view::npos;
        case at::DataModeExitRule::trailing_silence:
            return datagram.ends_with("+++");
        case at::DataModeExitRule::silence_both_sides:
            return datagram == "+++";
    }
    return true;
}

void SlmProxyDriver::udp_send(ConnectionId id, std::string datagram, std::function<void(int)> done) {
    if (!udp_ || udp_->id != id || udp_->state == UdpState::closing) return done(ENOTCONN);
    if (datagram.size() > udp_max_send()) return done(EMSGSIZE);
    const auto& profile = channel_.profile();
    const bool quoted = quotable_datagram(datagram) && datagram.size() <= profile.max_send_string;
    if (!quoted && (!profile.udp_send_data_mode || udp_data_mode_would_cut(datagram))) return done(EINVAL);
    udp_sends_.push_back({std::move(datagram), std::move(done)});
    udp_pump();
}

bool SlmProxyDriver::udp_send_blocked_by_tcp(std::string_view datagram) const {
    const auto& profile = channel_.profile();
    const bool quoted = quotable_datagram(datagram) && datagram.size() <= profile.max_send_string;
    return connection_.has_value() && !quoted && profile.udp_send_data_mode && datagram.size() <= udp_max_send() &&
           !udp_data_mode_would_cut(datagram);
}

void SlmProxyDriver::udp_pump() {
    while (!udp_sending_ && udp_ && udp_->state == UdpState::open && !udp_->open_done && !udp_sends_.empty()) {
        auto job = std::move(udp_sends_.front());
        udp_sends_.pop_front();
        const auto& profile = channel_.profile();
        if (quotable_datagram(job.datagram) && job.datagram.size() <= profile.max_send_string) {
            udp_send_quoted(std::move(job));
            return;
        }
        if (connection_) {
            // Part (b) of the attribution rule: TCP could receive during this session and its bytes would be
            // taken for the datagram's reply.
            ++stats_.udp_refused_tcp_busy;
            job.done(EBUSY);
            continue;
        }
        if (udp_->role == UdpRole::server && !udp_->heard_from_peer) {
            job.done(EDESTADDRREQ);  // data mode would take it and the firmware's sendto() would drop it
            continue;
        }
        udp_send_in_data_mode(std::move(job));
        return;
    }
}

void SlmProxyDriver::udp_send_quoted(UdpSendJob job) {
    udp_sending_ = true;
    const auto id = udp_->id;
    const auto size = job.datagram.size();
    // Only quotable datagrams come here (udp_send_next()); checked again rather than trusted.
    const auto quoted = at_quoted(AtStringKind::udp_send, job.datagram);
    if (!quoted) {
        udp_sending_ = false;
        job.done(EINVAL);
        return udp_pump();
    }
    submit(command::udp_send_string(*quoted),
           [this, alive = lifetime_.guard(), id, size, done = std::move(job.done)](at::CommandResponse response) {
               if (!*alive) return;
               udp_sending_ = false;
               int error = 0;
               if (response.error) {
                   error = response.error == at::ChannelError::timeout ? ETIMEDOUT : ECONNRESET;
               } else if (!response.ok()) {
                   // The server role replies to the last sender; before anyone sent, sendto() fails.
                   const bool no_peer = udp_ && udp_->id == id && udp_->role == UdpRole::server &&
                                        !udp_->heard_from_peer;
                   error = no_peer ? EDESTADDRREQ : ENOTCONN;
               } else {
                   ++stats_.udp_datagrams_up;
                   stats_.udp_bytes_up += size;
               }
               done(error);
               udp_pump();
           });
}

void SlmProxyDriver::udp_send_in_data_mode(UdpSendJob job) {
    udp_sending_ = true;
    ++stats_.udp_data_mode_sends;
    auto shared = std::make_shared<UdpSendJob>(std::move(job));
    auto finish = [this, shared](int error) {
        udp_sending_ = false;
        if (error == 0) {
            ++stats_.udp_datagrams_up;
            stats_.udp_bytes_up += shared->datagram.size();
        }
        auto done = std::move(shared->done);
        done(error);
        udp_pump();
    };
    gate_.with_command_mode([this, alive = lifetime_.guard(), shared, finish] {
        if (!*alive) return;
        channel_.enter_data_mode(command::udp_send_data_mode(), [this, alive, shared, finish](at::CommandResponse response) {
            if (!*alive) return;
            if (!response.ok()) {
                finish(response.error ? ECONNRESET : ENOTCONN);
                return;
            }
            gate_.begin_session({DataModeGate::Owner::udp, 0});
            udp_early_echo_.clear();
            gate_.clear_last_exit();
            if (channel_.write_data(shared->datagram)) {
                finish(ECONNRESET);
                return;
            }
            // One datagram per flush: leave at once, so the terminator's flush sends exactly this datagram —
            // unless it ends in '+' where "+++" is found anywhere: then let the inactivity timer send it first.
            const bool trailing_plus = shared->datagram.ends_with('+') &&
                                       channel_.profile().data_mode_exit == at::DataModeExitRule::anywhere;
            gate_.with_command_mode(
                [this, alive, finish] {
                    if (!*alive) return;
                    if (gate_.last_exit_error()) return finish(ETIMEDOUT);
                    // -139: the datagram did not fit the firmware's buffer in one piece.
                    if (gate_.last_exit_status() == -139) return finish(EMSGSIZE);
                    finish(gate_.last_exit_status() == 0 ? 0 : ECONNRESET);
                },
                trailing_plus ? at::Channel::ExitTiming::after_inactivity_flush : at::Channel::ExitTiming::immediate);
        });
    });
}

// Receiving and URCs ----------------------------------------------------------------------------------------------

void SlmProxyDriver::udp_deliver(std::string_view datagram, const std::optional<UdpPeer>& peer) {
    if (!udp_ || udp_->state == UdpState::closing) return;
    ++stats_.udp_datagrams_down;
    stats_.udp_bytes_down += datagram.size();
    if (udp_->role == UdpRole::server) udp_->heard_from_peer = true;
    if (udp_->events.datagram) udp_->events.datagram(datagram, peer);
}

bool SlmProxyDriver::on_udp_line(const std::string& text) {
    for (const auto* prefix : {"#XUDPCLI", "#XUDPSVR"}) {
        auto status = parse_proxy_status(text, prefix);
        if (!status) continue;
        const auto role = std::string_view(prefix) == "#XUDPSVR" ? UdpRole::server : UdpRole::client;
        const bool lost = status->word == (role == UdpRole::server ? "stopped" : "disconnected");
        if (lost && udp_ && udp_->role == role && udp_->state == UdpState::open && !udp_->open_done) {
            SLMD_INFO("slm: UDP proxy closed by the firmware ({})", status->value);
            // v2.5/v2.6 print this inside the data-mode stream and then drop input until our "+++".
            gate_.leave_data_mode();
            udp_lost(CloseReason::peer_closed, status_errno(status->value));
        }
        return true;
    }
    return false;
}

}  // namespace slmd::modem
