// slmsim tests: the modem side of TLS/DTLS — the credential store (AT%CMNG, AT#XCMNG with --native-tls), the
// TLS client of #XTCPCLI (verification modes, hostname check per release, mutual TLS, PSK), the DTLS client of
// #XUDPCLI, the native-TLS server of #XTCPSVR and the native-TLS DTLS server of #XUDPSVR (v2.8+), against
// tests/tls/tls_echo_server, in-test OpenSSL clients and the build-time test PKI.
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "harness.hpp"

using namespace slmsim;
using namespace slmsim::test;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream o;
  o << f.rdbuf();
  return o.str();
}
std::string pki(const std::string& name) { return std::string(TEST_PKI_DIR) + "/" + name; }
std::string pem(const std::string& name) { return slurp(pki(name)); }

// tls_echo_server in a child process: the port from its first stdout line, stderr kept in a file.
class EchoServer {
 public:
  explicit EchoServer(std::vector<std::string> args) {
    char tmpl[] = "/tmp/slmsim-tls-log-XXXXXX";
    int logfd = mkstemp(tmpl);
    log_path_ = tmpl;
    int out[2];
    EXPECT_EQ(pipe(out), 0);
    pid_ = fork();
    if (pid_ == 0) {
      dup2(out[1], 1);
      dup2(logfd, 2);
      close(out[0]);
      std::vector<char*> argv{const_cast<char*>(TLS_ECHO_SERVER_BIN)};
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(TLS_ECHO_SERVER_BIN, argv.data());
      _exit(127);
    }
    close(out[1]);
    close(logfd);
    std::string line;
    pollfd p{out[0], POLLIN, 0};
    while (line.find('\n') == std::string::npos && poll(&p, 1, 5000) == 1) {
      char b[64];
      auto n = read(out[0], b, sizeof b);
      if (n <= 0) break;
      line.append(b, static_cast<std::size_t>(n));
    }
    close(out[0]);
    port_ = static_cast<unsigned short>(std::atoi(line.c_str()));
    EXPECT_NE(port_, 0) << "tls_echo_server did not start: " << log();
  }
  ~EchoServer() {
    kill(pid_, SIGTERM);
    waitpid(pid_, nullptr, 0);
    unlink(log_path_.c_str());
  }
  unsigned short port() const { return port_; }
  std::string log() const { return slurp(log_path_); }
  bool logged(Harness& h, const std::string& text) {
    return h.run_until([&] { return log().find(text) != std::string::npos; }, 5000ms);
  }

 private:
  pid_t pid_ = -1;
  unsigned short port_ = 0;
  std::string log_path_;
};

std::vector<std::string> server_args(const std::string& cert = "server", std::vector<std::string> more = {}) {
  std::vector<std::string> a{"--cert", pki(cert + ".pem"), "--key", pki(cert + ".key")};
  a.insert(a.end(), more.begin(), more.end());
  return a;
}

::testing::AssertionResult provision(Harness& h, int tag, int type, const std::string& content) {
  return h.at("AT%CMNG=0," + std::to_string(tag) + "," + std::to_string(type) + ",\"" + content + "\"",
              "\r\nOK\r\n");
}

Config tls_config(const std::string& profile = "v2.9") {
  auto c = test_config(profile);
  c.net.add_host("tls.test", asio::ip::make_address("127.0.0.1"));
  c.tls_handshake_timeout_ms = 3000;
  return c;
}

std::string tcpcli(const std::string& host, unsigned short port, const std::string& rest) {
  return "AT#XTCPCLI=1,\"" + host + "\"," + std::to_string(port) + "," + rest;
}

const std::string kConnected = "\r\n#XTCPCLI: 0,\"connected\"\r\n\r\nOK\r\n";
const std::string kAborted = "\r\n#XTCPCLI: -113,\"not connected\"\r\n\r\nERROR\r\n";

}  // namespace

// ---------------------------------------------------------------------------------------------
// Credential store

TEST(Cmng, WriteOnlyOutsideCfun1ListReadDelete) {
  Harness h;
  h.boot();
  const std::string ca = pem("ca.pem");
  const std::string sha = CredStore::sha256_hex(ca);
  EXPECT_TRUE(h.at("AT+CMEE=1", "\r\nOK\r\n"));
  h.attach();
  EXPECT_TRUE(h.at("AT%CMNG=0,42,0,\"" + ca + "\"", "\r\n+CME ERROR: 518\r\n"));
  EXPECT_TRUE(h.at("AT+CMEE=0", "\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT%CMNG=0,42,0,\"" + ca + "\"", "\r\nERROR\r\n"));  // CMEE off: plain ERROR
  EXPECT_TRUE(h.at("AT+CMEE=1", "\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT+CFUN=4", "\r\nOK\r\n"));
  EXPECT_TRUE(provision(h, 42, 0, ca));
  EXPECT_TRUE(provision(h, 42, 2, pem("client.key")));
  EXPECT_TRUE(h.at("AT+CFUN=1", "\r\nOK\r\n"));  // list and read are allowed in any CFUN
  std::string key_sha = CredStore::sha256_hex(pem("client.key"));
  EXPECT_TRUE(h.at("AT%CMNG=1", "\r\n%CMNG: 42,0,\"" + sha + "\"\r\n%CMNG: 42,2,\"" + key_sha + "\"\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT%CMNG=1,42,2", "\r\n%CMNG: 42,2,\"" + key_sha + "\"\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT%CMNG=1,7", "\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT%CMNG=2,42,0", "\r\n%CMNG: 42,0,\"" + sha + "\",\"" + ca + "\"\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT%CMNG=2,42,2", "\r\n+CME ERROR: 514\r\n"));  // private keys cannot be read back
  EXPECT_TRUE(h.at("AT%CMNG=2,42,1", "\r\n+CME ERROR: 513\r\n"));  // not found
  EXPECT_TRUE(h.at("AT%CMNG=3,42,0", "\r\n+CME ERROR: 518\r\n"));  // delete: not in CFUN=1 either
  // The store is non-volatile: it survives a reset.
  EXPECT_TRUE(h.at("AT#XRESET", "\r\nOK\r\n"));
  h.boot();
  EXPECT_TRUE(h.at("AT+CMEE=1", "\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT%CMNG=1,42,0", "\r\n%CMNG: 42,0,\"" + sha + "\"\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT%CMNG=3,42,0", "\r\nOK\r\n"));  // CFUN=0 after boot
  EXPECT_TRUE(h.at("AT%CMNG=3,42,0", "\r\n+CME ERROR: 513\r\n"));
  EXPECT_TRUE(h.at("AT%CMNG=1,42", "\r\n%CMNG: 42,2,\"" + key_sha + "\"\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT%CMNG=0,42,5,\"x\"", "\r\nERROR\r\n"));    // unknown type
  EXPECT_TRUE(h.at("AT%CMNG=0,42,3,\"xyz\"", "\r\nERROR\r\n"));  // a PSK must be hex
  EXPECT_TRUE(h.at("AT%CMNG=0,42,0", "\r\nERROR\r\n"));          // no content
}

TEST(Cmng, MultiLinePemWithCrLfInsideQuotes) {
  Harness h;
  h.boot();
  std::string ca = pem("ca.pem"), crlf;
  for (char c : ca) crlf += c == '\n' ? std::string("\r\n") : std::string(1, c);
  EXPECT_TRUE(h.at("AT%CMNG=0,1,0,\"" + crlf + "\"", "\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT%CMNG=1,1", "\r\n%CMNG: 1,0,\"" + CredStore::sha256_hex(crlf) + "\"\r\n\r\nOK\r\n"));
}

TEST(Cmng, WholeCommandAtMost4096Bytes) {
  Harness h;  // v2.9: 4096 characters
  h.boot();
  const std::string head = "AT%CMNG=0,1,0,\"";
  EXPECT_TRUE(h.at(head + std::string(4096 - head.size() - 1, 'A') + "\"", "\r\nOK\r\n"));
  EXPECT_TRUE(h.at(head + std::string(4096 - head.size(), 'B') + "\"", "\r\nERROR\r\n"));
  EXPECT_TRUE(h.at("AT%CMNG=1", "\r\n%CMNG: 1,0,\"" + CredStore::sha256_hex(std::string(4096 - head.size() - 1, 'A')) +
                                    "\"\r\n\r\nOK\r\n"));
}

TEST(Cmng, PersistsInCredDir) {
  auto dir = std::filesystem::temp_directory_path() / ("slmsim-creds-" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  auto c = test_config();
  c.cred_dir = dir.string();
  {
    Harness h(c);
    h.boot();
    EXPECT_TRUE(h.at("AT%CMNG=0,5,2,\"KEY\",\"secret\"", "\r\nOK\r\n"));
  }
  {
    Harness h(c);
    h.boot();
    EXPECT_TRUE(h.at("AT%CMNG=1", "\r\n%CMNG: 5,2,\"" + CredStore::sha256_hex("KEY") + "\"\r\n\r\nOK\r\n"));
    EXPECT_EQ(h.sim->credentials().get(5, 2)->passphrase, "secret");
  }
  std::filesystem::remove_all(dir);
}

TEST(Xcmng, OnlyInNativeTlsBuildsSameStoreAnyCfun) {
  {
    Harness h;
    h.boot();
    EXPECT_TRUE(h.at("AT#XCMNG=1", "\r\nERROR\r\n"));
  }
  auto c = test_config();
  c.native_tls = true;
  Harness h(c);
  h.boot();
  h.attach();
  EXPECT_TRUE(h.at("AT#XCMNG=0,7,0,\"" + pem("ca.pem") + "\"", "\r\nOK\r\n"));  // CFUN=1 is fine
  EXPECT_TRUE(h.at("AT#XCMNG=0,7,3,\"0011AABB\"", "\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT#XCMNG=1", "\r\n#XCMNG: 7,0\r\n\r\n#XCMNG: 7,3\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT#XCMNG=1,7,3", "\r\n#XCMNG: 7,3\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT%CMNG=1,7,3", "\r\n%CMNG: 7,3,\"" + CredStore::sha256_hex("0011AABB") + "\"\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT#XCMNG=3,7,3", "\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT#XCMNG=3,7,3", "\r\nERROR\r\n"));
  EXPECT_TRUE(h.at("AT#XCMNG=1", "\r\n#XCMNG: 7,0\r\n\r\nOK\r\n"));
}

// ---------------------------------------------------------------------------------------------
// TLS client (#XTCPCLI with a sec_tag)

TEST(TlsClient, EchoPlaintextOnTheUartAndInTheCounters) {
  EchoServer srv(server_args());
  Harness h(tls_config());
  h.boot();
  ASSERT_TRUE(provision(h, 10, 0, pem("ca.pem")));
  h.attach();
  auto rx = h.sim->stats().bytes_rx, tx = h.sim->stats().bytes_tx;
  // By IP literal: hostname verification checks the certificate's IP SAN (127.0.0.1).
  ASSERT_TRUE(h.at(tcpcli("127.0.0.1", srv.port(), "10"), kConnected));
  EXPECT_TRUE(srv.logged(h, "handshake ok"));
  EXPECT_TRUE(h.at("AT#XTCPSEND=\"Hello TLS\"", "\r\n#XTCPSEND: 9\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.expect("\r\n#XTCPDATA: 9\r\nHello TLS"));
  EXPECT_TRUE(h.at("AT#XTCPCLI=0", "\r\n#XTCPCLI: 0,\"disconnected\"\r\n\r\nOK\r\n"));
  EXPECT_TRUE(srv.logged(h, "peer closed"));  // close_notify
  EXPECT_EQ(h.sim->stats().tcp_up_bytes, 9u);
  EXPECT_EQ(h.sim->stats().tcp_down_bytes, 9u);
  // The UART counters see exactly the AT transcript, nothing of TLS.
  std::string cmds = tcpcli("127.0.0.1", srv.port(), "10") + "\r\nAT#XTCPSEND=\"Hello TLS\"\r\nAT#XTCPCLI=0\r\n";
  EXPECT_EQ(h.sim->stats().bytes_rx - rx, cmds.size());
  EXPECT_EQ(h.sim->stats().bytes_tx - tx,
            kConnected.size() + std::string("\r\n#XTCPSEND: 9\r\n\r\nOK\r\n\r\n#XTCPDATA: 9\r\nHello TLS").size() +
                std::string("\r\n#XTCPCLI: 0,\"disconnected\"\r\n\r\nOK\r\n").size());
}

TEST(TlsClient, VerificationModes) {
  EchoServer srv(server_args());
  Harness h(tls_config());
  h.boot();
  ASSERT_TRUE(provision(h, 11, 0, pem("other-ca.pem")));  // an unrelated CA
  h.attach();
  EXPECT_TRUE(h.at(tcpcli("tls.test", srv.port(), "11"), kAborted));        // default peer_verify 2
  EXPECT_TRUE(h.at(tcpcli("tls.test", srv.port(), "11,2"), kAborted));
  EXPECT_TRUE(h.at(tcpcli("tls.test", srv.port(), "99"), kAborted));        // no CA at all
  EXPECT_TRUE(h.at("AT#XTCPCLI?", "\r\n#XTCPCLI: -1,1\r\n\r\nOK\r\n"));     // the proxy is free again
  EXPECT_TRUE(h.at(tcpcli("tls.test", srv.port(), "11,0"), kConnected));    // none
  EXPECT_TRUE(h.at("AT#XTCPSEND=\"x\"", "\r\n#XTCPSEND: 1\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.expect("\r\n#XTCPDATA: 1\r\nx"));
  EXPECT_TRUE(h.at("AT#XTCPCLI=0", "\r\n#XTCPCLI: 0,\"disconnected\"\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.at(tcpcli("tls.test", srv.port(), "11,1"), kConnected));    // optional
  EXPECT_TRUE(h.at("AT#XTCPCLI=0", "\r\n#XTCPCLI: 0,\"disconnected\"\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.at(tcpcli("tls.test", srv.port(), "11,3"), "\r\nERROR\r\n"));    // bad peer_verify
  EXPECT_TRUE(h.at(tcpcli("tls.test", srv.port(), "11,2,2"), "\r\nERROR\r\n"));  // bad hostname_verify
  EXPECT_TRUE(srv.logged(h, "handshake failed"));
}

TEST(TlsClient, HostnameCheckOnV26PlusOnly) {
  EchoServer srv(server_args("wrong-host"));  // SAN DNS:other.test, signed by the right CA
  {
    Harness h(tls_config("v2.9"));
    h.boot();
    ASSERT_TRUE(provision(h, 12, 0, pem("ca.pem")));
    h.attach();
    EXPECT_TRUE(h.at(tcpcli("tls.test", srv.port(), "12"), kAborted));
    EXPECT_TRUE(h.at(tcpcli("127.0.0.1", srv.port(), "12"), kAborted));   // IP literal: no IP SAN either
    EXPECT_TRUE(h.at(tcpcli("tls.test", srv.port(), "12,2,0"), kConnected));  // hostname_verify 0
  }
  {
    Harness h(tls_config("v2.5"));  // no hostname check at all, peer verification always required
    h.boot();
    ASSERT_TRUE(provision(h, 12, 0, pem("ca.pem")));
    h.attach();
    EXPECT_TRUE(h.at(tcpcli("tls.test", srv.port(), "12,2"), "\r\nERROR\r\n"));  // no verify params
    EXPECT_TRUE(h.at(tcpcli("tls.test", srv.port(), "12"), kConnected));
    EXPECT_TRUE(h.at("AT#XTCPCLI=0", "\r\n#XTCPCLI: 0,\"disconnected\"\r\n\r\nOK\r\n"));
    EXPECT_TRUE(h.at("AT+CFUN=4", "\r\nOK\r\n"));
    EXPECT_TRUE(h.at("AT%CMNG=0,13,0,\"" + pem("other-ca.pem") + "\"", "\r\nOK\r\n"));
    h.attach();
    EXPECT_TRUE(h.at(tcpcli("tls.test", srv.port(), "13"), kAborted));
  }
}

TEST(TlsClient, MutualTlsWithClientCertificate) {
  EchoServer srv(server_args("server", {"--ca", pki("ca.pem")}));
  Harness h(tls_config());
  h.boot();
  ASSERT_TRUE(provision(h, 20, 0, pem("ca.pem")));
  h.attach();
  EXPECT_TRUE(h.at(tcpcli("tls.test", srv.port(), "20"), kAborted));  // the server wants a certificate
  EXPECT_TRUE(h.at("AT+CFUN=4", "\r\nOK\r\n"));
  ASSERT_TRUE(provision(h, 20, 1, pem("client.pem")));
  ASSERT_TRUE(provision(h, 20, 2, pem("client.key")));
  h.attach();
  EXPECT_TRUE(h.at(tcpcli("tls.test", srv.port(), "20"), kConnected));
  EXPECT_TRUE(srv.logged(h, "subject=/CN=slmsim-client"));
  EXPECT_TRUE(h.at("AT#XTCPSEND=\"mutual\"", "\r\n#XTCPSEND: 6\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.expect("\r\n#XTCPDATA: 6\r\nmutual"));
}

TEST(TlsClient, PreSharedKey) {
  std::string psk = pem("psk.hex"), id = pem("psk-identity.txt");
  EchoServer srv({"--psk", psk, "--psk-identity", id});
  Harness h(tls_config());
  h.boot();
  ASSERT_TRUE(provision(h, 30, 3, psk));
  ASSERT_TRUE(provision(h, 30, 4, id));
  h.attach();
  EXPECT_TRUE(h.at(tcpcli("tls.test", srv.port(), "30"), kConnected));
  EXPECT_TRUE(srv.logged(h, "psk-identity=" + id));
  EXPECT_TRUE(h.at("AT#XTCPSEND=\"psk\"", "\r\n#XTCPSEND: 3\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.expect("\r\n#XTCPDATA: 3\r\npsk"));
}

TEST(TlsClient, PeerCloseNotifyIsTheUsualDisconnect) {
  EchoServer srv(server_args("server", {"--close-after", "4"}));
  Harness h(tls_config());
  h.boot();
  ASSERT_TRUE(provision(h, 10, 0, pem("ca.pem")));
  h.attach();
  ASSERT_TRUE(h.at(tcpcli("tls.test", srv.port(), "10"), kConnected));
  EXPECT_TRUE(h.at("AT#XTCPSEND=\"bye!\"", "\r\n#XTCPSEND: 4\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.expect("\r\n#XTCPDATA: 4\r\nbye!"));
  EXPECT_TRUE(h.expect("\r\n#XTCPCLI: -104,\"disconnected\"\r\n"));
  EXPECT_TRUE(h.at("AT#XTCPCLI?", "\r\n#XTCPCLI: -1,1\r\n\r\nOK\r\n"));
}

TEST(TlsClient, PlainTcpServerFailsTheHandshake) {
  Harness h(tls_config());
  TcpServer plain(h.io);  // accepts, never answers the ClientHello, closes when the test ends
  h.boot();
  ASSERT_TRUE(provision(h, 10, 0, pem("ca.pem")));
  h.attach();
  h.send(tcpcli("127.0.0.1", plain.port(), "10") + "\r\n");
  ASSERT_TRUE(h.run_until([&] { return plain.conns.size() == 1; }));
  plain.close(0);  // peer closed during the handshake
  EXPECT_TRUE(h.expect(kAborted));
}

// ---------------------------------------------------------------------------------------------
// DTLS client (#XUDPCLI with a sec_tag)

TEST(DtlsClient, EchoAndVerification) {
  EchoServer srv(server_args("server", {"--dtls"}));
  Harness h(tls_config());
  h.boot();
  ASSERT_TRUE(provision(h, 40, 0, pem("ca.pem")));
  ASSERT_TRUE(provision(h, 41, 0, pem("other-ca.pem")));
  h.attach();
  std::string cli = "AT#XUDPCLI=1,\"tls.test\"," + std::to_string(srv.port());
  EXPECT_TRUE(h.at(cli + ",41", "\r\n#XUDPCLI: -113,\"not connected\"\r\n\r\nERROR\r\n"));
  EXPECT_TRUE(srv.logged(h, "handshake failed"));
  EXPECT_TRUE(h.at(cli + ",40,2", "\r\n#XUDPCLI: 0,\"connected\"\r\n\r\nOK\r\n"));  // use_dtls_cid 2: ignored
  EXPECT_TRUE(srv.logged(h, "handshake ok"));
  EXPECT_TRUE(h.at("AT#XUDPSEND=\"datagram one\"", "\r\n#XUDPSEND: 12\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.expect("\r\n#XUDPDATA: 12,\"::\",0\r\ndatagram one"));
  EXPECT_TRUE(h.at("AT#XUDPSEND=\"two\"", "\r\n#XUDPSEND: 3\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.expect("\r\n#XUDPDATA: 3,\"::\",0\r\ntwo"));
  EXPECT_TRUE(h.at("AT#XUDPCLI=0", "\r\n#XUDPCLI: 0,\"disconnected\"\r\n\r\nOK\r\n"));
  EXPECT_TRUE(srv.logged(h, "peer closed"));
  EXPECT_EQ(h.sim->stats().udp_up_datagrams, 2u);
  EXPECT_EQ(h.sim->stats().udp_down_datagrams, 2u);
  EXPECT_TRUE(h.at(cli + ",40,0,0", "\r\n#XUDPCLI: 0,\"connected\"\r\n\r\nOK\r\n"));  // a second client
}

TEST(DtlsClient, NobodyAnswersTimesOut) {
  auto c = tls_config();
  c.tls_handshake_timeout_ms = 300;
  Harness h(c);
  h.boot();
  ASSERT_TRUE(provision(h, 40, 0, pem("ca.pem")));
  h.attach();
  EXPECT_TRUE(h.at("AT#XUDPCLI=1,\"198.51.100.7\",4433,40", "\r\n#XUDPCLI: -116,\"not connected\"\r\n\r\nERROR\r\n"));
  EXPECT_TRUE(h.at("AT#XUDPCLI?", "\r\n#XUDPCLI: -1,0\r\n\r\nOK\r\n"));
}

// ---------------------------------------------------------------------------------------------
// Servers

namespace {
// A blocking OpenSSL client on its own thread (the simulator runs on the test thread).
struct TlsTestClient {
  std::atomic<bool> done{false};
  bool handshake_ok = false;
  std::string received;
  std::thread t;
  TlsTestClient(unsigned short port, const std::string& ca, std::string send, std::size_t expect) {
    t = std::thread([this, port, ca, send, expect] {
      SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
      SSL_CTX_load_verify_locations(ctx, ca.c_str(), nullptr);
      SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
      int fd = socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(port);
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      timeval tv{5, 0};
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
        SSL* ssl = SSL_new(ctx);
        SSL_set_fd(ssl, fd);
        SSL_set1_host(ssl, "tls.test");
        if (SSL_connect(ssl) == 1) {
          handshake_ok = true;
          SSL_write(ssl, send.data(), static_cast<int>(send.size()));
          char b[256];
          while (received.size() < expect) {
            int n = SSL_read(ssl, b, sizeof b);
            if (n <= 0) break;
            received.append(b, static_cast<std::size_t>(n));
          }
          SSL_shutdown(ssl);
        }
        SSL_free(ssl);
      }
      close(fd);
      SSL_CTX_free(ctx);
      done = true;
    });
  }
  ~TlsTestClient() { t.join(); }
};
}  // namespace

TEST(TlsServer, NativeTlsServerHandshakesBeforeConnected) {
  auto c = tls_config();
  c.native_tls = true;
  Harness h(c);
  unsigned short port = free_port(h.io);
  h.boot();
  h.attach();
  ASSERT_TRUE(h.at("AT#XCMNG=0,50,1,\"" + pem("server.pem") + "\"", "\r\nOK\r\n"));
  ASSERT_TRUE(h.at("AT#XCMNG=0,50,2,\"" + pem("server.key") + "\"", "\r\nOK\r\n"));
  ASSERT_TRUE(h.at("AT#XTCPSVR=1," + std::to_string(port) + ",50", "\r\n#XTCPSVR: 0,\"started\"\r\n\r\nOK\r\n"));
  {
    TlsTestClient bad(port, pki("other-ca.pem"), "", 0);  // does not trust the server: dropped silently
    ASSERT_TRUE(h.run_until([&] { return bad.done.load(); }));
    EXPECT_FALSE(bad.handshake_ok);
    EXPECT_TRUE(h.nothing_more());
  }
  TlsTestClient good(port, pki("ca.pem"), "ping", 4);
  EXPECT_TRUE(h.expect("\r\n#XTCPSVR: \"127.0.0.1\",\"connected\"\r\n"));
  EXPECT_TRUE(h.expect("\r\n#XTCPDATA: 4\r\nping"));
  EXPECT_TRUE(h.at("AT#XTCPSEND=\"pong\"", "\r\n#XTCPSEND: 4\r\n\r\nOK\r\n"));
  ASSERT_TRUE(h.run_until([&] { return good.done.load(); }));
  EXPECT_TRUE(good.handshake_ok);
  EXPECT_EQ(good.received, "pong");
  EXPECT_TRUE(h.expect("\r\n#XTCPSVR: 0,\"disconnected\"\r\n"));  // close_notify + FIN from the client
  EXPECT_TRUE(h.at("AT#XTCPSVR=0", "\r\n#XTCPSVR: 0,\"stopped\"\r\n\r\nOK\r\n"));
}

TEST(TlsServer, WithoutNativeTls) {
  {
    Harness h(tls_config("v2.9"));  // ERROR, and the TCP proxy stays busy until a reset
    h.boot();
    h.attach();
    EXPECT_TRUE(h.at("AT#XTCPSVR=1,4433,50", "\r\nERROR\r\n"));
    EXPECT_TRUE(h.at("AT#XTCPSVR=1,4433", "\r\nERROR\r\n"));
    EXPECT_TRUE(h.at("AT#XUDPSVR=1,4433,50", "\r\n#UDPSVR: -134,\"not started\"\r\n\r\nERROR\r\n"));
  }
  {
    Harness h(tls_config("v2.8"));
    h.boot();
    h.attach();
    EXPECT_TRUE(h.at("AT#XTCPSVR=1,4433,50", "\r\nERROR\r\n"));
    EXPECT_TRUE(h.at("AT#XTCPSVR=1,0", "\r\n#XTCPSVR: 0,\"started\"\r\n\r\nOK\r\n"));  // no wedge before v2.9
  }
}

// ---------------------------------------------------------------------------------------------
// DTLS server (#XUDPSVR with a sec_tag, native TLS, v2.8+)

namespace {
// A DTLS 1.2 client on its own thread over a connected UDP socket: non-blocking, every wait bounded. It verifies the
// server against `ca` (name tls.test), sends `send` (one record each), reads `expect` datagrams, then optionally
// waits for the server's close_notify, and ends with close_notify unless told not to.
struct DtlsTestClient {
  struct Opt {
    std::string ca;
    std::vector<std::string> send;
    std::size_t expect = 0;
    int handshake_ms = 3000;
    bool close_notify = true;
    bool wait_close = false;  // after the above: wait (up to 5 s) for the server's close_notify
  };
  std::atomic<bool> done{false};
  std::atomic<unsigned short> local_port{0};
  bool handshake_ok = false;
  bool got_close_notify = false;
  std::vector<std::string> received;
  std::thread t;

  DtlsTestClient(unsigned short port, Opt o) {
    t = std::thread([this, port, o] { run(port, o); });
  }
  ~DtlsTestClient() { t.join(); }
  std::string port_text() const { return std::to_string(local_port.load()); }

 private:
  void run(unsigned short port, const Opt& o) {
    using clock = std::chrono::steady_clock;
    SSL_CTX* ctx = SSL_CTX_new(DTLS_client_method());
    SSL_CTX_set_min_proto_version(ctx, DTLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(ctx, DTLS1_2_VERSION);
    SSL_CTX_load_verify_locations(ctx, o.ca.c_str(), nullptr);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    sockaddr_in me{};
    socklen_t len = sizeof me;
    getsockname(fd, reinterpret_cast<sockaddr*>(&me), &len);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    local_port = ntohs(me.sin_port);
    SSL* ssl = SSL_new(ctx);
    BIO* bio = BIO_new_dgram(fd, BIO_NOCLOSE);
    BIO_ctrl(bio, BIO_CTRL_DGRAM_SET_CONNECTED, 0, &a);
    SSL_set_bio(ssl, bio, bio);
    SSL_set1_host(ssl, "tls.test");
    // Waits for input until `until`, or for the DTLS retransmission timer (then retransmits). False: time is up.
    auto wait = [&](clock::time_point until) {
      auto now = clock::now();
      if (now >= until) return false;
      long ms = std::chrono::duration_cast<std::chrono::milliseconds>(until - now).count() + 1;
      timeval tv{};
      bool timer = DTLSv1_get_timeout(ssl, &tv) == 1;
      if (timer) ms = std::min<long>(ms, tv.tv_sec * 1000 + tv.tv_usec / 1000);
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(ms)) == 0 && timer) DTLSv1_handle_timeout(ssl);
      return true;
    };
    auto hs_until = clock::now() + std::chrono::milliseconds(o.handshake_ms);
    for (;;) {
      int r = SSL_connect(ssl);
      if (r == 1) {
        handshake_ok = true;
        break;
      }
      int e = SSL_get_error(ssl, r);
      if ((e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) || !wait(hs_until)) break;
    }
    if (handshake_ok) {
      for (const auto& m : o.send) SSL_write(ssl, m.data(), static_cast<int>(m.size()));
      auto until = clock::now() + std::chrono::seconds(5);
      char b[4096];
      while (received.size() < o.expect || (o.wait_close && !got_close_notify)) {
        int n = SSL_read(ssl, b, sizeof b);
        if (n > 0) {
          received.emplace_back(b, static_cast<std::size_t>(n));
          continue;
        }
        int e = SSL_get_error(ssl, n);
        if (e == SSL_ERROR_ZERO_RETURN) got_close_notify = true;
        if (e != SSL_ERROR_WANT_READ || !wait(until)) break;
      }
      if (o.close_notify && !got_close_notify) SSL_shutdown(ssl);
    }
    SSL_free(ssl);
    close(fd);
    SSL_CTX_free(ctx);
    done = true;
  }
};

unsigned short free_udp_port(asio::io_context& io) {
  asio::ip::udp::socket s(io, asio::ip::udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  return s.local_endpoint().port();
}

// A native-TLS v2.9 simulator, attached, with the server certificate and key under sec_tag 60 and the DTLS server
// started on a free port.
unsigned short start_dtls_server(Harness& h) {
  unsigned short port = free_udp_port(h.io);
  h.boot();
  h.attach();
  EXPECT_TRUE(h.at("AT#XCMNG=0,60,1,\"" + pem("server.pem") + "\"", "\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT#XCMNG=0,60,2,\"" + pem("server.key") + "\"", "\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT#XUDPSVR=1," + std::to_string(port) + ",60", "\r\n#XUDPSVR: 0,\"started\"\r\n\r\nOK\r\n"));
  return port;
}

Config native_tls_config() {
  auto c = tls_config();
  c.native_tls = true;
  return c;
}

// The #XUDPDATA bytes of a datagram from client c (once its thread has its local port).
std::string udpdata(Harness& h, const std::string& payload, const DtlsTestClient& c) {
  EXPECT_TRUE(h.run_until([&] { return c.local_port.load() != 0; }));
  return "\r\n#XUDPDATA: " + std::to_string(payload.size()) + ",\"127.0.0.1\"," + c.port_text() + "\r\n" + payload;
}
}  // namespace

TEST(DtlsServer, PlaintextOnTheUartRepliesAsRecordsUntrustedClientIgnored) {
  Harness h(native_tls_config());
  unsigned short port = start_dtls_server(h);
  {
    DtlsTestClient bad(port, {pki("other-ca.pem"), {"never"}});  // does not trust the server: no URC at all
    ASSERT_TRUE(h.run_until([&] { return bad.done.load(); }));
    EXPECT_FALSE(bad.handshake_ok);
    EXPECT_TRUE(h.nothing_more());
  }
  {
    DtlsTestClient good(port, {pki("ca.pem"), {"hello dtls"}, 2});
    EXPECT_TRUE(h.expect(udpdata(h, "hello dtls", good)));
    EXPECT_TRUE(h.at("AT#XUDPSEND=\"reply\"", "\r\n#XUDPSEND: 5\r\n\r\nOK\r\n"));
    EXPECT_TRUE(h.at("AT#XUDPSEND", "\r\nOK\r\n"));  // data mode: one datagram, one record
    h.send("from data mode+++");
    EXPECT_TRUE(h.expect("\r\n#XDATAMODE: 0\r\n"));
    ASSERT_TRUE(h.run_until([&] { return good.done.load(); }));
    EXPECT_TRUE(good.handshake_ok);
    EXPECT_EQ(good.received, (std::vector<std::string>{"reply", "from data mode"}));
    EXPECT_EQ(h.sim->stats().udp_down_datagrams, 1u);
    EXPECT_EQ(h.sim->stats().udp_up_datagrams, 2u);
  }
  // The client's close_notify ended the session: nobody to send to, and the next peer is served at once.
  EXPECT_TRUE(h.nothing_more());
  EXPECT_TRUE(h.at("AT#XUDPSEND=\"x\"", "\r\nERROR\r\n"));
  DtlsTestClient next(port, {pki("ca.pem"), {"next"}, 0, 3000, true, true});
  EXPECT_TRUE(h.expect(udpdata(h, "next", next)));
  EXPECT_TRUE(h.at("AT#XUDPSVR?", "\r\n#XUDPSVR: 0,1\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT#XUDPSVR=0", "\r\n#XUDPSVR: 0,\"stopped\"\r\n\r\nOK\r\n"));
  ASSERT_TRUE(h.run_until([&] { return next.done.load(); }));
  EXPECT_TRUE(next.got_close_notify);  // stopping the server closed the session
}

TEST(DtlsServer, OnePeerAtATimeUntilItFallsSilent) {
  auto c = native_tls_config();
  c.dtls_server_timeout_ms = 500;
  Harness h(c);
  unsigned short port = start_dtls_server(h);
  {
    DtlsTestClient a(port, {pki("ca.pem"), {"from a"}, 0, 3000, false});  // leaves without close_notify
    EXPECT_TRUE(h.expect(udpdata(h, "from a", a)));
    ASSERT_TRUE(h.run_until([&] { return a.done.load(); }));
  }
  {
    DtlsTestClient b(port, {pki("ca.pem"), {"from b"}, 0, 150});  // a's address still holds the server
    ASSERT_TRUE(h.run_until([&] { return b.done.load(); }));
    EXPECT_FALSE(b.handshake_ok);
  }
  EXPECT_TRUE(h.nothing_more(400ms));  // a has now been silent for longer than 500 ms
  DtlsTestClient c2(port, {pki("ca.pem"), {"from c"}});
  EXPECT_TRUE(h.expect(udpdata(h, "from c", c2)));
  ASSERT_TRUE(h.run_until([&] { return c2.done.load(); }));
}

TEST(DtlsServer, NeedsNativeTlsAndV28) {
  {
    Harness h(tls_config("v2.8"));  // no native TLS: ENOTSUP with the "#UDPSVR" typo, and the proxy stays free
    h.boot();
    h.attach();
    EXPECT_TRUE(h.at("AT#XUDPSVR=1,4433,60", "\r\n#UDPSVR: -134,\"not started\"\r\n\r\nERROR\r\n"));
    EXPECT_TRUE(h.at("AT#XUDPSVR=1,0", "\r\n#XUDPSVR: 0,\"started\"\r\n\r\nOK\r\n"));
  }
  for (bool native : {false, true}) {
    auto c = tls_config("v2.7");  // no <sec_tag> parameter before v2.8, and no failure line
    c.native_tls = native;
    Harness h(c);
    h.boot();
    h.attach();
    EXPECT_TRUE(h.at("AT#XUDPSVR=?", "\r\n#XUDPSVR: (0,1,2),<port>\r\n\r\nOK\r\n"));
    EXPECT_TRUE(h.at("AT#XUDPSVR=1,4433,60", "\r\nERROR\r\n")) << native;
  }
}
