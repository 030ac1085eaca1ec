// Owns: the SLM TCP server (#XTCPSVR) as seen through ModemDriver: starting and stopping the listener, its
// one peer (a Connection with server_peer set, so tcp_send() uses the client's #XTCPSEND/data-mode path),
// hanging that peer up (#XTCPHANGUP) in either firmware ordering, and every "#XTCPSVR:" line.
//
// Firmware facts this file relies on (reference §2.1, §2.3):
// * The TCP proxy is one struct: a client or a server, never both, so the listener holds the driver's one TCP
//   slot for its whole life, peer or not.
// * The server accepts one peer. A second one is accepted and closed at once ("Full. Close connection.") with
//   no URC, so there is nothing to see here; the host app behind the second peer just gets EOF/RST.
// * "connected" names the peer's address but not its handle. AT#XTCPHANGUP needs the handle, so it is read
//   from AT#XTCPSVR? ("<listen>,<peer>,<family>") at hang-up time instead of guessed.
// * Hang-up ordering: up to v2.6 "#XTCPSVR: 0,\"disconnected\"" comes before OK (an info line of the
//   command); from v2.7 the hang-up is asynchronous and the line follows the OK as a URC. Either way the
//   line is the hang-up's own and must not be reported as the peer leaving.
#include <cerrno>
#include <cstring>

#include "modem/firmware_errno.hpp"
#include "modem/answer_parsers.hpp"
#include "modem/slm_commands.hpp"
#include "modem/slm_proxy_driver.hpp"
#include "sys/log.hpp"

namespace slmd::modem {

using namespace std::chrono_literals;

namespace {
// The firmware prints 0 for an orderly end (POLLHUP, hang-up): that is no error at all.
int server_errno(int firmware_value) { return firmware_value == 0 ? 0 : linux_errno_from_firmware(firmware_value); }
}  // namespace

void SlmProxyDriver::tcp_listen(std::uint16_t port, bool ipv6, TcpListenerEvents events,
                                std::function<void(int, ListenerId)> done) {
    if (!serving()) {
        done(ENETDOWN, 0);
        return;
    }
    if (slot_busy_) {
        done(EBUSY, 0);
        return;
    }
    const auto tls = tls_servers_.find(port);
    if (tls != tls_servers_.end() && !native_tls_) {
        SLMD_WARN("slm: port {} is a TLS server (sec_tag {}), which needs firmware built with native TLS "
                  "(native-tls = yes): not started",
                  port, tls->second);
        done(EOPNOTSUPP, 0);
        return;
    }
    slot_busy_ = true;
    const ListenerId id = next_id_++;
    listener_ = Listener{id, std::move(events), port, ipv6, false, false};
    when_reconciled([this, alive = lifetime_.guard(), id, done = std::move(done)]() mutable {
        if (!*alive) return;
        if (!listener_ || listener_->id != id) {  // the modem went away meanwhile
            done(ENETDOWN, 0);
            return;
        }
        std::string line =
            "AT#XTCPSVR=" + std::string(listener_->ipv6 ? "2" : "1") + "," + std::to_string(listener_->port);
        if (const auto tls = tls_servers_.find(listener_->port); tls != tls_servers_.end())
            line += "," + std::to_string(tls->second);
        submit({line, "#XTCPSVR", 15s}, [this, alive, id, done = std::move(done)](at::CommandResponse response) {
            if (!*alive) return;
            if (!listener_ || listener_->id != id) {
                done(response.error ? ENETDOWN : ECONNRESET, 0);
                return;
            }
            std::optional<ProxyStatus> status;
            for (const auto& text : response.info) {
                if (auto parsed = parse_proxy_status(text, "#XTCPSVR"); parsed && !status) {
                    status = parsed;
                } else {
                    on_urc(text);  // a URC that happened to share the prefix
                }
            }
            if (response.ok() && status && status->word == "started") {
                listener_->started = true;
                SLMD_INFO("slm: TCP server listening on port {} (handle {})", listener_->port, status->value);
                done(0, id);
                return;
            }
            int error = EBUSY;  // plain ERROR: the proxy is in use (or wedged by a sec_tag on v2.9)
            if (response.error == at::ChannelError::timeout) {
                error = ETIMEDOUT;
                submit(command::tcp_server_stop(), [](at::CommandResponse) {});
            } else if (response.error) {
                error = ENETDOWN;
            } else if (status && status->word == "not started") {
                error = linux_errno_from_firmware(status->value);
            }
            SLMD_INFO("slm: TCP server on port {} not started: {}", listener_->port, std::strerror(error));
            listener_.reset();
            free_slot();
            done(error, 0);
        });
    });
}

void SlmProxyDriver::tcp_stop_listen(ListenerId id) {
    if (!listener_ || listener_->id != id || listener_->stopping) return;
    listener_->stopping = true;
    if (connection_ && connection_->server_peer) connection_->closing = true;
    submit(command::tcp_server_stop(), [this, alive = lifetime_.guard(), id](at::CommandResponse response) {
        if (!*alive || !listener_ || listener_->id != id) return;
        for (const auto& text : response.info) {
            auto status = parse_proxy_status(text, "#XTCPSVR");
            if (!status || (status->word != "disconnected" && status->word != "stopped")) on_urc(text);
        }
        hangup_urcs_expected_ = 0;
        if (connection_ && connection_->server_peer) connection_lost(CloseReason::local_close, 0);
        listener_.reset();
        SLMD_INFO("slm: TCP server stopped");
        free_slot();
    });
}

void SlmProxyDriver::hang_up_peer() {
    if (!connection_ || !connection_->server_peer || hangup_in_flight_) return;
    hangup_in_flight_ = true;
    const auto id = connection_->id;
    auto finish = [this, id](bool expect_urc) {
        hangup_in_flight_ = false;
        if (expect_urc) ++hangup_urcs_expected_;
        if (alive_connection(id)) connection_lost(CloseReason::local_close, 0);
    };
    submit(command::tcp_server_read(), [this, alive = lifetime_.guard(), finish](at::CommandResponse response) {
        if (!*alive) return;
        std::optional<std::vector<int>> handles;
        for (const auto& text : response.info) {
            if (auto parsed = parse_proxy_read(text, "#XTCPSVR", 3)) {
                handles = parsed;
            } else {
                on_urc(text);
            }
        }
        if (!response.ok() || !handles || (*handles)[1] < 0) {
            finish(false);  // no peer left to hang up: it went on its own (its URC was consumed as ours)
            return;
        }
        ++stats_.hangups;
        submit(command::tcp_hang_up((*handles)[1]),
               [this, alive, finish](at::CommandResponse hangup) {
                   if (!*alive) return;
                   bool line_seen = false;
                   for (const auto& text : hangup.info) {
                       auto status = parse_proxy_status(text, "#XTCPSVR");
                       if (status && status->word == "disconnected") {
                           line_seen = true;  // <=v2.6: the hang-up's line came before its OK
                       } else {
                           on_urc(text);
                       }
                   }
                   // v2.7+: OK first; the hang-up's own "disconnected" is still to come as a URC.
                   finish(hangup.ok() && !line_seen && channel_.profile().hangup_ok_before_urc);
               });
    });
}

void SlmProxyDriver::peer_connected(const std::string& address) {
    if (!listener_ || listener_->stopping) return;
    // Any "disconnected" still owed by a hang-up was printed before this peer was accepted.
    hangup_urcs_expected_ = 0;
    if (connection_) {
        // The firmware holds one peer and closes further ones silently; a "connected" for a second peer means
        // the first one's end went unreported. Treat the old one as gone.
        SLMD_WARN("slm: TCP server reported a new peer while one was open; closing the old one");
        connection_lost(CloseReason::peer_closed, ECONNRESET);
    }
    const ConnectionId id = next_id_++;
    connection_ = Connection{id, {}, false, true};
    ++stats_.server_peers;
    SLMD_INFO("slm: TCP server peer {} connected", address);
    auto events = listener_->events.incoming ? listener_->events.incoming(id, address) : TcpConnectionEvents{};
    if (alive_connection(id)) connection_->events = std::move(events);
    if (const auto early = std::exchange(early_peer_data_, {}); !early.empty() && alive_connection(id) &&
                                                                   connection_->events.data) {
        connection_->events.data(early);
    }
}

void SlmProxyDriver::listener_ended(int error) {
    early_peer_data_.clear();
    if (!listener_) return;
    auto events = std::move(listener_->events);
    const bool stopping = listener_->stopping;
    listener_.reset();
    if (connection_ && connection_->server_peer) {
        connection_lost(error == ECONNRESET ? CloseReason::modem_lost : CloseReason::peer_closed, error);
    }
    free_slot();
    if (!stopping && events.stopped) events.stopped(error);
}

bool SlmProxyDriver::on_tcpsvr_line(const std::string& text) {
    if (auto address = parse_tcpsvr_peer(text)) {
        peer_connected(*address);
        return true;
    }
    auto status = parse_proxy_status(text, "#XTCPSVR");
    if (!status) return false;
    if (status->word == "disconnected") {
        if (hangup_in_flight_) return true;  // our own hang-up (or a peer leaving as we hang it up): one close
        if (hangup_urcs_expected_ > 0) {
            --hangup_urcs_expected_;
            return true;
        }
        if (connection_ && connection_->server_peer) {
            SLMD_INFO("slm: TCP server peer left ({})", status->value);
            // v2.5/v2.6 print this inside the data-mode stream and then drop input until our "+++".
            gate_.leave_data_mode();
            connection_lost(CloseReason::peer_closed, server_errno(status->value));
        }
        return true;
    }
    if (status->word == "stopped" && listener_ && !listener_->stopping) {
        SLMD_WARN("slm: TCP server stopped by the firmware ({})", status->value);
        listener_ended(status->value == 0 ? ENETDOWN : linux_errno_from_firmware(status->value));
    }
    return true;
}

}  // namespace slmd::modem
