// slmsim: SLM's generic socket commands (docs/reference/serial-modem-and-generic-sockets.md §3), TCP and UDP
// clients: #XSOCKET (open, close), #XSSOCKET and #XSSOCKETOPT (TLS 1.2 and DTLS 1.2 clients, the handshake in
// #XCONNECT through tls_bridge), #XSOCKETSELECT, #XCONNECT, #XSEND/#XSENDTO (quoted, data mode),
// #XRECV/#XRECVFROM and #XPOLL, backed by real host sockets. One socket is "active" and every command but
// #XSOCKETSELECT and #XPOLL acts on it: a new socket becomes active, and closing it makes the most recently
// opened remaining one active. No URC says that data arrived (before v3.1's #XAPOLL): the host polls. The
// descriptors come from the pool the proxies use (8; v3.1 keeps one for its #XAPOLL eventfd, so 7 sockets).
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include "newlib_errno.hpp"
#include "simulator.hpp"
#include "trace.hpp"

namespace slmsim {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {

// What the firmware holds for a socket before slmsim stops reading the host socket (TCP then pushes back).
constexpr std::size_t kSocketRxHold = 16 * 1024;
// Datagrams a UDP socket holds before it drops new ones (a full receive buffer).
constexpr std::size_t kSocketDatagramHold = 64;

std::string poll_events(const Profile& p, unsigned events) {
  char text[16];
  std::snprintf(text, sizeof text, p.at_least(2, 1) ? "0x%04x" : "0x%08x", events);
  return text;
}

}  // namespace

Simulator::GenericSocket* Simulator::active_socket() {
  auto it = socks_.find(active_sock_);
  return it == socks_.end() ? nullptr : &it->second;
}

std::size_t Simulator::socket_limit() const { return p_.at_least(3, 1) ? 7 : 8; }

// The largest #XRECV answer: 2048 from v2.3; before, the MTU (1280) less the IP and TCP headers.
std::size_t Simulator::socket_recv_max(const GenericSocket& s) const {
  if (p_.at_least(2, 3)) return 2048;
  return s.family == 2 ? 1220 : 1240;
}

void Simulator::cmd_socket(const Cmd& c) {
  using K = Cmd::Kind;
  if (c.kind != K::Set) return finish(false);
  auto ps = params(c);
  if (!ps || ps->empty() || (*ps)[0].type != Param::Type::Int) return finish(false);
  const auto op = (*ps)[0].i;
  if (op == 0) return socket_close_active(ps->size());
  if (op != 1 && op != 2) return finish(false);
  const std::size_t max = p_.at_least(2, 1) ? 4 : 3;
  if (ps->size() < 3 || ps->size() > max) return finish(false);
  for (std::size_t i = 1; i < ps->size(); ++i)
    if ((*ps)[i].type != Param::Type::Int) return finish(false);
  const auto type = (*ps)[1].i, role = (*ps)[2].i;
  // This simulator carries TCP and UDP clients; raw and server sockets are refused as a socket() failure would be.
  if ((type != 1 && type != 2) || role != 0) return finish(false);
  if (ps->size() == 4 && (*ps)[3].i != 0) return finish(false);  // PDN 0 only
  auto* s = socket_create(static_cast<int>(op), static_cast<int>(type));
  if (!s) return finish(false);
  info("#XSOCKET: " + std::to_string(s->fd) + (type == 2 ? ",2,17" : ",1,6"));
  finish(true);
}

// AT#XSOCKET=0 and AT#XSSOCKET=0: do_socket_close() on the active socket, answered as #XSOCKET by both.
void Simulator::socket_close_active(std::size_t param_count) {
  if (param_count != 1 || !active_socket()) return finish(false);
  socket_close(active_sock_);
  info("#XSOCKET: 0,\"closed\"");
  finish(true);
}

Simulator::GenericSocket* Simulator::socket_create(int family, int type) {
  if (socks_.size() >= socket_limit()) return nullptr;
  int fd = alloc_fd();
  if (fd < 0) return nullptr;
  GenericSocket s;
  s.fd = fd;
  s.family = family;
  s.type = type;
  s.ranking = ++socket_ranking_;
  if (s.type == 2) {
    // A UDP socket can send and receive at once (an ephemeral port, as the modem's first sendto picks).
    s.usock = std::make_shared<udp::socket>(io_);
    error_code ec;
    s.usock->open(family == 1 ? udp::v4() : udp::v6(), ec);
    if (!ec) s.usock->bind(udp::endpoint(family == 1 ? udp::v4() : udp::v6(), 0), ec);
    if (ec) {
      free_fd(fd);
      return nullptr;
    }
  }
  auto& made = socks_.emplace(fd, std::move(s)).first->second;
  active_sock_ = fd;
  if (type == 2) socket_start_receive(fd);
  socket_apoll_arm(made, 1 | 4);  // delegate_poll_event(POLLIN | POLLOUT) on open
  return &made;
}

// AT#XSSOCKET=<op>,<type>,<role>,<sec_tag>[,<peer_verify>[,<cid>]]: a TLS 1.2 client whose handshake runs in
// #XCONNECT with the credentials under sec_tag (peer_verify 2, required, unless given). DTLS and TLS servers are
// not simulated (ERROR, as a socket() failure).
void Simulator::cmd_ssocket(const Cmd& c) {
  if (c.kind != Cmd::Kind::Set) return finish(false);
  auto ps = params(c);
  if (!ps || ps->empty() || (*ps)[0].type != Param::Type::Int) return finish(false);
  const auto op = (*ps)[0].i;
  if (op == 0) return socket_close_active(ps->size());
  if (op != 1 && op != 2) return finish(false);
  const std::size_t max = p_.at_least(2, 1) ? 6 : 5;
  if (ps->size() < 4 || ps->size() > max) return finish(false);
  for (std::size_t i = 1; i < ps->size(); ++i)
    if ((*ps)[i].type != Param::Type::Int) return finish(false);
  const auto type = (*ps)[1].i, role = (*ps)[2].i, sec_tag = (*ps)[3].i;
  const auto peer_verify = ps->size() > 4 ? (*ps)[4].i : 2;
  if ((type != 1 && type != 2) || role != 0 || sec_tag < 0 || peer_verify < 0 || peer_verify > 2)
    return finish(false);
  if (ps->size() == 6 && (*ps)[5].i != 0) return finish(false);  // PDN 0 only
  auto* s = socket_create(static_cast<int>(op), static_cast<int>(type));
  if (!s) return finish(false);
  s->sec_tag = sec_tag;
  s->tls_opt.peer_verify = static_cast<int>(peer_verify);
  s->tls_opt.dtls = type == 2;
  // 258: IPPROTO_TLS_1_2, 273: IPPROTO_DTLS_1_2
  info("#XSSOCKET: " + std::to_string(s->fd) + (type == 1 ? ",1,258" : ",2,273"));
  finish(true);
}

// AT#XSSOCKETOPT=<op>,<name>[,<value>] on the active socket, which must be a TLS one ("Not secure socket").
// Simulated: 2 TLS_HOSTNAME (set; "NULL" turns the check off) and 5 PEER_VERIFY (set).
void Simulator::cmd_ssocketopt(const Cmd& c) {
  if (c.kind != Cmd::Kind::Set) return finish(false);
  auto ps = params(c);
  auto* s = active_socket();
  if (!ps || ps->size() != 3 || !s || s->sec_tag < 0) return finish(false);
  if ((*ps)[0].type != Param::Type::Int || (*ps)[1].type != Param::Type::Int || (*ps)[0].i != 1)
    return finish(false);
  const auto name = (*ps)[1].i;
  const auto& value = (*ps)[2];
  if (name == 2 && value.type == Param::Type::Str && value.s.size() <= 127) {
    s->tls_opt.hostname = value.s == "NULL" ? std::string() : value.s;
    return finish(true);
  }
  if (name == 5 && value.type == Param::Type::Int && value.i >= 0 && value.i <= 2) {
    s->tls_opt.peer_verify = static_cast<int>(value.i);
    return finish(true);
  }
  // 14 DTLS_CID (0 disabled, 1 supported, 2 enabled): validated on a DTLS socket; OpenSSL 3.0 has no CIDs.
  if (name == 14 && s->type == 2 && value.type == Param::Type::Int && value.i >= 0 && value.i <= 2)
    return finish(true);
  finish(false);
}

void Simulator::cmd_socketselect(const Cmd& c) {
  if (c.kind != Cmd::Kind::Set) return finish(false);
  auto ps = params(c);
  if (!ps || ps->size() != 1 || (*ps)[0].type != Param::Type::Int) return finish(false);
  auto it = socks_.find(static_cast<int>((*ps)[0].i));
  if (it == socks_.end()) return finish(false);
  active_sock_ = it->first;
  if (p_.at_least(2, 1)) {
    info("#XSOCKETSELECT: " + std::to_string(it->first));
  } else {
    info("#XSOCKETSELECT: " + std::to_string(it->first) + "," + std::to_string(it->second.family) + ",0");
  }
  finish(true);
}

void Simulator::cmd_connect(const Cmd& c) {
  if (c.kind != Cmd::Kind::Set) return finish(false);
  auto ps = params(c);
  if (!ps || ps->size() != 2 || (*ps)[0].type != Param::Type::Str || (*ps)[1].type != Param::Type::Int)
    return finish(false);
  auto* s = active_socket();
  if (!s || s->sock || s->connecting) return finish(false);  // EISCONN/EALREADY: plain ERROR
  const std::string host = (*ps)[0].s;
  const auto port = (*ps)[1].i;
  if (host.size() > 127 || port < 1 || port > 65535) return finish(false);
  if (!attached()) return finish(false);
  if (s->type == 2) {
    // UDP: no handshake; the peer becomes the default destination and the only source let through.
    bool blackhole = false;
    auto to = socket_destination(*s, host, port, blackhole);
    if (!to) return finish(false);
    if (s->sec_tag >= 0) return socket_dtls_connect(*s, *to, blackhole);
    error_code ec;
    if (!blackhole) s->usock->connect(*to, ec);
    if (ec) return finish(false);
    s->peer = to;
    s->blackhole = blackhole;
    info("#XCONNECT: 1");
    return finish(true);
  }
  auto addrs = cfg_.net.resolve(host, s->family == 1 ? 1 : 2);
  if (addrs.empty()) return finish(false);
  auto target = cfg_.net.route(addrs.front());
  if (target.route == NetMap::Route::Blackhole) {
    if (cfg_.unmapped_unreachable) return finish(false);
    // The connect blocks the AT channel until the modem gives up.
    connect_timer_.expires_after(std::chrono::milliseconds(cfg_.connect_timeout_ms));
    connect_timer_.async_wait([this, e = epoch_](const error_code& ec) {
      if (!ec && e == epoch_) finish(false);
    });
    return;
  }
  s->connecting = true;
  auto sock = std::make_shared<tcp::socket>(io_);
  const int fd = s->fd;
  const auto gen = s->gen;
  sock->async_connect(tcp::endpoint(target.address, static_cast<unsigned short>(port)),
                      [this, e = epoch_, fd, gen, sock](const error_code& ec) {
                        if (e != epoch_) return;
                        auto it = socks_.find(fd);
                        if (it == socks_.end() || it->second.gen != gen) return;
                        auto& s = it->second;
                        if (ec) {
                          s.connecting = false;
                          if (trace_) trace_->note("socket " + std::to_string(fd) + ": connect: " + ec.message());
                          return finish(false);
                        }
                        if (s.sec_tag < 0) return socket_connected(s, sock);
                        // TLS by the modem: the handshake is part of the connect; a failed one is a plain ERROR.
                        s.tls = start_tls_client(
                            std::move(*sock), s.sec_tag, s.tls_opt,
                            [this, e, fd, gen](int err, const std::shared_ptr<TlsBridge>& b,
                                               std::shared_ptr<tcp::socket> plain) {
                              auto it = socks_.find(fd);
                              if (e != epoch_ || it == socks_.end() || it->second.gen != gen || it->second.tls != b)
                                return;
                              it->second.tls.reset();
                              it->second.connecting = false;
                              if (err) return finish(false);
                              socket_connected(it->second, std::move(plain));
                            });
                        if (s.tls) return;
                        s.connecting = false;
                        finish(false);
                      });
}

// DTLS by the modem: #XCONNECT runs the handshake over a host socket connected to the peer; afterwards usock is
// the bridge's plaintext end (each datagram one DTLS record), and what arrives is the peer's. Nobody answers an
// unmapped address: the handshake times out. A failure is a plain ERROR.
void Simulator::socket_dtls_connect(GenericSocket& s, const udp::endpoint& to, bool blackhole) {
  auto net = dtls_peer_socket(to, blackhole);
  if (!net) return;
  s.connecting = true;
  s.dtls = start_dtls_client(
      std::move(*net), s.sec_tag, s.tls_opt,
      [this, e = epoch_, fd = s.fd, gen = s.gen, to](int err, const std::shared_ptr<DtlsBridge>& b,
                                                    std::shared_ptr<udp::socket> plain) {
        auto it = socks_.find(fd);
        if (e != epoch_ || it == socks_.end() || it->second.gen != gen || it->second.dtls != b) return;
        auto& s = it->second;
        s.connecting = false;
        if (err) {
          s.dtls.reset();
          return finish(false);
        }
        retire(s.usock);
        s.usock = std::move(plain);
        s.peer = to;
        socket_start_receive(fd);
        info("#XCONNECT: 1");
        finish(true);
      },
      [this, fd = s.fd](const std::shared_ptr<DtlsBridge>&) {
        if (trace_) trace_->note("socket " + std::to_string(fd) + ": dtls: the peer ended the session");
      });
  if (s.dtls) return;
  s.connecting = false;
  finish(false);
}

void Simulator::socket_connected(GenericSocket& s, std::shared_ptr<tcp::socket> sock) {
  s.connecting = false;
  ++stats_.tcp_connects;
  s.sock = std::move(sock);
  socket_start_read(s.fd);
  info("#XCONNECT: 1");
  finish(true);
}

void Simulator::cmd_send(const Cmd& c) {
  using K = Cmd::Kind;
  auto* s = active_socket();
  if (c.kind == K::Action) {
    if (!s) return finish(false);
    dm_sendto_.reset();
    return enter_data_mode(DmTarget::Socket);
  }
  if (c.kind != K::Set) return finish(false);
  auto ps = params(c);
  if (ps && p_.send_flags && send_flags_enter_data_mode(*ps)) {
    if (!s) return finish(false);
    dm_sendto_.reset();
    return enter_data_mode(DmTarget::Socket);
  }
  if (ps && p_.send_flags && ps->size() == 2 && (*ps)[1].type == Param::Type::Int) ps->pop_back();  // the flags
  if (!ps || ps->size() != 1 || (*ps)[0].type != Param::Type::Str) return finish(false);
  if ((*ps)[0].s.size() > p_.max_payload) return finish(false);
  if (s && s->type == 2) {
    if (!s->peer) return finish(false);  // a send() on an unconnected UDP socket: EDESTADDRREQ
    return socket_send_datagram(s->fd, std::nullopt, (*ps)[0].s,
                                [this, e = epoch_](const error_code& ec, std::size_t n) {
                                  if (e != epoch_) return;
                                  info("#XSEND: " + std::to_string(ec ? 0 : n));
                                  finish(!ec);
                                });
  }
  if (!s || !s->sock) {
    info("#XSEND: 0");  // printed even when the send failed
    return finish(false);
  }
  const auto size = (*ps)[0].s.size();
  socket_send(s->fd, (*ps)[0].s, [this, e = epoch_, size](const error_code& ec) {
    if (e != epoch_) return;
    info("#XSEND: " + std::to_string(ec ? 0 : size));
    finish(!ec);
  });
}

void Simulator::cmd_recv(const Cmd& c) { socket_receive(c, false); }
void Simulator::cmd_recvfrom(const Cmd& c) { socket_receive(c, true); }

void Simulator::socket_receive(const Cmd& c, bool from) {
  if (c.kind != Cmd::Kind::Set) return finish(false);
  auto ps = params(c);
  const std::size_t max = p_.at_least(2, 1) ? 2 : 1;  // <flags> from v2.1
  if (!ps || ps->empty() || ps->size() > max) return finish(false);
  for (const auto& p : *ps)
    if (p.type != Param::Type::Int) return finish(false);
  const auto timeout = (*ps)[0].i;
  const auto flags = ps->size() == 2 ? (*ps)[1].i : 0;
  const bool peek = (flags & 2) != 0;
  auto* s = active_socket();
  if (timeout < 0 || !s) return finish(false);
  if (s->type == 2) {
    if (socket_answer_datagram(*s, peek, from)) return;
  } else {
    if (from || !s->sock) return finish(false);  // #XRECVFROM is simulated for UDP sockets only
    if (socket_answer_recv(*s, peek)) return;
  }
  if (flags & 64) return finish(false);  // MSG_DONTWAIT: EAGAIN
  // Wait for bytes or the end of the stream: without limit for timeout 0, else for `timeout` seconds.
  s->recv_waiting = true;
  s->recv_peek = peek;
  s->recv_from = from;
  socket_wait_timeout(*s, timeout);
}

void Simulator::socket_wait_timeout(GenericSocket& s, std::int64_t timeout) {
  if (timeout <= 0) return;
  connect_timer_.expires_after(std::chrono::seconds(timeout));
  connect_timer_.async_wait([this, e = epoch_, fd = s.fd](const error_code& ec) {
    if (ec || e != epoch_) return;
    auto it = socks_.find(fd);
    if (it == socks_.end() || !it->second.recv_waiting) return;
    it->second.recv_waiting = false;
    finish(false);  // EAGAIN after SO_RCVTIMEO
  });
}

void Simulator::cmd_sendto(const Cmd& c) {
  if (c.kind != Cmd::Kind::Set) return finish(false);
  auto ps = params(c);
  if (!ps || ps->size() < 2 || (*ps)[0].type != Param::Type::Str || (*ps)[1].type != Param::Type::Int)
    return finish(false);
  if (p_.send_flags && ps->size() == 4 && (*ps)[3].type == Param::Type::Int) ps->pop_back();  // the flags
  auto* s = active_socket();
  if (!s || s->type != 2 || ps->size() > 3) return finish(false);
  bool blackhole = false;
  if (!attached()) return finish(false);
  auto to = socket_destination(*s, (*ps)[0].s, (*ps)[1].i, blackhole);
  if (!to) return finish(false);
  if (ps->size() == 2 || (*ps)[2].type == Param::Type::Empty) {
    // No data: data mode, each flush one datagram to this destination.
    dm_sendto_ = blackhole ? std::nullopt : to;
    return enter_data_mode(DmTarget::Socket);
  }
  if ((*ps)[2].type != Param::Type::Str || (*ps)[2].s.size() > p_.max_payload) return finish(false);
  if (blackhole) {
    info("#XSENDTO: " + std::to_string((*ps)[2].s.size()));  // gone into the network, never answered
    return finish(true);
  }
  socket_send_datagram(s->fd, to, (*ps)[2].s, [this, e = epoch_](const error_code& ec, std::size_t n) {
    if (e != epoch_) return;
    info("#XSENDTO: " + std::to_string(ec ? 0 : n));
    finish(!ec);
  });
}

std::optional<boost::asio::ip::udp::endpoint> Simulator::socket_destination(const GenericSocket& s,
                                                                           const std::string& host,
                                                                           std::int64_t port, bool& blackhole) {
  if (host.size() > 127 || port < 1 || port > 65535) return std::nullopt;
  auto addrs = cfg_.net.resolve(host, s.family == 1 ? 1 : 2);
  if (addrs.empty()) return std::nullopt;
  auto target = cfg_.net.route(addrs.front());
  if (target.route == NetMap::Route::Blackhole) {
    if (cfg_.unmapped_unreachable) return std::nullopt;
    blackhole = true;
    return udp::endpoint(addrs.front(), static_cast<unsigned short>(port));
  }
  return udp::endpoint(target.address, static_cast<unsigned short>(port));
}

bool Simulator::socket_answer_datagram(GenericSocket& s, bool peek, bool from) {
  if (s.datagrams.empty()) return false;
  auto [sender, data] = s.datagrams.front();
  if (!peek) s.datagrams.pop_front();
  if (data.size() > socket_recv_max(s)) data.resize(socket_recv_max(s));  // the rest of the datagram is lost
  std::string header = (from ? "#XRECVFROM: " : "#XRECV: ") + std::to_string(data.size());
  if (from) {
    header += ",\"" + sender.address().to_string() + "\"";
    if (p_.at_least(2, 5)) header += "," + std::to_string(sender.port());
  }
  info(header);
  emit(std::move(data));
  finish(true);
  socket_apoll_arm(s, 1);
  return true;
}

void Simulator::socket_send_datagram(int fd, std::optional<udp::endpoint> to, std::string data,
                                     std::function<void(const error_code&, std::size_t)> done) {
  auto it = socks_.find(fd);
  if (it == socks_.end() || !it->second.usock) {
    if (done) asio::post(io_, [done] { done(asio::error::not_connected, 0); });
    return;
  }
  auto& s = it->second;
  if (s.dtls) to.reset();  // a DTLS socket is connected: every datagram goes to its peer, through the bridge
  if (!to && s.blackhole) {
    const auto n = data.size();
    if (done) asio::post(io_, [done, n] { done({}, n); });
    return;
  }
  auto sock = s.usock;
  auto shared = std::make_shared<std::string>(std::move(data));
  ++stats_.udp_up_datagrams;
  auto handler = [shared, sock, done](const error_code& ec, std::size_t n) {
    if (done) done(ec, n);
  };
  if (to) {
    sock->async_send_to(asio::buffer(*shared), *to, handler);
  } else {
    sock->async_send(asio::buffer(*shared), handler);
  }
}

void Simulator::socket_start_receive(int fd) {
  auto it = socks_.find(fd);
  if (it == socks_.end() || !it->second.usock) return;
  auto sock = it->second.usock;
  auto buf = std::make_shared<std::array<char, 65536>>();
  auto from = std::make_shared<udp::endpoint>();
  sock->async_receive_from(asio::buffer(*buf), *from, [this, e = epoch_, fd, gen = it->second.gen, sock, buf,
                                                        from](const error_code& ec, std::size_t n) {
    if (e != epoch_ || ec == asio::error::operation_aborted) return;
    auto it = socks_.find(fd);
    if (it == socks_.end() || it->second.gen != gen || it->second.usock != sock) return;
    auto& s = it->second;
    if (!ec) {
      ++stats_.udp_down_datagrams;
      // A DTLS socket reads the bridge's plaintext end: the datagram is the peer's.
      const udp::endpoint source = s.dtls && s.peer ? *s.peer : *from;
      if (s.datagrams.size() < kSocketDatagramHold) s.datagrams.emplace_back(source, std::string(buf->data(), n));
      if (s.recv_waiting && fd == active_sock_ && busy_) {
        s.recv_waiting = false;
        connect_timer_.cancel();
        socket_answer_datagram(s, s.recv_peek, s.recv_from);
      }
      if (poll_waiting_) socket_answer_poll();
      socket_apoll_check(fd);
    }
    socket_start_receive(fd);
  });
}

bool Simulator::socket_answer_recv(GenericSocket& s, bool peek) {
  if (!s.rx.empty()) {
    const auto n = std::min(s.rx.size(), socket_recv_max(s));
    std::string data = s.rx.substr(0, n);
    if (!peek) s.rx.erase(0, n);
    info("#XRECV: " + std::to_string(n));
    emit(std::move(data));
    finish(true);
    socket_apoll_arm(s, 1);  // delegate_poll_event(POLLIN) after the read
    if (!peek && !s.reading) socket_start_read(s.fd);
    return true;
  }
  if (s.eof) {
    finish(true);  // end of stream: OK without a #XRECV line
    return true;
  }
  return false;
}

void Simulator::cmd_poll(const Cmd& c) {
  if (c.kind != Cmd::Kind::Set) return finish(false);
  if (apoll_running_) return finish(false);  // "AT#XPOLL cannot be used with AT#XAPOLL": EBUSY
  auto ps = params(c);
  if (!ps || ps->empty() || ps->size() > 9) return finish(false);
  for (const auto& p : *ps)
    if (p.type != Param::Type::Int) return finish(false);
  std::vector<int> handles;
  for (std::size_t i = 1; i < ps->size(); ++i) {
    const int h = static_cast<int>((*ps)[i].i);
    if (!socks_.count(h)) return finish(false);  // poll() on an unknown descriptor: POLLNVAL → ERROR here
    handles.push_back(h);
  }
  if (handles.empty())
    for (const auto& [fd, s] : socks_) handles.push_back(fd);
  const auto timeout = (*ps)[0].i;
  poll_handles_ = handles;
  if (socket_answer_poll() || timeout == 0) {
    if (busy_) finish(true);
    return;
  }
  poll_waiting_ = true;
  if (timeout > 0) {
    connect_timer_.expires_after(std::chrono::milliseconds(timeout));
    connect_timer_.async_wait([this, e = epoch_](const error_code& ec) {
      if (ec || e != epoch_ || !poll_waiting_) return;
      poll_waiting_ = false;
      finish(true);  // nothing happened: just OK
    });
  }
}

bool Simulator::socket_answer_poll() {
  bool any = false;
  for (int h : poll_handles_) {
    auto it = socks_.find(h);
    if (it == socks_.end()) continue;
    unsigned events = 0;
    if (!it->second.rx.empty() || !it->second.datagrams.empty()) events |= 0x0001;  // POLLIN
    if (it->second.eof) events |= 0x0010;           // POLLHUP
    if (!events) continue;
    info("#XPOLL: " + std::to_string(h) + ",\"" + poll_events(p_, events) + "\"");
    any = true;
  }
  if (any && poll_waiting_) {
    poll_waiting_ = false;
    connect_timer_.cancel();
    finish(true);
  }
  return any;
}

void Simulator::socket_start_read(int fd) {
  auto it = socks_.find(fd);
  if (it == socks_.end() || !it->second.sock || it->second.reading || it->second.eof) return;
  auto& s = it->second;
  if (s.rx.size() >= kSocketRxHold) return;  // held until the host reads: TCP pushes back
  s.reading = true;
  auto buf = std::make_shared<std::array<char, 2048>>();
  auto sock = s.sock;
  sock->async_read_some(asio::buffer(*buf), [this, e = epoch_, fd, gen = s.gen, sock, buf](const error_code& ec,
                                                                                            std::size_t n) {
    if (e != epoch_) return;
    auto it = socks_.find(fd);
    if (it == socks_.end() || it->second.gen != gen) return;
    auto& s = it->second;
    s.reading = false;
    if (ec) {
      s.eof = true;  // the peer closed (or reset): POLLHUP, and #XRECV answers the end of the stream
    } else {
      stats_.tcp_down_bytes += n;
      // No thread reads a generic socket: what arrives stays in the modem until #XRECV, in data mode too.
      s.rx.append(buf->data(), n);
    }
    if (s.recv_waiting && fd == active_sock_ && busy_) {
      s.recv_waiting = false;
      connect_timer_.cancel();
      socket_answer_recv(s, s.recv_peek);
    }
    if (poll_waiting_) socket_answer_poll();
    socket_apoll_check(fd);
    socket_start_read(fd);
  });
}

void Simulator::socket_send(int fd, std::string data, std::function<void(const error_code&)> done) {
  auto it = socks_.find(fd);
  if (it == socks_.end() || !it->second.sock) {
    if (done) asio::post(io_, [done] { done(asio::error::not_connected); });
    return;
  }
  auto sock = it->second.sock;
  auto shared = std::make_shared<std::string>(std::move(data));
  stats_.tcp_up_bytes += shared->size();
  asio::async_write(*sock, asio::buffer(*shared), [shared, sock, done](const error_code& ec, std::size_t) {
    if (done) done(ec);
  });
}

void Simulator::socket_close(int fd) {
  auto it = socks_.find(fd);
  if (it == socks_.end()) return;
  if (it->second.tls) it->second.tls->abort();
  if (it->second.dtls) it->second.dtls->close();
  retire(it->second.sock, true);
  retire(it->second.usock);
  int handle = fd;
  free_fd(handle);
  socks_.erase(it);
  if (active_sock_ != fd) return;
  // The most recently opened remaining socket becomes active.
  active_sock_ = -1;
  int best = -1;
  for (const auto& [h, s] : socks_) {
    if (s.ranking > best) {
      best = s.ranking;
      active_sock_ = h;
    }
  }
}

// AT#XAPOLL=<op>[,<events>[,<h1>,...]] (v3.1): op 1 starts the poll thread for every socket (no handles: the
// present ones and any opened later) or for the listed ones (a new list replaces the old), op 0 stops it. Each
// report is the URC #XAPOLL: <h>,<revents> (decimal), sent from the poll thread: dropped in data mode (the
// firmware re-arms POLLIN on every socket when data mode ends).
void Simulator::cmd_apoll(const Cmd& c) {
  using K = Cmd::Kind;
  if (c.kind == K::Read) {
    std::string line = "#XAPOLL: " + std::to_string(apoll_running_ ? 1 : 0) + "," + std::to_string(apoll_events_);
    for (const auto& [fd, s] : socks_)
      if (apoll_all_ || s.apoll_specific) line += "," + std::to_string(fd);
    info(line);
    return finish(true);
  }
  if (c.kind == K::Test) {
    info("#XAPOLL: (0,1),<0,1,4,5>,<handle1>,<handle2>,...");
    return finish(true);
  }
  if (c.kind != K::Set) return finish(false);
  auto ps = params(c);
  if (!ps || ps->empty()) return finish(false);
  for (const auto& p : *ps)
    if (p.type != Param::Type::Int) return finish(false);
  const auto op = (*ps)[0].i;
  if (op == 0) {
    apoll_running_ = false;
    apoll_events_ = 0;
    return finish(true);
  }
  if (op != 1 || ps->size() < 2 || ((*ps)[1].i & ~5) != 0) return finish(false);
  apoll_events_ = static_cast<int>((*ps)[1].i);
  apoll_all_ = ps->size() == 2;
  for (auto& [fd, s] : socks_) {
    s.apoll_specific = false;
    if (apoll_all_) s.apoll_armed = apoll_events_;
  }
  for (std::size_t i = 2; i < ps->size(); ++i) {
    auto it = socks_.find(static_cast<int>((*ps)[i].i));
    if (it == socks_.end()) return finish(false);  // "Socket %d not found"
    it->second.apoll_specific = true;
    it->second.apoll_armed = apoll_events_;
  }
  apoll_running_ = true;
  finish(true);
  for (const auto& [fd, s] : socks_) {
    asio::post(io_, [this, e = epoch_, fd = fd] {
      if (e == epoch_) socket_apoll_check(fd);
    });
  }
}

void Simulator::socket_apoll_arm(GenericSocket& s, int events) {
  if (!apoll_running_ || !(apoll_all_ || s.apoll_specific)) return;
  s.apoll_armed |= events & apoll_events_;
  // The poll thread runs after the command that armed it: its report follows the answer.
  asio::post(io_, [this, e = epoch_, fd = s.fd] {
    if (e == epoch_) socket_apoll_check(fd);
  });
}

void Simulator::socket_apoll_check(int fd) {
  auto it = socks_.find(fd);
  if (!apoll_running_ || it == socks_.end()) return;
  auto& s = it->second;
  if (s.apoll_disabled || !(apoll_all_ || s.apoll_specific)) return;
  int revents = 0;
  if ((s.apoll_armed & 1) && (!s.rx.empty() || !s.datagrams.empty())) revents |= 1;
  if ((s.apoll_armed & 4) && (s.sock || s.usock)) revents |= 4;
  if (s.eof) revents |= 16;  // POLLHUP is always watched
  if (!revents) return;
  if (revents & 16) {
    s.apoll_disabled = true;  // off until closed
  } else {
    s.apoll_armed &= ~revents;
  }
  if (mode_ != Mode::Command) return;  // not sent in data mode
  proxy_urc({crlf("#XAPOLL: " + std::to_string(fd) + "," + std::to_string(revents))}, 2);
}

void Simulator::socket_apoll_data_mode_ended() {
  for (auto& [fd, s] : socks_) {
    s.apoll_disabled = false;
    socket_apoll_arm(s, 1);
  }
}

void Simulator::close_sockets_silently() {
  apoll_running_ = false;
  apoll_events_ = 0;
  for (auto& [fd, s] : socks_) {
    if (s.tls) s.tls->abort();
    if (s.dtls) s.dtls->close();
    retire(s.sock, true);
    retire(s.usock);
  }
  socks_.clear();
  active_sock_ = -1;
  poll_waiting_ = false;
}

}  // namespace slmsim
