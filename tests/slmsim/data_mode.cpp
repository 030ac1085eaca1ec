// slmsim: data mode — entering it (OK or, on v2.0, nothing), the uplink buffer with its inactivity
// flush, the release's "+++" detection rule, one UDP datagram per flush with overflow → -139, null
// mode after a lost link, and the #XDATAMODE / OK result on exit. (The Serial Modem's data mode is in
// sm_host.cpp; it shares the inactivity timer.)
#include <boost/asio/post.hpp>

#include "newlib_errno.hpp"
#include "simulator.hpp"

namespace slmsim {

namespace {
constexpr std::size_t kDataModeBuf = 4096;  // CONFIG_SLM_DATAMODE_BUF_SIZE
const std::string kTerm = "+++";           // CONFIG_SLM_DATAMODE_TERMINATOR

bool ends_with(const std::string& s, const std::string& t) {
  return s.size() >= t.size() && s.compare(s.size() - t.size(), t.size(), t) == 0;
}
}  // namespace

void Simulator::enter_data_mode(DmTarget target) {
  mode_ = Mode::Data;
  dm_target_ = target;
  dm_socket_ = target == DmTarget::Socket ? active_sock_ : -1;
  if (target != DmTarget::Socket) dm_sendto_.reset();
  dm_buf_.clear();
  dm_hold_.clear();
  dm_error_ = 0;
  if (datactrl_ == 0) datactrl_ = cfg_.datamode_min_ms();  // set on the first entry
  ++stats_.datamode_entries;
  if (p_.ok_on_datamode_entry) {
    finish(true);
  } else {
    busy_ = false;  // v2.0: no response at all
    schedule_pump();
  }
}

void Simulator::dm_chunk(const std::string& chunk) {
  if (p_.terminator == TerminatorRule::Anywhere || mode_ == Mode::Null) {
    std::string s = dm_hold_ + chunk;
    dm_hold_.clear();
    auto pos = s.find(kTerm);
    if (pos != std::string::npos) {
      if (mode_ == Mode::Data) dm_append(s.substr(0, pos));
      std::string rest = s.substr(pos + kTerm.size());
      dm_exit_by_host();
      if (!rest.empty()) rx_.push_front(rest);  // parsed as AT-command input
      return;
    }
    // A partial terminator at the end of the chunk is held back.
    std::size_t hold = ends_with(s, "++") ? 2 : (ends_with(s, "+") ? 1 : 0);
    dm_hold_ = s.substr(s.size() - hold);
    s.resize(s.size() - hold);
    if (mode_ == Mode::Data) {
      dm_append(s);
      if (mode_ == Mode::Data) dm_restart_timer();
    }
    return;
  }
  // v1.9–v2.4: the terminator only counts as the trailing bytes when the timer fires.
  dm_append(chunk);
  if (mode_ == Mode::Data) dm_restart_timer();
}

void Simulator::dm_append(const std::string& data) {
  if (data.empty()) return;
  if (dm_target_ == DmTarget::Udp && p_.terminator == TerminatorRule::Anywhere) {
    // One datagram per flush; it must fit the buffer in one piece.
    if (dm_buf_.size() + data.size() > kDataModeBuf) {
      dm_buf_.clear();
      dm_link_lost(-nerr::EOVERFLOW_, DmTarget::Udp, "");
      return;
    }
    dm_buf_ += data;
    if (dm_buf_.size() == kDataModeBuf) dm_flush();
    return;
  }
  dm_buf_ += data;
  while (dm_buf_.size() >= kDataModeBuf) {
    std::string part = dm_buf_.substr(0, kDataModeBuf);
    dm_buf_.erase(0, kDataModeBuf);
    std::swap(part, dm_buf_);
    dm_flush();
    std::swap(part, dm_buf_);
  }
}

void Simulator::dm_flush() {
  if (dm_buf_.empty()) return;
  std::string data = std::move(dm_buf_);
  dm_buf_.clear();
  if (dm_target_ == DmTarget::Tcp) {
    if (tcp_.sock) tcp_send(std::move(data), nullptr);
    // else: v2.9 unconnected data mode — "Raw send failed", the data is dropped
  } else if (dm_target_ == DmTarget::Socket) {
    auto it = socks_.find(dm_socket_);
    if (it != socks_.end() && it->second.type == 2) {
      socket_send_datagram(dm_socket_, dm_sendto_, std::move(data), nullptr);  // one datagram per flush
    } else {
      socket_send(dm_socket_, std::move(data), nullptr);
    }
  } else {
    udp_send(std::move(data), nullptr);
  }
}

void Simulator::dm_restart_timer() {
  auto g = ++dm_timer_gen_;
  dm_timer_.expires_after(std::chrono::milliseconds(dm_time_limit()));
  dm_timer_.async_wait([this, g, e = epoch_](const boost::system::error_code& ec) {
    if (ec || g != dm_timer_gen_ || e != epoch_) return;
    // Bytes the host queued before this deadline are still on the wire for a real modem: the line has
    // not been idle. (Without this check a simulator that was briefly not scheduled runs this timer
    // before the paced read that delivers those bytes, and splits a datagram written in one piece.)
    if (line_.input_pending()) return dm_restart_timer();
    dm_timer_fired();
  });
}

void Simulator::dm_timer_fired() {
  if (p_.sm) return sm_dm_timer_fired();
  if (mode_ != Mode::Data) {
    dm_hold_.clear();
    return;
  }
  if (p_.terminator == TerminatorRule::Anywhere) {
    // A held-back partial terminator turned out to be data.
    std::string held = std::move(dm_hold_);
    dm_hold_.clear();
    dm_append(held);
    if (mode_ == Mode::Data) dm_flush();
    return;
  }
  if (ends_with(dm_buf_, kTerm)) {
    dm_buf_.resize(dm_buf_.size() - kTerm.size());
    dm_exit_by_host();
    return;
  }
  dm_flush();
}

void Simulator::dm_exit_by_host() {
  if (mode_ == Mode::Data) dm_flush();
  ++dm_timer_gen_;
  dm_timer_.cancel();
  dm_hold_.clear();
  int status = mode_ == Mode::Null ? dm_error_ : 0;
  mode_ = Mode::Command;
  dm_error_ = 0;
  if (p_.xdatamode_on_exit) emit(crlf("#XDATAMODE: " + std::to_string(status)));
  else emit("\r\nOK\r\n");
  socket_apoll_data_mode_ended();
  schedule_pump();
}

void Simulator::dm_link_lost(int err, DmTarget target, const std::string& urc) {
  if (mode_ != Mode::Data || target != dm_target_) {
    if (!urc.empty()) proxy_urc({urc});
    return;
  }
  ++dm_timer_gen_;
  dm_timer_.cancel();
  dm_buf_.clear();
  dm_hold_.clear();
  switch (p_.peer_loss) {
    case PeerLossRule::ExitOk0:
      mode_ = Mode::Command;
      emit(crlf("#XDATAMODE: 0"));
      if (!urc.empty()) proxy_urc({urc});
      socket_apoll_data_mode_ended();
      schedule_pump();
      break;
    case PeerLossRule::ExitWithError:
      mode_ = Mode::Command;
      emit(crlf("#XDATAMODE: " + std::to_string(err)));
      if (!urc.empty()) proxy_urc({urc});
      socket_apoll_data_mode_ended();
      schedule_pump();
      break;
    case PeerLossRule::NullModeUrc:
      mode_ = Mode::Null;  // drop input until the host sends "+++"
      dm_error_ = err;
      if (!urc.empty()) emit(urc);  // mixed into the downlink
      break;
    case PeerLossRule::NullModeRawTerminator:
      emit(kTerm);  // raw "+++" tells the host; no "disconnected" URC
      mode_ = Mode::Null;
      dm_error_ = err;
      break;
  }
}

}  // namespace slmsim
