// slmsim: the Serial Modem's socket commands (ncs-serial-modem v1.0.x and v2.0.0-preview1, app/src/sm_at_socket.c;
// docs/reference/serial-modem-and-generic-sockets.md §2): handle-based #XSOCKET/#XCLOSE, #XSSOCKET (TLS 1.2
// clients, DTLS 1.2 clients; the handshake in #XCONNECT through tls_bridge) with #XSSOCKETOPT's host name
// and peer verification, #XSOCKETOPT, #XBIND, #XCONNECT, #XSEND/#XSENDTO (string, hex, data mode), #XRECV/#XRECVFROM, preview1's
// #XLISTEN/#XACCEPT, and the event machinery behind #XAPOLL and automatic reception (#XRECVCFG): per socket, the
// modem library's one-shot poll callback, armed by every update_poll_events() and fired when the socket's state
// matches, and SM's poll work, which runs only while the AT channel is idle (no command executing) or, in data
// mode, for the data-mode socket alone. Every socket is a real host socket. Handles are allocated as descriptors
// are: the lowest free one from Config::sm_handle_base (3 by default, so they are not table slots 0 … 7).
// #XGETADDRINFO and #XDATACTRL are shared with SLM (simulator.cpp), data mode is in sm_host.cpp.
#include <algorithm>
#include <array>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include "newlib_errno.hpp"
#include "simulator.hpp"
#include "trace.hpp"

namespace slmsim {

namespace asio = boost::asio;
using boost::system::error_code;
using namespace smpoll;

namespace {

constexpr std::size_t kMaxMessage = 2048;  // SM_MAX_MESSAGE_SIZE: one read (the largest <data_len>)
constexpr std::size_t kHexMax = 1400;      // bin_data[1400]: the largest hex-mode payload
constexpr std::size_t kMaxUrl = 127;       // char url[SM_MAX_URL] with its NUL
constexpr std::size_t kRxHold = 16 * 1024;  // what the modem holds for a TCP socket before TCP pushes back
constexpr std::size_t kDatagramHold = 64;   // datagrams a UDP socket holds; later ones are dropped
constexpr std::size_t kBacklog = 2;         // preview1: the modem's listen backlog is fixed at 2
constexpr int kPeek = 2, kDontWait = 64, kWaitAll = 256, kSendAck = 8192;
constexpr std::int64_t kI32Min = -2147483648LL, kI32Max = 2147483647LL, kU16Max = 0xffff;
constexpr int kENODATA = 61;

// The at_parser view of a command's parameters: index 1 is the first (0 is the command), and param_count counts
// the command too.
struct Args {
  std::vector<Param> v;
  std::size_t count() const { return v.size() + 1; }
  // at_parser_num_get(): 0; -ENODATA for an empty parameter; another error when it is missing, not an integer or
  // out of the target type's range.
  int num(std::size_t i, std::int64_t lo, std::int64_t hi, std::int64_t& out) const {
    if (i == 0 || i > v.size()) return -nerr::EINVAL_;
    const auto& p = v[i - 1];
    if (p.type == Param::Type::Empty) return -kENODATA;
    if (p.type != Param::Type::Int || p.i < lo || p.i > hi) return -nerr::EINVAL_;
    out = p.i;
    return 0;
  }
  // util_string_get() / at_parser_string_ptr_get(): a quoted string of at most `max` characters.
  bool str(std::size_t i, std::size_t max, std::string& out) const {
    if (i == 0 || i > v.size() || v[i - 1].type != Param::Type::Str || v[i - 1].s.size() > max) return false;
    out = v[i - 1].s;
    return true;
  }
};

std::optional<Args> args_of(const ParsedCommand& c, bool strict, bool space) {
  Args a;
  if (c.kind == ParsedCommand::Kind::Action) return a;  // "AT#XCLOSE": a set command with no parameters
  auto ps = parse_params(c.args, strict, space);
  if (!ps) return std::nullopt;
  a.v = std::move(*ps);
  return a;
}

// Zephyr's bin2hex(): lower case.
std::string to_hex(const std::string& data) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(data.size() * 2);
  for (unsigned char c : data) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 15]);
  }
  return out;
}

// Zephyr's hex2bin(): an odd length starts with a lone nibble; 0 bytes (an error) for a bad digit, an empty
// string or more than `max` bytes.
std::optional<std::string> from_hex(const std::string& hex, std::size_t max) {
  const std::size_t n = hex.size() / 2 + hex.size() % 2;
  if (n == 0 || n > max) return std::nullopt;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  std::size_t i = 0;
  if (hex.size() % 2) {
    int v = nibble(hex[0]);
    if (v < 0) return std::nullopt;
    out.push_back(static_cast<char>(v));
    i = 1;
  }
  for (; i < hex.size(); i += 2) {
    int hi = nibble(hex[i]), lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<char>(hi * 16 + lo));
  }
  return out;
}

}  // namespace

SmSocket* Simulator::sm_find(int fd) {
  auto it = sm_socks_.find(fd);
  return it == sm_socks_.end() ? nullptr : &it->second;
}

// ---------------------------------------------------------------------------------------------
// Opening, listing, closing

void Simulator::cmd_sm_socket(const Cmd& c) {
  using K = Cmd::Kind;
  if (c.kind == K::Read) {
    for (const auto& [fd, s] : sm_socks_)
      info("#XSOCKET: " + std::to_string(fd) + "," + std::to_string(s.family) + "," + std::to_string(s.role) + "," +
           std::to_string(s.type) + "," + std::to_string(s.cid));
    return finish(true);
  }
  if (c.kind == K::Test) {
    info("#XSOCKET: <handle>,(1,2,3),(1,2,3),(0,1),<cid>");
    return finish(true);
  }
  auto a = args_of(c, p_.strict_integers, p_.space_before_param);
  if (!a) return finish(false);
  if (sm_socks_.size() >= p_.sm_max_sockets) return finish(false);  // "Max socket count reached"
  std::int64_t family = 0, type = 0, role = 0, cid = 0;
  if (a->num(1, kI32Min, kI32Max, family) || a->num(2, kI32Min, kI32Max, type) || a->num(3, 0, kU16Max, role))
    return finish(false);
  if (a->count() > 4 && (a->num(4, 0, kU16Max, cid) || cid > 10)) return finish(false);
  // do_socket_open()
  if (family != 1 && family != 2 && family != 3) return finish(false);
  if ((type == 3 || family == 3) && !(type == 3 && family == 3)) return finish(false);  // raw: family 3 only
  if (type != 1 && type != 2 && type != 3) return finish(false);
  if (type == 3 && role != 0 && !p_.sm_preview) return finish(false);  // v1.0.x: a raw socket is a client
  if (cid != 0) return finish(false);  // bind_to_pdn(): only the default PDN (cid 0) is active here
  auto* n = sm_create(static_cast<int>(family), static_cast<int>(type), static_cast<int>(role), static_cast<int>(cid));
  if (!n) return finish(false);
  info("#XSOCKET: " + std::to_string(n->fd) + "," + std::to_string(n->type) + "," +
       (n->type == 1 ? "6" : n->type == 2 ? "17" : "0"));
  finish(true);
}

SmSocket* Simulator::sm_create(int family, int type, int role, int cid) {
  int fd = cfg_.sm_handle_base;
  while (sm_socks_.count(fd)) ++fd;
  SmSocket s;
  s.fd = fd;
  s.family = family;
  s.type = type;
  s.role = role;
  s.cid = cid;
  s.gen = ++sm_next_gen_;
  if (s.type == 2) {
    // A UDP socket can send and receive at once (an ephemeral port, as the modem's first sendto picks).
    s.udp_sock = std::make_shared<udp::socket>(io_);
    error_code ec;
    s.udp_sock->open(family == 1 ? udp::v4() : udp::v6(), ec);
    if (!ec) s.udp_sock->bind(udp::endpoint(family == 1 ? udp::v4() : udp::v6(), 0), ec);
    if (ec) return nullptr;
  }
  auto& n = sm_socks_.emplace(fd, std::move(s)).first->second;
  if (n.type == 2) sm_start_receive(fd);
  // Settings made for "all sockets" apply to new ones too. The poll work they may start is posted: the
  // caller's answer goes out first.
  n.adr_flags = sm_adr_flags_;
  n.adr_hex = sm_adr_hex_;
  n.xapoll_requested = sm_xapoll_requested_;
  sm_update_poll(n, ALL, true);
  return &n;
}

void Simulator::cmd_sm_ssocket(const Cmd& c) {
  using K = Cmd::Kind;
  if (c.kind == K::Read) return finish(true);  // lists the secure sockets: there are none
  if (c.kind == K::Test) {
    info("#XSSOCKET: <handle>,(1,2),(1,2),(0,1),<sec_tag>,<peer_verify>,<cid>");
    return finish(true);
  }
  // AT#XSSOCKET=<family>,<type>,<role>,<sec_tag>[,<peer_verify>[,<cid>]]: TLS 1.2 clients over TCP are
  // simulated (the handshake runs in #XCONNECT, with the credentials under sec_tag); DTLS sockets are not.
  auto a = args_of(c, p_.strict_integers, p_.space_before_param);
  if (!a) return finish(false);
  if (sm_socks_.size() >= p_.sm_max_sockets) return finish(false);
  std::int64_t family = 0, type = 0, role = 0, sec_tag = -1, peer_verify = 2, cid = 0;
  if (a->num(1, kI32Min, kI32Max, family) || a->num(2, kI32Min, kI32Max, type) || a->num(3, 0, kU16Max, role) ||
      a->num(4, 0, kI32Max, sec_tag))
    return finish(false);
  if (a->count() > 5 && (a->num(5, 0, kU16Max, peer_verify) || peer_verify > 2)) return finish(false);
  if (a->count() > 6 && (a->num(6, 0, kU16Max, cid) || cid != 0)) return finish(false);
  if (family != 1 && family != 2) return finish(false);
  if (role != 0) return finish(false);  // TLS/DTLS servers are not supported
  if (type != 1 && type != 2) return finish(false);
  auto* n = sm_create(static_cast<int>(family), static_cast<int>(type), 0, 0);
  if (!n) return finish(false);
  n->sec_tag = static_cast<int>(sec_tag);
  n->tls_opt.peer_verify = static_cast<int>(peer_verify);
  n->tls_opt.dtls = type == 2;
  // 258: IPPROTO_TLS_1_2, 273: IPPROTO_DTLS_1_2
  info("#XSSOCKET: " + std::to_string(n->fd) + (type == 1 ? ",1,258" : ",2,273"));
  finish(true);
}

void Simulator::cmd_sm_close(const Cmd& c) {
  if (!sm_set(c)) return finish(false);
  auto a = args_of(c, p_.strict_integers, p_.space_before_param);
  if (!a) return finish(false);
  // do_socket_close(): "#XCLOSE: <h>,<0|-errno>", no poll event.
  auto close_one = [this](int fd) {
    auto& s = sm_socks_.at(fd);
    const int ret = s.dead ? -nerr::EBADF_ : 0;
    if (s.tls) s.tls->abort();
    if (s.dtls) s.dtls->close();
    retire(s.tcp_sock, true);
    retire(s.udp_sock);
    retire(s.acceptor);
    for (auto& [peer, ep] : s.backlog) retire(peer, true);
    info("#XCLOSE: " + std::to_string(fd) + "," + std::to_string(ret));
    sm_socks_.erase(fd);
    return ret;
  };
  if (a->count() > 1) {
    std::int64_t fd = 0;
    if (a->num(1, kI32Min, kI32Max, fd) || !sm_find(static_cast<int>(fd))) return finish(false);
    return finish(close_one(static_cast<int>(fd)) == 0);
  }
  int err = 0;
  std::vector<int> fds;
  for (const auto& [fd, s] : sm_socks_) fds.push_back(fd);
  for (int fd : fds)
    if (close_one(fd) < 0) err = -1;
  finish(err == 0);
}

void Simulator::sm_close_all_silently() {
  for (auto& [fd, s] : sm_socks_) {
    if (s.tls) s.tls->abort();
    if (s.dtls) s.dtls->close();
    retire(s.tcp_sock, true);
    retire(s.udp_sock);
    retire(s.acceptor);
    for (auto& [peer, ep] : s.backlog) retire(peer, true);
  }
  sm_socks_.clear();
}

void Simulator::sm_modem_restarted() {
  // nrf_modem_lib_shutdown() closes every libmodem socket; SM's table keeps the stale handles. (What a later
  // socket on a reused descriptor number does in the firmware is not simulated: the stale handles stay reserved.)
  for (auto& [fd, s] : sm_socks_) {
    if (s.tls) s.tls->abort();
    s.tls.reset();
    if (s.dtls) s.dtls->close();
    s.dtls.reset();
    retire(s.tcp_sock, true);
    retire(s.udp_sock);
    retire(s.acceptor);
    for (auto& [peer, ep] : s.backlog) retire(peer, true);
    s.backlog.clear();
    s.dead = true;
    s.armed = false;
    s.revents = 0;
    s.wait.active = false;
    s.wq.clear();
    s.writing = false;
  }
}

// ---------------------------------------------------------------------------------------------
// Options, bind, connect, listen, accept

void Simulator::cmd_sm_socketopt(const Cmd& c) {
  if (c.kind == Cmd::Kind::Test) {
    info("#XSOCKETOPT: <handle>,(0,1),<name>,<value>");
    return finish(true);
  }
  if (!sm_set(c)) return finish(false);
  auto a = args_of(c, p_.strict_integers, p_.space_before_param);
  std::int64_t fd = 0, op = 0, name = 0, value = 0;
  if (!a || a->num(1, kI32Min, kI32Max, fd)) return finish(false);
  auto* s = sm_find(static_cast<int>(fd));
  if (!s || a->num(2, 0, kU16Max, op) || a->num(3, 0, kU16Max, name)) return finish(false);
  // at_sockopt_to_sockopt(): 2 REUSEADDR, 20 RCVTIMEO, 21 SNDTIMEO, 30 SILENCE_ALL, 31 IP_ECHO_REPLY,
  // 32 IPV6_ECHO_REPLY, 40 BINDTOPDN, 61 RAI, 62 IPV6_DELAYED_ADDR_REFRESH; preview1 55 TCP_SRV_SESSTIMEO.
  static const int known[] = {2, 20, 21, 30, 31, 32, 40, 61, 62};
  const bool supported =
      std::find(std::begin(known), std::end(known), name) != std::end(known) || (name == 55 && p_.sm_preview);
  if (op == 1) {
    if (a->count() > 4 && a->num(4, kI32Min, kI32Max, value)) return finish(false);
    if (!supported || s->dead) return finish(false);
    switch (name) {
      case 20:
      case 21:
        if (value < 0) return finish(false);
        (name == 20 ? s->rcvtimeo : s->sndtimeo) = static_cast<int>(value);
        break;
      case 40:
        if (value != 0) return finish(false);  // the default PDN's ID; no other PDN is active here
        break;
      case 61:
        if (value < 1 || value > 5) return finish(false);  // RAI_NO_DATA … RAI_WAIT_MORE
        break;
      case 55:
        if (s->type != 1 || value < 0 || value > 135) return finish(false);
        break;
      default:
        break;
    }
    s->opts[static_cast<int>(name)] = static_cast<int>(value);
    return finish(true);
  }
  if (op != 0 || !supported || s->dead) return finish(false);
  int v = 0;
  switch (name) {
    case 2:
    case 40:
    case 61:
      return finish(false);  // set-only options: the getsockopt() fails
    case 20:
      v = s->rcvtimeo;
      break;
    case 21:
      v = s->sndtimeo;
      break;
    default: {
      auto it = s->opts.find(static_cast<int>(name));
      v = it != s->opts.end() ? it->second : (name == 31 || name == 32 ? 1 : 0);  // echo replies on by default
      break;
    }
  }
  info("#XSOCKETOPT: " + std::to_string(fd) + "," + std::to_string(v));
  finish(true);
}

void Simulator::cmd_sm_ssocketopt(const Cmd& c) {
  if (c.kind == Cmd::Kind::Test) {
    info("#XSSOCKETOPT: <handle>,(0,1),<name>,<value>");
    return finish(true);
  }
  // Simulated: 2 TLS_HOSTNAME (set; the name the server's certificate must carry) and 5 PEER_VERIFY (set).
  if (!sm_set(c)) return finish(false);
  auto a = args_of(c, p_.strict_integers, p_.space_before_param);
  std::int64_t fd = 0, op = 0, name = 0;
  if (!a || a->num(1, kI32Min, kI32Max, fd)) return finish(false);
  auto* s = sm_find(static_cast<int>(fd));
  if (!s || s->sec_tag < 0) return finish(false);  // "Not secure socket"
  if (a->num(2, 0, kU16Max, op) || a->num(3, 0, kU16Max, name) || op != 1) return finish(false);
  if (name == 2) {
    std::string hostname;
    if (!a->str(4, kMaxUrl, hostname)) return finish(false);
    s->tls_opt.hostname = hostname;
    return finish(true);
  }
  std::int64_t value = 0;
  if (name == 5 && !a->num(4, 0, 2, value)) {
    s->tls_opt.peer_verify = static_cast<int>(value);
    return finish(true);
  }
  // 14 DTLS_CID (0 disabled, 1 supported, 2 enabled): validated on a DTLS socket; OpenSSL 3.0 has no CIDs.
  if (name == 14 && s->type == 2 && !a->num(4, 0, 2, value)) return finish(true);
  finish(false);
}

void Simulator::cmd_sm_bind(const Cmd& c) {
  if (!sm_set(c)) return finish(false);
  auto a = args_of(c, p_.strict_integers, p_.space_before_param);
  std::int64_t fd = 0, port = 0;
  if (!a || a->num(1, kI32Min, kI32Max, fd)) return finish(false);
  auto* s = sm_find(static_cast<int>(fd));
  if (!s || a->num(2, 0, kU16Max, port)) return finish(false);
  // bind_to_local_addr(): the PDN's address, so only while attached; a second bind fails (EINVAL).
  if (s->dead || s->type == 3 || !attached() || s->local_port >= 0 || s->connected) return finish(false);
  error_code ec;
  const auto local = server_address(s->family == 2 ? 2 : 1);
  if (s->type == 2) {
    auto sock = std::make_shared<udp::socket>(io_);
    sock->open(local.is_v4() ? udp::v4() : udp::v6(), ec);
    if (!ec) sock->bind(udp::endpoint(local, static_cast<unsigned short>(port)), ec);
    if (ec) return finish(false);
    retire(s->udp_sock);
    s->udp_sock = sock;
    s->local_port = static_cast<int>(port);
    sm_start_receive(s->fd);
    return finish(true);
  }
  if (p_.sm_preview) {
    // The listening end of a later #XLISTEN, bound now so that a port in use fails here, as bind() does.
    auto acc = std::make_shared<tcp::acceptor>(io_);
    acc->open(local.is_v4() ? tcp::v4() : tcp::v6(), ec);
    if (!ec) acc->set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acc->bind(tcp::endpoint(local, static_cast<unsigned short>(port)), ec);
    if (ec) return finish(false);
    s->acceptor = acc;
  }
  s->local_port = static_cast<int>(port);
  finish(true);
}

std::optional<boost::asio::ip::udp::endpoint> Simulator::sm_resolve(const SmSocket& s, const std::string& host,
                                                                   std::int64_t port, bool& blackhole) const {
  // util_resolve_host() in the socket's family. Names need the network; literals do not.
  if (host.size() > kMaxUrl || port < 0 || port > 65535) return std::nullopt;
  error_code ec;
  asio::ip::make_address(host, ec);
  if (ec && !attached()) return std::nullopt;
  auto addrs = cfg_.net.resolve(host, s.family == 2 ? 2 : 1);
  if (addrs.empty()) return std::nullopt;
  auto target = cfg_.net.route(addrs.front());
  if (target.route == NetMap::Route::Blackhole) {
    if (cfg_.unmapped_unreachable) return std::nullopt;
    blackhole = true;
    return udp::endpoint(addrs.front(), static_cast<unsigned short>(port));
  }
  blackhole = false;
  return udp::endpoint(target.address, static_cast<unsigned short>(port));
}

void Simulator::cmd_sm_connect(const Cmd& c) {
  if (!sm_set(c)) return finish(false);
  auto a = args_of(c, p_.strict_integers, p_.space_before_param);
  std::int64_t fd = 0, port = 0;
  std::string host;
  if (!a || a->num(1, kI32Min, kI32Max, fd)) return finish(false);
  auto* s = sm_find(static_cast<int>(fd));
  if (!s) return finish(false);
  if (s->role != 0 && !p_.sm_preview) return finish(false);  // v1.0.x: "Invalid role"
  if (!a->str(2, kMaxUrl, host) || a->num(3, 0, kU16Max, port)) return finish(false);
  if (s->dead || s->type == 3 || !attached()) return finish(false);
  bool blackhole = false;
  auto to = sm_resolve(*s, host, port, blackhole);
  if (!to) return finish(false);  // util_resolve_host() failed: -EAGAIN
  if (s->type == 2 && s->sec_tag >= 0) return sm_dtls_connect(*s, *to, blackhole);
  if (s->type == 2) {
    // UDP: no handshake; the peer becomes the default destination and the only source let through.
    error_code ec;
    if (!blackhole) s->udp_sock->connect(*to, ec);
    if (ec) return finish(false);
    s->peer = to;
    s->blackhole = blackhole;
    s->connected = true;
    info("#XCONNECT: " + std::to_string(fd) + ",1");
    return finish(true);
  }
  if (s->tcp_sock || s->listening) return finish(false);  // EISCONN
  if (blackhole) {
    // The connect blocks the AT channel until the modem gives up.
    connect_timer_.expires_after(std::chrono::milliseconds(cfg_.connect_timeout_ms));
    connect_timer_.async_wait([this, e = epoch_](const error_code& ec) {
      if (!ec && e == epoch_) finish(false);
    });
    return;
  }
  auto sock = std::make_shared<tcp::socket>(io_);
  const tcp::endpoint remote(to->address(), to->port());
  // The peer as the modem names it: the address it was asked for (a mapped test address stays itself).
  const tcp::endpoint named(cfg_.net.resolve(host, s->family == 2 ? 2 : 1).front(), to->port());
  sock->async_connect(remote, [this, e = epoch_, fd = s->fd, gen = s->gen, sock, named](const error_code& ec) {
    if (e != epoch_) return;
    auto* s = sm_find(fd);
    if (!s || s->gen != gen) return;
    if (ec) {
      if (trace_) trace_->note("sm socket " + std::to_string(fd) + ": connect: " + ec.message());
      return finish(false);
    }
    if (s->sec_tag < 0) return sm_connected(*s, sock, named);
    // TLS by the modem: the handshake is part of the connect; a failed one is a plain ERROR.
    s->tls = start_tls_client(std::move(*sock), s->sec_tag, s->tls_opt,
                              [this, e, fd, gen, named](int err, const std::shared_ptr<TlsBridge>& b,
                                                        std::shared_ptr<tcp::socket> plain) {
                                auto* s = sm_find(fd);
                                if (e != epoch_ || !s || s->gen != gen || s->tls != b) return;
                                s->tls.reset();
                                if (err) return finish(false);
                                sm_connected(*s, std::move(plain), named);
                              });
    if (!s->tls) finish(false);
  });
}

// DTLS by the modem: #XCONNECT runs the handshake over a host socket connected to the peer; afterwards udp_sock is
// the bridge's plaintext end (each datagram one DTLS record), and what arrives is the peer's. Nobody answers an
// unmapped address: the handshake times out. A failure is a plain ERROR.
void Simulator::sm_dtls_connect(SmSocket& s, const udp::endpoint& to, bool blackhole) {
  const int fd = s.fd;
  const auto gen = s.gen;
  auto net = dtls_peer_socket(to, blackhole);
  if (!net) return;
  s.dtls = start_dtls_client(
      std::move(*net), s.sec_tag, s.tls_opt,
      [this, e = epoch_, fd, gen, to](int err, const std::shared_ptr<DtlsBridge>& b,
                                      std::shared_ptr<udp::socket> plain) {
        auto* s = sm_find(fd);
        if (e != epoch_ || !s || s->gen != gen || s->dtls != b) return;
        if (err) {
          s->dtls.reset();
          return finish(false);
        }
        retire(s->udp_sock);
        s->udp_sock = std::move(plain);
        s->peer = to;
        s->connected = true;
        sm_start_receive(fd);
        info("#XCONNECT: " + std::to_string(fd) + ",1");
        finish(true);
      },
      [this, e = epoch_, fd, gen](const std::shared_ptr<DtlsBridge>& b) {
        auto* s = sm_find(fd);
        if (e != epoch_ || !s || s->gen != gen || s->dtls != b) return;
        if (trace_) trace_->note("sm socket " + std::to_string(fd) + ": dtls: the peer ended the session");
      });
  if (!s.dtls) finish(false);
}

void Simulator::sm_connected(SmSocket& s, std::shared_ptr<tcp::socket> sock, const tcp::endpoint& named) {
  ++stats_.tcp_connects;
  s.tcp_sock = std::move(sock);
  s.remote = named;
  s.connected = true;
  sm_start_read(s.fd);
  info("#XCONNECT: " + std::to_string(s.fd) + ",1");
  finish(true);
  sm_poll_check(s);  // writable: POLLOUT
}

void Simulator::cmd_sm_listen(const Cmd& c) {
  using K = Cmd::Kind;
  if (c.kind == K::Read) {
    for (const auto& [fd, s] : sm_socks_)
      if (s.listening)
        info("#XLISTEN: " + std::to_string(fd) + "," + std::to_string(s.cid) + "," + std::to_string(s.local_port));
    return finish(true);
  }
  if (c.kind == K::Test) {
    info("#XLISTEN: <handle>");
    return finish(true);
  }
  auto a = args_of(c, p_.strict_integers, p_.space_before_param);
  std::int64_t fd = 0;
  if (!a || a->num(1, kI32Min, kI32Max, fd)) return finish(false);
  auto* s = sm_find(static_cast<int>(fd));
  // do_listen(): TCP, bound to a non-zero port, not TLS.
  if (!s || s->dead || s->type != 1 || s->local_port <= 0 || !s->acceptor || s->tcp_sock) return finish(false);
  error_code ec;
  s->acceptor->listen(static_cast<int>(kBacklog), ec);
  if (ec) return finish(false);
  s->listening = true;
  sm_accept_loop(s->fd);
  finish(true);
}

void Simulator::sm_accept_loop(int fd) {
  auto* s = sm_find(fd);
  if (!s || !s->acceptor) return;
  auto acc = s->acceptor;
  acc->async_accept([this, e = epoch_, fd, gen = s->gen, acc](const error_code& ec, tcp::socket peer) {
    if (e != epoch_ || ec == asio::error::operation_aborted) return;
    auto* s = sm_find(fd);
    if (!s || s->gen != gen || s->acceptor != acc) return;
    if (!ec) {
      error_code ep_ec;
      auto ep = peer.remote_endpoint(ep_ec);
      auto p = std::make_shared<tcp::socket>(std::move(peer));
      if (s->backlog.size() < kBacklog && !ep_ec) {
        s->backlog.emplace_back(p, ep);
      } else {
        retire(p, true);  // the modem's backlog is full: refused
      }
      sm_poll_check(*s);  // POLLIN on the listening socket
    }
    sm_accept_loop(fd);
  });
}

void Simulator::cmd_sm_accept(const Cmd& c) {
  if (c.kind == Cmd::Kind::Test) {
    info("#XACCEPT: <handle>");
    return finish(true);
  }
  if (!sm_set(c)) return finish(false);
  auto a = args_of(c, p_.strict_integers, p_.space_before_param);
  std::int64_t fd = 0;
  if (!a || a->num(1, kI32Min, kI32Max, fd)) return finish(false);
  auto* s = sm_find(static_cast<int>(fd));
  if (!s || s->type != 1 || !s->listening) return finish(false);
  if (s->backlog.empty()) return finish(false);  // non-blocking: EAGAIN
  auto [peer, ep] = s->backlog.front();
  s->backlog.pop_front();
  if (sm_socks_.size() >= p_.sm_max_sockets) {
    retire(peer, true);  // "Max socket count reached, closing accepted socket"
    return finish(false);
  }
  int nfd = cfg_.sm_handle_base;
  while (sm_socks_.count(nfd)) ++nfd;
  SmSocket n;
  n.fd = nfd;
  n.family = ep.address().is_v4() ? 1 : 2;
  n.type = 1;
  n.cid = s->cid;
  n.connected = true;
  n.tcp_sock = peer;
  n.remote = ep;
  n.gen = ++sm_next_gen_;
  n.adr_flags = sm_adr_flags_;
  n.adr_hex = sm_adr_hex_;
  n.xapoll_requested = sm_xapoll_requested_;
  auto& a_sock = sm_socks_.emplace(nfd, std::move(n)).first->second;
  info("#XACCEPT: " + std::to_string(nfd) + "," + std::to_string(a_sock.cid) + ",\"" + ep.address().to_string() +
       "\"," + std::to_string(ep.port()));
  sm_start_read(nfd);
  sm_update_poll(a_sock, ALL, true);
  sm_update_poll(sm_socks_.at(static_cast<int>(fd)), IN, true);  // POLLIN again for the listening socket
  finish(true);
}

// ---------------------------------------------------------------------------------------------
// Sending

int Simulator::sm_transmit(SmSocket& s, std::string data, const std::optional<udp::endpoint>& to, bool blackhole) {
  // What nrf_send()/nrf_sendto() return at once: the byte count, or a negative errno. A write that fails later on
  // the host socket marks the connection broken (POLLHUP) instead.
  const int n = static_cast<int>(data.size());
  if (s.dead) return -nerr::EBADF_;
  if (s.type == 3) return n;  // raw: no IP network behind the simulated modem; the packet vanishes
  // A DTLS socket is connected: every datagram goes to its peer, through the bridge.
  if (s.dtls && to) return sm_transmit(s, std::move(data), std::nullopt, false);
  if (s.type == 1) {
    if (!s.tcp_sock) return s.eof ? -nerr::ECONNRESET_ : -nerr::ENOTCONN_;
    if (s.reset) return -nerr::ECONNRESET_;
    stats_.tcp_up_bytes += data.size();
    s.wq.push_back(std::move(data));
    if (!s.writing) sm_write_next(s.fd);
    return n;
  }
  if (!attached()) return -nerr::ENETDOWN_;
  if (to ? blackhole : s.blackhole) return n;  // an unmapped test address: gone into the network
  if (!to && !s.peer) return -nerr::ENOTCONN_;  // send() without a destination
  auto sock = s.udp_sock;
  auto shared = std::make_shared<std::string>(std::move(data));
  ++stats_.udp_up_datagrams;
  auto done = [shared, sock](const error_code&, std::size_t) {};
  if (to) {
    sock->async_send_to(asio::buffer(*shared), *to, done);
  } else {
    sock->async_send(asio::buffer(*shared), done);
  }
  return n;
}

int Simulator::sm_sendto(SmSocket& s, std::string data, const std::string& host, std::int64_t port) {
  if (s.type == 1) return sm_transmit(s, std::move(data), std::nullopt, false);  // the address is ignored
  bool blackhole = false;
  auto to = sm_resolve(s, host, port, blackhole);
  if (!to) return -nerr::EAGAIN_;
  return sm_transmit(s, std::move(data), to, blackhole);
}

void Simulator::sm_write_next(int fd) {
  auto* s = sm_find(fd);
  if (!s) return;
  if (s->wq.empty() || !s->tcp_sock) {
    s->writing = false;
    return;
  }
  s->writing = true;
  auto sock = s->tcp_sock;
  asio::async_write(*sock, asio::buffer(s->wq.front()),
                    [this, e = epoch_, fd, gen = s->gen, sock](const error_code& ec, std::size_t) {
                      if (e != epoch_) return;
                      auto* s = sm_find(fd);
                      if (!s || s->gen != gen || s->tcp_sock != sock) return;
                      s->wq.pop_front();
                      if (ec) {
                        sm_lost(*s, true);
                        return;
                      }
                      sm_write_next(fd);
                    });
}

void Simulator::cmd_sm_send(const Cmd& c) {
  if (!sm_set(c)) return finish(false);
  auto a = args_of(c, p_.strict_integers, p_.space_before_param);
  std::int64_t fd = 0, mode = 0, flags = 0;
  if (!a || a->num(1, kI32Min, kI32Max, fd)) return finish(false);
  auto* s = sm_find(static_cast<int>(fd));
  if (!s || a->num(2, 0, kU16Max, mode) || a->num(3, kI32Min, kI32Max, flags)) return finish(false);
  if (mode == 2) {
    std::int64_t len = 0;
    if (a->count() > 4 && a->num(4, kI32Min, kI32Max, len)) return finish(false);
    if (s->adr_flags & 2) sm_update_poll(*s, IN, false);  // automatic reception in data mode: POLLIN again
    // enter_datamode(handler, data_len): an int into a size_t (a negative one is huge).
    return sm_enter_data_mode(s->fd, static_cast<std::size_t>(len));
  }
  if (mode != 0 && mode != 1) return finish(false);
  std::string data;
  if (a->count() <= 4 || !a->str(4, std::string::npos, data)) return finish(false);  // missing string data
  if (mode == 1) {
    auto bin = from_hex(data, kHexMax);
    if (!bin) return finish(false);
    data = std::move(*bin);
  }
  if (flags & kSendAck) return finish(false);  // #XSENDNTF needs NTN modem firmware: not simulated
  const auto size = data.size();
  const int r = data.empty() ? 0 : sm_transmit(*s, std::move(data), std::nullopt, false);
  info("#XSEND: " + std::to_string(fd) + ",0," + std::to_string(r > 0 ? r : 0));  // printed on failure too
  sm_update_poll(*s, OUT, true);
  finish(r == static_cast<int>(size));
}

void Simulator::cmd_sm_sendto(const Cmd& c) {
  if (!sm_set(c)) return finish(false);
  auto a = args_of(c, p_.strict_integers, p_.space_before_param);
  std::int64_t fd = 0, mode = 0, flags = 0, port = 0;
  std::string host;
  if (!a || a->num(1, kI32Min, kI32Max, fd)) return finish(false);
  auto* s = sm_find(static_cast<int>(fd));
  if (!s || a->num(2, 0, kU16Max, mode) || a->num(3, kI32Min, kI32Max, flags)) return finish(false);
  // udp_url is a global the handler fills first; only a completed string send or the end of data mode clears it,
  // so a later error leaves it set (and a later AT#XSEND data mode then sends there).
  if (!a->str(4, kMaxUrl, host)) return finish(false);
  sm_udp_url_ = host;
  if (a->num(5, 0, kU16Max, port)) return finish(false);
  sm_udp_port_ = port;
  if (mode == 2) {
    std::int64_t len = 0;
    if (a->count() > 6 && a->num(6, kI32Min, kI32Max, len)) return finish(false);
    if (s->adr_flags & 2) sm_update_poll(*s, IN, false);
    return sm_enter_data_mode(s->fd, static_cast<std::size_t>(len));
  }
  if (mode != 0 && mode != 1) return finish(false);
  std::string data;
  if (a->count() <= 6 || !a->str(6, std::string::npos, data)) return finish(false);
  if (mode == 1) {
    auto bin = from_hex(data, kHexMax);
    if (!bin) return finish(false);
    data = std::move(*bin);
  }
  if (flags & kSendAck) return finish(false);
  const auto size = data.size();
  bool blackhole = false;
  std::optional<udp::endpoint> to;
  if (s->type != 1) {
    to = sm_resolve(*s, host, port, blackhole);
    if (!to) {
      sm_udp_url_.clear();
      return finish(false);  // do_sendto(): no #XSENDTO line when the name does not resolve
    }
  }
  const int r = sm_transmit(*s, std::move(data), to, blackhole);
  info("#XSENDTO: " + std::to_string(fd) + ",0," + std::to_string(r > 0 ? r : 0));
  sm_update_poll(*s, OUT, true);
  sm_udp_url_.clear();
  finish(r == static_cast<int>(size));
}

// ---------------------------------------------------------------------------------------------
// Receiving

void Simulator::sm_start_read(int fd) {
  auto* s = sm_find(fd);
  if (!s || !s->tcp_sock || s->reading || s->eof) return;
  if (s->rx.size() >= kRxHold) return;  // held until the host reads: TCP pushes back
  s->reading = true;
  auto buf = std::make_shared<std::array<char, 2048>>();
  auto sock = s->tcp_sock;
  sock->async_read_some(asio::buffer(*buf), [this, e = epoch_, fd, gen = s->gen, sock, buf](const error_code& ec,
                                                                                             std::size_t n) {
    if (e != epoch_) return;
    auto* s = sm_find(fd);
    if (!s || s->gen != gen || s->tcp_sock != sock) return;
    s->reading = false;
    if (ec) {
      s->eof = true;  // the peer closed: POLLHUP; a reset is an error for a read of an empty socket
      if (ec != asio::error::eof) s->reset = true;
    } else {
      stats_.tcp_down_bytes += n;
      s->rx.append(buf->data(), n);
    }
    if (s->wait.active) sm_recv_retry(*s, false);
    if (booting_) return;
    sm_poll_check(*s);
    sm_start_read(fd);
  });
}

void Simulator::sm_start_receive(int fd) {
  auto* s = sm_find(fd);
  if (!s || !s->udp_sock) return;
  auto sock = s->udp_sock;
  auto buf = std::make_shared<std::array<char, 65536>>();
  auto from = std::make_shared<udp::endpoint>();
  sock->async_receive_from(asio::buffer(*buf), *from, [this, e = epoch_, fd, gen = s->gen, sock, buf,
                                                        from](const error_code& ec, std::size_t n) {
    if (e != epoch_ || ec == asio::error::operation_aborted) return;
    auto* s = sm_find(fd);
    if (!s || s->gen != gen || s->udp_sock != sock) return;
    if (!ec) {
      ++stats_.udp_down_datagrams;
      // A DTLS socket reads the bridge's plaintext end: the datagram is the peer's.
      const udp::endpoint source = s->dtls && s->peer ? *s->peer : *from;
      if (s->datagrams.size() < kDatagramHold) s->datagrams.emplace_back(source, std::string(buf->data(), n));
      if (s->wait.active) sm_recv_retry(*s, false);
      if (booting_) return;
      sm_poll_check(*s);
    }
    sm_start_receive(fd);
  });
}

void Simulator::sm_lost(SmSocket& s, bool abortive) {
  // The connection is gone (peer reset, detach, a failed write): POLLHUP; reads of an empty socket fail.
  retire(s.tcp_sock, !abortive);
  s.eof = true;
  s.reset = true;
  s.wq.clear();
  s.writing = false;
  if (s.wait.active) sm_recv_retry(s, false);
  if (!booting_) sm_poll_check(s);
}

void Simulator::sm_network_lost() {
  for (auto& [fd, s] : sm_socks_)
    if (s.type == 1 && s.tcp_sock) sm_lost(s, false);
}

std::string Simulator::sm_peer_reset(const std::string& arg) {
  SmSocket* s = nullptr;
  if (!arg.empty()) {
    try {
      s = sm_find(std::stoi(arg));
    } catch (const std::exception&) {
      return "error bad handle";
    }
  } else {
    for (auto& [fd, x] : sm_socks_)
      if (x.tcp_sock) {
        s = &x;
        break;
      }
  }
  if (!s || !s->tcp_sock) return "error no tcp connection";
  error_code ec;
  s->tcp_sock->set_option(asio::socket_base::linger(true, 0), ec);
  s->tcp_sock->close(ec);  // an explicit close honours linger 0: RST
  s->tcp_sock.reset();
  sm_lost(*s, true);
  return "ok";
}

Simulator::SmRecv Simulator::sm_take(SmSocket& s, int flags, std::size_t len, std::string& data,
                                     udp::endpoint& from) {
  // One nrf_recv()/nrf_recvfrom() of at most `len` bytes: Data, Zero (0 returned: the end of a TCP stream, an
  // empty datagram or a zero length), Again (nothing there yet) or Error.
  if (s.dead) return SmRecv::Error;
  if (s.type == 3) return SmRecv::Again;  // raw: nothing reaches the simulated modem
  if (s.type == 2) {
    if (s.datagrams.empty()) return SmRecv::Again;
    from = s.datagrams.front().first;
    data = s.datagrams.front().second.substr(0, len);  // the rest of a longer datagram is lost
    if (!(flags & kPeek)) s.datagrams.pop_front();
    return data.empty() ? SmRecv::Zero : SmRecv::Data;
  }
  if (s.listening || (!s.tcp_sock && !s.eof)) return SmRecv::Error;  // ENOTCONN
  if (len == 0) return SmRecv::Zero;
  if (!s.rx.empty()) {
    if ((flags & kWaitAll) && !(flags & kDontWait) && s.rx.size() < len && !s.eof) return SmRecv::Again;
    const auto n = std::min(len, s.rx.size());
    data = s.rx.substr(0, n);
    from = udp::endpoint(s.remote.address(), s.remote.port());
    if (!(flags & kPeek)) {
      s.rx.erase(0, n);
      if (!s.reading) sm_start_read(s.fd);
    }
    return SmRecv::Data;
  }
  if (s.reset) return SmRecv::Error;  // ECONNRESET
  if (s.eof) return SmRecv::Zero;
  return SmRecv::Again;
}

bool Simulator::sm_deliver(SmSocket& s, const std::string& data, const udp::endpoint& from, int mode, bool with_from,
                           const std::string& trailer) {
  // do_recv()/do_recvfrom(): the header (not in data mode), the bytes (hex: two lower-case digits each; the count
  // is of bytes), then POLLIN is armed again. Returns true when a payload fault rebooted the modem.
  const bool raw = mode_ == Mode::Data;
  std::string header;
  if (!raw) {
    header = (with_from ? "#XRECVFROM: " : "#XRECV: ") + std::to_string(s.fd) + "," + std::to_string(mode) + "," +
             std::to_string(data.size());
    if (with_from) header += ",\"" + from.address().to_string() + "\"," + std::to_string(from.port());
    header = crlf(header);
  }
  const std::string payload = mode == 1 ? to_hex(data) : data;
  if (!strike_payload_fault(payload, header, true, trailer)) {
    emit(header);
    emit(payload);
    emit(trailer);
  }
  if (booting_) return true;
  sm_update_poll(s, IN, true);
  return false;
}

void Simulator::cmd_sm_recv(const Cmd& c) { sm_recv_command(c, false); }
void Simulator::cmd_sm_recvfrom(const Cmd& c) { sm_recv_command(c, true); }

void Simulator::sm_recv_command(const Cmd& c, bool from) {
  if (!sm_set(c)) return finish(false);
  auto a = args_of(c, p_.strict_integers, p_.space_before_param);
  std::int64_t fd = 0, mode = 0, flags = 0, timeout = 0, len = static_cast<std::int64_t>(kMaxMessage);
  if (!a || a->num(1, kI32Min, kI32Max, fd)) return finish(false);
  auto* s = sm_find(static_cast<int>(fd));
  if (!s || a->num(2, 0, kU16Max, mode) || (mode != 0 && mode != 1)) return finish(false);
  if (a->num(3, kI32Min, kI32Max, flags) || a->num(4, kI32Min, kI32Max, timeout)) return finish(false);
  if (a->count() > 5 && a->num(5, kI32Min, kI32Max, len)) return finish(false);
  if (static_cast<std::uint64_t>(len) > kMaxMessage) return finish(false);  // -ENOBUFS (a negative one is huge)
  // SO_RCVTIMEO = <timeout> on every call (a negative one is refused); 0 blocks without limit.
  if (s->dead || timeout < 0) return finish(false);
  s->rcvtimeo = static_cast<int>(timeout);
  s->wait = SmSocket::Wait{true, from, static_cast<int>(mode), static_cast<int>(flags), static_cast<std::size_t>(len)};
  const int sfd = s->fd;
  sm_recv_retry(*s, false);
  s = sm_find(sfd);
  if (!s || !s->wait.active || booting_) return;
  if (flags & kDontWait) {
    s->wait.active = false;
    return finish(false);  // EAGAIN
  }
  if (timeout == 0) return;  // blocks until something comes
  connect_timer_.expires_after(std::chrono::seconds(timeout));
  connect_timer_.async_wait([this, e = epoch_, sfd, gen = s->gen](const error_code& ec) {
    if (ec || e != epoch_) return;
    auto* s = sm_find(sfd);
    if (s && s->gen == gen && s->wait.active) sm_recv_retry(*s, true);
  });
}

void Simulator::sm_recv_retry(SmSocket& s, bool timed_out) {
  if (!s.wait.active || !busy_) return;
  auto w = s.wait;
  if (timed_out) w.flags &= ~kWaitAll;  // the time limit hands over what MSG_WAITALL gathered so far
  std::string data;
  udp::endpoint sender;
  const auto r = sm_take(s, w.flags, w.len, data, sender);
  if (r == SmRecv::Again && !timed_out) return;
  s.wait.active = false;
  connect_timer_.cancel();
  switch (r) {
    case SmRecv::Data:
      if (sm_deliver(s, data, sender, w.mode, w.from, "")) return;
      return finish(true);
    case SmRecv::Zero:
      return finish(true);  // the end of the stream: OK without a #XRECV line
    case SmRecv::Again:       // SO_RCVTIMEO expired: EAGAIN
    case SmRecv::Error:
      return finish(false);
  }
}

void Simulator::sm_auto_receive(SmSocket& s) {
  // auto_reception(): one read with MSG_DONTWAIT of at most 2048 bytes. #XRECV for TCP, raw and connected UDP,
  // #XRECVFROM for an unconnected UDP socket. In AT mode a CRLF follows, also when the read returned 0 (the end
  // of a TCP stream or an empty datagram: a stray CRLF). An error (nothing there) sends nothing.
  if (s.listening) return;
  const bool from = !(s.connected || s.type == 3);
  const bool data_mode = mode_ == Mode::Data;
  s.rcvtimeo = 0;  // do_recv() sets SO_RCVTIMEO to its timeout, 0 here
  std::string data;
  udp::endpoint sender;
  const auto r = sm_take(s, kDontWait, kMaxMessage, data, sender);
  if (r == SmRecv::Again || r == SmRecv::Error) return;
  if (!data_mode) ++stats_.urcs;
  if (r == SmRecv::Data) {
    if (sm_deliver(s, data, sender, s.adr_hex ? 1 : 0, from, data_mode ? "" : "\r\n")) return;
  } else if (!data_mode) {
    emit("\r\n");
  }
}

// ---------------------------------------------------------------------------------------------
// #XAPOLL and #XRECVCFG

void Simulator::cmd_sm_apoll(const Cmd& c) {
  using K = Cmd::Kind;
  if (c.kind == K::Read) {
    for (const auto& [fd, s] : sm_socks_)
      if (s.xapoll_requested)
        info("#XAPOLL: " + std::to_string(fd) + "," + std::to_string(s.xapoll_requested & ~(ERR | HUP | NVAL)));
    return finish(true);
  }
  if (c.kind == K::Test) {
    info("#XAPOLL: <handle>,(0,1),(0,1,4,5)");
    return finish(true);
  }
  auto a = args_of(c, p_.strict_integers, p_.space_before_param);
  if (!a) return finish(false);
  std::int64_t fd = -1, op = 0, events = 0;
  const int r = a->num(1, kI32Min, kI32Max, fd);
  if (r && r != -kENODATA) return finish(false);
  SmSocket* s = nullptr;
  if (fd != -1 && !(s = sm_find(static_cast<int>(fd)))) return finish(false);
  if (a->num(2, kI32Min, kI32Max, op) || (op != 0 && op != 1)) return finish(false);
  if (op == 0) {
    // xapoll_stop(): only the request goes; events already armed still give their URC once.
    if (s) {
      s->xapoll_requested = 0;
    } else {
      sm_xapoll_requested_ = 0;
      for (auto& [h, x] : sm_socks_) x.xapoll_requested = 0;
    }
    return finish(true);
  }
  if (a->num(3, 0, kU16Max, events) || (events & ~(IN | OUT))) return finish(false);
  const auto ev = static_cast<std::uint8_t>(events | ERR | HUP | NVAL);  // libmodem always reports these
  if (s) {
    s->xapoll_requested = ev;
    sm_update_poll(*s, ev, true);
  } else {
    sm_xapoll_requested_ = ev;
    for (auto& [h, x] : sm_socks_) {
      x.xapoll_requested = ev;
      sm_update_poll(x, ev, true);
    }
  }
  finish(true);
}

void Simulator::cmd_sm_recvcfg(const Cmd& c) {
  using K = Cmd::Kind;
  if (c.kind == K::Read) {
    for (const auto& [fd, s] : sm_socks_)
      if (s.adr_flags)
        info("#XRECVCFG: " + std::to_string(fd) + "," + std::to_string(s.adr_flags) + "," +
             std::to_string(s.adr_hex ? 1 : 0));
    return finish(true);
  }
  if (c.kind == K::Test) {
    info("#XRECVCFG: <handle>,(0,1,2,3),(0,1)");
    return finish(true);
  }
  auto a = args_of(c, p_.strict_integers, p_.space_before_param);
  if (!a) return finish(false);
  std::int64_t fd = -1, flags = 0, hex = 0;
  const int r = a->num(1, kI32Min, kI32Max, fd);
  if (r && r != -kENODATA) return finish(false);
  SmSocket* s = nullptr;
  if (fd != -1 && !(s = sm_find(static_cast<int>(fd)))) return finish(false);
  if (a->num(2, 0, kU16Max, flags) || (flags & ~3)) return finish(false);
  if (a->count() > 3 && (a->num(3, 0, kU16Max, hex) || (hex != 0 && hex != 1))) return finish(false);
  if ((flags & 2) && hex) return finish(false);  // hex only in AT mode
  const auto f = static_cast<std::uint8_t>(flags);
  if (s) {
    s->adr_flags = f;
    s->adr_hex = hex != 0;
    sm_update_poll(*s, IN, false);
  } else {
    sm_adr_flags_ = f;
    sm_adr_hex_ = hex != 0;
    for (auto& [h, x] : sm_socks_) {
      x.adr_flags = f;
      x.adr_hex = hex != 0;
      sm_update_poll(x, IN, false);
    }
  }
  finish(true);
}

// ---------------------------------------------------------------------------------------------
// The poll machinery

std::uint8_t Simulator::sm_state_events(const SmSocket& s) const {
  // What libmodem's poll reports for the socket now. TCP before the connect: nothing (no POLLOUT either).
  // POLLHUP once the peer closed (not together with POLLOUT); POLLIN while bytes wait (and, with
  // --sm-eof-pollin, at the end of the stream too). UDP and raw are always writable.
  if (s.dead) return 0;
  std::uint8_t ev = 0;
  if (s.type == 1) {
    if (s.listening) return s.backlog.empty() ? 0 : IN;
    if (!s.tcp_sock && !s.eof) return 0;
    if (!s.rx.empty()) ev |= IN;
    if (s.eof) {
      ev |= HUP;
      if (cfg_.sm_eof_pollin) ev |= IN;
    } else {
      ev |= OUT;
    }
    return ev;
  }
  if (s.type == 2 && !s.datagrams.empty()) ev |= IN;
  return ev | OUT;
}

void Simulator::sm_poll_check(SmSocket& s) {
  if (!s.armed) return;
  const std::uint8_t ev = sm_state_events(s) & s.events;
  if (!ev) return;
  s.armed = false;  // one-shot
  s.revents |= ev;
  sm_poll_schedule();
}

void Simulator::sm_update_poll(SmSocket& s, std::uint8_t events, bool update_xapoll) {
  // update_poll_events(): nothing once POLLERR/POLLHUP/POLLNVAL was seen; otherwise add the events (and to the
  // #XAPOLL ones those requested) and register the callback again, which fires at once if they hold already.
  if (s.disable) return;
  if (update_xapoll) s.xapoll_events |= s.xapoll_requested & events;
  s.events |= events;
  s.armed = true;
  sm_poll_check(s);
}

void Simulator::sm_poll_schedule() {
  if (sm_poll_posted_) return;
  sm_poll_posted_ = true;
  asio::post(io_, [this, e = epoch_] {
    if (e != epoch_) return;
    sm_poll_posted_ = false;
    sm_poll_work();
  });
}

void Simulator::sm_poll_work() {
  // poll_work_fn() on SM's work queue.
  if (booting_) return;
  if (mode_ == Mode::Command && busy_) {
    sm_poll_deferred_ = true;  // the work queue is busy with a command
    return;
  }
  if (mode_ != Mode::Null && line_.backlog() >= kTxHigh) {
    // The work queue blocks on a full UART TX ring: nothing more is read from the sockets meanwhile.
    if (!sm_poll_tx_wait_) {
      sm_poll_tx_wait_ = true;
      when_tx_ready([this, e = epoch_] {
        if (e != epoch_) return;
        sm_poll_tx_wait_ = false;
        sm_poll_schedule();
      });
    }
    return;
  }
  const bool at_mode = mode_ == Mode::Command;
  const bool data_mode = mode_ == Mode::Data;
  std::vector<int> fds;
  for (const auto& [fd, s] : sm_socks_) fds.push_back(fd);
  for (int fd : fds) {
    auto* sp = sm_find(fd);
    if (!sp) continue;
    auto& s = *sp;
    const std::uint8_t revents = s.revents;
    s.revents = 0;
    if (!at_mode) s.delayed |= revents;  // kept for when AT mode returns (sm_dm_exit schedules this work)
    if (!at_mode && !data_mode) continue;
    if (data_mode && fd != dm_socket_) continue;
    if (at_mode && s.delayed) {
      // Back from data mode: register everything seen meanwhile again to learn what still holds.
      const std::uint8_t d = s.delayed | revents;
      s.disable = false;
      s.delayed = 0;
      sm_update_poll(s, d, true);
      continue;
    }
    if (!data_mode) {
      const std::uint8_t x = revents & s.xapoll_events;
      s.xapoll_events &= static_cast<std::uint8_t>(~x);  // each event once, until a send/recv re-arms it
      if (x) {
        ++stats_.urcs;
        emit(crlf("#XAPOLL: " + std::to_string(fd) + "," + std::to_string(x)));
      }
    }
    if (revents & OUT) s.events &= static_cast<std::uint8_t>(~OUT);
    if (revents & (ERR | NVAL | HUP)) s.disable = true;
    if (revents & IN) {
      s.events &= static_cast<std::uint8_t>(~IN);
      if ((at_mode && (s.adr_flags & 1)) || (data_mode && (s.adr_flags & 2))) {
        sm_auto_receive(s);
        if (booting_) return;  // a payload fault rebooted the modem
      }
    }
    sm_update_poll(s, 0, false);
    if (data_mode) {
      // Data mode ends on an error of its socket: "+++" to the host, then null mode.
      const int err = (revents & ERR)    ? -nerr::EIO_
                      : (revents & NVAL) ? -nerr::ENETDOWN_
                      : (revents & HUP)  ? -nerr::ECONNRESET_
                                         : 0;
      if (err) sm_dm_fail(err);
    }
  }
}

}  // namespace slmsim
