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
#include <string_view>
#include <vector>

namespace slmd::modem {

using ConnectionId = std::uint32_t;

struct TcpEndpoint {
    std::string host;  // numeric address text (or a name the modem resolves)
    std::uint16_t port = 0;
    bool ipv6 = false;
};

enum class CloseReason {
    peer_closed,   // the remote end closed or reset the connection; the firmware does not tell which
    modem_lost,    // the modem rebooted or the serial line dropped: the connection is gone without a trace
    local_close,   // tcp_close() finished
};

// What happens to one connection after it was opened.
struct TcpConnectionEvents {
    std::function<void(std::string_view bytes)> data;
    std::function<void(CloseReason reason, int error)> closed;  // error: Linux errno (0 when none)
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
    // Stops (true) or resumes (false) taking bytes from the modem, when an app does not read fast enough.
    virtual void pause_receive(bool paused) = 0;

    // DNS through the modem. `done(status, addresses)`: status 0 or a negative EAI_* value (netdb.h);
    // addresses as numeric text. family: AF_UNSPEC, AF_INET or AF_INET6.
    virtual void resolve(const std::string& name, int family,
                         std::function<void(int status, std::vector<std::string> addresses)> done) = 0;
};

}  // namespace slmd::modem
