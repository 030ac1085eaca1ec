// Owns: slmd's loopback data endpoint. App sockets that go through the modem are connected here (on
// 127.0.0.1 and ::1, one port) and first present the 24-byte credential from their CONNECT reply; the
// socket is then handed to the flow it names. Anything else is reset.
#pragma once

#include <boost/asio/ip/tcp.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <system_error>
#include <vector>

#include "core/flow_manager.hpp"

namespace slmd::api {

class DataEndpoint {
public:
    DataEndpoint(boost::asio::any_io_executor executor, core::FlowManager& flows);
    ~DataEndpoint();
    // Listens on 127.0.0.1:port and [::1]:port (port 0 picks one); IPv6 is optional (a host may lack ::1).
    std::error_code start(std::uint16_t port);
    std::uint16_t port() const { return port_; }
    void stop();

private:
    void accept_loop(boost::asio::ip::tcp::acceptor& acceptor);
    void read_credential(boost::asio::ip::tcp::socket socket);

    boost::asio::any_io_executor executor_;
    core::FlowManager& flows_;
    boost::asio::ip::tcp::acceptor v4_;
    std::optional<boost::asio::ip::tcp::acceptor> v6_;
    std::uint16_t port_ = 0;
    std::vector<std::weak_ptr<boost::asio::ip::tcp::socket>> unauthenticated_;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace slmd::api
