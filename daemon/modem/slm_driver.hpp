// Owns: the ModemDriver slmd runs on SLM firmware: the proxies (slm_proxy_driver.hpp) and the generic sockets
// (slm_socket_driver.hpp) on one channel and one data-mode gate, and which of them carries each flow. The
// first TCP connection takes the TCP proxy, whose downlink the firmware streams without polling (the line
// rate for one bulk flow); every further one takes a generic socket, so a second connection never waits for
// the first. TLS by the modem, servers and UDP stay on the proxies. Both share the firmware's descriptor pool
// (8; 7 on v3.1): tcp_available() counts what is left of it, within the configured connection limit.
// Data-first releases (v2.0-v2.2) keep to the proxy alone (sockets_enabled()).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>

#include "at/channel.hpp"
#include "modem/data_mode_gate.hpp"
#include "modem/modem_driver.hpp"
#include "modem/slm_proxy_driver.hpp"
#include "modem/slm_socket_driver.hpp"
#include "sys/lifetime.hpp"

namespace slmd::modem {

struct SlmDriverOptions {
    SlmProxyDriverOptions proxy{};
    SlmSocketDriverOptions sockets{};
    // TCP connections at once on the modem: 0 = as many as the firmware holds; 1 = the TCP proxy only (no
    // generic sockets: a second connection waits for the first). Configuration key modem-connections.
    std::size_t max_connections = 0;
    // Plain TCP connections go on generic sockets even while the TCP proxy is free; the proxy carries TLS by
    // the modem only. The proxy's pushed stream cannot be held back, so beside polled sockets it takes the
    // larger share (docs/data-path.md, "Fair shares on SLM"). Configuration key tcp-proxy = tls-only.
    bool proxy_for_tls_only = false;
    // After the firmware refused a socket for a UDP client's move, binary datagrams stay refused this long
    // before the move is tried again.
    std::chrono::milliseconds udp_move_retry{5000};
};

class SlmDriver final : public ModemDriver {
  public:
    SlmDriver(boost::asio::any_io_executor executor, at::Channel& channel, SlmProxyDriverHooks hooks,
              SlmDriverOptions options = {});
    ~SlmDriver() override;

    SlmProxyDriver& proxy() { return proxy_; }
    const SlmProxyDriver& proxy() const { return proxy_; }
    const SlmSocketDriver& sockets() const { return sockets_; }

    // Events routed by modem::Modem. Only the proxies have URCs, headed payloads and raw downlink (the
    // firmware sends a generic socket's bytes only as the answer to its #XRECV).
    bool on_urc(const std::string& text) { return proxy_.on_urc(text) || sockets_.on_urc(text); }
    void on_proxy_data(at::ProxyData&& data) { proxy_.on_proxy_data(std::move(data)); }
    void on_payload_lost(const at::PayloadLost& lost) { proxy_.on_payload_lost(lost); }
    void on_raw_data(std::string_view bytes) { proxy_.on_raw_data(bytes); }
    void on_data_mode_exited(int status) { proxy_.on_data_mode_exited(status); }
    void on_link_drained() { proxy_.on_link_drained(); }
    void on_link_activity() { proxy_.on_link_activity(); }
    void on_serving() { proxy_.on_serving(); }
    void on_modem_lost();

    // TCP connections the firmware's pool and the configured limit allow at once.
    std::size_t tcp_capacity() const override;
    std::size_t tcp_available() const override;
    void set_capacity_listener(std::function<void()> listener) override {
        capacity_listener_ = std::move(listener);
    }
    bool serving() const override { return proxy_.serving(); }
    void tcp_connect(const TcpEndpoint& destination, std::chrono::milliseconds timeout,
                     TcpConnectionEvents events,
                     std::function<void(int error, ConnectionId id)> done) override;
    void tcp_send(ConnectionId id, std::string bytes, std::function<void(int error)> done) override;
    void tcp_close(ConnectionId id) override;
    void pause_receive(bool paused) override;
    bool receive_paused() const override { return proxy_.receive_paused(); }
    void when_written(std::function<void()> then) override { proxy_.when_written(std::move(then)); }
    void tcp_listen(std::uint16_t port, bool ipv6, TcpListenerEvents events,
                    std::function<void(int error, ListenerId id)> done) override;
    void tcp_stop_listen(ListenerId id) override { proxy_.tcp_stop_listen(id); }
    bool tcp_listen_available() const override { return proxy_.tcp_available() > 0 && tcp_available() > 0; }
    std::size_t udp_available() const override;
    std::size_t udp_max_send() const override { return proxy_.udp_max_send(); }
    std::size_t udp_max_receive() const override { return proxy_.udp_max_receive(); }
    void udp_connect(const TcpEndpoint& destination, UdpEvents events,
                     std::function<void(int error, ConnectionId id)> done) override;
    void udp_serve(std::uint16_t port, bool ipv6, UdpEvents events,
                   std::function<void(int error, ConnectionId id)> done) override;
    void udp_send(ConnectionId id, std::string datagram, std::function<void(int error)> done) override;
    void udp_close(ConnectionId id) override;
    void describe_proxies(std::function<void(std::string text)> done) override;
    void resolve(const std::string& name, int family,
                 std::function<void(int status, std::vector<std::string> addresses)> done) override {
        proxy_.resolve(name, family, std::move(done));
    }

    // Connections open now (TCP and UDP, on the proxies and on generic sockets) and TCP servers.
    std::size_t open_count() const { return routes_.size(); }
    // UDP clients moved from the proxy to a generic socket: for a binary datagram while TCP is open, or at the
    // first data-mode session that suspended the UDP proxy.
    std::uint64_t udp_moves() const { return udp_moves_; }

  private:
    enum class Carrier { proxy, socket };
    struct HeldDatagram {
        std::string bytes;
        std::function<void(int)> done;
    };
    using HeldDatagrams = std::shared_ptr<std::deque<HeldDatagram>>;
    struct Route {
        Carrier carrier = Carrier::proxy;
        ConnectionId inner = 0;
        // A UDP client on the proxy that may move to a generic socket: where it sends, and its events unwrapped.
        std::optional<TcpEndpoint> udp_client{};
        std::shared_ptr<UdpEvents> udp_events{};
        // While the move runs: the datagrams sent meanwhile, in order.
        HeldDatagrams moving{};
        bool closing = false;  // closed by the flow during the move
        // A move that failed (the firmware refused a socket) is tried again from then on, not before.
        std::chrono::steady_clock::time_point next_move_attempt{};
    };
    // The flow's UDP events on `carrier`: `closed` forgets the route, unless the flow has moved off `carrier`
    // (then the close is the old carrier's and the flow does not hear of it).
    UdpEvents routed_udp_events(UdpEvents events, Carrier carrier, std::shared_ptr<ConnectionId> outer);
    void move_udp_to_socket(ConnectionId id, std::string datagram, std::function<void(int)> done);
    // The UDP proxy's client was suspended for a data-mode session: it moves to a generic socket once, rather
    // than closing and opening again around every session.
    void on_udp_suspended(ConnectionId proxy_id);
    void open_moved_udp_socket(ConnectionId id);
    // Gives `inner` (on `carrier`) an id of this driver's and wraps its `closed` event to forget the route.
    ConnectionId add_route(Carrier carrier, ConnectionId inner);
    const Route* route(ConnectionId id) const;
    std::function<void(int, ConnectionId)> routed_done(Carrier carrier,
                                                       std::function<void(int, ConnectionId)> done,
                                                       std::shared_ptr<ConnectionId> outer);
    std::size_t descriptor_limit() const;
    bool sockets_enabled() const;
    std::size_t descriptors_used() const { return proxy_.descriptors_in_use() + sockets_.open_count(); }

    boost::asio::any_io_executor executor_;
    at::Channel& channel_;
    DataModeGate gate_;
    SlmProxyDriver proxy_;
    SlmSocketDriver sockets_;
    SlmDriverOptions options_;
    std::map<ConnectionId, Route> routes_;
    ConnectionId next_id_ = 1;
    std::uint64_t udp_moves_ = 0;
    std::function<void()> capacity_listener_;
    sys::Lifetime lifetime_;
};

}  // namespace slmd::modem
