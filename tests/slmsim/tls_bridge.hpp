// slmsim: the modem side of TLS 1.2 / DTLS 1.2 (OpenSSL). The proxies stay plaintext: a bridge owns the real
// host connection and the SSL object, and hands the proxy one end of an internal loopback connection (TCP) or
// socket pair (UDP) that carries the plaintext. Byte counters of the proxies therefore count plaintext.
//
// TlsBridge (TCP client and, with --native-tls, server): handshake first; the proxy end is handed over only after
// it succeeded. Then bytes are relayed both ways: plaintext EOF from the proxy → close_notify + FIN, a reset of
// the proxy end → RST; close_notify/FIN from the peer → FIN to the proxy, a peer reset → RST to the proxy.
// DtlsBridge (UDP client): one DTLS record per datagram; the peer's close_notify or a fatal alert → lost().
#pragma once

#include <openssl/ssl.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <functional>
#include <memory>
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

}  // namespace slmsim
