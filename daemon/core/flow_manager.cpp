// Owns: flow lifecycle and relaying (see flow_manager.hpp).
#include "core/flow_manager.hpp"
#include "core/tls_parameters.hpp"

#include <arpa/inet.h>
#include <sys/random.h>

#include <boost/asio/post.hpp>
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

// A port reserved for an app's TCP socket (BindRequest), and the modem server started for it (ListenRequest).
struct FlowManager::Reservation {
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

struct FlowManager::Flow {
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

namespace {

// root may act for anyone; everyone else for their own uid's flows.
bool may_act_for(const Requester& requester, unsigned owner_uid) {
    return requester.uid == 0 || requester.uid == owner_uid;
}

wire::Token random_token() {
    wire::Token token{};
    std::size_t filled = 0;
    while (filled < token.size()) {
        ssize_t n = getrandom(token.data() + filled, token.size() - filled, 0);
        if (n > 0) filled += static_cast<std::size_t>(n);
    }
    return token;
}

tcp::endpoint loopback(wire::Family family, std::uint16_t port) {
    if (family == wire::Family::ipv6) return {asio::ip::address_v6::loopback(), port};
    return {asio::ip::address_v4::loopback(), port};
}

}  // namespace

FlowManager::FlowManager(asio::any_io_executor executor, modem::ModemDriver& driver, FlowOptions options)
    : executor_(executor), driver_(driver), options_(options), socket_poll_(executor), graveyard_(executor) {
    driver_.set_capacity_listener([this, alive = lifetime_.guard()] {
        if (*alive) schedule();
    });
}

FlowManager::~FlowManager() {
    lifetime_.end();
    driver_.set_capacity_listener({});
}

std::uint64_t FlowManager::connect(const wire::ConnectRequest& request, std::uint16_t data_port, ConnectReplyHandler reply,
                          const Requester& requester) {
    wire::ConnectReply answer;
    answer.route = wire::Route::modem;
    if (request.transport != wire::Transport::tcp) {
        answer.status = -EPROTONOSUPPORT;
        reply(answer);
        return 0;
    }
    if (request.destination.family != wire::Family::ipv4 && request.destination.family != wire::Family::ipv6) {
        answer.status = -EAFNOSUPPORT;
        reply(answer);
        return 0;
    }
    if (!driver_.serving()) {
        answer.status = -ENETDOWN;
        reply(answer);
        return 0;
    }
    if (server_) {
        // The firmware runs a TCP client or a TCP server, not both; the server may run for hours.
        ++counters_.refused_busy;
        answer.status = -EBUSY;
        reply(answer);
        return 0;
    }
    if (driver_.tcp_available() == 0 && waiting_.size() >= options_.max_waiting) {
        ++counters_.refused_busy;
        answer.status = -EBUSY;
        reply(answer);
        return 0;
    }
    auto flow = std::make_shared<Flow>(executor_);
    flow->id = next_id_++;
    flow->token = random_token();
    flow->destination = request.destination;
    flow->port = request.port;
    flow->host = address_text(request.destination);
    flow->tls = request.tls;
    flow->data_port = data_port;
    flow->requester = requester;
    flow->socket_inode = request.socket_inode;
    const auto timeout = request.timeout_ms ? std::chrono::milliseconds(request.timeout_ms)
                                            : options_.default_connect_timeout;
    flow->connect_by = std::chrono::steady_clock::now() + timeout;
    flows_[flow->id] = flow;
    waiting_.push_back(flow);
    update_receive_pause();  // a waiting flow needs the link read: a slow app's connection may be ending
    ++counters_.opened;
    SLMD_INFO("flow {}: connect to {}:{}{}{}", flow->id, flow->host, flow->port,
              request.tls ? " with TLS by the modem (sec_tag " + std::to_string(request.tls->sec_tag) + ")" : "",
              request.nonblocking ? " (non-blocking)" : "");

    std::weak_ptr<Flow> weak = flow;
    flow->deadline.expires_at(flow->connect_by);
    flow->deadline.async_wait([this, alive = lifetime_.guard(), weak](boost::system::error_code error) {
        auto flow = weak.lock();
        if (!*alive || error || !flow || flow->phase != Phase::waiting) return;
        fail(flow, ETIMEDOUT);
    });
    answer.flow_id = flow->id;
    answer.token = flow->token;
    answer.data_port = data_port;
    if (driver_.tcp_available() == 0) {
        // Say why a connect does not go out at once: an app that seems to hang is queued behind another flow.
        SLMD_INFO("flow {}: waits for a modem TCP connection ({} in use, {} flows queued ahead)", flow->id,
                  active_flows(), waiting_.size() - 1);
    }
    if (request.nonblocking) {
        answer.status = -EINPROGRESS;
        reply(answer);
        expect_attach(flow);
        schedule();
        return 0;
    }
    flow->pending_reply = std::move(reply);
    schedule();
    return flow->pending_reply ? flow->id : 0;
}

void FlowManager::abandon_unanswered(std::uint64_t flow_id) {
    auto it = flows_.find(flow_id);
    if (it == flows_.end() || !it->second->pending_reply) return;
    abandon(it->second, "its API connection closed");
}

// The app will never use this flow: it must not wait for (or keep) the modem's connection. A flow still
// queued leaves the queue; one the modem is connecting is closed as soon as the modem answers (on_connected).
void FlowManager::abandon(const FlowPtr& flow, const char* why) {
    if (flow->phase != Phase::waiting && flow->phase != Phase::connecting) return;
    SLMD_INFO("flow {}: the app gave up ({}) while {}; dropped", flow->id, why,
              flow->phase == Phase::waiting ? "queued for a modem connection" : "the modem was connecting");
    ++counters_.abandoned;
    flow->pending_reply = nullptr;  // nobody to answer; releases the API session
    flow->error = ECANCELED;
    if (flow->app) {
        reset_app(flow);
    } else {
        finish(flow);
    }
    schedule();
}

// A non-blocking app holds its data connection while the modem connects. If it closes that socket (the
// program was stopped, timed out), the flow is abandoned. Readable data means the app wrote early: it is
// read once connected, and the close check ends here.
void FlowManager::watch_for_abandonment(const FlowPtr& flow) {
    if (!flow->app || (flow->phase != Phase::waiting && flow->phase != Phase::connecting)) return;
    std::weak_ptr<Flow> weak = flow;
    flow->app->async_wait(tcp::socket::wait_read, [this, alive = lifetime_.guard(), weak](boost::system::error_code error) {
        auto flow = weak.lock();
        if (!*alive || error || !flow || !flow->app) return;
        if (flow->phase != Phase::waiting && flow->phase != Phase::connecting) return;
        char byte = 0;
        const ssize_t n = ::recv(flow->app->native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n > 0) return;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return watch_for_abandonment(flow);
        // End of file or a reset. A shutdown(SHUT_WR) keeps the socket owned: that app still wants the flow.
        if (n == 0 && net::app_socket_owned(flow->app_port, flow->data_port)) return;
        abandon(flow, n == 0 ? "closed its socket" : "reset its socket");
    });
}



void FlowManager::schedule() {
    if (deferred_listen_ && driver_.tcp_available() > 0) {
        auto deferred = std::move(*deferred_listen_);
        deferred_listen_.reset();
        if (driver_.serving()) {
            start_listen(deferred.reservation, std::move(deferred.reply));
        } else {
            deferred.reply(wire::ListenReply{-ENETDOWN});
        }
    }
    while (driver_.tcp_available() > 0 && !waiting_.empty()) {
        auto flow = waiting_.front();
        waiting_.pop_front();
        if (flow->phase != Phase::waiting) continue;
        start_connect(flow);
    }
    update_receive_pause();
}

// The modem link is paused for the flows holding more than this; they stop asking below half of it.
std::size_t FlowManager::pause_threshold() const {
    return std::min(options_.downlink_limit, options_.slow_reader_limit / 2);
}

// Asks the driver to pause while a flow holds too much for its app, unless connects are waiting (they need
// the link read: the slow app's connection may be ending, or must be reset to free the slot). The driver
// itself keeps reading while anything else needs the link; a slow app is then bounded by slow_reader_limit.
void FlowManager::update_receive_pause() {
    bool want = false;
    const bool connects_waiting = std::any_of(waiting_.begin(), waiting_.end(),
                                              [](const FlowPtr& flow) { return flow->phase == Phase::waiting; });
    if (!connects_waiting) {
        for (const auto& [id, flow] : flows_) {
            // A flow whose modem connection is gone gets no more bytes: pausing would only hold up the rest.
            if (flow->receive_paused && flow->modem_open && flow->phase != Phase::finished) want = true;
        }
    }
    if (want == pause_requested_) return;
    pause_requested_ = want;
    driver_.pause_receive(want);
}

// The app left slow_reader_limit bytes unread while the link could not be paused for it. Holding more would
// make its memory unbounded; stopping the link would stall everyone else. Its connection is reset: the app
// reads what reached its socket, then ECONNRESET (never a clean end of file), and the modem connection closes.
void FlowManager::reset_slow_reader(const FlowPtr& flow) {
    flow->slow_reset = true;
    ++counters_.reset_slow_reader;
    SLMD_WARN("flow {}: the app left {} bytes unread while the modem link is needed by others "
              "(slow-reader-limit {}); resetting its connection",
              flow->id, flow->downlink_bytes, options_.slow_reader_limit);
    // Not from inside the driver's data event: closing the modem connection is a driver call.
    std::weak_ptr<Flow> weak = flow;
    asio::post(executor_, [this, alive = lifetime_.guard(), weak] {
        auto flow = weak.lock();
        if (!*alive || !flow || flow->phase == Phase::finished) return;
        // The chunk being written stays until its write completes (the write refers to it).
        const std::size_t keep = flow->writing && !flow->downlink.empty() ? 1 : 0;
        while (flow->downlink.size() > keep) {
            counters_.dropped_down_slow_reader += flow->downlink.back().bytes.size();
            flow->downlink_bytes -= flow->downlink.back().bytes.size();
            flow->downlink.pop_back();
        }
        flow->error = ECONNRESET;
        reset_app(flow);
    });
}

void FlowManager::start_connect(const FlowPtr& flow) {
    flow->phase = Phase::connecting;
    flow->deadline.cancel();
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(flow->connect_by -
                                                                            std::chrono::steady_clock::now());
    std::weak_ptr<Flow> weak = flow;
    driver_.tcp_connect(modem_endpoint(flow->host, flow->port, flow->destination.family == wire::Family::ipv6, flow->tls),
                        std::max(left, std::chrono::milliseconds(1000)), connection_events(flow),
                        [this, alive = lifetime_.guard(), weak](int error, modem::ConnectionId id) {
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

// What the driver reports for one modem connection, client or server peer: bytes toward the app (buffered
// up to downlink_limit, then the modem is paused) and the connection's end.
modem::TcpConnectionEvents FlowManager::connection_events(const FlowPtr& flow) {
    std::weak_ptr<Flow> weak = flow;
    return modem::TcpConnectionEvents{
        .data =
            [this, alive = lifetime_.guard(), weak](std::string_view bytes) {
                auto flow = weak.lock();
                if (!*alive || !flow) return;
                counters_.bytes_down += bytes.size();
                flow->bytes_down += bytes.size();
                flow->last_peer_bytes_or_shutdown = std::chrono::steady_clock::now();
                if (auto server = flow->server.lock()) server->bytes_down += bytes.size();
                if (flow->phase == Phase::finished || (flow->attached && !flow->app)) {
                    counters_.dropped_down_app_gone += bytes.size();
                    return;
                }
                if (flow->slow_reset) {
                    counters_.dropped_down_slow_reader += bytes.size();
                    return;
                }
                flow->downlink.push_back({std::string(bytes), std::chrono::steady_clock::now()});
                flow->downlink_bytes += bytes.size();
                if (flow->downlink_bytes > options_.slow_reader_limit) {
                    reset_slow_reader(flow);
                    return;
                }
                if (flow->downlink_bytes > pause_threshold() && !flow->receive_paused) {
                    SLMD_DEBUG("flow {}: the app is not reading; {} bytes wait for it, asking the modem to pause",
                               flow->id, flow->downlink_bytes);
                    flow->receive_paused = true;
                    update_receive_pause();
                }
                write_downlink(flow);
            },
        .closed =
            [this, alive = lifetime_.guard(), weak](modem::CloseReason reason, int error) {
                auto flow = weak.lock();
                if (!*alive || !flow) return;
                on_modem_closed(flow, reason, error);
            },
    };
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
        expect_attach(flow);
    }
    read_uplink(flow);
    write_downlink(flow);
}

// The app attaches right after the reply that carries the credential; a program that died in between (or
// never meant to) must not keep its place in the queue or the modem's connection.
void FlowManager::expect_attach(const FlowPtr& flow) {
    if (flow->attached) return;
    std::weak_ptr<Flow> weak = flow;
    flow->attach_deadline.expires_after(options_.attach_timeout);
    flow->attach_deadline.async_wait([this, alive = lifetime_.guard(), weak](boost::system::error_code error) {
        auto flow = weak.lock();
        if (!*alive || error || !flow || flow->attached || flow->phase == Phase::finished) return;
        SLMD_WARN("flow {}: the app never attached; closing", flow->id);
        if (flow->phase == Phase::waiting || flow->phase == Phase::connecting) ++counters_.abandoned;
        finish(flow);
        schedule();
    });
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

bool FlowManager::attach(tcp::socket socket, std::uint64_t flow_id, const wire::Token& token,
                         const net::SocketIdentity& owner) {
    auto refuse = [&socket] {
        boost::system::error_code ignored;
        socket.set_option(asio::socket_base::linger(true, 0), ignored);
        socket.close(ignored);
        return false;
    };
    auto it = flows_.find(flow_id);
    if (it == flows_.end() || it->second->token != token || it->second->attached) {
        SLMD_WARN("data connection with an unknown or used credential (from uid {}); refused", owner.uid);
        return refuse();
    }
    auto flow = it->second;
    // The credential travelled to a loopback port; whoever else learnt it (a process holding [::1] at that
    // port, say) must not get the connection. Only the requester's own socket may present it.
    // An orphaned socket (inode 0) of the requester's uid is the app's own socket closed right after it sent
    // the credential (the program was killed before slmd accepted): nobody can read from it, so it is taken,
    // and the flow ends as abandoned rather than waiting for the attach deadline.
    const bool orphaned = owner.inode == 0;
    if (owner.uid != flow->requester.uid ||
        (!orphaned && flow->socket_inode != 0 && owner.inode != flow->socket_inode)) {
        SLMD_WARN("flow {}: its credential came from a socket of uid {} (inode {}), not the requester's (uid {}, "
                  "inode {}); refused",
                  flow->id, owner.uid, owner.inode, flow->requester.uid, flow->socket_inode);
        return refuse();
    }
    flow->attached = true;
    flow->attach_deadline.cancel();
    boost::system::error_code error;
    auto remote = socket.remote_endpoint(error);
    flow->app_port = error ? 0 : remote.port();
    flow->app.emplace(std::move(socket));
    if (flow->phase == Phase::finished) {
        reset_app(flow);
        return true;
    }
    if (flow->phase == Phase::connected) {
        read_uplink(flow);
        write_downlink(flow);
    } else {
        watch_for_abandonment(flow);
    }
    return true;
}

void FlowManager::read_uplink(const FlowPtr& flow) {
    if (flow->reading || flow->app_eof || !flow->app || flow->phase != Phase::connected) return;
    flow->reading = true;
    std::weak_ptr<Flow> weak = flow;
    flow->app->async_read_some(
        asio::buffer(flow->read_buffer.data(), std::min(options_.uplink_chunk, flow->read_buffer.size())),
        [this, alive = lifetime_.guard(), weak](boost::system::error_code error, std::size_t n) {
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
            flow->bytes_up += n;
            if (auto server = flow->server.lock()) server->bytes_up += n;
            const auto read_at = std::chrono::steady_clock::now();
            driver_.tcp_send(flow->connection, std::string(flow->read_buffer.data(), n),
                             [this, alive, weak, read_at](int send_error) {
                                 auto flow = weak.lock();
                                 if (!*alive || !flow) return;
                                 flow->reading = false;
                                 if (send_error) {
                                     if (!flow->peer_closed) reset_app(flow);
                                     return;
                                 }
                                 // The sample ends when the chunk's last byte left for the UART.
                                 driver_.when_written([this, alive, read_at] {
                                     if (*alive) uplink_latency_.record(std::chrono::steady_clock::now() - read_at);
                                 });
                                 read_uplink(flow);
                             });
        });
}

void FlowManager::app_finished_sending(const FlowPtr& flow) {
    flow->app_eof = true;
    if (flow->app_shut_write && !flow->peer_closed) {
        // shutdown(SHUT_WR): SLM cannot send a FIN on its own, so the peer is not told; the app keeps reading.
        // Its later close() shows nowhere on our socket, so watch the kernel's table for it.
        flow->last_peer_bytes_or_shutdown = std::chrono::steady_clock::now();
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
    flow->half_close_check.async_wait([this, alive = lifetime_.guard(), weak](boost::system::error_code error) {
        auto flow = weak.lock();
        if (!*alive || error || !flow || flow->phase == Phase::finished || !flow->app) return;
        const bool owned = net::app_socket_owned(flow->app_port, flow->data_port);
        const auto quiet = std::chrono::steady_clock::now() - flow->last_peer_bytes_or_shutdown;
        if (owned && options_.half_close_idle.count() > 0 && quiet >= options_.half_close_idle &&
            flow->modem_open && flow->downlink.empty()) {
            // The peer may be waiting for the end of file the modem could not send (nc -N, a pipe's end): close
            // the whole connection. Its closed(local_close) ends the flow, and the app reads its end of file.
            SLMD_INFO("flow {}: the app half-closed and the peer sent nothing for {} ms; closing the connection",
                      flow->id, std::chrono::duration_cast<std::chrono::milliseconds>(quiet).count());
            ++counters_.half_closed_ended;
            flow->app_shut_write = false;
            driver_.tcp_close(flow->connection);
            return;
        }
        if (owned) {
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
    asio::async_write(*flow->app, asio::buffer(flow->downlink.front().bytes),
                      [this, alive = lifetime_.guard(), weak](boost::system::error_code error, std::size_t n) {
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
                          downlink_latency_.record(std::chrono::steady_clock::now() -
                                                   flow->downlink.front().received);
                          flow->downlink.pop_front();
                          if (flow->receive_paused && flow->downlink_bytes < pause_threshold() / 2) {
                              flow->receive_paused = false;
                              update_receive_pause();
                          }
                          write_downlink(flow);
                      });
}

void FlowManager::on_modem_closed(const FlowPtr& flow, modem::CloseReason reason, int error) {
    flow->modem_open = false;
    // A connection the modem closed gets no more bytes, so its pause request goes now, not when its app has
    // drained: a request left standing would stop the line for everyone once nothing else needed it.
    update_receive_pause();
    switch (reason) {
        case modem::CloseReason::modem_lost:
            SLMD_WARN("flow {}: modem lost; resetting the app's connection", flow->id);
            flow->error = error ? error : ECONNRESET;
            reset_app(flow);
            break;
        case modem::CloseReason::data_lost:
            SLMD_WARN("flow {}: bytes from the modem were lost on the UART; resetting the app's connection after "
                      "the exact bytes it got",
                      flow->id);
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
            if (flow->server_peer && !flow->app_eof && flow->phase != Phase::finished) {
                // A server peer hung up by slmd (the listening socket went away): the app sees the peer close.
                flow->peer_closed = true;
                write_downlink(flow);
                if (!flow->app && flow->attached) finish(flow);
                break;
            }
            if (flow->app_eof) finish(flow);
            break;
    }
    schedule();
}

void FlowManager::reset_app(const FlowPtr& flow) {
    if (flow->app) {
        graveyard_.bury(*flow->app, /*reset=*/true);
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
    if (flow->connecting_app) graveyard_.bury(*flow->connecting_app);
    flow->receive_paused = false;
    if (flow->modem_open) driver_.tcp_close(flow->connection);
    if (flow->app && flow->app_eof && flow->downlink.empty()) {
        graveyard_.bury(*flow->app);
        flow->app.reset();
    }
    if (was_finished) return;
    waiting_.erase(std::remove(waiting_.begin(), waiting_.end(), flow), waiting_.end());
    update_receive_pause();
    // Keep the record a while so SO_ERROR and getpeername still have an answer, then forget it.
    const auto id = flow->id;
    flow->linger.expires_after(options_.keep_finished);
    flow->linger.async_wait([this, alive = lifetime_.guard(), id](boost::system::error_code error) {
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

wire::FlowStatusReply FlowManager::status(const wire::FlowStatusRequest& request,
                                          const Requester& requester) const {
    wire::FlowStatusReply reply;
    auto flow = find(request.flow_id, request.data_local_port);
    if (flow && !may_act_for(requester, flow->requester.uid)) {
        SLMD_NOTICE("flow {}: uid {} asked for the status of uid {}'s connection; answered as unknown", flow->id,
                    requester.uid, flow->requester.uid);
        flow = nullptr;
    }
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

wire::ShutdownReply FlowManager::shutdown(const wire::ShutdownRequest& request, const Requester& requester) {
    wire::ShutdownReply reply;
    auto flow = find(request.flow_id, request.data_local_port);
    if (flow && !may_act_for(requester, flow->requester.uid)) {
        SLMD_NOTICE("flow {}: uid {} tried to shut down uid {}'s connection; answered as unknown", flow->id,
                    requester.uid, flow->requester.uid);
        flow = nullptr;
    }
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
    socket_poll_.cancel();
    if (deferred_listen_) {
        auto deferred = std::move(*deferred_listen_);
        deferred_listen_.reset();
        deferred.reply(wire::ListenReply{-ENETDOWN});
    }
    server_.reset();
    reservations_.clear();
    boost::system::error_code ignored_error;
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
        if (flow->connecting_app) flow->connecting_app->close(ignored_error);
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
    graveyard_.close_all();
}

std::uint32_t FlowManager::active_flows() const {
    std::uint32_t count = 0;
    for (const auto& [id, flow] : flows_) {
        if (flow->phase == Phase::connecting || flow->phase == Phase::connected) ++count;
    }
    return count;
}

// The modem's TCP server --------------------------------------------------------------------------------------

wire::BindReply FlowManager::bind(const wire::BindRequest& request, const Requester& requester) {
    wire::BindReply reply;
    if (request.transport != wire::Transport::tcp) {
        reply.status = -EPROTONOSUPPORT;
        return reply;
    }
    if (request.family != wire::Family::ipv4 && request.family != wire::Family::ipv6) {
        reply.status = -EAFNOSUPPORT;
        return reply;
    }
    if (request.app_port == 0 || request.modem_port == 0) {
        reply.status = -EINVAL;
        return reply;
    }
    // A bound TCP socket that does not listen yet is in no /proc table: the owner is checked when it is there
    // (an earlier listen()), and otherwise against the reservation's requester.
    if (auto owner = net::socket_owner(net::SocketKind::tcp_listener, request.family, request.app_port)) {
        if (int error = check_owner(requester, owner)) {
            reply.status = error;
            return reply;
        }
    }
    const std::pair key{request.family, request.app_port};
    if (auto it = reservations_.find(key); it != reservations_.end()) {
        auto& existing = it->second;
        if (requester.uid != 0 && existing->requester.uid != requester.uid && reservation_live(*existing)) {
            reply.status = -EPERM;
            return reply;
        }
        if (existing->state != Reservation::State::reserved && existing->modem_port != request.modem_port) {
            reply.status = -EINVAL;  // already serving another port
            return reply;
        }
    }
    for (auto it = reservations_.begin(); it != reservations_.end();) {
        auto other = it++->second;
        if (other->modem_port != request.modem_port || (other->family == request.family &&
                                                        other->app_port == request.app_port)) {
            continue;
        }
        if (reservation_live(*other)) {
            reply.status = -EADDRINUSE;
            return reply;
        }
        drop_reservation(other);
    }
    auto& reservation = reservations_[key];
    if (!reservation) {
        reservation = std::make_shared<Reservation>();
        reservation->family = request.family;
        reservation->app_port = request.app_port;
    }
    reservation->modem_port = request.modem_port;
    reservation->requester = requester;
    SLMD_INFO("tcp server: modem port {} reserved for loopback port {}", request.modem_port, request.app_port);
    watch_sockets();
    return reply;
}

void FlowManager::listen(const wire::ListenRequest& request, const Requester& requester, ListenReplyHandler reply) {
    auto it = reservations_.find({request.family, request.app_port});
    if (it == reservations_.end()) {
        reply(wire::ListenReply{-ENOENT});
        return;
    }
    auto reservation = it->second;
    const auto listening = net::socket_identity(net::SocketKind::tcp_listener, request.family, request.app_port);
    const auto owner = listening ? std::optional<unsigned>(listening->uid) : std::nullopt;
    if ((requester.uid != 0 && reservation->requester.uid != requester.uid) ||
        (owner && check_owner(requester, owner) != 0)) {
        reply(wire::ListenReply{-EPERM});
        return;
    }
    if (listening) reservation->listening_socket = listening;
    if (server_ == reservation) {
        reply(wire::ListenReply{0});  // listen() again on a listening socket changes the backlog only
        return;
    }
    if (server_ && !reservation_live(*server_)) {
        // The previous server's socket closed since the last poll (a program that restarts its server):
        // release the modem's server now rather than answer EBUSY until the poll notices. (A copy: dropping it
        // resets server_.)
        const auto previous = server_;
        drop_reservation(previous);
    }
    if (server_ || active_flows() > 0 || !waiting_.empty() || deferred_listen_) {
        // The firmware's one TCP proxy runs a client or a server, not both at once.
        ++counters_.refused_busy;
        reply(wire::ListenReply{-EBUSY});
        return;
    }
    if (!driver_.serving()) {
        reply(wire::ListenReply{-ENETDOWN});
        return;
    }
    if (driver_.tcp_available() == 0) {
        // Nothing of slmd's holds the proxy any more: a server or connection is being closed on the modem. The
        // listen starts as soon as that answers (schedule()).
        SLMD_INFO("tcp server: modem port {} starts once the modem's TCP proxy is free", reservation->modem_port);
        deferred_listen_ = DeferredListen{reservation, std::move(reply)};
        return;
    }
    start_listen(reservation, std::move(reply));
}

void FlowManager::start_listen(const ReservationPtr& reservation, ListenReplyHandler reply) {
    if (reservation->gone) {
        reply(wire::ListenReply{-ECONNABORTED});  // its socket closed while the listen waited
        return;
    }
    server_ = reservation;
    reservation->state = Reservation::State::starting;
    reservation->bytes_up = reservation->bytes_down = 0;
    std::weak_ptr<Reservation> weak = reservation;
    modem::TcpListenerEvents events{
        .incoming =
            [this, alive = lifetime_.guard(), weak](modem::ConnectionId id, const std::string& peer) {
                auto server = weak.lock();
                if (!*alive || !server) return modem::TcpConnectionEvents{};
                return on_incoming(server, id, peer);
            },
        .stopped =
            [this, alive = lifetime_.guard(), weak](int error) {
                auto server = weak.lock();
                if (!*alive || !server) return;
                SLMD_WARN("tcp server: modem port {} stopped: {}", server->modem_port,
                          error ? std::strerror(error) : "no reason given");
                server->state = Reservation::State::reserved;
                if (server_ == server) server_.reset();
                schedule();
            },
    };
    driver_.tcp_listen(reservation->modem_port, reservation->family == wire::Family::ipv6, std::move(events),
                       [this, alive = lifetime_.guard(), reservation, reply](int error, modem::ListenerId id) {
                           if (!*alive) return;
                           if (error) {
                               SLMD_INFO("tcp server: listening on modem port {} failed: {}",
                                         reservation->modem_port, std::strerror(error));
                               reservation->state = Reservation::State::reserved;
                               if (server_ == reservation) server_.reset();
                               reply(wire::ListenReply{-error});
                               schedule();
                               return;
                           }
                           reservation->listener = id;
                           reservation->state = Reservation::State::listening;
                           if (reservation->gone || server_ != reservation) {
                               // The app's socket went away while the modem was starting.
                               driver_.tcp_stop_listen(id);
                               reply(wire::ListenReply{-ECONNABORTED});
                               return;
                           }
                           SLMD_INFO("tcp server: modem port {} listening for loopback port {}",
                                     reservation->modem_port, reservation->app_port);
                           reply(wire::ListenReply{0});
                       });
}

modem::TcpConnectionEvents FlowManager::on_incoming(const ReservationPtr& server, modem::ConnectionId id,
                                                    const std::string& peer) {
    auto flow = std::make_shared<Flow>(executor_);
    flow->id = next_id_++;
    flow->server_peer = true;
    flow->server = server;
    flow->requester = server->requester;
    flow->destination = parse_address(peer).value_or(unspecified(server->family));
    flow->port = 0;  // the firmware never reports the peer's port
    flow->host = peer;
    flow->phase = Phase::connected;
    flow->connection = id;
    flow->modem_open = true;
    flow->app_port = server->app_port;
    flows_[flow->id] = flow;
    ++counters_.opened;
    auto events = connection_events(flow);
    if (!reservation_live(*server)) {
        // The app's listening socket is gone or is another socket now: the peer is hung up, never handed to
        // whoever listens there (not from inside the driver's event: closing is a driver call).
        SLMD_INFO("flow {}: peer {} on modem port {}, but the app's socket at loopback port {} is gone; hung up",
                  flow->id, peer, server->modem_port, server->app_port);
        ++counters_.server_peers_refused;
        std::weak_ptr<Flow> weak = flow;
        asio::post(executor_, [this, alive = lifetime_.guard(), weak, server] {
            auto flow = weak.lock();
            if (!*alive) return;
            if (flow) {
                flow->error = ECONNREFUSED;
                finish(flow);
            }
            drop_reservation(server);
            schedule();
        });
        return events;
    }
    ++counters_.server_peers_accepted;
    SLMD_INFO("flow {}: peer {} on modem port {}; connecting to loopback port {}", flow->id, peer,
              server->modem_port, server->app_port);
    flow->connecting_app.emplace(executor_);
    std::weak_ptr<Flow> weak = flow;
    flow->connecting_app->async_connect(loopback(server->family, server->app_port),
                                        [this, alive = lifetime_.guard(), weak](boost::system::error_code error) {
                                            auto flow = weak.lock();
                                            if (!*alive || !flow) return;
                                            on_app_connected(flow, error);
                                        });
    return events;
}

void FlowManager::on_app_connected(const FlowPtr& flow, boost::system::error_code error) {
    auto socket = std::move(flow->connecting_app);
    flow->connecting_app.reset();
    if (!socket) return;
    if (!error && flow->phase == Phase::finished) {
        // The modem lost the peer meanwhile: the app must not take a half-dead connection for a live one.
        graveyard_.bury(*socket, /*reset=*/true);
        return;
    }
    if (error) {
        // The app's listening socket refused (closed, backlog full): hang the modem's peer up.
        ++counters_.server_peers_refused;
        SLMD_INFO("flow {}: the app's listening socket refused the peer: {}", flow->id, error.message());
        flow->error = error.value();
        finish(flow);
        return;
    }
    boost::system::error_code ignored;
    flow->data_port = socket->local_endpoint(ignored).port();  // S: the app sees the peer at this port
    flow->attached = true;
    flow->app.emplace(std::move(*socket));
    read_uplink(flow);
    write_downlink(flow);
}

bool FlowManager::reservation_live(const Reservation& reservation) const {
    if (reservation.gone) return false;
    if (reservation.state == Reservation::State::reserved) return net::tcp_port_held(reservation.family, reservation.app_port);
    const auto now = net::socket_identity(net::SocketKind::tcp_listener, reservation.family, reservation.app_port);
    if (reservation.listening_socket) return now == reservation.listening_socket;
    return now.has_value();
}

void FlowManager::drop_reservation(const ReservationPtr& reservation) {
    if (reservation->gone) return;
    reservation->gone = true;
    reservations_.erase({reservation->family, reservation->app_port});
    SLMD_INFO("tcp server: the app's socket at loopback port {} is gone; modem port {} released",
              reservation->app_port, reservation->modem_port);
    if (server_ == reservation) {
        server_.reset();
        // Hangs up the current peer too (its closed(local_close) follows); when still starting, the start's
        // completion stops it.
        if (reservation->state == Reservation::State::listening) driver_.tcp_stop_listen(reservation->listener);
        reservation->state = Reservation::State::reserved;
    }
}

void FlowManager::watch_sockets() {
    if (polling_ || reservations_.empty()) return;
    polling_ = true;
    socket_poll_.expires_after(options_.socket_poll);
    socket_poll_.async_wait([this, alive = lifetime_.guard()](boost::system::error_code error) {
        if (!*alive) return;
        polling_ = false;
        if (error) return;
        std::vector<ReservationPtr> gone;
        for (const auto& [key, reservation] : reservations_) {
            if (!reservation_live(*reservation)) gone.push_back(reservation);
        }
        for (const auto& reservation : gone) drop_reservation(reservation);
        if (!gone.empty()) schedule();
        watch_sockets();
    });
}

wire::LookupReply FlowManager::lookup(const wire::LookupRequest& request) const {
    wire::LookupReply reply;
    reply.local = unspecified(request.family);
    reply.peer = unspecified(request.family);
    auto it = reservations_.find({request.family, request.app_port});
    if (it == reservations_.end()) {
        reply.status = -ENOENT;
        return reply;
    }
    const auto& reservation = it->second;
    if (modem_address_) {
        if (auto address = parse_address(modem_address_(reservation->family))) reply.local = *address;
    }
    reply.local_port = reservation->modem_port;
    if (request.loopback_peer_port != 0) {
        FlowPtr found;
        for (const auto& [id, flow] : flows_) {
            auto server = flow->server.lock();
            if (server == reservation && flow->data_port == request.loopback_peer_port) found = flow;
        }
        if (!found) {
            reply.status = -ENXIO;  // the socket is known, the peer is not: the shim must not take it for a stranger
            return reply;
        }
        reply.peer = found->destination;
        reply.peer_port = 0;  // the firmware never reports it
    }
    return reply;
}

wire::ProxyInfo FlowManager::proxy_info() const {
    wire::ProxyInfo info;
    info.transport = wire::Transport::tcp;
    if (server_) {
        info.role = wire::ProxyRole::server;
        info.port = server_->modem_port;
        info.owner_pid = server_->requester.pid;
        info.bytes_up = server_->bytes_up;
        info.bytes_down = server_->bytes_down;
        for (const auto& [id, flow] : flows_) {
            if (flow->server.lock() == server_ && flow->phase == Phase::connected) info.peer = flow->host;
        }
        return info;
    }
    for (const auto& [id, flow] : flows_) {
        if (!flow->server_peer && (flow->phase == Phase::connecting || flow->phase == Phase::connected)) {
            info.role = wire::ProxyRole::client;
            info.port = flow->port;
            info.peer = flow->host;
            info.owner_pid = flow->requester.pid;
            info.bytes_up = flow->bytes_up;
            info.bytes_down = flow->bytes_down;
        }
    }
    return info;
}

}  // namespace slmd::core
