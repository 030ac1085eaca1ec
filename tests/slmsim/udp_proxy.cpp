// slmsim: the UDP proxy (#XUDPCLI, #XUDPSVR, #XUDPSEND, #XUDPDATA) backed by a real host UDP
// socket. One proxy: a connected client, or a server that replies to the last peer heard from.
// DTLS (client with a sec_tag; server with a sec_tag under --native-tls) runs in a bridge (tls_bridge.hpp) and the
// proxy's socket carries plaintext to and from the bridge.
#include <boost/asio/post.hpp>

#include "newlib_errno.hpp"
#include "simulator.hpp"
#include "trace.hpp"

namespace slmsim {

namespace asio = boost::asio;
using boost::system::error_code;

void Simulator::cmd_udpcli(const Cmd& c) {
  using K = Cmd::Kind;
  if (c.kind == K::Read) {
    info("#XUDPCLI: " + std::to_string(udp_.role == UdpRole::Client ? udp_.handle : -1) + "," +
         std::to_string(udp_.family));
    return finish(true);
  }
  if (c.kind == K::Test) {
    if (p_.tcpcli_verify_params)
      info("#XUDPCLI: (0,1,2),<url>,<port>,<sec_tag>,<use_dtls_cid>,<peer_verify>,<hostname_verify>");
    else if (p_.udpcli_dtls_cid)
      info("#XUDPCLI: (0,1,2),<url>,<port>,<sec_tag>,<use_dtls_cid>");
    else
      info("#XUDPCLI: (0,1,2),<url>,<port>,<sec_tag>");
    return finish(true);
  }
  if (c.kind != K::Set) return finish(false);
  auto ps = params(c);
  if (!ps || (*ps)[0].type != Param::Type::Int) return finish(false);
  auto op = (*ps)[0].i;
  if (op == 0) {
    if (ps->size() != 1) return finish(false);
    if (udp_.role == UdpRole::Client) {
      udp_close(false, 0);
      info("#XUDPCLI: 0,\"disconnected\"");
    }
    return finish(true);
  }
  if (op != 1 && op != 2) return finish(false);
  std::size_t max = p_.proxy_client_cid ? 8 : p_.tcpcli_verify_params ? 7 : (p_.udpcli_dtls_cid ? 5 : 4);
  if (ps->size() < 3 || ps->size() > max) return finish(false);
  // v3.1 <cid>: binds to that PDN first. The simulator has the default PDN (0) only; binding to another fails.
  if (ps->size() >= 8 && (*ps)[7].type == Param::Type::Int && (*ps)[7].i != 0) return finish(false);
  if ((*ps)[1].type != Param::Type::Str || (*ps)[2].type != Param::Type::Int) return finish(false);
  for (std::size_t i = 3; i < ps->size(); ++i)
    if ((*ps)[i].type != Param::Type::Int) return finish(false);
  if (ps->size() >= 4 && (*ps)[3].i < 0) return finish(false);  // sec_tag must be ≥ 0
  const std::string url = (*ps)[1].s;
  auto port = (*ps)[2].i;
  if (url.size() > 127 || port < 0 || port > 65535) return finish(false);
  if (udp_.role != UdpRole::None) return finish(false);  // "socket is in use"
  // DTLS: <sec_tag>[,<use_dtls_cid>[,<peer_verify>[,<hostname_verify>]]]. The CID setting is accepted and
  // ignored (OpenSSL 3.0 has no DTLS connection IDs). ≤v2.5 leaves peer_verify at the modem default (required).
  bool dtls = ps->size() >= 4;
  TlsOptions topt;
  topt.dtls = true;
  int cid = 0, hostname_verify = 1;
  if (ps->size() >= 5) cid = static_cast<int>((*ps)[4].i);
  if (ps->size() >= 6) topt.peer_verify = static_cast<int>((*ps)[5].i);
  if (ps->size() >= 7) hostname_verify = static_cast<int>((*ps)[6].i);
  if (cid < 0 || cid > 2 || topt.peer_verify < 0 || topt.peer_verify > 2 || hostname_verify < 0 ||
      hostname_verify > 1)
    return finish(false);
  if (p_.tcpcli_verify_params && hostname_verify == 1) topt.hostname = url;

  int fd = alloc_fd();
  if (fd < 0) return finish(false);
  auto fail = [this, &fd](int err) {
    free_fd(fd);
    info("#XUDPCLI: " + std::to_string(err) + ",\"not connected\"");
    finish(false);
  };
  error_code ec;
  (void)asio::ip::make_address(url, ec);
  bool literal = !ec;
  if (!attached()) return fail(literal ? -nerr::ENETDOWN_ : nerr::DNS_EAI_AGAIN_);
  auto addrs = cfg_.net.resolve(url, op == 1 ? 1 : 2);
  if (addrs.empty()) return fail(nerr::DNS_EAI_NONAME_);
  auto target = cfg_.net.route(addrs.front());
  auto sock = std::make_shared<udp::socket>(io_);
  bool blackhole = false;
  if (target.route == NetMap::Route::Blackhole) {
    if (cfg_.unmapped_unreachable) return fail(-nerr::EHOSTUNREACH_);
    if (dtls) {
      // Nobody answers the ClientHello: the handshake times out.
      connect_timer_.expires_after(std::chrono::milliseconds(cfg_.tls_handshake_timeout_ms));
      connect_timer_.async_wait([this, e = epoch_, fd, op](const error_code& ec2) {
        if (ec2 || e != epoch_) return;
        udp_dtls_done(-nerr::ETIMEDOUT_, nullptr, fd, static_cast<int>(op));
      });
      return;
    }
    blackhole = true;  // UDP connect has no handshake: "connected", datagrams vanish
    sock->open(addrs.front().is_v4() ? udp::v4() : udp::v6(), ec);
  } else {
    udp::endpoint ep(target.address, static_cast<unsigned short>(port));
    sock->open(ep.protocol(), ec);
    if (!ec) sock->connect(ep, ec);
  }
  if (ec) return fail(-nerr::from(ec));
  if (dtls) {
    auto e = epoch_;
    udp_.dtls = start_dtls_client(
        std::move(*sock), (*ps)[3].i, topt,
        [this, e, fd, op](int err, const std::shared_ptr<DtlsBridge>& b, std::shared_ptr<udp::socket> plain) {
          if (e != epoch_ || udp_.dtls != b) return;
          udp_dtls_done(err, std::move(plain), fd, static_cast<int>(op));
        },
        [this, e](const std::shared_ptr<DtlsBridge>& b) {
          if (e != epoch_ || udp_.dtls != b) return;
          udp_close(true, -nerr::ECONNRESET_);  // close_notify or a fatal alert from the peer
        });
    if (!udp_.dtls) return fail(-nerr::ECONNABORTED_);
    return;
  }
  udp_open(UdpRole::Client, sock, fd, static_cast<int>(op), blackhole);
  info("#XUDPCLI: " + std::to_string(fd) + ",\"connected\"");
  finish(true);
  udp_start_read();
}

void Simulator::udp_dtls_done(int err, std::shared_ptr<udp::socket> plain, int fd, int family) {
  if (err) {
    if (udp_.dtls) udp_.dtls->close();
    udp_.dtls.reset();
    free_fd(fd);
    info("#XUDPCLI: " + std::to_string(err) + ",\"not connected\"");
    return finish(false);
  }
  udp_open(UdpRole::Client, std::move(plain), fd, family, false);
  info("#XUDPCLI: " + std::to_string(fd) + ",\"connected\"");
  finish(true);
  udp_start_read();
}

void Simulator::cmd_udpsvr(const Cmd& c) {
  using K = Cmd::Kind;
  if (c.kind == K::Read) {
    info("#XUDPSVR: " + std::to_string(udp_.role == UdpRole::Server ? udp_.handle : -1) + "," +
         std::to_string(udp_.family));
    return finish(true);
  }
  if (c.kind == K::Test) {
    info(p_.udpsvr_sec_tag ? "#XUDPSVR: (0,1,2),<port>,<sec_tag>" : "#XUDPSVR: (0,1,2),<port>");
    return finish(true);
  }
  if (c.kind != K::Set) return finish(false);
  auto ps = params(c);
  if (!ps || (*ps)[0].type != Param::Type::Int) return finish(false);
  auto op = (*ps)[0].i;
  if (op == 0) {
    if (ps->size() != 1 || udp_.role != UdpRole::Server) return finish(false);
    udp_close(false, 0);
    info("#XUDPSVR: 0,\"stopped\"");
    return finish(true);
  }
  if (op != 1 && op != 2) return finish(false);
  std::size_t max = p_.udpsvr_sec_tag ? 3 : 2;
  if (ps->size() < 2 || ps->size() > max) return finish(false);
  for (std::size_t i = 1; i < ps->size(); ++i)
    if ((*ps)[i].type != Param::Type::Int) return finish(false);
  auto port = (*ps)[1].i;
  if (port < 0 || port > 65535) return finish(false);
  if (udp_.role != UdpRole::None) return finish(false);
  auto fail = [this](int err) {
    // v2.8+ prints a failure line, with the "#UDPSVR" typo; v2.7 and earlier print none.
    if (p_.udpsvr_fail_line) info("#UDPSVR: " + std::to_string(err) + ",\"not started\"");
    finish(false);
  };
  bool dtls = ps->size() == 3;
  if (dtls && !cfg_.native_tls) return fail(-nerr::ENOTSUP_);  // the modem cannot be a DTLS server
  if (!attached()) return fail(-nerr::ENETDOWN_);
  int fd = alloc_fd();
  if (fd < 0) return finish(false);
  error_code ec;
  auto addr = server_address(op);
  auto sock = std::make_shared<udp::socket>(io_);
  udp::endpoint ep(addr, static_cast<unsigned short>(port));
  sock->open(ep.protocol(), ec);
  if (!ec) sock->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) sock->bind(ep, ec);
  std::shared_ptr<DtlsServerBridge> bridge;
  if (!ec && dtls) {
    // Credentials are loaded at start (a sec_tag without usable ones starts, and every handshake then fails).
    TlsOptions topt;
    topt.server = true;
    topt.dtls = true;
    std::string why;
    auto tag = (*ps)[2].i;
    SSL_CTX* ctx = make_ssl_ctx(creds_, tag, topt, why);
    if (!ctx && trace_) trace_->note("dtls server: sec_tag " + std::to_string(tag) + ": " + why);
    bridge = std::make_shared<DtlsServerBridge>(
        io_, std::move(*sock), ctx, cfg_.tls_handshake_timeout_ms, cfg_.dtls_server_timeout_ms,
        [this](const std::string& text) {
          if (trace_) trace_->note(text);
        });
    if (ctx) SSL_CTX_free(ctx);
    sock = bridge->start(ec);
    if (ec) bridge->close();
  }
  if (ec) {
    free_fd(fd);
    return fail(-nerr::from(ec));
  }
  udp_open(UdpRole::Server, sock, fd, static_cast<int>(op), false);
  udp_.dtls_server = bridge;
  info("#XUDPSVR: " + std::to_string(fd) + ",\"started\"");
  finish(true);
  udp_start_read();
}

void Simulator::udp_close(bool urc, int cause) {
  auto role = udp_.role;
  if (udp_.dtls) udp_.dtls->close();  // close_notify to the peer
  udp_.dtls.reset();
  if (udp_.dtls_server) udp_.dtls_server->close();  // close_notify to an established peer
  udp_.dtls_server.reset();
  ++udp_.gen;
  retire(udp_.sock);
  free_fd(udp_.handle);
  udp_.role = UdpRole::None;
  udp_.last_peer.reset();
  if (!urc) return;
  std::string text = role == UdpRole::Client ? "#XUDPCLI: " + std::to_string(cause) + ",\"disconnected\""
                                             : "#XUDPSVR: " + std::to_string(cause) + ",\"stopped\"";
  if (mode_ == Mode::Command) return proxy_urc({crlf(text)}, 1);
  dm_link_lost(cause, DmTarget::Udp, crlf(text));
}

void Simulator::udp_open(UdpRole role, std::shared_ptr<udp::socket> sock, int fd, int family, bool blackhole) {
  udp_.role = role;
  udp_.sock = std::move(sock);
  udp_.handle = fd;
  udp_.family = family;
  udp_.blackhole = blackhole;
  udp_.last_peer.reset();
  ++udp_.gen;
}

void Simulator::udp_start_read() {
  auto sock = udp_.sock;
  if (!sock) return;
  auto g = udp_.gen;
  // From the DTLS server's bridge each datagram comes with its peer's address in front.
  std::size_t tag = udp_.dtls_server ? DtlsServerBridge::kTagSize : 0;
  when_tx_ready([this, sock, g, tag] {
    if (g != udp_.gen) return;
    auto buf = std::make_shared<std::vector<char>>(tag + p_.rx_chunk);
    auto from = std::make_shared<udp::endpoint>();
    sock->async_receive_from(asio::buffer(*buf), *from,
                             [this, sock, g, buf, from, tag](const error_code& ec, std::size_t n) {
                               if (g != udp_.gen) return;
                               if (ec == asio::error::operation_aborted) return;
                               // ICMP errors on a connected UDP socket are not reported by the modem.
                               if (!ec && !tag) udp_deliver(std::string(buf->data(), n), *from);
                               if (!ec && tag) {
                                 if (auto peer = DtlsServerBridge::untag(buf->data(), n))
                                   udp_deliver(std::string(buf->data() + tag, n - tag), *peer);
                               }
                               udp_start_read();
                             });
  });
}

void Simulator::udp_deliver(const std::string& data, const udp::endpoint& from) {
  ++stats_.udp_down_datagrams;
  std::string peer;
  if (udp_.role == UdpRole::Server) {
    udp_.last_peer = from;
    udp_stale_peer_ = "\"" + from.address().to_string() + "\"," + std::to_string(from.port());
    peer = udp_stale_peer_;
  } else {
    // The client never fills in proxy.remote: a zeroed sockaddr prints as "::",0 — or a stale
    // server peer if a server ran earlier in this boot.
    peer = udp_stale_peer_.empty() ? "\"::\",0" : udp_stale_peer_;
    // v3.0 fills in the peer for clients too.
    if (p_.udpdata_client_peer) peer = "\"" + from.address().to_string() + "\"," + std::to_string(from.port());
  }
  if (mode_ == Mode::Data) return emit(data);
  if (mode_ == Mode::Null) return;
  std::string header = recv_header("#XUDPDATA", data.size(), p_.udpdata_with_peer ? peer : "");
  if (p_.header_first) proxy_urc({header, data}, 1);
  else proxy_urc({data, header}, 1);
}

void Simulator::udp_send(std::string data, std::function<void(const error_code&, std::size_t)> done) {
  auto sock = udp_.sock;
  auto buf = std::make_shared<std::string>(std::move(data));
  auto cb = [this, buf, done](const error_code& ec, std::size_t n) {
    (void)buf;  // kept alive until the send completes
    if (!ec) ++stats_.udp_up_datagrams;
    if (done) done(ec, n);
  };
  if (!sock) return asio::post(io_, [cb] { cb(asio::error::not_connected, 0); });
  if (udp_.role == UdpRole::Client) {
    if (udp_.blackhole) return asio::post(io_, [cb, n = buf->size()] { cb({}, n); });
    sock->async_send(asio::buffer(*buf), cb);
  } else {
    if (udp_.dtls_server) {
      // Zephyr's DTLS layer ignores the address and sends to its session's peer; no session, no send.
      if (!udp_.dtls_server->established()) return asio::post(io_, [cb] { cb(asio::error::not_connected, 0); });
      return sock->async_send(asio::buffer(*buf), cb);  // one record, encrypted by the bridge
    }
    if (!udp_.last_peer) return asio::post(io_, [cb] { cb(asio::error::not_connected, 0); });
    sock->async_send_to(asio::buffer(*buf), *udp_.last_peer, cb);
  }
}

void Simulator::cmd_udpsend(const Cmd& c) {
  using K = Cmd::Kind;
  if (c.kind == K::Action) {
    if (udp_.role == UdpRole::None) return finish(false);  // -ENOTCONN
    return enter_data_mode(DmTarget::Udp);
  }
  if (c.kind != K::Set) return finish(false);
  auto ps = params(c);
  if (ps && p_.send_flags && send_flags_enter_data_mode(*ps)) {
    if (udp_.role == UdpRole::None) return finish(false);  // -ENOTCONN
    return enter_data_mode(DmTarget::Udp);
  }
  if (ps && p_.send_flags && ps->size() == 2 && (*ps)[1].type == Param::Type::Int) ps->pop_back();  // the flags
  if (!ps || ps->size() != 1 || (*ps)[0].type != Param::Type::Str) return finish(false);
  if ((*ps)[0].s.size() > p_.max_payload) return finish(false);
  if (udp_.role == UdpRole::None) return finish(false);
  if (udp_.dtls_server) {
    if (!udp_.dtls_server->established()) return finish(false);  // no DTLS session: ENOTCONN
  } else if (udp_.role == UdpRole::Server && !udp_.last_peer) {
    return finish(false);  // sendto fails
  }
  udp_send((*ps)[0].s, [this, e = epoch_](const error_code& ec, std::size_t n) {
    if (e != epoch_) return;
    if (ec) return finish(false);
    info("#XUDPSEND: " + std::to_string(n));
    finish(true);
  });
}

}  // namespace slmsim
