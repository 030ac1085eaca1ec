// Owns: client flows: their lifecycle and the relaying every flow uses (see tcp_flow_manager.hpp).
#include "core/tcp_flow_manager.hpp"
#include "core/tls_parameters.hpp"

#include <arpa/inet.h>

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/tcp_flow_records.hpp"
#include "net/socket_table.hpp"
#include "sys/log.hpp"

namespace slmd::core {

TcpFlowManager::TcpFlowManager(asio::any_io_executor executor, modem::ModemDriver& driver, FlowOptions options)
    : executor_(executor), driver_(driver), options_(options), socket_poll_(executor), graveyard_(executor) {
    driver_.set_capacity_listener([this, alive = lifetime_.guard()] {
        if (*alive) schedule();
    });
}

TcpFlowManager::~TcpFlowManager() {
    lifetime_.end();
    driver_.set_capacity_listener({});
}

std::uint64_t TcpFlowManager::connect(const wire::ConnectRequest& request, std::uint16_t data_port,
                                      ConnectReplyHandler reply, const Requester& requester) {
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
    if (server_ && !driver_.tcp_listen_beside_connections()) {
        // SLM's TCP proxy runs a client or a server, not both; the server may run for hours.
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

void TcpFlowManager::abandon_unanswered(std::uint64_t flow_id) {
    auto it = flows_.find(flow_id);
    if (it == flows_.end() || !it->second->pending_reply) return;
    abandon(it->second, "its API connection closed");
}

// The app will never use this flow: it must not wait for (or keep) the modem's connection. A flow still
// queued leaves the queue; one the modem is connecting is closed as soon as the modem answers (on_connected).
void TcpFlowManager::abandon(const FlowPtr& flow, const char* why) {
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
void TcpFlowManager::watch_for_abandonment(const FlowPtr& flow) {
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



void TcpFlowManager::schedule() {
    if (deferred_listen_ && driver_.tcp_listen_available()) {
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
std::size_t TcpFlowManager::pause_threshold() const {
    return std::min(options_.downlink_limit, options_.slow_reader_limit / 2);
}

// Asks the driver to pause while a flow holds too much for its app, unless connects are waiting (they need
// the link read: the slow app's connection may be ending, or must be reset to free the slot). The driver
// itself keeps reading while anything else needs the link; a slow app is then bounded by slow_reader_limit.
void TcpFlowManager::update_receive_pause() {
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
void TcpFlowManager::reset_slow_reader(const FlowPtr& flow) {
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

void TcpFlowManager::start_connect(const FlowPtr& flow) {
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
modem::TcpConnectionEvents TcpFlowManager::connection_events(const FlowPtr& flow) {
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

void TcpFlowManager::on_connected(const FlowPtr& flow) {
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
void TcpFlowManager::expect_attach(const FlowPtr& flow) {
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

void TcpFlowManager::fail(const FlowPtr& flow, int error) {
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

bool TcpFlowManager::attach(tcp::socket socket, std::uint64_t flow_id, const wire::Token& token,
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

void TcpFlowManager::read_uplink(const FlowPtr& flow) {
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

void TcpFlowManager::app_finished_sending(const FlowPtr& flow) {
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

void TcpFlowManager::watch_half_closed_app(const FlowPtr& flow) {
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

void TcpFlowManager::write_downlink(const FlowPtr& flow) {
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

void TcpFlowManager::on_modem_closed(const FlowPtr& flow, modem::CloseReason reason, int error) {
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

void TcpFlowManager::reset_app(const FlowPtr& flow) {
    if (flow->app) {
        graveyard_.bury(*flow->app, /*reset=*/true);
        flow->app.reset();
    }
    if (!flow->error) flow->error = ECONNRESET;
    finish(flow);
}

void TcpFlowManager::finish(const FlowPtr& flow) {
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

TcpFlowManager::FlowPtr TcpFlowManager::find(std::uint64_t id, std::uint16_t data_local_port) const {
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

wire::FlowStatusReply TcpFlowManager::status(const wire::FlowStatusRequest& request,
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

wire::ShutdownReply TcpFlowManager::shutdown(const wire::ShutdownRequest& request, const Requester& requester) {
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

void TcpFlowManager::stop() {
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

std::uint32_t TcpFlowManager::active_flows() const {
    std::uint32_t count = 0;
    for (const auto& [id, flow] : flows_) {
        if (flow->phase == Phase::connecting || flow->phase == Phase::connected) ++count;
    }
    return count;
}

}  // namespace slmd::core
