// slmsim: TLS/DTLS bridges and the SSL_CTX built from the credential store (see tls_bridge.hpp).
#include "tls_bridge.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>

#include <algorithm>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <cstring>

#include "newlib_errno.hpp"

namespace slmsim {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {

struct PskData {
  std::string key;       // raw bytes
  std::string identity;
};

int psk_index() {
  static int idx = SSL_CTX_get_ex_new_index(
      0, nullptr, nullptr, nullptr,
      [](void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) { delete static_cast<PskData*>(ptr); });
  return idx;
}

const PskData* psk_of(SSL* ssl) {
  return static_cast<const PskData*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), psk_index()));
}

unsigned int psk_client_cb(SSL* ssl, const char*, char* identity, unsigned int max_identity, unsigned char* psk,
                           unsigned int max_psk) {
  const PskData* d = psk_of(ssl);
  if (!d || d->identity.size() + 1 > max_identity || d->key.size() > max_psk) return 0;
  std::memcpy(identity, d->identity.c_str(), d->identity.size() + 1);
  std::memcpy(psk, d->key.data(), d->key.size());
  return static_cast<unsigned int>(d->key.size());
}

unsigned int psk_server_cb(SSL* ssl, const char* identity, unsigned char* psk, unsigned int max_psk) {
  const PskData* d = psk_of(ssl);
  if (!d || !identity || d->identity != identity || d->key.size() > max_psk) return 0;
  std::memcpy(psk, d->key.data(), d->key.size());
  return static_cast<unsigned int>(d->key.size());
}

bool hex_decode(const std::string& hex, std::string& out) {
  out.clear();
  if (hex.empty() || hex.size() % 2) return false;
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    auto v = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    int hi = v(hex[i]), lo = v(hex[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out.push_back(static_cast<char>(hi * 16 + lo));
  }
  return true;
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
  return out;
}

std::string describe(SSL* ssl, int ret, int err) {
  std::string q = ssl_errors();
  if (ssl) {
    long v = SSL_get_verify_result(ssl);
    if (v != X509_V_OK) q = std::string("verify: ") + X509_verify_cert_error_string(v) + (q.empty() ? "" : "; " + q);
  }
  if (q.empty()) {
    if (err == SSL_ERROR_SYSCALL) q = ret == 0 ? "peer closed" : std::string("syscall: ") + std::strerror(errno);
    else q = "ssl error " + std::to_string(err);
  }
  return q;
}

int accept_all(int, X509_STORE_CTX*) { return 1; }

}  // namespace

SSL_CTX* make_ssl_ctx(const CredStore& store, std::int64_t tag, const TlsOptions& opt, std::string& err) {
  const SSL_METHOD* m = opt.dtls ? (opt.server ? DTLS_server_method() : DTLS_client_method())
                                 : (opt.server ? TLS_server_method() : TLS_client_method());
  SSL_CTX* ctx = SSL_CTX_new(m);
  if (!ctx) {
    err = ssl_errors();
    return nullptr;
  }
  int v = opt.dtls ? DTLS1_2_VERSION : TLS1_2_VERSION;  // the modem's limit
  SSL_CTX_set_min_proto_version(ctx, v);
  SSL_CTX_set_max_proto_version(ctx, v);
  SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_TICKET);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  auto fail = [&](std::string why) -> SSL_CTX* {
    err = why + (ERR_peek_error() ? ": " + ssl_errors() : "");
    SSL_CTX_free(ctx);
    return nullptr;
  };

  if (const auto* ca = store.get(tag, CredCa)) {
    BIO* bio = BIO_new_mem_buf(ca->content.data(), static_cast<int>(ca->content.size()));
    X509_STORE* xs = SSL_CTX_get_cert_store(ctx);
    int n = 0;
    while (X509* x = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
      X509_STORE_add_cert(xs, x);
      X509_free(x);
      ++n;
    }
    BIO_free(bio);
    ERR_clear_error();  // the loop ends on "no start line"
    if (n == 0) return fail("sec_tag " + std::to_string(tag) + ": no certificate in the root CA");
  }
  const auto* cert = store.get(tag, CredClientCert);
  const auto* key = store.get(tag, CredClientKey);
  if (cert && key) {
    BIO* bio = BIO_new_mem_buf(cert->content.data(), static_cast<int>(cert->content.size()));
    X509* x = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
    bool ok = x && SSL_CTX_use_certificate(ctx, x) == 1;
    if (x) X509_free(x);
    while (ok) {  // the rest of the file: intermediate certificates
      X509* c = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
      if (!c) break;
      SSL_CTX_add0_chain_cert(ctx, c);
    }
    BIO_free(bio);
    ERR_clear_error();
    if (!ok) return fail("sec_tag " + std::to_string(tag) + ": bad certificate");
    bio = BIO_new_mem_buf(key->content.data(), static_cast<int>(key->content.size()));
    EVP_PKEY* pk = PEM_read_bio_PrivateKey(bio, nullptr, nullptr,
                                           const_cast<char*>(key->passphrase.empty() ? "" : key->passphrase.c_str()));
    BIO_free(bio);
    ok = pk && SSL_CTX_use_PrivateKey(ctx, pk) == 1 && SSL_CTX_check_private_key(ctx) == 1;
    if (pk) EVP_PKEY_free(pk);
    if (!ok) return fail("sec_tag " + std::to_string(tag) + ": bad private key");
  }
  const auto* psk = store.get(tag, CredPsk);
  if (psk) {
    auto* d = new PskData;
    if (!hex_decode(psk->content, d->key)) {
      delete d;
      return fail("sec_tag " + std::to_string(tag) + ": PSK is not a hex string");
    }
    if (const auto* id = store.get(tag, CredPskIdentity)) d->identity = id->content;
    SSL_CTX_set_ex_data(ctx, psk_index(), d);
    if (opt.server) SSL_CTX_set_psk_server_callback(ctx, psk_server_cb);
    else SSL_CTX_set_psk_client_callback(ctx, psk_client_cb);
    SSL_CTX_set_cipher_list(ctx, "DEFAULT:PSK");
  }

  if (opt.server) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);  // the SLM TLS server sets TLS_PEER_VERIFY_NONE
  } else if (opt.peer_verify == 0) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  } else if (opt.peer_verify == 1) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, accept_all);
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  }
  return ctx;
}

namespace {
void apply_hostname(SSL* ssl, const std::string& host) {
  if (host.empty()) return;
  error_code ec;
  (void)asio::ip::make_address(host, ec);
  if (!ec) {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str());
  } else {
    SSL_set_tlsext_host_name(ssl, host.c_str());
    SSL_set1_host(ssl, host.c_str());
  }
}
}  // namespace

// ---------------------------------------------------------------------------------------------
// TLS over TCP

TlsBridge::TlsBridge(asio::io_context& io, tcp::socket net, SSL_CTX* ctx, const TlsOptions& opt)
    : io_(io), net_(std::move(net)), inner_(io), ctx_(ctx), opt_(opt), timer_(io), down_buf_(16384), up_buf_(16384) {
  SSL_CTX_up_ref(ctx_);
}

TlsBridge::~TlsBridge() {
  if (ssl_) SSL_free(ssl_);
  SSL_CTX_free(ctx_);
}

void TlsBridge::start(Done done, int timeout_ms) {
  done_ = std::move(done);
  error_code ec;
  net_.non_blocking(true, ec);
  ssl_ = SSL_new(ctx_);
  if (!ssl_ || ec) return fail(-nerr::ECONNABORTED_, "SSL_new: " + ssl_errors());
  SSL_set_fd(ssl_, static_cast<int>(net_.native_handle()));
  if (opt_.server) {
    SSL_set_accept_state(ssl_);
  } else {
    SSL_set_connect_state(ssl_);
    apply_hostname(ssl_, opt_.hostname);
  }
  timer_.expires_after(std::chrono::milliseconds(timeout_ms));
  timer_.async_wait([self = shared_from_this()](const error_code& e) {
    if (!e && !self->finished_) self->fail(-nerr::ETIMEDOUT_, "handshake timeout");
  });
  step();
}

void TlsBridge::step() {
  if (finished_) return;
  ERR_clear_error();
  int r = SSL_do_handshake(ssl_);
  if (r == 1) return succeed();
  int e = SSL_get_error(ssl_, r);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
    net_.async_wait(e == SSL_ERROR_WANT_READ ? tcp::socket::wait_read : tcp::socket::wait_write,
                    [self = shared_from_this()](const error_code& ec) {
                      if (self->finished_) return;
                      if (ec) return self->fail(-nerr::ECONNABORTED_, ec.message());
                      self->step();
                    });
    return;
  }
  fail(-nerr::ECONNABORTED_, describe(ssl_, r, e));
}

void TlsBridge::fail(int err, std::string why) {
  if (finished_) return;
  finished_ = true;
  closed_ = true;
  failure_ = std::move(why);
  timer_.cancel();
  error_code ec;
  net_.close(ec);
  auto d = std::move(done_);
  done_ = nullptr;
  if (d) d(err, nullptr);
}

void TlsBridge::succeed() {
  finished_ = true;
  timer_.cancel();
  // The plaintext side: a loopback TCP connection, so resets and half-closes keep their TCP meaning.
  error_code ec;
  auto proxy_end = std::make_shared<tcp::socket>(io_);
  {
    tcp::acceptor acc(io_);
    tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), 0);
    acc.open(ep.protocol(), ec);
    if (!ec) acc.bind(ep, ec);
    if (!ec) acc.listen(1, ec);
    if (!ec) proxy_end->open(ep.protocol(), ec);
    if (!ec) proxy_end->connect(acc.local_endpoint(), ec);
    if (!ec) acc.accept(inner_, ec);
  }
  if (ec) {
    finished_ = false;
    return fail(-nerr::EIO_, "loopback pair: " + ec.message());
  }
  proxy_end->set_option(tcp::no_delay(true), ec);
  inner_.set_option(tcp::no_delay(true), ec);
  auto d = std::move(done_);
  done_ = nullptr;
  if (d) d(0, proxy_end);
  down_read();
  up_read();
}

void TlsBridge::abort() {
  done_ = nullptr;
  if (!finished_) {
    finished_ = true;
    closed_ = true;
    timer_.cancel();
    error_code ec;
    net_.close(ec);
    return;
  }
  teardown(true);
}

void TlsBridge::down_read() {
  while (!closed_) {
    ERR_clear_error();
    int n = SSL_read(ssl_, down_buf_.data(), static_cast<int>(down_buf_.size()));
    if (n > 0) {
      asio::async_write(inner_, asio::buffer(down_buf_.data(), static_cast<std::size_t>(n)),
                        [self = shared_from_this()](const error_code& ec, std::size_t) {
                          if (self->closed_) return;
                          if (ec) return self->teardown(true);
                          self->down_read();
                        });
      return;
    }
    int e = SSL_get_error(ssl_, n);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      net_.async_wait(e == SSL_ERROR_WANT_READ ? tcp::socket::wait_read : tcp::socket::wait_write,
                      [self = shared_from_this()](const error_code& ec) {
                        if (self->closed_ || ec) return;
                        self->down_read();
                      });
      return;
    }
    if (e == SSL_ERROR_ZERO_RETURN) {
      // close_notify or FIN from the peer: FIN to the proxy, which reports the loss and closes its end.
      error_code ec;
      inner_.shutdown(tcp::socket::shutdown_send, ec);
      return;
    }
    return teardown(true);  // reset or fatal alert: reset the proxy's end
  }
}

void TlsBridge::up_read() {
  if (closed_) return;
  inner_.async_read_some(asio::buffer(up_buf_), [self = shared_from_this()](const error_code& ec, std::size_t n) {
    if (self->closed_) return;
    if (ec) return self->teardown(ec != asio::error::eof);
    self->up_len_ = n;
    self->up_off_ = 0;
    self->up_write();
  });
}

void TlsBridge::up_write() {
  while (!closed_ && up_off_ < up_len_) {
    ERR_clear_error();
    int r = SSL_write(ssl_, up_buf_.data() + up_off_, static_cast<int>(up_len_ - up_off_));
    if (r > 0) {
      up_off_ += static_cast<std::size_t>(r);
      continue;
    }
    int e = SSL_get_error(ssl_, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      net_.async_wait(e == SSL_ERROR_WANT_READ ? tcp::socket::wait_read : tcp::socket::wait_write,
                      [self = shared_from_this()](const error_code& ec) {
                        if (self->closed_ || ec) return;
                        self->up_write();
                      });
      return;
    }
    return teardown(true);
  }
  up_read();
}

void TlsBridge::teardown(bool rst) {
  if (closed_) return;
  closed_ = true;
  error_code ec;
  if (rst) {
    inner_.set_option(asio::socket_base::linger(true, 0), ec);
    net_.set_option(asio::socket_base::linger(true, 0), ec);
  } else if (ssl_) {
    ERR_clear_error();
    SSL_shutdown(ssl_);  // sends close_notify (non-blocking; the peer's is not awaited)
    net_.shutdown(tcp::socket::shutdown_send, ec);
  }
  inner_.close(ec);
  net_.close(ec);
}

// ---------------------------------------------------------------------------------------------
// DTLS over UDP

DtlsBridge::DtlsBridge(asio::io_context& io, udp::socket net, SSL_CTX* ctx, const TlsOptions& opt)
    : io_(io), net_(std::move(net)), local_(io), ctx_(ctx), opt_(opt), deadline_(io), retx_(io), buf_(65536) {
  SSL_CTX_up_ref(ctx_);
}

DtlsBridge::~DtlsBridge() {
  if (ssl_) SSL_free(ssl_);
  SSL_CTX_free(ctx_);
}

void DtlsBridge::start(Done done, Lost lost, int timeout_ms) {
  done_ = std::move(done);
  lost_ = std::move(lost);
  error_code ec;
  net_.non_blocking(true, ec);
  auto peer = net_.remote_endpoint(ec);
  ssl_ = SSL_new(ctx_);
  if (!ssl_ || ec) return fail(-nerr::ECONNABORTED_, "SSL_new: " + ssl_errors());
  BIO* bio = BIO_new_dgram(static_cast<int>(net_.native_handle()), BIO_NOCLOSE);
  BIO_ctrl(bio, BIO_CTRL_DGRAM_SET_CONNECTED, 0, peer.data());
  SSL_set_bio(ssl_, bio, bio);
  SSL_set_connect_state(ssl_);
  apply_hostname(ssl_, opt_.hostname);
  deadline_.expires_after(std::chrono::milliseconds(timeout_ms));
  deadline_.async_wait([self = shared_from_this()](const error_code& e) {
    if (!e && !self->finished_) self->fail(-nerr::ETIMEDOUT_, "handshake timeout");
  });
  step();
}

void DtlsBridge::step() {
  if (finished_) return;
  ERR_clear_error();
  errno = 0;
  int r = SSL_do_handshake(ssl_);
  if (r == 1) return succeed();
  int e = SSL_get_error(ssl_, r);
  bool icmp = e == SSL_ERROR_SYSCALL && (errno == ECONNREFUSED || errno == EHOSTUNREACH || errno == ENETUNREACH);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE || icmp) {
    // ICMP errors are not reported by the modem: keep retransmitting until the handshake deadline.
    ERR_clear_error();
    auto g = ++wait_gen_;
    auto self = shared_from_this();
    net_.async_wait(e == SSL_ERROR_WANT_WRITE ? udp::socket::wait_write : udp::socket::wait_read,
                    [self, g](const error_code& ec) {
                      if (self->finished_ || g != self->wait_gen_ || ec) return;
                      ++self->wait_gen_;
                      self->retx_.cancel();
                      self->step();
                    });
    timeval tv{};
    if (DTLSv1_get_timeout(ssl_, &tv) || icmp) {
      auto ms = icmp ? std::chrono::milliseconds(100)
                     : std::chrono::milliseconds(tv.tv_sec * 1000 + tv.tv_usec / 1000);
      retx_.expires_after(ms);
      retx_.async_wait([self, g](const error_code& ec) {
        if (ec || self->finished_ || g != self->wait_gen_) return;
        ++self->wait_gen_;
        error_code ignored;
        self->net_.cancel(ignored);
        DTLSv1_handle_timeout(self->ssl_);
        self->step();
      });
    }
    return;
  }
  fail(-nerr::ECONNABORTED_, describe(ssl_, r, e));
}

void DtlsBridge::fail(int err, std::string why) {
  if (finished_) return;
  finished_ = true;
  closed_ = true;
  failure_ = std::move(why);
  deadline_.cancel();
  retx_.cancel();
  error_code ec;
  net_.close(ec);
  auto d = std::move(done_);
  done_ = nullptr;
  lost_ = nullptr;
  if (d) d(err, nullptr);
}

void DtlsBridge::succeed() {
  finished_ = true;
  connected_ = true;
  deadline_.cancel();
  retx_.cancel();
  error_code ec;
  auto proxy_end = std::make_shared<udp::socket>(io_);
  udp::endpoint lo(asio::ip::make_address("127.0.0.1"), 0);
  local_.open(lo.protocol(), ec);
  if (!ec) local_.bind(lo, ec);
  if (!ec) proxy_end->open(lo.protocol(), ec);
  if (!ec) proxy_end->bind(lo, ec);
  if (!ec) local_.connect(proxy_end->local_endpoint(), ec);
  if (!ec) proxy_end->connect(local_.local_endpoint(), ec);
  if (ec) {
    finished_ = false;
    return fail(-nerr::EIO_, "local pair: " + ec.message());
  }
  auto d = std::move(done_);
  done_ = nullptr;
  if (d) d(0, proxy_end);
  local_read();
  net_read();
}

void DtlsBridge::local_read() {
  if (closed_) return;
  local_.async_receive(asio::buffer(buf_), [self = shared_from_this()](const error_code& ec, std::size_t n) {
    if (self->closed_ || ec == asio::error::operation_aborted) return;
    if (!ec && n > 0) {
      ERR_clear_error();
      SSL_write(self->ssl_, self->buf_.data(), static_cast<int>(n));  // one record; a failure loses it
      ERR_clear_error();
    }
    self->local_read();
  });
}

void DtlsBridge::net_read() {
  if (closed_) return;
  net_.async_wait(udp::socket::wait_read, [self = shared_from_this()](const error_code& ec) {
    if (self->closed_ || ec) return;
    std::vector<char> b(65536);
    for (;;) {
      ERR_clear_error();
      int n = SSL_read(self->ssl_, b.data(), static_cast<int>(b.size()));
      if (n > 0) {
        error_code ignored;
        self->local_.send(asio::buffer(b.data(), static_cast<std::size_t>(n)), 0, ignored);
        continue;
      }
      int e = SSL_get_error(self->ssl_, n);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_SYSCALL) break;
      return self->lost();  // close_notify or a fatal alert
    }
    ERR_clear_error();
    self->net_read();
  });
}

void DtlsBridge::lost() {
  auto l = std::move(lost_);
  lost_ = nullptr;
  close();
  if (l) l();
}

void DtlsBridge::close() {
  done_ = nullptr;
  lost_ = nullptr;
  if (closed_ && !connected_) return;
  if (connected_ && !closed_ && ssl_) {
    ERR_clear_error();
    SSL_shutdown(ssl_);  // close_notify
    ERR_clear_error();
  }
  closed_ = true;
  connected_ = false;
  finished_ = true;
  deadline_.cancel();
  retx_.cancel();
  error_code ec;
  net_.close(ec);
  local_.close(ec);
}

}  // namespace slmsim

// ---------------------------------------------------------------------------------------------
// DTLS server over UDP (see tls_bridge.hpp)

namespace slmsim {

// OpenSSL glue of DtlsServerBridge: a datagram BIO whose writes go to the current peer through the server socket and
// whose reads take the peer's datagrams that the bridge received, one per read; the cookie callbacks.
struct DtlsServerHooks {
  static DtlsServerBridge* of(BIO* b) { return static_cast<DtlsServerBridge*>(BIO_get_data(b)); }
  static int write(BIO* b, const char* data, int len) {
    BIO_clear_retry_flags(b);
    return of(b)->bio_write(data, len);
  }
  static int read(BIO* b, char* data, int len) {
    BIO_clear_retry_flags(b);
    int n = of(b)->bio_read(data, len);
    if (n < 0) BIO_set_retry_read(b);
    return n;
  }
  static long ctrl(BIO*, int cmd, long, void*) {
    switch (cmd) {
      case BIO_CTRL_FLUSH:
        return 1;
      case BIO_CTRL_DGRAM_QUERY_MTU:
      case BIO_CTRL_DGRAM_GET_FALLBACK_MTU:
        return 1400;
      default:
        return 0;  // no pending bytes, no MTU overhead, timeouts handled by the bridge
    }
  }
  static int create(BIO* b) {
    BIO_set_init(b, 1);
    return 1;
  }
  static BIO_METHOD* method() {
    static BIO_METHOD* m = [] {
      BIO_METHOD* bm = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "slmsim DTLS server");
      BIO_meth_set_write(bm, write);
      BIO_meth_set_read(bm, read);
      BIO_meth_set_ctrl(bm, ctrl);
      BIO_meth_set_create(bm, create);
      return bm;
    }();
    return m;
  }
  static DtlsServerBridge* of(SSL* ssl) { return static_cast<DtlsServerBridge*>(SSL_get_app_data(ssl)); }
  static int cookie_generate(SSL* ssl, unsigned char* cookie, unsigned int* len) {
    auto* s = of(ssl);
    if (s->cookie_.empty()) {
      s->cookie_.resize(16);
      if (RAND_bytes(reinterpret_cast<unsigned char*>(s->cookie_.data()), 16) != 1) return 0;
    }
    std::memcpy(cookie, s->cookie_.data(), s->cookie_.size());
    *len = static_cast<unsigned int>(s->cookie_.size());
    return 1;
  }
  static int cookie_verify(SSL* ssl, const unsigned char* cookie, unsigned int len) {
    auto* s = of(ssl);
    return !s->cookie_.empty() && len == s->cookie_.size() && std::memcmp(cookie, s->cookie_.data(), len) == 0;
  }
};

namespace {
std::string ep_text(const asio::ip::udp::endpoint& ep) {
  return ep.address().to_string() + ":" + std::to_string(ep.port());
}
// A ClientHello in epoch 0: a (re)connecting client.
bool is_client_hello(const std::string& d) {
  return d.size() > 13 && static_cast<unsigned char>(d[0]) == 22 && d[3] == 0 && d[4] == 0 &&
         static_cast<unsigned char>(d[13]) == 1;
}
}  // namespace

DtlsServerBridge::DtlsServerBridge(asio::io_context& io, udp::socket net, SSL_CTX* ctx, int handshake_timeout_ms,
                                   int idle_ms, Note note)
    : io_(io),
      net_(std::move(net)),
      local_(io),
      ctx_(ctx),
      handshake_timeout_ms_(handshake_timeout_ms),
      idle_ms_(idle_ms),
      note_(std::move(note)),
      retx_(io),
      deadline_(io),
      rbuf_(65536),
      lbuf_(65536),
      pbuf_(65536) {
  if (ctx_) {
    SSL_CTX_up_ref(ctx_);
    SSL_CTX_set_cookie_generate_cb(ctx_, DtlsServerHooks::cookie_generate);
    SSL_CTX_set_cookie_verify_cb(ctx_, DtlsServerHooks::cookie_verify);
  }
}

DtlsServerBridge::~DtlsServerBridge() {
  if (ssl_) SSL_free(ssl_);
  if (ctx_) SSL_CTX_free(ctx_);
}

std::string DtlsServerBridge::tag(const udp::endpoint& ep) {
  std::string t(kTagSize, '\0');
  auto a = ep.address();
  if (a.is_v4()) {
    t[0] = 4;
    auto b = a.to_v4().to_bytes();
    std::memcpy(&t[1], b.data(), b.size());
  } else {
    t[0] = 6;
    auto b = a.to_v6().to_bytes();
    std::memcpy(&t[1], b.data(), b.size());
  }
  t[17] = static_cast<char>(ep.port() >> 8);
  t[18] = static_cast<char>(ep.port() & 0xff);
  return t;
}

std::optional<asio::ip::udp::endpoint> DtlsServerBridge::untag(const char* d, std::size_t n) {
  if (n < kTagSize || (d[0] != 4 && d[0] != 6)) return std::nullopt;
  asio::ip::address a;
  if (d[0] == 4) {
    asio::ip::address_v4::bytes_type b;
    std::memcpy(b.data(), d + 1, b.size());
    a = asio::ip::address_v4(b);
  } else {
    asio::ip::address_v6::bytes_type b;
    std::memcpy(b.data(), d + 1, b.size());
    a = asio::ip::address_v6(b);
  }
  auto port = static_cast<unsigned short>((static_cast<unsigned char>(d[17]) << 8) | static_cast<unsigned char>(d[18]));
  return udp::endpoint(a, port);
}

std::shared_ptr<asio::ip::udp::socket> DtlsServerBridge::start(error_code& ec) {
  auto proxy_end = std::make_shared<udp::socket>(io_);
  udp::endpoint lo(asio::ip::make_address("127.0.0.1"), 0);
  net_.non_blocking(true, ec);
  if (!ec) local_.open(lo.protocol(), ec);
  if (!ec) local_.bind(lo, ec);
  if (!ec) proxy_end->open(lo.protocol(), ec);
  if (!ec) proxy_end->bind(lo, ec);
  if (!ec) local_.connect(proxy_end->local_endpoint(), ec);
  if (!ec) proxy_end->connect(local_.local_endpoint(), ec);
  if (ec) return nullptr;
  net_read();
  local_read();
  return proxy_end;
}

void DtlsServerBridge::close() {
  if (closed_) return;
  end(true);
  closed_ = true;
  error_code ec;
  retx_.cancel();
  deadline_.cancel();
  net_.close(ec);
  local_.close(ec);
}

void DtlsServerBridge::net_read() {
  if (closed_) return;
  net_.async_receive_from(asio::buffer(rbuf_), from_, [self = shared_from_this()](const error_code& ec, std::size_t n) {
    if (self->closed_ || ec == asio::error::operation_aborted) return;
    if (ec && ec != asio::error::connection_refused) return;
    if (!ec) self->on_datagram(std::string(self->rbuf_.data(), n), self->from_);
    self->net_read();
  });
}

void DtlsServerBridge::on_datagram(std::string d, const udp::endpoint& from) {
  auto now = std::chrono::steady_clock::now();
  if (peer_ && from != *peer_) {
    if (now - last_heard_ < std::chrono::milliseconds(idle_ms_)) {
      if (note_) note_("dtls server: busy with " + ep_text(*peer_) + ", datagram from " + ep_text(from) + " ignored");
      return;
    }
    if (note_) note_("dtls server: " + ep_text(*peer_) + " timed out, serving " + ep_text(from));
    end(true);
  } else if (peer_ && established_ && is_client_hello(d)) {
    if (note_) note_("dtls server: " + ep_text(from) + " reconnects");
    end(false);
  }
  if (!peer_) {
    begin(from);
    if (!ssl_) return;
  }
  last_heard_ = now;
  inbox_.push_back(std::move(d));
  drive();
}

void DtlsServerBridge::begin(const udp::endpoint& p) {
  ++session_;
  peer_ = p;
  established_ = false;
  cookie_.clear();
  inbox_.clear();
  if (!ctx_ || !(ssl_ = SSL_new(ctx_))) {
    if (note_) note_("dtls server: no usable credentials, " + ep_text(p) + " ignored");
    peer_.reset();
    return;
  }
  SSL_set_app_data(ssl_, this);
  BIO* b = BIO_new(DtlsServerHooks::method());
  BIO_set_data(b, this);
  SSL_set_bio(ssl_, b, b);
  SSL_set_options(ssl_, SSL_OP_NO_QUERY_MTU | SSL_OP_COOKIE_EXCHANGE);  // HelloVerifyRequest, as mbedTLS does
  SSL_set_mtu(ssl_, 1400);
  SSL_set_accept_state(ssl_);
  deadline_.expires_after(std::chrono::milliseconds(handshake_timeout_ms_));
  deadline_.async_wait([self = shared_from_this(), s = session_](const error_code& ec) {
    if (ec || s != self->session_ || self->established_) return;
    if (self->note_) self->note_("dtls server: handshake with " + ep_text(*self->peer_) + " timed out");
    self->end(false);
  });
}

void DtlsServerBridge::end(bool close_notify) {
  ++session_;
  retx_.cancel();
  deadline_.cancel();
  if (ssl_) {
    ERR_clear_error();
    if (close_notify && established_) SSL_shutdown(ssl_);
    ERR_clear_error();
    SSL_free(ssl_);
    ssl_ = nullptr;
  }
  peer_.reset();
  established_ = false;
  inbox_.clear();
  cookie_.clear();
}

void DtlsServerBridge::drive() {
  if (!ssl_) return;
  if (!established_) {
    ERR_clear_error();
    int r = SSL_do_handshake(ssl_);
    if (r != 1) {
      int e = SSL_get_error(ssl_, r);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return arm_retx();
      if (note_) note_("dtls server: handshake with " + ep_text(*peer_) + " failed: " + describe(ssl_, r, e));
      return end(false);  // OpenSSL has sent its alert; the peer is forgotten, no URC
    }
    established_ = true;
    deadline_.cancel();
    if (note_) note_("dtls server: handshake ok with " + ep_text(*peer_));
  }
  for (;;) {
    ERR_clear_error();
    int n = SSL_read(ssl_, pbuf_.data(), static_cast<int>(pbuf_.size()));
    if (n > 0) {
      std::string out = tag(*peer_);
      out.append(pbuf_.data(), static_cast<std::size_t>(n));
      error_code ignored;
      local_.send(asio::buffer(out), 0, ignored);
      continue;
    }
    int e = SSL_get_error(ssl_, n);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) break;
    if (note_)
      note_("dtls server: " + ep_text(*peer_) +
            (e == SSL_ERROR_ZERO_RETURN ? std::string(" closed (close_notify)") : " lost: " + describe(ssl_, n, e)));
    return end(false);
  }
  ERR_clear_error();
  arm_retx();  // a retransmitted final flight may still be due
}

void DtlsServerBridge::arm_retx() {
  timeval tv{};
  if (!ssl_ || !DTLSv1_get_timeout(ssl_, &tv)) return;
  retx_.expires_after(std::chrono::milliseconds(tv.tv_sec * 1000 + tv.tv_usec / 1000));
  retx_.async_wait([self = shared_from_this(), s = session_](const error_code& ec) {
    if (ec || s != self->session_ || !self->ssl_) return;
    DTLSv1_handle_timeout(self->ssl_);
    self->drive();
  });
}

int DtlsServerBridge::bio_write(const char* data, int len) {
  if (peer_) {
    // Non-blocking; a full socket buffer or an ICMP error loses the datagram, as UDP may.
    (void)::sendto(net_.native_handle(), data, static_cast<std::size_t>(len), MSG_NOSIGNAL, peer_->data(),
                   static_cast<socklen_t>(peer_->size()));
  }
  return len;
}

int DtlsServerBridge::bio_read(char* data, int len) {
  if (inbox_.empty()) return -1;
  std::string d = std::move(inbox_.front());
  inbox_.pop_front();
  auto n = std::min<std::size_t>(d.size(), static_cast<std::size_t>(len));
  std::memcpy(data, d.data(), n);
  return static_cast<int>(n);
}

void DtlsServerBridge::local_read() {
  if (closed_) return;
  local_.async_receive(asio::buffer(lbuf_), [self = shared_from_this()](const error_code& ec, std::size_t n) {
    if (self->closed_ || ec == asio::error::operation_aborted) return;
    if (!ec) {
      if (self->established_ && self->ssl_) {
        ERR_clear_error();
        SSL_write(self->ssl_, self->lbuf_.data(), static_cast<int>(n));  // one record to the current peer
        ERR_clear_error();
      } else if (self->note_) {
        self->note_("dtls server: no session, datagram dropped");
      }
    }
    self->local_read();
  });
}

}  // namespace slmsim
