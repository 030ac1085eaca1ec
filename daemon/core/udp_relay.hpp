// Owns: UDP through the modem ("stand-ins"; docs/data-path.md, "UDP stand-ins and modem servers"):
//  * the app sockets slmd serves UDP for (a real kernel socket bound on loopback at the app's port L), as a
//    client (the modem's UDP client aimed at one destination, re-targeted when the app talks to another) or
//    as a server (the modem's UDP server on port P, from a BindRequest);
//  * per app socket, up to `max_stand_ins` stand-ins: UDP sockets of slmd's on 127.0.0.1:0 (::1:0) connected
//    to the app's 127.0.0.1:L (::1:L), one per remote peer, least recently used evicted. Datagrams the app
//    sends to a stand-in go to that peer through the modem; datagrams from that peer come from it;
//  * the modem's UDP sockets ("carriers"): one per app socket served, as many at once as the driver offers
//    (SLM: its one UDP proxy; the Serial Modem: any of its sockets). Per carrier: who holds it, the ordered
//    queue of datagrams and associations waiting for a (re-)target, a server's last peer (the firmware can only
//    answer that one). And the counters;
//  * the lifetime of it all: a close() of the app's socket sends slmd nothing, so while any app socket is
//    served the kernel's UDP tables are polled and a socket gone releases the proxy and its stand-ins.
// Knows sockets and errno values, never AT.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/app_socket.hpp"
#include "net/socket_table.hpp"
#include "core/latency_histogram.hpp"
#include "modem/modem_driver.hpp"
#include "sys/lifetime.hpp"
#include "wire.hpp"

namespace slmd::core {

struct UdpOptions {
    std::size_t max_stand_ins = 16;                 // per app socket; the least recently used one goes
    std::chrono::milliseconds socket_poll{1000};    // how often served app sockets are looked up in the kernel
    std::size_t max_queued_datagrams = 64;          // waiting for a (re-)target of the modem's client
};

struct UdpCounters {
    std::uint64_t datagrams_up = 0;     // app → modem, handed to the driver
    std::uint64_t datagrams_down = 0;   // modem → app, delivered to a stand-in
    std::uint64_t bytes_up = 0;
    std::uint64_t bytes_down = 0;
    // Datagrams dropped, by reason. UDP gives no way to report a per-datagram error on the app's socket.
    std::uint64_t dropped_not_last_peer = 0;   // server: the firmware can only answer its last peer
    std::uint64_t dropped_too_big = 0;         // over the firmware's udp_max_send() (EMSGSIZE)
    std::uint64_t dropped_busy = 0;            // the UDP proxy serves another app socket (EBUSY)
    std::uint64_t dropped_no_proxy = 0;        // the socket's server ended (modem lost) or the client could not open
    std::uint64_t dropped_queue_full = 0;      // more than max_queued_datagrams waiting for a re-target
    std::uint64_t dropped_send_failed = 0;     // the driver refused it (EINVAL, ENOTCONN, EDESTADDRREQ, ...)
    std::uint64_t dropped_app_gone = 0;        // modem datagrams for an app socket that is gone
    std::uint64_t retargets = 0;               // the modem's client re-aimed at another destination
    std::uint64_t stand_ins_created = 0;
    std::uint64_t stand_ins_evicted = 0;
    std::uint64_t sockets_released = 0;        // app sockets found gone by the poll
};

class UdpRelay {
public:
    using AssociateReplyHandler = std::function<void(slmsock::wire::UdpAssociateReply)>;
    using BindReplyHandler = std::function<void(slmsock::wire::BindReply)>;
    // Whether a destination is reached without the modem (net::RoutePolicy::bypass in slmd).
    using BypassDecision = std::function<bool(const slmsock::wire::Address&)>;

    UdpRelay(boost::asio::any_io_executor executor, modem::ModemDriver& driver, UdpOptions options = {});
    ~UdpRelay();
    UdpRelay(const UdpRelay&) = delete;
    UdpRelay& operator=(const UdpRelay&) = delete;

    void set_bypass(BypassDecision bypass) { bypass_ = std::move(bypass); }
    void set_modem_address(ModemAddressSource source) { modem_address_ = std::move(source); }

    // The stand-in for one peer of the app socket at request.app_port. A client socket gets its port once the
    // modem's client points at the peer; a server socket at once. -EBUSY: every UDP socket the modem can give
    // serves another app socket.
    void associate(const slmsock::wire::UdpAssociateRequest& request, const Requester& requester,
                   AssociateReplyHandler reply);
    // BindRequest with Transport::udp: the modem's UDP server on modem_port for the app socket at app_port.
    void bind(const slmsock::wire::BindRequest& request, const Requester& requester, BindReplyHandler reply);
    slmsock::wire::LookupReply lookup(const slmsock::wire::LookupRequest& request) const;
    // The first UDP carrier in use, for ProxiesReply: role, port (destination or served), peer (destination,
    // or the server's last peer as "address:port"), owner pid, bytes each way.
    slmsock::wire::ProxyInfo proxy_info() const;

    // slmd is stopping: stand-ins close, pending replies get -ENETDOWN (the modem side goes with the modem).
    void stop();
    const UdpCounters& counters() const { return counters_; }
    // UDP latency through slmd, measured like TcpFlowManager's: downlink from a datagram parsed off the UART to
    // its send to the app's stand-in; uplink from its read from the app to its last byte written to the UART.
    const LatencyHistogram& downlink_latency() const { return downlink_latency_; }
    const LatencyHistogram& uplink_latency() const { return uplink_latency_; }
    std::size_t app_sockets() const { return apps_.size(); }
    // Modem UDP sockets open or being opened now.
    std::size_t carriers_in_use() const;

private:
    struct Peer {
        slmsock::wire::Address address;
        std::uint16_t port = 0;
        // DTLS by the modem toward a client's peer: part of the peer's identity, so a plain and a DTLS
        // association to one address are two stand-ins and switching between them re-opens the client.
        std::optional<slmsock::wire::TlsParameters> tls;
        bool operator==(const Peer&) const = default;
    };
    struct StandIn;
    struct AppSocket;
    using Key = std::pair<slmsock::wire::Family, std::uint16_t>;
    using AppPtr = std::shared_ptr<AppSocket>;
    using StandInPtr = std::shared_ptr<StandIn>;
    // One unit of work for the modem's client: a datagram to send to `peer`, or an association to answer,
    // once the client points at `peer`. Kept in order: a re-target never overtakes earlier datagrams.
    struct ClientOp {
        Peer peer;
        std::optional<std::string> datagram;
        AssociateReplyHandler reply;
        std::uint16_t stand_in_port = 0;
        std::chrono::steady_clock::time_point read_at{};  // when slmd read the datagram from the app
    };
    enum class ProxyState { idle, opening, open, closing };
    // One UDP client or server of the modem's, serving one app socket at a time.
    struct Carrier {
        ProxyState state = ProxyState::idle;
        AppPtr owner;                  // the app socket it serves; null when free
        bool server = false;
        modem::ConnectionId connection = 0;
        std::uint64_t generation = 0;  // tells events of an old client/server from the current one's
        Peer destination;              // client: where it points (when open)
        std::optional<Peer> last_peer;  // server: the last peer heard from, when the firmware said
        std::uint64_t bytes_up = 0;
        std::uint64_t bytes_down = 0;
        std::deque<ClientOp> ops;
        std::vector<std::function<void()>> after_close;
    };
    using CarrierPtr = std::shared_ptr<Carrier>;

    AppPtr find_app(slmsock::wire::Family family, std::uint16_t port) const;
    AppPtr app_for(slmsock::wire::Family family, std::uint16_t port, const Requester& requester,
                   const net::SocketIdentity& identity);
    enum class Holder { the_app, nobody, another_socket };
    static Holder holder(const AppSocket& app);
    bool still_there(const AppPtr& app);
    // Whether `app` can have a carrier now: its own, a free one, or a new one the driver can open.
    bool can_carry(const AppPtr& app);
    // The carrier for `app` (taking a free one or opening a new one), or null when all serve live others.
    CarrierPtr take_carrier(const AppPtr& app);
    StandInPtr stand_in_for(const AppPtr& app, const Peer& peer, bool anonymous, int& error);
    void receive(const StandInPtr& stand_in);
    void on_app_datagram(const StandInPtr& stand_in, std::size_t size);
    void forward(const AppPtr& app, const StandInPtr& stand_in, std::size_t size);
    void drain_after_close(const AppPtr& app, const StandInPtr& reading);
    void deliver(const AppPtr& app, const Peer& peer, bool anonymous, std::string_view datagram);
    void send_to_modem(const CarrierPtr& carrier, std::string datagram,
                       std::chrono::steady_clock::time_point read_at);
    void dropped(std::uint64_t& counter, const char* why, std::size_t size);
    void retire(const StandInPtr& stand_in);
    void pump(const CarrierPtr& carrier);
    void post_pump(const CarrierPtr& carrier);
    void open_client(const CarrierPtr& carrier, const Peer& peer);
    void start_server(const CarrierPtr& carrier, const AppPtr& app, BindReplyHandler reply);
    void close_proxy(const CarrierPtr& carrier);
    modem::UdpEvents proxy_events(const CarrierPtr& carrier, std::uint64_t generation);
    void on_proxy_closed(const CarrierPtr& carrier, std::uint64_t generation, modem::CloseReason reason, int error);
    void fail_ops(const CarrierPtr& carrier, int error);
    void close_retired(const StandInPtr& stand_in);
    void release(const AppPtr& app);
    void watch();
    void poll();

    boost::asio::any_io_executor executor_;
    modem::ModemDriver& driver_;
    UdpOptions options_;
    BypassDecision bypass_;
    ModemAddressSource modem_address_;
    std::map<Key, AppPtr> apps_;
    std::vector<StandInPtr> retired_;  // cancelled stand-ins waiting for their receive to complete
    std::uint64_t tick_ = 0;  // LRU clock of the stand-ins

    std::vector<CarrierPtr> carriers_;
    std::uint64_t generation_ = 0;  // last generation handed out, across carriers

    boost::asio::steady_timer poll_timer_;
    bool polling_ = false;
    UdpCounters counters_;
    LatencyHistogram downlink_latency_;
    LatencyHistogram uplink_latency_;
    sys::Lifetime lifetime_;
};

}  // namespace slmd::core
