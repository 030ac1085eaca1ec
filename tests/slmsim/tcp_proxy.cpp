// slmsim: the TCP proxy (#XTCPCLI, #XTCPSVR, #XTCPSEND, #XTCPHANGUP, #XTCPDATA) backed by real
// non-blocking host sockets. One proxy: a client, or a server with at most one peer (extra peers
// are accepted and closed without a URC).
#include <boost/asio/connect.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include "newlib_errno.hpp"
#include "simulator.hpp"
#include "trace.hpp"

namespace slmsim {

namespace asio = boost::asio;
using boost::system::error_code;

std::string Simulator::recv_header(const std::string& tag, std::size_t n, const std::string& peer) const {
  std::string h = "\r\n" + tag + ": " + std::to_string(n);
  if (!peer.empty()) h += "," + peer;
  return h + "\r\n";
}

void Simulator::cmd_tcpcli(const Cmd& c) {
  using K = Cmd::Kind;
  if (c.kind == K::Read) {
    info("#XTCPCLI: " + std::to_string(tcp_.role == TcpRole::Client ? tcp_.handle : -1) + "," +
         std::to_string(tcp_.family));
    return finish(true);
  }
  if (c.kind == K::Test) {
    info(p_.proxy_client_cid
             ? "#XTCPCLI: (0,1,2),<url>,<port>,<sec_tag>,<peer_verify>,<hostname_verify>,<cid>"
         : p_.tcpcli_verify_params ? "#XTCPCLI: (0,1,2),<url>,<port>,<sec_tag>,<peer_verify>,<hostname_verify>"
                                   : "#XTCPCLI: (0,1,2),<url>,<port>,<sec_tag>");
    return finish(true);
  }
  if (c.kind != K::Set) return finish(false);
  auto ps = params(c);
  if (!ps || (*ps)[0].type != Param::Type::Int) return finish(false);
  auto op = (*ps)[0].i;
  if (op == 0) {
    if (ps->size() != 1) return finish(false);
    if (tcp_.role == TcpRole::Client) {
      tcp_close_client();
      info("#XTCPCLI: 0,\"disconnected\"");
    }
    return finish(true);
  }
  if (op != 1 && op != 2) return finish(false);
  std::size_t max = p_.proxy_client_cid ? 7 : p_.tcpcli_verify_params ? 6 : 4;
  if (ps->size() < 3 || ps->size() > max) return finish(false);
  if ((*ps)[1].type != Param::Type::Str || (*ps)[2].type != Param::Type::Int) return finish(false);
  for (std::size_t i = 3; i < ps->size(); ++i)
    if ((*ps)[i].type != Param::Type::Int) return finish(false);
  const std::string url = (*ps)[1].s;
  auto port = (*ps)[2].i;
  if (url.size() > 127 || port < 0 || port > 65535) return finish(false);
  // TLS: sec_tag -1 (SEC_TAG_TLS_INVALID) is plain TCP. v2.6+: peer_verify (default 2, required) and
  // hostname_verify (default 1: TLS_HOSTNAME = <url>); ≤v2.5: peer verification required, no hostname.
  std::int64_t sec_tag = ps->size() >= 4 ? (*ps)[3].i : -1;
  TlsOptions topt;
  int hostname_verify = 1;
  if (ps->size() >= 5) topt.peer_verify = static_cast<int>((*ps)[4].i);
  if (ps->size() >= 6) hostname_verify = static_cast<int>((*ps)[5].i);
  if (topt.peer_verify < 0 || topt.peer_verify > 2 || hostname_verify < 0 || hostname_verify > 1)
    return finish(false);
  // v3.1 <cid>: binds to that PDN first. The simulator has the default PDN (0) only; binding to another fails.
  if (ps->size() >= 7 && (*ps)[6].i != 0) return finish(false);
  if (p_.tcpcli_verify_params && hostname_verify == 1) topt.hostname = url;
  if (tcp_busy()) return finish(false);  // "Proxy is running": no intermediate line

  tcp_.sec_tag = sec_tag;
  tcp_.tls_opt = topt;
  int fd = alloc_fd();
  if (fd < 0) return finish(false);  // socket() failed: just ERROR
  tcp_.pending_handle = fd;
  tcp_.connecting = true;
  tcp_.family = static_cast<int>(op);

  boost::system::error_code ec;
  (void)asio::ip::make_address(url, ec);
  bool literal = !ec;
  if (!attached()) return tcp_fail_connect(literal ? -nerr::ENETDOWN_ : nerr::DNS_EAI_AGAIN_);
  auto addrs = cfg_.net.resolve(url, op == 1 ? 1 : 2);
  if (addrs.empty()) return tcp_fail_connect(nerr::DNS_EAI_NONAME_);
  auto target = cfg_.net.route(addrs.front());
  auto e = epoch_;
  if (target.route == NetMap::Route::Blackhole) {
    if (cfg_.unmapped_unreachable) return tcp_fail_connect(-nerr::EHOSTUNREACH_);
    connect_timer_.expires_after(std::chrono::milliseconds(cfg_.connect_timeout_ms));
    connect_timer_.async_wait([this, e](const error_code& ec2) {
      if (ec2 || e != epoch_ || !tcp_.connecting) return;
      tcp_fail_connect(-nerr::ETIMEDOUT_);
    });
    return;
  }
  auto sock = std::make_shared<tcp::socket>(io_);
  tcp_.sock = sock;
  connect_timer_.expires_after(std::chrono::milliseconds(std::max(cfg_.connect_timeout_ms, 1000)));
  connect_timer_.async_wait([this, e, sock](const error_code& ec2) {
    if (ec2 || e != epoch_ || !tcp_.connecting) return;
    error_code ignored;
    sock->cancel(ignored);  // the connect handler reports ETIMEDOUT
  });
  tcp::endpoint ep(target.address, static_cast<unsigned short>(port));
  sock->async_connect(ep, [this, e, sock](const error_code& ec2) {
    if (e != epoch_ || tcp_.sock != sock) return;
    tcp_connect_done(ec2, e);
  });
}

void Simulator::tcp_connect_done(const error_code& ec, std::uint64_t) {
  connect_timer_.cancel();
  if (ec) {
    int err = (ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor) ? nerr::ETIMEDOUT_
                                                                                          : nerr::from(ec);
    tcp_.sock.reset();
    return tcp_fail_connect(-err);
  }
  if (tcp_.sec_tag != -1) {
    // TLS in the modem: the handshake runs before "connected"; the proxy then sees plaintext only.
    auto bridge = start_tls_client(std::move(*tcp_.sock), tcp_.sec_tag, tcp_.tls_opt,
                                   [this, e = epoch_](int err, const std::shared_ptr<TlsBridge>& b,
                                                      std::shared_ptr<tcp::socket> plain) {
                                     if (e != epoch_ || tcp_.tls != b) return;
                                     tcp_tls_done(err, std::move(plain));
                                   });
    tcp_.sock.reset();
    if (!bridge) return tcp_fail_connect(-nerr::ECONNABORTED_);
    tcp_.tls = bridge;
    return;
  }
  tcp_.connecting = false;
  tcp_.role = TcpRole::Client;
  tcp_.handle = tcp_.pending_handle;
  tcp_.pending_handle = -1;
  ++tcp_.gen;
  ++stats_.tcp_connects;
  info("#XTCPCLI: " + std::to_string(tcp_.handle) + ",\"connected\"");
  finish(true);
  tcp_start_read();
}

void Simulator::tcp_tls_done(int err, std::shared_ptr<tcp::socket> plain) {
  tcp_.tls.reset();
  if (err) return tcp_fail_connect(err);
  tcp_.sock = std::move(plain);
  tcp_.sec_tag = -1;  // the handshake is over: from here on it is the plain proxy
  tcp_connect_done({}, epoch_);
}

void Simulator::tcp_fail_connect(int err) {
  connect_timer_.cancel();
  tcp_.connecting = false;
  tcp_.sock.reset();
  if (tcp_.tls) tcp_.tls->abort();
  tcp_.tls.reset();
  tcp_.sec_tag = -1;
  free_fd(tcp_.pending_handle);
  info("#XTCPCLI: " + std::to_string(err) + ",\"not connected\"");
  finish(false);
}

void Simulator::tcp_abort_writes() {
  auto q = std::move(tcp_.wq);
  tcp_.wq.clear();
  tcp_.writing = false;
  for (auto& [data, done] : q) {
    if (done) asio::post(io_, [done = std::move(done)] { done(asio::error::operation_aborted, 0); });
  }
}

void Simulator::tcp_close_client() {
  ++tcp_.gen;
  retire(tcp_.sock, !tcp_abortive_);  // abortive (peer-reset): no FIN, the close sends RST
  tcp_abortive_ = false;
  tcp_abort_writes();
  free_fd(tcp_.handle);
  tcp_.role = TcpRole::None;
}

void Simulator::tcp_close_peer() {
  ++tcp_.gen;
  retire(tcp_.sock, !tcp_abortive_);  // abortive (peer-reset): no FIN, the close sends RST
  tcp_abortive_ = false;
  tcp_abort_writes();
  free_fd(tcp_.peer);
}

void Simulator::tcp_stop_server() {
  tcp_close_peer();
  if (tcp_.tls) tcp_.tls->abort();  // a peer still in its handshake
  tcp_.tls.reset();
  tcp_.sec_tag = -1;
  ++tcp_.agen;
  retire(tcp_.acceptor);
  free_fd(tcp_.listen);
  tcp_.role = TcpRole::None;
}

void Simulator::cmd_tcpsvr(const Cmd& c) {
  using K = Cmd::Kind;
  if (c.kind == K::Read) {
    bool srv = tcp_.role == TcpRole::Server;
    info("#XTCPSVR: " + std::to_string(srv ? tcp_.listen : -1) + "," + std::to_string(srv ? tcp_.peer : -1) + "," +
         std::to_string(tcp_.family));
    return finish(true);
  }
  if (c.kind == K::Test) {
    info("#XTCPSVR: (0,1,2),<port>,<sec_tag>");
    return finish(true);
  }
  if (c.kind != K::Set) return finish(false);
  auto ps = params(c);
  if (!ps || (*ps)[0].type != Param::Type::Int) return finish(false);
  auto op = (*ps)[0].i;
  if (op == 0) {
    if (ps->size() != 1 || tcp_.role != TcpRole::Server) return finish(false);
    if (tcp_.sock) {
      tcp_close_peer();
      info("#XTCPSVR: 0,\"disconnected\"");
    }
    tcp_stop_server();
    info("#XTCPSVR: 0,\"stopped\"");
    return finish(true);
  }
  if (op != 1 && op != 2) return finish(false);
  if (ps->size() < 2 || ps->size() > 3 || (*ps)[1].type != Param::Type::Int) return finish(false);
  if (ps->size() == 3 && (*ps)[2].type != Param::Type::Int) return finish(false);
  auto port = (*ps)[1].i;
  if (port < 0 || port > 65535) return finish(false);
  if (tcp_busy()) return finish(false);
  if (ps->size() == 3 && !cfg_.native_tls) {
    // No native TLS in this build: the modem cannot be a TLS server.
    if (p_.tcpsvr_sec_tag_wedges) {
      (void)alloc_fd();      // the socket leaks…
      tcp_.wedged = true;    // …and proxy.sock stays set: busy until reboot
    }
    return finish(false);
  }
  auto fail = [this](int err) {
    info("#XTCPSVR: " + std::to_string(err) + ",\"not started\"");
    finish(false);
  };
  if (!attached()) return fail(-nerr::ENETDOWN_);
  int fd = alloc_fd();
  if (fd < 0) return finish(false);
  error_code ec;
  auto addr = server_address(op);
  auto acc = std::make_shared<tcp::acceptor>(io_);
  tcp::endpoint ep(addr, static_cast<unsigned short>(port));
  acc->open(ep.protocol(), ec);
  if (!ec) acc->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acc->bind(ep, ec);
  if (!ec) acc->listen(1, ec);
  if (ec) {
    free_fd(fd);
    return fail(-nerr::from(ec));
  }
  tcp_.role = TcpRole::Server;
  tcp_.sec_tag = ps->size() == 3 ? (*ps)[2].i : -1;  // native TLS: a TLS server
  tcp_.acceptor = acc;
  tcp_.listen = fd;
  tcp_.family = static_cast<int>(op);
  ++tcp_.agen;
  info("#XTCPSVR: " + std::to_string(fd) + ",\"started\"");
  finish(true);
  tcp_accept_loop();
}

void Simulator::tcp_accept_loop() {
  auto acc = tcp_.acceptor;
  if (!acc) return;
  acc->async_accept([this, acc, g = tcp_.agen](const error_code& ec, tcp::socket s) {
    if (g != tcp_.agen) return;
    if (ec) {
      if (ec != asio::error::operation_aborted) tcp_accept_loop();
      return;
    }
    error_code ignored;
    if (tcp_.sock || tcp_.tls) {
      s.close(ignored);  // "Full. Close connection." — no URC
    } else if (tcp_.sec_tag != -1) {
      tcp_tls_accept(std::move(s));
    } else {
      auto ep = s.remote_endpoint(ignored);
      tcp_adopt_peer(std::make_shared<tcp::socket>(std::move(s)), ep.address().to_string());
    }
    tcp_accept_loop();
  });
}

void Simulator::tcp_adopt_peer(std::shared_ptr<tcp::socket> s, const std::string& peer_ip) {
  int fd = alloc_fd();
  if (fd < 0) {
    error_code ignored;
    s->close(ignored);
    return;
  }
  tcp_.sock = std::move(s);
  tcp_.peer = fd;
  ++tcp_.gen;
  proxy_urc({crlf("#XTCPSVR: \"" + peer_ip + "\",\"connected\"")});
  tcp_start_read();
}

void Simulator::tcp_tls_accept(tcp::socket s) {
  // Native TLS server: the peer counts once its handshake succeeded; a failed handshake drops it silently.
  error_code ignored;
  std::string ip = s.remote_endpoint(ignored).address().to_string();
  TlsOptions opt;
  opt.server = true;
  std::string why;
  SSL_CTX* ctx = make_ssl_ctx(creds_, tcp_.sec_tag, opt, why);
  if (!ctx) {
    if (trace_) trace_->note("tls: sec_tag " + std::to_string(tcp_.sec_tag) + ": " + why);
    s.close(ignored);
    return;
  }
  auto bridge = std::make_shared<TlsBridge>(io_, std::move(s), ctx, opt);
  SSL_CTX_free(ctx);
  tcp_.tls = bridge;
  std::weak_ptr<TlsBridge> w = bridge;
  bridge->start(
      [this, e = epoch_, w, ip](int err, std::shared_ptr<tcp::socket> plain) {
        auto b = w.lock();
        if (e != epoch_ || !b || tcp_.tls != b) return;
        tcp_.tls.reset();
        if (err) {
          if (trace_) trace_->note("tls: server handshake with " + ip + " failed: " + b->failure());
          return;
        }
        if (tcp_.role != TcpRole::Server) return;
        tcp_adopt_peer(std::move(plain), ip);
      },
      cfg_.tls_handshake_timeout_ms);
}

void Simulator::tcp_start_read() {
  auto sock = tcp_.sock;
  if (!sock) return;
  auto g = tcp_.gen;
  when_tx_ready([this, sock, g] {
    if (g != tcp_.gen) return;
    auto buf = std::make_shared<std::vector<char>>(p_.rx_chunk);
    sock->async_read_some(asio::buffer(*buf), [this, sock, g, buf](const error_code& ec, std::size_t n) {
      if (g != tcp_.gen) return;
      if (ec) {
        bool client = tcp_.role == TcpRole::Client;
        int cause;
        if (ec == asio::error::eof) cause = client ? -nerr::ECONNRESET_ : 0;  // POLLHUP
        else cause = -nerr::from(ec);
        tcp_lost(cause);
        return;
      }
      tcp_deliver(std::string(buf->data(), n));
      tcp_start_read();
    });
  });
}

bool Simulator::strike_payload_fault(const std::string& data) {
  if (!payload_fault_ || mode_ == Mode::Null) return false;
  const bool raw = mode_ == Mode::Data;
  return strike_payload_fault(data, raw ? "" : recv_header("#XTCPDATA", data.size(), ""), p_.header_first, "");
}

bool Simulator::strike_payload_fault(const std::string& data, const std::string& header, bool header_first,
                                     const std::string& trailer) {
  if (!payload_fault_ || mode_ == Mode::Null) return false;
  auto& fault = *payload_fault_;
  if (fault.offset >= data.size()) {
    fault.offset -= data.size();  // strikes in a later payload
    return false;
  }
  const bool raw = mode_ == Mode::Data;
  if (raw && fault.kind == PayloadFault::Kind::header) return false;  // no header in data mode: the next one
  if (raw) ++stats_.payload_faults_in_data_mode;
  const std::string before = data.substr(0, fault.offset);
  if (fault.kind == PayloadFault::Kind::reset) {
    // The modem dies part-way through the write: the header (header-first) and the first bytes made it out,
    // a data-first header never does. Then it boots again and prints "Ready".
    ++stats_.payload_faults;
    payload_fault_.reset();
    emit(header_first || raw ? header + before : before);
    ++stats_.resets;
    // A modem that died in the middle of a write takes a while to boot again (the modem library's start-up):
    // at least 200 ms, whatever --boot-delay-ms says for the fast resets of other tests. The time counts from
    // the moment its last byte left the UART, not from when it was queued for a paced line.
    const auto on_the_wire_ms =
        cfg_.baud == 0 ? 0 : static_cast<int>(line_.backlog() * 10u * 1000u / cfg_.baud);
    reboot(std::max(cfg_.boot_delay_ms, 200) + on_the_wire_ms);
    return true;
  }
  if (fault.kind == PayloadFault::Kind::header) {
    // The header's first bytes lost on the wire (from its leading CRLF on): nothing announces the payload.
    ++stats_.payload_faults;
    payload_fault_.reset();
    const std::string cut = header.substr(std::min(fault.drop, header.size()));
    stats_.payload_bytes_dropped += header.size() - cut.size();
    emit(header_first ? cut + data + trailer : data + cut);
    return true;
  }
  // Bytes lost on the wire: the count still says data.size(), the stream carries fewer.
  const std::size_t dropped = std::min(fault.drop, data.size() - fault.offset);
  const std::string after = data.substr(fault.offset + dropped);
  fault.drop -= dropped;
  if (fault.drop == 0) {
    ++stats_.payload_faults;
    payload_fault_.reset();
  } else {
    fault.offset = 0;  // the rest of the loss goes on into the next payload
  }
  stats_.payload_bytes_dropped += dropped;
  emit(raw ? before + after : header_first ? header + before + after + trailer : before + after + header);
  return true;
}

void Simulator::tcp_deliver(const std::string& data) {
  stats_.tcp_down_bytes += data.size();
  if (strike_payload_fault(data)) return;
  if (mode_ == Mode::Data) return emit(data);  // raw, no header, in data mode
  if (mode_ == Mode::Null) return;
  std::string header = recv_header("#XTCPDATA", data.size(), "");
  if (p_.header_first) proxy_urc({header, data});
  else proxy_urc({data, header});
}

void Simulator::tcp_lost(int cause) {
  if (tcp_.role == TcpRole::Client) {
    tcp_close_client();
    dm_link_lost(cause, DmTarget::Tcp, crlf("#XTCPCLI: " + std::to_string(cause) + ",\"disconnected\""));
  } else if (tcp_.role == TcpRole::Server && tcp_.sock) {
    tcp_close_peer();
    dm_link_lost(cause ? cause : -nerr::ECONNRESET_, DmTarget::Tcp,
                 crlf("#XTCPSVR: " + std::to_string(cause) + ",\"disconnected\""));
  }
}

void Simulator::tcp_send(std::string data, std::function<void(const error_code&, std::size_t)> done) {
  if (!tcp_.sock) {
    if (done) asio::post(io_, [done] { done(asio::error::not_connected, 0); });
    return;
  }
  tcp_.wq.emplace_back(std::move(data), std::move(done));
  if (!tcp_.writing) tcp_write_next();
}

void Simulator::tcp_write_next() {
  if (tcp_.wq.empty() || !tcp_.sock) {
    tcp_.writing = false;
    return;
  }
  tcp_.writing = true;
  auto sock = tcp_.sock;
  auto g = tcp_.gen;
  asio::async_write(*sock, asio::buffer(tcp_.wq.front().first),
                    [this, sock, g](const error_code& ec, std::size_t n) {
                      if (g != tcp_.gen) return;  // closed meanwhile: tcp_abort_writes() reported it
                      auto done = std::move(tcp_.wq.front().second);
                      tcp_.wq.pop_front();
                      stats_.tcp_up_bytes += n;
                      if (done) done(ec, n);
                      tcp_write_next();
                    });
}

void Simulator::cmd_tcpsend(const Cmd& c) {
  using K = Cmd::Kind;
  if (c.kind == K::Action) {
    // v2.9 enters data mode even when nothing is connected (the sends then fail silently).
    if (!tcp_.sock && !p_.tcpsend_datamode_unconnected) return finish(false);
    return enter_data_mode(DmTarget::Tcp);
  }
  if (c.kind != K::Set) return finish(false);
  auto ps = params(c);
  if (ps && p_.send_flags && send_flags_enter_data_mode(*ps)) {
    if (!tcp_.sock && !p_.tcpsend_datamode_unconnected) return finish(false);
    return enter_data_mode(DmTarget::Tcp);
  }
  if (ps && p_.send_flags && ps->size() == 2 && (*ps)[1].type == Param::Type::Int) ps->pop_back();  // the flags
  if (!ps || ps->size() != 1 || (*ps)[0].type != Param::Type::Str) return finish(false);
  if ((*ps)[0].s.size() > p_.max_payload) return finish(false);
  if (!tcp_.sock || tcp_.connecting) return finish(false);  // EBADF on fd -1: plain ERROR
  tcp_send((*ps)[0].s, [this, e = epoch_](const error_code& ec, std::size_t n) {
    if (e != epoch_) return;
    if (ec) return finish(false);
    info("#XTCPSEND: " + std::to_string(n));
    finish(true);
  });
}

void Simulator::cmd_tcphangup(const Cmd& c) {
  using K = Cmd::Kind;
  if (c.kind == K::Test) {
    info("#XTCPHANGUP: <handle>");
    return finish(true);
  }
  if (c.kind != K::Set) return finish(false);
  auto ps = params(c);
  if (!ps || ps->size() != 1 || (*ps)[0].type != Param::Type::Int) return finish(false);
  if (tcp_.role != TcpRole::Server || !tcp_.sock || (*ps)[0].i != tcp_.peer) return finish(false);
  tcp_close_peer();
  if (p_.hangup_ok_first) {
    finish(true);  // v2.7+: asynchronous hang-up, the URC follows the OK
    proxy_urc({crlf("#XTCPSVR: 0,\"disconnected\"")});
  } else {
    info("#XTCPSVR: 0,\"disconnected\"");
    finish(true);
  }
}

}  // namespace slmsim
