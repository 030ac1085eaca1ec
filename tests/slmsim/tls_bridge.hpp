// slmsim: the modem side of TLS 1.2 / DTLS 1.2 (OpenSSL). The proxies stay plaintext: a bridge owns the real
// host connection and the SSL object, and hands the proxy one end of an internal loopback connection (TCP) or
// socket pair (UDP) that carries the plaintext. Byte counters of the proxies therefore count plaintext.
//
// TlsBridge (TCP client and, with --native-tls, server): handshake first; the proxy end is handed over only after
// it succeeded. Then bytes are relayed both ways: plaintext EOF from the proxy → close_notify + FIN, a reset of
// the proxy end → RST; close_notify/FIN from the peer → FIN to the proxy, a peer reset → RST to the proxy.
// DtlsBridge (UDP client): one DTLS record per datagram; the peer's close_notify or a fatal alert → lost().
// DtlsServerBridge (UDP server, --native-tls): owns the bound server socket and serves one DTLS peer at a time the
// way Zephyr's native DTLS server socket does (see the class).
#pragma once

#include <openssl/ssl.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <functional>
#include <chrono>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cred_store.hpp"

namespace slmsim {

struct TlsOptions {
  bool server = false;
  bool dtls = false;
  int peer_verify = 2;   // 0 none, 1 optional (handshake succeeds even if verification fails), 2 required
  std::string hostname;  // client: empty = no hostname check and no SNI; a name or an IP literal otherwise
};

// Builds an SSL_CTX (TLS 1.2 or DTLS 1.2 only) from the credentials under sec_tag: type 0 CA(s) for
// verification, 1+2 certificate and key (client certificate, or the server's own), 3+4 PSK and identity.
// Returns nullptr (err set) only on unusable credentials; missing credentials fail in the handshake instead.
SSL_CTX* make_ssl_ctx(const CredStore& store, std::int64_t sec_tag, const TlsOptions& opt, std::string& err);

class TlsBridge : public std::enable_shared_from_this<TlsBridge> {
 public:
  using tcp = boost::asio::ip::tcp;
  // err: 0 on success (proxy_end set), or a negative newlib errno: -113 handshake failure, -116 timeout.
  using Done = std::function<void(int err, std::shared_ptr<tcp::socket> proxy_end)>;

  // Takes a reference on ctx.
  TlsBridge(boost::asio::io_context& io, tcp::socket net, SSL_CTX* ctx, const TlsOptions& opt);
  ~TlsBridge();
  TlsBridge(const TlsBridge&) = delete;
  TlsBridge& operator=(const TlsBridge&) = delete;

  void start(Done done, int handshake_timeout_ms);
  // Before the handshake finished: stop without calling Done. After: tear both sides down.
  void abort();
  const std::string& failure() const { return failure_; }  // why the handshake failed (for traces)

 private:
  void step();
  void fail(int err, std::string why);
  void succeed();
  void down_read();   // net (TLS) → proxy
  void up_read();     // proxy → net (TLS)
  void up_write();
  void teardown(bool rst);

  boost::asio::io_context& io_;
  tcp::socket net_;
  tcp::socket inner_;
  SSL_CTX* ctx_;
  SSL* ssl_ = nullptr;
  TlsOptions opt_;
  boost::asio::steady_timer timer_;
  Done done_;
  bool finished_ = false;  // handshake over (either way)
  bool closed_ = false;
  std::string failure_;
  std::vector<char> down_buf_, up_buf_;
  std::size_t up_len_ = 0, up_off_ = 0;
};

class DtlsBridge : public std::enable_shared_from_this<DtlsBridge> {
 public:
  using udp = boost::asio::ip::udp;
  using Done = std::function<void(int err, std::shared_ptr<udp::socket> proxy_end)>;
  using Lost = std::function<void()>;

  // net must be connected to the peer. Takes a reference on ctx.
  DtlsBridge(boost::asio::io_context& io, udp::socket net, SSL_CTX* ctx, const TlsOptions& opt);
  ~DtlsBridge();
  DtlsBridge(const DtlsBridge&) = delete;
  DtlsBridge& operator=(const DtlsBridge&) = delete;

  void start(Done done, Lost lost, int handshake_timeout_ms);
  void close();  // close_notify (if connected), close both sockets; no more callbacks
  const std::string& failure() const { return failure_; }

 private:
  void step();
  void fail(int err, std::string why);
  void succeed();
  void local_read();
  void net_read();
  void lost();

  boost::asio::io_context& io_;
  udp::socket net_;
  udp::socket local_;
  SSL_CTX* ctx_;
  SSL* ssl_ = nullptr;
  TlsOptions opt_;
  boost::asio::steady_timer deadline_, retx_;
  Done done_;
  Lost lost_;
  bool finished_ = false, connected_ = false, closed_ = false;
  std::uint64_t wait_gen_ = 0;
  std::string failure_;
  std::vector<char> buf_;
};

// The DTLS server of #XUDPSVR=<op>,<port>,<sec_tag> (native TLS), modelled on Zephyr's DTLS server socket
// (sockets_tls.c), which SLM uses: the socket is locked to one peer address at a time. The first datagram from an
// address starts a handshake (with a HelloVerifyRequest cookie round, as mbedTLS does); datagrams from any other
// address are ignored until that session ends: the peer's close_notify or a fatal alert, a failed or timed-out
// handshake, a new ClientHello from the same address (a client reconnect), or idle_ms (CONFIG_NET_SOCKETS_DTLS_TIMEOUT,
// 5 s) without a datagram from the peer — the next datagram from another address then replaces it (close_notify to
// the old one). Nothing of this reaches the UART; peer verification is off (mbedTLS's server default, SLM sets none).
//
// The proxy gets one end of a local socket pair (start()). Down: each decrypted datagram arrives there prefixed with
// the peer's address (tag(), kTagSize bytes; untag() reads it), so #XUDPDATA can print it. Up: each datagram the
// proxy sends there becomes one DTLS record to the current peer, or is dropped when no session is established.
class DtlsServerBridge : public std::enable_shared_from_this<DtlsServerBridge> {
 public:
  using udp = boost::asio::ip::udp;
  using Note = std::function<void(const std::string&)>;
  static constexpr std::size_t kTagSize = 19;  // family (4/6), 16 address bytes, port (big-endian)

  // net: bound, not connected. ctx: a DTLS server context (nullptr: unusable credentials, every handshake fails).
  DtlsServerBridge(boost::asio::io_context& io, udp::socket net, SSL_CTX* ctx, int handshake_timeout_ms, int idle_ms,
                   Note note);
  ~DtlsServerBridge();
  DtlsServerBridge(const DtlsServerBridge&) = delete;
  DtlsServerBridge& operator=(const DtlsServerBridge&) = delete;

  std::shared_ptr<udp::socket> start(boost::system::error_code& ec);  // the proxy's end of the local pair
  void close();  // close_notify to an established peer, close everything; idempotent
  bool established() const { return established_; }
  std::optional<udp::endpoint> peer() const { return established_ ? peer_ : std::nullopt; }

  static std::string tag(const udp::endpoint& ep);
  static std::optional<udp::endpoint> untag(const char* data, std::size_t n);

 private:
  friend struct DtlsServerHooks;
  void net_read();
  void local_read();
  void on_datagram(std::string d, const udp::endpoint& from);
  void begin(const udp::endpoint& peer);
  void end(bool close_notify);
  void drive();
  void arm_retx();
  int bio_write(const char* data, int len);
  int bio_read(char* data, int len);

  boost::asio::io_context& io_;
  udp::socket net_;
  udp::socket local_;
  SSL_CTX* ctx_;
  int handshake_timeout_ms_, idle_ms_;
  Note note_;
  boost::asio::steady_timer retx_, deadline_;
  SSL* ssl_ = nullptr;
  std::optional<udp::endpoint> peer_;
  bool established_ = false, closed_ = false;
  std::chrono::steady_clock::time_point last_heard_;
  std::deque<std::string> inbox_;  // ciphertext datagrams from peer_ that the SSL has not read yet
  std::uint64_t session_ = 0;      // bumped when a session ends: stale timers bail out
  std::vector<char> rbuf_, lbuf_, pbuf_;
  std::string cookie_;  // this session's HelloVerifyRequest cookie
  udp::endpoint from_;
};

}  // namespace slmsim
