// The SLM proxy driver's UDP client/server, TCP server, raw-downlink attribution rule, read forms and orphan
// reconciliation, driven in-process (serial::SerialPort + modem::Modem + SlmProxyDriver on an io_context
// thread) against slmsim on a pty, for every firmware release slmsim simulates. Host sockets on the test
// thread play the internet. Every wait is a deadline on a condition, never a sleep.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <algorithm>
#include <atomic>
#include <map>
#include <cerrno>
#include <functional>
#include <future>
#include <mutex>
#include <set>
#include <thread>

#include "modem/modem.hpp"
#include "process.hpp"
#include "release.hpp"
#include "serial/serial_port.hpp"
#include "sys/log.hpp"
#include "test_ports.hpp"

using namespace slmd;
using namespace slmd::test;
using namespace std::chrono_literals;
namespace asio = boost::asio;

namespace {

template <typename Predicate>
bool eventually(Predicate done, std::chrono::milliseconds limit = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done()) {
        if (std::chrono::steady_clock::now() >= deadline) return false;
        poll(nullptr, 0, 5);
    }
    return true;
}


sockaddr_in loopback(std::uint16_t port) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return address;
}

std::uint16_t bound_port(int fd) {
    sockaddr_in address{};
    socklen_t length = sizeof address;
    getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
    return ntohs(address.sin_port);
}

// A port for the simulated modem's servers to bind: see test_ports.hpp.
std::uint16_t free_port(int) { return unused_server_port(); }

// Reads up to `count` bytes or until EOF, with a deadline. `eof` tells whether the stream ended.
std::string read_stream(int fd, std::size_t count, bool* eof = nullptr, std::chrono::milliseconds limit = 10s) {
    std::string out;
    const auto deadline = std::chrono::steady_clock::now() + limit;
    char buffer[8192];
    if (eof) *eof = false;
    while (out.size() < count && std::chrono::steady_clock::now() < deadline) {
        pollfd pfd{fd, POLLIN, 0};
        if (poll(&pfd, 1, 50) <= 0) continue;
        ssize_t n = read(fd, buffer, std::min(sizeof buffer, count - out.size()));
        if (n <= 0) {
            if (eof) *eof = true;
            break;
        }
        out.append(buffer, static_cast<std::size_t>(n));
    }
    return out;
}

// Waits for end of stream (EOF or reset) on a TCP socket.
bool sees_end(int fd, std::chrono::milliseconds limit = 10s) {
    bool eof = false;
    read_stream(fd, 1 << 20, &eof, limit);
    return eof;
}

std::optional<std::string> receive_datagram(int fd, std::chrono::milliseconds limit = 10s) {
    pollfd pfd{fd, POLLIN, 0};
    if (poll(&pfd, 1, static_cast<int>(limit.count())) != 1) return std::nullopt;
    char buffer[65536];
    ssize_t n = recv(fd, buffer, sizeof buffer, 0);
    if (n < 0) return std::nullopt;
    return std::string(buffer, static_cast<std::size_t>(n));
}

// A loopback socket service on its own thread: UDP echo, or TCP echo; for TCP also a sink (reads, answers
// nothing), one that echoes each client's first read only, or a source (writes `source` to each client, then
// closes it).
class EchoServer {
public:
    enum class Tcp { echo, sink, echo_first, source };
    explicit EchoServer(int type, Tcp role = Tcp::echo, std::string source = {})
        : type_(type), role_(role), source_(std::move(source)) {
        fd_ = socket(AF_INET, type | SOCK_CLOEXEC, 0);
        int one = 1;
        setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        auto address = loopback(0);
        bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address);
        if (type == SOCK_STREAM) listen(fd_, 4);
        port_ = bound_port(fd_);
        thread_ = std::thread([this] { type_ == SOCK_DGRAM ? serve_udp() : serve_tcp(); });
    }
    ~EchoServer() {
        stop_ = true;
        thread_.join();
        close(fd_);
    }
    std::uint16_t port() const { return port_; }
    int datagrams() const { return datagrams_; }

private:
    void serve_udp() {
        char buffer[65536];
        while (!stop_) {
            pollfd pfd{fd_, POLLIN, 0};
            if (poll(&pfd, 1, 20) <= 0) continue;
            sockaddr_in from{};
            socklen_t length = sizeof from;
            ssize_t n = recvfrom(fd_, buffer, sizeof buffer, 0, reinterpret_cast<sockaddr*>(&from), &length);
            if (n < 0) continue;
            ++datagrams_;
            sendto(fd_, buffer, static_cast<std::size_t>(n), 0, reinterpret_cast<sockaddr*>(&from), length);
        }
    }
    void serve_tcp() {
        std::vector<int> clients;
        char buffer[8192];
        while (!stop_) {
            std::vector<pollfd> fds{{fd_, POLLIN, 0}};
            for (int c : clients) fds.push_back({c, POLLIN, 0});
            if (poll(fds.data(), fds.size(), 20) <= 0) continue;
            if (fds[0].revents & POLLIN) {
                const int client = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
                if (role_ == Tcp::source) {
                    write_source(client);
                    close(client);
                } else {
                    clients.push_back(client);
                }
            }
            for (std::size_t i = 1; i < fds.size(); ++i) {
                if (!(fds[i].revents & (POLLIN | POLLHUP))) continue;
                ssize_t n = read(fds[i].fd, buffer, sizeof buffer);
                if (n <= 0) {
                    close(fds[i].fd);
                    std::erase(clients, fds[i].fd);
                    continue;
                }
                const bool first = answered_.insert(fds[i].fd).second;
                if (role_ == Tcp::echo || (role_ == Tcp::echo_first && first))
                    [[maybe_unused]] auto w = write(fds[i].fd, buffer, static_cast<std::size_t>(n));
            }
        }
        for (int c : clients) close(c);
    }
    // As fast as the client takes it; gives up when the server stops.
    void write_source(int client) {
        std::size_t sent = 0;
        while (sent < source_.size() && !stop_) {
            pollfd pfd{client, POLLOUT, 0};
            if (poll(&pfd, 1, 20) <= 0) continue;
            const ssize_t n = send(client, source_.data() + sent, source_.size() - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (n < 0 && errno != EAGAIN) return;
            if (n > 0) sent += static_cast<std::size_t>(n);
        }
    }
    int type_;
    Tcp role_;
    std::set<int> answered_;  // clients that were echoed once (echo_first)
    std::string source_;
    int fd_ = -1;
    std::uint16_t port_ = 0;
    std::atomic<bool> stop_{false};
    std::atomic<int> datagrams_{0};
    std::thread thread_;
};

// What the driver reported, recorded from the io thread and read from the test thread.
struct Recorded {
    struct Datagram {
        std::string bytes;
        std::optional<modem::UdpPeer> peer;
    };
    struct Closed {
        modem::ConnectionId id;
        modem::CloseReason reason;
        int error;
    };
    std::mutex mutex;
    std::vector<Datagram> datagrams;
    std::vector<Closed> udp_closed;
    std::vector<Closed> tcp_closed;
    std::vector<std::pair<modem::ConnectionId, std::string>> incoming;
    std::map<modem::ConnectionId, std::string> tcp_data;
    std::vector<int> listener_stopped;

    template <typename F>
    auto with(F f) {
        std::lock_guard lock(mutex);
        return f(*this);
    }
};

// slmsim as a child, and an slmd modem stack in this process on its own io thread.
class Rig {
public:
    explicit Rig(const std::string& profile, std::function<void(modem::ModemOptions&)> tweak = {})
        : profile_(profile), tweak_(std::move(tweak)) {
        // SLMD_TEST_DEBUG=1 shows the AT conversation on stderr.
        slmd::sys::set_log_threshold(getenv("SLMD_TEST_DEBUG") ? slmd::sys::LogLevel::debug : slmd::sys::LogLevel::warning);
        sim_.emplace(std::vector<std::string>{SLMSIM_BIN, "--link", dir_ / "tty", "--profile", profile, "--baud",
                                              "921600", "--control", dir_ / "control", "--map",
                                              "203.0.113.0/24=127.0.0.1", "--attach-delay-ms", "0"});
        if (!wait_for_path(dir_ / "tty", 10s) || !wait_for_path(dir_ / "control", 10s)) return;
        start_modem();
    }
    ~Rig() { stop_modem(); }

    // Runs `f` on the io thread and returns its result.
    template <typename F>
    auto call(F f) {
        using R = decltype(f());
        std::promise<R> promise;
        auto future = promise.get_future();
        asio::post(io_, [&] {
            if constexpr (std::is_void_v<R>) {
                f();
                promise.set_value();
            } else {
                promise.set_value(f());
            }
        });
        return future.get();
    }


    void start_modem() {
        ready_ = false;
        io_.restart();
        guard_.emplace(io_.get_executor());
        thread_ = std::thread([this] { io_.run(); });
        call([this] {
            port_ = std::make_unique<serial::SerialPort>(io_.get_executor(),
                                                         serial::SerialOptions{.path = dir_ / "tty", .baud = 921600});
            if (port_->open()) return;
            modem::ModemOptions options;
            options.baud = 921600;
            options.bringup.register_timeout = 20s;
            if (tweak_) tweak_(options);
            modem_ = std::make_unique<modem::Modem>(io_.get_executor(), *port_, options);
            modem_->start([this](const modem::BringupResult& result) { ready_ = !result.error; });
        });
        eventually([this] { return ready_.load(); }, 20s);
        // The boot banner can reach the framer only after the first bring-up finished (data-first releases hold
        // lines back until the line is idle), which restarts bring-up. One round trip flushes it out; then
        // wait until the modem serves again. Serving also means on_serving's reconciliation reads were queued
        // before anything a test does.
        describe();
        eventually([this] { return call([this] { return modem_->state() == modem::ModemState::serving; }); }, 20s);
    }

    // Stops the stack like main.cpp does: stop, close, let aborted operations finish, then destroy.
    void stop_modem() {
        if (!thread_.joinable()) return;
        call([this] {
            if (modem_) modem_->stop();
            if (port_) port_->close();
        });
        guard_.reset();
        thread_.join();
        modem_.reset();
        port_.reset();
    }

    // Starts an asynchronous driver operation on the io thread and waits for its completion value.
    template <typename T, typename Start>
    std::optional<T> await(Start start, std::chrono::milliseconds limit = 15s) {
        auto promise = std::make_shared<std::promise<T>>();
        auto future = promise->get_future();
        asio::post(io_, [this, start, promise] { start(driver(), [promise](T value) { promise->set_value(value); }); });
        if (future.wait_for(limit) != std::future_status::ready) return std::nullopt;
        return future.get();
    }

    // Starts an open on the modem driver (its completion handler given to `start`): (error, id), or nothing.
    template <typename Start>
    std::optional<std::pair<int, modem::ConnectionId>> await_open(Start start) {
        return await<std::pair<int, modem::ConnectionId>>([start](auto&, auto done) {
            start([done](int error, modem::ConnectionId id) { done({error, id}); });
        });
    }
    // A UDP client on the proxy, then a TCP connection beside it, through the modem driver: their ids.
    std::optional<std::pair<modem::ConnectionId, modem::ConnectionId>> udp_client_beside_tcp(std::uint16_t udp_port,
                                                                                             std::uint16_t tcp_port) {
        const auto udp = await_open([&](auto done) {
            modem_driver().udp_connect({"203.0.113.10", udp_port, false, std::nullopt}, udp_events(), done);
        });
        if (!udp || udp->first != 0) return std::nullopt;
        const auto tcp = await_open([&](auto done) {
            modem_driver().tcp_connect({"203.0.113.10", tcp_port, false, std::nullopt}, 10s, tcp_events(1000), done);
        });
        if (!tcp || tcp->first != 0) return std::nullopt;
        return std::pair{udp->second, tcp->second};
    }

    modem::SlmProxyDriver& driver() { return const_cast<modem::SlmProxyDriver&>(modem_->slm_driver()); }
    // The driver core/ holds: proxies and generic sockets together (modem::SlmDriver behind the switch).
    modem::ModemDriver& modem_driver() { return modem_->driver(); }
    modem::Modem& modem() { return *modem_; }
    modem::SlmProxyDriver::Stats stats() { return call([this] { return driver().stats(); }); }

    std::pair<int, modem::ConnectionId> udp_connect(std::uint16_t port) {
        auto result = await<std::pair<int, modem::ConnectionId>>([this, port](auto& d, auto done) {
            d.udp_connect({"203.0.113.10", port, false, std::nullopt}, udp_events(),
                          [done](int error, modem::ConnectionId id) { done({error, id}); });
        });
        return result.value_or(std::pair{-1, 0u});
    }
    std::pair<int, modem::ConnectionId> udp_serve(std::uint16_t port) {
        auto result = await<std::pair<int, modem::ConnectionId>>([this, port](auto& d, auto done) {
            d.udp_serve(port, false, udp_events(), [done](int error, modem::ConnectionId id) { done({error, id}); });
        });
        return result.value_or(std::pair{-1, 0u});
    }
    int udp_send(modem::ConnectionId id, std::string datagram) {
        return await<int>([id, datagram](auto& d, auto done) { d.udp_send(id, datagram, done); }).value_or(-1);
    }
    int tcp_send(modem::ConnectionId id, std::string bytes) {
        return await<int>([id, bytes](auto& d, auto done) { d.tcp_send(id, bytes, done); }).value_or(-1);
    }
    std::string describe() {
        return await<std::string>([](auto& d, auto done) { d.describe_proxies(done); }).value_or("(no answer)");
    }
    std::string control(const std::string& line) { return control_command(dir_ / "control", line); }

    modem::UdpEvents udp_events() {
        return {.datagram =
                    [this](std::string_view bytes, const std::optional<modem::UdpPeer>& peer) {
                        record.with([&](auto& r) { r.datagrams.push_back({std::string(bytes), peer}); });
                    },
                .closed =
                    [this](modem::CloseReason reason, int error) {
                        record.with([&](auto& r) { r.udp_closed.push_back({0, reason, error}); });
                    }};
    }
    modem::TcpConnectionEvents tcp_events(modem::ConnectionId id) {
        return {.data = [this, id](std::string_view bytes) { record.with([&](auto& r) { r.tcp_data[id] += bytes; }); },
                .closed =
                    [this, id](modem::CloseReason reason, int error) {
                        record.with([&](auto& r) { r.tcp_closed.push_back({id, reason, error}); });
                    }};
    }
    modem::TcpListenerEvents listener_events() {
        return {.incoming =
                    [this](modem::ConnectionId id, const std::string& address) {
                        record.with([&](auto& r) { r.incoming.emplace_back(id, address); });
                        return tcp_events(id);
                    },
                .stopped = [this](int error) { record.with([&](auto& r) { r.listener_stopped.push_back(error); }); }};
    }

    bool ready() const { return ready_; }
    int minor() const { return release_rank(profile_); }  // v3.<n>: 10 + n (release.hpp)
    std::string output() { return sim_ ? sim_->output() : ""; }

    Recorded record;

private:
    std::string profile_;
    std::function<void(modem::ModemOptions&)> tweak_;
    TempDir dir_;
    std::optional<ChildProcess> sim_;
    asio::io_context io_{1};
    std::optional<asio::executor_work_guard<asio::io_context::executor_type>> guard_;
    std::thread thread_;
    std::unique_ptr<serial::SerialPort> port_;
    std::unique_ptr<modem::Modem> modem_;
    std::atomic<bool> ready_{false};
};

std::string ascii(std::size_t size) {
    std::string s;
    for (std::size_t i = 0; s.size() < size; ++i) s += static_cast<char>('a' + i % 26);
    return s;
}

// Binary that cannot be quoted: NUL, quote, CR LF, BS/DEL, "OK" and a header look-alike.
std::string binary(bool with_terminator) {
    std::string s("bin\0\"ary\r\nOK\r\n\x08\x7f#XUDPDATA: 3\r\n", 31);
    if (with_terminator) s += "+++";
    s += "tail";
    return s;
}

class DriverPerRelease : public ::testing::TestWithParam<std::string> {};

}  // namespace

TEST_P(DriverPerRelease, UdpClientEchoesEveryShape) {
    EchoServer echo(SOCK_DGRAM);
    Rig rig(GetParam());
    ASSERT_TRUE(rig.ready()) << rig.output();
    const auto max_receive = rig.call([&] { return rig.driver().udp_max_receive(); });
    EXPECT_EQ(max_receive, rig.minor() >= 3 ? 2048u : 1272u);
    EXPECT_EQ(rig.call([&] { return rig.driver().udp_max_send(); }), 4096u);
    auto [error, id] = rig.udp_connect(echo.port());
    ASSERT_EQ(error, 0);
    EXPECT_EQ(rig.call([&] { return rig.driver().udp_available(); }), 0u);

    // Pseudo-random binary as apps send it (every byte value), without a "+++" run or a trailing '+'.
    std::string random(1024, '\0');
    std::uint32_t x = 2463534242u;
    for (auto& c : random) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        c = static_cast<char>(x);
    }
    for (std::size_t i = 2; i < random.size(); ++i) {
        if (random[i] == '+' && random[i - 1] == '+' && random[i - 2] == '+') random[i] = '-';
    }
    random.back() = '.';
    // Line breaks and "+++" but nothing unquotable: goes as a quoted #XUDPSEND on every release.
    const std::string text_with_terminator = "line one\r\n+++\r\nline two ends with +";
    // Unquotable and ending in "++": on v2.5+ the exit waits for the inactivity flush so the firmware does not
    // join the trailing pluses to our "+++".
    const std::string binary_trailing_plus = binary(false) + "++";
    std::vector<std::string> datagrams{"x", ascii(1024), ascii(max_receive), binary(false), random,
                                       text_with_terminator, binary_trailing_plus};
    const bool terminator_anywhere = rig.minor() >= 5;
    if (!terminator_anywhere) datagrams.push_back(binary(true));  // ≤v2.4 only cut "+++" at the very end
    std::size_t expected = 0;
    for (const auto& datagram : datagrams) {
        ASSERT_EQ(rig.udp_send(id, datagram), 0) << datagram.size();
        ++expected;
        ASSERT_TRUE(eventually([&] { return rig.record.with([&](auto& r) { return r.datagrams.size() >= expected; }); }))
            << "no echo of " << datagram.size() << " bytes\n" << rig.output();
        rig.record.with([&](auto& r) {
            EXPECT_TRUE(r.datagrams.back().bytes == datagram) << r.datagrams.back().bytes.size() << " vs " << datagram.size();
            EXPECT_FALSE(r.datagrams.back().peer) << "a client's #XUDPDATA peer (\"::\",0) is not reported";
        });
    }
    if (terminator_anywhere) {
        EXPECT_EQ(rig.udp_send(id, binary(true)), EINVAL);
    }
    EXPECT_EQ(rig.udp_send(id, std::string(4097, 'z')), EMSGSIZE);
    auto stats = rig.stats();
    EXPECT_EQ(stats.udp_datagrams_up, datagrams.size());
    EXPECT_EQ(stats.udp_datagrams_down, datagrams.size());
    EXPECT_GE(stats.udp_data_mode_sends, 2u);  // the 2048/1272-byte one or binary at least
    EXPECT_EQ(echo.datagrams(), static_cast<int>(datagrams.size()));

    rig.call([&] { rig.driver().udp_close(id); });
    ASSERT_TRUE(eventually([&] { return rig.record.with([](auto& r) { return !r.udp_closed.empty(); }); }));
    rig.record.with([](auto& r) {
        EXPECT_EQ(r.udp_closed.front().reason, modem::CloseReason::local_close);
        EXPECT_EQ(r.udp_closed.front().error, 0);
    });
    EXPECT_EQ(rig.call([&] { return rig.driver().udp_available(); }), 1u);
}

TEST_P(DriverPerRelease, UdpServerRepliesToItsLastPeer) {
    Rig rig(GetParam());
    ASSERT_TRUE(rig.ready()) << rig.output();
    const auto port = free_port(SOCK_DGRAM);
    auto [error, id] = rig.udp_serve(port);
    ASSERT_EQ(error, 0);
    // Nobody has sent yet: the firmware has no one to reply to.
    EXPECT_EQ(rig.udp_send(id, "early"), EDESTADDRREQ);
    EXPECT_EQ(rig.udp_send(id, binary(false)), EDESTADDRREQ);

    int client = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    auto any = loopback(0);
    bind(client, reinterpret_cast<sockaddr*>(&any), sizeof any);
    auto server = loopback(port);
    ASSERT_EQ(sendto(client, "ping", 4, 0, reinterpret_cast<sockaddr*>(&server), sizeof server), 4);
    ASSERT_TRUE(eventually([&] { return rig.record.with([](auto& r) { return !r.datagrams.empty(); }); }))
        << rig.output();
    rig.record.with([&](auto& r) {
        EXPECT_EQ(r.datagrams[0].bytes, "ping");
        if (rig.minor() >= 8) {
            ASSERT_TRUE(r.datagrams[0].peer);
            EXPECT_EQ(r.datagrams[0].peer->address, "127.0.0.1");
            EXPECT_EQ(r.datagrams[0].peer->port, bound_port(client));
        } else {
            EXPECT_FALSE(r.datagrams[0].peer) << "releases before v2.8 do not name the sender";
        }
    });
    EXPECT_EQ(rig.udp_send(id, "pong"), 0);
    EXPECT_EQ(receive_datagram(client), "pong");
    EXPECT_EQ(rig.udp_send(id, binary(false)), 0);
    EXPECT_EQ(receive_datagram(client), binary(false));
    close(client);
    rig.call([&] { rig.driver().udp_close(id); });
    ASSERT_TRUE(eventually([&] { return rig.record.with([](auto& r) { return !r.udp_closed.empty(); }); }));
    EXPECT_EQ(rig.record.with([](auto& r) { return r.udp_closed.front().reason; }), modem::CloseReason::local_close);
    EXPECT_NE(rig.describe().find("#XUDPSVR: -1,"), std::string::npos);
}

TEST_P(DriverPerRelease, TcpServerPeersHangUpsAndStop) {
    Rig rig(GetParam());
    ASSERT_TRUE(rig.ready()) << rig.output();
    const auto port = free_port(SOCK_STREAM);
    auto listened = rig.await<std::pair<int, modem::ListenerId>>([&](auto& d, auto done) {
        d.tcp_listen(port, false, rig.listener_events(), [done](int e, modem::ListenerId id) { done({e, id}); });
    });
    ASSERT_TRUE(listened);
    ASSERT_EQ(listened->first, 0);
    const auto listener = listened->second;
    EXPECT_EQ(rig.call([&] { return rig.driver().tcp_available(); }), 0u) << "the server holds the TCP proxy";

    auto connect_host = [&] {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        auto address = loopback(port);
        EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
        return fd;
    };
    auto incoming_count = [&] { return rig.record.with([](auto& r) { return r.incoming.size(); }); };
    auto closed_of = [&](modem::ConnectionId id) {
        return rig.record.with([id](auto& r) {
            std::vector<Recorded::Closed> out;
            for (auto& c : r.tcp_closed) {
                if (c.id == id) out.push_back(c);
            }
            return out;
        });
    };

    // Peer 1: bytes both ways, then we hang up: the host sees EOF, one local close, no peer loss after it.
    int first = connect_host();
    ASSERT_TRUE(eventually([&] { return incoming_count() == 1; })) << rig.output();
    const auto peer1 = rig.record.with([](auto& r) { return r.incoming[0]; });
    EXPECT_EQ(peer1.second, "127.0.0.1");
    ASSERT_EQ(write(first, "hello", 5), 5);
    ASSERT_TRUE(eventually([&] { return rig.record.with([&](auto& r) { return r.tcp_data[peer1.first] == "hello"; }); }));
    EXPECT_EQ(rig.tcp_send(peer1.first, "world"), 0);
    EXPECT_EQ(read_stream(first, 5), "world");
    const std::string bulk = binary(true) + ascii(3000);  // data mode, and "+++" inside
    EXPECT_EQ(rig.tcp_send(peer1.first, bulk), 0);
    EXPECT_TRUE(read_stream(first, bulk.size()) == bulk);
    rig.call([&] { rig.driver().tcp_close(peer1.first); });
    EXPECT_TRUE(sees_end(first));
    close(first);
    ASSERT_TRUE(eventually([&] { return closed_of(peer1.first).size() == 1; }));
    rig.describe();  // a round trip: a v2.7+ hang-up URC that follows the OK has arrived by now
    ASSERT_EQ(closed_of(peer1.first).size(), 1u) << "the hang-up's own \"disconnected\" is not a second close";
    EXPECT_EQ(closed_of(peer1.first)[0].reason, modem::CloseReason::local_close);
    EXPECT_EQ(rig.stats().hangups, 1u);

    // Peer 2 leaves on its own: closed(peer_closed).
    int second = connect_host();
    ASSERT_TRUE(eventually([&] { return incoming_count() == 2; })) << rig.output();
    const auto peer2 = rig.record.with([](auto& r) { return r.incoming[1].first; });
    close(second);
    ASSERT_TRUE(eventually([&] { return closed_of(peer2).size() == 1; })) << rig.output();
    EXPECT_EQ(closed_of(peer2)[0].reason, modem::CloseReason::peer_closed);

    // Peer 3 holds the server; peer 4 is closed by the firmware while 3 still works.
    int third = connect_host();
    ASSERT_TRUE(eventually([&] { return incoming_count() == 3; })) << rig.output();
    const auto peer3 = rig.record.with([](auto& r) { return r.incoming[2].first; });
    int fourth = connect_host();
    EXPECT_TRUE(sees_end(fourth)) << "the firmware keeps one peer";
    close(fourth);
    ASSERT_EQ(write(third, "still", 5), 5);
    ASSERT_TRUE(eventually([&] { return rig.record.with([&](auto& r) { return r.tcp_data[peer3] == "still"; }); }));
    EXPECT_EQ(incoming_count(), 3u);

    // Stop: peer 3 ends with a local close, the host sees EOF, the slot is free, no "stopped" callback.
    rig.call([&] { rig.driver().tcp_stop_listen(listener); });
    EXPECT_TRUE(sees_end(third));
    close(third);
    ASSERT_TRUE(eventually([&] { return rig.call([&] { return rig.driver().tcp_available(); }) == 1u; }));
    ASSERT_EQ(closed_of(peer3).size(), 1u);
    EXPECT_EQ(closed_of(peer3)[0].reason, modem::CloseReason::local_close);
    EXPECT_TRUE(rig.record.with([](auto& r) { return r.listener_stopped.empty(); }));
    auto stats = rig.stats();
    EXPECT_EQ(stats.server_peers, 3u);
    EXPECT_EQ(stats.hangups, 1u);
    EXPECT_NE(rig.describe().find("#XTCPSVR: -1,-1,"), std::string::npos);
}

TEST_P(DriverPerRelease, TcpDataModeSuspendsUdpAndBinaryUdpWaitsForNoTcp) {
    EchoServer udp_echo(SOCK_DGRAM);
    EchoServer tcp_echo(SOCK_STREAM);
    Rig rig(GetParam());
    ASSERT_TRUE(rig.ready()) << rig.output();
    auto [error, udp] = rig.udp_connect(udp_echo.port());
    ASSERT_EQ(error, 0);
    // The connection's id is only known once connected; its events are recorded under the key 1000.
    auto connected = rig.await<std::pair<int, modem::ConnectionId>>([&](auto& d, auto done) {
        d.tcp_connect({"203.0.113.10", tcp_echo.port(), false, std::nullopt}, 10s, rig.tcp_events(1000),
                      [done](int e, modem::ConnectionId id) { done({e, id}); });
    });
    ASSERT_TRUE(connected && connected->first == 0);
    const auto tcp2 = connected->second;

    // Binary TCP goes through data mode: the UDP proxy is closed for the session.
    const std::string bulk = binary(false) + ascii(3000);
    std::promise<int> udp_during;
    auto udp_during_result = udp_during.get_future();
    rig.call([&] {
        rig.driver().tcp_send(tcp2, bulk, [](int) {});
        // Sent while the session runs: it waits for the reopened proxy.
        rig.driver().udp_send(udp, "during", [&](int e) { udp_during.set_value(e); });
    });
    ASSERT_TRUE(eventually([&] { return rig.record.with([&](auto& r) { return r.tcp_data[1000].size() >= bulk.size(); }); }))
        << rig.output();
    EXPECT_TRUE(rig.record.with([&](auto& r) { return r.tcp_data[1000] == bulk; }));
    ASSERT_EQ(udp_during_result.wait_for(10s), std::future_status::ready);
    EXPECT_EQ(udp_during_result.get(), 0);
    ASSERT_TRUE(eventually([&] {
        return rig.record.with([](auto& r) { return !r.datagrams.empty() && r.datagrams.back().bytes == "during"; });
    })) << rig.output();
    EXPECT_GE(rig.stats().udp_suspensions, 1u);
    EXPECT_TRUE(rig.record.with([](auto& r) { return r.udp_closed.empty(); })) << "suspension is not a close";

    // With TCP open, a datagram that needs data mode is refused; a quotable one still goes.
    EXPECT_EQ(rig.udp_send(udp, binary(false)), EBUSY);
    EXPECT_EQ(rig.stats().udp_refused_tcp_busy, 1u);
    EXPECT_EQ(rig.udp_send(udp, "quoted"), 0);
    EXPECT_TRUE(eventually([&] {
        return rig.record.with([](auto& r) { return r.datagrams.back().bytes == "quoted"; });
    }));
}

TEST_P(DriverPerRelease, DescribeProxiesAndModemResetEndsUdp) {
    EchoServer echo(SOCK_DGRAM);
    Rig rig(GetParam());
    ASSERT_TRUE(rig.ready()) << rig.output();
    auto [error, id] = rig.udp_connect(echo.port());
    ASSERT_EQ(error, 0);
    const auto text = rig.describe();
    EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 3) << text;
    EXPECT_NE(text.find("#XTCPCLI: -1,"), std::string::npos) << text;
    EXPECT_NE(text.find("#XTCPSVR: -1,-1,"), std::string::npos) << text;
    EXPECT_NE(text.find("#XUDPCLI: 0,1"), std::string::npos) << text;
    EXPECT_NE(text.find("#XUDPSVR: -1,"), std::string::npos) << text;
    auto caps = rig.call([&] { return rig.driver().capabilities(); });
    EXPECT_EQ(caps.tcp_hangup, "#XTCPHANGUP: <handle>");
    EXPECT_EQ(caps.tcp_client.find("<hostname_verify>") != std::string::npos, rig.minor() >= 6) << caps.tcp_client;
    EXPECT_EQ(caps.udp_server.find("<sec_tag>") != std::string::npos, rig.minor() >= 8) << caps.udp_server;

    EXPECT_EQ(rig.control("reset"), "ok");
    ASSERT_TRUE(eventually([&] { return rig.record.with([](auto& r) { return !r.udp_closed.empty(); }); }));
    rig.record.with([](auto& r) {
        EXPECT_EQ(r.udp_closed.front().reason, modem::CloseReason::modem_lost);
        EXPECT_EQ(r.udp_closed.front().error, ECONNRESET);
    });
    EXPECT_EQ(rig.call([&] { return rig.driver().udp_available(); }), 1u);
}

// A UDP client on the proxy starts moving to a generic socket (a binary datagram while TCP is open) and the flow
// closes it before the move is done: the held datagram fails with ENOTCONN, the flow hears one close, and the
// socket opened for the move is closed again, so every descriptor is back.
// Answer first on SLM generic sockets (SlmSocketDriverOptions::answer_wait): every request on a connection that
// answers starts a wait for its answer; a connection whose sends get no answer (an upload) costs the others one
// wait, not one per send. Each send below is followed by more download than one wait lasts (48 KiB, 533 ms of
// line at 921600, against 300 ms), so a wait per send would have run out after each. 300 ms leaves the echo's
// replies time to spare on a loaded machine. Last, a connection that answered once and then sends a request at
// once that gets no answer: its wait runs out too, and the download goes on (on v3.1 nothing but the wait's
// end reads the download's kept report again).
class DriverAnswerFirst : public ::testing::TestWithParam<std::string> {};

TEST_P(DriverAnswerFirst, AConnectionWithoutAnswersIsWaitedForOnce) {
    std::string download(700000, '\0');
    for (std::size_t i = 0; i < download.size(); ++i) download[i] = static_cast<char>(i * 131 + i / 251);
    EchoServer source(SOCK_STREAM, EchoServer::Tcp::source, download);
    EchoServer sink(SOCK_STREAM, EchoServer::Tcp::sink);
    EchoServer echo(SOCK_STREAM);
    EchoServer echo_once(SOCK_STREAM, EchoServer::Tcp::echo_first);
    Rig rig(GetParam(), [](modem::ModemOptions& options) {
        options.tcp_proxy_tls_only = true;
        options.answer_wait = 300ms;
    });
    ASSERT_TRUE(rig.ready()) << rig.output();
    auto connect = [&](std::uint16_t port, modem::ConnectionId key) {
        const auto opened = rig.await_open([&](auto done) {
            rig.modem_driver().tcp_connect({"203.0.113.10", port, false, std::nullopt}, 10s, rig.tcp_events(key), done);
        });
        return opened && opened->first == 0 ? opened->second : modem::ConnectionId{0};
    };
    auto send = [&](modem::ConnectionId id, const std::string& bytes) {
        return rig.await<int>([&](auto&, auto done) { rig.modem_driver().tcp_send(id, bytes, done); }).value_or(-1);
    };
    auto downloaded = [&] { return rig.record.with([](auto& r) { return r.tcp_data[1].size(); }); };
    auto stats = [&] { return rig.call([&] { return rig.modem().slm_sockets().stats(); }); };
    const auto bulk = connect(source.port(), 1);
    ASSERT_NE(bulk, 0u);
    ASSERT_TRUE(eventually([&] { return downloaded() >= 16384; }));
    const auto upload = connect(sink.port(), 2);
    ASSERT_NE(upload, 0u);
    for (int i = 0; i < 4; ++i) {
        ASSERT_EQ(send(upload, "upload " + std::to_string(i) + std::string(56, 'u')), 0) << i;
        const auto before = downloaded();
        ASSERT_TRUE(eventually([&] { return downloaded() >= before + 49152; })) << i;
    }
    EXPECT_EQ(stats().answer_waits, 1u);
    EXPECT_EQ(stats().answer_waits_lapsed, 1u);
    // A connection that answers gets a wait per request, none of which runs out.
    const auto interactive = connect(echo.port(), 3);
    ASSERT_NE(interactive, 0u);
    for (int i = 0; i < 4; ++i) {
        const std::string request = "request " + std::to_string(i);
        ASSERT_EQ(send(interactive, request), 0);
        ASSERT_TRUE(eventually([&] {
            return rig.record.with([&](auto& r) { return r.tcp_data[3].ends_with(request); });
        })) << i;
    }
    EXPECT_EQ(stats().answer_waits, 5u);
    EXPECT_EQ(stats().answer_waits_lapsed, 1u);
    const auto once = connect(echo_once.port(), 4);
    ASSERT_NE(once, 0u);
    ASSERT_EQ(send(once, "ping"), 0);
    ASSERT_TRUE(eventually([&] { return rig.record.with([&](auto& r) { return r.tcp_data[4] == "ping"; }); }));
    ASSERT_EQ(send(once, "publish, no answer"), 0);
    EXPECT_LT(downloaded(), download.size()) << "the download ended first: nothing was tested";
    ASSERT_TRUE(eventually([&] { return downloaded() == download.size(); }, 30s))
        << downloaded() << " of " << download.size() << " bytes";
    EXPECT_TRUE(rig.record.with([&](auto& r) { return r.tcp_data[1] == download; }));
    EXPECT_EQ(stats().answer_waits, 7u);
    EXPECT_EQ(stats().answer_waits_lapsed, 2u);
}

INSTANTIATE_TEST_SUITE_P(Releases, DriverAnswerFirst, ::testing::Values("v2.9", "v3.1"),
                         [](const auto& info) { return info.param == "v2.9" ? "v2_9" : "v3_1"; });

TEST(DriverUdpMove, ClosedDuringTheMove) {
    EchoServer udp_echo(SOCK_DGRAM);
    EchoServer tcp_echo(SOCK_STREAM);
    Rig rig("v2.9");
    ASSERT_TRUE(rig.ready()) << rig.output();
    const auto free_before = rig.call([&] { return rig.modem_driver().udp_available(); });
    const auto ids = rig.udp_client_beside_tcp(udp_echo.port(), tcp_echo.port());
    ASSERT_TRUE(ids) << rig.output();
    const auto [udp_id, tcp_id] = *ids;

    auto held = rig.await<int>([&](auto&, auto done) {
        rig.modem_driver().udp_send(udp_id, binary(false), done);
        rig.modem_driver().udp_close(udp_id);
    });
    ASSERT_TRUE(held) << rig.output();
    EXPECT_EQ(*held, ENOTCONN);
    ASSERT_TRUE(eventually([&] { return rig.record.with([](auto& r) { return !r.udp_closed.empty(); }); }));
    rig.call([&] { rig.modem_driver().tcp_close(tcp_id); });
    ASSERT_TRUE(eventually([&] { return rig.call([&] { return rig.modem_driver().udp_available(); }) == free_before; }))
        << rig.output();
    rig.describe();  // a round trip: anything the closes would still report has arrived
    rig.record.with([](auto& r) {
        ASSERT_EQ(r.udp_closed.size(), 1u);
        EXPECT_EQ(r.udp_closed.front().reason, modem::CloseReason::local_close);
    });
    EXPECT_EQ(udp_echo.datagrams(), 0);
    EXPECT_EQ(rig.stats().udp_refused_tcp_busy, 0u);
}

// A TCP data-mode session closes the UDP proxy (the firmware would push its datagrams raw into the session). Its
// client moves to a generic socket at the first such session, instead of being closed and opened again (a new
// source port each time, datagrams lost meanwhile) around every one: one suspension for three binary sends, one
// #XUDPCLI, and every datagram and byte back exact, binary datagrams beside the open TCP connection included.
TEST(DriverUdpMove, TheFirstDataModeSessionMovesTheClientOnce) {
    EchoServer udp_echo(SOCK_DGRAM);
    EchoServer tcp_echo(SOCK_STREAM);
    Rig rig("v2.9");
    ASSERT_TRUE(rig.ready()) << rig.output();
    const auto ids = rig.udp_client_beside_tcp(udp_echo.port(), tcp_echo.port());
    ASSERT_TRUE(ids) << rig.output();
    const auto [udp_id, tcp_id] = *ids;
    auto send = [&](auto start) { return rig.await<int>(start).value_or(-1); };
    std::string tcp_expected;
    for (int i = 0; i < 3; ++i) {
        const std::string bytes = binary(false) + std::to_string(i);  // unquotable: a data-mode session
        ASSERT_EQ(send([&](auto&, auto done) { rig.modem_driver().tcp_send(tcp_id, bytes, done); }), 0) << i;
        tcp_expected += bytes;
        ASSERT_TRUE(eventually([&] { return rig.record.with([&](auto& r) { return r.tcp_data[1000]; }) == tcp_expected; }))
            << i << "\n" << rig.output();
        const std::string datagram = i == 2 ? binary(false) : "datagram " + std::to_string(i);
        ASSERT_EQ(send([&](auto&, auto done) { rig.modem_driver().udp_send(udp_id, datagram, done); }), 0) << i;
        ASSERT_TRUE(eventually([&] {
            return rig.record.with([&](auto& r) { return !r.datagrams.empty() && r.datagrams.back().bytes == datagram; });
        })) << i << "\n" << rig.output();
    }
    EXPECT_EQ(rig.stats().udp_suspensions, 1u);
    EXPECT_EQ(rig.stats().udp_refused_tcp_busy, 0u);
    EXPECT_EQ(udp_echo.datagrams(), 3);
    // The client is on a generic socket now (the TCP connection stays on its proxy).
    EXPECT_EQ(rig.call([&] { return rig.modem().slm_sockets().open_count(); }), 1u);
    EXPECT_EQ(rig.call([&] { return rig.driver().descriptors_in_use(); }), 1u);
}

// The firmware refuses the socket a UDP client's move needs (#XSOCKET answers ERROR): the binary datagram is
// refused and counted as before the move existed, and a later one tries the move again once the pause is over
// (with no pause: at once), while a datagram within the pause is refused without another #XSOCKET.
class DriverUdpMoveRefused : public ::testing::TestWithParam<bool> {};

TEST_P(DriverUdpMoveRefused, TriesAgainAfterThePause) {
    const bool long_pause = GetParam();
    EchoServer udp_echo(SOCK_DGRAM);
    EchoServer tcp_echo(SOCK_STREAM);
    Rig rig("v2.9", [long_pause](modem::ModemOptions& options) { options.udp_move_retry = long_pause ? 600s : 0s; });
    ASSERT_TRUE(rig.ready()) << rig.output();
    const auto ids = rig.udp_client_beside_tcp(udp_echo.port(), tcp_echo.port());
    ASSERT_TRUE(ids) << rig.output();
    const auto [udp_id, tcp_id] = *ids;
    ASSERT_EQ(rig.control("refuse AT#XSOCKET=1,2 1"), "ok");
    auto send = [&](const std::string& datagram) {
        return rig.await<int>([&](auto&, auto done) { rig.modem_driver().udp_send(udp_id, datagram, done); })
            .value_or(-1);
    };
    EXPECT_EQ(send(binary(false)), EBUSY) << rig.output();
    EXPECT_EQ(rig.stats().udp_refused_tcp_busy, 1u);
    // The refusal is used up: a move tried now gets its socket. Within the pause none is tried.
    const std::string second = binary(false) + "#2";
    if (long_pause) {
        EXPECT_EQ(send(second), EBUSY);
        EXPECT_EQ(rig.stats().udp_refused_tcp_busy, 2u);
        EXPECT_EQ(udp_echo.datagrams(), 0);
    } else {
        EXPECT_EQ(send(second), 0) << rig.output();
        ASSERT_TRUE(eventually([&] { return rig.record.with([](auto& r) { return !r.datagrams.empty(); }); }))
            << rig.output();
        rig.record.with([&](auto& r) { EXPECT_EQ(r.datagrams.front().bytes, second); });
        EXPECT_EQ(rig.stats().udp_refused_tcp_busy, 1u);
        EXPECT_EQ(udp_echo.datagrams(), 1);
    }
    rig.call([&] {
        rig.modem_driver().udp_close(udp_id);
        rig.modem_driver().tcp_close(tcp_id);
    });
}

INSTANTIATE_TEST_SUITE_P(Pause, DriverUdpMoveRefused, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Long" : "None"; });

INSTANTIATE_TEST_SUITE_P(Releases, DriverPerRelease,
                         ::testing::Values("v2.0", "v2.1", "v2.2", "v2.3", "v2.4", "v2.5", "v2.6", "v2.7", "v2.8",
                                           "v2.9", "v3.0", "v3.1"),
                         [](const auto& info) {
                             std::string name = info.param;
                             for (auto& c : name) {
                                 if (c == '.') c = '_';
                             }
                             return name;
                         });

// slmd killed while its UDP client was open: the firmware still holds the proxy. The next slmd closes it.
TEST(DriverReconcile, OrphanedProxiesAreClosedAfterBringUp) {
    for (const char* profile : {"v2.2", "v2.9"}) {
        SCOPED_TRACE(profile);
        EchoServer echo(SOCK_DGRAM);
        Rig rig(profile);
        ASSERT_TRUE(rig.ready()) << rig.output();
        auto [error, id] = rig.udp_connect(echo.port());
        ASSERT_EQ(error, 0);
        auto listened = rig.await<std::pair<int, modem::ListenerId>>([&](auto& d, auto done) {
            d.tcp_listen(free_port(SOCK_STREAM), false, rig.listener_events(),
                         [done](int e, modem::ListenerId l) { done({e, l}); });
        });
        ASSERT_TRUE(listened && listened->first == 0);
        EXPECT_EQ(rig.stats().orphans_closed, 0u);
        rig.stop_modem();  // no "=0" goes out: the firmware keeps both proxies
        rig.start_modem();
        ASSERT_TRUE(rig.ready()) << rig.output();
        EXPECT_TRUE(eventually([&] { return rig.stats().orphans_closed == 2u; })) << rig.stats().orphans_closed;
        const auto text = rig.describe();
        EXPECT_NE(text.find("#XUDPCLI: -1,"), std::string::npos) << text;
        EXPECT_NE(text.find("#XTCPSVR: -1,-1,"), std::string::npos) << text;
        // The proxy is usable again.
        auto [again, id2] = rig.udp_connect(echo.port());
        EXPECT_EQ(again, 0);
        EXPECT_EQ(rig.udp_send(id2, "back"), 0);
    }
}
