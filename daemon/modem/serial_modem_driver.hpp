// Owns: Nordic's Serial Modem add-on (ncs-serial-modem v1.0 on) as a ModemDriver: handle-based sockets
// (AT#XSOCKET, #XCONNECT, #XBIND, #XSEND, #XSENDTO, #XCLOSE), up to the firmware's 8 at once, TCP and UDP
// clients and UDP servers. Received bytes arrive unasked: automatic reception (AT#XRECVCFG=,1) writes
// "#XRECV: <h>,0,<n>" + n bytes for every socket with data, so there is no polling at all; #XAPOLL reports a
// peer's close or a socket error once, after which the rest is drained with AT#XRECV. Sends go as a quoted
// string when short and plain, else in data mode with the count announced (AT#XSEND=<h>,2,0,<n>): the
// firmware takes exactly n bytes and leaves data mode by itself, so every byte value is safe and no "+++" is
// ever written. TCP servers (v2.0 previews): #XLISTEN, a POLLIN report on the listener, then #XACCEPT; every
// accepted peer is a socket of its own, several at once. TLS by the modem: a TLS socket (#XSSOCKET, the name
// to check set with #XSSOCKETOPT) whose handshake runs in #XCONNECT; DTLS is not offered yet. docs/reference/serial-modem-and-generic-sockets.md §2 has the firmware facts.
//
// Scheduling beside bulk: automatic reception writes up to 2048 bytes per read, and every command's answer (and
// every other socket's bytes) waits behind them on the wire: 180 ms at 115200. While an interactive socket is
// active (an app sent on it within the last interactive_window), a TCP socket that receives in bulk is read in
// slices instead: automatic reception off for it (AT#XRECVCFG=<h>,0), AT#XRECV=<h>,0,64,0,<slice> in a loop, a
// POLLIN report (#XAPOLL) when it runs dry. The line then turns over every slice, and the interactive socket's
// send and reply wait for one slice, not one 2048-byte read. Once no socket is interactive, automatic reception
// comes back for them all (docs/data-path.md, "Scheduling on the Serial Modem").
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "at/channel.hpp"
#include "modem/data_mode_gate.hpp"
#include "modem/modem_driver.hpp"
#include "sys/lifetime.hpp"

namespace slmd::modem {

struct SerialModemDriverOptions {
    std::size_t quoted_send_limit = 128;  // sends up to this long, of plain text, go as AT#XSEND=<h>,0,0,"…"
    std::size_t socket_limit = 0;         // 0: the release's (7 on v1.0.x, 8 from the v2.0 previews)
    std::size_t max_connections = 0;      // modem-connections: 0 = socket_limit
    // A socket an app sent on within this long is interactive; bulk sockets are read in slices beside it.
    std::chrono::milliseconds interactive_window{1000};
    std::size_t bulk_read_slice = 128;      // bytes per AT#XRECV of a sliced socket: 11 ms at 115200
    std::size_t bulk_chunk_threshold = 512;  // an automatic read this large marks a socket as receiving in bulk
};

class SerialModemDriver final : public ModemDriver {
  public:
    SerialModemDriver(boost::asio::any_io_executor executor, at::Channel& channel, DataModeGate& gate,
                      std::function<bool()> serving, SerialModemDriverOptions options = {});
    ~SerialModemDriver() override;

    // Channel events (modem/modem.cpp routes them here while a Serial Modem is on the line).
    bool on_urc(const std::string& text);
    void on_proxy_data(at::ProxyData&& data);
    void on_payload_lost(const at::PayloadLost& lost);
    // The modem serves (again): sockets a previous slmd left open are closed, automatic reception and close
    // reports are switched on for every socket to come.
    void on_serving();
    // The modem rebooted or the link dropped: every socket is gone (closed with modem_lost).
    void on_modem_lost();
    std::size_t open_count() const { return sockets_.size() + opening_; }
    std::size_t socket_limit() const;

    std::size_t tcp_capacity() const override;
    std::size_t tcp_available() const override;
    void set_capacity_listener(std::function<void()> listener) override {
        capacity_listener_ = std::move(listener);
    }
    bool serving() const override { return serving_(); }
    void tcp_connect(const TcpEndpoint& destination, std::chrono::milliseconds timeout,
                     TcpConnectionEvents events,
                     std::function<void(int error, ConnectionId id)> done) override;
    void tcp_send(ConnectionId id, std::string bytes, std::function<void(int error)> done) override;
    void tcp_close(ConnectionId id) override { close(id); }
    void pause_receive(bool paused) override;
    bool receive_paused() const override { return paused_; }
    bool tcp_listen_available() const override { return listens() && tcp_available() > 0; }
    bool tcp_listen_supported() const override { return listens(); }
    bool tcp_listen_beside_connections() const override { return true; }
    void tcp_listen(std::uint16_t port, bool ipv6, TcpListenerEvents events,
                    std::function<void(int error, ListenerId id)> done) override;
    void tcp_stop_listen(ListenerId id) override;
    std::size_t udp_available() const override { return tcp_available(); }
    std::size_t udp_max_send() const override;
    std::size_t udp_max_receive() const override;
    void udp_connect(const TcpEndpoint& destination, UdpEvents events,
                     std::function<void(int error, ConnectionId id)> done) override;
    void udp_serve(std::uint16_t port, bool ipv6, UdpEvents events,
                   std::function<void(int error, ConnectionId id)> done) override;
    void udp_send(ConnectionId id, std::string datagram, std::function<void(int error)> done) override;
    void udp_close(ConnectionId id) override { close(id); }
    void describe_proxies(std::function<void(std::string text)> done) override;
    void resolve(const std::string& name, int family,
                 std::function<void(int status, std::vector<std::string> addresses)> done) override;

    struct Stats {
        std::uint64_t bytes_up = 0;
        std::uint64_t bytes_down = 0;
        std::uint64_t counted_sends = 0;  // data-mode sessions with their count announced
        std::uint64_t quoted_sends = 0;
        std::uint64_t drains = 0;                // AT#XRECV reads after a close report
        std::uint64_t unknown_handle_bytes = 0;  // received for no socket slmd knows (dropped)
        std::uint64_t slicings = 0;              // bulk sockets switched to sliced reads beside an interactive one
        std::uint64_t slice_reads = 0;           // AT#XRECV slices read
    };
    const Stats& stats() const { return stats_; }

  private:
    struct SendJob {
        std::string bytes;
        std::function<void(int)> done;
    };
    enum class Kind { tcp, udp_client, udp_server, listener };
    struct Socket {
        ConnectionId id = 0;
        int handle = -1;
        Kind kind = Kind::tcp;
        TcpConnectionEvents tcp_events;
        UdpEvents udp_events;
        std::deque<SendJob> sends;
        bool sending = false;
        bool closing = false;
        bool draining = false;             // a close report came; reading what is left
        bool drain_got_bytes = false;      // bytes arrived during the current drain read
        bool drain_error = false;          // the report said POLLERR
        std::optional<UdpPeer> last_peer;  // a UDP server's: where its replies go
        TcpListenerEvents listener_events{};
        ConnectionId server = 0;  // an accepted peer's listener
        bool accepting = false;   // a listener's AT#XACCEPT is on its way
        bool accept_waiting = false;  // a peer was reported while no connection was left (modem-connections)
        std::chrono::steady_clock::time_point last_send{};  // when an app last sent on it
        bool sliced = false;         // automatic reception off: slmd reads it in slices
        bool slice_reading = false;  // an AT#XRECV slice is on its way
        bool slice_watching = false;  // ran dry: a POLLIN report is asked for
        std::size_t slice_bytes = 0;  // bytes the current slice read brought
    };

    void open(Kind kind, const TcpEndpoint& destination, std::uint16_t local_port,
              std::chrono::milliseconds timeout, Socket socket,
              std::function<void(int error, ConnectionId id)> done);
    // A server's socket (UDP server, TCP listener), bound to `port`.
    void open_bound(std::uint16_t port, bool ipv6, Socket socket, std::function<void(int error, ConnectionId id)> done);
    Socket* find(ConnectionId id);
    Socket* find_handle(int handle);
    void pump(ConnectionId id);
    void send_chunk(ConnectionId id, std::string bytes, std::function<void(int)> finished);
    void send_counted(ConnectionId id, std::string command, std::string bytes,
                      std::function<void(int)> finished);
    void close(ConnectionId id);
    void drain(ConnectionId id);
    // Scheduling beside bulk (see the header comment).
    bool interactive(const Socket& socket, std::chrono::steady_clock::time_point now) const;
    void note_send(Socket& socket);
    void consider_slicing(Socket& socket);
    void read_slice(ConnectionId id);
    void watch_slice(Socket& socket, bool on);
    void unslice_all();
    void arm_interactive_timer();
    // #XLISTEN/#XACCEPT came back in the v2.0 previews (v0.2 to v1.0.x have neither).
    bool listens() const;
    void abandon_opening(int handle, int error, std::function<void(int, ConnectionId)> done);
    void start_listening(int handle, std::shared_ptr<Socket> pending, std::function<void(int, ConnectionId)> done);
    void accept(ConnectionId listener);
    void lose(ConnectionId id, CloseReason reason, int error);
    void deliver_closed(Socket& socket, CloseReason reason, int error);
    void slot_freed();

    boost::asio::any_io_executor executor_;
    at::Channel& channel_;
    DataModeGate& gate_;
    std::function<bool()> serving_;
    SerialModemDriverOptions options_;
    std::map<ConnectionId, Socket> sockets_;
    std::size_t opening_ = 0;  // sockets being opened or closed on the modem: they hold a descriptor
    ConnectionId next_id_ = 1;
    std::function<void()> capacity_listener_;
    bool paused_ = false;
    boost::asio::steady_timer interactive_timer_;
    bool interactive_timer_armed_ = false;
    Stats stats_;
    sys::Lifetime lifetime_;
};

}  // namespace slmd::modem
