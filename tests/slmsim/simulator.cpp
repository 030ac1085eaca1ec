// slmsim: core of the simulated firmware — input pumping, command dispatch, response framing, URC
// routing, boot/reboot, the modem model (CFUN, CEREG, CGPADDR and a few harmless pass-through
// commands) and the generic SLM commands (#XSLMVER, #XRESET, #XMODEMRESET, #XDATACTRL,
// #XGETADDRINFO; the last two serve the Serial Modem profiles too).
#include "simulator.hpp"

#include <algorithm>
#include <boost/asio/post.hpp>
#include <cctype>
#include <sstream>

#include "newlib_errno.hpp"
#include "trace.hpp"

namespace slmsim {

namespace asio = boost::asio;

namespace {
std::string upper(std::string_view s) {
  std::string o(s);
  for (auto& c : o) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return o;
}
}  // namespace

std::string Stats::to_string() const {
  std::ostringstream o;
  o << "bytes_rx=" << bytes_rx << " bytes_tx=" << bytes_tx << " commands=" << commands << " oks=" << oks
    << " errors=" << errors << " resets=" << resets << " urcs=" << urcs << " urcs_dropped=" << urcs_dropped
    << " noise_bytes=" << noise_bytes << " payload_faults=" << payload_faults << " payload_faults_in_data_mode=" << payload_faults_in_data_mode
    << " payload_bytes_dropped=" << payload_bytes_dropped << " datamode_entries=" << datamode_entries
    << " tcp_connects=" << tcp_connects << " tcp_up_bytes=" << tcp_up_bytes << " tcp_down_bytes=" << tcp_down_bytes
    << " udp_up_datagrams=" << udp_up_datagrams << " udp_down_datagrams=" << udp_down_datagrams;
  return o.str();
}

Simulator::Simulator(asio::io_context& io, Config cfg, HostLine& line)
    : io_(io),
      cfg_(std::move(cfg)),
      p_(cfg_.profile),
      line_(line),
      asm_(cfg_.profile.max_line),
      creds_(cfg_.cred_dir),
      boot_timer_(io),
      attach_timer_(io),
      interleave_timer_(io),
      dm_timer_(io),
      connect_timer_(io),
      sm_asm_(cfg_.profile.sm_preview) {}

Simulator::~Simulator() { close_all_silently(); }

void Simulator::start() { reboot(cfg_.boot_delay_ms); }

// ---------------------------------------------------------------------------------------------
// Input

void Simulator::host_bytes(std::string_view chunk) {
  if (chunk.empty()) return;
  stats_.bytes_rx += chunk.size();
  if (trace_) trace_->log("H>M", chunk);
  if (booting_) return;                                        // nobody listens during a reboot
  if (busy_ && p_.rx_disabled_while_executing) return;         // ≤v2.4: UART RX is off meanwhile
  rx_.emplace_back(chunk);
  pump();
}

void Simulator::schedule_pump() {
  if (pump_posted_) return;
  pump_posted_ = true;
  asio::post(io_, [this, e = epoch_] {
    pump_posted_ = false;
    if (e == epoch_) pump();
  });
}

void Simulator::pump() {
  if (pumping_) return;
  pumping_ = true;
  while (!rx_.empty() && !busy_ && !booting_) {
    std::string chunk = std::move(rx_.front());
    rx_.pop_front();
    if (mode_ == Mode::Command) {
      for (std::size_t i = 0; i < chunk.size(); ++i) {
        feed_command_byte(chunk[i]);
        if (booting_) break;
        if (busy_ || mode_ != Mode::Command) {
          if (i + 1 < chunk.size()) rx_.push_front(chunk.substr(i + 1));
          break;
        }
      }
      if (p_.sm && !booting_) sm_flush_echo();
    } else if (p_.sm) {
      sm_dm_chunk(chunk);
    } else {
      dm_chunk(chunk);
    }
  }
  pumping_ = false;
}

void Simulator::feed_command_byte(char c) {
  if (p_.sm) return sm_feed_command_byte(c);
  switch (asm_.feed(c)) {
    case LineAssembler::Event::None:
      return;
    case LineAssembler::Event::Overflow:
      ++stats_.commands;
      busy_ = true;
      finish(false);
      return;
    case LineAssembler::Event::Line:
      on_line(asm_.line());
      return;
  }
}

void Simulator::on_line(const std::string& line) {
  ++stats_.commands;
  if (hung_) return;  // control "hang": commands vanish unanswered
  std::string_view s = line;
  busy_ = true;
  if (refuse_left_ > 0 && s.starts_with(refuse_prefix_)) {
    --refuse_left_;
    return finish(false);
  }
  if (p_.sm) {
    // The AT host hands the line to the modem library with "%s": it ends at a NUL.
    s = s.substr(0, s.find('\0'));
    if (!sm_grammar_ok(s)) return finish(false);
    return sm_dispatch(split_command(s));
  }
  if (p_.skip_junk_before_at) {
    auto j = skip_junk(s);
    if (!j) return finish(false);
    s = *j;
  }
  if (!grammar_ok(s)) return finish(false);
  dispatch(split_command(s));
}

bool Simulator::match_slm(const Cmd& c, const char* name) const {
  switch (p_.case_rule) {
    case CaseRule::Sensitive:
      return c.at == "AT" && c.name == name;
    case CaseRule::UpperCase:
    case CaseRule::Insensitive:
      return upper(c.name) == name;
  }
  return false;
}

void Simulator::dispatch(const Cmd& c) {
  struct Entry {
    const char* name;
    void (Simulator::*fn)(const Cmd&);
    bool available;
  };
  const Entry table[] = {
      {"#XSLMVER", &Simulator::cmd_slmver, true},
      {"#XRESET", &Simulator::cmd_reset, true},
      {"#XMODEMRESET", &Simulator::cmd_modemreset, p_.modemreset},
      {"#XDATACTRL", &Simulator::cmd_datactrl, true},
      {"#XGETADDRINFO", &Simulator::cmd_getaddrinfo, true},
      {"#XTCPCLI", &Simulator::cmd_tcpcli, true},
      {"#XTCPSVR", &Simulator::cmd_tcpsvr, true},
      {"#XTCPSEND", &Simulator::cmd_tcpsend, true},
      {"#XTCPHANGUP", &Simulator::cmd_tcphangup, true},
      {"#XUDPCLI", &Simulator::cmd_udpcli, true},
      {"#XUDPSVR", &Simulator::cmd_udpsvr, true},
      {"#XUDPSEND", &Simulator::cmd_udpsend, true},
      {"#XCMNG", &Simulator::cmd_xcmng, cfg_.native_tls},
      {"#XSOCKET", &Simulator::cmd_socket, true},
      {"#XSOCKETSELECT", &Simulator::cmd_socketselect, true},
      {"#XSSOCKET", &Simulator::cmd_ssocket, true},
      {"#XSSOCKETOPT", &Simulator::cmd_ssocketopt, true},
      {"#XCONNECT", &Simulator::cmd_connect, true},
      {"#XSEND", &Simulator::cmd_send, true},
      {"#XRECV", &Simulator::cmd_recv, true},
      {"#XPOLL", &Simulator::cmd_poll, true},
      {"#XAPOLL", &Simulator::cmd_apoll, p_.at_least(3, 1)},
      {"#XSENDTO", &Simulator::cmd_sendto, true},
      {"#XRECVFROM", &Simulator::cmd_recvfrom, true},
  };
  for (const auto& e : table) {
    if (e.available && match_slm(c, e.name)) return (this->*e.fn)(c);
  }
  modem_command(c);  // not intercepted: the modem answers
}

std::optional<std::vector<Param>> Simulator::params(const Cmd& c) const {
  return parse_params(c.args, p_.strict_integers, p_.space_before_param);
}

// ---------------------------------------------------------------------------------------------
// Output

void Simulator::emit(std::string bytes) {
  if (bytes.empty()) return;
  stats_.bytes_tx += bytes.size();
  if (trace_) trace_->log("M>H", bytes);
  line_.write(std::move(bytes));
}

void Simulator::info(const std::string& line) {
  emit(crlf(line));
  if (interleave_) flush_interleave();  // the legal-but-nasty spot: between a response line and OK
}

void Simulator::finish(bool ok) {
  if (!busy_) return;
  if (interleave_) flush_interleave();
  emit(ok ? "\r\nOK\r\n" : "\r\nERROR\r\n");
  ++(ok ? stats_.oks : stats_.errors);
  busy_ = false;
  auto urcs = std::move(deferred_modem_urcs_);
  deferred_modem_urcs_.clear();
  for (auto& u : urcs) modem_urc(u);
  schedule_pump();
  if (p_.sm) sm_command_done();
}

void Simulator::modem_reply(const std::vector<std::string>& lines, bool ok) {
  // Pass-through framing: CRLF before the modem's text, and another before the final result if
  // information lines precede it. One TX write.
  std::string out;
  if (!lines.empty()) {
    out = "\r\n";
    for (const auto& l : lines) out += l + "\r\n";
  }
  out += ok ? "\r\nOK\r\n" : "\r\nERROR\r\n";
  if (!busy_) return;
  emit(std::move(out));
  ++(ok ? stats_.oks : stats_.errors);
  busy_ = false;
  auto urcs = std::move(deferred_modem_urcs_);
  deferred_modem_urcs_.clear();
  for (auto& u : urcs) modem_urc(u);
  schedule_pump();
  if (p_.sm) sm_command_done();
}

void Simulator::modem_cme(int code) {
  if (!busy_) return;
  emit(cmee_ ? "\r\n+CME ERROR: " + std::to_string(code) + "\r\n" : std::string("\r\nERROR\r\n"));
  ++stats_.errors;
  busy_ = false;
  auto urcs = std::move(deferred_modem_urcs_);
  deferred_modem_urcs_.clear();
  for (auto& u : urcs) modem_urc(u);
  schedule_pump();
  if (p_.sm) sm_command_done();
}

void Simulator::modem_urc(const std::string& text) {
  if (p_.sm && !booting_ && mode_ != Mode::Command) {
    deferred_modem_urcs_.push_back(text);  // SM buffers URCs during data mode and sends them after it
    return;
  }
  if (booting_ || mode_ != Mode::Command) {
    ++stats_.urcs_dropped;  // data mode and null mode: dropped, not buffered
    return;
  }
  if (busy_) {
    deferred_modem_urcs_.push_back(text);  // the AT host workqueue: only between commands
    return;
  }
  ++stats_.urcs;
  emit(crlf(text));
}

void Simulator::proxy_urc(std::vector<std::string> writes, int source) {
  ++stats_.urcs;
  if (interleave_ && mode_ == Mode::Command) {
    interleave_q_.emplace_back(source, std::move(writes));
    if (!interleave_timer_armed_) {
      interleave_timer_armed_ = true;
      interleave_timer_.expires_after(std::chrono::milliseconds(cfg_.interleave_hold_ms));
      interleave_timer_.async_wait([this, e = epoch_](const boost::system::error_code& ec) {
        if (ec || e != epoch_) return;
        interleave_timer_armed_ = false;
        flush_interleave();
      });
    }
    return;
  }
  for (auto& w : writes) emit(std::move(w));
}

void Simulator::flush_interleave() {
  while (!interleave_q_.empty()) {
    auto [src, u] = std::move(interleave_q_.front());
    interleave_q_.pop_front();
    // A URC from the other proxy's thread between a receive header and its payload: also legal
    // (two separate TX writes). URCs of the same thread never interleave with each other.
    auto other = std::find_if(interleave_q_.begin(), interleave_q_.end(),
                              [s = src](const auto& q) { return q.first != s; });
    if (u.size() == 2 && other != interleave_q_.end()) {
      auto v = std::move(other->second);
      interleave_q_.erase(other);
      emit(std::move(u[0]));
      for (auto& w : v) emit(std::move(w));
      emit(std::move(u[1]));
    } else {
      for (auto& w : u) emit(std::move(w));
    }
  }
}

void Simulator::when_tx_ready(std::function<void()> fn) {
  if (line_.backlog() < kTxHigh) {
    fn();
  } else {
    tx_waiters_.push_back(std::move(fn));
  }
}

void Simulator::tx_drained() {
  if (line_.backlog() >= kTxHigh) return;
  auto w = std::move(tx_waiters_);
  tx_waiters_.clear();
  for (auto& f : w) f();
}

// ---------------------------------------------------------------------------------------------
// Boot and reboot

void Simulator::close_all_silently() {
  close_sockets_silently();
  sm_close_all_silently();
  if (tcp_.tls) tcp_.tls->abort();
  if (udp_.dtls) udp_.dtls->close();
  if (udp_.dtls_server) udp_.dtls_server->close();
  ++tcp_.gen;
  retire(tcp_.sock, true);
  retire(tcp_.acceptor);
  auto tgen = tcp_.gen, agen = tcp_.agen;
  tcp_abort_writes();
  tcp_ = Tcp{};
  tcp_.gen = tgen;
  tcp_.agen = agen + 1;
  ++udp_.gen;
  retire(udp_.sock);
  auto ugen = udp_.gen;
  udp_ = Udp{};
  udp_.gen = ugen;
  fds_.reset();
}

boost::asio::ip::address Simulator::server_address(int op) const {
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(cfg_.listen_address, ec);
  if (ec) addr = asio::ip::make_address("127.0.0.1");
  if (op == 2 && addr.is_v4()) addr = asio::ip::make_address("::1");
  return addr;
}

void Simulator::reboot(int delay_ms) {
  ++epoch_;
  booting_ = true;
  close_all_silently();
  boot_timer_.cancel();
  attach_timer_.cancel();
  interleave_timer_.cancel();
  interleave_timer_armed_ = false;
  dm_timer_.cancel();
  connect_timer_.cancel();
  rx_.clear();
  asm_.reset();
  sm_asm_.reset();
  sm_echo_ = false;
  sm_echo_buf_.clear();
  sm_adr_flags_ = 0;
  sm_adr_hex_ = false;
  sm_xapoll_requested_ = 0;
  sm_udp_url_.clear();
  dm_len_ = 0;
  sm_null_match_ = 0;
  sm_poll_posted_ = sm_poll_deferred_ = sm_poll_tx_wait_ = false;
  busy_ = false;
  mode_ = Mode::Command;
  deferred_modem_urcs_.clear();
  interleave_q_.clear();
  tx_waiters_.clear();
  cfun_ = 0;
  cereg_n_ = 0;
  reg_stat_ = 0;
  cmee_ = 0;
  udp_stale_peer_.clear();
  dm_buf_.clear();
  dm_hold_.clear();
  dm_error_ = 0;
  datactrl_ = 0;
  auto ready = [this, e = epoch_] {
    if (e != epoch_) return;
    booting_ = false;
    emit("Ready\r\n");
    if (cfg_.auto_connect) set_cfun(1);
  };
  if (delay_ms <= 0) {
    ready();
    return;
  }
  boot_timer_.expires_after(std::chrono::milliseconds(delay_ms));
  boot_timer_.async_wait([ready](const boost::system::error_code& ec) {
    if (!ec) ready();
  });
}

int Simulator::alloc_fd() {
  for (int i = 0; i < 8; ++i) {
    if (!fds_.test(i)) {
      fds_.set(i);
      return i;
    }
  }
  return -1;
}

void Simulator::free_fd(int& fd) {
  if (fd >= 0 && fd < 8) fds_.reset(fd);
  fd = -1;
}

// ---------------------------------------------------------------------------------------------
// The modem (pass-through commands)

std::string Simulator::cereg_text(bool urc) const {
  std::string s = "+CEREG: ";
  if (!urc) s += std::to_string(cereg_n_) + ",";
  s += std::to_string(reg_stat_);
  if (cereg_n_ >= 2) {
    if (reg_stat_ == 1 || reg_stat_ == 5) {
      s += ",\"0001\",\"01A2B3C4\",7";
      if (cereg_n_ >= 4) s += ",,,\"11100000\",\"11100000\"";
    } else if (reg_stat_ == 2) {
      s += ",\"FFFE\",\"FFFFFFFF\",7";
    }
  }
  return s;
}

void Simulator::set_reg(int stat) {
  if (stat == reg_stat_) return;
  bool was_attached = attached();
  reg_stat_ = stat;
  if (cereg_n_ >= 1) modem_urc(cereg_text(true));
  if (was_attached && !attached()) network_lost();
}

void Simulator::network_lost() {
  // libmodem reports POLLHUP on the proxies' sockets.
  if (tcp_.role == TcpRole::Client && tcp_.sock) tcp_lost(-nerr::ECONNRESET_);
  else if (tcp_.role == TcpRole::Server && tcp_.sock) tcp_lost(-nerr::ECONNRESET_);
  if (udp_.role == UdpRole::Client) udp_close(true, -nerr::ECONNRESET_);
  if (p_.sm) sm_network_lost();
}

void Simulator::set_cfun(int n) {
  bool online = (n == 1 || n == 21 || n == 41);
  bool offline = (n == 0 || n == 4 || n == 20 || n == 40 || n == 44);
  if (n == 0 || n == 1 || n == 4) cfun_ = n;
  if (online) {
    cfun_ = 1;
    if (attached() || reg_stat_ == 2) return;
    if (!network_) {
      asio::post(io_, [this, e = epoch_] {
        if (e == epoch_ && cfun_ == 1 && reg_stat_ == 0) set_reg(2);
      });
      return;
    }
    asio::post(io_, [this, e = epoch_] {
      if (e == epoch_ && cfun_ == 1 && reg_stat_ == 0) set_reg(2);
    });
    attach_timer_.expires_after(std::chrono::milliseconds(cfg_.attach_delay_ms));
    attach_timer_.async_wait([this, e = epoch_](const boost::system::error_code& ec) {
      if (ec || e != epoch_ || cfun_ != 1 || !network_) return;
      set_reg(1);
    });
  } else if (offline) {
    if (n == 0 || n == 4) cfun_ = n;
    attach_timer_.cancel();
    set_reg(0);
  }
}

void Simulator::modem_command(const Cmd& c) {
  std::string name = upper(c.name);
  using K = Cmd::Kind;
  auto ok = [this](std::vector<std::string> lines = {}) { modem_reply(lines, true); };
  auto error = [this] { modem_reply({}, false); };

  if (name.empty()) return c.kind == K::Action ? ok() : error();
  if (name == "+CFUN") {
    if (c.kind == K::Read) return ok({"+CFUN: " + std::to_string(cfun_)});
    if (c.kind == K::Test) return ok({"+CFUN: (0,1,4,20,21,30,31,40,41,44)"});
    if (c.kind != K::Set) return error();
    auto ps = parse_params(c.args, false, true);
    if (!ps || ps->empty() || (*ps)[0].type != Param::Type::Int) return error();
    int n = static_cast<int>((*ps)[0].i);
    static const int valid[] = {0, 1, 4, 20, 21, 30, 31, 40, 41, 44};
    if (std::find(std::begin(valid), std::end(valid), n) == std::end(valid)) return error();
    ok();
    set_cfun(n);
    return;
  }
  if (name == "+CEREG") {
    if (c.kind == K::Read) return ok({cereg_text(false)});
    if (c.kind == K::Test) return ok({"+CEREG: (0-5)"});
    if (c.kind != K::Set) return error();
    auto ps = parse_params(c.args, false, true);
    if (!ps || ps->size() != 1 || (*ps)[0].type != Param::Type::Int) return error();
    auto n = (*ps)[0].i;
    if (n < 0 || n > 5) return error();
    cereg_n_ = static_cast<int>(n);
    return ok();
  }
  if (name == "+CGPADDR") {
    std::string line = "+CGPADDR: 0,\"" + cfg_.ipv4_address + "\"";
    if (!cfg_.ipv6_address.empty()) line += ",\"" + cfg_.ipv6_address + "\"";
    if (c.kind == K::Test) return ok({"+CGPADDR: (0)"});
    if (c.kind == K::Action) return attached() ? ok({line}) : ok();
    if (c.kind != K::Set) return error();
    auto ps = parse_params(c.args, false, true);
    if (!ps || ps->size() != 1 || (*ps)[0].type != Param::Type::Int || (*ps)[0].i != 0) return error();
    return attached() ? ok({line}) : error();
  }
  if (name == "+CMEE") {
    if (c.kind == K::Read) return ok({"+CMEE: " + std::to_string(cmee_)});
    if (c.kind == K::Test) return ok({"+CMEE: (0,1)"});
    if (c.kind != K::Set) return error();
    auto ps = parse_params(c.args, false, true);
    if (!ps || ps->size() != 1 || (*ps)[0].type != Param::Type::Int || (*ps)[0].i < 0 || (*ps)[0].i > 1)
      return error();
    cmee_ = static_cast<int>((*ps)[0].i);
    return ok();
  }
  if (name == "%CMNG") return cmd_cmng(c);
  if (c.kind == K::Action) {
    if (name == "+CGMI") return ok({"Nordic Semiconductor ASA"});
    if (name == "+CGMM") return ok({p_.cgmm});
    if (name == "+CGMR") return ok({p_.cgmr});
    if (name == "+CGSN") return ok({"352656100000000"});
    if (name == "+CIMI") return ok({"001010123456789"});
  }
  // Harmless configuration commands the modem accepts.
  static const char* harmless_set[] = {"+CNEC", "+CGEREP", "+CSCON", "%XSYSTEMMODE", "+CPSMS",
                                       "+CEDRXS", "%XBANDLOCK", "+CGDCONT", "%XDATAPRFL", "%REL14FEAT",
                                       "%XPOFWARN", "%MDMEV", "%XTIME", "+CTZR", "%CESQ", "+CSCS"};
  if (c.kind == K::Set) {
    for (const char* h : harmless_set)
      if (name == h) return ok();
  }
  return error();
}

// ---------------------------------------------------------------------------------------------
// Generic SLM commands

void Simulator::cmd_slmver(const Cmd& c) {
  if (c.kind != Cmd::Kind::Action) return finish(false);
  info("#XSLMVER: \"" + p_.ncs_version + "\",\"" + p_.libmodem_version + "\"");
  finish(true);
}

void Simulator::cmd_reset(const Cmd& c) {
  if (c.kind != Cmd::Kind::Action) return finish(false);
  finish(true);
  booting_ = true;  // nothing is read between the OK and "Ready"
  ++stats_.resets;
  auto e = epoch_;
  boot_timer_.expires_after(std::chrono::milliseconds(cfg_.reset_delay_ms));
  boot_timer_.async_wait([this, e](const boost::system::error_code& ec) {
    if (!ec && e == epoch_) reboot(cfg_.boot_delay_ms);
  });
}

std::shared_ptr<TlsBridge> Simulator::start_tls_client(tcp::socket net, std::int64_t sec_tag, const TlsOptions& opt,
                                                        TlsClientDone done) {
  std::string why;
  SSL_CTX* ctx = make_ssl_ctx(creds_, sec_tag, opt, why);
  if (!ctx) {
    if (trace_) trace_->note("tls: sec_tag " + std::to_string(sec_tag) + ": " + why);
    return nullptr;
  }
  auto bridge = std::make_shared<TlsBridge>(io_, std::move(net), ctx, opt);
  SSL_CTX_free(ctx);
  std::weak_ptr<TlsBridge> w = bridge;
  bridge->start(
      [this, w, done = std::move(done)](int err, std::shared_ptr<tcp::socket> plain) {
        auto b = w.lock();
        if (!b) return;
        if (err && trace_) trace_->note("tls: handshake failed: " + b->failure());
        // Posted: a handshake that fails at once must not answer before the caller has stored the bridge.
        asio::post(io_, [done, err, b, plain = std::move(plain)]() mutable { done(err, b, std::move(plain)); });
      },
      cfg_.tls_handshake_timeout_ms);
  return bridge;
}

std::shared_ptr<DtlsBridge> Simulator::start_dtls_client(
    udp::socket net, std::int64_t sec_tag, const TlsOptions& opt, DtlsClientDone done,
    std::function<void(const std::shared_ptr<DtlsBridge>&)> lost) {
  std::string why;
  SSL_CTX* ctx = make_ssl_ctx(creds_, sec_tag, opt, why);
  if (!ctx) {
    if (trace_) trace_->note("dtls: sec_tag " + std::to_string(sec_tag) + ": " + why);
    return nullptr;
  }
  auto bridge = std::make_shared<DtlsBridge>(io_, std::move(net), ctx, opt);
  SSL_CTX_free(ctx);
  std::weak_ptr<DtlsBridge> w = bridge;
  bridge->start(
      [this, w, done = std::move(done)](int err, std::shared_ptr<udp::socket> plain) {
        auto b = w.lock();
        if (!b) return;
        if (err && trace_) trace_->note("dtls: handshake failed: " + b->failure());
        // Posted, as for TLS: the caller stores the bridge first.
        asio::post(io_, [done, err, b, plain = std::move(plain)]() mutable { done(err, b, std::move(plain)); });
      },
      [w, lost = std::move(lost)] {
        if (auto b = w.lock()) lost(b);
      },
      cfg_.tls_handshake_timeout_ms);
  return bridge;
}

auto Simulator::dtls_peer_socket(const udp::endpoint& to, bool blackhole) -> std::optional<udp::socket> {
  if (blackhole) {
    // Nobody answers the ClientHello: the handshake times out, and the connect with it.
    connect_timer_.expires_after(std::chrono::milliseconds(cfg_.tls_handshake_timeout_ms));
    connect_timer_.async_wait([this, e = epoch_](const boost::system::error_code& ec) {
      if (!ec && e == epoch_) finish(false);
    });
    return std::nullopt;
  }
  udp::socket net(io_);
  boost::system::error_code ec;
  net.open(to.protocol(), ec);
  if (!ec) net.connect(to, ec);
  if (ec) {
    finish(false);
    return std::nullopt;
  }
  return net;
}

void Simulator::cmd_modemreset(const Cmd& c) {
  if (c.kind != Cmd::Kind::Action) return finish(false);
  info("#XMODEMRESET: 0");
  finish(true);
  set_cfun(0);
}

int Simulator::dm_time_limit() const { return datactrl_ ? datactrl_ : cfg_.datamode_min_ms(); }

void Simulator::cmd_datactrl(const Cmd& c) {
  int min = cfg_.datamode_min_ms();
  if (c.kind == Cmd::Kind::Read) {
    info("#XDATACTRL: " + std::to_string(datactrl_) + "," + std::to_string(min));
    return finish(true);
  }
  if (c.kind == Cmd::Kind::Test) {
    info("#XDATACTRL=<time_limit>");
    return finish(true);
  }
  if (c.kind != Cmd::Kind::Set) return finish(false);
  auto ps = params(c);
  if (!ps || ps->size() != 1 || (*ps)[0].type != Param::Type::Int) return finish(false);
  auto v = (*ps)[0].i;
  const std::int64_t max = p_.sm ? 0xffff : 0x7fffffff;  // SM: a uint16_t
  if (v < min || v > max || (p_.datactrl_rejects_zero && v == 0)) return finish(false);
  datactrl_ = static_cast<int>(v);
  finish(true);
}

// Also the Serial Modem's (sm_at_socket.c, handle_at_getaddrinfo() of v1.0.x and v2.0.0-preview1).
void Simulator::cmd_getaddrinfo(const Cmd& c) {
  if (c.kind != Cmd::Kind::Set) return finish(false);
  auto ps = params(c);
  if (!ps || ps->empty() || (*ps)[0].type != Param::Type::Str) return finish(false);
  int family = 0;
  if (ps->size() == 2) {
    if (!p_.gai_family || (*ps)[1].type != Param::Type::Int || (*ps)[1].i < 0 || (*ps)[1].i > 2)
      return finish(false);
    family = static_cast<int>((*ps)[1].i);
  } else if (ps->size() > 2) {
    return finish(false);
  }
  const std::string& host = (*ps)[0].s;
  if (host.size() > 127) return finish(false);
  if (!attached()) {
    info("#XGETADDRINFO: \"EAI_AGAIN\"");
    return finish(false);
  }
  auto addrs = cfg_.net.resolve(host, family);
  if (addrs.empty()) {
    info("#XGETADDRINFO: \"EAI_NONAME\"");
    return finish(false);
  }
  // Firmware bug (SLM v1.9–v3.1, SM v1.0.x and v2.0.0-preview1): the loop walks the results but converts
  // result->ai_addr, the first one, every time; so the first address is repeated once per result.
  std::string list;
  for (std::size_t i = 0; i < addrs.size(); ++i) list += (i ? " " : "") + addrs[0].to_string();
  info("#XGETADDRINFO: \"" + list + "\"");
  finish(true);
}

}  // namespace slmsim

namespace slmsim {

// ---------------------------------------------------------------------------------------------
// Credentials: AT%CMNG (the modem's store) and AT#XCMNG (native TLS; the same store in the simulator)

namespace {
bool hex_string(const std::string& s) {
  if (s.empty() || s.size() % 2) return false;
  return std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isxdigit(c) != 0; });
}
}  // namespace

void Simulator::cmd_cmng(const Cmd& c) {
  // nRF91 AT command reference, %CMNG: 0 write, 1 list, 2 read, 3 delete.
  constexpr int kNotAllowedInActiveState = 518, kNotFound = 513, kNoAccess = 514;
  auto error = [this] { modem_reply({}, false); };
  if (c.kind == Cmd::Kind::Test) return modem_reply({"%CMNG: (0-3),,(0-4)"}, true);
  if (c.kind != Cmd::Kind::Set) return error();
  auto ps = parse_params(c.args, false, true);
  if (!ps || ps->empty() || (*ps)[0].type != Param::Type::Int) return error();
  const auto& v = *ps;
  auto op = v[0].i;
  auto int_at = [&](std::size_t i) { return i < v.size() && v[i].type == Param::Type::Int; };
  if (op == 1) {
    if (v.size() > 3) return error();
    std::optional<std::int64_t> tag;
    std::optional<int> type;
    if (v.size() >= 2 && v[1].type != Param::Type::Empty) {
      if (!int_at(1) || !CredStore::valid_tag(v[1].i)) return error();
      tag = v[1].i;
    }
    if (v.size() == 3) {
      if (!int_at(2) || !CredStore::valid_type(v[2].i)) return error();
      type = static_cast<int>(v[2].i);
    }
    std::vector<std::string> lines;
    for (const auto& [t, ty] : creds_.list(tag, type))
      lines.push_back("%CMNG: " + std::to_string(t) + "," + std::to_string(ty) + ",\"" +
                      CredStore::sha256_hex(creds_.get(t, ty)->content) + "\"");
    return modem_reply(lines, true);
  }
  if (op != 0 && op != 2 && op != 3) return error();
  if (!int_at(1) || !int_at(2) || !CredStore::valid_tag(v[1].i) || !CredStore::valid_type(v[2].i)) return error();
  auto tag = v[1].i;
  int type = static_cast<int>(v[2].i);
  if (op == 0) {
    if (v.size() < 4 || v.size() > 5 || v[3].type != Param::Type::Str) return error();
    if (v.size() == 5 && v[4].type != Param::Type::Str) return error();
    if (v[3].s.empty() || (type == CredPsk && !hex_string(v[3].s))) return error();
    if (cfun_ == 1) return modem_cme(kNotAllowedInActiveState);
    creds_.put(tag, type, v[3].s, v.size() == 5 ? v[4].s : std::string());
    return modem_reply({}, true);
  }
  if (v.size() != 3) return error();
  if (op == 2) {
    if (type != CredCa && type != CredClientCert) return modem_cme(kNoAccess);  // keys and PSKs are write-only
    const auto* e = creds_.get(tag, type);
    if (!e) return modem_cme(kNotFound);
    return modem_reply({"%CMNG: " + std::to_string(tag) + "," + std::to_string(type) + ",\"" +
                        CredStore::sha256_hex(e->content) + "\",\"" + e->content + "\""},
                       true);
  }
  // op 3: delete
  if (cfun_ == 1) return modem_cme(kNotAllowedInActiveState);
  if (!creds_.erase(tag, type)) return modem_cme(kNotFound);
  modem_reply({}, true);
}

void Simulator::cmd_xcmng(const Cmd& c) {
  // SLM's own store (Zephyr settings) in native-TLS builds: 0 write, 1 list, 3 delete; any CFUN.
  if (c.kind == Cmd::Kind::Test) {
    info("#XCMNG: (0,1,3),<sec_tag>,(0-4),<content>");
    return finish(true);
  }
  if (c.kind != Cmd::Kind::Set) return finish(false);
  auto ps = params(c);
  if (!ps || (*ps)[0].type != Param::Type::Int) return finish(false);
  const auto& v = *ps;
  auto op = v[0].i;
  auto int_at = [&](std::size_t i) { return i < v.size() && v[i].type == Param::Type::Int; };
  if (op == 1) {
    if (v.size() > 3) return finish(false);
    std::optional<std::int64_t> tag;
    std::optional<int> type;
    if (v.size() >= 2) {
      if (!int_at(1) || !CredStore::valid_tag(v[1].i)) return finish(false);
      tag = v[1].i;
    }
    if (v.size() == 3) {
      if (!int_at(2) || !CredStore::valid_type(v[2].i)) return finish(false);
      type = static_cast<int>(v[2].i);
    }
    for (const auto& [t, ty] : creds_.list(tag, type))
      info("#XCMNG: " + std::to_string(t) + "," + std::to_string(ty));
    return finish(true);
  }
  if (op != 0 && op != 3) return finish(false);
  if (!int_at(1) || !int_at(2) || !CredStore::valid_tag(v[1].i) || !CredStore::valid_type(v[2].i))
    return finish(false);
  auto tag = v[1].i;
  int type = static_cast<int>(v[2].i);
  if (op == 0) {
    if (v.size() != 4 || v[3].type != Param::Type::Str || v[3].s.empty()) return finish(false);
    if (type == CredPsk && !hex_string(v[3].s)) return finish(false);
    creds_.put(tag, type, v[3].s);
    return finish(true);
  }
  if (v.size() != 3 || !creds_.erase(tag, type)) return finish(false);
  finish(true);
}

}  // namespace slmsim
