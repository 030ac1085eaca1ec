// Owns: an unmodified program (python3, plain sockets, no TLS of its own) under slm-run whose destination
// slmd.conf maps to a sec_tag: the modem runs TLS (slmsim with real TLS 1.2 against tls_echo_server), the
// program talks plaintext, the name it looked up is the one the modem verifies. And the same program to a
// destination without a mapping gets plain TCP. Several mapped connections at once (SLM: the proxy and TLS
// sockets).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <optional>

#include "harness.hpp"

using namespace slmd::preload_test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

std::string pki(const std::string& name) { return std::string(TEST_PKI_DIR) + "/" + name; }

// The clients below: python3 with nothing but the socket module. echo() sends and reads back as many bytes.
const std::string python_echo = R"(import socket, sys
def echo(s, message):
    s.sendall(message)
    got = b""
    while len(got) < len(message):
        chunk = s.recv(4096)
        if not chunk:
            break
        got += chunk
    return got
)";

// Connects by name, sends, reads the echo, prints it.
const std::string plaintext_client = python_echo + R"(
host, port, message = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
with socket.create_connection((host, port), timeout=30) as s:
    print("ECHO:" + echo(s, message).decode())
)";

class TlsServerProcess {
public:
    TlsServerProcess() : process_({TLS_ECHO_SERVER_BIN, "--port", "0", "--cert", pki("server.pem"), "--key", pki("server.key")}) {
        // The first line is the port.
        if (process_.wait_for("\n", 10s)) port_ = static_cast<std::uint16_t>(std::stoi(process_.output()));
    }
    ~TlsServerProcess() { process_.stop(); }
    std::uint16_t port() const { return port_; }
    bool saw(const std::string& needle) { return process_.wait_for(needle, 10s); }

private:
    DrainedProcess process_;
    std::uint16_t port_ = 0;
};

// A TLS echo server, and python3 under slm-run against an slmd on SLM v2.9 over slmsim.
class PreloadTls : public ::testing::Test {
  protected:
    void SetUp() override { ASSERT_NE(server.port(), 0); }
    std::string port() const { return std::to_string(server.port()); }
    // The test CA under sec_tag 42, and slmd.conf mapping tls.test:<the server's port> to it.
    ModemOptions mapped_modem() const {
        const fs::path creds = dir / "creds";
        fs::create_directories(creds);
        write_file(creds / "42.0", read_file(pki("ca.pem")));
        return ModemOptions{"v2.9", 921600, {"--cred-dir", creds}, {"--tls", "tls.test:" + port() + " sec-tag=42"},
                            "203.0.113.10 tls.test\n"};
    }
    // Runs `script` (python source) with `args` after "tls.test <port>".
    RunResult python(const std::string& script, const std::vector<std::string>& args, std::chrono::seconds limit) {
        const std::string path = dir / ("script" + std::to_string(++scripts_) + ".py");
        write_file(path, script);
        std::vector<std::string> argv{slm_run(), "python3", path, "tls.test", port()};
        argv.insert(argv.end(), args.begin(), args.end());
        return run({"SLMSOCK_SOCKET=" + modem->api_socket()}, argv, limit);
    }

    TlsServerProcess server;
    slmd::test::TempDir dir;
    std::optional<Modem> modem;

  private:
    int scripts_ = 0;
};

TEST_F(PreloadTls, UnmodifiedProgramGetsTheModemsTlsByMapping) {
    modem.emplace(mapped_modem());
    ASSERT_TRUE(modem->ready()) << modem->diagnostics();
    const auto r = python(plaintext_client, {"hello through the modem's TLS"}, 60s);
    ASSERT_EQ(r.exit_code, 0) << r.output << modem->diagnostics();
    EXPECT_NE(r.output.find("ECHO:hello through the modem's TLS"), std::string::npos) << r.output;
    EXPECT_TRUE(server.saw("handshake ok"));
    EXPECT_NE(modem->diagnostics().find("with TLS by the modem (sec_tag 42)"), std::string::npos)
        << modem->diagnostics();
}

// python3 holding three connections to the mapped destination open at once (an MQTT-over-TLS session beside
// HTTPS requests), each echoing its own message while the others stay open.
const std::string three_at_once_client = python_echo + R"(
host, port = sys.argv[1], int(sys.argv[2])
conns = [socket.create_connection((host, port), timeout=30) for _ in range(3)]
for round in range(2):
    for i, s in enumerate(conns):
        message = ("connection %d round %d " % (i, round)).encode() * 20
        print("ECHO %d %d:%s" % (i, round, "ok" if echo(s, message) == message else "BAD"))
for s in conns:
    s.close()
)";

TEST_F(PreloadTls, ThreeMappedConnectionsAtOnceOnSlm) {
    modem.emplace(mapped_modem());
    ASSERT_TRUE(modem->ready()) << modem->diagnostics();
    const auto r = python(three_at_once_client, {}, 90s);
    ASSERT_EQ(r.exit_code, 0) << r.output << modem->diagnostics();
    for (int i = 0; i < 3; ++i)
        for (int round = 0; round < 2; ++round) {
            const std::string line = "ECHO " + std::to_string(i) + " " + std::to_string(round) + ":ok";
            EXPECT_NE(r.output.find(line), std::string::npos) << line << "\n" << r.output;
        }
    // The first on the TCP proxy, the other two on TLS sockets of the modem's own.
    EXPECT_NE(modem->diagnostics().find("connected (connection"), std::string::npos) << modem->diagnostics();
    EXPECT_NE(modem->diagnostics().find(", TLS)"), std::string::npos) << modem->diagnostics();
}

// The server speaks TLS: a plaintext client gets no echo, and the server a failed handshake.
TEST_F(PreloadTls, UnmappedDestinationStaysPlainTcp) {
    modem.emplace(ModemOptions{"v2.9", 921600, {}, {"--tls", "tls.test:1 sec-tag=42"}, "203.0.113.10 tls.test\n"});
    ASSERT_TRUE(modem->ready()) << modem->diagnostics();
    const auto r = python(plaintext_client, {"plain"}, 60s);
    EXPECT_EQ(r.output.find("ECHO:plain"), std::string::npos) << r.output;
    EXPECT_TRUE(server.saw("handshake failed"));
    EXPECT_EQ(modem->diagnostics().find("with TLS by the modem"), std::string::npos);
}

}  // namespace

int main(int argc, char** argv) {
    enter_network_namespace();
    ::testing::InitGoogleTest(&argc, argv);
    return RUN_ALL_TESTS();
}
