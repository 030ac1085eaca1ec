// Owns: the records TcpFlowManager keeps per flow and per reserved port, and the helpers both of its halves use
// (tcp_flow_manager.cpp: client flows and relaying; tcp_modem_server.cpp: the modem's TCP server). Internal to
// core/: nothing outside TcpFlowManager's files includes it.
#pragma once

#include <sys/random.h>

#include <boost/asio/steady_timer.hpp>

#include <array>
#include <chrono>
#include <deque>
#include <memory>
#include <optional>
#include <string>

#include "core/tcp_flow_manager.hpp"

namespace slmd::core {

namespace asio = boost::asio;
namespace wire = slmsock::wire;
using tcp = asio::ip::tcp;

enum class Phase { waiting, connecting, connected, finished };

// A port reserved for an app's TCP socket (BindRequest), and the modem server started for it (ListenRequest).
struct TcpFlowManager::Reservation {
    enum class State { reserved, starting, listening };
    wire::Family family = wire::Family::ipv4;
    std::uint16_t app_port = 0;    // L: the app's socket on loopback
    std::uint16_t modem_port = 0;  // P: served by the modem
    Requester requester;
    // The listening socket served (uid, inode), from ListenRequest on. Another socket listening at app_port
    // later — someone else's, bound after the app closed its own — is not given the modem's peers.
    std::optional<net::SocketIdentity> listening_socket;
    State state = State::reserved;
    modem::ListenerId listener = 0;
    bool gone = false;
    std::uint64_t bytes_up = 0;
    std::uint64_t bytes_down = 0;
};

struct TcpFlowManager::Flow {
    explicit Flow(asio::any_io_executor executor)
        : deadline(executor), attach_deadline(executor), linger(executor), half_close_check(executor) {}

    std::uint64_t id = 0;
    wire::Token token{};
    wire::Address destination;
    std::uint16_t port = 0;
    std::string host;  // numeric text
    std::optional<wire::TlsParameters> tls;  // TLS run by the modem
    Phase phase = Phase::waiting;
    int error = 0;  // errno of a failed or reset flow
    std::chrono::steady_clock::time_point connect_by;
    ConnectReplyHandler pending_reply;
    std::uint16_t data_port = 0;  // client: slmd's data endpoint; server peer: slmd's end of the loopback connection
    Requester requester;
    std::uint64_t socket_inode = 0;  // the app socket named in the request (0: any socket of the requester's uid)
    std::uint64_t bytes_up = 0;
    std::uint64_t bytes_down = 0;

    std::optional<tcp::socket> app;
    std::uint16_t app_port = 0;  // client: the app socket's port; server peer: the app's listening port
    bool attached = false;
    // A modem server's peer: slmd connects to the app's listening socket instead of the app attaching.
    bool server_peer = false;
    std::weak_ptr<Reservation> server;
    std::optional<tcp::socket> connecting_app;

    modem::ConnectionId connection = 0;
    bool modem_open = false;
    bool peer_closed = false;

    // Bytes toward the app, each chunk with the moment the driver handed it over (parsed off the UART): the
    // start of its downlink latency sample.
    struct DownlinkChunk {
        std::string bytes;
        std::chrono::steady_clock::time_point received;
    };
    std::deque<DownlinkChunk> downlink;
    std::size_t downlink_bytes = 0;
    bool writing = false;
    bool receive_paused = false;  // holds more than pause_threshold(): asks for the modem to pause
    bool slow_reset = false;      // left slow_reader_limit unread: being reset

    std::array<char, 4096> read_buffer{};
    bool reading = false;
    bool app_eof = false;
    bool app_shut_write = false;
    std::chrono::steady_clock::time_point last_peer_bytes_or_shutdown;  // for FlowOptions::half_close_idle

    asio::steady_timer deadline;
    asio::steady_timer attach_deadline;
    asio::steady_timer linger;
    asio::steady_timer half_close_check;
};


// root may act for anyone; everyone else for their own uid's flows.
inline bool may_act_for(const Requester& requester, unsigned owner_uid) {
    return requester.uid == 0 || requester.uid == owner_uid;
}

inline wire::Token random_token() {
    wire::Token token{};
    std::size_t filled = 0;
    while (filled < token.size()) {
        ssize_t n = getrandom(token.data() + filled, token.size() - filled, 0);
        if (n > 0) filled += static_cast<std::size_t>(n);
    }
    return token;
}

inline tcp::endpoint loopback(wire::Family family, std::uint16_t port) {
    if (family == wire::Family::ipv6) return {asio::ip::address_v6::loopback(), port};
    return {asio::ip::address_v4::loopback(), port};
}

}  // namespace slmd::core
