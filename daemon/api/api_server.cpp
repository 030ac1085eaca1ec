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
#include <fstream>
#include <sstream>

#include "api/admin_service.hpp"
#include "sys/log.hpp"

namespace slmd::api {

namespace asio = boost::asio;
namespace wire = slmsock::wire;

class ApiServer::Session : public std::enable_shared_from_this<Session> {
public:
    Session(Protocol::socket socket, core::Requester requester, bool admin)
        : socket_(std::move(socket)), requester_(requester), admin_(admin) {}
    const core::Requester& requester() const { return requester_; }
    bool admin() const { return admin_; }

    void receive(std::function<void(std::shared_ptr<Session>, std::span<const std::uint8_t>)> on_message) {
        auto self = shared_from_this();
        socket_.async_receive(asio::buffer(buffer_), flags_,
                              [self, on_message](boost::system::error_code error, std::size_t n) {
                                  if (error || n == 0) return;  // client gone: the session ends with it
                                  on_message(self, std::span<const std::uint8_t>(self->buffer_.data(), n));
                                  self->receive(on_message);
                              });
    }

    void send(std::vector<std::uint8_t> bytes) {
        outbox_.push_back(std::move(bytes));
        if (outbox_.size() == 1) send_next();
    }

    bool truncated() const { return (flags_ & MSG_TRUNC) != 0; }
    void close() {
        boost::system::error_code ignored;
        socket_.close(ignored);
    }

private:
    void send_next() {
        if (outbox_.empty()) return;
        auto self = shared_from_this();
        socket_.async_send(asio::buffer(outbox_.front()), 0, [self](boost::system::error_code error, std::size_t) {
            if (error) {
                self->outbox_.clear();
                return;
            }
            self->outbox_.pop_front();
            self->send_next();
        });
    }

    Protocol::socket socket_;
    core::Requester requester_;
    bool admin_ = false;
    // One byte more than the limit, so an over-long message is seen as such rather than cut silently.
    std::array<std::uint8_t, wire::max_message_size + 1> buffer_{};
    asio::socket_base::message_flags flags_ = 0;
    std::deque<std::vector<std::uint8_t>> outbox_;
};

ApiServer::ApiServer(asio::any_io_executor executor, ApiOptions options, core::FlowManager& flows,
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
      acceptor_(executor) {}

ApiServer::~ApiServer() {
    *alive_ = false;
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    if (!adopted_) ::unlink(options_.socket_path.c_str());
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
    acceptor_.async_accept([this, alive = alive_](boost::system::error_code error, Protocol::socket socket) {
        if (!*alive || error == asio::error::operation_aborted) return;
        if (!error) {
            ++counters_.clients;
            core::Requester requester;
            const bool allowed = authorised(socket.native_handle(), requester);
            const bool admin = allowed && administrator(socket.native_handle(), requester.uid);
            auto session = std::make_shared<Session>(std::move(socket), requester, admin);
            std::erase_if(sessions_, [](const auto& weak) { return weak.expired(); });
            sessions_.push_back(session);
            if (!allowed) {
                ++counters_.refused;
                wire::Envelope refusal{0, wire::ErrorReply{-EACCES, "not allowed to use the modem"}};
                session->send(wire::encode(refusal));
            } else {
                session->receive([this, alive](std::shared_ptr<Session> session, std::span<const std::uint8_t> bytes) {
                    if (!*alive) return;
                    ++counters_.requests;
                    if (session->truncated() || bytes.size() > wire::max_message_size) {
                        ++counters_.malformed;
                        session->send(wire::encode({0, wire::ErrorReply{-EMSGSIZE, "message too long"}}));
                        return;
                    }
                    auto decoded = wire::decode(bytes);
                    if (auto* failure = std::get_if<wire::DecodeError>(&decoded)) {
                        ++counters_.malformed;
                        const int code = *failure == wire::DecodeError::unsupported_version ? -EPROTONOSUPPORT
                                                                                           : -EPROTO;
                        session->send(wire::encode({0, wire::ErrorReply{code, wire::to_string(*failure)}}));
                        return;
                    }
                    handle(session, std::get<wire::Envelope>(std::move(decoded)));
                });
            }
        }
        accept_loop();
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
    // Supplementary groups of the peer process.
    std::ifstream status("/proc/" + std::to_string(credentials.pid) + "/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.rfind("Groups:", 0) != 0) continue;
        std::istringstream groups(line.substr(7));
        unsigned gid = 0;
        while (groups >> gid) {
            if (gid == *group_id_) return true;
        }
    }
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
    std::vector<gid_t> groups(64);
    for (int attempt = 0; attempt < 2; ++attempt) {
        socklen_t size = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
        if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &size) == 0) {
            groups.resize(size / sizeof(gid_t));
            return std::find(groups.begin(), groups.end(), *admin_group_id_) != groups.end();
        }
        if (errno != ERANGE) break;
        groups.resize(size / sizeof(gid_t) + 1);  // the kernel said how many there are
    }
    return false;
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
    auto reply = [session, id](wire::Message message) { session->send(wire::encode({id, std::move(message)})); };
    std::visit(
        [&](auto& message) {
            using T = std::decay_t<decltype(message)>;
            if constexpr (std::is_same_v<T, wire::ConnectRequest>) {
                if (routes_.bypass(message.destination)) {
                    wire::ConnectReply answer;
                    answer.route = wire::Route::bypass;
                    reply(answer);
                    return;
                }
                flows_.connect(message, data_port_, [reply](wire::ConnectReply answer) { reply(answer); },
                               session->requester());
            } else if constexpr (std::is_same_v<T, wire::FlowStatusRequest>) {
                reply(flows_.status(message));
            } else if constexpr (std::is_same_v<T, wire::ShutdownRequest>) {
                reply(flows_.shutdown(message));
            } else if constexpr (std::is_same_v<T, wire::ResolveRequest>) {
                const int family = message.family == wire::Family::ipv4   ? AF_INET
                                   : message.family == wire::Family::ipv6 ? AF_INET6
                                                                          : AF_UNSPEC;
                driver_.resolve(message.name, family,
                                [reply](int status, std::vector<std::string> addresses) {
                                    wire::ResolveReply answer;
                                    answer.status = status;
                                    for (const auto& text : addresses) {
                                        if (auto address = to_wire_address(text)) answer.addresses.push_back(*address);
                                        if (answer.addresses.size() == wire::max_addresses) break;
                                    }
                                    if (status == 0 && answer.addresses.empty()) answer.status = EAI_NONAME;
                                    SLMD_DEBUG("api: resolve -> {} ({} addresses)", answer.status,
                                               answer.addresses.size());
                                    reply(answer);
                                });
            } else if constexpr (std::is_same_v<T, wire::StatusRequest>) {
                auto answer = status_();
                answer.active_flows = flows_.active_flows();
                answer.queued_flows = flows_.waiting_flows();
                answer.data_port = data_port_;
                reply(answer);
            } else if constexpr (std::is_same_v<T, wire::BindRequest>) {
                if (message.transport == wire::Transport::udp) {
                    udp_.bind(message, session->requester(), [reply](wire::BindReply answer) { reply(answer); });
                } else {
                    reply(flows_.bind(message, session->requester()));
                }
            } else if constexpr (std::is_same_v<T, wire::ListenRequest>) {
                flows_.listen(message, session->requester(), [reply](wire::ListenReply answer) { reply(answer); });
            } else if constexpr (std::is_same_v<T, wire::UdpAssociateRequest>) {
                udp_.associate(message, session->requester(),
                               [reply](wire::UdpAssociateReply answer) { reply(answer); });
            } else if constexpr (std::is_same_v<T, wire::LookupRequest>) {
                reply(message.transport == wire::Transport::udp ? udp_.lookup(message) : flows_.lookup(message));
            } else if constexpr (std::is_same_v<T, wire::ProxiesRequest>) {
                describe_proxies(reply);
            } else if constexpr (std::is_same_v<T, wire::StatsRequest>) {
                if (!admin_) return reply(wire::ErrorReply{-EOPNOTSUPP, "no statistics in this slmd"});
                reply(admin_->stats());
            } else if constexpr (std::is_same_v<T, wire::AtRequest> || std::is_same_v<T, wire::ResetRequest>) {
                if (!admin_) return reply(wire::ErrorReply{-EOPNOTSUPP, "no administration in this slmd"});
                const auto uid = session->requester().uid;
                if (!session->admin()) {
                    ++counters_.admin_refused;
                    SLMD_NOTICE("api: refused {} from uid {} pid {}: not root, slmd's user or in group {}",
                                std::is_same_v<T, wire::AtRequest> ? "AT" : "RESET", uid, session->requester().pid,
                                options_.admin_group);
                    return reply(wire::ErrorReply{
                        -EACCES, "administrators only: run as root or as a member of slmd's admin-group (" +
                                     options_.admin_group + ")"});
                }
                if constexpr (std::is_same_v<T, wire::AtRequest>) {
                    admin_->at(message, uid, [reply](wire::AtReply answer) { reply(answer); });
                } else {
                    reply(admin_->reset(uid));
                }
            } else {
                // A reply type sent as a request.
                ++counters_.malformed;
                reply(wire::ErrorReply{-EBADMSG, "not a request"});
            }
        },
        request.message);
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
    driver_.describe_proxies([finish, alive = alive_](std::string text) {
        if (*alive) finish(std::move(text));
    });
}

}  // namespace slmd::api
