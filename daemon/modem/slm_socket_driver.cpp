// Owns: SLM's generic sockets as a ModemDriver (see slm_socket_driver.hpp).
#include "modem/slm_socket_driver.hpp"

#include <netdb.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <charconv>
#include <memory>

#include "modem/answer_parsers.hpp"
#include "modem/at_string.hpp"
#include "modem/command_sequence.hpp"
#include "modem/dns_query.hpp"
#include "modem/tls_command.hpp"
#include "modem/uplink_plan.hpp"
#include "sys/log.hpp"

namespace slmd::modem {

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

// "#XPOLL: <h>,\"0x0001\"" → h, when it reports anything (POLLIN, POLLERR, POLLHUP, POLLNVAL).
std::optional<int> polled_handle(std::string_view line) {
    if (!line.starts_with("#XPOLL: ")) return std::nullopt;
    line.remove_prefix(8);
    const auto handle = parse_leading_int(line);
    const auto quote = line.find("\"0x");
    if (!handle || quote == std::string_view::npos) return std::nullopt;
    unsigned events = 0;
    const auto digits = line.substr(quote + 3);
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), events, 16);
    if (ec != std::errc{} || end == digits.data() || events == 0) return std::nullopt;
    return handle;
}

}  // namespace

SlmSocketDriver::SlmSocketDriver(asio::any_io_executor executor, at::Channel& channel, DataModeGate& gate,
                                 std::function<bool()> serving, SlmSocketDriverOptions options)
    : executor_(executor),
      channel_(channel),
      gate_(gate),
      serving_(std::move(serving)),
      options_(options),
      poll_timer_(executor),
      answer_timer_(executor),
      poll_interval_(options.poll_busy) {}

SlmSocketDriver::~SlmSocketDriver() {
    lifetime_.end();
}

std::size_t SlmSocketDriver::socket_limit() const {
    return channel_.profile().version >= at::FirmwareVersion{3, 1, 0} ? 7 : 8;
}

std::size_t SlmSocketDriver::tcp_available() const {
    const std::size_t used = open_count() + (descriptors_elsewhere_ ? descriptors_elsewhere_() : 0);
    return used >= socket_limit() ? 0 : socket_limit() - used;
}

std::size_t SlmSocketDriver::udp_max_send() const {
    return channel_.profile().data_mode_buffer;
}
std::size_t SlmSocketDriver::udp_max_receive() const {
    return channel_.profile().receive_chunk_max;
}

SlmSocketDriver::Socket* SlmSocketDriver::find(ConnectionId id) {
    auto it = sockets_.find(id);
    return it == sockets_.end() || it->second.gone ? nullptr : &it->second;
}

SlmSocketDriver::Socket* SlmSocketDriver::find_handle(int handle) {
    for (auto& [id, socket] : sockets_) {
        if (socket.handle == handle && !socket.gone) return &socket;
    }
    return nullptr;
}

void SlmSocketDriver::submit_on(int handle, at::CommandRequest request,
                                at::Channel::ResponseHandler handler) {
    // active_ is the socket the firmware acts on once everything queued so far has run: the channel runs
    // commands in order.
    if (active_ != handle) {
        ++stats_.selects;
        gate_.submit({"AT#XSOCKETSELECT=" + std::to_string(handle), "#XSOCKETSELECT", 5s},
                     [](at::CommandResponse) {});
        active_ = handle;
    }
    gate_.submit(std::move(request), std::move(handler));
}

// Opening
// ------------------------------------------------------------------------------------------------------

void SlmSocketDriver::open(const TcpEndpoint& destination, std::chrono::milliseconds timeout, Socket socket,
                           std::function<void(int, ConnectionId)> done) {
    auto fail_soon = [this, &done](int error) {
        asio::post(executor_, [done = std::move(done), error] { done(error, 0); });
    };
    const bool udp = socket.udp;
    if (!serving()) return fail_soon(ENETDOWN);
    // TLS or DTLS by the modem: a TLS/DTLS socket (#XSSOCKET) whose handshake runs inside #XCONNECT, its options
    // set first on the active socket (#XSSOCKETOPT TLS_HOSTNAME, so that the modem checks the name; DTLS_CID).
    std::optional<TlsSocket> tls;
    std::vector<at::CommandRequest> tls_settings;
    if (destination.tls) {
        auto checked = tls_socket(*destination.tls, destination.host, udp ? TlsTransport::udp : TlsTransport::tcp);
        if (const int* error = std::get_if<int>(&checked)) return fail_soon(*error);
        tls = std::get<TlsSocket>(std::move(checked));
        if (tls->quoted_hostname) tls_settings.push_back({"AT#XSSOCKETOPT=1,2," + *tls->quoted_hostname, "", 5s});
        if (tls->dtls_cid) tls_settings.push_back({"AT#XSSOCKETOPT=1,14," + std::to_string(*tls->dtls_cid), "", 5s});
    }
    const auto host = at_quoted(AtStringKind::host, destination.host);
    if (!host || destination.port == 0) return fail_soon(EINVAL);
    if (tcp_available() == 0) return fail_soon(EBUSY);
    ++opening_;
    // The new socket becomes the firmware's active one, and its handle is known only from the answer: until
    // the next select, which socket is active is unknown (a command for another socket queued meanwhile must
    // select).
    active_.reset();
    const std::string family = destination.ipv6 ? "2" : "1";
    const std::string type_role = udp ? ",2,0" : ",1,0";
    const at::CommandRequest create =
        tls ? at::CommandRequest{"AT#XSSOCKET=" + family + type_role + tls->socket_tail, "#XSSOCKET", 5s}
            : at::CommandRequest{"AT#XSOCKET=" + family + type_role, "#XSOCKET", 5s};
    const at::CommandRequest connect{"AT#XCONNECT=" + *host + "," + std::to_string(destination.port), "#XCONNECT",
                                     timeout + 5s};
    auto pending = std::make_shared<Socket>(std::move(socket));
    gate_.submit(create, [this, alive = lifetime_.guard(), connect, tls_settings, secure = tls.has_value(), pending,
                          done = std::move(done)](at::CommandResponse response) mutable {
        if (!*alive) return;
        const auto handle = parse_opened_socket(response.info);
        if (!response.ok() || !handle) {
            --opening_;
            slot_freed();
            done(response.error ? ENETDOWN : EMFILE, 0);
            return;
        }
        auto connect_step = [this, alive, handle = *handle, connect, secure, pending](
                                std::function<void(int, ConnectionId)> done) {
            submit_on(handle, connect, [this, alive, handle, secure, pending,
                                        done = std::move(done)](at::CommandResponse answer) mutable {
                if (!*alive) return;
                if (answer.ok() && !answer.info.empty() && answer.info.front() == "#XCONNECT: 1") {
                    --opening_;
                    const auto id = next_id_++;
                    pending->id = id;
                    pending->handle = handle;
                    sockets_.emplace(id, std::move(*pending));
                    SLMD_INFO("slm socket {}: connected (connection {}{})", handle, id, secure ? ", TLS" : "");
                    start_async_poll();
                    if (auto early = early_reports_.find(handle); early != early_reports_.end()) {
                        constexpr int poll_hangup = 16;
                        sockets_.at(id).hung_up = (early->second & poll_hangup) != 0;
                        early_reports_.erase(early);
                        reported_.push_back(handle);
                        read_reported();
                    }
                    schedule_poll(0ms);
                    done(0, id);
                    return;
                }
                // The firmware says no more than ERROR: refused, unreachable or no route; on a TLS or DTLS socket
                // also a failed handshake, which the proxies report as ECONNABORTED too.
                const int error = answer.error == at::ChannelError::timeout ? ETIMEDOUT
                                  : answer.error                            ? ENETDOWN
                                  : secure                                  ? ECONNABORTED
                                                                            : ECONNREFUSED;
                abandon_opening(handle, error, !answer.error || answer.error == at::ChannelError::timeout,
                                std::move(done));
            });
        };
        // The options must be set before the connect: without the name the modem would not check it.
        submit_in_order(
            alive, tls_settings,
            [this, handle = *handle](at::CommandRequest request, at::Channel::ResponseHandler handler) {
                submit_on(handle, std::move(request), std::move(handler));
            },
            [this, handle = *handle, connect_step,
             done = std::move(done)](std::optional<at::CommandResponse> refused) mutable {
                if (!refused) return connect_step(std::move(done));
                abandon_opening(handle, refused->error ? ENETDOWN : EINVAL, !refused->error, std::move(done));
            });
    });
}

// A socket being opened failed a later step: closed when the link still carries commands, and its descriptor
// counts as free once the firmware answered.
void SlmSocketDriver::abandon_opening(int handle, int error, bool close, std::function<void(int, ConnectionId)> done) {
    auto finish = [this, alive = lifetime_.guard(), error, done = std::move(done)] {
        if (!*alive) return;
        --opening_;
        slot_freed();
        done(error, 0);
    };
    if (!close) return finish();
    submit_on(handle, {"AT#XSOCKET=0", "#XSOCKET", 5s}, [finish](at::CommandResponse) { finish(); });
    active_.reset();  // the firmware picks the newest socket left
}

void SlmSocketDriver::tcp_connect(const TcpEndpoint& destination, std::chrono::milliseconds timeout,
                                  TcpConnectionEvents events, std::function<void(int, ConnectionId)> done) {
    Socket socket;
    socket.tcp_events = std::move(events);
    open(destination, timeout, std::move(socket), std::move(done));
}

void SlmSocketDriver::udp_connect(const TcpEndpoint& destination, UdpEvents events,
                                  std::function<void(int, ConnectionId)> done) {
    Socket socket;
    socket.udp = true;
    socket.udp_events = std::move(events);
    open(destination, 30s, std::move(socket), std::move(done));
}

void SlmSocketDriver::tcp_listen(std::uint16_t, bool, TcpListenerEvents,
                                 std::function<void(int, ListenerId)> done) {
    asio::post(executor_, [done = std::move(done)] { done(EOPNOTSUPP, 0); });
}

void SlmSocketDriver::udp_serve(std::uint16_t, bool, UdpEvents, std::function<void(int, ConnectionId)> done) {
    asio::post(executor_, [done = std::move(done)] { done(EOPNOTSUPP, 0); });
}

// Sending
// ------------------------------------------------------------------------------------------------------

void SlmSocketDriver::tcp_send(ConnectionId id, std::string bytes, std::function<void(int)> done) {
    auto* socket = find(id);
    if (!socket || socket->closing || socket->udp) {
        asio::post(executor_, [done = std::move(done)] { done(ENOTCONN); });
        return;
    }
    socket->sends.push_back({std::move(bytes), std::move(done)});
    pump(id);
}

void SlmSocketDriver::udp_send(ConnectionId id, std::string datagram, std::function<void(int)> done) {
    auto* socket = find(id);
    int refusal = 0;
    if (!socket || socket->closing || !socket->udp) {
        refusal = ENOTCONN;
    } else if (datagram.size() > udp_max_send()) {
        refusal = EMSGSIZE;
    }
    if (refusal) {
        asio::post(executor_, [done = std::move(done), refusal] { done(refusal); });
        return;
    }
    socket->sends.push_back({std::move(datagram), std::move(done)});
    pump(id);
}

void SlmSocketDriver::pump(ConnectionId id) {
    auto* socket = find(id);
    if (!socket || socket->sending) return;
    if (socket->sends.empty()) {
        if (socket->closing) finish_close(id);
        return;
    }
    socket->sending = true;
    request_started(*socket, socket->sends.front().bytes.size());
    auto job = std::make_shared<SendJob>(std::move(socket->sends.front()));
    socket->sends.pop_front();
    auto finished = [this, alive = lifetime_.guard(), id, job](int error) {
        if (!*alive) return;
        if (!error) {
            stats_.bytes_up += job->bytes.size();
            // A request usually gets an answer: poll at the busy pace, not at the idle one it may have reached.
            last_data_ = std::chrono::steady_clock::now();
            poll_interval_ = options_.poll_busy;
            schedule_poll(options_.poll_busy);
        }
        if (auto* s = find(id)) {
            s->sending = false;
            request_sent(*s, !error);
            if (holding_for_answer()) schedule_poll(options_.answer_poll);
        }
        job->done(error);
        pump(id);
    };
    if (socket->udp) {
        // One datagram, one piece: quoted when it can be, else one data-mode flush.
        const bool quotable = job->bytes.size() <= channel_.profile().max_send_string &&
                              at_string_allowed(AtStringKind::udp_send, job->bytes);
        const bool cut = !quotable && channel_.profile().data_mode_exit == at::DataModeExitRule::anywhere &&
                         job->bytes.find("+++") != std::string::npos;
        if (cut) return finished(EINVAL);  // the firmware would end data mode inside it
        return send_piece(*socket, job->bytes, quotable, std::move(finished));
    }
    // TCP: "+++" runs quoted, the rest quoted when short and quotable, else in data mode.
    auto plan = plan_uplink(job->bytes, channel_.profile().max_send_string);
    auto pieces = std::make_shared<std::deque<UplinkPiece>>(plan.pieces.begin(), plan.pieces.end());
    if (!plan.held_tail.empty()) pieces->push_back({UplinkPiece::Kind::quoted, plan.held_tail});
    run_pieces(id, std::move(pieces), std::move(finished));
}

void SlmSocketDriver::run_pieces(ConnectionId id, std::shared_ptr<std::deque<UplinkPiece>> pieces,
                                 std::function<void(int)> finished) {
    auto* socket = find(id);
    if (!socket) return finished(ECONNRESET);
    if (pieces->empty()) return finished(0);
    auto piece = std::move(pieces->front());
    pieces->pop_front();
    const bool quoted =
        piece.kind == UplinkPiece::Kind::quoted || (piece.bytes.size() <= options_.quoted_send_limit &&
                                                    at_string_allowed(AtStringKind::tcp_send, piece.bytes));
    send_piece(
        *socket, std::move(piece.bytes), quoted,
        [this, alive = lifetime_.guard(), id, pieces, finished = std::move(finished)](int error) mutable {
            if (!*alive) return;
            if (error) return finished(error);
            run_pieces(id, std::move(pieces), std::move(finished));
        });
}

void SlmSocketDriver::send_piece(Socket& socket, std::string bytes, bool quoted,
                                 std::function<void(int)> finished) {
    const int handle = socket.handle;
    const auto id = socket.id;
    if (quoted) {
        const auto text = at_quoted(socket.udp ? AtStringKind::udp_send : AtStringKind::tcp_send, bytes);
        if (!text) return finished(EINVAL);
        submit_on(handle, {"AT#XSEND=" + *text, "#XSEND", 10s},
                  [finished = std::move(finished)](at::CommandResponse response) {
                      const bool timed_out = response.error == at::ChannelError::timeout;
                      finished(response.ok() ? 0 : timed_out ? ETIMEDOUT : ECONNRESET);
                  });
        return;
    }
    gate_.with_command_mode([this, alive = lifetime_.guard(), handle, id, bytes = std::move(bytes),
                             finished = std::move(finished)]() mutable {
        if (!*alive) return;
        if (!find(id)) return finished(ECONNRESET);
        if (before_data_mode_) before_data_mode_();
        if (active_ != handle) {
            ++stats_.selects;
            channel_.submit({"AT#XSOCKETSELECT=" + std::to_string(handle), "#XSOCKETSELECT", 5s},
                            [](at::CommandResponse) {});
            active_ = handle;
        }
        channel_.enter_data_mode({"AT#XSEND", "", 5s},
                                 [this, alive, id, bytes = std::move(bytes),
                                  finished = std::move(finished)](at::CommandResponse response) {
                                     if (!*alive) return;
                                     if (!response.ok()) return finished(ECONNRESET);
                                     gate_.begin_session({DataModeGate::Owner::socket, id});
                                     gate_.clear_last_exit();
                                     if (channel_.write_data(bytes)) return finished(ECONNRESET);
                                     // Out again once the firmware's inactivity timer has flushed the bytes:
                                     // a trailing '+' stays data.
                                     gate_.with_command_mode(
                                         [this, alive, finished] {
                                             if (!*alive) return;
                                             gate_.end_session();
                                             finished(gate_.last_exit_error()         ? ETIMEDOUT
                                                      : gate_.last_exit_status() == 0 ? 0
                                                                                      : ECONNRESET);
                                         },
                                         at::Channel::ExitTiming::after_inactivity_flush);
                                 });
    });
}

// Closing
// ------------------------------------------------------------------------------------------------------

void SlmSocketDriver::tcp_close(ConnectionId id) {
    auto* socket = find(id);
    if (!socket || socket->closing) return;
    socket->closing = true;
    if (!socket->sending && socket->sends.empty()) finish_close(id);
}

void SlmSocketDriver::finish_close(ConnectionId id) {
    auto* socket = find(id);
    if (!socket) return;
    const bool was_awaiting = awaiting_answer(*socket);
    socket->gone = true;
    if (was_awaiting && !holding_for_answer()) resume_reads();
    submit_on(socket->handle, {"AT#XSOCKET=0", "#XSOCKET", 5s},
              [this, alive = lifetime_.guard(), id](at::CommandResponse) {
                  if (!*alive) return;
                  auto it = sockets_.find(id);
                  if (it == sockets_.end()) return;
                  auto socket = std::move(it->second);
                  sockets_.erase(it);
                  slot_freed();
                  if (socket.udp) {
                      if (socket.udp_events.closed) socket.udp_events.closed(CloseReason::local_close, 0);
                  } else if (socket.tcp_events.closed) {
                      socket.tcp_events.closed(CloseReason::local_close, 0);
                  }
              });
    active_.reset();  // the firmware makes the newest remaining socket active
}

void SlmSocketDriver::lose(ConnectionId id, CloseReason reason, int error) {
    auto it = sockets_.find(id);
    if (it == sockets_.end() || it->second.gone) return;
    auto socket = std::move(it->second);
    sockets_.erase(it);
    if (awaiting_answer(socket) && !holding_for_answer()) resume_reads();  // no answer comes: the others go on
    for (auto& job : socket.sends) job.done(ECONNRESET);
    if (reason != CloseReason::modem_lost) {
        // The firmware still holds the socket: free it before the slot is offered again.
        ++opening_;
        submit_on(socket.handle, {"AT#XSOCKET=0", "#XSOCKET", 5s},
                  [this, alive = lifetime_.guard()](at::CommandResponse) {
                      if (!*alive) return;
                      --opening_;
                      slot_freed();
                  });
        active_.reset();
    } else {
        slot_freed();
    }
    if (socket.udp) {
        if (socket.udp_events.closed) socket.udp_events.closed(reason, error);
    } else if (socket.tcp_events.closed) {
        socket.tcp_events.closed(reason, error);
    }
}

void SlmSocketDriver::slot_freed() {
    if (!capacity_listener_) return;
    asio::post(executor_, [this, alive = lifetime_.guard()] {
        if (*alive && capacity_listener_ && tcp_available() > 0) capacity_listener_();
    });
}

void SlmSocketDriver::on_modem_lost() {
    poll_timer_.cancel();
    disarm_answer_timer();
    poll_scheduled_ = false;
    polling_ = false;
    async_poll_ = AsyncPoll::off;  // the rebooted firmware runs no poll thread
    reported_.clear();
    held_.clear();
    early_reports_.clear();
    active_.reset();
    std::vector<ConnectionId> ids;
    for (const auto& [id, socket] : sockets_) ids.push_back(id);
    for (const auto id : ids) lose(id, CloseReason::modem_lost, ECONNRESET);
    sockets_.clear();
}

// Receiving
// ----------------------------------------------------------------------------------------------------

// A pause holds back TCP only (an app that stops reading is a TCP flow's): UDP sockets are still polled and
// read, as the UDP proxy keeps the line read while it is open, so one slow TCP reader does not cut off DNS and
// datagrams. TCP sockets that are ready meanwhile are left to the modem until the pause ends.
void SlmSocketDriver::pause_receive(bool paused) {
    paused_ = paused;
    if (paused) return;
    for (const int handle : held_) reported_.push_back(handle);
    held_.clear();
    read_reported();
    schedule_poll(0ms);
}

// v3.1 (docs/reference/serial-modem-and-generic-sockets.md §3.2): AT#XAPOLL=1,1 covers every socket, present and
// opened later, with one-shot POLLIN reports that a read arms again, so an idle line carries nothing at all and
// bytes are read as soon as they are reported. Until the answer comes polling goes on; if the firmware refuses,
// it stays the way.
void SlmSocketDriver::start_async_poll() {
    if (!options_.async_poll || async_poll_ != AsyncPoll::off ||
        channel_.profile().version < at::FirmwareVersion{3, 1, 0})
        return;
    async_poll_ = AsyncPoll::starting;
    gate_.submit({"AT#XAPOLL=1,1", "", 5s}, [this, alive = lifetime_.guard()](at::CommandResponse response) {
        if (!*alive || async_poll_ != AsyncPoll::starting) return;
        if (!response.ok()) {
            SLMD_WARN("slm: #XAPOLL refused; polling the sockets instead");
            async_poll_ = AsyncPoll::off;
            schedule_poll(0ms);
            return;
        }
        SLMD_INFO("slm: the firmware reports received bytes (#XAPOLL): no polling");
        async_poll_ = AsyncPoll::on;
        poll_timer_.cancel();
        poll_scheduled_ = false;
    });
}

bool SlmSocketDriver::on_urc(const std::string& text) {
    if (!text.starts_with("#XAPOLL: ")) return false;
    const std::string_view rest = std::string_view(text).substr(9);
    const auto comma = rest.find(',');
    const auto handle = parse_leading_int(rest.substr(0, comma));
    const auto events = comma == std::string_view::npos ? std::nullopt : parse_leading_int(rest.substr(comma + 1));
    auto* socket = handle ? find_handle(*handle) : nullptr;
    if (!events || !async_polling()) return true;
    if (!socket) {
        // A socket whose connect has not been answered yet (its first bytes can beat the answer), or one gone: a
        // report fires once, so it is kept for a socket that comes with that handle.
        if (handle) early_reports_[*handle] |= *events;
        return true;
    }
    ++stats_.reports;
    constexpr int poll_error = 8, poll_invalid = 32;
    if (*events & (poll_error | poll_invalid)) {
        // The firmware watches the socket no more; a read would not tell more than that it failed.
        lose(socket->id, CloseReason::peer_closed, ECONNRESET);
        return true;
    }
    constexpr int poll_hangup = 16;
    if (*events & poll_hangup) socket->hung_up = true;
    note_ready(*socket);
    if (paused_ && !socket->udp) {
        held_.insert(*handle);
        return true;
    }
    if (std::find(reported_.begin(), reported_.end(), *handle) == reported_.end()) reported_.push_back(*handle);
    read_reported();
    return true;
}

void SlmSocketDriver::read_reported() {
    if (polling_ || reported_.empty() || !serving()) return;
    polling_ = true;
    auto handles = std::move(reported_);
    reported_.clear();
    read_ready(std::move(handles));
}

bool SlmSocketDriver::polling_wanted() const {
    if (sockets_.empty()) return false;
    if (!paused_) return true;
    return std::any_of(sockets_.begin(), sockets_.end(), [](const auto& entry) { return entry.second.udp; });
}

void SlmSocketDriver::schedule_poll(std::chrono::milliseconds delay) {
    if (polling_ || !polling_wanted() || async_polling()) return;
    // A poll already due no later stays; an earlier one moves it (the old wait ends with operation_aborted).
    if (poll_scheduled_ && poll_timer_.expiry() <= std::chrono::steady_clock::now() + delay) return;
    poll_scheduled_ = true;
    poll_timer_.expires_after(delay);
    poll_timer_.async_wait([this, alive = lifetime_.guard()](boost::system::error_code error) {
        if (!*alive || error) return;
        poll_scheduled_ = false;
        poll();
    });
}

void SlmSocketDriver::poll() {
    if (polling_ || !polling_wanted() || !serving() || async_polling()) return;
    const auto now = std::chrono::steady_clock::now();
    const auto holder = gate_.session().owner;
    if (!gate_.in_command_mode() && holder != DataModeGate::Owner::socket && holder != DataModeGate::Owner::none &&
        now - last_poll_ < options_.poll_defer_limit) {
        schedule_poll(options_.poll_busy);  // a proxy's session: look again soon, it usually ends within 500 ms
        return;
    }
    last_poll_ = now;
    polling_ = true;
    ++stats_.polls;
    // One round trip covers every socket; 0 answers at once (a longer one would hold the firmware's AT
    // channel).
    gate_.submit(
        {"AT#XPOLL=0", "#XPOLL", 5s}, [this, alive = lifetime_.guard()](at::CommandResponse response) {
            if (!*alive) return;
            std::deque<int> ready;
            for (const auto& line : response.info) {
                auto handle = polled_handle(line);
                auto* socket = handle ? find_handle(*handle) : nullptr;
                if (socket) note_ready(*socket);
                if (socket && (!paused_ || socket->udp)) ready.push_back(*handle);
            }
            if (ready.empty()) {
                polling_ = false;
                if (async_polling()) return read_reported();  // #XAPOLL started meanwhile
                const bool busy = std::chrono::steady_clock::now() - last_data_ < options_.busy_window;
                poll_interval_ = busy ? options_.poll_busy : std::min(poll_interval_ * 2, options_.poll_idle);
                schedule_poll(holding_for_answer() ? std::min(poll_interval_, options_.answer_poll) : poll_interval_);
                return;
            }
            read_ready(std::move(ready));
        });
}

void SlmSocketDriver::read_ready(std::deque<int> handles) {
    // One read per ready socket a round, so a bulk transfer cannot starve the others; then poll again at
    // once.
    if (handles.empty()) {
        polling_ = false;
        if (async_polling()) return read_reported();  // reports that came during the round
        poll_interval_ = options_.poll_busy;
        // Paused, TCP sockets that hold bytes stay ready: at once would be a busy loop over them.
        schedule_poll(paused_ ? options_.poll_busy : 0ms);
        return;
    }
    // Answers first; while one is still awaited, the other sockets' bytes wait for it (or for its time to end).
    std::stable_partition(handles.begin(), handles.end(), [this](int h) { return awaiting_answer(h); });
    if (!awaiting_answer(handles.front()) && holding_for_answer()) return hold_for_answer(std::move(handles));
    const int handle = handles.front();
    handles.pop_front();
    auto* socket = find_handle(handle);
    if (!socket || (paused_ && !socket->udp)) return read_ready(std::move(handles));
    ++stats_.reads;
    // Never a blocking read: DONTWAIT (v2.1+), or on v2.0 (no flags) a one-second limit, which a socket that
    // #XPOLL reported ready answers at once.
    const bool dontwait = channel_.profile().version >= at::FirmwareVersion{2, 1, 0};
    submit_on(handle, {dontwait ? "AT#XRECV=0,64" : "AT#XRECV=1", "#XRECV", 5s},
              [this, alive = lifetime_.guard(), id = socket->id,
               handles = std::move(handles)](at::CommandResponse response) mutable {
                  if (!*alive) return;
                  auto* s = find(id);
                  if (s && response.payload_lost) {
                      lose(id, CloseReason::data_lost, ECONNRESET);
                  } else if (s && response.ok() && !response.payload.empty()) {
                      s->answer = Socket::Answer::none;  // answered
                      if (!holding_for_answer()) disarm_answer_timer();
                      stats_.bytes_down += response.payload.size();
                      last_data_ = std::chrono::steady_clock::now();
                      // After POLLHUP no report comes again: read on until the end of the stream.
                      if (s->hung_up && (!paused_ || s->udp)) reported_.push_back(s->handle);
                      if (s->hung_up && paused_ && !s->udp) held_.insert(s->handle);
                      if (s->udp) {
                          if (s->udp_events.datagram) s->udp_events.datagram(response.payload, std::nullopt);
                      } else if (s->tcp_events.data) {
                          s->tcp_events.data(response.payload);
                      }
                  } else if (s && response.ok() && response.info.empty() && !s->udp) {
                      lose(id, CloseReason::peer_closed, 0);  // OK without #XRECV: the peer closed
                  }
                  read_ready(std::move(handles));
              });
}

// Answer first: a request's reply is read before other sockets' bytes. A bulk read holds the line for up to
// 2048 bytes (178 ms at 115200; the firmware has no shorter read), so a reply that arrives just after the
// request would otherwise wait behind one or more of them. The other reads wait only while a request (a send
// of up to answer_request_max bytes) is on its way and then until its reply's first bytes, at most
// answer_wait. A socket that let the wait run out (one that sends without answers, such as a publisher) is not
// waited for again until an answer comes in time, so it costs a download beside it one wait.
void SlmSocketDriver::request_started(Socket& socket, std::size_t bytes) {
    if (options_.answer_wait.count() > 0 && socket.answers_promptly && socket.answer == Socket::Answer::none &&
        bytes <= options_.answer_request_max)
        socket.answer = Socket::Answer::sending;
}

void SlmSocketDriver::request_sent(Socket& socket, bool ok) {
    const auto now = std::chrono::steady_clock::now();
    if (ok) socket.sent_at = now;
    if (socket.answer != Socket::Answer::sending) return;  // one wait per request: later sends do not extend it
    if (!ok) {
        socket.answer = Socket::Answer::none;
        if (!holding_for_answer()) resume_reads();
        return;
    }
    socket.answer = Socket::Answer::due;
    socket.answer_due = now + options_.answer_wait;
    ++stats_.answer_waits;
    arm_answer_timer(socket.answer_due);
}

// One timer for every wait, set for the earliest end; answer_wait_over sets it again for the next.
void SlmSocketDriver::arm_answer_timer(std::chrono::steady_clock::time_point at) {
    if (answer_timer_armed_ && answer_timer_.expiry() <= at) return;
    answer_timer_armed_ = true;
    answer_timer_.expires_at(at);  // a wait set for later ends with operation_aborted
    answer_timer_.async_wait([this, alive = lifetime_.guard()](boost::system::error_code error) {
        if (!*alive || error) return;
        answer_timer_armed_ = false;
        answer_wait_over();
    });
}

void SlmSocketDriver::disarm_answer_timer() {
    answer_timer_.cancel();
    answer_timer_armed_ = false;
}

void SlmSocketDriver::note_ready(Socket& socket) {
    const auto now = std::chrono::steady_clock::now();
    if (socket.sent_at != std::chrono::steady_clock::time_point{} && now - socket.sent_at <= options_.answer_wait)
        socket.answers_promptly = true;
}

bool SlmSocketDriver::awaiting_answer(const Socket& socket) const {
    if (socket.gone) return false;
    return socket.answer == Socket::Answer::sending ||
           (socket.answer == Socket::Answer::due && std::chrono::steady_clock::now() < socket.answer_due);
}

bool SlmSocketDriver::awaiting_answer(int handle) const {
    return std::any_of(sockets_.begin(), sockets_.end(), [&](const auto& entry) {
        return entry.second.handle == handle && awaiting_answer(entry.second);
    });
}

bool SlmSocketDriver::holding_for_answer() const {
    return std::any_of(sockets_.begin(), sockets_.end(),
                       [&](const auto& entry) { return awaiting_answer(entry.second); });
}

void SlmSocketDriver::hold_for_answer(std::deque<int> handles) {
    polling_ = false;
    if (async_polling()) {
        // A report fires once: the reported handles are kept for when the wait ends.
        for (const int handle : handles) {
            if (std::find(reported_.begin(), reported_.end(), handle) == reported_.end()) reported_.push_back(handle);
        }
        return;
    }
    schedule_poll(options_.answer_poll);  // a poll finds the others again
}

void SlmSocketDriver::answer_wait_over() {
    const auto now = std::chrono::steady_clock::now();
    auto next = std::chrono::steady_clock::time_point::max();
    for (auto& [id, socket] : sockets_) {
        if (socket.answer != Socket::Answer::due) continue;
        if (socket.answer_due <= now) {
            socket.answer = Socket::Answer::none;
            socket.answers_promptly = false;  // no answer in time: not waited for again until one comes
            ++stats_.answer_waits_lapsed;
            SLMD_DEBUG("slm socket {}: no answer within {} ms: its sends are not waited for until one comes",
                       socket.handle, options_.answer_wait.count());
        } else {
            next = std::min(next, socket.answer_due);
        }
    }
    if (next != std::chrono::steady_clock::time_point::max()) return arm_answer_timer(next);
    resume_reads();
}

void SlmSocketDriver::resume_reads() {
    read_reported();
    schedule_poll(0ms);
}

// Operators and DNS
// --------------------------------------------------------------------------------------------

void SlmSocketDriver::describe_proxies(std::function<void(std::string)> done) {
    std::string text;
    for (const auto& [id, socket] : sockets_) {
        if (!text.empty()) text += "\n";
        text += "#XSOCKET: " + std::to_string(socket.handle) + (socket.udp ? ",udp" : ",tcp");
    }
    asio::post(executor_, [done = std::move(done), text = std::move(text)] { done(text); });
}

void SlmSocketDriver::resolve(const std::string& name, int family,
                              std::function<void(int, std::vector<std::string>)> done) {
    if (!serving()) {
        asio::post(executor_, [done = std::move(done)] { done(EAI_AGAIN, {}); });
        return;
    }
    resolve_name(gate_, channel_.profile(), name, family, std::move(done));
}

}  // namespace slmd::modem
