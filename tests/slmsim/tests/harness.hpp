// slmsim tests: in-process harness. Drives a Simulator through its byte interface on a private
// io_context, collects everything written to the host, and offers deadline-bounded waits (no
// sleeps) plus small real local TCP/UDP servers living on the same io_context.
#pragma once

#include <gtest/gtest.h>

#include <boost/asio.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "simulator.hpp"

namespace slmsim::test {

namespace asio = boost::asio;
using namespace std::chrono_literals;

struct Sink : HostLine {
  std::string out;
  std::vector<std::string> writes;
  void write(std::string b) override {
    out += b;
    writes.push_back(std::move(b));
  }
};

inline Config test_config(const std::string& profile = "v2.9") {
  Config c;
  c.profile = *find_profile(profile);
  c.baud = 0;
  c.attach_delay_ms = 20;
  c.reset_delay_ms = 20;
  c.connect_timeout_ms = 300;
  return c;
}

class Harness {
 public:
  explicit Harness(Config cfg = test_config()) {
    sim = std::make_unique<Simulator>(io, std::move(cfg), sink);
    sim->start();
  }
  explicit Harness(const std::string& profile) : Harness(test_config(profile)) {}
  // Cancelled operations must complete before the io_context goes: Boost 1.81's io_uring backend destroys
  // its socket service before the queued operations that still hold sockets of it (use-after-free under ASan).
  // The simulator stays alive while they complete, since its handlers refer to it. run_for returns as soon as
  // the io_context runs out of work; a fixed short run was not enough on a loaded machine (a segfault in
  // Slm.ResetRebootsAndClosesEverything under ctest -j3).
  ~Harness() {
    sim->shutdown();
    io.restart();
    io.run_for(5s);
    sim.reset();
  }

  asio::io_context io;
  Sink sink;
  std::unique_ptr<Simulator> sim;
  std::size_t consumed = 0;

  void send(std::string_view s) { sim->host_bytes(s); }

  bool run_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout = 5000ms) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!pred()) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      io.restart();
      io.run_one_for(10ms);
    }
    return true;
  }
  // Lets ready handlers run without waiting on timers.
  void settle() {
    io.restart();
    io.poll();
  }
  std::string pending() const { return sink.out.substr(consumed); }

  // Waits for the next expected.size() bytes and compares them exactly.
  ::testing::AssertionResult expect(const std::string& expected, std::chrono::milliseconds timeout = 5000ms) {
    bool ok = run_until([&] { return sink.out.size() - consumed >= expected.size(); }, timeout);
    std::string got = sink.out.substr(consumed, expected.size());
    if (!ok || got != expected) {
      return ::testing::AssertionFailure() << "expected [" << esc(expected) << "] got [" << esc(pending()) << "]";
    }
    consumed += expected.size();
    return ::testing::AssertionSuccess();
  }
  // Sends a command line and expects the exact response bytes.
  ::testing::AssertionResult at(const std::string& line, const std::string& expected) {
    send(line + "\r\n");
    return expect(expected);
  }
  // Nothing else arrives within `quiet` (used only to assert the absence of output).
  ::testing::AssertionResult nothing_more(std::chrono::milliseconds quiet = 60ms) {
    run_until([] { return false; }, quiet);
    if (pending().empty()) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "unexpected [" << esc(pending()) << "]";
  }
  // CFUN=1 and wait for registration (CEREG URCs off).
  void attach() {
    ASSERT_TRUE(at("AT+CFUN=1", "\r\nOK\r\n"));
    ASSERT_TRUE(run_until([&] { return sim->control("state").find("cereg=1") != std::string::npos; }));
  }
  void boot() { ASSERT_TRUE(expect("Ready\r\n")); }

  static std::string esc(const std::string& s) {
    std::string o;
    for (unsigned char c : s) {
      if (c == '\r') o += "\\r";
      else if (c == '\n') o += "\\n";
      else if (c < 0x20 || c >= 0x7f) {
        char b[8];
        std::snprintf(b, sizeof b, "\\x%02x", c);
        o += b;
      } else o += static_cast<char>(c);
    }
    return o;
  }
};

// A TCP port on 127.0.0.1 that nothing listens on (bound briefly, no async operations).
inline unsigned short free_port(asio::io_context& io) {
  asio::ip::tcp::acceptor a(io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  return a.local_endpoint().port();
}

// A real TCP server on 127.0.0.1 that records what it receives and can echo, send and close.
class TcpServer {
 public:
  struct Conn {
    explicit Conn(asio::ip::tcp::socket s) : sock(std::move(s)) {}
    asio::ip::tcp::socket sock;
    std::string received;
    bool eof = false;
    bool reset = false;
    char buf[4096];
  };
  explicit TcpServer(asio::io_context& io, bool echo = false, unsigned short port = 0)
      : acc_(io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), port)), echo_(echo) {
    accept();
  }
  unsigned short port() const { return acc_.local_endpoint().port(); }
  std::vector<std::shared_ptr<Conn>> conns;
  void send(std::size_t i, const std::string& data) {
    auto b = std::make_shared<std::string>(data);
    asio::async_write(conns.at(i)->sock, asio::buffer(*b), [b](auto, auto) {});
  }
  void close(std::size_t i) {
    boost::system::error_code ec;
    conns.at(i)->sock.shutdown(asio::ip::tcp::socket::shutdown_both, ec);
    conns.at(i)->sock.close(ec);
  }

 private:
  void accept() {
    acc_.async_accept([this](boost::system::error_code ec, asio::ip::tcp::socket s) {
      if (ec) return;
      auto c = std::make_shared<Conn>(std::move(s));
      conns.push_back(c);
      read(c);
      accept();
    });
  }
  void read(std::shared_ptr<Conn> c) {
    c->sock.async_read_some(asio::buffer(c->buf), [this, c](boost::system::error_code ec, std::size_t n) {
      if (ec) {
        if (ec == asio::error::eof) c->eof = true;
        else c->reset = true;
        return;
      }
      std::string d(c->buf, n);
      c->received += d;
      if (echo_) {
        auto b = std::make_shared<std::string>(d);
        asio::async_write(c->sock, asio::buffer(*b), [b](auto, auto) {});
      }
      read(c);
    });
  }
  asio::ip::tcp::acceptor acc_;
  bool echo_;
};

// A real UDP server on 127.0.0.1 that records datagrams and can echo or reply.
class UdpServer {
 public:
  explicit UdpServer(asio::io_context& io, bool echo = false)
      : sock_(io, asio::ip::udp::endpoint(asio::ip::make_address("127.0.0.1"), 0)), echo_(echo) {
    read();
  }
  unsigned short port() const { return sock_.local_endpoint().port(); }
  std::vector<std::string> datagrams;
  asio::ip::udp::endpoint last_from;
  void send_to(const std::string& d, const asio::ip::udp::endpoint& to) {
    boost::system::error_code ec;
    sock_.send_to(asio::buffer(d), to, 0, ec);
  }

 private:
  void read() {
    sock_.async_receive_from(asio::buffer(buf_), from_, [this](boost::system::error_code ec, std::size_t n) {
      if (ec) return;
      datagrams.emplace_back(buf_, n);
      last_from = from_;
      if (echo_) send_to(datagrams.back(), from_);
      read();
    });
  }
  asio::ip::udp::socket sock_;
  asio::ip::udp::endpoint from_;
  bool echo_;
  char buf_[65536];
};

}  // namespace slmsim::test
