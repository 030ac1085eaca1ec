// Owns: the tests of the client library (libslmsock.so, through its C API). A fake slmd runs in a thread: a
// SOCK_SEQPACKET listener on a temporary path that decodes each request with the codec, records it and sends
// back whatever the test's handler builds; a loopback TCP listener plays the data endpoint. All waits are
// bounded polls on conditions, never sleeps.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "slmsock.h"
#include "wire.hpp"

using namespace slmsock::wire;
using Bytes = std::vector<std::uint8_t>;

namespace {

constexpr int bounded_wait_ms = 5000;

Bytes reply_to(const Envelope& request, Message message) { return encode(Envelope{request.request_id, std::move(message)}); }

class FakeSlmd {
public:
    // Builds the raw reply to a request; an empty result closes the connection without answering.
    using Handler = std::function<Bytes(const Envelope&)>;

    FakeSlmd() {
        char tmpl[] = "/tmp/slmsock-test-XXXXXX";
        dir_ = mkdtemp(tmpl);
        path_ = dir_ + "/slmd.sock";
        listen_fd_ = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        sockaddr_un sa{};
        sa.sun_family = AF_UNIX;
        std::strncpy(sa.sun_path, path_.c_str(), sizeof sa.sun_path - 1);
        if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || listen(listen_fd_, 8) != 0)
            failure_ = "cannot listen";
        setenv("SLMSOCK_SOCKET", path_.c_str(), 1);
    }
    ~FakeSlmd() {
        finish();
        close(listen_fd_);
        unlink(path_.c_str());
        rmdir(dir_.c_str());
        unsetenv("SLMSOCK_SOCKET");
    }

    // Serves one connection per handler, in order, on its own thread.
    void serve(std::vector<Handler> handlers) {
        thread_ = std::thread([this, handlers = std::move(handlers)] {
            for (const auto& h : handlers)
                if (!serve_one(h)) break;
        });
    }
    void serve(Handler h) { serve(std::vector<Handler>{std::move(h)}); }
    // Answers the next connection with `bytes` at once, without reading, and closes it (how slmd refuses a
    // peer whose credentials do not allow the modem).
    void refuse(Bytes bytes) {
        thread_ = std::thread([this, bytes = std::move(bytes)] {
            pollfd p{listen_fd_, POLLIN, 0};
            if (poll(&p, 1, bounded_wait_ms) != 1) {
                failure_ = "no client connected";
                return;
            }
            const int c = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
            if (c >= 0) {
                send(c, bytes.data(), bytes.size(), MSG_NOSIGNAL);
                close(c);
            }
        });
    }

    // Joins the server thread; then requests() and failure() are safe to read.
    void finish() {
        if (thread_.joinable()) thread_.join();
    }
    const std::vector<Envelope>& requests() const { return requests_; }
    const std::string& failure() const { return failure_; }
    const std::string& path() const { return path_; }

private:
    bool serve_one(const Handler& handler) {
        pollfd p{listen_fd_, POLLIN, 0};
        if (poll(&p, 1, bounded_wait_ms) != 1) {
            failure_ = "no client connected";
            return false;
        }
        const int c = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) {
            failure_ = "accept failed";
            return false;
        }
        std::array<std::uint8_t, 8192> buffer;
        pollfd q{c, POLLIN, 0};
        const ssize_t n = poll(&q, 1, bounded_wait_ms) == 1 ? recv(c, buffer.data(), buffer.size(), 0) : -1;
        auto decoded = decode(std::span<const std::uint8_t>(buffer.data(), n > 0 ? static_cast<std::size_t>(n) : 0));
        if (!std::holds_alternative<Envelope>(decoded)) {
            failure_ = "undecodable request";
            close(c);
            return false;
        }
        requests_.push_back(std::get<Envelope>(decoded));
        const Bytes out = handler(requests_.back());
        if (!out.empty()) send(c, out.data(), out.size(), MSG_NOSIGNAL);
        close(c);
        return true;
    }

    std::string dir_, path_;
    int listen_fd_ = -1;
    std::thread thread_;
    std::vector<Envelope> requests_;
    std::string failure_;
};

// A loopback TCP listener: the data endpoint, or a "remote" host for bypass routes.
class TcpListener {
public:
    explicit TcpListener(int family = AF_INET) {
        fd_ = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_storage ss{};
        socklen_t len;
        if (family == AF_INET) {
            auto& sin = reinterpret_cast<sockaddr_in&>(ss);
            sin.sin_family = AF_INET;
            sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            len = sizeof sin;
        } else {
            auto& sin6 = reinterpret_cast<sockaddr_in6&>(ss);
            sin6.sin6_family = AF_INET6;
            sin6.sin6_addr = in6addr_loopback;
            len = sizeof sin6;
        }
        ok_ = bind(fd_, reinterpret_cast<sockaddr*>(&ss), len) == 0 && listen(fd_, 8) == 0;
        socklen_t got = sizeof ss;
        getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &got);
        port_ = ntohs(family == AF_INET ? reinterpret_cast<sockaddr_in&>(ss).sin_port
                                        : reinterpret_cast<sockaddr_in6&>(ss).sin6_port);
    }
    ~TcpListener() { close(fd_); }
    bool ok() const { return ok_; }
    std::uint16_t port() const { return port_; }
    int accept_one() {
        pollfd p{fd_, POLLIN, 0};
        if (poll(&p, 1, bounded_wait_ms) != 1) return -1;
        return accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    }

private:
    int fd_ = -1;
    bool ok_ = false;
    std::uint16_t port_ = 0;
};

Bytes read_exactly(int fd, std::size_t n) {
    Bytes out;
    while (out.size() < n) {
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, bounded_wait_ms) != 1) break;
        std::array<std::uint8_t, 256> buf;
        const ssize_t r = recv(fd, buf.data(), std::min(buf.size(), n - out.size()), 0);
        if (r <= 0) break;
        out.insert(out.end(), buf.begin(), buf.begin() + r);
    }
    return out;
}

Token test_token() {
    Token t{};
    for (std::size_t i = 0; i < t.size(); ++i) t[i] = static_cast<std::uint8_t>(0xa0 + i);
    return t;
}

sockaddr_in ipv4(const char* text, std::uint16_t port) {
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    inet_pton(AF_INET, text, &sin.sin_addr);
    return sin;
}

sockaddr_in6 ipv6(const char* text, std::uint16_t port) {
    sockaddr_in6 sin6{};
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(port);
    inet_pton(AF_INET6, text, &sin6.sin6_addr);
    return sin6;
}

template <typename T>
const sockaddr* sa(const T& addr) {
    return reinterpret_cast<const sockaddr*>(&addr);
}

FakeSlmd::Handler connect_reply(ConnectReply reply) {
    return [reply](const Envelope& e) { return reply_to(e, reply); };
}

const ConnectRequest& connect_request(const FakeSlmd& fake, std::size_t i = 0) {
    return std::get<ConnectRequest>(fake.requests().at(i).message);
}

struct Fd {
    int fd;
    explicit Fd(int f) : fd(f) {}
    ~Fd() {
        if (fd >= 0) close(fd);
    }
};

// Blocking connect: the request carries the destination, the fd ends up connected to the data endpoint with the
// credential as its first bytes, its flags untouched, and it carries data like any socket.
TEST(ConnectFd, BlockingConnectAttachesAndPresentsTheCredential) {
    FakeSlmd fake;
    TcpListener endpoint;
    ASSERT_TRUE(endpoint.ok());
    fake.serve(connect_reply({0, Route::modem, 42, test_token(), endpoint.port()}));

    Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    const int flags_before = fcntl(fd.fd, F_GETFL);
    const auto dest = ipv4("93.184.216.34", 443);
    std::uint64_t flow_id = 0;
    EXPECT_EQ(slmsock_connect_fd(fd.fd, sa(dest), sizeof dest, &flow_id), 0);
    EXPECT_EQ(flow_id, 42u);
    EXPECT_EQ(fcntl(fd.fd, F_GETFL), flags_before);
    fake.finish();
    ASSERT_EQ(fake.failure(), "");
    const auto& request = connect_request(fake);
    EXPECT_EQ(request.transport, Transport::tcp);
    EXPECT_EQ(request.destination.family, Family::ipv4);
    EXPECT_EQ((std::array<std::uint8_t, 4>{request.destination.bytes[0], request.destination.bytes[1],
                                           request.destination.bytes[2], request.destination.bytes[3]}),
              (std::array<std::uint8_t, 4>{93, 184, 216, 34}));
    EXPECT_EQ(request.port, 443);
    EXPECT_FALSE(request.nonblocking);
    EXPECT_EQ(request.timeout_ms, 0u);

    const int data = endpoint.accept_one();
    ASSERT_GE(data, 0);
    Fd data_guard(data);
    const auto credential = encode_credential(42, test_token());
    EXPECT_EQ(read_exactly(data, credential_size), Bytes(credential.begin(), credential.end()));
    ASSERT_EQ(send(fd.fd, "hello", 5, MSG_NOSIGNAL), 5);
    EXPECT_EQ(read_exactly(data, 5), Bytes({'h', 'e', 'l', 'l', 'o'}));

    sockaddr_in peer{};
    socklen_t len = sizeof peer;
    ASSERT_EQ(getpeername(fd.fd, reinterpret_cast<sockaddr*>(&peer), &len), 0);
    EXPECT_EQ(ntohs(peer.sin_port), endpoint.port());
    EXPECT_EQ(ntohl(peer.sin_addr.s_addr), INADDR_LOOPBACK);
}

TEST(ConnectFd, SendTimeoutBecomesTheConnectTimeout) {
    FakeSlmd fake;
    fake.serve(connect_reply({-ETIMEDOUT, Route::modem, 0, Token{}, 0}));
    Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    const timeval tv{7, 500000};
    ASSERT_EQ(setsockopt(fd.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv), 0);
    const auto dest = ipv4("10.1.2.3", 80);
    EXPECT_EQ(slmsock_connect_fd(fd.fd, sa(dest), sizeof dest, nullptr), -ETIMEDOUT);
    fake.finish();
    ASSERT_EQ(fake.failure(), "");
    EXPECT_EQ(connect_request(fake).timeout_ms, 7500u);
}

TEST(ConnectFd, NonblockingReturnsEinprogressAndRestoresFlags) {
    FakeSlmd fake;
    TcpListener endpoint;
    ASSERT_TRUE(endpoint.ok());
    fake.serve(connect_reply({-EINPROGRESS, Route::modem, 7, test_token(), endpoint.port()}));

    Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    const int flags_before = fcntl(fd.fd, F_GETFL);
    ASSERT_TRUE(flags_before & O_NONBLOCK);
    const auto dest = ipv4("198.51.100.7", 8883);
    std::uint64_t flow_id = 0;
    EXPECT_EQ(slmsock_connect_fd(fd.fd, sa(dest), sizeof dest, &flow_id), -EINPROGRESS);
    EXPECT_EQ(flow_id, 7u);
    EXPECT_EQ(fcntl(fd.fd, F_GETFL), flags_before);
    fake.finish();
    ASSERT_EQ(fake.failure(), "");
    EXPECT_TRUE(connect_request(fake).nonblocking);
    EXPECT_EQ(connect_request(fake).port, 8883);

    const int data = endpoint.accept_one();
    ASSERT_GE(data, 0);
    Fd data_guard(data);
    const auto credential = encode_credential(7, test_token());
    EXPECT_EQ(read_exactly(data, credential_size), Bytes(credential.begin(), credential.end()));
    // Writable at once, as the app's event loop expects after EINPROGRESS.
    pollfd p{fd.fd, POLLOUT, 0};
    EXPECT_EQ(poll(&p, 1, bounded_wait_ms), 1);
}

TEST(ConnectFd, Ipv6SocketAttachesToTheIpv6Loopback) {
    TcpListener endpoint(AF_INET6);
    if (!endpoint.ok()) GTEST_SKIP() << "no ::1 on this host";
    FakeSlmd fake;
    fake.serve(connect_reply({0, Route::modem, 9, test_token(), endpoint.port()}));
    Fd fd(socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
    const auto dest = ipv6("2001:db8::1", 443);
    EXPECT_EQ(slmsock_connect_fd(fd.fd, sa(dest), sizeof dest, nullptr), 0);
    fake.finish();
    ASSERT_EQ(fake.failure(), "");
    EXPECT_EQ(connect_request(fake).destination.family, Family::ipv6);
    EXPECT_EQ(connect_request(fake).destination.bytes[15], 1);
    const int data = endpoint.accept_one();
    ASSERT_GE(data, 0);
    Fd data_guard(data);
    EXPECT_EQ(read_exactly(data, credential_size).size(), credential_size);
}

TEST(ConnectFd, V4MappedDestinationGoesToTheModemAsIpv4) {
    FakeSlmd fake;
    fake.serve(connect_reply({-ECONNREFUSED, Route::modem, 0, Token{}, 0}));
    Fd fd(socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
    const auto dest = ipv6("::ffff:192.0.2.1", 25);
    EXPECT_EQ(slmsock_connect_fd(fd.fd, sa(dest), sizeof dest, nullptr), -ECONNREFUSED);
    fake.finish();
    ASSERT_EQ(fake.failure(), "");
    Address expected;
    expected.family = Family::ipv4;
    expected.bytes = {192, 0, 2, 1};
    EXPECT_EQ(connect_request(fake).destination, expected);
}

TEST(ConnectFd, ModemErrorPassesThroughAndLeavesTheSocketUnconnected) {
    FakeSlmd fake;
    fake.serve(connect_reply({-ECONNREFUSED, Route::modem, 0, Token{}, 0}));
    Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    const auto dest = ipv4("10.1.2.3", 80);
    std::uint64_t flow_id = 99;
    EXPECT_EQ(slmsock_connect_fd(fd.fd, sa(dest), sizeof dest, &flow_id), -ECONNREFUSED);
    EXPECT_EQ(flow_id, 99u);
    sockaddr_storage peer;
    socklen_t len = sizeof peer;
    EXPECT_EQ(getpeername(fd.fd, reinterpret_cast<sockaddr*>(&peer), &len), -1);
    EXPECT_EQ(errno, ENOTCONN);
}

TEST(ConnectFd, BypassReturnsOne) {
    FakeSlmd fake;
    fake.serve(connect_reply({0, Route::bypass, 0, Token{}, 0}));
    Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    const auto dest = ipv4("192.168.1.10", 80);
    EXPECT_EQ(slmsock_connect_fd(fd.fd, sa(dest), sizeof dest, nullptr), 1);
}

TEST(ConnectFd, ErrorReplyPassesThrough) {
    FakeSlmd fake;
    fake.serve([](const Envelope& e) { return reply_to(e, ErrorReply{-EACCES, "not in group slm"}); });
    Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    const auto dest = ipv4("10.1.2.3", 80);
    EXPECT_EQ(slmsock_connect_fd(fd.fd, sa(dest), sizeof dest, nullptr), -EACCES);
}

TEST(ConnectFd, ErrorReplyWithRequestIdZeroIsOurs) {
    FakeSlmd fake;
    fake.serve([](const Envelope&) { return encode({0, ErrorReply{-EPROTONOSUPPORT, "unsupported version"}}); });
    Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    const auto dest = ipv4("10.1.2.3", 80);
    EXPECT_EQ(slmsock_connect_fd(fd.fd, sa(dest), sizeof dest, nullptr), -EPROTONOSUPPORT);
}

TEST(ConnectFd, RefusalBeforeTheRequestIsRead) {
    FakeSlmd fake;
    fake.refuse(encode({0, ErrorReply{-EACCES, "not allowed to use the modem"}}));
    Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    const auto dest = ipv4("10.1.2.3", 80);
    EXPECT_EQ(slmsock_connect_fd(fd.fd, sa(dest), sizeof dest, nullptr), -EACCES);
    fake.finish();
    EXPECT_EQ(fake.failure(), "");
}

TEST(ConnectFd, DaemonAbsentIsEnetdownAtOnce) {
    FakeSlmd fake;  // only for its temporary directory
    const std::string missing = fake.path() + ".missing";
    setenv("SLMSOCK_SOCKET", missing.c_str(), 1);
    Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    const auto dest = ipv4("10.1.2.3", 80);
    const auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(slmsock_connect_fd(fd.fd, sa(dest), sizeof dest, nullptr), -ENETDOWN);

    // A stale socket file nobody listens on (slmd died without unlinking it).
    const std::string stale = fake.path() + ".stale";
    Fd bound(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    sockaddr_un su{};
    su.sun_family = AF_UNIX;
    std::strncpy(su.sun_path, stale.c_str(), sizeof su.sun_path - 1);
    ASSERT_EQ(bind(bound.fd, reinterpret_cast<sockaddr*>(&su), sizeof su), 0);
    setenv("SLMSOCK_SOCKET", stale.c_str(), 1);
    EXPECT_EQ(slmsock_connect_fd(fd.fd, sa(dest), sizeof dest, nullptr), -ENETDOWN);
    EXPECT_EQ(slmsock_data_port(), -ENETDOWN);
    struct slmsock_status st;
    EXPECT_EQ(slmsock_status(&st), -ENETDOWN);
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
    unlink(stale.c_str());
}

TEST(ConnectFd, BadRepliesAreEproto) {
    const std::vector<FakeSlmd::Handler> bad = {
        [](const Envelope&) { return Bytes{'g', 'a', 'r', 'b', 'a', 'g', 'e', '!', '!'}; },
        [](const Envelope& e) { return encode({e.request_id + 1, ConnectReply{0, Route::bypass, 0, {}, 0}}); },
        [](const Envelope& e) { return reply_to(e, StatusReply{}); },  // the wrong reply type
        [](const Envelope& e) {
            Bytes b = reply_to(e, ConnectReply{0, Route::bypass, 0, {}, 0});
            b[1] = 2;  // another protocol version
            return b;
        },
        [](const Envelope& e) {
            Bytes b = reply_to(e, ConnectReply{0, Route::bypass, 0, {}, 0});
            b.resize(max_message_size + 100);  // over-long
            return b;
        },
        [](const Envelope& e) { return reply_to(e, ConnectReply{5, Route::modem, 1, {}, 1}); },  // status > 0
        [](const Envelope& e) { return reply_to(e, ConnectReply{0, Route::modem, 1, {}, 0}); },  // no data port
        [](const Envelope& e) { return reply_to(e, ErrorReply{0, "no errno"}); },
    };
    FakeSlmd fake;
    fake.serve(bad);
    const auto dest = ipv4("10.1.2.3", 80);
    for (std::size_t i = 0; i < bad.size(); ++i) {
        Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        EXPECT_EQ(slmsock_connect_fd(fd.fd, sa(dest), sizeof dest, nullptr), -EPROTO) << "reply " << i;
    }
    fake.finish();
    EXPECT_EQ(fake.failure(), "");
}

TEST(ConnectFd, DaemonClosingWithoutAnswerIsEnetdown) {
    FakeSlmd fake;
    fake.serve([](const Envelope&) { return Bytes{}; });
    Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    const auto dest = ipv4("10.1.2.3", 80);
    EXPECT_EQ(slmsock_connect_fd(fd.fd, sa(dest), sizeof dest, nullptr), -ENETDOWN);
}

TEST(ConnectFd, DataEndpointRefusingIsEnetdownNotTheRemotesRefusal) {
    FakeSlmd fake;
    std::uint16_t closed_port;
    {
        TcpListener gone;
        closed_port = gone.port();
    }
    fake.serve(connect_reply({0, Route::modem, 1, test_token(), closed_port}));
    Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    const auto dest = ipv4("10.1.2.3", 80);
    EXPECT_EQ(slmsock_connect_fd(fd.fd, sa(dest), sizeof dest, nullptr), -ENETDOWN);
}

std::atomic<int> signals_seen{0};
void count_signal(int) { signals_seen.fetch_add(1); }

TEST(ConnectFd, SignalsWhileWaitingForTheModemAreRetried) {
    struct sigaction action{}, old{};
    action.sa_handler = count_signal;  // no SA_RESTART: poll() returns EINTR
    sigemptyset(&action.sa_mask);
    ASSERT_EQ(sigaction(SIGUSR1, &action, &old), 0);
    signals_seen = 0;
    const pthread_t caller = pthread_self();

    FakeSlmd fake;
    fake.serve([caller](const Envelope& e) {
        // The client is past its send and waiting for this reply: interrupt it until one signal has landed.
        for (int i = 0; i < 1000 && signals_seen.load() < 3; ++i) {
            pthread_kill(caller, SIGUSR1);
            pollfd none{-1, 0, 0};
            poll(&none, 0, 1);  // yield the CPU so the handler can run
        }
        return reply_to(e, ConnectReply{-EHOSTUNREACH, Route::modem, 0, {}, 0});
    });
    Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    const auto dest = ipv4("10.1.2.3", 80);
    EXPECT_EQ(slmsock_connect_fd(fd.fd, sa(dest), sizeof dest, nullptr), -EHOSTUNREACH);
    fake.finish();
    EXPECT_GE(signals_seen.load(), 1);
    sigaction(SIGUSR1, &old, nullptr);
}

TEST(ConnectFd, ArgumentsAreCheckedBeforeAskingSlmd) {
    setenv("SLMSOCK_SOCKET", "/nonexistent/slmd.sock", 1);
    const auto dest = ipv4("10.1.2.3", 80);
    Fd tcp(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    Fd udp(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    Fd unix_fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    EXPECT_EQ(slmsock_connect_fd(tcp.fd, nullptr, 0, nullptr), -EFAULT);
    EXPECT_EQ(slmsock_connect_fd(tcp.fd, sa(dest), sizeof dest - 1, nullptr), -EINVAL);
    EXPECT_EQ(slmsock_connect_fd(udp.fd, sa(dest), sizeof dest, nullptr), -EPROTOTYPE);
    EXPECT_EQ(slmsock_connect_fd(unix_fd.fd, sa(dest), sizeof dest, nullptr), -EAFNOSUPPORT);
    EXPECT_EQ(slmsock_connect_fd(-1, sa(dest), sizeof dest, nullptr), -EBADF);
    const auto dest6 = ipv6("2001:db8::1", 80);
    EXPECT_EQ(slmsock_connect_fd(tcp.fd, sa(dest6), sizeof dest6, nullptr), -EAFNOSUPPORT);
    sockaddr_un su{};
    su.sun_family = AF_UNIX;
    EXPECT_EQ(slmsock_connect_fd(tcp.fd, sa(su), sizeof su, nullptr), -EAFNOSUPPORT);

    TcpListener listener;
    Fd connected(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    const auto local = ipv4("127.0.0.1", listener.port());
    ASSERT_EQ(connect(connected.fd, sa(local), sizeof local), 0);
    EXPECT_EQ(slmsock_connect_fd(connected.fd, sa(dest), sizeof dest, nullptr), -EISCONN);
    unsetenv("SLMSOCK_SOCKET");
}

TEST(TcpConnect, NumericHostThroughTheModem) {
    FakeSlmd fake;
    TcpListener endpoint;
    fake.serve(connect_reply({0, Route::modem, 5, test_token(), endpoint.port()}));
    const int fd = slmsock_tcp_connect("203.0.113.9", 993, AF_UNSPEC);
    ASSERT_GE(fd, 0);
    Fd guard(fd);
    EXPECT_FALSE(fcntl(fd, F_GETFL) & O_NONBLOCK);
    EXPECT_TRUE(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    fake.finish();
    ASSERT_EQ(fake.failure(), "");
    ASSERT_EQ(fake.requests().size(), 1u);
    EXPECT_EQ(connect_request(fake).port, 993);
    EXPECT_FALSE(connect_request(fake).nonblocking);
    const int data = endpoint.accept_one();
    ASSERT_GE(data, 0);
    Fd data_guard(data);
    const auto credential = encode_credential(5, test_token());
    EXPECT_EQ(read_exactly(data, credential_size), Bytes(credential.begin(), credential.end()));
}

TEST(TcpConnect, NameResolvedByTheModemThenBypassConnectsLocally) {
    FakeSlmd fake;
    TcpListener remote;  // the "local route" destination
    Address loopback;
    loopback.family = Family::ipv4;
    loopback.bytes = {127, 0, 0, 1};
    fake.serve({[loopback](const Envelope& e) { return reply_to(e, ResolveReply{0, {loopback}}); },
                connect_reply({0, Route::bypass, 0, {}, 0})});
    const int fd = slmsock_tcp_connect("printer.lan", remote.port(), AF_INET);
    ASSERT_GE(fd, 0);
    Fd guard(fd);
    fake.finish();
    ASSERT_EQ(fake.failure(), "");
    ASSERT_EQ(fake.requests().size(), 2u);
    const auto& resolve = std::get<ResolveRequest>(fake.requests()[0].message);
    EXPECT_EQ(resolve.name, "printer.lan");
    EXPECT_EQ(resolve.family, Family::ipv4);
    EXPECT_EQ(connect_request(fake, 1).port, remote.port());
    const int peer = remote.accept_one();
    EXPECT_GE(peer, 0);
    Fd peer_guard(peer);
}

TEST(TcpConnect, TriesTheNextAddressAfterARefusal) {
    FakeSlmd fake;
    TcpListener endpoint;
    Address a, b;
    a.family = b.family = Family::ipv4;
    a.bytes = {192, 0, 2, 1};
    b.bytes = {192, 0, 2, 2};
    fake.serve({[a, b](const Envelope& e) { return reply_to(e, ResolveReply{0, {a, b}}); },
                connect_reply({-ECONNREFUSED, Route::modem, 0, {}, 0}),
                connect_reply({0, Route::modem, 6, test_token(), endpoint.port()})});
    const int fd = slmsock_tcp_connect("two.example", 80, AF_UNSPEC);
    EXPECT_GE(fd, 0);
    Fd guard(fd);
    fake.finish();
    ASSERT_EQ(fake.failure(), "");
    ASSERT_EQ(fake.requests().size(), 3u);
    EXPECT_EQ(connect_request(fake, 1).destination, a);
    EXPECT_EQ(connect_request(fake, 2).destination, b);
}

TEST(TcpConnect, ResolveFailureAndAbsentDaemonAreErrnos) {
    {
        FakeSlmd fake;
        fake.serve([](const Envelope& e) { return reply_to(e, ResolveReply{EAI_NONAME, {}}); });
        EXPECT_EQ(slmsock_tcp_connect("nowhere.invalid", 80, AF_UNSPEC), -EHOSTUNREACH);
    }
    setenv("SLMSOCK_SOCKET", "/nonexistent/slmd.sock", 1);
    EXPECT_EQ(slmsock_tcp_connect("example.com", 80, AF_UNSPEC), -ENETDOWN);
    EXPECT_EQ(slmsock_tcp_connect("10.0.0.1", 80, AF_UNSPEC), -ENETDOWN);
    EXPECT_EQ(slmsock_tcp_connect("10.0.0.1", 80, AF_UNIX), -EAFNOSUPPORT);
    EXPECT_EQ(slmsock_tcp_connect(nullptr, 80, AF_UNSPEC), -EFAULT);
    unsetenv("SLMSOCK_SOCKET");
}

TEST(Resolve, FillsSockaddrsWithPortZero) {
    FakeSlmd fake;
    Address a, b;
    a.family = Family::ipv4;
    a.bytes = {93, 184, 216, 34};
    b.family = Family::ipv6;
    b.bytes = {0x26, 0x06, 0x28, 0x00, 0x02, 0x20, 0, 1, 0x2, 0x48, 0x18, 0x93, 0x25, 0xc8, 0x19, 0x46};
    fake.serve({[a, b](const Envelope& e) { return reply_to(e, ResolveReply{0, {a, b}}); },
                [a, b](const Envelope& e) { return reply_to(e, ResolveReply{0, {a, b}}); },
                [a, b](const Envelope& e) { return reply_to(e, ResolveReply{0, {b, a}}); }});
    std::array<sockaddr_storage, 4> out{};
    std::size_t count = 99;
    ASSERT_EQ(slmsock_resolve("example.com", AF_UNSPEC, out.data(), out.size(), &count), 0);
    ASSERT_EQ(count, 2u);
    const auto& s4 = reinterpret_cast<const sockaddr_in&>(out[0]);
    EXPECT_EQ(s4.sin_family, AF_INET);
    EXPECT_EQ(s4.sin_port, 0);
    char text[INET6_ADDRSTRLEN];
    EXPECT_STREQ(inet_ntop(AF_INET, &s4.sin_addr, text, sizeof text), "93.184.216.34");
    const auto& s6 = reinterpret_cast<const sockaddr_in6&>(out[1]);
    EXPECT_EQ(s6.sin6_family, AF_INET6);
    EXPECT_EQ(s6.sin6_port, 0);
    EXPECT_STREQ(inet_ntop(AF_INET6, &s6.sin6_addr, text, sizeof text), "2606:2800:220:1:248:1893:25c8:1946");

    ASSERT_EQ(slmsock_resolve("example.com", AF_UNSPEC, out.data(), 1, &count), 0);
    EXPECT_EQ(count, 1u);
    // A family the caller did not ask for is never handed back.
    ASSERT_EQ(slmsock_resolve("example.com", AF_INET, out.data(), out.size(), &count), 0);
    EXPECT_EQ(count, 1u);
    EXPECT_EQ(out[0].ss_family, AF_INET);
    fake.finish();
    ASSERT_EQ(fake.failure(), "");
    EXPECT_EQ(std::get<ResolveRequest>(fake.requests()[0].message).family, Family::unspecified);
    EXPECT_EQ(std::get<ResolveRequest>(fake.requests()[2].message).family, Family::ipv4);
}

TEST(Resolve, ErrorsAreEaiValues) {
    FakeSlmd fake;
    fake.serve({[](const Envelope& e) { return reply_to(e, ResolveReply{EAI_AGAIN, {}}); },
                [](const Envelope& e) { return reply_to(e, ErrorReply{-EACCES, "no"}); }});
    std::array<sockaddr_storage, 2> out{};
    std::size_t count = 0;
    EXPECT_EQ(slmsock_resolve("example.com", AF_UNSPEC, out.data(), out.size(), &count), EAI_AGAIN);
    EXPECT_EQ(slmsock_resolve("example.com", AF_UNSPEC, out.data(), out.size(), &count), EAI_SYSTEM);
    EXPECT_EQ(errno, EACCES);
    fake.finish();
    EXPECT_EQ(slmsock_resolve("example.com", AF_UNIX, out.data(), out.size(), &count), EAI_FAMILY);
    EXPECT_EQ(slmsock_resolve("", AF_UNSPEC, out.data(), out.size(), &count), EAI_NONAME);
    EXPECT_EQ(slmsock_resolve(std::string(254, 'a').c_str(), AF_UNSPEC, out.data(), out.size(), &count),
              EAI_NONAME);
    setenv("SLMSOCK_SOCKET", "/nonexistent/slmd.sock", 1);
    EXPECT_EQ(slmsock_resolve("example.com", AF_UNSPEC, out.data(), out.size(), &count), EAI_SYSTEM);
    EXPECT_EQ(errno, ENETDOWN);
}

TEST(Status, CopiesAndTruncatesTheDaemonsView) {
    FakeSlmd fake;
    const StatusReply reply{"serving", "registered (home)", "2.9.0", "10.160.1.2",
                            "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff-and-more-text-than-fits", 3, 1, 40404};
    fake.serve({[reply](const Envelope& e) { return reply_to(e, reply); },
                [reply](const Envelope& e) { return reply_to(e, reply); }});
    struct slmsock_status st;
    std::memset(&st, 0x55, sizeof st);
    ASSERT_EQ(slmsock_status(&st), 0);
    EXPECT_STREQ(st.modem_state, "serving");
    EXPECT_STREQ(st.registration, "registered (home)");
    EXPECT_STREQ(st.release, "2.9.0");
    EXPECT_STREQ(st.ipv4, "10.160.1.2");
    EXPECT_EQ(std::string(st.ipv6), reply.ipv6.substr(0, sizeof st.ipv6 - 1));
    EXPECT_EQ(st.active_flows, 3u);
    EXPECT_EQ(st.queued_flows, 1u);
    EXPECT_EQ(slmsock_data_port(), 40404);
    fake.finish();
    ASSERT_EQ(fake.failure(), "");
    EXPECT_TRUE(std::holds_alternative<StatusRequest>(fake.requests()[0].message));
}

TEST(FlowStatus, ByIdAndByPort) {
    FakeSlmd fake;
    Address peer;
    peer.family = Family::ipv4;
    peer.bytes = {198, 51, 100, 7};
    fake.serve({[peer](const Envelope& e) { return reply_to(e, FlowStatusReply{42, FlowState::connected, 0, peer, 8883}); },
                [peer](const Envelope& e) {
                    return reply_to(e, FlowStatusReply{43, FlowState::failed, -ECONNREFUSED, peer, 80});
                },
                [peer](const Envelope& e) { return reply_to(e, FlowStatusReply{41, FlowState::connected, 0, peer, 1}); },
                [](const Envelope& e) { return reply_to(e, ErrorReply{-ENOENT, "no such flow"}); },
                [](const Envelope& e) {
                    return reply_to(e, FlowStatusReply{0, FlowState::closed, -ENOTCONN, Address{Family::unspecified, {}}, 0});
                }});
    struct slmsock_flow_status st;
    ASSERT_EQ(slmsock_flow_status(42, &st), 0);
    EXPECT_EQ(st.state, SLMSOCK_CONNECTED);
    EXPECT_EQ(st.error, 0);
    ASSERT_EQ(st.peer_len, sizeof(sockaddr_in));
    const auto& sin = reinterpret_cast<const sockaddr_in&>(st.peer);
    EXPECT_EQ(sin.sin_family, AF_INET);
    EXPECT_EQ(ntohs(sin.sin_port), 8883);
    char text[INET_ADDRSTRLEN];
    EXPECT_STREQ(inet_ntop(AF_INET, &sin.sin_addr, text, sizeof text), "198.51.100.7");

    ASSERT_EQ(slmsock_flow_status_by_port(50001, &st), 0);
    EXPECT_EQ(st.state, SLMSOCK_FAILED);
    EXPECT_EQ(st.error, -ECONNREFUSED);
    EXPECT_EQ(slmsock_flow_status(42, &st), -EPROTO);  // the reply names flow 41
    EXPECT_EQ(slmsock_flow_status(44, &st), -ENOENT);
    // slmd's answer for a flow it does not know.
    ASSERT_EQ(slmsock_flow_status(45, &st), 0);
    EXPECT_EQ(st.state, SLMSOCK_CLOSED);
    EXPECT_EQ(st.error, -ENOTCONN);
    EXPECT_EQ(st.peer_len, 0u);
    fake.finish();
    ASSERT_EQ(fake.failure(), "");
    EXPECT_EQ(std::get<FlowStatusRequest>(fake.requests()[0].message), (FlowStatusRequest{42, 0}));
    EXPECT_EQ(std::get<FlowStatusRequest>(fake.requests()[1].message), (FlowStatusRequest{0, 50001}));
    EXPECT_EQ(slmsock_flow_status(0, &st), -EINVAL);
    EXPECT_EQ(slmsock_flow_status_by_port(0, &st), -EINVAL);
}

TEST(Shutdown, MapsHowAndPassesTheStatus) {
    FakeSlmd fake;
    fake.serve({[](const Envelope& e) { return reply_to(e, ShutdownReply{0}); },
                [](const Envelope& e) { return reply_to(e, ShutdownReply{-ENOTCONN}); },
                [](const Envelope& e) { return reply_to(e, ShutdownReply{0}); }});
    EXPECT_EQ(slmsock_shutdown(42, SHUT_WR), 0);
    EXPECT_EQ(slmsock_shutdown(42, SHUT_RDWR), -ENOTCONN);
    EXPECT_EQ(slmsock_shutdown_by_port(50002, SHUT_RD), 0);
    EXPECT_EQ(slmsock_shutdown(42, 7), -EINVAL);
    EXPECT_EQ(slmsock_shutdown(0, SHUT_WR), -EINVAL);
    fake.finish();
    ASSERT_EQ(fake.failure(), "");
    ASSERT_EQ(fake.requests().size(), 3u);
    EXPECT_EQ(std::get<ShutdownRequest>(fake.requests()[0].message), (ShutdownRequest{42, 0, ShutdownHow::write}));
    EXPECT_EQ(std::get<ShutdownRequest>(fake.requests()[1].message), (ShutdownRequest{42, 0, ShutdownHow::both}));
    EXPECT_EQ(std::get<ShutdownRequest>(fake.requests()[2].message), (ShutdownRequest{0, 50002, ShutdownHow::read}));
}

// ---- Servers and UDP ----------------------------------------------------------------------------------------

Address v4_address(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d) {
    Address x;
    x.family = Family::ipv4;
    x.bytes = {a, b, c, d};
    return x;
}

TEST(Bind, SendsTransportFamilyAndPortsAndPassesTheStatus) {
    FakeSlmd fake;
    fake.serve({[](const Envelope& e) { return reply_to(e, BindReply{0}); },
                [](const Envelope& e) { return reply_to(e, BindReply{-EBUSY}); },
                [](const Envelope& e) { return reply_to(e, BindReply{-EADDRINUSE}); },
                [](const Envelope& e) { return reply_to(e, ListenReply{0}); },  // the wrong reply type
                [](const Envelope& e) { return reply_to(e, BindReply{3}); }});
    EXPECT_EQ(slmsock_bind(SOCK_DGRAM, AF_INET, 5683, 40001), 0);
    EXPECT_EQ(slmsock_bind(SOCK_STREAM, AF_INET6, 8080, 40002), -EBUSY);
    EXPECT_EQ(slmsock_bind(SOCK_STREAM, AF_INET, 8080, 40003), -EADDRINUSE);
    EXPECT_EQ(slmsock_bind(SOCK_STREAM, AF_INET, 8080, 40004), -EPROTO);
    EXPECT_EQ(slmsock_bind(SOCK_STREAM, AF_INET, 8080, 40005), -EPROTO);
    fake.finish();
    ASSERT_EQ(fake.failure(), "");
    ASSERT_EQ(fake.requests().size(), 5u);
    EXPECT_EQ(std::get<BindRequest>(fake.requests()[0].message),
              (BindRequest{Transport::udp, Family::ipv4, 5683, 40001}));
    EXPECT_EQ(std::get<BindRequest>(fake.requests()[1].message),
              (BindRequest{Transport::tcp, Family::ipv6, 8080, 40002}));
    // Arguments are checked before asking slmd.
    setenv("SLMSOCK_SOCKET", "/nonexistent/slmd.sock", 1);
    EXPECT_EQ(slmsock_bind(SOCK_RAW, AF_INET, 1, 2), -EPROTOTYPE);
    EXPECT_EQ(slmsock_bind(SOCK_DGRAM, AF_UNIX, 1, 2), -EAFNOSUPPORT);
    EXPECT_EQ(slmsock_bind(SOCK_DGRAM, AF_INET, 0, 2), -EINVAL);
    EXPECT_EQ(slmsock_bind(SOCK_DGRAM, AF_INET, 1, 0), -EINVAL);
    EXPECT_EQ(slmsock_bind(SOCK_DGRAM, AF_INET, 1, 2), -ENETDOWN);
    unsetenv("SLMSOCK_SOCKET");
}

TEST(Listen, SendsFamilyAndPortAndPassesTheStatus) {
    FakeSlmd fake;
    fake.serve({[](const Envelope& e) { return reply_to(e, ListenReply{0}); },
                [](const Envelope& e) { return reply_to(e, ListenReply{-EBUSY}); },
                [](const Envelope& e) { return reply_to(e, ErrorReply{-EPROTO, "unknown message type"}); }});
    EXPECT_EQ(slmsock_listen(AF_INET, 40010), 0);
    EXPECT_EQ(slmsock_listen(AF_INET6, 40011), -EBUSY);
    EXPECT_EQ(slmsock_listen(AF_INET, 40012), -EPROTO);
    fake.finish();
    ASSERT_EQ(fake.failure(), "");
    EXPECT_EQ(std::get<ListenRequest>(fake.requests()[0].message), (ListenRequest{Family::ipv4, 40010}));
    EXPECT_EQ(std::get<ListenRequest>(fake.requests()[1].message), (ListenRequest{Family::ipv6, 40011}));
    EXPECT_EQ(slmsock_listen(AF_INET, 0), -EINVAL);
    EXPECT_EQ(slmsock_listen(AF_UNIX, 1), -EAFNOSUPPORT);
}

TEST(UdpAssociate, ModemRouteGivesTheStandInPort) {
    FakeSlmd fake;
    fake.serve({[](const Envelope& e) { return reply_to(e, UdpAssociateReply{0, Route::modem, 45678}); },
                [](const Envelope& e) { return reply_to(e, UdpAssociateReply{0, Route::modem, 45679}); },
                [](const Envelope& e) { return reply_to(e, UdpAssociateReply{0, Route::bypass, 0}); },
                [](const Envelope& e) { return reply_to(e, UdpAssociateReply{-EBUSY, Route::modem, 0}); },
                [](const Envelope& e) { return reply_to(e, UdpAssociateReply{0, Route::modem, 0}); }});
    const auto peer = ipv4("198.51.100.7", 5683);
    const auto mapped = ipv6("::ffff:192.0.2.1", 53);
    std::uint16_t stand_in = 0;
    EXPECT_EQ(slmsock_udp_associate(AF_INET, 40020, sa(peer), sizeof peer, &stand_in), 0);
    EXPECT_EQ(stand_in, 45678);
    EXPECT_EQ(slmsock_udp_associate(AF_INET6, 40021, sa(mapped), sizeof mapped, &stand_in), 0);
    EXPECT_EQ(stand_in, 45679);
    stand_in = 7;
    EXPECT_EQ(slmsock_udp_associate(AF_INET, 40022, sa(peer), sizeof peer, &stand_in), 1);
    EXPECT_EQ(stand_in, 7);  // untouched unless 0 is returned
    EXPECT_EQ(slmsock_udp_associate(AF_INET, 40023, sa(peer), sizeof peer, &stand_in), -EBUSY);
    EXPECT_EQ(slmsock_udp_associate(AF_INET, 40024, sa(peer), sizeof peer, &stand_in), -EPROTO);  // no port
    fake.finish();
    ASSERT_EQ(fake.failure(), "");
    ASSERT_EQ(fake.requests().size(), 5u);
    const auto& first = std::get<UdpAssociateRequest>(fake.requests()[0].message);
    EXPECT_EQ(first, (UdpAssociateRequest{Family::ipv4, 40020, v4_address(198, 51, 100, 7), 5683, std::nullopt}));
    // The socket's family is AF_INET6; the v4-mapped peer goes to the modem as IPv4.
    const auto& second = std::get<UdpAssociateRequest>(fake.requests()[1].message);
    EXPECT_EQ(second, (UdpAssociateRequest{Family::ipv6, 40021, v4_address(192, 0, 2, 1), 53, std::nullopt}));

    setenv("SLMSOCK_SOCKET", "/nonexistent/slmd.sock", 1);
    EXPECT_EQ(slmsock_udp_associate(AF_INET, 0, sa(peer), sizeof peer, &stand_in), -EINVAL);
    const auto port_zero = ipv4("198.51.100.7", 0);
    EXPECT_EQ(slmsock_udp_associate(AF_INET, 1, sa(port_zero), sizeof port_zero, &stand_in), -EINVAL);
    EXPECT_EQ(slmsock_udp_associate(AF_INET, 1, nullptr, 0, &stand_in), -EFAULT);
    EXPECT_EQ(slmsock_udp_associate(AF_INET, 1, sa(peer), sizeof peer, nullptr), -EFAULT);
    EXPECT_EQ(slmsock_udp_associate(AF_INET, 1, sa(peer), sizeof peer - 1, &stand_in), -EINVAL);
    EXPECT_EQ(slmsock_udp_associate(AF_UNIX, 1, sa(peer), sizeof peer, &stand_in), -EAFNOSUPPORT);
    EXPECT_EQ(slmsock_udp_associate(AF_INET, 1, sa(peer), sizeof peer, &stand_in), -ENETDOWN);
    unsetenv("SLMSOCK_SOCKET");
}

TEST(Lookup, DecodesLocalAndPeerAddresses) {
    FakeSlmd fake;
    Address modem_v6;
    modem_v6.family = Family::ipv6;
    modem_v6.bytes = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
    fake.serve({// A TCP server bound on the modem's address; the accepted peer's port is unknown (0).
                [](const Envelope& e) {
                    return reply_to(e, LookupReply{0, v4_address(10, 0, 0, 2), 8080, v4_address(192, 0, 2, 9), 0});
                },
                // A wildcard server: the unspecified family stands for the socket's own wildcard.
                [](const Envelope& e) {
                    return reply_to(e, LookupReply{0, Address{Family::unspecified, {}}, 5683, Address{Family::unspecified, {}}, 0});
                },
                // A UDP client: no modem-side port; the stand-in's peer is known.
                [modem_v6](const Envelope& e) {
                    return reply_to(e, LookupReply{0, Address{Family::unspecified, {}}, 0, modem_v6, 5353});
                },
                [](const Envelope& e) { return reply_to(e, LookupReply{-ENOENT, {}, 0, {}, 0}); },
                [](const Envelope& e) { return reply_to(e, ShutdownReply{0}); }});
    sockaddr_storage local, peer;
    socklen_t local_len = 1, peer_len = 1;
    ASSERT_EQ(slmsock_lookup(SOCK_STREAM, AF_INET, 40030, 50000, &local, &local_len, &peer, &peer_len), 0);
    ASSERT_EQ(local_len, sizeof(sockaddr_in));
    char text[INET6_ADDRSTRLEN];
    const auto& l4 = reinterpret_cast<const sockaddr_in&>(local);
    EXPECT_EQ(l4.sin_family, AF_INET);
    EXPECT_EQ(ntohs(l4.sin_port), 8080);
    EXPECT_STREQ(inet_ntop(AF_INET, &l4.sin_addr, text, sizeof text), "10.0.0.2");
    ASSERT_EQ(peer_len, sizeof(sockaddr_in));
    const auto& p4 = reinterpret_cast<const sockaddr_in&>(peer);
    EXPECT_EQ(ntohs(p4.sin_port), 0);
    EXPECT_STREQ(inet_ntop(AF_INET, &p4.sin_addr, text, sizeof text), "192.0.2.9");

    ASSERT_EQ(slmsock_lookup(SOCK_DGRAM, AF_INET6, 40031, 0, &local, &local_len, &peer, &peer_len), 0);
    ASSERT_EQ(local_len, sizeof(sockaddr_in6));
    const auto& l6 = reinterpret_cast<const sockaddr_in6&>(local);
    EXPECT_EQ(l6.sin6_family, AF_INET6);
    EXPECT_EQ(ntohs(l6.sin6_port), 5683);
    EXPECT_TRUE(IN6_IS_ADDR_UNSPECIFIED(&l6.sin6_addr));
    EXPECT_EQ(peer_len, 0u);  // not asked for (loopback_peer_port 0)

    ASSERT_EQ(slmsock_lookup(SOCK_DGRAM, AF_INET6, 40032, 45678, nullptr, nullptr, &peer, &peer_len), 0);
    ASSERT_EQ(peer_len, sizeof(sockaddr_in6));
    const auto& p6 = reinterpret_cast<const sockaddr_in6&>(peer);
    EXPECT_EQ(ntohs(p6.sin6_port), 5353);
    EXPECT_STREQ(inet_ntop(AF_INET6, &p6.sin6_addr, text, sizeof text), "2001:db8::2");

    EXPECT_EQ(slmsock_lookup(SOCK_STREAM, AF_INET, 40033, 0, &local, &local_len, nullptr, nullptr), -ENOENT);
    EXPECT_EQ(slmsock_lookup(SOCK_STREAM, AF_INET, 40034, 0, nullptr, nullptr, nullptr, nullptr), -EPROTO);
    fake.finish();
    ASSERT_EQ(fake.failure(), "");
    ASSERT_EQ(fake.requests().size(), 5u);
    EXPECT_EQ(std::get<LookupRequest>(fake.requests()[0].message),
              (LookupRequest{Transport::tcp, Family::ipv4, 40030, 50000}));
    EXPECT_EQ(std::get<LookupRequest>(fake.requests()[1].message),
              (LookupRequest{Transport::udp, Family::ipv6, 40031, 0}));

    setenv("SLMSOCK_SOCKET", "/nonexistent/slmd.sock", 1);
    EXPECT_EQ(slmsock_lookup(SOCK_STREAM, AF_INET, 0, 0, nullptr, nullptr, nullptr, nullptr), -EINVAL);
    EXPECT_EQ(slmsock_lookup(SOCK_RAW, AF_INET, 1, 0, nullptr, nullptr, nullptr, nullptr), -EPROTOTYPE);
    EXPECT_EQ(slmsock_lookup(SOCK_STREAM, AF_INET, 1, 0, &local, nullptr, nullptr, nullptr), -EFAULT);
    EXPECT_EQ(slmsock_lookup(SOCK_STREAM, AF_INET, 1, 0, nullptr, nullptr, nullptr, nullptr), -ENETDOWN);
    unsetenv("SLMSOCK_SOCKET");
}

TEST(Proxies, CopiesAndTruncatesTheDaemonsView) {
    FakeSlmd fake;
    ProxiesReply reply;
    reply.proxies.push_back({Transport::tcp, ProxyRole::client, 443, "203.0.113.10", 4242, 1000, 2000});
    reply.proxies.push_back({Transport::udp, ProxyRole::server, 5683, std::string(100, 'x'), 0, 3, 4});
    reply.waiting = 2;
    reply.modem_view = "#XTCPCLI: 0,1\r\n#XUDPSVR: 1,5683";
    fake.serve([reply](const Envelope& e) { return reply_to(e, reply); });
    struct slmsock_proxies out;
    std::memset(&out, 0x55, sizeof out);
    ASSERT_EQ(slmsock_proxies(&out), 0);
    ASSERT_EQ(out.count, 2u);
    EXPECT_EQ(out.proxy[0].type, SOCK_STREAM);
    EXPECT_EQ(out.proxy[0].role, SLMSOCK_PROXY_CLIENT);
    EXPECT_EQ(out.proxy[0].port, 443);
    EXPECT_STREQ(out.proxy[0].peer, "203.0.113.10");
    EXPECT_EQ(out.proxy[0].owner_pid, 4242u);
    EXPECT_EQ(out.proxy[0].bytes_up, 1000u);
    EXPECT_EQ(out.proxy[0].bytes_down, 2000u);
    EXPECT_EQ(out.proxy[1].type, SOCK_DGRAM);
    EXPECT_EQ(out.proxy[1].role, SLMSOCK_PROXY_SERVER);
    EXPECT_EQ(std::string(out.proxy[1].peer), std::string(sizeof out.proxy[1].peer - 1, 'x'));
    EXPECT_EQ(out.proxy[2].port, 0);  // unused entries are zeroed
    EXPECT_EQ(out.waiting, 2u);
    EXPECT_STREQ(out.modem_view, "#XTCPCLI: 0,1\r\n#XUDPSVR: 1,5683");
    fake.finish();
    ASSERT_EQ(fake.failure(), "");
    EXPECT_TRUE(std::holds_alternative<ProxiesRequest>(fake.requests()[0].message));
    EXPECT_EQ(slmsock_proxies(nullptr), -EFAULT);
    setenv("SLMSOCK_SOCKET", "/nonexistent/slmd.sock", 1);
    EXPECT_EQ(slmsock_proxies(&out), -ENETDOWN);
    unsetenv("SLMSOCK_SOCKET");
}

TEST(Stats, CopiesEveryCounterAndTheLatency) {
    FakeSlmd fake;
    StatsReply reply;
    reply.uptime_s = 7;
    reply.tcp_bytes_up = 1;
    reply.tcp_bytes_down = 2;
    reply.udp_dropped_busy = 3;
    reply.recovery_backoffs = 4;
    reply.downlink = {250, 1800, 12};
    reply.uplink = {100, 900, 5};
    fake.serve([reply](const Envelope& e) { return reply_to(e, reply); });
    struct slmsock_stats out;
    std::memset(&out, 0x55, sizeof out);
    ASSERT_EQ(slmsock_stats(&out), 0);
    EXPECT_EQ(out.uptime_s, 7u);
    EXPECT_EQ(out.tcp_bytes_up, 1u);
    EXPECT_EQ(out.tcp_bytes_down, 2u);
    EXPECT_EQ(out.udp_bytes_up, 0u);
    EXPECT_EQ(out.udp_dropped_busy, 3u);
    EXPECT_EQ(out.recovery_backoffs, 4u);
    EXPECT_EQ(out.downlink.p50_us, 250u);
    EXPECT_EQ(out.downlink.p99_us, 1800u);
    EXPECT_EQ(out.downlink.samples, 12u);
    EXPECT_EQ(out.uplink.p50_us, 100u);
    EXPECT_EQ(out.uplink.samples, 5u);
    fake.finish();
    ASSERT_EQ(fake.failure(), "");
    EXPECT_TRUE(std::holds_alternative<StatsRequest>(fake.requests()[0].message));
    EXPECT_EQ(slmsock_stats(nullptr), -EFAULT);
}

TEST(At, AnswerLinesAndTheErrnoContract) {
    FakeSlmd fake;
    fake.serve({
        [](const Envelope& e) { return reply_to(e, AtReply{0, AtOutcome::ok, 0, {"mfw_nrf9160_1.3.5", "second"}}); },
        [](const Envelope& e) { return reply_to(e, AtReply{0, AtOutcome::cme_error, 30, {}}); },
        [](const Envelope& e) { return reply_to(e, AtReply{0, AtOutcome::ok, 0, {"0123456789", "abcdefghij"}}); },
        [](const Envelope& e) { return reply_to(e, AtReply{-EPERM, AtOutcome::ok, 0, {"AT+CFUN switches the radio"}}); },
        [](const Envelope& e) { return reply_to(e, ErrorReply{-EACCES, "administrators only"}); },
        [](const Envelope& e) { return reply_to(e, ResetReply{-EAGAIN}); },
        [](const Envelope& e) { return reply_to(e, ResetReply{0}); },
    });
    struct slmsock_at_answer answer;
    char lines[64];
    ASSERT_EQ(slmsock_at("AT+CGMR", 0, 0, &answer, lines, sizeof lines), 0);
    EXPECT_EQ(answer.final, SLMSOCK_AT_OK);
    EXPECT_EQ(answer.line_count, 2u);
    EXPECT_EQ(answer.truncated, 0);
    EXPECT_STREQ(lines, "mfw_nrf9160_1.3.5\nsecond\n");
    ASSERT_EQ(slmsock_at("AT+CPIN?", 0, 2000, &answer, lines, sizeof lines), 0);
    EXPECT_EQ(answer.final, SLMSOCK_AT_CME_ERROR);
    EXPECT_EQ(answer.code, 30);
    EXPECT_STREQ(lines, "");
    // Whole lines only: 11 + 11 bytes and the NUL do not fit in 16.
    ASSERT_EQ(slmsock_at("AT+X", 0, 0, &answer, lines, 16), 0);
    EXPECT_EQ(answer.line_count, 2u);
    EXPECT_EQ(answer.truncated, 1);
    EXPECT_STREQ(lines, "0123456789\n");
    EXPECT_EQ(slmsock_at("AT+CFUN=0", 0, 0, &answer, lines, sizeof lines), -EPERM);
    EXPECT_STREQ(lines, "AT+CFUN switches the radio\n");
    EXPECT_EQ(slmsock_at("AT+CGMR", 0, 0, &answer, lines, sizeof lines), -EACCES);
    EXPECT_EQ(slmsock_reset(), -EAGAIN);
    EXPECT_EQ(slmsock_reset(), 0);
    fake.finish();
    ASSERT_EQ(fake.failure(), "");
    ASSERT_EQ(fake.requests().size(), 7u);
    EXPECT_EQ(std::get<AtRequest>(fake.requests()[0].message), (AtRequest{"AT+CGMR", false, 0}));
    EXPECT_EQ(std::get<AtRequest>(fake.requests()[1].message), (AtRequest{"AT+CPIN?", false, 2000}));
    EXPECT_TRUE(std::holds_alternative<ResetRequest>(fake.requests()[5].message));
    // Checked before asking slmd.
    setenv("SLMSOCK_SOCKET", "/nonexistent/slmd.sock", 1);
    EXPECT_EQ(slmsock_at(nullptr, 0, 0, &answer, lines, sizeof lines), -EFAULT);
    EXPECT_EQ(slmsock_at("AT", 0, 0, nullptr, lines, sizeof lines), -EFAULT);
    EXPECT_EQ(slmsock_at("", 0, 0, &answer, lines, sizeof lines), -EINVAL);
    EXPECT_EQ(slmsock_at(std::string(SLMSOCK_AT_MAX_COMMAND + 1, 'A').c_str(), 0, 0, &answer, lines, sizeof lines),
              -EINVAL);
    EXPECT_EQ(slmsock_at("AT", 0, 300001, &answer, lines, sizeof lines), -EINVAL);
    EXPECT_EQ(slmsock_at("AT", 0, 0, &answer, nullptr, 0), -ENETDOWN);
    EXPECT_EQ(slmsock_reset(), -ENETDOWN);
    unsetenv("SLMSOCK_SOCKET");
}

TEST(Misc, SocketPathAndErrorTexts) {
    unsetenv("SLMSOCK_SOCKET");
    EXPECT_STREQ(slmsock_socket_path(), SLMSOCK_DEFAULT_SOCKET);
    setenv("SLMSOCK_SOCKET", "", 1);
    EXPECT_STREQ(slmsock_socket_path(), SLMSOCK_DEFAULT_SOCKET);
    setenv("SLMSOCK_SOCKET", "/tmp/x.sock", 1);
    EXPECT_STREQ(slmsock_socket_path(), "/tmp/x.sock");
    unsetenv("SLMSOCK_SOCKET");
    EXPECT_STREQ(slmsock_strerror(-ECONNREFUSED), "Connection refused");
    EXPECT_STREQ(slmsock_strerror(0), "Success");
    EXPECT_NE(slmsock_strerror(-99999), nullptr);
    EXPECT_NE(slmsock_strerror(INT32_MIN), nullptr);
    EXPECT_STREQ(slmsock_resolve_strerror(EAI_NONAME), gai_strerror(EAI_NONAME));
}

}  // namespace

TEST(Credentials, RequestFieldsAndReplyMapping) {
    FakeSlmd fake;
    const std::string sha(64, 'A');
    fake.serve({
        [](const Envelope& e) { return reply_to(e, CredentialReply{0, {}, ""}); },
        [](const Envelope& e) {
            return reply_to(e, CredentialReply{-EBUSY, {}, "1 connection open (the radio goes off for a moment); "
                                                            "--force resets them"});
        },
        [&sha](const Envelope& e) {
            return reply_to(e, CredentialReply{0,
                                               {{42, CredentialType::ca, sha},
                                                {42, CredentialType::private_key, ""},
                                                {7, CredentialType::identity, sha}},
                                               ""});
        },
        [](const Envelope& e) { return reply_to(e, CredentialReply{-ENOENT, {}, "no such credential"}); },
        [](const Envelope& e) { return reply_to(e, ErrorReply{-EACCES, "administrators only"}); },
        [](const Envelope& e) { return reply_to(e, AtReply{}); },  // the wrong reply type
    });
    const std::string pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    EXPECT_EQ(slmsock_cred_write(42, SLMSOCK_CRED_CA, pem.data(), pem.size(), 0), 0);
    EXPECT_STREQ(slmsock_cred_message(), "");
    EXPECT_EQ(slmsock_cred_write(42, SLMSOCK_CRED_PSK, "00ff", 4, 0), -EBUSY);
    EXPECT_STREQ(slmsock_cred_message(), "1 connection open (the radio goes off for a moment); --force resets them");
    struct slmsock_credential entries[2];
    std::memset(entries, 0x55, sizeof entries);
    size_t count = 99;
    ASSERT_EQ(slmsock_cred_list(-1, -1, entries, 2, &count), 0);
    EXPECT_EQ(count, 3u);  // one more than `entries` holds
    EXPECT_EQ(entries[0].sec_tag, 42);
    EXPECT_EQ(entries[0].type, SLMSOCK_CRED_CA);
    EXPECT_EQ(std::string(entries[0].sha256), sha);
    EXPECT_EQ(entries[1].type, SLMSOCK_CRED_PRIVATE_KEY);
    EXPECT_STREQ(entries[1].sha256, "");
    EXPECT_EQ(slmsock_cred_delete(42, SLMSOCK_CRED_CERTIFICATE, 1), -ENOENT);
    EXPECT_STREQ(slmsock_cred_message(), "no such credential");
    EXPECT_EQ(slmsock_cred_list(42, SLMSOCK_CRED_CA, entries, 2, &count), -EACCES);
    EXPECT_EQ(count, 0u);
    EXPECT_EQ(slmsock_cred_delete(1, 0, 0), -EPROTO);
    fake.finish();
    ASSERT_EQ(fake.failure(), "");
    ASSERT_EQ(fake.requests().size(), 6u);
    EXPECT_EQ(std::get<CredentialRequest>(fake.requests()[0].message),
              (CredentialRequest{CredentialOp::write, 42, 0, pem, false}));
    EXPECT_EQ(std::get<CredentialRequest>(fake.requests()[1].message),
              (CredentialRequest{CredentialOp::write, 42, 3, "00ff", false}));
    EXPECT_EQ(std::get<CredentialRequest>(fake.requests()[2].message),
              (CredentialRequest{CredentialOp::list, any_sec_tag, any_credential_type, "", false}));
    EXPECT_EQ(std::get<CredentialRequest>(fake.requests()[3].message),
              (CredentialRequest{CredentialOp::remove, 42, 1, "", true}));
    EXPECT_EQ(std::get<CredentialRequest>(fake.requests()[4].message),
              (CredentialRequest{CredentialOp::list, 42, 0, "", false}));
    // Checked before asking slmd.
    setenv("SLMSOCK_SOCKET", "/nonexistent/slmd.sock", 1);
    EXPECT_EQ(slmsock_cred_write(1, 0, nullptr, 0, 0), -EFAULT);
    EXPECT_EQ(slmsock_cred_write(-1, 0, "x", 1, 0), -EINVAL);
    EXPECT_EQ(slmsock_cred_write(1, 5, "x", 1, 0), -EINVAL);
    const std::string big(SLMSOCK_CRED_MAX_LENGTH + 1, 'a');
    EXPECT_EQ(slmsock_cred_write(1, 4, big.data(), big.size(), 0), -EMSGSIZE);
    EXPECT_EQ(slmsock_cred_list(-1, -1, nullptr, 0, nullptr), -EFAULT);
    EXPECT_EQ(slmsock_cred_list(-1, -1, nullptr, 1, &count), -EFAULT);
    EXPECT_EQ(slmsock_cred_list(-2, -1, nullptr, 0, &count), -EINVAL);
    EXPECT_EQ(slmsock_cred_delete(1, -1, 0), -EINVAL);
    EXPECT_EQ(slmsock_cred_list(-1, -1, nullptr, 0, &count), -ENETDOWN);
    unsetenv("SLMSOCK_SOCKET");
}
