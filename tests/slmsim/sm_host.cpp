// slmsim: the Serial Modem's AT host (ncs-serial-modem v1.0.x and v2.0.0-preview1: app/src/sm_at_host.c and
// sm_at_commands.c) — command-mode bytes with echo (ATE0/ATE1), the custom-command dispatch (SM's commands by
// their exact name; anything else goes to the modem, which answers the old SLM commands ERROR), #XSMVER, #XRESET,
// #XMODEMRESET, and data mode: <data_len> counting or the "+++" rule, the 4096-byte buffer and its inactivity
// flush, one UDP datagram per send (more than a buffer: -EOVERFLOW), the error path ("+++" to the host, input
// dropped until the host's "+++", #XDATAMODE: -1) and the URCs and socket events held back until AT mode returns.
// Line assembly is SmLineAssembler (command_line.cpp); the sockets are in sm_socket.cpp.
#include <boost/asio/post.hpp>

#include "newlib_errno.hpp"
#include "simulator.hpp"

namespace slmsim {

namespace {
constexpr std::size_t kDataModeBuf = 4096;  // CONFIG_SM_DATAMODE_BUF_SIZE
const std::string kTerm = "+++";           // CONFIG_SM_DATAMODE_TERMINATOR
constexpr int kResponseDelayMs = 50;        // SM_UART_RESPONSE_DELAY (final_call())

bool ends_with(const std::string& s, const std::string& t) {
  return s.size() >= t.size() && s.compare(s.size() - t.size(), t.size(), t) == 0;
}
}  // namespace

// ---------------------------------------------------------------------------------------------
// Command mode

void Simulator::sm_feed_command_byte(char c) {
  const auto ev = sm_asm_.feed(c);
  // With echo on, every byte the command-mode handler consumes goes back (skipped ones and the CR too); preview1
  // leaves out the byte that overflowed the buffer.
  if (sm_echo_ && !(ev == SmLineAssembler::Event::Overflow && p_.sm_preview)) sm_echo_buf_ += c;
  switch (ev) {
    case SmLineAssembler::Event::None:
      return;
    case SmLineAssembler::Event::Overflow:
      sm_flush_echo();
      ++stats_.commands;
      busy_ = true;
      finish(false);
      return;
    case SmLineAssembler::Event::Line:
      sm_flush_echo();  // the echo goes out before the command runs
      on_line(sm_asm_.line());
      return;
  }
}

void Simulator::sm_flush_echo() {
  if (sm_echo_buf_.empty()) return;
  std::string e;
  e.swap(sm_echo_buf_);
  emit(std::move(e));
}

void Simulator::sm_dispatch(const Cmd& c) {
  struct Entry {
    const char* name;
    void (Simulator::*fn)(const Cmd&);
    bool available;
  };
  const Entry table[] = {
      {"#XSMVER", &Simulator::cmd_smver, true},
      {"#XRESET", &Simulator::cmd_sm_reset, true},
      {"#XMODEMRESET", &Simulator::cmd_sm_modemreset, true},
      {"#XDATACTRL", &Simulator::cmd_datactrl, true},
      {"#XGETADDRINFO", &Simulator::cmd_getaddrinfo, true},
      {"#XSOCKET", &Simulator::cmd_sm_socket, true},
      {"#XSSOCKET", &Simulator::cmd_sm_ssocket, true},
      {"#XCLOSE", &Simulator::cmd_sm_close, true},
      {"#XSOCKETOPT", &Simulator::cmd_sm_socketopt, true},
      {"#XSSOCKETOPT", &Simulator::cmd_sm_ssocketopt, true},
      {"#XBIND", &Simulator::cmd_sm_bind, true},
      {"#XCONNECT", &Simulator::cmd_sm_connect, true},
      {"#XLISTEN", &Simulator::cmd_sm_listen, p_.sm_preview},
      {"#XACCEPT", &Simulator::cmd_sm_accept, p_.sm_preview},
      {"#XSEND", &Simulator::cmd_sm_send, true},
      {"#XSENDTO", &Simulator::cmd_sm_sendto, true},
      {"#XRECV", &Simulator::cmd_sm_recv, true},
      {"#XRECVFROM", &Simulator::cmd_sm_recvfrom, true},
      {"#XAPOLL", &Simulator::cmd_sm_apoll, true},
      {"#XRECVCFG", &Simulator::cmd_sm_recvcfg, true},
      {"E0", &Simulator::cmd_sm_echo, true},
      {"E1", &Simulator::cmd_sm_echo, true},
  };
  for (const auto& e : table) {
    // AT_CMD_CUSTOM filters: the exact (upper-case) name; a lower-case one goes to the modem.
    if (!e.available || c.at != "AT" || c.name != e.name) continue;
    // sm_at_cb_wrapper(): the at_parser must take the parameters before any handler runs.
    if (c.kind == Cmd::Kind::Set && !params(c)) return finish(false);
    return (this->*e.fn)(c);
  }
  modem_command(c);  // not SM's: the modem answers (ERROR for #XSLMVER, #XTCPCLI, #XPOLL, …)
}

void Simulator::sm_command_done() {
  // SM's poll work shares the AT host's work queue: socket events wait for the end of a command.
  if (!sm_poll_deferred_) return;
  sm_poll_deferred_ = false;
  sm_poll_schedule();
}

void Simulator::cmd_smver(const Cmd& c) {
  if (!sm_set(c)) return finish(false);
  // rsp_send("\r\n#XSMVER: %s,%s\r\n", STRINGIFY(SM_VERSION), STRINGIFY(NCS_VERSION_STRING)): both are string
  // literals, so the quotes are printed.
  info("#XSMVER: \"" + p_.sm_version + "\",\"" + p_.ncs_version + "\"");
  finish(true);
}

void Simulator::cmd_sm_echo(const Cmd& c) {
  sm_echo_ = c.name == "E1";
  finish(true);
}

void Simulator::cmd_sm_reset(const Cmd& c) {
  if (!sm_set(c)) return finish(false);
  Cmd action = c;
  action.kind = Cmd::Kind::Action;
  cmd_reset(action);  // OK, then the reboot (final_call() after 50 ms; --reset-delay-ms), then "Ready"
}

void Simulator::cmd_sm_modemreset(const Cmd& c) {
  if (!sm_set(c)) return finish(false);
  // The handler answers nothing (SILENT_AT_COMMAND_RET) and leaves the work to final_call() 50 ms later:
  // CFUN=0, the modem library shut down (every socket with it) and started again, then the answer.
  connect_timer_.expires_after(std::chrono::milliseconds(kResponseDelayMs));
  connect_timer_.async_wait([this, e = epoch_](const boost::system::error_code& ec) {
    if (ec || e != epoch_) return;
    set_cfun(0);
    sm_modem_restarted();
    info("#XMODEMRESET: 0");
    finish(true);
  });
}

// ---------------------------------------------------------------------------------------------
// Data mode

void Simulator::sm_enter_data_mode(int fd, std::size_t len) {
  mode_ = Mode::Data;
  dm_target_ = DmTarget::Socket;
  dm_socket_ = fd;
  dm_len_ = len;
  dm_buf_.clear();
  dm_hold_.clear();
  dm_error_ = 0;
  sm_null_match_ = 0;
  if (datactrl_ == 0) datactrl_ = cfg_.datamode_min_ms();  // set on the first entry
  ++stats_.datamode_entries;
  finish(true);
}

void Simulator::sm_dm_chunk(const std::string& chunk) {
  std::string in = chunk;
  while (!in.empty()) {
    if (mode_ == Mode::Command) {
      rx_.push_front(std::move(in));  // what follows the end of data mode is AT-command input
      break;
    }
    if (mode_ == Mode::Null) {
      // null_handler(): everything is dropped until the host's "+++".
      std::size_t k = 0;
      bool match = false;
      for (; k < in.size() && !match; ++k) {
        if (in[k] == kTerm[sm_null_match_]) {
          match = ++sm_null_match_ == kTerm.size();
        } else {
          sm_null_match_ = 0;
        }
      }
      in.erase(0, k);
      if (!match) break;
      sm_null_match_ = 0;
      sm_dm_exit();
      continue;
    }
    if (dm_len_ > 0) {
      // <data_len>: exactly that many bytes are data, "+++" included; no terminator search.
      const std::size_t take = std::min(dm_len_, in.size());
      const std::size_t used = sm_dm_write(in.substr(0, take));
      if (mode_ != Mode::Data) {
        // A send failed part-way: the count is gone (the firmware's size_t wraps) and the bytes that follow go
        // to the null-mode search for "+++". (v1.0.x drops the rest of that UART buffer unsearched; preview1,
        // byte-wise, searches it, as here.)
        in.erase(0, used);
        continue;
      }
      dm_len_ -= take;
      in.erase(0, take);
      if (dm_len_ == 0) {
        sm_dm_raw_send(false);
        sm_dm_exit();  // after a failed last send: "+++" then #XDATAMODE: -1 at once
      }
      continue;
    }
    // The terminator rule: "+++" anywhere ends data mode; a partial one at the end is held back.
    std::string s = dm_hold_ + in;
    dm_hold_.clear();
    in.clear();
    const auto pos = s.find(kTerm);
    std::size_t hold = 0;
    if (pos == std::string::npos) hold = ends_with(s, "++") ? 2 : (ends_with(s, "+") ? 1 : 0);
    const std::string data = s.substr(0, pos == std::string::npos ? s.size() - hold : pos);
    const std::size_t used = sm_dm_write(data);
    if (mode_ != Mode::Data) {
      in = s.substr(used);
      continue;
    }
    if (pos == std::string::npos) {
      dm_hold_ = s.substr(s.size() - hold);
      break;
    }
    sm_dm_raw_send(false);
    sm_dm_exit();
    in = s.substr(pos + kTerm.size());
  }
  if (mode_ == Mode::Data) dm_restart_timer();
}

std::size_t Simulator::sm_dm_write(const std::string& data) {
  // write_data_buf(): fill the 4096-byte ring; a byte that finds it full sends it first (with MORE_DATA).
  std::size_t k = 0;
  while (k < data.size()) {
    if (dm_buf_.size() >= kDataModeBuf) {
      if (!sm_dm_raw_send(true)) return k + 1;  // the byte that waited is consumed too
      continue;
    }
    const std::size_t n = std::min(kDataModeBuf - dm_buf_.size(), data.size() - k);
    dm_buf_.append(data, k, n);
    k += n;
  }
  return data.size();
}

bool Simulator::sm_dm_raw_send(bool more) {
  if (dm_buf_.empty() || mode_ != Mode::Data) return true;
  std::string data;
  data.swap(dm_buf_);
  auto* s = sm_find(dm_socket_);
  if (!s) return true;
  // socket_datamode_callback(): a datagram must fit the buffer in one piece.
  if (s->type == 2 && more) {
    sm_dm_fail(-nerr::EOVERFLOW_);
    return false;
  }
  int r;
  if (!sm_udp_url_.empty()) {
    r = sm_sendto(*s, std::move(data), sm_udp_url_, sm_udp_port_);  // #XSENDTO's data mode (or a stale udp_url)
  } else {
    r = sm_transmit(*s, std::move(data), std::nullopt, false);
    sm_update_poll(*s, smpoll::OUT, true);  // do_send() re-arms POLLOUT
  }
  if (r < 0) {
    sm_dm_fail(r);
    return false;
  }
  return true;
}

void Simulator::sm_dm_fail(int err) {
  // exit_datamode_handler(): null mode; the handler's DATAMODE_EXIT (SM_DATAMODE_FLAGS_EXIT_HANDLER) sends the
  // terminator to the host. The host's "+++" then ends it with #XDATAMODE: -1.
  if (mode_ == Mode::Data) {
    mode_ = Mode::Null;
    sm_udp_url_.clear();
    emit(kTerm);
  }
  dm_error_ = err ? err : -nerr::EAGAIN_;
  dm_len_ = 0;
  dm_buf_.clear();
  dm_hold_.clear();
  sm_null_match_ = 0;
  ++dm_timer_gen_;
  dm_timer_.cancel();
}

void Simulator::sm_dm_exit() {
  // exit_datamode(): from data mode or from null mode.
  if (mode_ == Mode::Data) sm_udp_url_.clear();  // the handler's DATAMODE_EXIT
  mode_ = Mode::Command;
  dm_len_ = 0;
  dm_buf_.clear();
  dm_hold_.clear();
  sm_null_match_ = 0;
  ++dm_timer_gen_;
  dm_timer_.cancel();
  const int status = dm_error_ ? -1 : 0;  // "Data mode handler error": only 0 or -1 is printed
  dm_error_ = 0;
  emit(crlf("#XDATAMODE: " + std::to_string(status)));
  // Back in AT mode (SM_EVENT_AT_MODE): the URCs buffered meanwhile, then the socket events that waited.
  auto urcs = std::move(deferred_modem_urcs_);
  deferred_modem_urcs_.clear();
  for (auto& u : urcs) modem_urc(u);
  sm_poll_schedule();
  schedule_pump();
}

void Simulator::sm_dm_timer_fired() {
  if (mode_ != Mode::Data) return;
  // inactivity_timer_handler(): nothing happens while the buffer is empty, so a lone held "+" stays held.
  if (dm_buf_.empty()) return;
  std::string held;
  held.swap(dm_hold_);
  sm_dm_write(held);  // raw_send_scheduled(): a partial terminator turned out to be data
  if (mode_ == Mode::Data) sm_dm_raw_send(false);
}

}  // namespace slmsim
