// The contract of modem::ModemDriver (modem/modem_driver.hpp), one typed suite every driver passes: the
// in-memory FakeModemDriver that core/'s tests stand on, and SlmProxyDriver in-process on a scripted firmware
// per release (scripted_firmware.hpp). A new driver (generic sockets, Serial Modem) gets a harness here and must
// pass the same cases: completions from the event loop, never inside the call; bytes exact in both directions,
// binary ones included; exactly one `closed` per connection, with the reason; a slot free again afterwards.
#include <netdb.h>

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "at/channel.hpp"
#include "fake_modem_driver.hpp"
#include "io_test_support.hpp"
#include "modem/slm_proxy_driver.hpp"
#include "modem/serial_modem_driver.hpp"
#include "modem/slm_socket_driver.hpp"
#include "scripted_firmware.hpp"

using namespace slmd;
using namespace std::chrono_literals;
using slmd::test::run_until;

namespace {

const modem::TcpEndpoint server{"192.0.2.1", 80, false, std::nullopt};
const modem::TcpEndpoint udp_server{"192.0.2.1", 5683, false, std::nullopt};

// --- harnesses: the driver, and the far side played for it ---

class FakeHarness {
public:
    static constexpr const char* name = "fake";
    explicit FakeHarness(boost::asio::io_context& io) : fake_(io.get_executor()) {}
    modem::ModemDriver& driver() { return fake_; }
    void peer_sends(modem::ConnectionId id, const std::string& bytes) { fake_.tcp_arrives(id, bytes); }
    void peer_closes(modem::ConnectionId id) { fake_.tcp_peer_closes(id); }
    void modem_lost() { fake_.modem_lost(); }
    void refuse_connects(int error) { fake_.tcp_connect_error = error; }
    void name_resolves(const std::string& host, const std::string& address) { fake_.dns[host] = {address}; }
    std::string uplink(modem::ConnectionId id) { return fake_.tcp_sent[id]; }
    void datagram_arrives(const std::string& datagram) { fake_.udp_arrives(datagram); }
    std::vector<std::string> datagrams_sent() { return fake_.udp_sent; }
    bool settled() const { return true; }

private:
    test::FakeModemDriver fake_;
};

// SlmProxyDriver over an at::Channel whose link is a scripted SLM 2.<Minor> firmware.
template <int Minor>
class SlmProxyHarness {
public:
    static constexpr int minor = Minor;
    static constexpr const char* driver_name = "slm_proxy";
    explicit SlmProxyHarness(boost::asio::io_context& io)
        : firmware_(io.get_executor()),
          channel_(io.get_executor(), firmware_, at::FirmwareProfile::for_version({2, Minor, 0}), 115200),
          gate_(channel_),
          driver_(io.get_executor(), channel_, gate_,
                  modem::SlmProxyDriverHooks{
                      .serving = [] { return true; },
                      .link_backlog = [] { return std::size_t{0}; },
                      .link_written = [this] { return firmware_.bytes_written(); },
                      .pause_receive =
                          [this](bool paused) {
                              firmware_.pause_reading(paused);
                              channel_.set_receive_paused(paused);
                          },
                  },
                  modem::SlmProxyDriverOptions{.data_mode_idle_exit = 50ms}) {
        test::script_slm_bringup(firmware_, Minor);
        firmware_.responder = [this](const std::string& line) { return respond(line); };
        firmware_.attach(channel_);
        firmware_.set_write_listener([this] { driver_.on_link_drained(); });
        // Routed as modem::Modem routes them.
        channel_.set_handlers(at::ChannelHandlers{
            .urc = [this](const std::string& text) { driver_.on_urc(text); },
            .ready = [this] { driver_.on_modem_lost(); },
            .proxy_data = [this](at::ProxyData&& data) { driver_.on_proxy_data(std::move(data)); },
            .raw_data = [this](std::string_view bytes) { driver_.on_raw_data(bytes); },
            .data_mode_exited = [this](int status) { driver_.on_data_mode_exited(status); },
            .payload_lost = [this](const at::PayloadLost& lost) { driver_.on_payload_lost(lost); },
        });
        channel_.set_activity_listener([this] { driver_.on_link_activity(); });
        driver_.on_serving();
    }
    ~SlmProxyHarness() { channel_.shutdown(); }

    modem::ModemDriver& driver() { return driver_; }
    // The firmware frames received bytes only in command mode; the harness waits for settled() first.
    void peer_sends(modem::ConnectionId, const std::string& bytes) { firmware_.say(test::slm_tcp_data(Minor, bytes)); }
    void peer_closes(modem::ConnectionId) { firmware_.say("\r\n#XTCPCLI: -104,\"disconnected\"\r\n"); }
    void modem_lost() { firmware_.say("\r\nReady\r\n"); }
    void refuse_connects(int) { refused_ = true; }
    void name_resolves(const std::string& host, const std::string& address) { dns_[host] = address; }
    std::string uplink(modem::ConnectionId) { return firmware_.uplink; }
    void datagram_arrives(const std::string& datagram) {
        const auto size = std::to_string(datagram.size());
        if (Minor < 3) {
            firmware_.say(datagram + "\r\n#XUDPDATA: " + size + "\r\n");
        } else {
            firmware_.say("\r\n#XUDPDATA: " + size + (Minor >= 8 ? ",\"::\",0" : "") + "\r\n" + datagram);
        }
    }
    std::vector<std::string> datagrams_sent() { return datagrams_; }
    bool settled() const { return !firmware_.in_data_mode() && channel_.idle(); }

private:
    // Answers for lines that carry the test's own values: connects, quoted sends, DNS, UDP opens.
    std::optional<test::ScriptedFirmware::Answer> respond(const std::string& line) {
        if (line.rfind("AT#XTCPCLI=1,", 0) == 0) {
            if (refused_) {
                return test::ScriptedFirmware::Answer{"\r\n#XTCPCLI: -111,\"not connected\"\r\n\r\nERROR\r\n"};
            }
            return test::ScriptedFirmware::Answer{"\r\n#XTCPCLI: 0,\"connected\"\r\n\r\nOK\r\n"};
        }
        if (line.rfind("AT#XUDPCLI=1,", 0) == 0) {
            return test::ScriptedFirmware::Answer{"\r\n#XUDPCLI: 0,\"connected\"\r\n\r\nOK\r\n"};
        }
        for (const std::string command : {"#XTCPSEND", "#XUDPSEND"}) {
            const std::string head = "AT" + command + "=\"";
            if (line.rfind(head, 0) != 0 || line.back() != '"') continue;
            const auto content = line.substr(head.size(), line.size() - head.size() - 1);
            if (command == "#XTCPSEND") {
                firmware_.uplink += content;
            } else {
                datagrams_.push_back(content);
            }
            return test::ScriptedFirmware::Answer{"\r\n" + command + ": " + std::to_string(content.size()) +
                                                  "\r\n\r\nOK\r\n"};
        }
        if (line.rfind("AT#XGETADDRINFO=\"", 0) == 0) {
            const auto name = line.substr(17, line.find('"', 17) - 17);
            auto found = dns_.find(name);
            if (found == dns_.end()) {
                return test::ScriptedFirmware::Answer{"\r\n#XGETADDRINFO: \"not found\"\r\n\r\nERROR\r\n"};
            }
            return test::ScriptedFirmware::Answer{"\r\n#XGETADDRINFO: \"" + found->second + "\"\r\n\r\nOK\r\n"};
        }
        return std::nullopt;
    }

    test::ScriptedFirmware firmware_;
    at::Channel channel_;
    modem::DataModeGate gate_;
    modem::SlmProxyDriver driver_;
    bool refused_ = false;
    std::map<std::string, std::string> dns_;
    std::vector<std::string> datagrams_;
};

// SlmSocketDriver over an at::Channel whose link is a scripted SLM 2.<Minor> firmware with generic sockets: the
// responder keeps the firmware's socket table (handles, the active socket, what each holds for #XRECV).
template <int Minor>
class SlmSocketHarness {
public:
    static constexpr int minor = Minor;
    static constexpr const char* driver_name = "slm_socket";
    explicit SlmSocketHarness(boost::asio::io_context& io)
        : firmware_(io.get_executor()),
          channel_(io.get_executor(), firmware_, at::FirmwareProfile::for_version({2, Minor, 0}), 115200),
          gate_(channel_),
          driver_(io.get_executor(), channel_, gate_, [] { return true; }) {
        test::script_slm_bringup(firmware_, Minor);
        firmware_.responder = [this](const std::string& line) { return respond(line); };
        firmware_.attach(channel_);
        channel_.set_handlers(at::ChannelHandlers{
            .urc = [](const std::string&) {},
            .ready = [this] { driver_.on_modem_lost(); },
            .proxy_data = [](at::ProxyData&&) {},
            .raw_data = [](std::string_view) {},
            .data_mode_exited = [](int) {},
            .payload_lost = [](const at::PayloadLost&) {},
        });
    }
    ~SlmSocketHarness() { channel_.shutdown(); }

    modem::ModemDriver& driver() { return driver_; }
    void peer_sends(modem::ConnectionId, const std::string& bytes) { sockets_.at(last_tcp_).pending += bytes; }
    void peer_closes(modem::ConnectionId) { sockets_.at(last_tcp_).eof = true; }
    void modem_lost() {
        sockets_.clear();
        active_ = -1;
        firmware_.say("\r\nReady\r\n");
    }
    void refuse_connects(int) { refused_ = true; }
    void name_resolves(const std::string& host, const std::string& address) { dns_[host] = address; }
    std::string uplink(modem::ConnectionId) { return firmware_.uplink; }
    void datagram_arrives(const std::string& datagram) { sockets_.at(last_udp_).datagrams.push_back(datagram); }
    std::vector<std::string> datagrams_sent() { return datagrams_; }
    bool settled() const { return !firmware_.in_data_mode() && channel_.idle(); }

    // The n-th TCP connection made (0 = first): its peer sends, closes; what it got in quoted sends.
    void peer_sends_on(std::size_t n, const std::string& bytes) { sockets_.at(connected_.at(n)).pending += bytes; }
    void peer_closes_on(std::size_t n) { sockets_.at(connected_.at(n)).eof = true; }
    std::string sent_on(std::size_t n) {
        return sockets_.count(connected_.at(n)) ? sockets_.at(connected_.at(n)).sent : "";
    }
    const modem::SlmSocketDriver& socket_driver() const { return driver_; }

private:
    using Answer = test::ScriptedFirmware::Answer;
    struct Socket {
        bool udp = false;
        int rank = 0;
        std::string pending;
        std::deque<std::string> datagrams;
        bool eof = false;
        std::string sent;  // quoted sends on this socket
    };
    static Answer answer(const std::string& info, bool ok = true) {
        return Answer{(info.empty() ? "" : "\r\n" + info + "\r\n") + (ok ? "\r\nOK\r\n" : "\r\nERROR\r\n")};
    }
    std::optional<Answer> respond(const std::string& line) {
        if (line == "AT#XSOCKET=1,1,0" || line == "AT#XSOCKET=1,2,0") {
            int handle = 0;
            while (sockets_.count(handle)) ++handle;
            const bool udp = line.back() == '0' && line[line.size() - 3] == '2';
            sockets_[handle] = Socket{udp, ++rank_, {}, {}, false, {}};
            active_ = handle;
            return answer("#XSOCKET: " + std::to_string(handle) + (udp ? ",2,17" : ",1,6"));
        }
        if (line == "AT#XSOCKET=0") {
            if (!sockets_.erase(active_)) return answer("", false);
            active_ = -1;  // the newest one left becomes active
            int best = 0;
            for (const auto& [handle, socket] : sockets_) {
                if (socket.rank > best) best = socket.rank, active_ = handle;
            }
            return answer("#XSOCKET: 0,\"closed\"");
        }
        if (line.rfind("AT#XSOCKETSELECT=", 0) == 0) {
            const int handle = std::stoi(line.substr(17));
            if (!sockets_.count(handle)) return answer("", false);
            active_ = handle;
            return answer("#XSOCKETSELECT: " + std::to_string(handle));
        }
        auto* active = sockets_.count(active_) ? &sockets_.at(active_) : nullptr;
        if (line.rfind("AT#XCONNECT=", 0) == 0) {
            if (!active || (refused_ && !active->udp)) return answer("", false);
            (active->udp ? last_udp_ : last_tcp_) = active_;
            if (!active->udp) connected_.push_back(active_);
            return answer("#XCONNECT: 1");
        }
        if (line.rfind("AT#XSEND=\"", 0) == 0 && line.back() == '"') {
            if (!active) return answer("", false);
            const auto content = line.substr(10, line.size() - 11);
            if (active->udp) {
                datagrams_.push_back(content);
            } else {
                firmware_.uplink += content;
                active->sent += content;
            }
            return answer("#XSEND: " + std::to_string(content.size()));
        }
        if (line == "AT#XSEND") return Answer{Minor >= 1 ? "\r\nOK\r\n" : "", true};
        if (line == "AT#XPOLL=0") {
            std::string lines;
            for (const auto& [handle, socket] : sockets_) {
                const unsigned events = (!socket.pending.empty() || !socket.datagrams.empty() ? 1u : 0u) |
                                        (socket.eof ? 0x10u : 0u);
                if (!events) continue;
                char text[16];
                std::snprintf(text, sizeof text, Minor >= 1 ? "0x%04x" : "0x%08x", events);
                lines += "\r\n#XPOLL: " + std::to_string(handle) + ",\"" + text + "\"\r\n";
            }
            return Answer{lines + "\r\nOK\r\n"};
        }
        if (line == "AT#XRECV=0,64" || line == "AT#XRECV=1") {
            if (!active) return answer("", false);
            std::string data;
            if (active->udp && !active->datagrams.empty()) {
                data = active->datagrams.front();
                active->datagrams.pop_front();
            } else if (!active->udp && !active->pending.empty()) {
                data = active->pending.substr(0, 2048);
                active->pending.erase(0, data.size());
            } else {
                return answer("", active->eof);  // end of stream: OK alone; nothing waiting: ERROR
            }
            return Answer{"\r\n#XRECV: " + std::to_string(data.size()) + "\r\n" + data + "\r\nOK\r\n"};
        }
        if (line.rfind("AT#XGETADDRINFO=\"", 0) == 0) {
            const auto name = line.substr(17, line.find('"', 17) - 17);
            auto found = dns_.find(name);
            if (found == dns_.end()) return answer("#XGETADDRINFO: \"not found\"", false);
            return answer("#XGETADDRINFO: \"" + found->second + "\"");
        }
        return std::nullopt;
    }

    test::ScriptedFirmware firmware_;
    at::Channel channel_;
    modem::DataModeGate gate_;
    modem::SlmSocketDriver driver_;
    std::map<int, Socket> sockets_;
    int active_ = -1;
    int rank_ = 0;
    int last_tcp_ = -1;
    int last_udp_ = -1;
    std::vector<int> connected_;
    bool refused_ = false;
    std::map<std::string, std::string> dns_;
    std::vector<std::string> datagrams_;
};

// SerialModemDriver over an at::Channel whose link is a scripted Serial Modem v1.0 (CR-terminated commands):
// the responder keeps its socket table (handles are descriptors, not slots: they start at 3), writes received
// bytes as automatic-reception URCs and a peer's close as a one-shot #XAPOLL report, and takes counted sends.
// Major 1: v1.0.1 (7 sockets); major 2: the v2.0 previews (8 sockets, TCP servers).
template <int Major>
class SerialModemHarness {
public:
    static constexpr int minor = 0;
    static constexpr const char* driver_name = "serial_modem";
    explicit SerialModemHarness(boost::asio::io_context& io)
        : firmware_(io.get_executor()),
          channel_(io.get_executor(), firmware_,
                   at::FirmwareProfile::for_serial_modem({Major, 0, Major == 1 ? 1 : 0}), 115200),
          gate_(channel_),
          driver_(io.get_executor(), channel_, gate_, [] { return true; }) {
        firmware_.line_end = "\r";
        firmware_.responder = [this](const std::string& line) { return respond(line); };
        firmware_.attach(channel_);
        channel_.set_handlers(at::ChannelHandlers{
            .urc = [this](const std::string& text) { driver_.on_urc(text); },
            .ready = [this] { driver_.on_modem_lost(); },
            .proxy_data = [this](at::ProxyData&& data) { driver_.on_proxy_data(std::move(data)); },
            .raw_data = [](std::string_view) {},
            .data_mode_exited = [](int) {},
            .payload_lost = [this](const at::PayloadLost& lost) { driver_.on_payload_lost(lost); },
        });
        driver_.on_serving();
    }
    ~SerialModemHarness() { channel_.shutdown(); }

    modem::ModemDriver& driver() { return driver_; }
    void peer_sends(modem::ConnectionId, const std::string& bytes) { peer_sends_to(last_tcp_, bytes); }
    void peer_closes(modem::ConnectionId) { firmware_.say("\r\n#XAPOLL: " + std::to_string(last_tcp_) + ",16\r\n"); }
    void modem_lost() {
        sockets_.clear();
        firmware_.say("\r\nReady\r\n");
    }
    void refuse_connects(int) { refused_ = true; }
    void name_resolves(const std::string& host, const std::string& address) { dns_[host] = address; }
    std::string uplink(modem::ConnectionId) { return firmware_.uplink; }
    void datagram_arrives(const std::string& datagram) { peer_sends_to(last_udp_, datagram); }
    std::vector<std::string> datagrams_sent() { return datagrams_; }
    bool settled() const { return !firmware_.in_data_mode() && channel_.idle(); }
    const test::ScriptedFirmware& firmware() const { return firmware_; }
    const modem::SerialModemDriver& sm_driver() const { return driver_; }

private:
    using Answer = test::ScriptedFirmware::Answer;
    static Answer answer(const std::string& info, bool ok = true) {
        return Answer{(info.empty() ? "" : "\r\n" + info + "\r\n") + (ok ? "\r\nOK\r\n" : "\r\nERROR\r\n")};
    }
    void peer_sends_to(int handle, const std::string& bytes) {
        // Automatic reception: header, the bytes, CRLF; at most 2048 a time.
        for (std::size_t at = 0; at < bytes.size(); at += 2048) {
            const auto piece = bytes.substr(at, 2048);
            firmware_.say("\r\n#XRECV: " + std::to_string(handle) + ",0," + std::to_string(piece.size()) + "\r\n" +
                          piece + "\r\n");
        }
    }
    std::optional<Answer> respond(const std::string& line) {
        if (line == "AT#XCLOSE" || line == "AT#XRECVCFG=,1" || line == "AT#XAPOLL=,1,0") return answer("");
        if (line == "AT#XSOCKET=1,1,0" || line == "AT#XSOCKET=1,2,0") {
            int handle = 3;
            while (sockets_.count(handle)) ++handle;
            const bool udp = line == "AT#XSOCKET=1,2,0";
            sockets_[handle] = udp;
            return answer("#XSOCKET: " + std::to_string(handle) + (udp ? ",2,17" : ",1,6"));
        }
        auto handle_of = [&](std::size_t prefix) { return std::stoi(line.substr(prefix)); };
        if (line.rfind("AT#XCLOSE=", 0) == 0) {
            const int handle = handle_of(10);
            if (!sockets_.erase(handle)) return answer("", false);
            return answer("#XCLOSE: " + std::to_string(handle) + ",0");
        }
        if (line.rfind("AT#XCONNECT=", 0) == 0) {
            const int handle = handle_of(12);
            if (!sockets_.count(handle) || (refused_ && !sockets_.at(handle))) return answer("", false);
            (sockets_.at(handle) ? last_udp_ : last_tcp_) = handle;
            return answer("#XCONNECT: " + std::to_string(handle) + ",1");
        }
        if (line.rfind("AT#XSEND=", 0) == 0) {
            const int handle = handle_of(9);
            if (!sockets_.count(handle)) return answer("", false);
            const auto mode_at = line.find(',') + 1;
            const auto data_at = line.find(',', mode_at + 2) + 1;  // after "<mode>,<flags>,"
            if (line[mode_at] == '2') {
                const auto count = std::stoul(line.substr(data_at));
                return Answer{"\r\nOK\r\n", true, count};
            }
            const auto content = line.substr(data_at + 1, line.size() - data_at - 2);
            if (sockets_.at(handle)) {
                datagrams_.push_back(content);
            } else {
                firmware_.uplink += content;
            }
            return answer("#XSEND: " + std::to_string(handle) + ",0," + std::to_string(content.size()));
        }
        if (line.rfind("AT#XRECV=", 0) == 0) return answer("");  // after a close report: the end of the stream
        if (line.rfind("AT#XGETADDRINFO=\"", 0) == 0) {
            const auto name = line.substr(17, line.find('"', 17) - 17);
            auto found = dns_.find(name);
            if (found == dns_.end()) return answer("#XGETADDRINFO: \"not found\"", false);
            return answer("#XGETADDRINFO: \"" + found->second + "\"");
        }
        return std::nullopt;
    }

    test::ScriptedFirmware firmware_;
    at::Channel channel_;
    modem::DataModeGate gate_;
    modem::SerialModemDriver driver_;
    std::map<int, bool> sockets_;  // handle -> UDP
    int last_tcp_ = -1;
    int last_udp_ = -1;
    bool refused_ = false;
    std::map<std::string, std::string> dns_;
    std::vector<std::string> datagrams_;
};

// --- the contract ---

template <typename Harness>
class DriverContract : public ::testing::Test {
protected:
    struct Connection {
        std::optional<int> error;
        modem::ConnectionId id = 0;
        std::string received;
        std::vector<std::pair<modem::CloseReason, int>> closes;
        modem::TcpConnectionEvents events() {
            return {.data = [this](std::string_view bytes) { received += bytes; },
                    .closed = [this](modem::CloseReason reason, int error) { closes.emplace_back(reason, error); }};
        }
    };

    DriverContract() {
        driver().set_capacity_listener([this] { ++capacity_calls; });
    }
    modem::ModemDriver& driver() { return harness.driver(); }
    bool settle() { return run_until(io, [&] { return harness.settled(); }); }

    // Starts a connect and checks that it completes only from the event loop; returns once it did.
    void connect(Connection& connection) {
        driver().tcp_connect(server, 5s, connection.events(), [&connection](int error, modem::ConnectionId id) {
            connection.error = error;
            connection.id = id;
        });
        EXPECT_FALSE(connection.error.has_value()) << "done ran inside tcp_connect()";
        ASSERT_TRUE(run_until(io, [&] { return connection.error.has_value(); }));
    }
    std::optional<int> send(modem::ConnectionId id, const std::string& bytes) {
        std::optional<int> result;
        driver().tcp_send(id, bytes, [&result](int error) { result = error; });
        EXPECT_TRUE(run_until(io, [&] { return result.has_value(); }));
        return result;
    }

    boost::asio::io_context io;
    Harness harness{io};
    int capacity_calls = 0;
};

using Drivers = ::testing::Types<FakeHarness, SlmProxyHarness<0>, SlmProxyHarness<5>, SlmProxyHarness<9>,
                                 SlmSocketHarness<0>, SlmSocketHarness<5>, SlmSocketHarness<9>, SerialModemHarness<1>,
                                 SerialModemHarness<2>>;
class DriverNames {
public:
    template <typename T>
    static std::string GetName(int) {
        if constexpr (std::is_same_v<T, FakeHarness>) {
            return "fake";
        } else {
            if constexpr (std::is_same_v<T, SerialModemHarness<1>>) return "serial_modem_v1_0";
            if constexpr (std::is_same_v<T, SerialModemHarness<2>>) return "serial_modem_v2_0_preview";
            return std::string(T::driver_name) + "_v2_" + std::to_string(T::minor);
        }
    }
};
TYPED_TEST_SUITE(DriverContract, Drivers, DriverNames);

}  // namespace

TYPED_TEST(DriverContract, AConnectTakesASlotAndCompletesFromTheEventLoop) {
    const auto capacity = this->driver().tcp_capacity();
    ASSERT_GE(capacity, 1u);
    ASSERT_TRUE(this->settle());
    EXPECT_EQ(this->driver().tcp_available(), capacity);
    typename TestFixture::Connection connection;
    this->connect(connection);
    EXPECT_EQ(connection.error, 0);
    EXPECT_NE(connection.id, 0u);
    EXPECT_EQ(this->driver().tcp_available(), capacity - 1);
    EXPECT_TRUE(connection.closes.empty());
}

TYPED_TEST(DriverContract, BytesGoUpExactlyAndInOrderBinaryOnesToo) {
    typename TestFixture::Connection connection;
    this->connect(connection);
    ASSERT_EQ(connection.error, 0);
    const std::string binary("a+++b\"c\0d\r\nOK\r\n+", 16);
    EXPECT_EQ(this->send(connection.id, "hello "), 0);
    EXPECT_EQ(this->send(connection.id, binary), 0);
    EXPECT_EQ(this->send(connection.id, " tail"), 0);
    ASSERT_TRUE(run_until(this->io, [&] { return this->harness.uplink(connection.id).size() >= 27; }))
        << ::testing::PrintToString(this->harness.uplink(connection.id));
    ASSERT_TRUE(this->settle());
    EXPECT_EQ(this->harness.uplink(connection.id), "hello " + binary + " tail");
}

TYPED_TEST(DriverContract, BytesComeDownExactlyAndInOrder) {
    typename TestFixture::Connection connection;
    this->connect(connection);
    ASSERT_TRUE(this->settle());
    this->harness.peer_sends(connection.id, "one ");
    this->harness.peer_sends(connection.id, std::string("two\r\nOK\r\n\0+++", 13));
    ASSERT_TRUE(run_until(this->io, [&] { return connection.received.size() >= 17; }));
    EXPECT_EQ(connection.received, std::string("one two\r\nOK\r\n\0+++", 17));
}

TYPED_TEST(DriverContract, APeerCloseIsOneClosedEventAndFreesTheSlot) {
    typename TestFixture::Connection connection;
    this->connect(connection);
    ASSERT_TRUE(this->settle());
    this->harness.peer_closes(connection.id);
    ASSERT_TRUE(run_until(this->io, [&] {
        return !connection.closes.empty() && this->driver().tcp_available() == this->driver().tcp_capacity() &&
               this->capacity_calls > 0;
    }));
    ASSERT_EQ(connection.closes.size(), 1u);
    EXPECT_EQ(connection.closes[0].first, modem::CloseReason::peer_closed);
    EXPECT_EQ(this->send(connection.id, "late"), ENOTCONN);
    ASSERT_TRUE(this->settle());
    EXPECT_EQ(connection.closes.size(), 1u);
}

TYPED_TEST(DriverContract, ALocalCloseReportsLocalCloseOnceFromTheEventLoop) {
    typename TestFixture::Connection connection;
    this->connect(connection);
    ASSERT_TRUE(this->settle());
    this->driver().tcp_close(connection.id);
    EXPECT_TRUE(connection.closes.empty()) << "closed ran inside tcp_close()";
    ASSERT_TRUE(run_until(this->io, [&] {
        return !connection.closes.empty() && this->driver().tcp_available() == this->driver().tcp_capacity();
    }));
    ASSERT_TRUE(this->settle());
    EXPECT_EQ(connection.closes,
              (std::vector<std::pair<modem::CloseReason, int>>{{modem::CloseReason::local_close, 0}}));
    // The listener is posted (never run inside the driver): the loop may still hold it when the slot shows free.
    EXPECT_TRUE(run_until(this->io, [&] { return this->capacity_calls > 0; }));
}

TYPED_TEST(DriverContract, ALostModemEndsEveryConnectionWithModemLost) {
    typename TestFixture::Connection connection;
    this->connect(connection);
    ASSERT_TRUE(this->settle());
    this->harness.modem_lost();
    ASSERT_TRUE(run_until(this->io, [&] { return !connection.closes.empty(); }));
    ASSERT_TRUE(run_until(this->io, [&] { return this->driver().tcp_available() == this->driver().tcp_capacity(); }));
    EXPECT_EQ(connection.closes.size(), 1u);
    EXPECT_EQ(connection.closes[0].first, modem::CloseReason::modem_lost);
    EXPECT_NE(connection.closes[0].second, 0);
}

TYPED_TEST(DriverContract, ARefusedConnectReportsItsErrnoAndKeepsTheSlotFree) {
    this->harness.refuse_connects(ECONNREFUSED);
    typename TestFixture::Connection connection;
    this->connect(connection);
    EXPECT_EQ(connection.error, ECONNREFUSED);
    EXPECT_EQ(this->driver().tcp_available(), this->driver().tcp_capacity());
}

TYPED_TEST(DriverContract, NamesResolveToNumericAddressesOrEaiNoname) {
    this->harness.name_resolves("broker.example", "192.0.2.7");
    std::optional<int> status;
    std::vector<std::string> addresses;
    this->driver().resolve("broker.example", AF_UNSPEC, [&](int s, std::vector<std::string> a) {
        status = s;
        addresses = std::move(a);
    });
    EXPECT_FALSE(status.has_value()) << "done ran inside resolve()";
    ASSERT_TRUE(run_until(this->io, [&] { return status.has_value(); }));
    EXPECT_EQ(*status, 0);
    EXPECT_EQ(addresses, std::vector<std::string>{"192.0.2.7"});

    status.reset();
    this->driver().resolve("nowhere.example", AF_UNSPEC, [&](int s, std::vector<std::string>) { status = s; });
    ASSERT_TRUE(run_until(this->io, [&] { return status.has_value(); }));
    EXPECT_EQ(*status, EAI_NONAME);
}

TYPED_TEST(DriverContract, UdpDatagramsGoBothWaysWholeAndACloseIsReportedOnce) {
    std::optional<int> opened;
    modem::ConnectionId id = 0;
    std::vector<std::string> received;
    std::vector<modem::CloseReason> closes;
    const auto available = this->driver().udp_available();
    ASSERT_GE(available, 1u);
    this->driver().udp_connect(
        udp_server,
        {.datagram = [&](std::string_view datagram, const std::optional<modem::UdpPeer>&) {
             received.emplace_back(datagram);
         },
         .closed = [&](modem::CloseReason reason, int) { closes.push_back(reason); }},
        [&](int error, modem::ConnectionId opened_id) {
            opened = error;
            id = opened_id;
        });
    EXPECT_FALSE(opened.has_value()) << "done ran inside udp_connect()";
    ASSERT_TRUE(run_until(this->io, [&] { return opened.has_value(); }));
    ASSERT_EQ(*opened, 0);
    EXPECT_EQ(this->driver().udp_available(), available - 1);

    std::optional<int> sent;
    this->driver().udp_send(id, "ping 1", [&](int error) { sent = error; });
    ASSERT_TRUE(run_until(this->io, [&] { return sent.has_value(); }));
    EXPECT_EQ(*sent, 0);
    EXPECT_EQ(this->harness.datagrams_sent(), std::vector<std::string>{"ping 1"});

    ASSERT_TRUE(this->settle());
    this->harness.datagram_arrives("pong 1");
    this->harness.datagram_arrives("pong 22");
    ASSERT_TRUE(run_until(this->io, [&] { return received.size() >= 2; }));
    EXPECT_EQ(received, (std::vector<std::string>{"pong 1", "pong 22"}));

    this->driver().udp_close(id);
    EXPECT_TRUE(closes.empty()) << "closed ran inside udp_close()";
    ASSERT_TRUE(run_until(this->io, [&] { return !closes.empty() && this->driver().udp_available() == available; }));
    ASSERT_TRUE(this->settle());
    EXPECT_EQ(closes, std::vector<modem::CloseReason>{modem::CloseReason::local_close});
}

// What the generic-socket driver is for: several connections at once, each with its own bytes, however the
// firmware's active socket moves; the firmware's limit, then EBUSY; a slot freed by one peer's close.
TEST(SlmSocketDriver, EightConnectionsAtOnceEachWithItsOwnBytes) {
    boost::asio::io_context io;
    SlmSocketHarness<9> harness(io);
    auto& driver = harness.driver();
    struct Connection {
        std::optional<int> error;
        modem::ConnectionId id = 0;
        std::string received;
        std::vector<modem::CloseReason> closes;
    };
    std::vector<Connection> connections(9);
    auto connect = [&](Connection& c) {
        driver.tcp_connect(server, 5s,
                           {.data = [&c](std::string_view bytes) { c.received += bytes; },
                            .closed = [&c](modem::CloseReason reason, int) { c.closes.push_back(reason); }},
                           [&c](int error, modem::ConnectionId id) {
                               c.error = error;
                               c.id = id;
                           });
    };
    for (auto& c : connections) connect(c);  // all nine asked at once
    ASSERT_TRUE(run_until(io, [&] {
        return std::all_of(connections.begin(), connections.end(), [](auto& c) { return c.error.has_value(); });
    }));
    for (std::size_t i = 0; i < 8; ++i) EXPECT_EQ(connections[i].error, 0) << i;
    EXPECT_EQ(connections[8].error, EBUSY) << "the firmware holds eight";
    EXPECT_EQ(driver.tcp_available(), 0u);

    // Bytes both ways on every connection, in reverse order of opening: the active socket has to move.
    for (std::size_t i = 8; i-- > 0;) {
        std::optional<int> sent;
        driver.tcp_send(connections[i].id, "to " + std::to_string(i), [&](int error) { sent = error; });
        ASSERT_TRUE(run_until(io, [&] { return sent.has_value(); }));
        EXPECT_EQ(*sent, 0);
        harness.peer_sends_on(i, "from " + std::to_string(i));
    }
    ASSERT_TRUE(run_until(io, [&] {
        return std::all_of(connections.begin(), connections.begin() + 8,
                           [](auto& c) { return c.received.size() == 6; });
    }));
    for (std::size_t i = 0; i < 8; ++i) {
        EXPECT_EQ(connections[i].received, "from " + std::to_string(i));
        EXPECT_EQ(harness.sent_on(i), "to " + std::to_string(i));
    }
    EXPECT_GT(harness.socket_driver().stats().selects, 0u);

    // One peer closes: its connection alone ends, and the slot serves a new connection.
    harness.peer_closes_on(3);
    ASSERT_TRUE(run_until(io, [&] { return !connections[3].closes.empty() && driver.tcp_available() == 1; }));
    EXPECT_EQ(connections[3].closes, std::vector<modem::CloseReason>{modem::CloseReason::peer_closed});
    for (std::size_t i = 0; i < 8; ++i) {
        if (i != 3) {
            EXPECT_TRUE(connections[i].closes.empty()) << i;
        }
    }
    Connection late;
    connect(late);
    ASSERT_TRUE(run_until(io, [&] { return late.error.has_value(); }));
    EXPECT_EQ(late.error, 0);
}
