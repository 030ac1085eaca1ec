// tls_echo_server: a TLS 1.2 / DTLS 1.2 echo server for the TLS tests (slmsim's modem-side TLS, slmd's TLS).
//
//   tls_echo_server [--bind 127.0.0.1] [--port 0] [--cert F --key F] [--ca F] [--psk HEX --psk-identity ID]
//                   [--dtls] [--close-after N] [--idle-timeout-ms 10000]
//
// Prints the bound port on stdout as its first line (flushed), then serves until SIGTERM/SIGINT. Echoes every
// byte (TLS) or datagram (DTLS) back. --ca: client certificates are required and verified against it. --psk:
// PSK cipher suites (only those, unless --cert/--key are given too). --close-after N: after echoing N bytes (TLS)
// or N datagrams (DTLS) the server sends close_notify and closes. TLS clients are served concurrently (a thread
// each); DTLS serves one peer at a time, the next one after close_notify or --idle-timeout-ms of silence.
// One line per event on stderr, for tests to assert:
//   "handshake ok cipher=<name>[ subject=<client cert subject>][ psk-identity=<id>]"
//   "handshake failed: <reason>"
//   "peer closed" (close_notify or EOF), "closed after <N>", "connection error: <reason>"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

struct Options {
  std::string bind = "127.0.0.1";
  int port = 0;
  std::string cert, key, ca, psk_hex, psk_identity;
  bool dtls = false;
  long close_after = 0;
  int idle_timeout_ms = 10000;
} opt;

std::string psk_key;
std::mutex log_mutex;

void log_line(const std::string& s) {
  std::lock_guard<std::mutex> l(log_mutex);
  std::fprintf(stderr, "%s\n", s.c_str());
  std::fflush(stderr);
}

std::string ssl_errors() {
  std::string out;
  unsigned long e;
  while ((e = ERR_get_error()) != 0) {
    char b[256];
    ERR_error_string_n(e, b, sizeof b);
    if (!out.empty()) out += "; ";
    out += b;
  }
  return out.empty() ? std::string(std::strerror(errno)) : out;
}

std::string failure(SSL* ssl) {
  std::string r = ssl_errors();
  long v = SSL_get_verify_result(ssl);
  if (v != X509_V_OK) r = std::string("verify: ") + X509_verify_cert_error_string(v) + "; " + r;
  return r;
}

unsigned int psk_cb(SSL*, const char* identity, unsigned char* psk, unsigned int max) {
  if (!identity || opt.psk_identity != identity || psk_key.size() > max) return 0;
  std::memcpy(psk, psk_key.data(), psk_key.size());
  return static_cast<unsigned int>(psk_key.size());
}

bool from_hex(const std::string& h, std::string& out) {
  if (h.empty() || h.size() % 2) return false;
  for (std::size_t i = 0; i < h.size(); i += 2) {
    char b[3] = {h[i], h[i + 1], 0};
    char* end;
    long v = std::strtol(b, &end, 16);
    if (*end) return false;
    out.push_back(static_cast<char>(v));
  }
  return true;
}

SSL_CTX* make_ctx() {
  SSL_CTX* ctx = SSL_CTX_new(opt.dtls ? DTLS_server_method() : TLS_server_method());
  int v = opt.dtls ? DTLS1_2_VERSION : TLS1_2_VERSION;
  SSL_CTX_set_min_proto_version(ctx, v);
  SSL_CTX_set_max_proto_version(ctx, v);
  SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_TICKET);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  if (!opt.cert.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx, opt.cert.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, opt.key.c_str(), SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
      std::fprintf(stderr, "tls_echo_server: certificate/key: %s\n", ssl_errors().c_str());
      std::exit(2);
    }
  }
  if (!opt.ca.empty()) {
    if (SSL_CTX_load_verify_locations(ctx, opt.ca.c_str(), nullptr) != 1) {
      std::fprintf(stderr, "tls_echo_server: --ca: %s\n", ssl_errors().c_str());
      std::exit(2);
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  }
  if (!opt.psk_hex.empty()) {
    SSL_CTX_set_psk_server_callback(ctx, psk_cb);
    SSL_CTX_set_cipher_list(ctx, opt.cert.empty() ? "PSK" : "DEFAULT:PSK");
  }
  return ctx;
}

std::string handshake_ok(SSL* ssl) {
  std::string s = std::string("handshake ok cipher=") + SSL_get_cipher_name(ssl);
  if (X509* peer = SSL_get1_peer_certificate(ssl)) {
    char b[512];
    X509_NAME_oneline(X509_get_subject_name(peer), b, sizeof b);
    s += std::string(" subject=") + b;
    X509_free(peer);
  }
  if (const char* id = SSL_get_psk_identity(ssl)) s += std::string(" psk-identity=") + id;
  return s;
}

void serve_tls(SSL_CTX* ctx, int fd) {
  SSL* ssl = SSL_new(ctx);
  SSL_set_fd(ssl, fd);
  if (SSL_accept(ssl) != 1) {
    log_line("handshake failed: " + failure(ssl));
  } else {
    log_line(handshake_ok(ssl));
    long total = 0;
    std::vector<char> buf(16384);
    for (;;) {
      int n = SSL_read(ssl, buf.data(), static_cast<int>(buf.size()));
      if (n <= 0) {
        int e = SSL_get_error(ssl, n);
        if (e == SSL_ERROR_ZERO_RETURN) log_line("peer closed");
        else log_line("connection error: " + ssl_errors());
        break;
      }
      if (SSL_write(ssl, buf.data(), n) <= 0) {
        log_line("connection error: " + ssl_errors());
        break;
      }
      total += n;
      if (opt.close_after > 0 && total >= opt.close_after) {
        log_line("closed after " + std::to_string(total));
        break;
      }
    }
    SSL_shutdown(ssl);
  }
  SSL_free(ssl);
  ::shutdown(fd, SHUT_RDWR);
  ::close(fd);
}

void serve_dtls(SSL_CTX* ctx, int s) {
  for (;;) {
    sockaddr_in peer{};
    socklen_t plen = sizeof peer;
    unsigned char head[14];
    timeval none{0, 0};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof none);
    auto n = recvfrom(s, head, sizeof head, MSG_PEEK, reinterpret_cast<sockaddr*>(&peer), &plen);
    if (n < 0) continue;
    // A new peer starts with a ClientHello (record type 22, handshake type 1); leftovers of an earlier
    // peer (retransmissions, alerts) are dropped.
    if (n < 14 || head[0] != 22 || head[13] != 1) {
      recv(s, head, sizeof head, 0);
      continue;
    }
    if (connect(s, reinterpret_cast<sockaddr*>(&peer), plen) != 0) continue;
    SSL* ssl = SSL_new(ctx);
    BIO* bio = BIO_new_dgram(s, BIO_NOCLOSE);
    BIO_ctrl(bio, BIO_CTRL_DGRAM_SET_CONNECTED, 0, &peer);
    timeval step{0, 200000};
    BIO_ctrl(bio, BIO_CTRL_DGRAM_SET_RECV_TIMEOUT, 0, &step);
    SSL_set_bio(ssl, bio, bio);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    bool ok = false;
    for (;;) {
      ERR_clear_error();
      int r = SSL_accept(ssl);
      if (r == 1) {
        ok = true;
        break;
      }
      int e = SSL_get_error(ssl, r);
      bool again = e == SSL_ERROR_WANT_READ || (e == SSL_ERROR_SYSCALL && errno == ECONNREFUSED);
      if (!again) {
        log_line("handshake failed: " + failure(ssl));
        break;
      }
      if (std::chrono::steady_clock::now() > deadline) {
        log_line("handshake failed: timeout");
        break;
      }
      DTLSv1_handle_timeout(ssl);
    }
    if (ok) {
      log_line(handshake_ok(ssl));
      long count = 0;
      auto idle_since = std::chrono::steady_clock::now();
      std::vector<char> buf(65536);
      for (;;) {
        ERR_clear_error();
        int n = SSL_read(ssl, buf.data(), static_cast<int>(buf.size()));
        if (n > 0) {
          idle_since = std::chrono::steady_clock::now();
          SSL_write(ssl, buf.data(), n);
          if (opt.close_after > 0 && ++count >= opt.close_after) {
            log_line("closed after " + std::to_string(count));
            SSL_shutdown(ssl);
            break;
          }
          continue;
        }
        int e = SSL_get_error(ssl, n);
        if (e == SSL_ERROR_ZERO_RETURN) {
          log_line("peer closed");
          break;
        }
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_SYSCALL) {
          if (std::chrono::steady_clock::now() - idle_since > std::chrono::milliseconds(opt.idle_timeout_ms)) {
            log_line("peer idle, dropped");
            break;
          }
          continue;
        }
        log_line("connection error: " + ssl_errors());
        break;
      }
    }
    SSL_free(ssl);
    sockaddr unspec{};
    unspec.sa_family = AF_UNSPEC;
    connect(s, &unspec, sizeof unspec);  // back to listening for anybody
  }
}

[[noreturn]] void usage() {
  std::fprintf(stderr,
               "usage: tls_echo_server [--bind ADDR] [--port N] [--cert F --key F] [--ca F] [--psk HEX --psk-identity ID]\n"
               "                       [--dtls] [--close-after N] [--idle-timeout-ms MS]\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) usage();
      return argv[++i];
    };
    if (a == "--bind") opt.bind = next();
    else if (a == "--port") opt.port = std::atoi(next().c_str());
    else if (a == "--cert") opt.cert = next();
    else if (a == "--key") opt.key = next();
    else if (a == "--ca") opt.ca = next();
    else if (a == "--psk") opt.psk_hex = next();
    else if (a == "--psk-identity") opt.psk_identity = next();
    else if (a == "--dtls") opt.dtls = true;
    else if (a == "--close-after") opt.close_after = std::atol(next().c_str());
    else if (a == "--idle-timeout-ms") opt.idle_timeout_ms = std::atoi(next().c_str());
    else usage();
  }
  if (opt.cert.empty() != opt.key.empty()) usage();
  if (opt.cert.empty() && opt.psk_hex.empty()) usage();
  if (!opt.psk_hex.empty() && !from_hex(opt.psk_hex, psk_key)) usage();
  ::signal(SIGPIPE, SIG_IGN);

  SSL_CTX* ctx = make_ctx();
  int s = ::socket(AF_INET, opt.dtls ? SOCK_DGRAM : SOCK_STREAM, 0);
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(opt.port));
  if (inet_pton(AF_INET, opt.bind.c_str(), &addr.sin_addr) != 1) usage();
  if (bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || (!opt.dtls && listen(s, 16) != 0)) {
    std::perror("tls_echo_server: bind");
    return 1;
  }
  socklen_t len = sizeof addr;
  getsockname(s, reinterpret_cast<sockaddr*>(&addr), &len);

  if (opt.dtls) {
    // Disconnecting a UDP socket (after each peer) drops an automatically chosen port: bind the chosen port
    // explicitly so that it stays.
    if (opt.port == 0) {
      int s2 = ::socket(AF_INET, SOCK_DGRAM, 0);
      setsockopt(s2, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      ::close(s);
      if (bind(s2, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        std::perror("tls_echo_server: bind");
        return 1;
      }
      s = s2;
    }
    std::printf("%u\n", ntohs(addr.sin_port));
    std::fflush(stdout);
    serve_dtls(ctx, s);
    return 0;
  }
  std::printf("%u\n", ntohs(addr.sin_port));
  std::fflush(stdout);
  for (;;) {
    int c = ::accept(s, nullptr, nullptr);
    if (c < 0) continue;
    std::thread(serve_tls, ctx, c).detach();
  }
}
