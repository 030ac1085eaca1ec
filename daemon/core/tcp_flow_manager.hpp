// Owns: the TCP flows — one per TCP connection that goes through the modem — and their lifecycle: waiting for a
// modem connection slot (bounded queue), connecting, relaying bytes between the app's real kernel socket
// (attached through the data endpoint) and the ModemDriver with back-pressure both ways, half-close, and
// tearing down with the right signal for the app (EOF for a peer close, RST for a modem loss or a failed
// connect). Also the modem's TCP server: port reservations (BindRequest), the server itself (ListenRequest;
// it holds the one TCP proxy), and its peers, each relayed by the same machinery as a client flow over a
// loopback connection slmd opens to the app's listening socket; the kernel's table is polled to notice the
// listening socket's close. Knows socket semantics and errno values, never AT. (UDP is core/udp_relay.hpp's.)
// Implemented in two files: tcp_flow_manager.cpp (client flows, relaying) and tcp_modem_server.cpp (the
// server half), over the records of tcp_flow_records.hpp.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "core/app_socket.hpp"
#include "core/latency_histogram.hpp"
#include "core/socket_graveyard.hpp"
#include "modem/modem_driver.hpp"
#include "net/socket_table.hpp"
#include "sys/lifetime.hpp"
#include "wire.hpp"

namespace slmd::core {

struct FlowOptions {
    std::size_t max_waiting = 32;                          // flows queued for a busy proxy; more get EBUSY
    std::chrono::milliseconds default_connect_timeout{60000};
    std::chrono::milliseconds attach_timeout{5000};        // credential sent, data connection never came: give up
    std::size_t downlink_limit = 256 * 1024;               // bytes buffered toward one app before we stop the modem
    // The most bytes held for one app that does not read while the modem link cannot be stopped for it (others
    // need it: ModemDriver::pause_receive); beyond that the app's connection is reset. The pause is asked for at
    // downlink_limit, or at half this limit when that is lower, so a slow app alone on the link never reaches it.
    std::size_t slow_reader_limit = 1024 * 1024;
    std::size_t uplink_chunk = 2048;                       // bytes read from an app at a time
    std::chrono::milliseconds keep_finished{30000};        // finished flows stay queryable (SO_ERROR) this long
    std::chrono::milliseconds half_close_poll{500};        // how often a half-closed app's socket is looked up
    // SLM cannot send a FIN, so a peer never hears of an app's shutdown(SHUT_WR). Once the peer has sent
    // nothing for this long after it, slmd closes the connection: the peer gets its end of file (a full close)
    // and the app its own. 0: wait for the peer or the app's close() however long.
    std::chrono::milliseconds half_close_idle{10000};
    std::chrono::milliseconds socket_poll{1000};           // how often reserved/listening app sockets are looked up
};

struct FlowCounters {
    std::uint64_t opened = 0;
    std::uint64_t failed = 0;
    std::uint64_t bytes_up = 0;
    std::uint64_t bytes_down = 0;
    std::uint64_t dropped_down_app_gone = 0;    // modem bytes for an app that had already closed
    std::uint64_t dropped_up_peer_gone = 0;     // app bytes after the peer closed
    std::uint64_t refused_busy = 0;
    std::uint64_t abandoned = 0;                // connects the app gave up on before the modem connected
    std::uint64_t server_peers_accepted = 0;    // modem server peers connected to the app's listening socket
    std::uint64_t server_peers_refused = 0;     // ... whose loopback connection the app's socket refused
    std::uint64_t reset_slow_reader = 0;        // connections reset: the app left slow_reader_limit unread
    std::uint64_t half_closed_ended = 0;        // closed after the app's shutdown(SHUT_WR) and a quiet peer
    std::uint64_t dropped_down_slow_reader = 0; // bytes held for those apps, dropped with the reset
};

class TcpFlowManager {
public:
    using ConnectReplyHandler = std::function<void(slmsock::wire::ConnectReply)>;
    using ListenReplyHandler = std::function<void(slmsock::wire::ListenReply)>;

    TcpFlowManager(boost::asio::any_io_executor executor, modem::ModemDriver& driver, FlowOptions options = {});
    ~TcpFlowManager();

    // A CONNECT from an app. The reply comes at once for non-blocking requests, else when the modem answered.
    // -EBUSY at once while the modem's TCP server holds the proxy (the firmware runs a client or a server).
    // Returns the flow's id while its reply is still to come (a blocking connect waiting or connecting), else 0.
    std::uint64_t connect(const slmsock::wire::ConnectRequest& request, std::uint16_t data_port,
                          ConnectReplyHandler reply, const Requester& requester = {});
    // The app behind a blocking connect that has not been answered yet is gone (its API connection closed):
    // the flow is dropped, from the queue or, while the modem connects, when the modem has answered.
    void abandon_unanswered(std::uint64_t flow_id);
    // A flow is the business of the uid that opened it (or root): for anyone else it does not exist, so flow
    // ids, which are sequential, tell nothing about other users' connections and reach none of them.
    slmsock::wire::FlowStatusReply status(const slmsock::wire::FlowStatusRequest& request,
                                          const Requester& requester) const;
    slmsock::wire::ShutdownReply shutdown(const slmsock::wire::ShutdownRequest& request, const Requester& requester);
    // A data connection presented this credential from the app socket `owner` (the other end of the loopback
    // connection); takes the socket, or resets it and returns false: an unknown or used credential, or a socket
    // that is not the requester's (another uid, or not the socket named in the request). A refused socket does
    // not use up the credential: the flow's own app can still attach.
    bool attach(boost::asio::ip::tcp::socket socket, std::uint64_t flow_id, const slmsock::wire::Token& token,
                const net::SocketIdentity& owner);

    // BindRequest with Transport::tcp: reserves modem_port for the app socket at app_port (no modem command).
    slmsock::wire::BindReply bind(const slmsock::wire::BindRequest& request, const Requester& requester);
    // Starts the modem's TCP server for a reserved socket: 0, -ENOENT (no BindRequest), -EBUSY (client flows
    // use the TCP proxy, or another server runs), -EPERM, or the driver's error.
    void listen(const slmsock::wire::ListenRequest& request, const Requester& requester, ListenReplyHandler reply);
    // TCP: the modem-side address of a reserved socket and the server peer behind a loopback port of slmd's.
    slmsock::wire::LookupReply lookup(const slmsock::wire::LookupRequest& request) const;
    slmsock::wire::ProxyInfo proxy_info() const;
    void set_modem_address(ModemAddressSource source) { modem_address_ = std::move(source); }

    // slmd is stopping: every app connection is reset (the modem side goes with the modem).
    void stop();
    std::uint32_t active_flows() const;
    std::uint32_t waiting_flows() const { return static_cast<std::uint32_t>(waiting_.size()); }
    const FlowCounters& counters() const { return counters_; }
    // TCP latency through slmd (UdpRelay keeps UDP's): downlink from a chunk parsed off the UART to its bytes
    // written to the app socket; uplink from bytes read from the app socket to their last byte written to the UART.
    const LatencyHistogram& downlink_latency() const { return downlink_latency_; }
    const LatencyHistogram& uplink_latency() const { return uplink_latency_; }

private:
    struct Flow;
    using FlowPtr = std::shared_ptr<Flow>;
    struct Reservation;
    using ReservationPtr = std::shared_ptr<Reservation>;

    void schedule();
    void start_connect(const FlowPtr& flow);
    void on_connected(const FlowPtr& flow);
    modem::TcpConnectionEvents connection_events(const FlowPtr& flow);
    modem::TcpConnectionEvents on_incoming(const ReservationPtr& server, modem::ConnectionId id,
                                           const std::string& peer);
    void watch_for_abandonment(const FlowPtr& flow);
    void expect_attach(const FlowPtr& flow);
    void abandon(const FlowPtr& flow, const char* why);
    void on_app_connected(const FlowPtr& flow, boost::system::error_code error);
    void drop_reservation(const ReservationPtr& reservation);
    void start_listen(const ReservationPtr& reservation, ListenReplyHandler reply);
    bool reservation_live(const Reservation& reservation) const;
    void watch_sockets();
    void fail(const FlowPtr& flow, int error);
    void read_uplink(const FlowPtr& flow);
    void write_downlink(const FlowPtr& flow);
    void on_modem_closed(const FlowPtr& flow, modem::CloseReason reason, int error);
    void app_finished_sending(const FlowPtr& flow);
    void watch_half_closed_app(const FlowPtr& flow);
    void reset_app(const FlowPtr& flow);
    std::size_t pause_threshold() const;
    void update_receive_pause();
    void reset_slow_reader(const FlowPtr& flow);
    void finish(const FlowPtr& flow);
    FlowPtr find(std::uint64_t id, std::uint16_t data_local_port) const;

    boost::asio::any_io_executor executor_;
    modem::ModemDriver& driver_;
    FlowOptions options_;
    std::map<std::uint64_t, FlowPtr> flows_;
    std::deque<FlowPtr> waiting_;
    std::uint64_t next_id_ = 1;
    std::map<std::pair<slmsock::wire::Family, std::uint16_t>, ReservationPtr> reservations_;
    ReservationPtr server_;  // the reservation whose modem server is starting or listening
    // A listen() that waits for the modem's TCP proxy to come free: the previous server (whose socket closed)
    // or connection is still being closed on the modem. Started from schedule().
    struct DeferredListen {
        ReservationPtr reservation;
        ListenReplyHandler reply;
    };
    std::optional<DeferredListen> deferred_listen_;
    ModemAddressSource modem_address_;
    boost::asio::steady_timer socket_poll_;
    bool polling_ = false;
    bool pause_requested_ = false;  // asked the driver to stop taking bytes (ModemDriver::pause_receive)
    FlowCounters counters_;
    LatencyHistogram downlink_latency_;
    LatencyHistogram uplink_latency_;
    SocketGraveyard graveyard_;
    sys::Lifetime lifetime_;
};

}  // namespace slmd::core
