// slmsim: the fault-injection control socket (--control PATH): an AF_UNIX stream server reading
// one text command per line and writing one reply line ("ok…" or "error <why>"). The commands
// themselves are implemented by Simulator::control() (control.cpp) plus link-level ones supplied
// by main (close-link, reopen).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace slmsim {

class ControlServer {
 public:
  using Handler = std::function<std::string(std::string_view)>;
  ControlServer(boost::asio::io_context& io, std::string path, Handler handler);
  ~ControlServer();

 private:
  void accept();
  std::string path_;
  Handler handler_;
  boost::asio::local::stream_protocol::acceptor acceptor_;
};

// Parses "41 54 0d" / "41540d" into bytes; nullopt-like empty+false on bad input.
bool parse_hex(std::string_view text, std::string& out);

}  // namespace slmsim
