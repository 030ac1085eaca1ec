// Owns: the seam between the flow layer (core/) and a particular modem firmware. core/ asks for TCP
// connections, bytes and DNS in socket terms (errno values, EAI codes, numeric addresses); a driver turns
// them into its firmware's commands. The SLM proxy driver (#XTCPCLI, one connection) is the first; the
// generic #XSOCKET driver (up to 8) and Nordic's Serial Modem driver (#XSEND/#XRECV) come behind this same
// interface without touching api/ or core/.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <optional>
#include <string_view>
#include <vector>

namespace slmd::modem {

using ConnectionId = std::uint32_t;

// TLS (TCP) or DTLS (UDP) run by the modem. Unset choices leave the firmware's defaults, which differ between
// releases (docs/tls.md); a driver refuses with EOPNOTSUPP what its firmware cannot do.
struct TlsOptions {
    int sec_tag = 0;
    std::optional<int> peer_verify;      // 0 none, 1 optional, 2 required
    std::optional<int> hostname_verify;  // 0 off, 1 on
    std::optional<int> dtls_cid;         // 0 disabled, 1 supported, 2 enabled
    bool operator==(const TlsOptions&) const = default;
};

struct TcpEndpoint {
    std::string host;  // numeric address text (or a name the modem resolves; with TLS also the name it verifies)
    std::uint16_t port = 0;
    bool ipv6 = false;
    std::optional<TlsOptions> tls;
};

enum class CloseReason {
    peer_closed,   // the remote end closed or reset the connection; the firmware does not tell which
    modem_lost,    // the modem rebooted or the serial line dropped: the connection is gone without a trace
    local_close,   // tcp_close() finished
    data_lost,     // bytes the modem sent for it were lost on the UART: the stream cannot go on exactly
};

// What happens to one connection after it was opened.
struct TcpConnectionEvents {
    std::function<void(std::string_view bytes)> data;
    std::function<void(CloseReason reason, int error)> closed;  // error: Linux errno (0 when none)
};

using ListenerId = std::uint32_t;

// A TCP server on the modem. The firmware holds one peer at a time (a second one is closed by the firmware
// without a word); each peer is a connection used with tcp_send()/tcp_close() like a client's, where
// tcp_close() hangs the peer up and keeps the server listening.
struct TcpListenerEvents {
    // A peer connected. peer_address: numeric text from the firmware (the port is never reported). Returns
    // the events for that connection.
    std::function<TcpConnectionEvents(ConnectionId id, const std::string& peer_address)> incoming;
    // The server ended without tcp_stop_listen() (modem reset, network lost); error: Linux errno.
    std::function<void(int error)> stopped;
};

// Where a UDP datagram came from, when the firmware says (v2.8+ servers); clients know their destination.
struct UdpPeer {
    std::string address;  // numeric text
    std::uint16_t port = 0;
    bool operator==(const UdpPeer&) const = default;
};

struct UdpEvents {
    // One datagram, whole (or truncated by the firmware to its receive buffer). peer: see UdpPeer.
    std::function<void(std::string_view datagram, const std::optional<UdpPeer>& peer)> datagram;
    // The UDP client or server ended without udp_close() (modem lost, network lost); error: Linux errno.
    std::function<void(CloseReason reason, int error)> closed;
};

class ModemDriver {
public:
    virtual ~ModemDriver() = default;

    // Connections the firmware can hold at the same time, and how many of those are free now.
    virtual std::size_t tcp_capacity() const = 0;
    virtual std::size_t tcp_available() const = 0;
    // Runs (from the event loop, never inside a driver call) whenever a connection slot becomes free.
    virtual void set_capacity_listener(std::function<void()> listener) = 0;
    // Whether the modem is up and registered, i.e. whether a connect can be tried now.
    virtual bool serving() const = 0;

    // `done(error, id)`: error is 0 or a Linux errno (ECONNREFUSED, ETIMEDOUT, EHOSTUNREACH, ENETDOWN, EBUSY…).
    virtual void tcp_connect(const TcpEndpoint& destination, std::chrono::milliseconds timeout,
                             TcpConnectionEvents events, std::function<void(int error, ConnectionId id)> done) = 0;
    // Queues bytes. `done(error)` runs once the link has taken them, so the caller reads more from the app only
    // as fast as the modem takes bytes.
    virtual void tcp_send(ConnectionId id, std::string bytes, std::function<void(int error)> done) = 0;
    // Closes the connection; `events.closed(local_close, 0)` follows, then the slot is free.
    virtual void tcp_close(ConnectionId id) = 0;
    // Asks to stop (true) or resume (false) taking bytes from the modem, when an app does not read fast enough.
    // A request, not an order: the link is shared, and a driver keeps reading while anything else needs it (an
    // AT command's answer, another proxy's data). The caller must then keep taking bytes; bounding what it
    // holds for the slow app is its business (core::FlowOptions::slow_reader_limit).
    virtual void pause_receive(bool paused) = 0;
    // Whether taking bytes from the modem is stopped now (a pause was asked for and granted).
    virtual bool receive_paused() const { return false; }
    // Runs `then` once every byte queued for the link so far has been written to it (for uplink latency:
    // a tcp_send is "done" when the link took it, which can be before its last byte left). Dropped if the
    // link is lost first. Drivers without a way to tell run it at once.
    virtual void when_written(std::function<void()> then) { then(); }

    // Whether tcp_listen() can start a server now: on SLM only the TCP proxy serves, so this can be false while
    // generic sockets are left for clients.
    virtual bool tcp_listen_available() const { return tcp_available() > 0; }
    // Whether this firmware can run a TCP server at all (false: tcp_listen() fails with EOPNOTSUPP, so a listen
    // is refused at once instead of waiting for tcp_listen_available()).
    virtual bool tcp_listen_supported() const { return true; }
    // Whether a server can start while client connections are open: not on SLM, whose server is the TCP proxy
    // that the first client holds; yes where every connection and server is a socket of its own.
    virtual bool tcp_listen_beside_connections() const { return false; }
    // TCP server on the modem. Takes the TCP proxy slot like a client (tcp_available() drops to 0).
    // `done(error, id)`: error 0, EBUSY (proxy in use), ENETDOWN (not attached), EOPNOTSUPP, ...
    virtual void tcp_listen(std::uint16_t port, bool ipv6, TcpListenerEvents events,
                            std::function<void(int error, ListenerId id)> done) = 0;
    // Stops the server (hanging up its peer, whose `closed(local_close, 0)` follows) and frees the slot.
    virtual void tcp_stop_listen(ListenerId id) = 0;

    // UDP: one client or one server at a time (its own slot, independent of the TCP one).
    virtual std::size_t udp_available() const = 0;
    // The largest datagram udp_send() can carry on this firmware, and the largest one it delivers.
    virtual std::size_t udp_max_send() const = 0;
    virtual std::size_t udp_max_receive() const = 0;
    // `done(error, id)` as for tcp_connect (a UDP "connect" has no handshake: it fails only locally or on DNS).
    virtual void udp_connect(const TcpEndpoint& destination, UdpEvents events,
                             std::function<void(int error, ConnectionId id)> done) = 0;
    virtual void udp_serve(std::uint16_t port, bool ipv6, UdpEvents events,
                           std::function<void(int error, ConnectionId id)> done) = 0;
    // Sends one datagram: a client's to its destination; a server's to the last peer it received from (the
    // firmware cannot address another). `done(error)`: 0, EMSGSIZE (over udp_max_send()), EDESTADDRREQ (a
    // server that has heard from no one), ENOTCONN, ECONNRESET, ...
    virtual void udp_send(ConnectionId id, std::string datagram, std::function<void(int error)> done) = 0;
    // Closes the client or stops the server; `closed(local_close, 0)` follows, then the slot is free.
    virtual void udp_close(ConnectionId id) = 0;

    // The firmware's own account of its proxies, from its read commands (#XTCPCLI? and friends), one line per
    // proxy; empty when the modem is not serving. For operators and tests.
    virtual void describe_proxies(std::function<void(std::string text)> done) = 0;

    // DNS through the modem. `done(status, addresses)`: status 0 or a negative EAI_* value (netdb.h);
    // addresses as numeric text. family: AF_UNSPEC, AF_INET or AF_INET6.
    virtual void resolve(const std::string& name, int family,
                         std::function<void(int status, std::vector<std::string> addresses)> done) = 0;
};

}  // namespace slmd::modem
