// Owns: TLS and DTLS run by the modem, end to end through the real slmd and slmsim (which runs real TLS 1.2 /
// DTLS 1.2 with OpenSSL against tls_echo_server and a test PKI): libslmsock's explicit calls (success, an
// unknown CA, a wrong host name, peer_verify 0/1/2, mutual TLS, PSK, DTLS), what an older release cannot do
// (refused before the UART), slmd.conf's tls mapping for a program that talks plaintext, the TLS server on
// native-TLS firmware and its refusal elsewhere, and the UART bytes of one 100-byte exchange with TLS in the
// modem against TLS on the host (the simulator's counters). Every wait is bounded and waits on a condition.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include "gateway.hpp"
#include "release.hpp"
#include "slmsock.h"
#include "test_ports.hpp"

using namespace slmd::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

constexpr int tag_ca = 42;          // the test CA: the server's certificate verifies
constexpr int tag_other_ca = 43;    // an unrelated CA: it does not
constexpr int tag_client_cert = 44; // the test CA plus a client certificate and key (mutual TLS)
constexpr int tag_psk = 45;         // a pre-shared key and identity
constexpr int tag_server = 46;      // the modem's own TLS server certificate and key (native TLS)

std::string pki(const std::string& name) { return std::string(TEST_PKI_DIR) + "/" + name; }

void copy(const std::string& from, const fs::path& to) {
    std::ofstream(to, std::ios::binary) << read_file(from);
}

// The modem's credential store as slmsim keeps it on disk (--cred-dir): one file per <sec_tag>.<type>.
std::vector<std::string> provisioned_modem(const TempDir& dir) {
    const fs::path creds = dir / "creds";
    fs::create_directories(creds);
    copy(pki("ca.pem"), creds / "42.0");
    copy(pki("other-ca.pem"), creds / "43.0");
    copy(pki("ca.pem"), creds / "44.0");
    copy(pki("client.pem"), creds / "44.1");
    copy(pki("client.key"), creds / "44.2");
    copy(pki("psk.hex"), creds / "45.3");
    copy(pki("psk-identity.txt"), creds / "45.4");
    copy(pki("server.pem"), creds / "46.1");
    copy(pki("server.key"), creds / "46.2");
    // tls.test is the name in the server's certificate; other.test resolves to the same server but is not.
    const fs::path hosts = dir / "tls-hosts";
    std::ofstream(hosts) << "203.0.113.10 tls.test\n203.0.113.11 other.test\n";
    return {"--cred-dir", creds, "--hosts", hosts};
}

std::string trim(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
    return s;
}

// tls_echo_server on 127.0.0.1 (reached through the modem as 203.0.113.10/11): TLS, or DTLS with `dtls`.
class TlsEchoServer {
  public:
    explicit TlsEchoServer(std::vector<std::string> extra = {}, bool dtls = false, bool certificate = true) {
        std::vector<std::string> argv{TLS_ECHO_SERVER_BIN, "--port", "0"};
        if (certificate) argv.insert(argv.end(), {"--cert", pki("server.pem"), "--key", pki("server.key")});
        if (dtls) argv.emplace_back("--dtls");
        argv.insert(argv.end(), extra.begin(), extra.end());
        process.emplace(argv);
        if (auto line = process->read_line(10s)) port = static_cast<std::uint16_t>(std::stoi(trim(*line)));
    }
    bool saw(const std::string& needle, std::chrono::milliseconds limit = 10s) {
        return process->output().find(needle) != std::string::npos || process->wait_for_output(needle, limit);
    }
    std::optional<ChildProcess> process;
    std::uint16_t port = 0;
};

struct slmsock_tls tls_with(int sec_tag) {
    struct slmsock_tls tls {};
    slmsock_tls_init(&tls, sec_tag);
    return tls;
}

// Writes `message` and reads as many bytes back.
std::string echo(int fd, const std::string& message) {
    if (!write_all(fd, message)) return "<write failed: " + std::string(std::strerror(errno)) + ">";
    return read_n(fd, message.size(), 20s);
}

std::string hundred_bytes() {
    std::string m;
    for (int i = 0; m.size() < 100; ++i) m += "tls-" + std::to_string(i) + ";";
    m.resize(100);
    return m;
}

sockaddr_in v4(const char* address, std::uint16_t port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    inet_pton(AF_INET, address, &a.sin_addr);
    return a;
}

// An app's UDP socket on 127.0.0.1 associated through slmd with a DTLS peer (slmsock_dtls_associate): the app
// sends its plaintext to the stand-in port. fd < 0 or a non-zero status when the association failed.
struct DtlsApp {
    int fd = -1;
    int status = -1;
    sockaddr_in stand_in{};
    DtlsApp(const char* peer_address, std::uint16_t peer_port, const slmsock_tls& dtls) {
        fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        auto local = v4("127.0.0.1", 0);
        if (bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) return;
        socklen_t length = sizeof local;
        getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length);
        auto peer = v4(peer_address, peer_port);
        std::uint16_t port = 0;
        status = slmsock_dtls_associate(AF_INET, ntohs(local.sin_port), reinterpret_cast<sockaddr*>(&peer),
                                        sizeof peer, &dtls, &port);
        stand_in = v4("127.0.0.1", port);
    }
    ~DtlsApp() {
        if (fd >= 0) close(fd);
    }
    DtlsApp(const DtlsApp&) = delete;
    DtlsApp& operator=(const DtlsApp&) = delete;
    // Sends one datagram and returns the first one back (empty after 20 s).
    std::string echo(const std::string& datagram) const {
        if (sendto(fd, datagram.data(), datagram.size(), 0, reinterpret_cast<const sockaddr*>(&stand_in),
                   sizeof stand_in) != static_cast<ssize_t>(datagram.size()))
            return {};
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, 20000) != 1) return {};
        char buffer[2048];
        const ssize_t n = recv(fd, buffer, sizeof buffer, 0);
        return std::string(buffer, n > 0 ? static_cast<std::size_t>(n) : 0);
    }
};

// UART bytes both ways so far, from slmsim's counters.
std::uint64_t uart_bytes(const Gateway& gateway) {
    const std::string stats = gateway.control("stats");
    std::uint64_t total = 0;
    for (const char* key : {"bytes_rx=", "bytes_tx="}) {
        const auto at = stats.find(key);
        if (at == std::string::npos) return 0;
        total += std::stoull(stats.substr(at + std::strlen(key)));
    }
    return total;
}

class Tls : public ::testing::Test {
  protected:
    // A gateway whose modem already holds the test credentials.
    std::unique_ptr<Gateway> provisioned(const std::string& profile, std::vector<std::string> sim_extra = {},
                                         std::vector<std::string> slmd_extra = {}) {
        auto options = GatewayOptions().with_profile(profile);
        auto sim = provisioned_modem(creds_dir_);
        sim.insert(sim.end(), sim_extra.begin(), sim_extra.end());
        options.sim(sim).daemon(slmd_extra);
        auto gateway = std::make_unique<Gateway>(options);
        EXPECT_TRUE(gateway->ready) << gateway->log();
        return gateway;
    }
    TempDir creds_dir_;
};

TEST_F(Tls, ClientEchoesPlaintextThroughTheModemsTls) {
    TlsEchoServer server;
    ASSERT_NE(server.port, 0);
    auto gateway = provisioned("v2.9");
    auto tls = tls_with(tag_ca);
    const int fd = slmsock_tls_connect("tls.test", server.port, AF_INET, &tls);
    ASSERT_GE(fd, 0) << slmsock_strerror(fd) << "\n" << gateway->log();
    const std::string message = hundred_bytes();
    EXPECT_EQ(echo(fd, message), message);
    close(fd);
    EXPECT_TRUE(server.saw("handshake ok"));
    // The modem connects to (and verifies) the name; the firmware's defaults are left alone.
    EXPECT_TRUE(gateway->sent("AT#XTCPCLI=1,\"tls.test\"," + std::to_string(server.port) + ",42\r\n"))
        << gateway->uplink_trace();
}

// The Serial Modem: every TLS connection is a TLS socket of the modem's own (#XSSOCKET, the name set with
// #XSSOCKETOPT before #XCONNECT runs the handshake), so two run at once, where SLM's single TCP proxy holds
// one. A failed handshake (unknown CA, wrong name) is ECONNABORTED as on SLM, and frees its socket.
TEST_F(Tls, SerialModemTlsSocketsTwoAtOnce) {
    TlsEchoServer server;
    ASSERT_NE(server.port, 0);
    auto gateway = provisioned("sm-v1.0");
    auto tls = tls_with(tag_ca);
    const int first = slmsock_tls_connect("tls.test", server.port, AF_INET, &tls);
    ASSERT_GE(first, 0) << slmsock_strerror(first) << "\n" << gateway->log();
    const int second = slmsock_tls_connect("tls.test", server.port, AF_INET, &tls);
    ASSERT_GE(second, 0) << slmsock_strerror(second) << "\n" << gateway->log();
    std::string binary("first\0\"+++\r\nOK\r\n", 16);
    for (int i = 0; i < 300; ++i) binary += static_cast<char>(i * 7);
    EXPECT_TRUE(echo(first, binary) == binary);
    EXPECT_EQ(echo(second, hundred_bytes()), hundred_bytes());
    EXPECT_EQ(echo(first, "still first"), "still first");
    const auto uplink = gateway->uplink_trace();
    EXPECT_EQ(count(uplink, "AT#XSSOCKET=1,1,0,42\r"), 2u) << uplink;
    EXPECT_EQ(count(uplink, ",1,2,\"tls.test\"\r"), 2u) << uplink;  // the name is checked
    close(first);
    close(second);

    auto other = tls_with(tag_other_ca);
    EXPECT_EQ(slmsock_tls_connect("tls.test", server.port, AF_INET, &other), -ECONNABORTED);
    EXPECT_TRUE(server.saw("handshake failed"));
    EXPECT_EQ(slmsock_tls_connect("other.test", server.port, AF_INET, &tls), -ECONNABORTED);
    tls.hostname_verify = 0;  // the same server accepted once the name is not checked
    const int unchecked = slmsock_tls_connect("other.test", server.port, AF_INET, &tls);
    ASSERT_GE(unchecked, 0) << slmsock_strerror(unchecked) << "\n" << gateway->log();
    EXPECT_EQ(echo(unchecked, "name not checked"), "name not checked");
    close(unchecked);
    // The name was set for the checked attempt only.
    EXPECT_EQ(count(gateway->uplink_trace(), ",1,2,\"other.test\"\r"), 1u) << gateway->uplink_trace();
}

// The Serial Modem: a DTLS association is a DTLS socket of the modem's own (AT#XSSOCKET=<f>,2,0,<sec_tag>, the
// name and the connection-id choice set with #XSSOCKETOPT, the handshake in #XCONNECT), so two run at once beside
// a TLS connection. A failed handshake frees its socket and the association fails.
TEST_F(Tls, SerialModemDtlsSocketsTwoAtOnce) {
    TlsEchoServer dtls_server({}, true);
    TlsEchoServer second_dtls_server({}, true);  // the test's DTLS server serves one peer at a time
    TlsEchoServer tls_server;
    ASSERT_NE(dtls_server.port, 0);
    ASSERT_NE(second_dtls_server.port, 0);
    auto gateway = provisioned("sm-v1.0");
    auto dtls = tls_with(tag_ca);
    dtls.hostname = "tls.test";
    dtls.dtls_cid = 2;
    DtlsApp first("203.0.113.10", dtls_server.port, dtls);
    ASSERT_EQ(first.status, 0) << gateway->log();
    DtlsApp second("203.0.113.10", second_dtls_server.port, dtls);
    ASSERT_EQ(second.status, 0) << gateway->log();
    auto tls = tls_with(tag_ca);
    const int stream = slmsock_tls_connect("tls.test", tls_server.port, AF_INET, &tls);
    ASSERT_GE(stream, 0) << slmsock_strerror(stream) << "\n" << gateway->log();
    std::string binary("dtls\0\"+++\r\nOK\r\n", 15);
    for (int i = 0; i < 700; ++i) binary += static_cast<char>(i * 11);
    EXPECT_TRUE(first.echo(binary) == binary) << gateway->log();
    EXPECT_EQ(second.echo("second association"), "second association");
    EXPECT_EQ(echo(stream, "tls beside"), "tls beside");
    EXPECT_EQ(first.echo("first again"), "first again");
    close(stream);
    const auto uplink = gateway->uplink_trace();
    EXPECT_EQ(count(uplink, "AT#XSSOCKET=1,2,0,42\r"), 2u) << uplink;
    EXPECT_EQ(count(uplink, ",1,2,\"tls.test\"\r"), 3u) << uplink;  // both DTLS sockets and the TLS one
    EXPECT_EQ(count(uplink, ",1,14,2\r"), 2u) << uplink;              // DTLS_CID enabled, as asked
    EXPECT_TRUE(dtls_server.saw("handshake ok"));

    auto other = tls_with(tag_other_ca);
    other.hostname = "tls.test";
    TlsEchoServer third_dtls_server({}, true);
    const auto closes = count(gateway->uplink_trace(), "AT#XCLOSE=");
    DtlsApp refused("203.0.113.10", third_dtls_server.port, other);
    EXPECT_EQ(refused.status, -ECONNABORTED);
    EXPECT_EQ(count(gateway->uplink_trace(), "AT#XCLOSE="), closes + 1) << gateway->uplink_trace();
    DtlsApp after("203.0.113.10", third_dtls_server.port, dtls);
    ASSERT_EQ(after.status, 0) << gateway->log();
    EXPECT_EQ(after.echo("after a failure"), "after a failure");
}

TEST_F(Tls, UnknownCaFailsTheConnectAndSlmdServesTheNext) {
    TlsEchoServer server;
    auto gateway = provisioned("v2.9");
    auto other = tls_with(tag_other_ca);
    EXPECT_EQ(slmsock_tls_connect("tls.test", server.port, AF_INET, &other), -ECONNABORTED);
    EXPECT_TRUE(server.saw("handshake failed"));
    auto good = tls_with(tag_ca);
    const int fd = slmsock_tls_connect("tls.test", server.port, AF_INET, &good);
    ASSERT_GE(fd, 0) << slmsock_strerror(fd);
    EXPECT_EQ(echo(fd, "after a failure"), "after a failure");
    close(fd);
}

TEST_F(Tls, WrongHostNameFailsFromV26) {
    TlsEchoServer server;
    auto gateway = provisioned("v2.9");
    auto tls = tls_with(tag_ca);
    EXPECT_EQ(slmsock_tls_connect("other.test", server.port, AF_INET, &tls), -ECONNABORTED);
    // Verification off for the name: the same server is accepted.
    tls.hostname_verify = 0;
    const int fd = slmsock_tls_connect("other.test", server.port, AF_INET, &tls);
    ASSERT_GE(fd, 0) << slmsock_strerror(fd);
    EXPECT_EQ(echo(fd, "name not checked"), "name not checked");
    close(fd);
    EXPECT_TRUE(gateway->sent("AT#XTCPCLI=1,\"other.test\"," + std::to_string(server.port) + ",42,2,0\r\n"));
}

TEST_F(Tls, BeforeV26TheProxyChecksNoNameAndATlsSocketDoesWhatItCannot) {
    TlsEchoServer server;
    auto gateway = provisioned("v2.5");
    const std::string port = std::to_string(server.port);
    auto tls = tls_with(tag_ca);
    // SLM up to v2.5 sets no TLS host name on the proxy: a certificate for another name is accepted (docs/tls.md).
    const int fd = slmsock_tls_connect("other.test", server.port, AF_INET, &tls);
    ASSERT_GE(fd, 0) << slmsock_strerror(fd) << "\n" << gateway->log();
    EXPECT_EQ(echo(fd, "v2.5"), "v2.5");
    close(fd);
    EXPECT_TRUE(gateway->sent("AT#XTCPCLI=1,\"other.test\"," + port + ",42\r\n"));
    // What the release's #XTCPCLI cannot do becomes a TLS socket of the modem's own, which can.
    const auto connects = count(gateway->uplink_trace(), "AT#XTCPCLI=1");
    auto no_verify = tls_with(tag_other_ca);  // this CA does not verify the server
    no_verify.peer_verify = 0;
    const int unverified = slmsock_tls_connect("tls.test", server.port, AF_INET, &no_verify);
    ASSERT_GE(unverified, 0) << slmsock_strerror(unverified) << "\n" << gateway->log();
    EXPECT_EQ(echo(unverified, "peer not verified"), "peer not verified");
    close(unverified);
    EXPECT_TRUE(gateway->sent("AT#XSSOCKET=1,1,0,43,0\r\n")) << gateway->uplink_trace();
    auto name_check = tls_with(tag_ca);
    name_check.hostname_verify = 1;
    EXPECT_EQ(slmsock_tls_connect("other.test", server.port, AF_INET, &name_check), -ECONNABORTED);
    const int checked = slmsock_tls_connect("tls.test", server.port, AF_INET, &name_check);
    ASSERT_GE(checked, 0) << slmsock_strerror(checked) << "\n" << gateway->log();
    EXPECT_EQ(echo(checked, "name checked"), "name checked");
    close(checked);
    EXPECT_TRUE(gateway->sent("AT#XSSOCKETOPT=1,2,\"other.test\"\r\n")) << gateway->uplink_trace();
    EXPECT_TRUE(gateway->sent("AT#XSSOCKETOPT=1,2,\"tls.test\"\r\n")) << gateway->uplink_trace();
    EXPECT_EQ(count(gateway->uplink_trace(), "AT#XTCPCLI=1"), connects);
}

// Data-first releases (v2.0-v2.2) have the proxy alone: what their #XTCPCLI cannot do is refused before the UART.
TEST_F(Tls, ProxyOnlyReleasesRefuseWhatTheirClientCannotDo) {
    TlsEchoServer server;
    auto gateway = provisioned("v2.2");
    auto no_verify = tls_with(tag_ca);
    no_verify.peer_verify = 0;
    EXPECT_EQ(slmsock_tls_connect("tls.test", server.port, AF_INET, &no_verify), -EOPNOTSUPP);
    auto name_check = tls_with(tag_ca);
    name_check.hostname_verify = 1;
    EXPECT_EQ(slmsock_tls_connect("tls.test", server.port, AF_INET, &name_check), -EOPNOTSUPP);
    EXPECT_EQ(count(gateway->uplink_trace(), "AT#XTCPCLI=1"), 0u);
    EXPECT_EQ(count(gateway->uplink_trace(), "AT#XSSOCKET"), 0u);
}

// SLM: the first TLS connection takes the TCP proxy; while it holds it, more TLS connections become TLS sockets
// of the modem's own (#XSSOCKET, the name set with #XSSOCKETOPT on the active socket, the handshake in
// #XCONNECT), so three run at once. A failed handshake on a socket is ECONNABORTED and closes that socket.
class TlsSockets : public Tls, public testing::WithParamInterface<const char*> {};

TEST_P(TlsSockets, ThreeTlsConnectionsAtOnceOnSlm) {
    TlsEchoServer server;
    ASSERT_NE(server.port, 0);
    auto gateway = provisioned(GetParam());
    const std::string port = std::to_string(server.port);
    auto tls = tls_with(tag_ca);
    int fds[3];
    for (int& fd : fds) {
        fd = slmsock_tls_connect("tls.test", server.port, AF_INET, &tls);
        ASSERT_GE(fd, 0) << slmsock_strerror(fd) << "\n" << gateway->log();
    }
    std::string binary("second\0\"+++\r\nOK\r\n", 17);
    for (int i = 0; i < 1500; ++i) binary += static_cast<char>(i * 13);
    EXPECT_EQ(echo(fds[0], hundred_bytes()), hundred_bytes());
    EXPECT_TRUE(echo(fds[1], binary) == binary);
    EXPECT_EQ(echo(fds[2], "third"), "third");
    EXPECT_EQ(echo(fds[0], "first again"), "first again");
    const auto uplink = gateway->uplink_trace();
    EXPECT_EQ(count(uplink, "AT#XTCPCLI=1,\"tls.test\"," + port + ",42"), 1u) << uplink;
    EXPECT_EQ(count(uplink, "AT#XSSOCKET=1,1,0,42\r\n"), 2u) << uplink;
    EXPECT_EQ(count(uplink, "AT#XSSOCKETOPT=1,2,\"tls.test\"\r\n"), 2u) << uplink;  // the name is checked
    EXPECT_EQ(count(uplink, "AT#XCONNECT=\"tls.test\"," + port + "\r\n"), 2u) << uplink;
    for (int fd : fds) close(fd);

    // A failed handshake on a TLS socket (the proxy held by another TLS connection meanwhile).
    const int holder = slmsock_tls_connect("tls.test", server.port, AF_INET, &tls);
    ASSERT_GE(holder, 0) << slmsock_strerror(holder);
    const auto closes = count(gateway->uplink_trace(), "AT#XSOCKET=0\r\n");
    auto other = tls_with(tag_other_ca);
    EXPECT_EQ(slmsock_tls_connect("tls.test", server.port, AF_INET, &other), -ECONNABORTED);
    EXPECT_EQ(slmsock_tls_connect("other.test", server.port, AF_INET, &tls), -ECONNABORTED);
    EXPECT_EQ(count(gateway->uplink_trace(), "AT#XSOCKET=0\r\n"), closes + 2) << gateway->uplink_trace();
    tls.hostname_verify = 0;  // the same server accepted once the name is not checked
    const int unchecked = slmsock_tls_connect("other.test", server.port, AF_INET, &tls);
    ASSERT_GE(unchecked, 0) << slmsock_strerror(unchecked) << "\n" << gateway->log();
    EXPECT_EQ(echo(unchecked, "name not checked"), "name not checked");
    EXPECT_EQ(echo(holder, "proxy still"), "proxy still");
    close(unchecked);
    close(holder);
    EXPECT_EQ(count(gateway->uplink_trace(), "AT#XSSOCKETOPT=1,2,\"other.test\""), 1u) << gateway->uplink_trace();
}

// SLM: a DTLS association takes the UDP proxy while it is free and no TCP connection is open; a second one at
// once, or one beside an open TCP connection (whose proxy would leave the UDP proxy no binary datagrams), becomes a
// DTLS socket of the modem's own (AT#XSSOCKET=<f>,2,0,<sec_tag>), binary plaintext included. The first data-mode
// send of a socket closes the UDP proxy (its downlink would be mistaken for the socket's), and the proxy's
// association then moves to a DTLS socket too, once, instead of a new handshake on the proxy after every such send.
TEST_P(TlsSockets, DtlsBesideTheUdpProxyAndBesideATcpConnection) {
    TlsEchoServer first_server({}, true);
    TlsEchoServer second_server({}, true);  // the test's DTLS server serves one peer at a time
    TlsEchoServer third_server({}, true);
    TlsEchoServer tls_server;
    auto gateway = provisioned(GetParam());
    auto dtls = tls_with(tag_ca);
    dtls.hostname = "tls.test";
    // Binary, but without "+++": SLM's data mode cannot carry a datagram holding its terminator (docs/data-path.md).
    std::string binary("coap\0\x40\x01\"+\r\nOK\r\n", 16);
    for (int i = 0; i < 400; ++i) binary += static_cast<char>(i % 43 == 0 ? 0 : i * 5);

    DtlsApp on_proxy("203.0.113.10", first_server.port, dtls);
    ASSERT_EQ(on_proxy.status, 0) << gateway->log();
    EXPECT_TRUE(gateway->sent("AT#XUDPCLI=1,\"tls.test\"," + std::to_string(first_server.port) + ",42"))
        << gateway->uplink_trace();
    DtlsApp on_socket("203.0.113.10", second_server.port, dtls);
    ASSERT_EQ(on_socket.status, 0) << gateway->log();
    EXPECT_EQ(on_proxy.echo("proxy datagram"), "proxy datagram");
    EXPECT_TRUE(on_socket.echo(binary) == binary) << gateway->log();
    EXPECT_TRUE(on_socket.echo(binary) == binary) << gateway->log();
    EXPECT_EQ(on_proxy.echo("moved datagram"), "moved datagram") << gateway->log();
    EXPECT_TRUE(on_proxy.echo(binary) == binary) << gateway->log();
    EXPECT_EQ(count(gateway->uplink_trace(), "AT#XSSOCKET=1,2,0,42\r\n"), 2u) << gateway->uplink_trace();
    EXPECT_TRUE(gateway->sent("AT#XSSOCKETOPT=1,2,\"tls.test\"\r\n")) << gateway->uplink_trace();

    auto tls = tls_with(tag_ca);
    const int stream = slmsock_tls_connect("tls.test", tls_server.port, AF_INET, &tls);
    ASSERT_GE(stream, 0) << slmsock_strerror(stream) << "\n" << gateway->log();
    DtlsApp beside_tcp("203.0.113.10", third_server.port, dtls);
    ASSERT_EQ(beside_tcp.status, 0) << gateway->log();
    EXPECT_TRUE(beside_tcp.echo(binary) == binary) << gateway->log();
    EXPECT_EQ(echo(stream, "tls beside"), "tls beside");
    EXPECT_TRUE(on_socket.echo("still here") == "still here");
    EXPECT_EQ(on_proxy.echo("and here"), "and here");
    close(stream);
    EXPECT_EQ(count(gateway->uplink_trace(), "AT#XSSOCKET=1,2,0,42\r\n"), 3u) << gateway->uplink_trace();
    // Neither DTLS socket's peer was ever given to the UDP proxy, and the proxy's own association was opened once:
    // not again after the data-mode sends.
    for (const auto* server : {&second_server, &third_server})
        EXPECT_FALSE(gateway->sent("AT#XUDPCLI=1,\"tls.test\"," + std::to_string(server->port) + ","))
            << gateway->uplink_trace();
    EXPECT_EQ(count(gateway->uplink_trace(), "AT#XUDPCLI=1,\"tls.test\"," + std::to_string(first_server.port) + ","),
              1u)
        << gateway->uplink_trace();
}

INSTANTIATE_TEST_SUITE_P(Slm, TlsSockets, testing::Values("v2.5", "v2.9", "v3.1"),
                         [](const testing::TestParamInfo<const char*>& info) {
                             std::string name = info.param;
                             for (char& c : name)
                                 if (c == '.') c = '_';
                             return name;
                         });

TEST_F(Tls, PeerVerifyNoneOptionalRequired) {
    TlsEchoServer server;
    auto gateway = provisioned("v2.9");
    const std::string port = std::to_string(server.port);
    for (int verify : {0, 1}) {
        auto tls = tls_with(tag_other_ca);  // this CA does not verify the server
        tls.peer_verify = verify;
        const int fd = slmsock_tls_connect("tls.test", server.port, AF_INET, &tls);
        ASSERT_GE(fd, 0) << "peer_verify " << verify << ": " << slmsock_strerror(fd);
        EXPECT_EQ(echo(fd, "verify " + std::to_string(verify)), "verify " + std::to_string(verify));
        close(fd);
        EXPECT_TRUE(gateway->sent("AT#XTCPCLI=1,\"tls.test\"," + port + ",43," + std::to_string(verify) + "\r\n"));
    }
    auto required = tls_with(tag_other_ca);
    required.peer_verify = 2;
    EXPECT_EQ(slmsock_tls_connect("tls.test", server.port, AF_INET, &required), -ECONNABORTED);
    EXPECT_TRUE(gateway->sent("AT#XTCPCLI=1,\"tls.test\"," + port + ",43,2\r\n"));
}

TEST_F(Tls, MutualTlsWithTheModemsClientCertificate) {
    TlsEchoServer server({"--ca", pki("ca.pem")});
    auto gateway = provisioned("v2.9");
    auto with_cert = tls_with(tag_client_cert);
    const int fd = slmsock_tls_connect("tls.test", server.port, AF_INET, &with_cert);
    ASSERT_GE(fd, 0) << slmsock_strerror(fd);
    EXPECT_EQ(echo(fd, "mutual"), "mutual");
    close(fd);
    EXPECT_TRUE(server.saw("subject="));
    auto without = tls_with(tag_ca);  // no client certificate under this sec_tag
    EXPECT_EQ(slmsock_tls_connect("tls.test", server.port, AF_INET, &without), -ECONNABORTED);
}

TEST_F(Tls, PreSharedKey) {
    const std::string psk = trim(read_file(pki("psk.hex")));
    const std::string identity = trim(read_file(pki("psk-identity.txt")));
    TlsEchoServer server({"--psk", psk, "--psk-identity", identity}, false, false);  // PSK cipher suites only
    auto gateway = provisioned("v2.9");
    auto tls = tls_with(tag_psk);
    const int fd = slmsock_tls_connect("tls.test", server.port, AF_INET, &tls);
    ASSERT_GE(fd, 0) << slmsock_strerror(fd);
    EXPECT_EQ(echo(fd, "psk"), "psk");
    close(fd);
    EXPECT_TRUE(server.saw("psk-identity=" + identity));
}

// Every release's TLS client (#XTCPCLI with a sec_tag) and DTLS client (#XUDPCLI with a sec_tag, and the
// connection-id parameter from v2.5): the command each gets, and plaintext both ways.
class TlsRelease : public Tls, public ::testing::WithParamInterface<std::string> {};

TEST_P(TlsRelease, TlsAndDtlsClientsEcho) {
    const std::string release = GetParam();
    const int minor = release_rank(release);  // v3.<n>: 10 + n
    TlsEchoServer tls_server;
    TlsEchoServer dtls_server({}, true);
    ASSERT_NE(tls_server.port, 0);
    ASSERT_NE(dtls_server.port, 0);
    auto gateway = provisioned(release);

    // DTLS first: associated while a TCP connection is open, it would take a DTLS socket (from v2.3).
    auto dtls = tls_with(tag_ca);
    dtls.hostname = "tls.test";
    if (minor >= 5) dtls.dtls_cid = 2;  // the parameter exists from v2.5 (the simulator accepts and ignores it)
    DtlsApp app("203.0.113.10", dtls_server.port, dtls);
    ASSERT_EQ(app.status, 0) << gateway->log();
    for (const std::string datagram : {"first datagram", "second, a little longer datagram"})
        EXPECT_EQ(app.echo(datagram), datagram) << gateway->log();
    const std::string cid = minor >= 5 ? ",2" : "";
    EXPECT_TRUE(gateway->sent("AT#XUDPCLI=1,\"tls.test\"," + std::to_string(dtls_server.port) + ",42" + cid + "\r\n"))
        << gateway->uplink_trace();

    auto tls = tls_with(tag_ca);
    const int stream = slmsock_tls_connect("tls.test", tls_server.port, AF_INET, &tls);
    ASSERT_GE(stream, 0) << slmsock_strerror(stream) << "\n" << gateway->log();
    EXPECT_EQ(echo(stream, "stream on " + release), "stream on " + release);
    close(stream);
    EXPECT_TRUE(gateway->sent("AT#XTCPCLI=1,\"tls.test\"," + std::to_string(tls_server.port) + ",42\r\n"))
        << gateway->uplink_trace();
    EXPECT_TRUE(tls_server.saw("handshake ok"));
    EXPECT_TRUE(dtls_server.saw("handshake ok"));
}

INSTANTIATE_TEST_SUITE_P(Releases, TlsRelease,
                         ::testing::Values("v2.0", "v2.1", "v2.2", "v2.3", "v2.4", "v2.5", "v2.6", "v2.7", "v2.8",
                                           "v2.9", "v3.0", "v3.1"),
                         [](const auto& info) {
                             std::string name = info.param;
                             for (auto& c : name)
                                 if (c == '.') c = '_';
                             return name;
                         });

TEST_F(Tls, MappedDestinationGetsTlsWithoutTheProgramAsking) {
    TlsEchoServer server;
    // A program that resolves tls.test and connects to the address in plaintext, as an unmodified one under
    // slm-run does: the mapping names the host, slmd remembers which address the name resolved to.
    auto gateway = provisioned("v2.9", {}, {"--tls", "tls.test:" + std::to_string(server.port) + " sec-tag=42"});
    sockaddr_storage addresses[4];
    std::size_t found = 0;
    ASSERT_EQ(slmsock_resolve("tls.test", AF_INET, addresses, 4, &found), 0);
    ASSERT_EQ(found, 1u);
    auto& destination = reinterpret_cast<sockaddr_in&>(addresses[0]);
    destination.sin_port = htons(server.port);
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_EQ(slmsock_connect_fd(fd, reinterpret_cast<sockaddr*>(&destination), sizeof destination, nullptr), 0)
        << gateway->log();
    const std::string message = hundred_bytes();
    EXPECT_EQ(echo(fd, message), message);
    close(fd);
    EXPECT_TRUE(gateway->sent("AT#XTCPCLI=1,\"tls.test\"," + std::to_string(server.port) + ",42\r\n"))
        << gateway->uplink_trace();
    EXPECT_TRUE(server.saw("handshake ok"));
}

TEST_F(Tls, TlsServerNeedsNativeTlsAndIsRefusedBeforeTheUart) {
    // Without native TLS the firmware cannot be a TLS server (and v2.9 would wedge its TCP proxy).
    auto gateway = provisioned("v2.9", {}, {"--tls-server", "8443 sec-tag=46"});
    std::uint16_t app_port = 0;
    const int app = loopback_tcp_listener(app_port);
    ASSERT_GE(app, 0);
    ASSERT_EQ(slmsock_bind(SOCK_STREAM, AF_INET, 8443, app_port), 0);
    EXPECT_EQ(slmsock_listen(AF_INET, app_port), -EOPNOTSUPP);
    EXPECT_FALSE(gateway->sent("AT#XTCPSVR=1")) << gateway->uplink_trace();
    close(app);
    // The TCP proxy is still free: a plain connection works.
    LocalServer plain;
    const int fd = slmsock_tcp_connect("203.0.113.10", plain.port(), AF_INET);
    ASSERT_GE(fd, 0) << slmsock_strerror(fd);
    EXPECT_EQ(echo(fd, "proxy free"), "proxy free");
    close(fd);
}

// A port for the modem's server to listen on: see test_ports.hpp.
std::uint16_t free_port() { return unused_server_port(); }

SSL_CTX* client_context() {
    SSL_CTX* context = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(context, TLS1_2_VERSION);  // what the modem speaks: like for like
    SSL_CTX_load_verify_locations(context, pki("ca.pem").c_str(), nullptr);
    SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nullptr);
    return context;
}

// A far-end client: handshake on `ssl`, send `message`, return the first answer; frees ssl, context and fd.
std::string client_exchange(SSL_CTX* context, SSL* ssl, int fd, const std::string& message) {
    std::string answer;
    const int size = static_cast<int>(message.size());
    if (SSL_connect(ssl) == 1 && SSL_write(ssl, message.data(), size) == size) {
        char buffer[512];
        const int n = SSL_read(ssl, buffer, sizeof buffer);
        if (n > 0) answer.assign(buffer, static_cast<std::size_t>(n));
    }
    SSL_free(ssl);
    SSL_CTX_free(context);
    close(fd);
    return answer;
}

TEST_F(Tls, TlsServerOnNativeTlsFirmware) {
    const std::uint16_t modem_port = free_port();
    auto gateway = provisioned("v2.9", {"--native-tls"},
                               {"--native-tls", "yes", "--tls-server", std::to_string(modem_port) + " sec-tag=46"});
    std::uint16_t app_port = 0;
    const int app = loopback_tcp_listener(app_port);
    ASSERT_GE(app, 0);
    ASSERT_EQ(slmsock_bind(SOCK_STREAM, AF_INET, modem_port, app_port), 0);
    ASSERT_EQ(slmsock_listen(AF_INET, app_port), 0) << gateway->log();
    EXPECT_TRUE(gateway->sent("AT#XTCPSVR=1," + std::to_string(modem_port) + ",46\r\n")) << gateway->uplink_trace();

    // A TLS client on the far side of the modem; the program behind slmd reads and writes plaintext.
    std::string echoed;
    std::thread far_end([&] {
        const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        auto to = v4("127.0.0.1", modem_port);
        if (connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) return;
        SSL_CTX* context = client_context();
        SSL* ssl = SSL_new(context);
        SSL_set_fd(ssl, fd);
        SSL_set1_host(ssl, "tls.test");
        echoed = client_exchange(context, ssl, fd, "over tls");
    });
    pollfd p{app, POLLIN, 0};
    ASSERT_EQ(poll(&p, 1, 20000), 1) << gateway->log();
    const int peer = accept4(app, nullptr, nullptr, SOCK_CLOEXEC);
    ASSERT_GE(peer, 0);
    EXPECT_EQ(read_n(peer, 8, 20s), "over tls") << gateway->log() << gateway->trace();
    EXPECT_TRUE(write_all(peer, "tls back"));
    far_end.join();
    EXPECT_EQ(echoed, "tls back");
    close(peer);
    close(app);
}

// A UDP socket bound on 127.0.0.1 at a free port; its descriptor and port.
int bound_udp(std::uint16_t& port) {
    const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    auto local = v4("127.0.0.1", 0);
    bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local);
    socklen_t length = sizeof local;
    getsockname(fd, reinterpret_cast<sockaddr*>(&local), &length);
    port = ntohs(local.sin_port);
    return fd;
}

TEST_F(Tls, DtlsServerNeedsNativeTlsAndIsRefusedBeforeTheUart) {
    auto gateway = provisioned("v2.9", {}, {"--dtls-server", "5684 sec-tag=46"});
    std::uint16_t app_port = 0;
    const int app = bound_udp(app_port);
    EXPECT_EQ(slmsock_bind(SOCK_DGRAM, AF_INET, 5684, app_port), -EOPNOTSUPP);
    EXPECT_FALSE(gateway->sent("AT#XUDPSVR=1")) << gateway->uplink_trace();
    // Another port is an ordinary UDP server.
    EXPECT_EQ(slmsock_bind(SOCK_DGRAM, AF_INET, 5683, app_port), 0) << gateway->log();
    EXPECT_TRUE(gateway->sent("AT#XUDPSVR=1,5683\r\n"));
    close(app);
}

TEST_F(Tls, DtlsServerOnNativeTlsFirmware) {
    std::uint16_t modem_port = 0;
    close(bound_udp(modem_port));  // a free UDP port for the modem's server
    auto gateway = provisioned("v2.9", {"--native-tls"},
                               {"--native-tls", "yes", "--dtls-server", std::to_string(modem_port) + " sec-tag=46"});
    std::uint16_t app_port = 0;
    const int app = bound_udp(app_port);
    ASSERT_EQ(slmsock_bind(SOCK_DGRAM, AF_INET, modem_port, app_port), 0) << gateway->log();
    EXPECT_TRUE(gateway->sent("AT#XUDPSVR=1," + std::to_string(modem_port) + ",46\r\n")) << gateway->uplink_trace();

    // A DTLS client on the far side of the modem; the program reads and answers plaintext datagrams.
    std::string answer;
    std::thread far_end([&] {
        const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        auto to = v4("127.0.0.1", modem_port);
        if (connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) return;
        SSL_CTX* context = SSL_CTX_new(DTLS_client_method());
        SSL_CTX_load_verify_locations(context, pki("ca.pem").c_str(), nullptr);
        SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nullptr);
        SSL* ssl = SSL_new(context);
        BIO* bio = BIO_new_dgram(fd, BIO_NOCLOSE);
        BIO_ctrl(bio, BIO_CTRL_DGRAM_SET_CONNECTED, 0, &to);
        timeval timeout{20, 0};
        BIO_ctrl(bio, BIO_CTRL_DGRAM_SET_RECV_TIMEOUT, 0, &timeout);
        SSL_set_bio(ssl, bio, bio);
        answer = client_exchange(context, ssl, fd, "dtls up");
    });
    pollfd p{app, POLLIN, 0};
    ASSERT_EQ(poll(&p, 1, 20000), 1) << gateway->log();
    char buffer[64];
    sockaddr_in from{};
    socklen_t from_length = sizeof from;
    const ssize_t n = recvfrom(app, buffer, sizeof buffer, 0, reinterpret_cast<sockaddr*>(&from), &from_length);
    EXPECT_EQ(std::string(buffer, n > 0 ? static_cast<std::size_t>(n) : 0), "dtls up");
    // The answer goes back through the stand-in the datagram came from.
    EXPECT_EQ(sendto(app, "dtls down", 9, 0, reinterpret_cast<sockaddr*>(&from), from_length), 9);
    far_end.join();
    EXPECT_EQ(answer, "dtls down");
    close(app);
}

// A TLS client on the host (OpenSSL over an fd), for the TLS-on-the-host side of the byte comparison.
std::string host_tls_echo(int fd, const std::string& message) {
    SSL_CTX* context = client_context();
    SSL* ssl = SSL_new(context);
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, "tls.test");
    SSL_set1_host(ssl, "tls.test");
    std::string echoed;
    if (SSL_connect(ssl) == 1 && SSL_write(ssl, message.data(), static_cast<int>(message.size())) > 0) {
        char buffer[512];
        while (echoed.size() < message.size()) {
            const int n = SSL_read(ssl, buffer, sizeof buffer);
            if (n <= 0) break;
            echoed.append(buffer, static_cast<std::size_t>(n));
        }
        SSL_shutdown(ssl);
    }
    SSL_free(ssl);
    SSL_CTX_free(context);
    return echoed;
}

TEST_F(Tls, UartBytesForOneHundredByteMessageModemTlsVersusHostTls) {
    TlsEchoServer server;
    auto gateway = provisioned("v2.9");
    const std::string message = hundred_bytes();
    // Closed and answered: slmd has read the firmware's last reply, so its bytes are counted. (Asked of slmd
    // alone: PROXIES would add the firmware's read commands to the count.)
    auto tcp_proxy_free = [] {
        struct slmsock_status status {};
        return slmsock_status(&status) == 0 && status.active_flows == 0;
    };

    // A first exchange, not counted: it queues behind slmd's one-time reading of the firmware's test forms
    // after bring-up, whose bytes must not be counted.
    auto tls = tls_with(tag_ca);
    const int warm_up = slmsock_tls_connect("tls.test", server.port, AF_INET, &tls);
    ASSERT_GE(warm_up, 0) << slmsock_strerror(warm_up);
    ASSERT_EQ(echo(warm_up, message), message);
    close(warm_up);
    ASSERT_TRUE(eventually(tcp_proxy_free));

    // TLS in the modem: the UART carries the AT commands and 100 plaintext bytes each way.
    const auto before_modem = uart_bytes(*gateway);
    const int modem_fd = slmsock_tls_connect("tls.test", server.port, AF_INET, &tls);
    ASSERT_GE(modem_fd, 0) << slmsock_strerror(modem_fd);
    ASSERT_EQ(echo(modem_fd, message), message);
    close(modem_fd);
    ASSERT_TRUE(eventually(tcp_proxy_free));
    const auto modem_tls = uart_bytes(*gateway) - before_modem;

    // TLS on the host over a plain modem connection: the handshake (certificate chain included) crosses the UART.
    const auto before_host = uart_bytes(*gateway);
    const int plain_fd = slmsock_tcp_connect("203.0.113.10", server.port, AF_INET);
    ASSERT_GE(plain_fd, 0) << slmsock_strerror(plain_fd);
    ASSERT_EQ(host_tls_echo(plain_fd, message), message);
    close(plain_fd);
    ASSERT_TRUE(eventually(tcp_proxy_free));
    const auto host_tls = uart_bytes(*gateway) - before_host;

    std::printf("UART bytes for one 100-byte echo (connect, send, receive, close): TLS in the modem %llu, "
                "TLS on the host %llu (ratio %.2f)\n",
                static_cast<unsigned long long>(modem_tls), static_cast<unsigned long long>(host_tls),
                modem_tls ? static_cast<double>(host_tls) / static_cast<double>(modem_tls) : 0.0);
    RecordProperty("uart_bytes_modem_tls", std::to_string(modem_tls));
    RecordProperty("uart_bytes_host_tls", std::to_string(host_tls));
    EXPECT_GT(modem_tls, 2 * message.size());  // at least the message both ways
    EXPECT_LT(modem_tls, host_tls);
}

}  // namespace
