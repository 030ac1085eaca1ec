// Owns: credential provisioning end to end (slmctl cred → libslmsock → slmd → slmsim's credential store):
// write, list with the modem's SHA-256, delete; the UART sequence (AT+CFUN=4 → AT%CMNG → AT+CFUN=1, or #XCMNG
// alone with native TLS); EBUSY while a connection is open and --force resetting it; errors and slmctl's exit
// statuses; that the radio-off window counts no registration loss or recovery; and that the content never
// appears in slmd's log (run with --verbose, which logs every AT command line). Every wait is bounded and waits
// on a condition (a process exit, a log line, an API answer).
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/json/src.hpp>
#include <cerrno>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "gateway.hpp"
#include "slmsock.h"

using namespace slmd::test;
using namespace std::chrono_literals;
namespace json = boost::json;

namespace {

struct SlmctlRun {
    int status = -1;
    std::string output;  // stdout and stderr, merged
};

SlmctlRun slmctl(std::vector<std::string> arguments) {
    arguments.insert(arguments.begin(), SLMCTL_BIN);
    ChildProcess child(arguments);
    SlmctlRun run;
    while (child.read_line(30s)) {
    }
    run.status = child.wait_exit(30s).value_or(-1);
    run.output = child.output();
    return run;
}

// A command's standard output (openssl, sha256sum), "" when it failed.
std::string shell(const std::string& command) {
    std::string out;
    FILE* pipe = popen(command.c_str(), "r");
    if (pipe == nullptr) return out;
    char buffer[4096];
    for (std::size_t n; (n = fread(buffer, 1, sizeof buffer, pipe)) > 0;) out.append(buffer, n);
    return pclose(pipe) == 0 ? out : std::string();
}

std::string upper(std::string text) {
    for (auto& c : text) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return text;
}

// A self-signed CA made for this test (P-256), its PEM path and the PEM's SHA-256 (upper-case hex).
struct TestCa {
    explicit TestCa(const TempDir& dir) : path(dir / "ca.pem") {
        const std::string key = dir / "ca.key";
        shell("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout '" + key +
              "' -out '" + path + "' -subj /CN=slmd-credential-test -days 2 2>/dev/null");
        pem = read_file(path);
        const auto digest = shell("sha256sum '" + path + "'");
        sha256 = upper(digest.substr(0, 64));
        // A body line of the certificate: what must never show up in slmd's log.
        const auto first = pem.find('\n') + 1;
        body_line = pem.substr(first, pem.find('\n', first) - first);
    }
    std::string path;
    std::string pem;
    std::string sha256;
    std::string body_line;
};

json::value parse_json(const std::string& output) {
    // slmctl prints one JSON line on stdout; stderr (merged) may follow it.
    const auto end = output.find('\n');
    return json::parse(output.substr(0, end));
}

GatewayOptions verbose_gateway() {
    // --verbose: every AT command line slmd sends is logged, the path a credential's content must not take.
    return GatewayOptions().daemon({"--verbose"});
}

}  // namespace

TEST(Credentials, WriteListDeleteThroughSlmctlAndTheUart) {
    Gateway gateway(verbose_gateway());
    ASSERT_TRUE(gateway.ready) << gateway.log();
    const TestCa ca(gateway.dir);
    ASSERT_FALSE(ca.pem.empty()) << "openssl could not make a test CA";
    ASSERT_EQ(ca.sha256.size(), 64u);

    auto run = slmctl({"cred", "write", "--sec-tag", "42", "--type", "ca", ca.path});
    ASSERT_EQ(run.status, 0) << run.output << gateway.log();
    EXPECT_NE(run.output.find("ca written to sec_tag 42 (" + std::to_string(ca.pem.size()) + " bytes)"),
              std::string::npos)
        << run.output;
    // The reply came once the modem served again.
    EXPECT_EQ(gateway.state(), "serving");

    // The UART: radio off, the write with the content, radio on, in that order.
    const auto uplink = gateway.uplink_trace();
    const auto off = uplink.find("AT+CFUN=4\r\n");
    const auto write = uplink.find("AT%CMNG=0,42,0,\"" + ca.pem + "\"\r\n");
    const auto on = uplink.find("AT+CFUN=1\r\n", write == std::string::npos ? 0 : write);
    ASSERT_NE(off, std::string::npos) << uplink;
    ASSERT_NE(write, std::string::npos) << uplink;
    ASSERT_NE(on, std::string::npos) << uplink;
    EXPECT_LT(off, write);
    EXPECT_LT(write, on);
    EXPECT_EQ(count(uplink, "AT+CFUN=4"), 1u);

    // Listed with the modem's digest of exactly the file's bytes (LF endings, as openssl wrote them).
    run = slmctl({"--json", "cred", "list"});
    ASSERT_EQ(run.status, 0) << run.output;
    auto listed = parse_json(run.output).as_object().at("credentials").as_array();
    ASSERT_EQ(listed.size(), 1u) << run.output;
    EXPECT_EQ(listed[0].as_object().at("sec_tag").as_int64(), 42);
    EXPECT_EQ(listed[0].as_object().at("type").as_string(), "ca");
    EXPECT_EQ(listed[0].as_object().at("sha256").as_string(), ca.sha256);
    run = slmctl({"cred", "list", "--sec-tag", "42", "--type", "ca"});
    ASSERT_EQ(run.status, 0) << run.output;
    EXPECT_NE(run.output.find(ca.sha256), std::string::npos) << run.output;
    EXPECT_NE(gateway.uplink_trace().find("AT%CMNG=1,42,0\r\n"), std::string::npos);

    // The planned radio-off window is no fault.
    struct slmsock_stats stats {};
    ASSERT_EQ(slmsock_stats(&stats), 0);
    EXPECT_EQ(stats.registration_losses, 0u);
    EXPECT_EQ(stats.recoveries, 0u);
    EXPECT_EQ(stats.modem_resets, 0u);

    run = slmctl({"cred", "delete", "--sec-tag", "42", "--type", "ca"});
    ASSERT_EQ(run.status, 0) << run.output << gateway.log();
    EXPECT_NE(gateway.uplink_trace().find("AT%CMNG=3,42,0\r\n"), std::string::npos);
    EXPECT_EQ(count(gateway.uplink_trace(), "AT+CFUN=4"), 2u);
    run = slmctl({"--json", "cred", "list"});
    ASSERT_EQ(run.status, 0) << run.output;
    EXPECT_TRUE(parse_json(run.output).as_object().at("credentials").as_array().empty()) << run.output;
    run = slmctl({"cred", "list"});
    EXPECT_NE(run.output.find("no credentials"), std::string::npos) << run.output;

    // Deleting it again: refused by the modem, exit 1; the radio came back on all the same. slmd leaves
    // +CMEE at the firmware's default (off), so the modem's "not found" (+CME ERROR: 513 with +CMEE=1, mapped
    // to ENOENT: tests/unit/credentials_test.cpp) arrives as a bare ERROR: EIO with the answer.
    run = slmctl({"cred", "delete", "--sec-tag", "42", "--type", "ca"});
    EXPECT_EQ(run.status, 1) << run.output;
    EXPECT_NE(run.output.find("AT%CMNG=3,42,0 -> ERROR"), std::string::npos) << run.output;
    EXPECT_EQ(count(gateway.uplink_trace(), "AT+CFUN=1\r\n"), 4u);  // bring-up + three operations
    EXPECT_EQ(gateway.state(), "serving");

    // slmd's log names the operation, never the content: read it up to the redacted write, then up to the last
    // operation's result, and look at everything read.
    const auto redacted = "AT%CMNG=0,42,0,\"<" + std::to_string(ca.pem.size()) + " bytes redacted>\"";
    EXPECT_TRUE(gateway.slmd->wait_for_output("at: > " + redacted, 10s)) << gateway.log();
    EXPECT_TRUE(gateway.slmd->wait_for_output("credential delete sec_tag 42 type 0 -> AT%CMNG=3,42,0 -> ERROR", 10s))
        << gateway.log();
    const auto log = gateway.log();
    EXPECT_EQ(log.find(ca.body_line), std::string::npos) << log;
    EXPECT_EQ(log.find("BEGIN CERTIFICATE"), std::string::npos) << log;
    ASSERT_EQ(slmsock_stats(&stats), 0);
    EXPECT_EQ(stats.registration_losses, 0u);
    EXPECT_EQ(stats.recoveries, 0u);
}

TEST(Credentials, AnOpenConnectionMakesAWriteBusyUnlessForced) {
    Gateway gateway;
    ASSERT_TRUE(gateway.ready) << gateway.log();
    LocalServer server;
    const int fd = slmsock_tcp_connect("203.0.113.1", server.port(), AF_INET);
    ASSERT_GE(fd, 0) << slmsock_strerror(fd);
    ASSERT_TRUE(write_all(fd, "ping"));
    ASSERT_EQ(read_n(fd, 4, 10s), "ping");

    const std::string psk = gateway.dir / "psk.hex";
    std::ofstream(psk) << "000102030405060708090a0b0c0d0e0f\n";
    auto run = slmctl({"cred", "write", "--sec-tag", "7", "--type", "psk", psk});
    EXPECT_EQ(run.status, 75) << run.output;  // EX_TEMPFAIL
    EXPECT_NE(run.output.find("1 connection open"), std::string::npos) << run.output;
    EXPECT_NE(run.output.find("--force"), std::string::npos) << run.output;
    EXPECT_FALSE(gateway.sent("AT+CFUN=4")) << "a refused write must not touch the radio";
    EXPECT_FALSE(gateway.sent("AT%CMNG=0"));
    ASSERT_TRUE(write_all(fd, "pong"));
    EXPECT_EQ(read_n(fd, 4, 10s), "pong") << "the connection survives the refusal";

    run = slmctl({"--json", "cred", "write", "--force", "--sec-tag", "7", "--type", "psk", psk});
    ASSERT_EQ(run.status, 0) << run.output << gateway.log();
    EXPECT_TRUE(gateway.sent("AT%CMNG=0,7,3,\"000102030405060708090a0b0c0d0e0f\"\r\n"));
    // The forced write reset the connection: the app sees it end (ECONNRESET or EOF, never more data).
    char byte;
    pollfd pfd{fd, POLLIN, 0};
    ASSERT_EQ(poll(&pfd, 1, 10000), 1);
    EXPECT_LE(read(fd, &byte, 1), 0);
    close(fd);
    EXPECT_EQ(gateway.state(), "serving");
    // And a new connection works again afterwards.
    const int again = slmsock_tcp_connect("203.0.113.1", server.port(), AF_INET);
    ASSERT_GE(again, 0) << slmsock_strerror(again) << gateway.log();
    ASSERT_TRUE(write_all(again, "back"));
    EXPECT_EQ(read_n(again, 4, 10s), "back");
    close(again);

    struct slmsock_credential entries[4];
    size_t n = 0;
    ASSERT_EQ(slmsock_cred_list(7, SLMSOCK_CRED_PSK, entries, 4, &n), 0);
    ASSERT_EQ(n, 1u);
    EXPECT_EQ(entries[0].sec_tag, 7);
    EXPECT_EQ(std::string(entries[0].sha256).size(), 64u);
}

TEST(Credentials, BadFilesAreRefusedBeforeTheModemIsAsked) {
    Gateway gateway;
    ASSERT_TRUE(gateway.ready) << gateway.log();
    const std::string big = gateway.dir / "big.pem";
    std::ofstream(big) << "-----BEGIN CERTIFICATE-----\n" << std::string(4100, 'A') << "\n-----END CERTIFICATE-----\n";
    auto run = slmctl({"cred", "write", "--sec-tag", "1", "--type", "ca", big});
    EXPECT_EQ(run.status, 2) << run.output;
    EXPECT_NE(run.output.find(big + " is 4155 bytes; the modem takes at most 4000"), std::string::npos) << run.output;

    const std::string der = gateway.dir / "ca.der";
    std::ofstream(der, std::ios::binary) << std::string("\x30\x82\x01\x0a", 4) << "not pem";
    run = slmctl({"cred", "write", "--sec-tag", "1", "--type", "ca", der});
    EXPECT_EQ(run.status, 2) << run.output;
    EXPECT_NE(run.output.find("is not PEM"), std::string::npos) << run.output;

    // Past slmctl's own checks, slmd's: a key given as a CA is EINVAL (exit 2), with slmd's reason.
    const std::string key = gateway.dir / "key.pem";
    std::ofstream(key) << "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n";
    run = slmctl({"cred", "write", "--sec-tag", "1", "--type", "ca", key});
    EXPECT_EQ(run.status, 2) << run.output;
    EXPECT_NE(run.output.find("CERTIFICATE blocks, not PRIVATE KEY"), std::string::npos) << run.output;
    run = slmctl({"cred", "write", "--sec-tag", "1", "--type", "bogus", key});
    EXPECT_EQ(run.status, 2) << run.output;
    run = slmctl({"cred", "delete", "--sec-tag", "1"});
    EXPECT_EQ(run.status, 2) << run.output;
    EXPECT_FALSE(gateway.sent("CMNG")) << gateway.uplink_trace();
    EXPECT_FALSE(gateway.sent("AT+CFUN=4"));
}

TEST(Credentials, NativeTlsUsesXcmngAndLeavesTheRadioOn) {
    Gateway gateway(GatewayOptions().sim({"--native-tls"}).daemon({"--native-tls", "yes"}));
    ASSERT_TRUE(gateway.ready) << gateway.log();
    const TestCa ca(gateway.dir);
    ASSERT_FALSE(ca.pem.empty());
    // An open connection does not matter: the radio stays on.
    LocalServer server;
    const int fd = slmsock_tcp_connect("203.0.113.1", server.port(), AF_INET);
    ASSERT_GE(fd, 0) << slmsock_strerror(fd);

    ASSERT_EQ(slmsock_cred_write(9, SLMSOCK_CRED_CA, ca.pem.data(), ca.pem.size(), 0), 0)
        << slmsock_cred_message() << gateway.log();
    EXPECT_TRUE(gateway.sent("AT#XCMNG=0,9,0,\"" + ca.pem + "\"\r\n"));
    EXPECT_FALSE(gateway.sent("AT+CFUN=4"));
    ASSERT_TRUE(write_all(fd, "still"));
    EXPECT_EQ(read_n(fd, 5, 10s), "still");
    close(fd);

    auto run = slmctl({"cred", "list"});
    ASSERT_EQ(run.status, 0) << run.output;
    EXPECT_NE(run.output.find("9          ca       -"), std::string::npos) << run.output;
    EXPECT_TRUE(gateway.sent("AT#XCMNG=1\r\n"));
    ASSERT_EQ(slmsock_cred_delete(9, SLMSOCK_CRED_CA, 0), 0) << slmsock_cred_message();
    EXPECT_TRUE(gateway.sent("AT#XCMNG=3,9,0\r\n"));
    EXPECT_EQ(slmsock_cred_delete(9, SLMSOCK_CRED_CA, 0), -EIO);  // #XCMNG answers a bare ERROR
}
