// slmsim: one entry of the Serial Modem's socket table (sm_socket.cpp): a handle-based socket (#XSOCKET, #XACCEPT)
// backed by a real host socket, with the state of the modem library's one-shot poll callback (NRF_SO_POLLCB) and of
// SM's async poll (struct sm_async_poll in sm_at_socket.c) that drive #XAPOLL and automatic reception (#XRECVCFG).
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "tls_bridge.hpp"

namespace slmsim {

// Poll event bits as libmodem numbers them (and as #XAPOLL prints them, in decimal).
namespace smpoll {
inline constexpr std::uint8_t IN = 1, OUT = 4, ERR = 8, HUP = 16, NVAL = 32;
inline constexpr std::uint8_t ALL = IN | OUT | ERR | HUP | NVAL;
}  // namespace smpoll

struct SmSocket {
  using tcp = boost::asio::ip::tcp;
  using udp = boost::asio::ip::udp;

  int fd = -1;        // the handle the host sees (see Config::sm_handle_base)
  int family = 1;     // 1 IPv4, 2 IPv6, 3 packet
  int type = 1;       // 1 TCP, 2 UDP, 3 raw
  int role = 0;       // 0 client, 1 server
  int cid = 0;
  bool connected = false;  // #XCONNECT succeeded (or #XACCEPT made it): automatic reception uses #XRECV, else #XRECVFROM
  bool listening = false;  // preview1 #XLISTEN
  int local_port = -1;     // #XBIND's port; -1: never bound
  int rcvtimeo = 0;        // SO_RCVTIMEO (s): every #XRECV sets it to its <timeout>, automatic reception to 0
  int sndtimeo = 30;       // SO_SNDTIMEO (s): SOCKET_SEND_TMO_SEC at open
  std::map<int, int> opts;  // other #XSOCKETOPT values that can be read back
  bool dead = false;        // the modem library restarted under it (#XMODEMRESET): the descriptor is stale
  // #XSSOCKET: TLS or DTLS by the modem. The handshake runs inside #XCONNECT; afterwards tcp_sock (TLS) or
  // udp_sock (DTLS) is the plaintext end of the bridge, which owns the real connection.
  int sec_tag = -1;
  TlsOptions tls_opt;
  std::shared_ptr<TlsBridge> tls;    // during the handshake
  std::shared_ptr<DtlsBridge> dtls;  // from the handshake on

  // Host side.
  std::shared_ptr<tcp::socket> tcp_sock;   // TCP: set once connected (or accepted)
  std::shared_ptr<tcp::acceptor> acceptor;  // preview1: bound by #XBIND, listening after #XLISTEN
  std::deque<std::pair<std::shared_ptr<tcp::socket>, tcp::endpoint>> backlog;  // accepted, not yet #XACCEPTed
  tcp::endpoint remote;                    // TCP peer
  std::shared_ptr<udp::socket> udp_sock;   // UDP: open from #XSOCKET on
  std::optional<udp::endpoint> peer;       // UDP: #XCONNECT's destination
  bool blackhole = false;                  // UDP connected to an unmapped test address: datagrams vanish
  std::string rx;                          // TCP: received, not yet read
  std::deque<std::pair<udp::endpoint, std::string>> datagrams;  // UDP: received, not yet read
  bool reading = false;
  bool eof = false;    // the peer closed (or the connection broke): POLLHUP
  bool reset = false;  // ... abortively (or the network went away): a read of an empty socket is an error
  std::deque<std::string> wq;  // TCP writes in flight, in order
  bool writing = false;

  // A blocking #XRECV/#XRECVFROM (it holds the AT channel, as the firmware's blocking recv does).
  struct Wait {
    bool active = false;
    bool from = false;
    int mode = 0;
    int flags = 0;
    std::size_t len = 0;
  } wait;

  // libmodem's poll callback: armed with `events` by every update_poll_events(), fired once (one-shot) when the
  // socket's state matches, accumulating into `revents` for SM's poll work.
  std::uint8_t events = 0;
  bool armed = false;
  std::uint8_t revents = 0;
  std::uint8_t delayed = 0;           // events seen while not in AT mode, replayed when it returns
  std::uint8_t xapoll_events = 0;     // events that may still produce a #XAPOLL URC (one-shot per event)
  std::uint8_t xapoll_requested = 0;  // #XAPOLL's <events> (with ERR|HUP|NVAL), 0 when off
  std::uint8_t adr_flags = 0;         // #XRECVCFG: 1 AT mode, 2 data mode
  bool adr_hex = false;
  bool disable = false;  // POLLERR/POLLHUP/POLLNVAL was seen: never re-armed
  std::uint64_t gen = 0;
};

}  // namespace slmsim
