// Owns: the ModemDriver for SLM's proxies: the TCP proxy (#XTCPCLI or #XTCPSVR with one peer, #XTCPSEND,
// #XTCPDATA), the UDP proxy (#XUDPCLI or #XUDPSVR, #XUDPSEND, #XUDPDATA) and DNS (#XGETADDRINFO). The
// members are implemented in one file per concern:
//   slm_proxy_driver.cpp   TCP client, the TCP uplink (data mode vs quoted AT#XTCPSEND, uplink_plan.hpp), DNS
//   slm_tcp_server.cpp     #XTCPSVR listener, its peer, #XTCPHANGUP
//   slm_udp_proxy.cpp      UDP client/server, one-datagram sends, the raw-downlink attribution rule
//   slm_proxy_reconcile.cpp read/test forms: describe_proxies, orphans after bring-up, capabilities
//   slm_receive_pause.cpp  whether a slow app's pause request may stop reading the serial line
// The link's data mode, and which proxy's session it carries, is a unit of its own (data_mode_gate.hpp).
// Every way the firmware reports a lost connection becomes one `closed` event.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>

#include "at/channel.hpp"
#include "modem/data_mode_gate.hpp"
#include "modem/modem_driver.hpp"
#include "modem/uplink_plan.hpp"
#include "sys/lifetime.hpp"

namespace slmd::modem {

struct SlmProxyDriverOptions {
    std::size_t link_backlog_limit = 2048;                 // uplink bytes queued on the serial line before we wait
    std::size_t quoted_send_limit = 128;                   // short quotable writes in command mode go as AT#XTCPSEND="…"
    std::chrono::milliseconds tail_flush_delay{10};        // a held trailing '+' waits this long for more bytes
    std::chrono::milliseconds data_mode_idle_exit{500};    // leave data mode after this long without uplink
};

// What the driver needs from the rest of the modem layer.
struct SlmProxyDriverHooks {
    std::function<bool()> serving;                     // modem up and registered
    std::function<std::size_t()> link_backlog;         // bytes still queued for the serial line
    std::function<std::uint64_t()> link_written;       // bytes written to the serial line so far (may be unset)
    std::function<void(bool paused)> pause_receive;    // stop/resume reading the serial line
};

class SlmProxyDriver final : public ModemDriver {
public:
    // `gate`: the link's data mode, shared with the generic-socket driver (slm_driver.hpp).
    SlmProxyDriver(boost::asio::any_io_executor executor, at::Channel& channel, DataModeGate& gate,
                   SlmProxyDriverHooks hooks, SlmProxyDriverOptions options = {});
    ~SlmProxyDriver() override;

    // Events routed by modem::Modem. on_urc returns true when the line was the driver's.
    bool on_urc(const std::string& text);
    void on_proxy_data(at::ProxyData&& data);
    // A #XTCPDATA/#XUDPDATA payload was given up part-way (the modem rebooted or UART bytes were lost): the TCP
    // connection is reset (CloseReason::data_lost, ECONNRESET) and closed on the modem; a UDP datagram is
    // counted as lost.
    void on_payload_lost(const at::PayloadLost& lost);
    void on_raw_data(std::string_view bytes);
    void on_data_mode_exited(int status);
    void on_link_drained();
    void on_modem_lost();
    // Bring-up finished (first start, after a modem reset, after serial loss): close proxies the firmware
    // holds that this driver does not own (an slmd that died), and read the test forms once.
    void on_serving();
    // The AT channel started or stopped awaiting an answer (at::Channel::awaiting_modem changed).
    void on_link_activity() { apply_receive_pause(); }
    // A generic socket is about to enter data mode. The firmware pushes every proxy's downlink raw into
    // whichever session runs, so raw bytes could then be the TCP connection's or a datagram: the UDP proxy is
    // suspended as for a TCP session (resumed when the session ends), and raw bytes are the TCP connection's.
    void before_foreign_data_mode() { suspend_udp_then([] {}); }
    // The UDP proxy's client `id` was just suspended for a data-mode session: its owner may move the client to a
    // generic socket, so that it is not closed and opened again (a new source port, a new DTLS handshake) around
    // every session. Runs from inside the suspension: keep_udp_suspended(id, true) there stops the reopen at the
    // session's end; keep_udp_suspended(id, false) reopens it after all (at once if the session has ended).
    void set_udp_suspended_listener(std::function<void(ConnectionId)> listener) {
        udp_suspended_listener_ = std::move(listener);
    }
    void keep_udp_suspended(ConnectionId id, bool keep);
    // udp_send would refuse this datagram with EBUSY now: it needs data mode while a TCP connection is open
    // (part (b) of the attribution rule in slm_udp_proxy.cpp).
    bool udp_send_blocked_by_tcp(std::string_view datagram) const;
    // A TCP connection or server peer is open on the TCP proxy.
    bool tcp_connection_open() const { return connection_.has_value(); }
    // The firmware descriptors the proxies hold now (TCP client or server, its peer, UDP): generic sockets
    // share the same pool.
    std::size_t descriptors_in_use() const {
        return (slot_busy_ ? 1 : 0) + (listener_ && connection_ ? 1 : 0) + (udp_ ? 1 : 0);
    }

    // TLS servers (slmd.conf tls-server) and DTLS servers (dtls-server): a listen or UDP serve on one of these
    // modem ports asks the firmware for a (D)TLS server with that sec_tag. Only firmware built with native TLS
    // can (DTLS: v2.8+); on any other it fails with EOPNOTSUPP before reaching the modem (SLM v2.9 would
    // otherwise hold its TCP proxy busy until the next reset).
    void set_tls_servers(std::map<std::uint16_t, int> tls, std::map<std::uint16_t, int> dtls, bool native_tls) {
        tls_servers_ = std::move(tls);
        dtls_servers_ = std::move(dtls);
        native_tls_ = native_tls;
    }

    std::size_t tcp_capacity() const override { return 1; }
    std::size_t tcp_available() const override { return slot_busy_ ? 0 : 1; }
    void set_capacity_listener(std::function<void()> listener) override { capacity_listener_ = std::move(listener); }
    bool serving() const override { return hooks_.serving(); }
    void tcp_connect(const TcpEndpoint& destination, std::chrono::milliseconds timeout, TcpConnectionEvents events,
                     std::function<void(int error, ConnectionId id)> done) override;
    void tcp_send(ConnectionId id, std::string bytes, std::function<void(int error)> done) override;
    void tcp_close(ConnectionId id) override;
    void pause_receive(bool paused) override;
    bool receive_paused() const override { return receive_paused_; }
    void when_written(std::function<void()> then) override;
    void resolve(const std::string& name, int family,
                 std::function<void(int status, std::vector<std::string> addresses)> done) override;

    void tcp_listen(std::uint16_t port, bool ipv6, TcpListenerEvents events,
                    std::function<void(int error, ListenerId id)> done) override;
    void tcp_stop_listen(ListenerId id) override;
    std::size_t udp_available() const override;
    std::size_t udp_max_send() const override;
    std::size_t udp_max_receive() const override;
    void udp_connect(const TcpEndpoint& destination, UdpEvents events,
                     std::function<void(int error, ConnectionId id)> done) override;
    void udp_serve(std::uint16_t port, bool ipv6, UdpEvents events,
                   std::function<void(int error, ConnectionId id)> done) override;
    void udp_send(ConnectionId id, std::string datagram, std::function<void(int error)> done) override;
    void udp_close(ConnectionId id) override;
    void describe_proxies(std::function<void(std::string text)> done) override;

    struct Stats {
        std::uint64_t data_mode_entries = 0;
        std::uint64_t quoted_sends = 0;
        std::uint64_t tcp_payloads_lost = 0;  // connections reset because a payload stopped part-way
        std::uint64_t udp_datagrams_lost = 0;  // datagrams that stopped part-way
        std::uint64_t bytes_up = 0;
        std::uint64_t bytes_down = 0;
        std::uint64_t udp_datagrams_up = 0;
        std::uint64_t udp_bytes_up = 0;
        std::uint64_t udp_datagrams_down = 0;
        std::uint64_t udp_bytes_down = 0;
        std::uint64_t udp_data_mode_sends = 0;
        std::uint64_t server_peers = 0;        // peers accepted by our TCP server
        std::uint64_t hangups = 0;             // AT#XTCPHANGUP issued
        std::uint64_t udp_suspensions = 0;     // UDP proxy closed around a TCP data-mode session
        std::uint64_t udp_refused_tcp_busy = 0;  // datagrams needing data mode refused (EBUSY): TCP open
        std::uint64_t orphans_closed = 0;      // proxies found open in the firmware that we did not own
    };
    const Stats& stats() const { return stats_; }

    // The firmware's test-form answers (AT#XTCPCLI=? and friends), read once per bring-up; empty until then.
    struct Capabilities {
        std::string tcp_client;
        std::string tcp_server;
        std::string udp_client;
        std::string udp_server;
        std::string tcp_hangup;
    };
    const Capabilities& capabilities() const { return capabilities_; }

private:
    struct Connection {
        ConnectionId id = 0;
        TcpConnectionEvents events;
        bool closing = false;      // tcp_close() asked; close once the uplink is flushed
        bool server_peer = false;  // accepted by our #XTCPSVR; closing hangs up, the server keeps listening
    };
    struct Listener {
        ListenerId id = 0;
        TcpListenerEvents events;
        std::uint16_t port = 0;
        bool ipv6 = false;
        bool started = false;   // "started" answered; before that the listen command is in flight
        bool stopping = false;  // tcp_stop_listen() asked
    };
    enum class UdpRole { client, server };
    // What the last command queued for the UDP proxy leaves it as. The channel runs commands in order, so a
    // state is final as soon as its command is queued; responses only report failures.
    enum class UdpState { open, suspended, closing };
    struct UdpProxy {
        ConnectionId id = 0;
        UdpRole role = UdpRole::client;
        TcpEndpoint destination;  // client: where to; server: port and family
        UdpEvents events;
        UdpState state = UdpState::open;
        bool heard_from_peer = false;  // server: the firmware has a peer to reply to
        std::function<void(int, ConnectionId)> open_done;  // set until the first open is answered
        std::string open_line;  // the #XUDPCLI/#XUDPSVR command, built and checked once, sent again on resume
        bool kept_suspended = false;  // keep_udp_suspended: no reopen when the session ends
        bool resume_due = false;      // ... and the session has ended meanwhile
    };
    struct UdpSendJob {
        std::string datagram;
        std::function<void(int)> done;
    };
    struct SendJob {
        std::string bytes;
        std::function<void(int)> done;
    };
    using Step = DataModeGate::Step;

    void submit(at::CommandRequest request, at::Channel::ResponseHandler handler) {
        gate_.submit(std::move(request), std::move(handler));
    }
    void connect_attempt(TcpEndpoint destination, std::chrono::milliseconds timeout, bool retried,
                         std::function<void(int, ConnectionId)> done, TcpConnectionEvents events);
    void pump();
    void run_pieces(std::shared_ptr<std::deque<UplinkPiece>> pieces, std::function<void(int)> finished);
    void send_quoted(std::string bytes, std::function<void(int)> finished);
    void send_in_data_mode(std::string bytes, std::function<void(int)> finished);
    void when_drained(std::function<void()> then);
    void after_uplink_idle();
    void connection_lost(CloseReason reason, int error);
    // A data-mode session of a TCP connection ended with a nonzero #XDATAMODE status: that connection is gone.
    void tcp_session_broke(const DataModeGate::Session& session, int status);
    void release_slot_then(std::function<void()> then);
    void finish_close();
    void free_slot();
    bool alive_connection(ConnectionId id) const { return connection_ && connection_->id == id; }

    // TCP server (slm_tcp_server.cpp).
    bool on_tcpsvr_line(const std::string& text);
    void peer_connected(const std::string& address);
    void hang_up_peer();
    void listener_ended(int error);

    // UDP (slm_udp_proxy.cpp).
    bool on_udp_line(const std::string& text);
    std::optional<std::string> udp_open_line() const;
    std::string udp_prefix() const;
    void udp_pump();
    void udp_send_quoted(UdpSendJob job);
    void udp_send_in_data_mode(UdpSendJob job);
    bool udp_data_mode_would_cut(std::string_view datagram) const;
    void udp_deliver(std::string_view datagram, const std::optional<UdpPeer>& peer);
    void udp_lost(CloseReason reason, int error);
    void suspend_udp_then(Step then);
    void resume_udp();
    void udp_open(std::function<void(int, ConnectionId)> done);

    // Read forms (slm_proxy_reconcile.cpp).
    void run_read_forms(std::function<void(std::vector<std::string> lines)> done);
    void when_reconciled(Step step);
    void read_capabilities();
    void route_stray_lines(const std::vector<std::string>& info, std::string_view expected_prefix);

    // Receive pause (slm_receive_pause.cpp): the serial line stops only while asked to and nothing else needs it.
    bool link_needed_elsewhere() const;
    void apply_receive_pause();
    bool pause_requested_ = false;
    bool receive_paused_ = false;

    // The UDP proxy comes back after a TCP data-mode session (slm_udp_proxy.cpp).
    void data_mode_ended();
    boost::asio::any_io_executor executor_;
    at::Channel& channel_;
    DataModeGate& gate_;
    SlmProxyDriverHooks hooks_;
    SlmProxyDriverOptions options_;
    std::map<std::uint16_t, int> tls_servers_;
    std::map<std::uint16_t, int> dtls_servers_;
    // Bytes for a server peer whose "connected" is still held in a command's answer (on_proxy_data).
    static constexpr std::size_t max_early_peer_data = 64 * 1024;
    std::string early_peer_data_;
    bool native_tls_ = false;
    std::optional<Connection> connection_;
    bool slot_busy_ = false;
    ConnectionId next_id_ = 1;
    std::deque<SendJob> sends_;
    bool pumping_ = false;
    std::string held_tail_;
    std::vector<std::function<void()>> drain_waiters_;
    struct WrittenWaiter {
        std::uint64_t target = 0;  // link_written() value at which everything queued before has gone out
        std::function<void()> then;
    };
    std::deque<WrittenWaiter> written_waiters_;
    boost::asio::steady_timer tail_timer_;
    boost::asio::steady_timer idle_timer_;
    Stats stats_;
    std::function<void()> capacity_listener_;

    std::optional<Listener> listener_;
    int hangup_urcs_expected_ = 0;  // v2.7+: the hang-up's own "disconnected" still to come after its OK
    bool hangup_in_flight_ = false;
    std::optional<UdpProxy> udp_;
    std::deque<UdpSendJob> udp_sends_;
    std::function<void(ConnectionId)> udp_suspended_listener_;
    bool udp_sending_ = false;
    std::string udp_early_echo_;  // raw downlink during a UDP data-mode send: one datagram
    bool reconciling_ = false;
    std::vector<Step> after_reconcile_;
    Capabilities capabilities_;
    sys::Lifetime lifetime_;
};

}  // namespace slmd::modem
