// Owns: the Unix-domain API server (see api_server.hpp).
#include "api/api_server.hpp"

#include <arpa/inet.h>
#include <grp.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/generic/basic_endpoint.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <filesystem>

#include "api/admin_service.hpp"
#include "sys/log.hpp"

namespace slmd::api {

namespace asio = boost::asio;
namespace wire = slmsock::wire;

namespace {

// The peer's supplementary groups as the kernel recorded them at connect time (SO_PEERGROUPS). Not
// /proc/<pid>/status: the pid may already belong to another process by the time it is read.
std::vector<gid_t> peer_groups(int fd) {
    std::vector<gid_t> groups(64);
    for (int attempt = 0; attempt < 2; ++attempt) {
        socklen_t size = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
        if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &size) == 0) {
            groups.resize(size / sizeof(gid_t));
            return groups;
        }
        if (errno != ERANGE) break;
        groups.resize(size / sizeof(gid_t) + 1);  // the kernel said how many there are
    }
    return {};
}

}  // namespace

class ApiServer::Session : public std::enable_shared_from_this<Session> {
public:
    using MessageHandler = std::function<void(std::shared_ptr<Session>, std::span<const std::uint8_t>)>;

    Session(Protocol::socket socket, core::Requester requester, bool admin, const ApiOptions& limits)
        : socket_(std::move(socket)),
          idle_(socket_.get_executor()),
          requester_(requester),
          admin_(admin),
          max_in_progress_(std::max<std::size_t>(limits.max_requests_per_client, 1)),
          max_unsent_bytes_(limits.max_unsent_reply_bytes) {}
    const core::Requester& requester() const { return requester_; }
    bool admin() const { return admin_; }

    // Closes the connection once it has had no request in progress for `limit` (counted from now and from
    // each reply); `on_idle` runs first.
    void close_when_idle(std::chrono::milliseconds limit, std::function<void()> on_idle) {
        idle_limit_ = limit;
        on_idle_ = std::move(on_idle);
        restart_idle_timer();
    }
    void request_started() {
        ++in_progress_;
        idle_.cancel();
    }
    void request_finished() {
        if (in_progress_ > 0 && --in_progress_ == 0) restart_idle_timer();
        receive_next();
    }

    void receive(MessageHandler on_message) {
        on_message_ = std::move(on_message);
        receive_next();
    }

    void send(std::vector<std::uint8_t> bytes) {
        unsent_bytes_ += bytes.size();
        outbox_.push_back(std::move(bytes));
        if (outbox_.size() == 1) send_next();
    }

    bool truncated() const { return (flags_ & MSG_TRUNC) != 0; }
    void close() {
        closed_ = true;
        boost::system::error_code ignored;
        socket_.close(ignored);
    }
    // Runs once when the client closes its end (not when slmd closes the session).
    void on_closed(std::function<void(Session&)> handler) { on_closed_ = std::move(handler); }
    // Blocking connects this client waits for: dropped if it goes away first.
    void waits_for_flow(std::uint64_t flow_id) { unanswered_flows_.push_back(flow_id); }
    const std::vector<std::uint64_t>& unanswered_flows() const { return unanswered_flows_; }

private:
    // Reads the next request unless the client already has enough in progress or leaves its replies unread:
    // then its requests stay in its socket (and its sends block) until it catches up.
    void receive_next() {
        if (receiving_ || closed_ || !on_message_) return;
        if (in_progress_ >= max_in_progress_ || unsent_bytes_ >= max_unsent_bytes_) return;
        receiving_ = true;
        auto self = shared_from_this();
        socket_.async_receive(asio::buffer(buffer_), flags_, [self](boost::system::error_code error, std::size_t n) {
            self->receiving_ = false;
            if (error || n == 0) {  // client gone: the session ends with it
                if (auto closed = std::move(self->on_closed_)) closed(*self);
                return;
            }
            self->on_message_(self, std::span<const std::uint8_t>(self->buffer_.data(), n));
            self->receive_next();
        });
    }

    void restart_idle_timer() {
        if (!on_idle_) return;
        idle_.expires_after(idle_limit_);
        // A weak reference: the timer alone must not keep a closed session alive.
        idle_.async_wait([weak = weak_from_this()](boost::system::error_code error) {
            auto self = weak.lock();
            if (error || !self || self->in_progress_ > 0) return;
            self->on_idle_();
            self->close();
        });
    }

    void send_next() {
        if (outbox_.empty()) return;
        auto self = shared_from_this();
        socket_.async_send(asio::buffer(outbox_.front()), 0, [self](boost::system::error_code error, std::size_t) {
            if (error) {
                self->outbox_.clear();
                self->unsent_bytes_ = 0;
                return;
            }
            self->unsent_bytes_ -= self->outbox_.front().size();
            self->outbox_.pop_front();
            self->send_next();
            self->receive_next();
        });
    }

    Protocol::socket socket_;
    asio::steady_timer idle_;
    std::chrono::milliseconds idle_limit_{0};
    std::function<void()> on_idle_;
    unsigned in_progress_ = 0;
    core::Requester requester_;
    bool admin_ = false;
    std::size_t max_in_progress_;
    std::size_t max_unsent_bytes_;
    // One byte more than the limit, so an over-long message is seen as such rather than cut silently.
    std::array<std::uint8_t, wire::max_message_size + 1> buffer_{};
    asio::socket_base::message_flags flags_ = 0;
    std::deque<std::vector<std::uint8_t>> outbox_;
    std::size_t unsent_bytes_ = 0;
    bool receiving_ = false;
    bool closed_ = false;
    MessageHandler on_message_;
    std::function<void(Session&)> on_closed_;
    std::vector<std::uint64_t> unanswered_flows_;
};

// One request of a uid in progress; ends when it is answered or when its reply can no longer come (the
// handler holding it was dropped: a connect abandoned by its client, slmd stopping).
struct ApiServer::InFlight {
    InFlight(ApiServer& server, unsigned uid) : server(server), alive(server.lifetime_.guard()), uid(uid) {}
    ~InFlight() { finish(); }
    void finish() {
        if (done) return;
        done = true;
        if (!*alive) return;
        auto it = server.in_flight_per_uid_.find(uid);
        if (it != server.in_flight_per_uid_.end() && --it->second == 0) server.in_flight_per_uid_.erase(it);
    }
    ApiServer& server;
    sys::Lifetime::Guard alive;
    unsigned uid;
    bool done = false;
};

ApiServer::ApiServer(asio::any_io_executor executor, ApiOptions options, core::TcpFlowManager& flows,
                     core::UdpRelay& udp, modem::ModemDriver& driver, const net::RoutePolicy& routes, StatusSource status,
                     std::uint16_t data_port)
    : executor_(executor),
      options_(std::move(options)),
      flows_(flows),
      udp_(udp),
      driver_(driver),
      routes_(routes),
      status_(std::move(status)),
      data_port_(data_port),
      acceptor_(executor),
      accept_pause_(executor) {}

ApiServer::~ApiServer() {
    lifetime_.end();
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    if (!adopted_ && bound_file_) {
        // Only the file this slmd bound: a newer slmd may have replaced it at the same path (a restart racing
        // this one's exit), and removing that one would leave every client with ENETDOWN.
        struct stat now {};
        if (::stat(options_.socket_path.c_str(), &now) == 0 && now.st_dev == bound_file_->first &&
            now.st_ino == bound_file_->second) {
            ::unlink(options_.socket_path.c_str());
        } else {
            SLMD_INFO("api: {} is no longer the socket this slmd bound; leaving it", options_.socket_path);
        }
    }
}

void ApiServer::resolve_group() {
    if (!options_.group.empty()) {
        if (const group* entry = getgrnam(options_.group.c_str())) {
            group_id_ = entry->gr_gid;
        } else {
            SLMD_WARN("api: group '{}' does not exist; only root and slmd's own user may use the modem",
                      options_.group);
        }
    }
    if (!options_.admin_group.empty()) {
        if (const group* entry = getgrnam(options_.admin_group.c_str())) {
            admin_group_id_ = entry->gr_gid;
        } else {
            SLMD_INFO("api: admin group '{}' does not exist; only root and slmd's own user may send AT commands "
                      "and reset the modem",
                      options_.admin_group);
        }
    }
}

std::error_code ApiServer::adopt(int fd) {
    resolve_group();
    boost::system::error_code error;
    acceptor_.assign(Protocol(AF_UNIX, 0), fd, error);
    if (error) return error;
    adopted_ = true;
    SLMD_INFO("api: listening on the socket passed by systemd (fd {})", fd);
    accept_loop();
    return {};
}

std::error_code ApiServer::start() {
    resolve_group();
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (options_.socket_path.size() >= sizeof address.sun_path) return std::make_error_code(std::errc::filename_too_long);
    std::memcpy(address.sun_path, options_.socket_path.c_str(), options_.socket_path.size() + 1);
    std::error_code fs_error;
    std::filesystem::create_directories(std::filesystem::path(options_.socket_path).parent_path(), fs_error);
    ::unlink(options_.socket_path.c_str());  // a stale socket from a previous run

    boost::system::error_code error;
    const Protocol protocol(AF_UNIX, 0);
    acceptor_.open(protocol, error);
    if (!error) {
        acceptor_.bind(asio::generic::basic_endpoint<Protocol>(&address, sizeof address), error);
    }
    if (!error) acceptor_.listen(asio::socket_base::max_listen_connections, error);
    if (error) return error;
    struct stat bound {};
    if (::stat(options_.socket_path.c_str(), &bound) == 0) bound_file_ = std::make_pair(bound.st_dev, bound.st_ino);
    // Who may connect is decided per client (SO_PEERCRED); the file itself is open to the group.
    ::chmod(options_.socket_path.c_str(), 0660);
    if (group_id_) {
        if (::chown(options_.socket_path.c_str(), static_cast<uid_t>(-1), *group_id_) != 0) {
            SLMD_DEBUG("api: chown {}: {}", options_.socket_path, std::strerror(errno));
        }
    }
    SLMD_INFO("api: listening on {}", options_.socket_path);
    accept_loop();
    return {};
}

void ApiServer::stop() {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    accept_pause_.cancel();
    for (auto& weak : sessions_) {
        if (auto session = weak.lock()) session->close();
    }
    sessions_.clear();
    for (auto& weak : proxy_timers_) {
        if (auto timer = weak.lock()) timer->cancel();
    }
    proxy_timers_.clear();
}

void ApiServer::accept_loop() {
    acceptor_.async_accept([this, alive = lifetime_.guard()](boost::system::error_code error, Protocol::socket socket) {
        if (!*alive || error == asio::error::operation_aborted) return;
        if (!error) {
            accepted(std::move(socket));
            return accept_loop();
        }
        // Out of descriptors (EMFILE/ENFILE) or memory: accepting again at once would spin on the same error
        // while the backlog stays full. Pause; connections already served go on, and closing ones free room.
        ++counters_.accept_errors;
        if (sys::worth_logging(counters_.accept_errors)) {
            SLMD_WARN("api: accept failed ({}, {} times so far); pausing 100 ms", error.message(),
                      counters_.accept_errors);
        }
        accept_pause_.expires_after(std::chrono::milliseconds(100));
        accept_pause_.async_wait([this, alive](boost::system::error_code wait_error) {
            if (*alive && !wait_error) accept_loop();
        });
    });
}

void ApiServer::accepted(Protocol::socket socket) {
    ++counters_.clients;
    std::erase_if(sessions_, [](const auto& weak) { return weak.expired(); });
    core::Requester requester;
    const bool allowed = authorised(socket.native_handle(), requester);
    const bool admin = allowed && administrator(socket.native_handle(), requester.uid);
    auto session = std::make_shared<Session>(std::move(socket), requester, admin, options_);
    if (!allowed) {
        ++counters_.refused;
        session->send(wire::encode({0, wire::ErrorReply{-EACCES, "not allowed to use the modem"}}));
        return;  // the session ends once the refusal is sent
    }
    if (sessions_.size() >= options_.max_clients) {
        ++counters_.overloaded;
        if (sys::worth_logging(counters_.overloaded)) {
            SLMD_WARN("api: {} connections already; refusing pid {} uid {} with EAGAIN ({} refused so far)",
                      sessions_.size(), requester.pid, requester.uid, counters_.overloaded);
        }
        session->send(wire::encode({0, wire::ErrorReply{-EAGAIN, "too many clients; try again"}}));
        return;
    }
    sessions_.push_back(session);
    session->close_when_idle(options_.idle_timeout, [this, alive = lifetime_.guard(), pid = requester.pid] {
        if (!*alive) return;
        ++counters_.idle_closed;
        if (sys::worth_logging(counters_.idle_closed)) {
            SLMD_NOTICE("api: closed an idle connection from pid {} ({} so far)", pid, counters_.idle_closed);
        }
    });
    // A program stopped while its connect waited (Ctrl-C, timeout(1)) must not get the modem's connection.
    session->on_closed([this, alive = lifetime_.guard()](Session& closed) {
        if (!*alive) return;
        for (const auto flow_id : closed.unanswered_flows()) flows_.abandon_unanswered(flow_id);
    });
    session->receive([this, alive = lifetime_.guard()](std::shared_ptr<Session> session, std::span<const std::uint8_t> bytes) {
        if (!*alive) return;
        ++counters_.requests;
        if (session->truncated() || bytes.size() > wire::max_message_size) {
            ++counters_.malformed;
            // The request_id is echoed whenever the header can be read (docs/api.md section 5).
            const auto id = wire::peek_request_id(bytes).value_or(0);
            session->send(wire::encode({id, wire::ErrorReply{-EMSGSIZE, "message too long"}}));
            return;
        }
        auto decoded = wire::decode(bytes);
        if (auto* failure = std::get_if<wire::DecodeError>(&decoded)) {
            ++counters_.malformed;
            const int code = *failure == wire::DecodeError::unsupported_version ? -EPROTONOSUPPORT : -EPROTO;
            const auto id = wire::peek_request_id(bytes).value_or(0);
            session->send(wire::encode({id, wire::ErrorReply{code, wire::to_string(*failure)}}));
            return;
        }
        const auto uid = session->requester().uid;
        auto& in_flight = in_flight_per_uid_[uid];
        // Root and slmd's own user are not bounded: system services and slmctl run as them, and they may reset
        // the modem anyway (a gateway's 200 processes of one service queued for the modem are legitimate).
        const bool bounded = uid != 0 && uid != ::geteuid();
        if (bounded && in_flight >= options_.max_requests_per_uid) {
            ++counters_.uid_overloaded;
            if (sys::worth_logging(counters_.uid_overloaded)) {
                SLMD_WARN("api: uid {} has {} requests in progress; answering EAGAIN ({} so far)", uid, in_flight,
                          counters_.uid_overloaded);
            }
            const auto& envelope = std::get<wire::Envelope>(decoded);
            session->send(wire::encode({envelope.request_id, wire::ErrorReply{-EAGAIN, "too many requests in progress"}}));
            return;
        }
        ++in_flight;
        session->request_started();
        handle(session, std::get<wire::Envelope>(std::move(decoded)));
    });
}

bool ApiServer::authorised(int fd, core::Requester& requester) {
    ucred credentials{};
    socklen_t length = sizeof credentials;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0) return false;
    requester.uid = credentials.uid;
    requester.pid = static_cast<unsigned>(credentials.pid);
    if (credentials.uid == 0 || credentials.uid == ::geteuid()) return true;
    if (!group_id_) return false;
    if (credentials.gid == *group_id_) return true;
    const auto groups = peer_groups(fd);
    if (std::find(groups.begin(), groups.end(), *group_id_) != groups.end()) return true;
    SLMD_NOTICE("api: refused pid {} uid {}: not in group {}", credentials.pid, credentials.uid, options_.group);
    return false;
}

// Administrators: root, slmd's own user, or a process with the admin group among its groups when it connected
// (SO_PEERGROUPS: the kernel's record of the peer's credentials, not a /proc lookup that a pid reuse could fool).
bool ApiServer::administrator(int fd, unsigned uid) const {
    if (uid == 0 || uid == ::geteuid()) return true;
    if (!admin_group_id_) return false;
    ucred credentials{};
    socklen_t length = sizeof credentials;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) == 0 && credentials.gid == *admin_group_id_) {
        return true;
    }
    const auto groups = peer_groups(fd);
    return std::find(groups.begin(), groups.end(), *admin_group_id_) != groups.end();
}

namespace {

std::optional<wire::Address> to_wire_address(const std::string& text) {
    wire::Address address;
    if (inet_pton(AF_INET, text.c_str(), address.bytes.data()) == 1) {
        address.family = wire::Family::ipv4;
        return address;
    }
    if (inet_pton(AF_INET6, text.c_str(), address.bytes.data()) == 1) {
        address.family = wire::Family::ipv6;
        return address;
    }
    return std::nullopt;
}

}  // namespace

void ApiServer::handle(const std::shared_ptr<Session>& session, wire::Envelope request) {
    const auto id = request.request_id;
    auto in_flight = std::make_shared<InFlight>(*this, session->requester().uid);
    Reply reply = [session, id, in_flight](wire::Message message) {
        in_flight->finish();
        session->send(wire::encode({id, std::move(message)}));
        session->request_finished();
    };
    std::visit([&](auto& message) { on_request(session, message, reply); }, request.message);
}

void ApiServer::on_request(const std::shared_ptr<Session>& session, wire::ConnectRequest& message,
                           const Reply& reply) {
    // TLS asked for explicitly is the modem's to run: never a plaintext local route.
    if (!message.tls && routes_.bypass(message.destination)) {
        wire::ConnectReply answer;
        answer.route = wire::Route::bypass;
        reply(answer);
        return;
    }
    if (!message.tls && tls_ && message.transport == wire::Transport::tcp)
        message.tls = tls_->lookup(false, message.destination, message.port);
    const auto waits_for = flows_.connect(
        message, data_port_, [reply](wire::ConnectReply answer) { reply(answer); }, session->requester());
    if (waits_for != 0) session->waits_for_flow(waits_for);
}

void ApiServer::on_request(const std::shared_ptr<Session>& session, wire::FlowStatusRequest& message,
                           const Reply& reply) {
    reply(flows_.status(message, session->requester()));
}

void ApiServer::on_request(const std::shared_ptr<Session>& session, wire::ShutdownRequest& message,
                           const Reply& reply) {
    reply(flows_.shutdown(message, session->requester()));
}

void ApiServer::on_request(const std::shared_ptr<Session>&, wire::ResolveRequest& message, const Reply& reply) {
    const int family = message.family == wire::Family::ipv4   ? AF_INET
                       : message.family == wire::Family::ipv6 ? AF_INET6
                                                              : AF_UNSPEC;
    driver_.resolve(message.name, family,
                    [reply, tls = tls_, name = message.name](int status, std::vector<std::string> addresses) {
                        wire::ResolveReply answer;
                        answer.status = status;
                        for (const auto& text : addresses) {
                            if (auto address = to_wire_address(text)) answer.addresses.push_back(*address);
                            if (answer.addresses.size() == wire::max_addresses) break;
                        }
                        if (status == 0 && answer.addresses.empty()) answer.status = EAI_NONAME;
                        if (tls && answer.status == 0) tls->remember(name, answer.addresses);
                        SLMD_DEBUG("api: resolve -> {} ({} addresses)", answer.status, answer.addresses.size());
                        reply(answer);
                    });
}

void ApiServer::on_request(const std::shared_ptr<Session>&, wire::StatusRequest&, const Reply& reply) {
    auto answer = status_();
    answer.active_flows = flows_.active_flows();
    answer.queued_flows = flows_.waiting_flows();
    answer.data_port = data_port_;
    reply(answer);
}

void ApiServer::on_request(const std::shared_ptr<Session>& session, wire::BindRequest& message,
                           const Reply& reply) {
    if (message.transport == wire::Transport::udp) {
        udp_.bind(message, session->requester(), [reply](wire::BindReply answer) { reply(answer); });
    } else {
        reply(flows_.bind(message, session->requester()));
    }
}

void ApiServer::on_request(const std::shared_ptr<Session>& session, wire::ListenRequest& message,
                           const Reply& reply) {
    flows_.listen(message, session->requester(), [reply](wire::ListenReply answer) { reply(answer); });
}

void ApiServer::on_request(const std::shared_ptr<Session>& session, wire::UdpAssociateRequest& message,
                           const Reply& reply) {
    if (!message.tls && tls_ && !routes_.bypass(message.peer))
        message.tls = tls_->lookup(true, message.peer, message.peer_port);
    udp_.associate(message, session->requester(), [reply](wire::UdpAssociateReply answer) { reply(answer); });
}

void ApiServer::on_request(const std::shared_ptr<Session>&, wire::LookupRequest& message, const Reply& reply) {
    reply(message.transport == wire::Transport::udp ? udp_.lookup(message) : flows_.lookup(message));
}

void ApiServer::on_request(const std::shared_ptr<Session>&, wire::ProxiesRequest&, const Reply& reply) {
    describe_proxies(reply);
}

void ApiServer::on_request(const std::shared_ptr<Session>&, wire::StatsRequest&, const Reply& reply) {
    if (!admin_) return reply(wire::ErrorReply{-EOPNOTSUPP, "no statistics in this slmd"});
    reply(admin_->stats());
}

bool ApiServer::admin_allowed(const std::shared_ptr<Session>& session, const char* request, const Reply& reply) {
    if (!admin_) {
        reply(wire::ErrorReply{-EOPNOTSUPP, "no administration in this slmd"});
        return false;
    }
    if (session->admin()) return true;
    ++counters_.admin_refused;
    SLMD_NOTICE("api: refused {} from uid {} pid {}: not root, slmd's user or in group {}", request,
                session->requester().uid, session->requester().pid, options_.admin_group);
    reply(wire::ErrorReply{-EACCES, "administrators only: run as root or as a member of slmd's admin-group (" +
                                        options_.admin_group + ")"});
    return false;
}

void ApiServer::on_request(const std::shared_ptr<Session>& session, wire::AtRequest& message, const Reply& reply) {
    if (!admin_allowed(session, "AT", reply)) return;
    admin_->at(message, session->requester().uid, [reply](wire::AtReply answer) { reply(answer); });
}

void ApiServer::on_request(const std::shared_ptr<Session>& session, wire::ResetRequest&, const Reply& reply) {
    if (!admin_allowed(session, "RESET", reply)) return;
    reply(admin_->reset(session->requester().uid));
}

void ApiServer::on_request(const std::shared_ptr<Session>& session, wire::CredentialRequest& message,
                           const Reply& reply) {
    if (!admin_allowed(session, "CREDENTIAL", reply)) return;
    admin_->credential(message, session->requester().uid,
                       [reply](wire::CredentialReply answer) { reply(answer); });
}

template <typename Message>
void ApiServer::on_request(const std::shared_ptr<Session>&, Message&, const Reply& reply) {
    // A reply type sent as a request.
    ++counters_.malformed;
    reply(wire::ErrorReply{-EBADMSG, "not a request"});
}

// The proxies as slmd sees them, and the firmware's own view once the modem answered (at most 5 s later: an
// operator's tool must not hang on a busy modem).
void ApiServer::describe_proxies(std::function<void(wire::Message)> reply) {
    struct Pending {
        explicit Pending(asio::any_io_executor executor) : timer(std::make_shared<asio::steady_timer>(executor)) {}
        std::shared_ptr<asio::steady_timer> timer;
        wire::ProxiesReply answer;
        bool done = false;
    };
    auto pending = std::make_shared<Pending>(executor_);
    pending->answer.proxies = {flows_.proxy_info(), udp_.proxy_info()};
    pending->answer.waiting = flows_.waiting_flows();
    auto finish = [pending, reply](std::string view) {
        if (pending->done) return;
        pending->done = true;
        pending->timer->cancel();
        pending->answer.modem_view = std::move(view);
        reply(pending->answer);
    };
    std::erase_if(proxy_timers_, [](const auto& weak) { return weak.expired(); });
    proxy_timers_.push_back(pending->timer);
    pending->timer->expires_after(std::chrono::seconds(5));
    pending->timer->async_wait([finish](boost::system::error_code error) {
        if (!error) finish("(the modem did not answer within 5 s)");
    });
    driver_.describe_proxies([finish, alive = lifetime_.guard()](std::string text) {
        if (*alive) finish(std::move(text));
    });
}

}  // namespace slmd::api
