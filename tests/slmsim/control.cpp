// slmsim: fault injection — the control commands (Simulator::control) and the AF_UNIX control
// socket server that feeds them.
#include "control.hpp"

#include <unistd.h>

#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <istream>
#include <sstream>

#include "newlib_errno.hpp"
#include "simulator.hpp"

namespace slmsim {

namespace asio = boost::asio;
using boost::system::error_code;

bool parse_hex(std::string_view t, std::string& out) {
  out.clear();
  int hi = -1;
  for (char c : t) {
    if (c == ' ' || c == ':' || c == ',') continue;
    int v;
    if (c >= '0' && c <= '9') v = c - '0';
    else if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') v = c - 'A' + 10;
    else return false;
    if (hi < 0) {
      hi = v;
    } else {
      out.push_back(static_cast<char>(hi * 16 + v));
      hi = -1;
    }
  }
  return hi < 0 && !out.empty();
}

std::string Simulator::control(std::string_view line) {
  while (!line.empty() && (line.back() == '\r' || line.back() == '\n' || line.back() == ' ')) line.remove_suffix(1);
  auto sp = line.find(' ');
  std::string cmd(line.substr(0, sp));
  std::string arg = sp == std::string_view::npos ? "" : std::string(line.substr(sp + 1));

  if (cmd == "reset") {
    ++stats_.resets;
    reboot(cfg_.boot_delay_ms);
    return "ok";
  }
  if (cmd == "peer-reset") {
    if (p_.sm) return sm_peer_reset(arg);
    if (!tcp_.sock || tcp_.connecting) return "error no tcp connection";
    error_code ec;
    tcp_.sock->set_option(asio::socket_base::linger(true, 0), ec);
    tcp_.sock->close(ec);  // an explicit close honours linger 0: RST (a destructor would not)
    tcp_abortive_ = true;
    tcp_lost(-nerr::ECONNRESET_);
    return "ok";
  }
  if (cmd == "detach") {
    network_ = false;
    attach_timer_.cancel();
    set_reg(0);
    return "ok";
  }
  if (cmd == "attach") {
    network_ = true;
    if (cfun_ == 1) set_reg(1);
    return "ok";
  }
  if (cmd == "noise") {
    std::string bytes;
    if (!parse_hex(arg, bytes)) return "error bad hex";
    stats_.noise_bytes += bytes.size();
    emit(std::move(bytes));
    return "ok";
  }
  if (cmd == "interleave") {
    if (arg == "on") interleave_ = true;
    else if (arg == "off") {
      interleave_ = false;
      flush_interleave();
    } else return "error expected on|off";
    return "ok";
  }
  if (cmd == "payload-fault") {
    // payload-fault reset <offset> | payload-fault drop <offset> <count> | payload-fault header <offset> <count>
    // | payload-fault off
    std::istringstream in(arg);
    std::string kind;
    in >> kind;
    if (kind == "off") {
      payload_fault_.reset();
      return "ok";
    }
    PayloadFault fault;
    if (kind == "reset") {
      fault.kind = PayloadFault::Kind::reset;
      if (!(in >> fault.offset)) return "error expected: payload-fault reset <offset>";
    } else if (kind == "drop" || kind == "header") {
      fault.kind = kind == "drop" ? PayloadFault::Kind::drop : PayloadFault::Kind::header;
      if (!(in >> fault.offset >> fault.drop) || fault.drop == 0)
        return "error expected: payload-fault " + kind + " <offset> <count>";
    } else {
      return "error expected reset|drop|header|off";
    }
    payload_fault_ = fault;
    return "ok";
  }
  if (cmd == "stats") return "ok " + stats_.to_string();
  if (cmd == "refuse") {
    // refuse <prefix> [count]: the next count (1) command lines that start with prefix answer ERROR.
    const auto space = arg.find(' ');
    refuse_prefix_ = arg.substr(0, space);
    if (refuse_prefix_.empty()) return "error missing prefix";
    refuse_left_ = 1;
    if (space != std::string::npos) {
      try {
        refuse_left_ = std::stoi(arg.substr(space + 1));
      } catch (const std::exception&) {
        return "error bad count";
      }
    }
    return "ok";
  }
  if (cmd == "hang") {
    hung_ = true;
    return "ok";
  }
  if (cmd == "unhang") {
    hung_ = false;
    return "ok";
  }
  if (cmd == "urc") {
    if (arg.empty()) return "error missing text";
    modem_urc(arg);
    return "ok";
  }
  if (cmd == "state") {
    const char* m = mode_ == Mode::Command ? "command" : (mode_ == Mode::Data ? "data" : "null");
    const char* t = tcp_.role == TcpRole::Client ? "client" : (tcp_.role == TcpRole::Server ? "server" : "none");
    const char* u = udp_.role == UdpRole::Client ? "client" : (udp_.role == UdpRole::Server ? "server" : "none");
    return std::string("ok profile=") + p_.name + " mode=" + m + " cfun=" + std::to_string(cfun_) +
           " cereg=" + std::to_string(reg_stat_) + " tcp=" + t + " udp=" + u + " booting=" + (booting_ ? "1" : "0") +
           (p_.sm ? " sockets=" + std::to_string(sm_socks_.size()) : std::string());
  }
  return "error unknown command";
}

// ---------------------------------------------------------------------------------------------

namespace {
struct Session : std::enable_shared_from_this<Session> {
  Session(asio::local::stream_protocol::socket s, ControlServer::Handler& h) : sock(std::move(s)), handler(h) {}
  void read() {
    auto self = shared_from_this();
    asio::async_read_until(sock, buf, '\n', [self](const error_code& ec, std::size_t) {
      if (ec) return;
      std::istream is(&self->buf);
      std::string line;
      std::getline(is, line);
      auto reply = std::make_shared<std::string>(self->handler(line) + "\n");
      asio::async_write(self->sock, asio::buffer(*reply), [self, reply](const error_code& ec2, std::size_t) {
        if (!ec2) self->read();
      });
    });
  }
  asio::local::stream_protocol::socket sock;
  asio::streambuf buf;
  ControlServer::Handler& handler;
};
}  // namespace

ControlServer::ControlServer(asio::io_context& io, std::string path, Handler handler)
    : path_(std::move(path)), handler_(std::move(handler)), acceptor_(io) {
  ::unlink(path_.c_str());
  asio::local::stream_protocol::endpoint ep(path_);
  acceptor_.open(ep.protocol());
  acceptor_.bind(ep);
  acceptor_.listen();
  accept();
}

ControlServer::~ControlServer() {
  error_code ec;
  acceptor_.close(ec);
  ::unlink(path_.c_str());
}

void ControlServer::accept() {
  acceptor_.async_accept([this](const error_code& ec, asio::local::stream_protocol::socket s) {
    if (ec) return;
    std::make_shared<Session>(std::move(s), handler_)->read();
    accept();
  });
}

}  // namespace slmsim
