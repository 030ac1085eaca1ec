// Owns: slmd's loopback data endpoint. App sockets that go through the modem are connected here (on
// 127.0.0.1 and ::1, one port) and first present the 24-byte credential from their CONNECT reply; the
// socket is then handed to the flow it names, if it is the socket of the flow's requester. Anything else is
// reset. Connections that have not yet presented a credential are few and short-lived: capped in total and
// per uid, and cut off after credential_timeout, and one descriptor is kept in reserve so that running out
// of descriptors refuses new connections instead of leaving them in the backlog.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <system_error>
#include <vector>

#include "core/tcp_flow_manager.hpp"
#include "sys/lifetime.hpp"

namespace slmd::api {

struct DataEndpointOptions {
    // The shim presents its credential right after connecting, so only a stalled or hostile client needs long.
    std::chrono::milliseconds credential_timeout{2000};
    std::size_t max_unauthenticated = 128;          // connections waiting for their credential, in all
    std::size_t max_unauthenticated_per_uid = 32;   // ... from one uid (root's sockets included)
};

class DataEndpoint {
public:
    DataEndpoint(boost::asio::any_io_executor executor, core::TcpFlowManager& flows, DataEndpointOptions options = {});
    ~DataEndpoint();
    // Listens on 127.0.0.1:port and [::1]:port. Port 0 picks one, and picks again when [::1] at the picked
    // port is already taken (by someone who would then be handed IPv6 apps' credentials); a configured port
    // whose [::1] is taken is an error. A host without ::1 gets the IPv4 endpoint only.
    std::error_code start(std::uint16_t port);
    std::uint16_t port() const { return port_; }
    void stop();

    struct Counters {
        std::uint64_t refused_over_limit = 0;   // reset at once: too many waiting for their credential
        std::uint64_t refused_credential = 0;   // unknown, used or foreign credential, or no owner found
        std::uint64_t timed_out = 0;            // no credential within credential_timeout
        std::uint64_t descriptors_exhausted = 0;  // connections refused with the reserve descriptor
    };
    const Counters& counters() const { return counters_; }

private:
    struct Pending;
    std::error_code listen_on(std::uint16_t port);
    void accept_loop(boost::asio::ip::tcp::acceptor& acceptor);
    void refuse_with_reserve(boost::asio::ip::tcp::acceptor& acceptor);
    void read_credential(boost::asio::ip::tcp::socket socket);
    void finished(const Pending& pending);

    boost::asio::any_io_executor executor_;
    core::TcpFlowManager& flows_;
    DataEndpointOptions options_;
    boost::asio::ip::tcp::acceptor v4_;
    std::optional<boost::asio::ip::tcp::acceptor> v6_;
    std::uint16_t port_ = 0;
    int reserve_fd_ = -1;
    std::vector<std::weak_ptr<boost::asio::ip::tcp::socket>> unauthenticated_;
    std::size_t waiting_ = 0;
    std::map<unsigned, std::size_t> waiting_per_uid_;
    Counters counters_;
    sys::Lifetime lifetime_;
};

}  // namespace slmd::api
