// Owns: the loopback data endpoint (see data_endpoint.hpp).
#include "api/data_endpoint.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/read.hpp>

#include <cerrno>

#include "net/socket_table.hpp"
#include "sys/log.hpp"

namespace slmd::api {

namespace asio = boost::asio;
namespace wire = slmsock::wire;
using tcp = asio::ip::tcp;

namespace {

// Picking a port again when [::1] at the kernel's pick is taken: a few tries, each a fresh ephemeral port.
constexpr int port_attempts = 8;

// Many hostile connections must not flood the journal: the first event and every hundredth after it.

void reset(tcp::socket& socket) {
    boost::system::error_code ignored;
    socket.set_option(asio::socket_base::linger(true, 0), ignored);
    socket.close(ignored);
}

}  // namespace

struct DataEndpoint::Pending {
    Pending(tcp::socket s, asio::any_io_executor executor, net::SocketIdentity owner)
        : socket(std::make_shared<tcp::socket>(std::move(s))), timer(executor), owner(owner) {}
    std::shared_ptr<tcp::socket> socket;
    asio::steady_timer timer;
    net::SocketIdentity owner;
    bool timed_out = false;
    std::array<std::uint8_t, wire::credential_size> credential{};
};

DataEndpoint::DataEndpoint(asio::any_io_executor executor, core::TcpFlowManager& flows, DataEndpointOptions options)
    : executor_(executor), flows_(flows), options_(options), v4_(executor) {
    reserve_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
}

DataEndpoint::~DataEndpoint() {
    lifetime_.end();
    if (reserve_fd_ >= 0) ::close(reserve_fd_);
}

std::error_code DataEndpoint::listen_on(std::uint16_t port) {
    boost::system::error_code error;
    v4_.open(tcp::v4(), error);
    if (!error) v4_.set_option(tcp::acceptor::reuse_address(true), error);
    if (!error) v4_.bind(tcp::endpoint(asio::ip::address_v4::loopback(), port), error);
    if (!error) v4_.listen(asio::socket_base::max_listen_connections, error);
    if (error) return error;
    port_ = v4_.local_endpoint().port();
    v6_.emplace(executor_);
    v6_->open(tcp::v6(), error);
    if (!error) v6_->set_option(asio::ip::v6_only(true), error);
    if (!error) v6_->set_option(tcp::acceptor::reuse_address(true), error);
    if (!error) v6_->bind(tcp::endpoint(asio::ip::address_v6::loopback(), port_), error);
    if (!error) v6_->listen(asio::socket_base::max_listen_connections, error);
    if (!error) return {};
    v6_.reset();
    if (error.value() == EADDRNOTAVAIL || error.value() == EAFNOSUPPORT) {
        // No ::1 on this host: nobody can take it either, and IPv6 apps cannot reach any loopback peer.
        SLMD_WARN("data endpoint: no [::1]:{} ({}); IPv6 apps will not reach slmd", port_, error.message());
        return {};
    }
    boost::system::error_code ignored;
    v4_.close(ignored);
    return error;
}

std::error_code DataEndpoint::start(std::uint16_t port) {
    std::error_code error;
    for (int attempt = 0; attempt < (port == 0 ? port_attempts : 1); ++attempt) {
        error = listen_on(port);
        if (!error) break;
        if (error.value() == EADDRINUSE && port == 0) {
            // Someone holds [::1] at the port the kernel picked for 127.0.0.1: IPv6 apps would give it their
            // credentials and plaintext. Never share the port; pick another.
            SLMD_WARN("data endpoint: [::1]:{} is taken by another process; picking another port", port_);
            continue;
        }
        if (error.value() == EADDRINUSE) {
            SLMD_ERROR("data endpoint: port {} is taken on 127.0.0.1 or [::1] by another process", port);
        }
        return error;
    }
    if (error) return error;
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
    acceptor.async_accept([this, alive = lifetime_.guard(), &acceptor](boost::system::error_code error, tcp::socket socket) {
        if (!*alive || error == asio::error::operation_aborted || !acceptor.is_open()) return;
        if (!error) {
            read_credential(std::move(socket));
            return accept_loop(acceptor);
        }
        if (error == asio::error::no_descriptors || error.value() == ENFILE) refuse_with_reserve(acceptor);
        // Accepting again at once would spin on the same error while nothing frees a descriptor.
        auto pause = std::make_shared<asio::steady_timer>(executor_, std::chrono::milliseconds(10));
        pause->async_wait([this, alive, &acceptor, pause](boost::system::error_code) {
            if (*alive && acceptor.is_open()) accept_loop(acceptor);
        });
    });
}

// Out of descriptors: the connection at the head of the backlog is accepted with the descriptor kept in
// reserve and closed at once, so its app gets a reset now (and its connect() an error through the shim)
// instead of waiting in the backlog for a credential check that cannot happen.
void DataEndpoint::refuse_with_reserve(tcp::acceptor& acceptor) {
    ++counters_.descriptors_exhausted;
    if (sys::worth_logging(counters_.descriptors_exhausted)) {
        SLMD_WARN("data endpoint: out of descriptors; refusing data connections ({} so far)",
                  counters_.descriptors_exhausted);
    }
    if (reserve_fd_ < 0) return;
    pollfd ready{acceptor.native_handle(), POLLIN, 0};
    if (::poll(&ready, 1, 0) != 1) return;  // nothing waiting: accept4 would block
    ::close(reserve_fd_);
    const int refused = ::accept4(acceptor.native_handle(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (refused >= 0) {
        const linger abort{1, 0};
        ::setsockopt(refused, SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
        ::close(refused);
    }
    reserve_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
}

void DataEndpoint::read_credential(tcp::socket socket) {
    // The app's socket is the other end of this connection: its local port is our remote one.
    boost::system::error_code error;
    const auto remote = socket.remote_endpoint(error);
    const auto owner = error ? std::nullopt : net::connection_owner(remote.port(), port_);
    if (!owner) {
        ++counters_.refused_credential;
        SLMD_DEBUG("data endpoint: no owner found for a connection from port {}; refused", remote.port());
        return reset(socket);
    }
    auto& from_uid = waiting_per_uid_[owner->uid];
    if (waiting_ >= options_.max_unauthenticated || from_uid >= options_.max_unauthenticated_per_uid) {
        ++counters_.refused_over_limit;
        if (sys::worth_logging(counters_.refused_over_limit)) {
            SLMD_WARN("data endpoint: {} connections ({} from uid {}) await their credential; refusing more ({} so "
                      "far)",
                      waiting_, from_uid, owner->uid, counters_.refused_over_limit);
        }
        if (from_uid == 0) waiting_per_uid_.erase(owner->uid);
        return reset(socket);
    }
    ++waiting_;
    ++from_uid;
    auto pending = std::make_shared<Pending>(std::move(socket), executor_, *owner);
    std::erase_if(unauthenticated_, [](const auto& weak) { return weak.expired(); });
    unauthenticated_.push_back(pending->socket);
    pending->timer.expires_after(options_.credential_timeout);
    pending->timer.async_wait([pending](boost::system::error_code error) {
        if (error) return;
        pending->timed_out = true;
        reset(*pending->socket);
    });
    // Every path ends in this handler (the timer and stop() close the socket, which completes the read).
    asio::async_read(*pending->socket, asio::buffer(pending->credential),
                     [this, alive = lifetime_.guard(), pending](boost::system::error_code error, std::size_t) {
                         pending->timer.cancel();
                         if (!*alive) return;
                         finished(*pending);
                         if (pending->timed_out) {
                             ++counters_.timed_out;
                             return;
                         }
                         if (error) return;
                         auto decoded = wire::decode_credential(pending->credential);
                         if (!decoded) {
                             ++counters_.refused_credential;
                             return reset(*pending->socket);
                         }
                         if (!flows_.attach(std::move(*pending->socket), decoded->first, decoded->second,
                                            pending->owner)) {
                             ++counters_.refused_credential;
                         }
                     });
}

void DataEndpoint::finished(const Pending& pending) {
    if (waiting_ > 0) --waiting_;
    auto it = waiting_per_uid_.find(pending.owner.uid);
    if (it != waiting_per_uid_.end() && --it->second == 0) waiting_per_uid_.erase(it);
}

}  // namespace slmd::api
