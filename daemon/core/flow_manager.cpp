// Owns: flow lifecycle and relaying (see flow_manager.hpp).
#include "core/flow_manager.hpp"

#include <arpa/inet.h>
#include <sys/random.h>

#include <boost/asio/write.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "net/socket_table.hpp"
#include "sys/log.hpp"

namespace slmd::core {

namespace asio = boost::asio;
namespace wire = slmsock::wire;
using tcp = asio::ip::tcp;

enum class Phase { waiting, connecting, connected, finished };

struct FlowManager::Flow {
    explicit Flow(asio::any_io_executor executor)
        : deadline(executor), attach_deadline(executor), linger(executor), half_close_check(executor) {}

    std::uint64_t id = 0;
    wire::Token token{};
    wire::Address destination;
    std::uint16_t port = 0;
    std::string host;  // numeric text
    Phase phase = Phase::waiting;
    int error = 0;  // errno of a failed or reset flow
    std::chrono::steady_clock::time_point connect_by;
    ConnectReplyHandler pending_reply;
    std::uint16_t data_port = 0;

    std::optional<tcp::socket> app;
    std::uint16_t app_port = 0;
    bool attached = false;

    modem::ConnectionId connection = 0;
    bool modem_open = false;
    bool peer_closed = false;

    std::deque<std::string> downlink;
    std::size_t downlink_bytes = 0;
    bool writing = false;
    bool receive_paused = false;

    std::array<char, 4096> read_buffer{};
    bool reading = false;
    bool app_eof = false;
    bool app_shut_write = false;

    asio::steady_timer deadline;
    asio::steady_timer attach_deadline;
    asio::steady_timer linger;
    asio::steady_timer half_close_check;
};

namespace {

wire::Token random_token() {
    wire::Token token{};
    std::size_t filled = 0;
    while (filled < token.size()) {
        ssize_t n = getrandom(token.data() + filled, token.size() - filled, 0);
        if (n > 0) filled += static_cast<std::size_t>(n);
    }
    return token;
}

std::string address_text(const wire::Address& address) {
    char text[INET6_ADDRSTRLEN] = {};
    const int family = address.family == wire::Family::ipv6 ? AF_INET6 : AF_INET;
    inet_ntop(family, address.bytes.data(), text, sizeof text);
    return text;
}

}  // namespace

FlowManager::FlowManager(asio::any_io_executor executor, modem::ModemDriver& driver, FlowOptions options)
    : executor_(executor), driver_(driver), options_(options) {
    driver_.set_capacity_listener([this, alive = alive_] {
        if (*alive) schedule();
    });
}

FlowManager::~FlowManager() {
    *alive_ = false;
    driver_.set_capacity_listener({});
}

void FlowManager::connect(const wire::ConnectRequest& request, std::uint16_t data_port, ConnectReplyHandler reply) {
    wire::ConnectReply answer;
    answer.route = wire::Route::modem;
    if (request.transport != wire::Transport::tcp) {
        answer.status = -EPROTONOSUPPORT;
        reply(answer);
        return;
    }
    if (request.destination.family != wire::Family::ipv4 && request.destination.family != wire::Family::ipv6) {
        answer.status = -EAFNOSUPPORT;
        reply(answer);
        return;
    }
    if (!driver_.serving()) {
        answer.status = -ENETDOWN;
        reply(answer);
        return;
    }
    if (driver_.tcp_available() == 0 && waiting_.size() >= options_.max_waiting) {
        ++counters_.refused_busy;
        answer.status = -EBUSY;
        reply(answer);
        return;
    }
    auto flow = std::make_shared<Flow>(executor_);
    flow->id = next_id_++;
    flow->token = random_token();
    flow->destination = request.destination;
    flow->port = request.port;
    flow->host = address_text(request.destination);
    flow->data_port = data_port;
    const auto timeout = request.timeout_ms ? std::chrono::milliseconds(request.timeout_ms)
                                            : options_.default_connect_timeout;
    flow->connect_by = std::chrono::steady_clock::now() + timeout;
    flows_[flow->id] = flow;
    waiting_.push_back(flow);
    ++counters_.opened;
    SLMD_INFO("flow {}: connect to {}:{}{}", flow->id, flow->host, flow->port,
              request.nonblocking ? " (non-blocking)" : "");

    std::weak_ptr<Flow> weak = flow;
    flow->deadline.expires_at(flow->connect_by);
    flow->deadline.async_wait([this, alive = alive_, weak](boost::system::error_code error) {
        auto flow = weak.lock();
        if (!*alive || error || !flow || flow->phase != Phase::waiting) return;
        fail(flow, ETIMEDOUT);
    });
    flow->attach_deadline.expires_after(timeout + options_.attach_timeout);
    flow->attach_deadline.async_wait([this, alive = alive_, weak](boost::system::error_code error) {
        auto flow = weak.lock();
        if (!*alive || error || !flow || flow->attached || flow->phase == Phase::finished) return;
        SLMD_WARN("flow {}: the app never attached; closing", flow->id);
        finish(flow);
    });

    answer.flow_id = flow->id;
    answer.token = flow->token;
    answer.data_port = data_port;
    if (request.nonblocking) {
        answer.status = -EINPROGRESS;
        reply(answer);
    } else {
        flow->pending_reply = std::move(reply);
    }
    schedule();
}

void FlowManager::schedule() {
    while (driver_.tcp_available() > 0 && !waiting_.empty()) {
        auto flow = waiting_.front();
        waiting_.pop_front();
        if (flow->phase != Phase::waiting) continue;
        start_connect(flow);
    }
}

void FlowManager::start_connect(const FlowPtr& flow) {
    flow->phase = Phase::connecting;
    flow->deadline.cancel();
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(flow->connect_by -
                                                                            std::chrono::steady_clock::now());
    std::weak_ptr<Flow> weak = flow;
    modem::TcpConnectionEvents events{
        .data =
            [this, alive = alive_, weak](std::string_view bytes) {
                auto flow = weak.lock();
                if (!*alive || !flow) return;
                counters_.bytes_down += bytes.size();
                if (flow->phase == Phase::finished || (flow->attached && !flow->app)) {
                    counters_.dropped_down_app_gone += bytes.size();
                    return;
                }
                flow->downlink.emplace_back(bytes);
                flow->downlink_bytes += bytes.size();
                if (flow->downlink_bytes > options_.downlink_limit && !flow->receive_paused) {
                    flow->receive_paused = true;
                    driver_.pause_receive(true);
                }
                write_downlink(flow);
            },
        .closed =
            [this, alive = alive_, weak](modem::CloseReason reason, int error) {
                auto flow = weak.lock();
                if (!*alive || !flow) return;
                on_modem_closed(flow, reason, error);
            },
    };
    driver_.tcp_connect({flow->host, flow->port, flow->destination.family == wire::Family::ipv6},
                        std::max(left, std::chrono::milliseconds(1000)), std::move(events),
                        [this, alive = alive_, weak](int error, modem::ConnectionId id) {
                            auto flow = weak.lock();
                            if (!*alive) return;
                            if (!flow) return;
                            if (error) {
                                fail(flow, error);
                                return;
                            }
                            flow->connection = id;
                            flow->modem_open = true;
                            on_connected(flow);
                        });
}

void FlowManager::on_connected(const FlowPtr& flow) {
    if (flow->phase == Phase::finished) {
        // Abandoned while connecting (the app went away): release the modem connection.
        driver_.tcp_close(flow->connection);
        return;
    }
    flow->phase = Phase::connected;
    SLMD_INFO("flow {}: connected", flow->id);
    if (flow->pending_reply) {
        wire::ConnectReply answer;
        answer.status = 0;
        answer.route = wire::Route::modem;
        answer.flow_id = flow->id;
        answer.token = flow->token;
        answer.data_port = flow->data_port;
        auto reply = std::move(flow->pending_reply);
        flow->pending_reply = nullptr;
        reply(answer);
    }
    read_uplink(flow);
    write_downlink(flow);
}

void FlowManager::fail(const FlowPtr& flow, int error) {
    if (flow->phase == Phase::finished) return;
    ++counters_.failed;
    flow->error = error;
    SLMD_INFO("flow {}: failed: {}", flow->id, std::strerror(error));
    if (flow->pending_reply) {
        wire::ConnectReply answer;
        answer.status = -error;
        answer.route = wire::Route::modem;
        answer.flow_id = flow->id;
        auto reply = std::move(flow->pending_reply);
        flow->pending_reply = nullptr;
        reply(answer);
    }
    // A non-blocking app already holds a connected socket: a reset tells it, and SO_ERROR names the cause.
    if (flow->app) {
        reset_app(flow);
    } else {
        finish(flow);
    }
}

void FlowManager::attach(tcp::socket socket, std::uint64_t flow_id, const wire::Token& token) {
    auto it = flows_.find(flow_id);
    if (it == flows_.end() || it->second->token != token || it->second->attached) {
        SLMD_WARN("data connection with an unknown or used credential; refused");
        boost::system::error_code ignored;
        socket.set_option(asio::socket_base::linger(true, 0), ignored);
        socket.close(ignored);
        return;
    }
    auto flow = it->second;
    flow->attached = true;
    flow->attach_deadline.cancel();
    boost::system::error_code error;
    auto remote = socket.remote_endpoint(error);
    flow->app_port = error ? 0 : remote.port();
    flow->app.emplace(std::move(socket));
    if (flow->phase == Phase::finished) {
        reset_app(flow);
        return;
    }
    if (flow->phase == Phase::connected) {
        read_uplink(flow);
        write_downlink(flow);
    }
}

void FlowManager::read_uplink(const FlowPtr& flow) {
    if (flow->reading || flow->app_eof || !flow->app || flow->phase != Phase::connected) return;
    flow->reading = true;
    std::weak_ptr<Flow> weak = flow;
    flow->app->async_read_some(
        asio::buffer(flow->read_buffer.data(), std::min(options_.uplink_chunk, flow->read_buffer.size())),
        [this, alive = alive_, weak](boost::system::error_code error, std::size_t n) {
            auto flow = weak.lock();
            if (!*alive || !flow) return;
            if (error == asio::error::operation_aborted) {
                flow->reading = false;
                return;
            }
            if (error || n == 0) {
                flow->reading = false;
                if (error && error != asio::error::eof) flow->app_shut_write = false;  // reset: a full close
                app_finished_sending(flow);
                return;
            }
            if (flow->peer_closed || !flow->modem_open) {
                // The peer is gone; these bytes cannot be delivered, so the app must hear it.
                flow->reading = false;
                counters_.dropped_up_peer_gone += n;
                reset_app(flow);
                return;
            }
            counters_.bytes_up += n;
            driver_.tcp_send(flow->connection, std::string(flow->read_buffer.data(), n),
                             [this, alive, weak](int send_error) {
                                 auto flow = weak.lock();
                                 if (!*alive || !flow) return;
                                 flow->reading = false;
                                 if (send_error) {
                                     if (!flow->peer_closed) reset_app(flow);
                                     return;
                                 }
                                 read_uplink(flow);
                             });
        });
}

void FlowManager::app_finished_sending(const FlowPtr& flow) {
    flow->app_eof = true;
    if (flow->app_shut_write && !flow->peer_closed) {
        // shutdown(SHUT_WR): SLM cannot send a FIN on its own, so the peer is not told; the app keeps reading.
        // Its later close() shows nowhere on our socket, so watch the kernel's table for it.
        watch_half_closed_app(flow);
        return;
    }
    if (flow->modem_open) {
        driver_.tcp_close(flow->connection);  // closed(local_close) follows
        return;
    }
    finish(flow);
}

void FlowManager::watch_half_closed_app(const FlowPtr& flow) {
    std::weak_ptr<Flow> weak = flow;
    flow->half_close_check.expires_after(options_.half_close_poll);
    flow->half_close_check.async_wait([this, alive = alive_, weak](boost::system::error_code error) {
        auto flow = weak.lock();
        if (!*alive || error || !flow || flow->phase == Phase::finished || !flow->app) return;
        if (net::app_socket_owned(flow->app_port, flow->data_port)) {
            watch_half_closed_app(flow);
            return;
        }
        SLMD_INFO("flow {}: the app closed its half-closed socket", flow->id);
        flow->app_shut_write = false;
        app_finished_sending(flow);
    });
}

void FlowManager::write_downlink(const FlowPtr& flow) {
    if (flow->writing || !flow->app) return;
    if (flow->downlink.empty()) {
        if (flow->peer_closed && flow->phase != Phase::finished) {
            boost::system::error_code ignored;
            flow->app->shutdown(tcp::socket::shutdown_send, ignored);  // EOF for the app
            if (flow->app_eof) finish(flow);
        }
        return;
    }
    flow->writing = true;
    std::weak_ptr<Flow> weak = flow;
    asio::async_write(*flow->app, asio::buffer(flow->downlink.front()),
                      [this, alive = alive_, weak](boost::system::error_code error, std::size_t n) {
                          auto flow = weak.lock();
                          if (!*alive || !flow) return;
                          flow->writing = false;
                          if (error) {
                              if (error == asio::error::operation_aborted) return;
                              counters_.dropped_down_app_gone += flow->downlink_bytes;
                              flow->downlink.clear();
                              flow->downlink_bytes = 0;
                              flow->app_shut_write = false;
                              app_finished_sending(flow);
                              return;
                          }
                          flow->downlink_bytes -= n;
                          flow->downlink.pop_front();
                          if (flow->receive_paused && flow->downlink_bytes < options_.downlink_limit / 2) {
                              flow->receive_paused = false;
                              driver_.pause_receive(false);
                          }
                          write_downlink(flow);
                      });
}

void FlowManager::on_modem_closed(const FlowPtr& flow, modem::CloseReason reason, int error) {
    flow->modem_open = false;
    switch (reason) {
        case modem::CloseReason::modem_lost:
            SLMD_WARN("flow {}: modem lost; resetting the app's connection", flow->id);
            flow->error = error ? error : ECONNRESET;
            reset_app(flow);
            break;
        case modem::CloseReason::peer_closed:
            SLMD_INFO("flow {}: peer closed", flow->id);
            flow->peer_closed = true;
            write_downlink(flow);  // delivers what is left, then EOF
            if (!flow->app && flow->attached) finish(flow);
            break;
        case modem::CloseReason::local_close:
            if (flow->app_eof) finish(flow);
            break;
    }
    schedule();
}

void FlowManager::reset_app(const FlowPtr& flow) {
    if (flow->app) {
        boost::system::error_code ignored;
        flow->app->set_option(asio::socket_base::linger(true, 0), ignored);
        flow->app->close(ignored);
        flow->app.reset();
    }
    if (!flow->error) flow->error = ECONNRESET;
    finish(flow);
}

void FlowManager::finish(const FlowPtr& flow) {
    const bool was_finished = flow->phase == Phase::finished;
    flow->phase = Phase::finished;
    flow->deadline.cancel();
    flow->attach_deadline.cancel();
    flow->half_close_check.cancel();
    if (flow->receive_paused) {
        flow->receive_paused = false;
        driver_.pause_receive(false);
    }
    if (flow->modem_open) driver_.tcp_close(flow->connection);
    if (flow->app && flow->app_eof && flow->downlink.empty()) {
        boost::system::error_code ignored;
        flow->app->close(ignored);
        flow->app.reset();
    }
    if (was_finished) return;
    waiting_.erase(std::remove(waiting_.begin(), waiting_.end(), flow), waiting_.end());
    // Keep the record a while so SO_ERROR and getpeername still have an answer, then forget it.
    const auto id = flow->id;
    flow->linger.expires_after(options_.keep_finished);
    flow->linger.async_wait([this, alive = alive_, id](boost::system::error_code error) {
        if (!*alive || error) return;
        auto it = flows_.find(id);
        if (it != flows_.end() && it->second->phase == Phase::finished && !it->second->app) flows_.erase(it);
    });
}

FlowManager::FlowPtr FlowManager::find(std::uint64_t id, std::uint16_t data_local_port) const {
    if (id != 0) {
        auto it = flows_.find(id);
        return it == flows_.end() ? nullptr : it->second;
    }
    if (data_local_port == 0) return nullptr;
    FlowPtr best;
    for (const auto& [flow_id, flow] : flows_) {
        // Ports are reused; the newest flow with this port is the one the app holds now.
        if (flow->app_port == data_local_port) best = flow;
    }
    return best;
}

wire::FlowStatusReply FlowManager::status(const wire::FlowStatusRequest& request) const {
    wire::FlowStatusReply reply;
    auto flow = find(request.flow_id, request.data_local_port);
    if (!flow) {
        reply.state = wire::FlowState::closed;
        reply.error = -ENOTCONN;
        return reply;
    }
    reply.flow_id = flow->id;
    reply.peer = flow->destination;
    reply.peer_port = flow->port;
    switch (flow->phase) {
        case Phase::waiting:
        case Phase::connecting: reply.state = wire::FlowState::connecting; break;
        case Phase::connected: reply.state = wire::FlowState::connected; break;
        case Phase::finished:
            reply.state = flow->error ? wire::FlowState::failed : wire::FlowState::closed;
            reply.error = -flow->error;
            break;
    }
    return reply;
}

wire::ShutdownReply FlowManager::shutdown(const wire::ShutdownRequest& request) {
    wire::ShutdownReply reply;
    auto flow = find(request.flow_id, request.data_local_port);
    if (!flow || flow->phase == Phase::finished) {
        reply.status = -ENOTCONN;
        return reply;
    }
    switch (request.how) {
        case wire::ShutdownHow::read: break;
        case wire::ShutdownHow::write: flow->app_shut_write = true; break;
        case wire::ShutdownHow::both:
            flow->app_shut_write = false;
            if (flow->modem_open) driver_.tcp_close(flow->connection);
            break;
    }
    return reply;
}

void FlowManager::stop() {
    auto flows = flows_;
    for (auto& [id, flow] : flows) {
        flow->modem_open = false;  // the driver is going away with the modem
        if (flow->app) {
            boost::system::error_code ignored;
            flow->app->set_option(asio::socket_base::linger(true, 0), ignored);
            flow->app->close(ignored);
            flow->app.reset();
        }
        flow->deadline.cancel();
        flow->attach_deadline.cancel();
        flow->linger.cancel();
        flow->half_close_check.cancel();
        if (flow->pending_reply) {
            wire::ConnectReply answer;
            answer.status = -ENETDOWN;
            auto reply = std::move(flow->pending_reply);
            flow->pending_reply = nullptr;
            reply(answer);
        }
        flow->phase = Phase::finished;
    }
    waiting_.clear();
}

std::uint32_t FlowManager::active_flows() const {
    std::uint32_t count = 0;
    for (const auto& [id, flow] : flows_) {
        if (flow->phase == Phase::connecting || flow->phase == Phase::connected) ++count;
    }
    return count;
}

}  // namespace slmd::core
