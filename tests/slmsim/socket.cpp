// slmsim: SLM's generic socket commands (docs/reference/serial-modem-and-generic-sockets.md §3), TCP clients:
// #XSOCKET (open, close), #XSOCKETSELECT, #XCONNECT, #XSEND (quoted, data mode), #XRECV and #XPOLL, backed
// by real host sockets. One socket is "active" and every command but #XSOCKETSELECT and #XPOLL acts on it: a
// new socket becomes active, and closing it makes the most recently opened remaining one active. No URC says
// that data arrived (before v3.1's #XAPOLL): the host polls. The descriptors come from the pool the proxies
// use (8; v3.1 keeps one for its #XAPOLL eventfd, so 7 sockets).
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
  if (op == 0) {
    if (ps->size() != 1) return finish(false);
    auto* s = active_socket();
    if (!s) return finish(false);
    socket_close(active_sock_);
    info("#XSOCKET: 0,\"closed\"");
    return finish(true);
  }
  if (op != 1 && op != 2) return finish(false);
  const std::size_t max = p_.at_least(2, 1) ? 4 : 3;
  if (ps->size() < 3 || ps->size() > max) return finish(false);
  for (std::size_t i = 1; i < ps->size(); ++i)
    if ((*ps)[i].type != Param::Type::Int) return finish(false);
  const auto type = (*ps)[1].i, role = (*ps)[2].i;
  // This simulator carries TCP clients; UDP, raw and server sockets are refused as a socket() failure would be.
  if (type != 1 || role != 0) return finish(false);
  if (ps->size() == 4 && (*ps)[3].i != 0) return finish(false);  // PDN 0 only
  if (socks_.size() >= socket_limit()) return finish(false);
  int fd = alloc_fd();
  if (fd < 0) return finish(false);
  GenericSocket s;
  s.fd = fd;
  s.family = static_cast<int>(op);
  s.ranking = ++socket_ranking_;
  socks_.emplace(fd, std::move(s));
  active_sock_ = fd;
  info("#XSOCKET: " + std::to_string(fd) + ",1,6");
  finish(true);
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
                        it->second.connecting = false;
                        if (ec) {
                          if (trace_) trace_->note("socket " + std::to_string(fd) + ": connect: " + ec.message());
                          return finish(false);
                        }
                        ++stats_.tcp_connects;
                        it->second.sock = sock;
                        socket_start_read(fd);
                        info("#XCONNECT: 1");
                        finish(true);
                      });
}

void Simulator::cmd_send(const Cmd& c) {
  using K = Cmd::Kind;
  auto* s = active_socket();
  if (c.kind == K::Action) {
    if (!s) return finish(false);
    return enter_data_mode(DmTarget::Socket);
  }
  if (c.kind != K::Set) return finish(false);
  auto ps = params(c);
  if (ps && p_.send_flags && send_flags_enter_data_mode(*ps)) {
    if (!s) return finish(false);
    return enter_data_mode(DmTarget::Socket);
  }
  if (ps && p_.send_flags && ps->size() == 2 && (*ps)[1].type == Param::Type::Int) ps->pop_back();  // the flags
  if (!ps || ps->size() != 1 || (*ps)[0].type != Param::Type::Str) return finish(false);
  if ((*ps)[0].s.size() > p_.max_payload) return finish(false);
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

void Simulator::cmd_recv(const Cmd& c) {
  if (c.kind != Cmd::Kind::Set) return finish(false);
  auto ps = params(c);
  const std::size_t max = p_.at_least(2, 1) ? 2 : 1;
  if (!ps || ps->empty() || ps->size() > max) return finish(false);
  for (const auto& p : *ps)
    if (p.type != Param::Type::Int) return finish(false);
  const auto timeout = (*ps)[0].i;
  const auto flags = ps->size() == 2 ? (*ps)[1].i : 0;
  if (timeout < 0) return finish(false);
  auto* s = active_socket();
  if (!s || !s->sock) return finish(false);
  if (socket_answer_recv(*s, (flags & 2) != 0)) return;
  if (flags & 64) return finish(false);  // MSG_DONTWAIT: EAGAIN
  // Wait for bytes or the end of the stream: without limit for timeout 0, else for `timeout` seconds.
  s->recv_waiting = true;
  s->recv_peek = (flags & 2) != 0;
  if (timeout > 0) {
    connect_timer_.expires_after(std::chrono::seconds(timeout));
    connect_timer_.async_wait([this, e = epoch_, fd = s->fd](const error_code& ec) {
      if (ec || e != epoch_) return;
      auto it = socks_.find(fd);
      if (it == socks_.end() || !it->second.recv_waiting) return;
      it->second.recv_waiting = false;
      finish(false);  // EAGAIN after SO_RCVTIMEO
    });
  }
}

bool Simulator::socket_answer_recv(GenericSocket& s, bool peek) {
  if (!s.rx.empty()) {
    const auto n = std::min(s.rx.size(), socket_recv_max(s));
    std::string data = s.rx.substr(0, n);
    if (!peek) s.rx.erase(0, n);
    info("#XRECV: " + std::to_string(n));
    emit(std::move(data));
    finish(true);
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
    if (!it->second.rx.empty()) events |= 0x0001;  // POLLIN
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
  retire(it->second.sock, true);
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

void Simulator::close_sockets_silently() {
  for (auto& [fd, s] : socks_) retire(s.sock, true);
  socks_.clear();
  active_sock_ = -1;
  poll_waiting_ = false;
}

}  // namespace slmsim
