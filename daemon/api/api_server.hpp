// Owns: the Unix-domain API socket (AF_UNIX SOCK_SEQPACKET, /run/slmd/slmd.sock by default): accepting
// clients, deciding who may use the modem (SO_PEERCRED: root, slmd's own user, or members of the configured
// group; administrators — root, slmd's user, members of the admin group, checked with SO_PEERGROUPS — may
// also send AT commands and reset the modem), decoding requests with the libslmsock codec and answering them from the flow manager (TCP clients
// and servers), the UDP relay, the route policy and the modem driver. The requester's uid and pid
// (SO_PEERCRED) go with every request that names an app socket. Knows flows and errno values, never AT.
#pragma once

#include <sys/types.h>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/basic_socket_acceptor.hpp>
#include <boost/asio/generic/seq_packet_protocol.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "core/tcp_flow_manager.hpp"
#include "core/udp_relay.hpp"
#include "modem/modem_driver.hpp"
#include "net/route_policy.hpp"
#include "net/tls_policy.hpp"
#include "sys/lifetime.hpp"
#include "wire.hpp"

namespace slmd::api {

struct ApiOptions {
    std::string socket_path = "/run/slmd/slmd.sock";
    std::string group = "slm";  // members may use the modem; "" = only root and slmd's own user
    std::string admin_group = "slmadmin";  // members may also use AT and RESET; "" = only root and slmd's user
    // A local client must not be able to exhaust slmd's descriptors: connections beyond max_clients are
    // refused with -EAGAIN, and one with no request in progress for idle_timeout is closed (libslmsock sends
    // its one request at once, so only a stuck or hostile client ever waits that long).
    std::size_t max_clients = 512;
    std::chrono::milliseconds idle_timeout{10000};
    // A client that sends requests and never reads the replies must not grow slmd: a session stops reading
    // its requests while it has max_requests_per_client in progress or max_unsent_reply_bytes of replies
    // not yet taken by the kernel, so the client's own sends block. Across all its connections, one uid
    // has at most max_requests_per_uid in progress; one more is answered at once with -EAGAIN (root and slmd's
    // own user excepted).
    std::size_t max_requests_per_client = 8;
    std::size_t max_unsent_reply_bytes = 32 * 1024;
    std::size_t max_requests_per_uid = 128;
};

class AdminService;

class ApiServer {
public:
    using StatusSource = std::function<slmsock::wire::StatusReply()>;

    ApiServer(boost::asio::any_io_executor executor, ApiOptions options, core::TcpFlowManager& flows,
              core::UdpRelay& udp, modem::ModemDriver& driver, const net::RoutePolicy& routes, StatusSource status,
              std::uint16_t data_port);
    ~ApiServer();

    std::error_code start();
    // Serves on an already-listening socket (systemd socket activation) instead of binding socket_path; the
    // socket file then belongs to its creator (slmd.socket): slmd neither chmods, chowns nor unlinks it.
    std::error_code adopt(int fd);
    // Stops accepting and closes every client connection.
    void stop();
    const std::string& socket_path() const { return options_.socket_path; }
    // STATS, AT and RESET; without it they are answered with -EOPNOTSUPP.
    void set_admin(AdminService* admin) { admin_ = admin; }
    // slmd.conf's tls/dtls mappings: requests without a TLS block of their own that match one get it, and
    // names the modem resolves for programs are remembered for them.
    void set_tls_policy(net::TlsPolicy* policy) { tls_ = policy; }

    struct Counters {
        std::uint64_t clients = 0;
        std::uint64_t refused = 0;
        std::uint64_t malformed = 0;
        std::uint64_t requests = 0;
        std::uint64_t admin_refused = 0;  // AT, RESET or CREDENTIAL from a client that is not an administrator
        std::uint64_t overloaded = 0;     // connections refused with -EAGAIN: max_clients already connected
        std::uint64_t idle_closed = 0;    // connections closed after idle_timeout without a request in progress
        std::uint64_t accept_errors = 0;  // accept() failures (EMFILE, ENFILE, ENOMEM), each followed by a pause
        std::uint64_t uid_overloaded = 0;  // requests answered -EAGAIN: max_requests_per_uid already in progress
    };
    const Counters& counters() const { return counters_; }

private:
    class Session;
    struct InFlight;
    using Protocol = boost::asio::generic::seq_packet_protocol;

    void accept_loop();
    void accepted(Protocol::socket socket);
    void resolve_group();
    bool authorised(int fd, core::Requester& requester);
    bool administrator(int fd, unsigned uid) const;
    using Reply = std::function<void(slmsock::wire::Message)>;
    void describe_proxies(Reply reply);
    void handle(const std::shared_ptr<Session>& session, slmsock::wire::Envelope request);
    // One per request type; `reply` answers it (once).
    void on_request(const std::shared_ptr<Session>& session, slmsock::wire::ConnectRequest& request,
                    const Reply& reply);
    void on_request(const std::shared_ptr<Session>& session, slmsock::wire::FlowStatusRequest& request,
                    const Reply& reply);
    void on_request(const std::shared_ptr<Session>& session, slmsock::wire::ShutdownRequest& request,
                    const Reply& reply);
    void on_request(const std::shared_ptr<Session>& session, slmsock::wire::ResolveRequest& request,
                    const Reply& reply);
    void on_request(const std::shared_ptr<Session>& session, slmsock::wire::StatusRequest& request, const Reply& reply);
    void on_request(const std::shared_ptr<Session>& session, slmsock::wire::BindRequest& request, const Reply& reply);
    void on_request(const std::shared_ptr<Session>& session, slmsock::wire::ListenRequest& request, const Reply& reply);
    void on_request(const std::shared_ptr<Session>& session, slmsock::wire::UdpAssociateRequest& request,
                    const Reply& reply);
    void on_request(const std::shared_ptr<Session>& session, slmsock::wire::LookupRequest& request, const Reply& reply);
    void on_request(const std::shared_ptr<Session>& session, slmsock::wire::ProxiesRequest& request,
                    const Reply& reply);
    void on_request(const std::shared_ptr<Session>& session, slmsock::wire::StatsRequest& request, const Reply& reply);
    void on_request(const std::shared_ptr<Session>& session, slmsock::wire::AtRequest& request, const Reply& reply);
    void on_request(const std::shared_ptr<Session>& session, slmsock::wire::ResetRequest& request, const Reply& reply);
    void on_request(const std::shared_ptr<Session>& session, slmsock::wire::CredentialRequest& request,
                    const Reply& reply);
    // Any other message type is a reply sent as a request.
    template <typename Message>
    void on_request(const std::shared_ptr<Session>& session, Message& message, const Reply& reply);
    // AT, RESET and CREDENTIAL: only for administrators (answered with the refusal otherwise).
    bool admin_allowed(const std::shared_ptr<Session>& session, const char* request, const Reply& reply);

    boost::asio::any_io_executor executor_;
    ApiOptions options_;
    core::TcpFlowManager& flows_;
    core::UdpRelay& udp_;
    modem::ModemDriver& driver_;
    const net::RoutePolicy& routes_;
    StatusSource status_;
    std::uint16_t data_port_;
    boost::asio::basic_socket_acceptor<Protocol> acceptor_;
    boost::asio::steady_timer accept_pause_;  // after an accept error: out of descriptors must not spin
    std::optional<unsigned> group_id_;
    std::optional<unsigned> admin_group_id_;
    AdminService* admin_ = nullptr;
    net::TlsPolicy* tls_ = nullptr;
    bool adopted_ = false;
    std::optional<std::pair<dev_t, ino_t>> bound_file_;  // the socket file start() bound, to remove only that one
    Counters counters_;
    std::vector<std::weak_ptr<Session>> sessions_;
    std::map<unsigned, std::size_t> in_flight_per_uid_;
    std::vector<std::weak_ptr<boost::asio::steady_timer>> proxy_timers_;  // PROXIES replies waiting for the modem
    sys::Lifetime lifetime_;
};

}  // namespace slmd::api
