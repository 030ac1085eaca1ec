// Owns: the loopback data endpoint (see data_endpoint.hpp).
#include "api/data_endpoint.hpp"

#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>

#include "sys/log.hpp"

namespace slmd::api {

namespace asio = boost::asio;
namespace wire = slmsock::wire;
using tcp = asio::ip::tcp;

namespace {
// A client that connected but says nothing is cut off after this long.
constexpr std::chrono::seconds credential_timeout{5};
}  // namespace

DataEndpoint::DataEndpoint(asio::any_io_executor executor, core::FlowManager& flows)
    : executor_(executor), flows_(flows), v4_(executor) {}

DataEndpoint::~DataEndpoint() { *alive_ = false; }

std::error_code DataEndpoint::start(std::uint16_t port) {
    boost::system::error_code error;
    const tcp::endpoint v4_endpoint(asio::ip::address_v4::loopback(), port);
    v4_.open(tcp::v4(), error);
    if (!error) v4_.set_option(tcp::acceptor::reuse_address(true), error);
    if (!error) v4_.bind(v4_endpoint, error);
    if (!error) v4_.listen(asio::socket_base::max_listen_connections, error);
    if (error) return error;
    port_ = v4_.local_endpoint().port();
    v6_.emplace(executor_);
    boost::system::error_code v6_error;
    v6_->open(tcp::v6(), v6_error);
    if (!v6_error) v6_->set_option(asio::ip::v6_only(true), v6_error);
    if (!v6_error) v6_->set_option(tcp::acceptor::reuse_address(true), v6_error);
    if (!v6_error) v6_->bind(tcp::endpoint(asio::ip::address_v6::loopback(), port_), v6_error);
    if (!v6_error) v6_->listen(asio::socket_base::max_listen_connections, v6_error);
    if (v6_error) {
        SLMD_WARN("data endpoint: no [::1]:{} ({}); IPv6 apps will not reach slmd", port_, v6_error.message());
        v6_.reset();
    }
    accept_loop(v4_);
    if (v6_) accept_loop(*v6_);
    SLMD_INFO("data endpoint on 127.0.0.1:{}{}", port_, v6_ ? " and [::1]" : "");
    return {};
}

void DataEndpoint::stop() {
    boost::system::error_code ignored;
    v4_.close(ignored);
    if (v6_) v6_->close(ignored);
    for (auto& weak : unauthenticated_) {
        if (auto socket = weak.lock()) socket->close(ignored);
    }
    unauthenticated_.clear();
}

void DataEndpoint::accept_loop(tcp::acceptor& acceptor) {
    acceptor.async_accept([this, alive = alive_, &acceptor](boost::system::error_code error, tcp::socket socket) {
        if (!*alive || error == asio::error::operation_aborted) return;
        if (!error) read_credential(std::move(socket));
        accept_loop(acceptor);
    });
}

void DataEndpoint::read_credential(tcp::socket socket) {
    struct Pending {
        explicit Pending(tcp::socket s, asio::any_io_executor executor)
            : socket(std::make_shared<tcp::socket>(std::move(s))), timer(executor) {}
        std::shared_ptr<tcp::socket> socket;
        asio::steady_timer timer;
        std::array<std::uint8_t, wire::credential_size> credential{};
    };
    auto pending = std::make_shared<Pending>(std::move(socket), executor_);
    std::erase_if(unauthenticated_, [](const auto& weak) { return weak.expired(); });
    unauthenticated_.push_back(pending->socket);
    pending->timer.expires_after(credential_timeout);
    pending->timer.async_wait([pending](boost::system::error_code error) {
        if (!error) pending->socket->close(error);
    });
    asio::async_read(*pending->socket, asio::buffer(pending->credential),
                     [this, alive = alive_, pending](boost::system::error_code error, std::size_t) {
                         pending->timer.cancel();
                         if (!*alive || error) return;
                         auto decoded = wire::decode_credential(pending->credential);
                         if (!decoded) return;
                         flows_.attach(std::move(*pending->socket), decoded->first, decoded->second);
                     });
}

}  // namespace slmd::api
