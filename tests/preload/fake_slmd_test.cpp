// The shim's UDP and server hooks against a fake slmd (no modem, no daemon): a thread in this process answers
// slmd's API the way the contract in wire.hpp says, with real loopback sockets for its side of things.
//   - UDP client: each UdpAssociateRequest gets a stand-in UDP socket on loopback that echoes what it receives
//     back to the app (a "remote" echo server); LookupRequest on it names the peer the app asked for.
//   - UDP server: a BindRequest(udp) gets a stand-in that sends one datagram "from" 198.51.100.20:5000 to the
//     app and records the answer; an associate for that peer returns the same stand-in (the server's reply).
//   - TCP server: ListenRequest makes the fake connect to the app's loopback port as the modem peer 192.0.2.9,
//     send a line and read the echo.
// The C matrix (preload_matrix) runs under slm-run like any program and checks what the application sees.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "harness.hpp"
#include "wire.hpp"

using namespace slmd::preload_test;
using namespace slmsock::wire;
using namespace std::chrono_literals;

namespace {

Address v4_address(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d) {
    Address x;
    x.family = Family::ipv4;
    x.bytes = {a, b, c, d};
    return x;
}

// A UDP (or TCP) socket on the loopback of `family`, ephemeral port.
int loopback_socket(Family family, int type, std::uint16_t* port) {
    const int domain = family == Family::ipv6 ? AF_INET6 : AF_INET;
    const int fd = socket(domain, type | SOCK_CLOEXEC, 0);
    sockaddr_storage ss{};
    socklen_t len;
    if (domain == AF_INET) {
        auto& in = reinterpret_cast<sockaddr_in&>(ss);
        in.sin_family = AF_INET;
        in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof in;
    } else {
        auto& in6 = reinterpret_cast<sockaddr_in6&>(ss);
        in6.sin6_family = AF_INET6;
        in6.sin6_addr = in6addr_loopback;
        len = sizeof in6;
    }
    if (bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) return -1;
    len = sizeof ss;
    getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
    *port = ntohs(domain == AF_INET ? reinterpret_cast<sockaddr_in&>(ss).sin_port
                                    : reinterpret_cast<sockaddr_in6&>(ss).sin6_port);
    return fd;
}

socklen_t loopback_address(Family family, std::uint16_t port, sockaddr_storage& ss) {
    std::memset(&ss, 0, sizeof ss);
    if (family == Family::ipv6) {
        auto& in6 = reinterpret_cast<sockaddr_in6&>(ss);
        in6.sin6_family = AF_INET6;
        in6.sin6_port = htons(port);
        in6.sin6_addr = in6addr_loopback;
        return sizeof in6;
    }
    auto& in = reinterpret_cast<sockaddr_in&>(ss);
    in.sin_family = AF_INET;
    in.sin_port = htons(port);
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return sizeof in;
}

class FakeSlmd {
public:
    // bind_refusal: BindReply status for every bind (0 = accept).
    explicit FakeSlmd(std::int32_t bind_refusal = 0) : bind_refusal_(bind_refusal), path_(dir_ / "slmd.sock") {
        listener_ = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        sockaddr_un sa{};
        sa.sun_family = AF_UNIX;
        std::strncpy(sa.sun_path, path_.c_str(), sizeof sa.sun_path - 1);
        if (bind(listener_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || listen(listener_, 16) != 0)
            throw std::runtime_error("fake slmd: cannot listen");
        if (pipe2(wake_, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
        thread_ = std::thread([this] { loop(); });
    }
    ~FakeSlmd() {
        char c = 'x';
        (void)!write(wake_[1], &c, 1);
        thread_.join();
        for (auto& t : peers_) t.join();
        for (int fd : stand_ins_) close(fd);
        close(listener_);
        close(wake_[0]);
        close(wake_[1]);
    }
    const std::string& path() const { return path_; }
    std::vector<Message> requests() {
        std::lock_guard lock(mutex_);
        return requests_;
    }
    std::string server_answer() {
        std::lock_guard lock(mutex_);
        return server_answer_;
    }
    std::string modem_peer_echo() {
        std::lock_guard lock(mutex_);
        return modem_peer_echo_;
    }
    template <typename T>
    int count() {
        int n = 0;
        for (const auto& m : requests()) n += std::holds_alternative<T>(m) ? 1 : 0;
        return n;
    }

private:
    struct StandIn {
        int fd;
        Family family;
        std::uint16_t app_port;
        Address peer;
        std::uint16_t peer_port;
        bool server;  // the UDP server's stand-in: records instead of echoing
    };

    void loop() {
        for (;;) {
            std::vector<pollfd> p{{wake_[0], POLLIN, 0}, {listener_, POLLIN, 0}};
            for (const auto& [port, s] : stand_ins_by_port_) p.push_back({s.fd, POLLIN, 0});
            if (poll(p.data(), p.size(), 10000) < 0) continue;
            if (p[0].revents != 0) return;
            if (p[1].revents != 0) serve_control();
            for (std::size_t i = 2; i < p.size(); ++i) {
                if (p[i].revents != 0) datagram(p[i].fd);
            }
        }
    }

    void datagram(int fd) {
        for (auto& [port, s] : stand_ins_by_port_) {
            if (s.fd != fd) continue;
            char buf[65536];
            sockaddr_storage from;
            socklen_t from_len = sizeof from;
            const ssize_t n = recvfrom(fd, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &from_len);
            if (n < 0) return;
            if (s.server) {
                std::lock_guard lock(mutex_);
                server_answer_.assign(buf, static_cast<std::size_t>(n));
            } else {
                sendto(fd, buf, static_cast<std::size_t>(n), 0, reinterpret_cast<sockaddr*>(&from), from_len);
            }
            return;
        }
    }

    void serve_control() {
        const int c = accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) return;
        std::uint8_t buffer[max_message_size];
        pollfd q{c, POLLIN, 0};
        const ssize_t n = poll(&q, 1, 5000) == 1 ? recv(c, buffer, sizeof buffer, 0) : -1;
        auto decoded = decode(std::span<const std::uint8_t>(buffer, n > 0 ? static_cast<std::size_t>(n) : 0));
        if (auto* e = std::get_if<Envelope>(&decoded)) {
            {
                std::lock_guard lock(mutex_);
                requests_.push_back(e->message);
            }
            std::function<void()> after;
            const auto out = encode(Envelope{e->request_id, answer(e->message, after)});
            send(c, out.data(), out.size(), MSG_NOSIGNAL);
            close(c);
            if (after) after();
            return;
        }
        close(c);
    }

    StandIn& new_stand_in(Family family, std::uint16_t app_port, Address peer, std::uint16_t peer_port, bool server) {
        std::uint16_t port = 0;
        const int fd = loopback_socket(family, SOCK_DGRAM, &port);
        stand_ins_.push_back(fd);
        return stand_ins_by_port_[port] = StandIn{fd, family, app_port, peer, peer_port, server};
    }

    Message answer(const Message& request, std::function<void()>& after) {
        if (std::holds_alternative<StatusRequest>(request)) {
            StatusReply r;
            r.modem_state = "serving";
            r.ipv4 = "10.0.0.2";
            r.data_port = 1;  // nothing connects there in these tests
            return r;
        }
        if (const auto* b = std::get_if<BindRequest>(&request)) {
            if (bind_refusal_ != 0) return BindReply{bind_refusal_};
            servers_[{b->transport, b->app_port}] = b->modem_port;
            if (b->transport == Transport::udp) {
                // A peer of the modem's UDP server says hello as soon as the server runs.
                StandIn& s = new_stand_in(b->family, b->app_port, v4_address(198, 51, 100, 20), 5000, true);
                const Family family = b->family;
                const std::uint16_t app_port = b->app_port;
                const int fd = s.fd;
                after = [fd, family, app_port] {
                    sockaddr_storage to;
                    const socklen_t len = loopback_address(family, app_port, to);
                    sendto(fd, "hello server", 12, 0, reinterpret_cast<sockaddr*>(&to), len);
                };
            }
            return BindReply{0};
        }
        if (const auto* l = std::get_if<ListenRequest>(&request)) {
            if (!servers_.count({Transport::tcp, l->app_port})) return ListenReply{-ENOENT};
            // The modem's peer connects now (the app already listens): one line, then wait for its echo.
            const int fd = socket(l->family == Family::ipv6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            sockaddr_storage to;
            const socklen_t len = loopback_address(l->family, l->app_port, to);
            if (connect(fd, reinterpret_cast<sockaddr*>(&to), len) != 0) return ListenReply{-errno};
            sockaddr_storage local;
            socklen_t local_len = sizeof local;
            getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len);
            peer_ports_.insert(ntohs(reinterpret_cast<sockaddr_in&>(local).sin_port));  // same offset for v6
            peers_.emplace_back([this, fd] {
                const char line[] = "hello from the modem\n";
                send(fd, line, sizeof line - 1, MSG_NOSIGNAL);
                std::string got;
                char buf[256];
                while (got.size() < sizeof line - 1) {
                    pollfd p{fd, POLLIN, 0};
                    if (poll(&p, 1, 10000) != 1) break;
                    const ssize_t n = recv(fd, buf, sizeof buf, 0);
                    if (n <= 0) break;
                    got.append(buf, static_cast<std::size_t>(n));
                }
                {
                    std::lock_guard lock(mutex_);
                    modem_peer_echo_ = got;
                }
                close(fd);
            });
            return ListenReply{0};
        }
        if (const auto* u = std::get_if<UdpAssociateRequest>(&request)) {
            if (u->peer == Address{Family::ipv4, {192, 168, 1, 1}}) return UdpAssociateReply{0, Route::bypass, 0};
            for (const auto& [port, s] : stand_ins_by_port_) {
                if (s.app_port == u->app_port && s.peer == u->peer && s.peer_port == u->peer_port)
                    return UdpAssociateReply{0, Route::modem, port};
            }
            std::uint16_t port = 0;
            new_stand_in(u->family, u->app_port, u->peer, u->peer_port, false);
            for (const auto& [p, s] : stand_ins_by_port_) {
                if (s.app_port == u->app_port && s.peer == u->peer && s.peer_port == u->peer_port) port = p;
            }
            return UdpAssociateReply{0, Route::modem, port};
        }
        if (const auto* k = std::get_if<LookupRequest>(&request)) {
            LookupReply r;
            auto server = servers_.find({k->transport, k->app_port});
            if (server != servers_.end()) {
                r.local = Address{Family::unspecified, {}};
                r.local_port = server->second;
            }
            bool known = server != servers_.end();
            if (k->loopback_peer_port != 0) {
                if (k->transport == Transport::udp) {
                    auto s = stand_ins_by_port_.find(k->loopback_peer_port);
                    if (s != stand_ins_by_port_.end() && s->second.app_port == k->app_port) {
                        r.peer = s->second.peer;
                        r.peer_port = s->second.peer_port;
                        known = true;
                    }
                } else if (peer_ports_.count(k->loopback_peer_port)) {
                    r.peer = v4_address(192, 0, 2, 9);  // the firmware reports no port
                    known = true;
                }
            }
            if (!known) r.status = -ENOENT;
            return r;
        }
        return ErrorReply{-EPROTO, "not in this fake"};
    }

    std::int32_t bind_refusal_;
    slmd::test::TempDir dir_;
    std::string path_;
    int listener_ = -1;
    int wake_[2] = {-1, -1};
    std::thread thread_;
    std::vector<std::thread> peers_;  // joined at the end (bounded waits inside)
    std::vector<int> stand_ins_;
    std::map<std::uint16_t, StandIn> stand_ins_by_port_;
    std::map<std::pair<Transport, std::uint16_t>, std::uint16_t> servers_;  // (transport, app port) → modem port
    std::set<std::uint16_t> peer_ports_;
    std::mutex mutex_;
    std::vector<Message> requests_;
    std::string server_answer_;
    std::string modem_peer_echo_;
};

// Wildcard servers on the modem (SLMSOCK_LISTEN=modem) unless the test's own environment says otherwise.
RunResult matrix_with(const FakeSlmd& fake, std::vector<std::string> args, std::vector<std::string> env = {}) {
    std::vector<std::string> argv{slm_run(), matrix()};
    argv.insert(argv.end(), args.begin(), args.end());
    env.insert(env.begin(), "SLMSOCK_LISTEN=modem");
    env.push_back("SLMSOCK_SOCKET=" + fake.path());
    return run(env, argv, 30s);
}

// A port nobody uses now (bound then released).
std::uint16_t free_port() {
    std::uint16_t port = 0;
    const int fd = loopback_socket(Family::ipv4, SOCK_STREAM, &port);
    close(fd);
    return port;
}

}  // namespace

TEST(FakeSlmd, UdpClientSourcesAreTheRealPeer) {
    FakeSlmd fake;
    auto r = matrix_with(fake, {"udp-client", "203.0.113.10", "7", "1,1024,2048"});
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("udp 2048 bytes: ok from 203.0.113.10:7"), std::string::npos) << r.output;
    EXPECT_EQ(fake.count<UdpAssociateRequest>(), 7);  // every datagram with a destination asks, and connect once
    EXPECT_GE(fake.count<LookupRequest>(), 9);
}

TEST(FakeSlmd, UdpClientOnAnIpv6SocketSeesV4MappedAndIpv6Peers) {
    FakeSlmd fake;
    auto r = matrix_with(fake, {"udp-client6", "203.0.113.10", "7", "1,100"});
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("ok from [::ffff:203.0.113.10]:7"), std::string::npos) << r.output;
    r = matrix_with(fake, {"udp-client6", "2001:db8::7", "5683", "64"});
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("ok from [2001:db8::7]:5683"), std::string::npos) << r.output;
}

TEST(FakeSlmd, UdpServerAnswersTheModemsPeer) {
    FakeSlmd fake;
    auto r = matrix_with(fake, {"udp-server", "-", "5683", "1"}, {"SLMSOCK_DEBUG=1"});
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("from 198.51.100.20:5000 (12 bytes)"), std::string::npos) << r.output;
    // The answer crosses a loopback socket to the fake's own thread: wait for it (bounded), don't race it.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (fake.server_answer().empty() && std::chrono::steady_clock::now() < deadline) poll(nullptr, 0, 10);
    EXPECT_EQ(fake.server_answer(), "revres olleh");
    ASSERT_GE(fake.count<BindRequest>(), 1);
    const auto requests = fake.requests();
    for (const auto& m : requests) {
        if (const auto* b = std::get_if<BindRequest>(&m)) {
            EXPECT_EQ(b->transport, Transport::udp);
            EXPECT_EQ(b->family, Family::ipv4);
            EXPECT_EQ(b->modem_port, 5683);
            EXPECT_NE(b->app_port, 5683);  // the kernel socket is on loopback, at a port of the kernel's choice
        }
    }
    EXPECT_NE(r.output.find("modem server"), std::string::npos) << r.output;
}

TEST(FakeSlmd, TcpServerAcceptsTheModemsPeer) {
    FakeSlmd fake;
    auto r = matrix_with(fake, {"tcp-server", "-", "8080", "1"});
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("peer 192.0.2.9:0"), std::string::npos) << r.output;
    EXPECT_EQ(fake.modem_peer_echo(), "hello from the modem\n");
    EXPECT_EQ(fake.count<ListenRequest>(), 1);
}

TEST(FakeSlmd, TcpServerOnIpv6) {
    FakeSlmd fake;
    auto r = matrix_with(fake, {"tcp-server6", "-", "8080", "1"});
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("peer [::ffff:192.0.2.9]:0"), std::string::npos) << r.output;
    EXPECT_EQ(fake.modem_peer_echo(), "hello from the modem\n");
}

TEST(FakeSlmd, ListenLocalKeepsKernelBindsForTheWildcard) {
    FakeSlmd fake(-EBUSY);
    // The wildcard goes to the kernel without asking; the modem's own address still asks slmd (refused here).
    auto r = matrix_with(fake, {"bind-fallback", "-", std::to_string(free_port()), std::to_string(EBUSY)},
                         {"SLMSOCK_LISTEN=local"});
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_EQ(fake.count<BindRequest>(), 1) << r.output;
}

// Unset or empty: slm-run makes it local. A wildcard server stays the host's; only the modem's address asks.
TEST(FakeSlmd, TheWildcardStaysLocalByDefault) {
    FakeSlmd fake(-EBUSY);
    auto r = matrix_with(fake, {"bind-fallback", "-", std::to_string(free_port()), std::to_string(EBUSY)},
                         {"SLMSOCK_LISTEN="});
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_EQ(fake.count<BindRequest>(), 1) << r.output;
}

TEST(FakeSlmd, RefusedBindFallsBackForTheWildcardAndFailsForTheModemsAddress) {
    FakeSlmd fake(-EBUSY);
    auto r = matrix_with(fake, {"bind-fallback", "-", std::to_string(free_port()), std::to_string(EBUSY)});
    EXPECT_EQ(r.exit_code, 0) << r.output;
    // The IPv4 wildcard, the IPv6 dual-stack wildcard, the modem's address: each asked once, each refused.
    EXPECT_EQ(fake.count<BindRequest>(), 3) << r.output;
}

TEST(FakeSlmd, BypassRouteSendsThroughTheKernel) {
    FakeSlmd fake;
    // 192.168.1.1 is "local" in the fake: the kernel route is used; in the namespace it has none.
    auto r = run({"SLMSOCK_SOCKET=" + fake.path()},
                 {slm_run(), "/usr/bin/python3", "-c",
                  "import socket,errno\n"
                  "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
                  "try:\n s.sendto(b'x',('192.168.1.1',9)); print('sent')\n"
                  "except OSError as e: print('errno', e.errno)\n"},
                 30s);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    if (isolated()) {
        EXPECT_NE(r.output.find("errno " + std::to_string(ENETUNREACH)), std::string::npos) << r.output;
    }
    auto strict = run({"SLMSOCK_SOCKET=" + fake.path(), "SLMSOCK_STRICT=1"},
                      {slm_run(), "/usr/bin/python3", "-c",
                       "import socket\n"
                       "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
                       "try:\n s.sendto(b'x',('192.168.1.1',9)); print('sent')\n"
                       "except OSError as e: print('errno', e.errno)\n"},
                      30s);
    EXPECT_NE(strict.output.find("errno " + std::to_string(ENETUNREACH)), std::string::npos) << strict.output;
}

TEST(FakeSlmd, ALoopbackTcpServerOfTheAppsOwnIsAskedAboutOncePerSocket) {
    FakeSlmd fake;
    // slmd knows no socket at these ports: the listener is asked about at its first accept, each accepted socket
    // at its first getpeername/getsockname, and never again (docs/preload.md, performance.md).
    auto r = run({"SLMSOCK_SOCKET=" + fake.path()},
                 {slm_run(), "/usr/bin/python3", "-c",
                  "import socket\n"
                  "l=socket.socket(); l.bind(('127.0.0.1',0)); l.listen(8)\n"
                  "ok=0\n"
                  "for i in range(5):\n"
                  " c=socket.create_connection(l.getsockname()); a,peer=l.accept()\n"
                  " ok+=peer==c.getsockname() and a.getpeername()==peer and a.getpeername()==peer\n"
                  " ok+=a.getsockname()==l.getsockname() and a.getsockname()==l.getsockname()\n"
                  " a.close(); c.close()\n"
                  "print('matched', ok)\n"},
                 30s);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("matched 10"), std::string::npos) << r.output;
    // 1 for the listener (at listen(); its accepts and getsockname calls are then answered from memory) + 1 per
    // accepted socket (its first getpeername; its getsockname too) + 1 per client socket c (its getsockname).
    EXPECT_EQ(fake.count<LookupRequest>(), 1 + 5 + 5) << r.output;
}

TEST(FakeSlmd, LoopbackDatagramsOfOthersAreLeftAlone) {
    FakeSlmd fake;
    // A local UDP exchange under the shim: the source stays 127.0.0.1 and slmd is asked nothing about sends.
    auto r = run({"SLMSOCK_SOCKET=" + fake.path()},
                 {slm_run(), "/usr/bin/python3", "-c",
                  "import socket\n"
                  "a=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); a.bind(('127.0.0.1',0))\n"
                  "b=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); b.bind(('127.0.0.1',0))\n"
                  "a.sendto(b'hi', b.getsockname())\n"
                  "d,src=b.recvfrom(10); print(d, src == a.getsockname())\n"},
                 30s);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("b'hi' True"), std::string::npos) << r.output;
    EXPECT_EQ(fake.count<UdpAssociateRequest>(), 0);
    EXPECT_EQ(fake.count<BindRequest>(), 0);
}
