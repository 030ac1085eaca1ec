// slmsim: the simulated SLM firmware. Owns the command-mode state machine, response framing, the
// modem (CFUN/CEREG/CGPADDR) model and URC routing; the TCP and UDP proxies (tcp_proxy.cpp,
// udp_proxy.cpp), the generic sockets (socket.cpp), data mode (data_mode.cpp), the fault-injection
// commands (control.cpp) and, for the Serial Modem profiles, its AT host and data mode (sm_host.cpp) and
// sockets (sm_socket.cpp) are members implemented in their own files. It talks to the host through a byte interface:
// host_bytes() in, HostLine::write() out, so tests can drive it in-process without a pty.
#pragma once

#include <bitset>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "at_params.hpp"
#include "command_line.hpp"
#include "cred_store.hpp"
#include "net_map.hpp"
#include "profile.hpp"
#include "sm_socket.hpp"
#include "tls_bridge.hpp"

namespace slmsim {

struct Config {
  Profile profile = default_profile();
  unsigned baud = 115200;              // 0 = unpaced (time limits then use 115200)
  int boot_delay_ms = 0;               // before "Ready" at start and after every reboot
  int attach_delay_ms = 200;           // CFUN=1 → +CEREG: 1
  int reset_delay_ms = 50;             // AT#XRESET OK → reboot
  int connect_timeout_ms = 3000;       // unmapped documentation addresses: ETIMEDOUT after this
  bool unmapped_unreachable = false;   // …or fail at once with EHOSTUNREACH
  std::string ipv4_address = "10.0.0.2";
  std::string ipv6_address;            // optional second +CGPADDR address
  std::string listen_address = "127.0.0.1";
  bool auto_connect = false;           // CONFIG_SLM_AUTO_CONNECT: CFUN=1 at boot
  int interleave_hold_ms = 200;        // interleave on: longest a proxy URC waits for a response
  bool native_tls = false;             // overlay-native_tls.conf: #XCMNG, TLS server, DTLS server
  std::string cred_dir;                // persist the credential store here (empty: memory only)
  int tls_handshake_timeout_ms = 10000;  // TLS/DTLS handshake limit (the firmware's 10 s SO_SNDTIMEO)
  int dtls_server_timeout_ms = 5000;     // DTLS server: a silent peer gives way to a new one (NET_SOCKETS_DTLS_TIMEOUT)
  NetMap net;
  // Serial Modem profiles: the first socket handle. The firmware's handles are libmodem descriptors (0 … 7 on a
  // real device); starting elsewhere keeps a host from mistaking them for table slots. 0 gives the device's.
  int sm_handle_base = 3;
  // Serial Modem profiles: libmodem reports POLLIN together with POLLHUP once a TCP peer has closed (then #XAPOLL
  // says 17 and automatic reception sends its stray CRLF at the end of the stream). Off: POLLIN only while bytes
  // wait, POLLHUP alone at the end (#XAPOLL: <h>,16).
  bool sm_eof_pollin = false;

  unsigned nominal_baud() const { return baud ? baud : 115200; }
  int datamode_min_ms() const { return static_cast<int>(256u * 10u * 1000u / nominal_baud() + 10u); }
};

struct Stats {
  std::uint64_t bytes_rx = 0, bytes_tx = 0, commands = 0, oks = 0, errors = 0, resets = 0;
  std::uint64_t urcs = 0, urcs_dropped = 0, noise_bytes = 0, datamode_entries = 0;
  std::uint64_t payload_faults = 0, payload_bytes_dropped = 0;
  std::uint64_t payload_faults_in_data_mode = 0;  // struck raw data-mode downlink: no framing can see a loss there
  std::uint64_t tcp_connects = 0, tcp_up_bytes = 0, tcp_down_bytes = 0;
  std::uint64_t udp_up_datagrams = 0, udp_down_datagrams = 0;
  std::string to_string() const;
};

// The modem → host direction of the UART: each write() is one atomic TX write.
class HostLine {
 public:
  virtual ~HostLine() = default;
  virtual void write(std::string bytes) = 0;
  virtual std::size_t backlog() const { return 0; }  // bytes queued but not yet on the wire
  // True while the host has written bytes the simulator has not read yet. On a real wire those bytes are
  // being transmitted back to back, so the line is not idle (see dm_restart_timer).
  virtual bool input_pending() const { return false; }
};

class Trace;
class TlsBridge;
class DtlsBridge;
class DtlsServerBridge;

// Retires a socket that may have operations in flight: cancel them and let the socket close when
// the last completion handler holding it has run. (Closing at once can race with an in-flight
// io_uring operation on a descriptor number that a new socket immediately reuses.)
template <typename Socket>
void retire(std::shared_ptr<Socket>& s, bool shutdown = false) {
  if (!s) return;
  boost::system::error_code ec;
  if constexpr (requires { s->shutdown(Socket::shutdown_both, ec); }) {
    if (shutdown) s->shutdown(Socket::shutdown_both, ec);
  }
  s->cancel(ec);
  s.reset();
}

class Simulator {
 public:
  Simulator(boost::asio::io_context& io, Config cfg, HostLine& line);
  ~Simulator();
  // Closes every proxy socket; its pending operations then complete (aborted) on the next run of the io_context.
  // Closes every socket and stops every timer: once their cancelled operations complete, the io_context
  // runs out of work (what a harness waits for before destroying the simulator).
  void shutdown() {
    ++epoch_;
    close_all_silently();
    for (auto* timer : {&boot_timer_, &attach_timer_, &interleave_timer_, &dm_timer_, &connect_timer_}) timer->cancel();
  }
  Simulator(const Simulator&) = delete;
  Simulator& operator=(const Simulator&) = delete;

  void start();                            // power on: "Ready" after the boot delay
  void host_bytes(std::string_view chunk); // one UART RX chunk from the host
  void tx_drained();                       // the line's backlog fell: resume proxy reads
  std::string control(std::string_view command);  // one control-socket command → reply line
  void set_trace(Trace* t) { trace_ = t; }

  const Stats& stats() const { return stats_; }
  const Config& config() const { return cfg_; }
  bool in_data_mode() const { return mode_ == Mode::Data; }
  bool in_null_mode() const { return mode_ == Mode::Null; }
  bool booting() const { return booting_; }
  bool busy() const { return busy_; }
  const CredStore& credentials() const { return creds_; }

  // Proxy reads pause above this line backlog. The firmware's proxy thread writes one received chunk (at most
  // 2048 bytes) into a 256-byte UART TX ring and blocks while it is full (reference section 4, "Flow control"):
  // it receives its next chunk only once the last one is nearly out, so an AT answer waits behind at most
  // about one chunk plus the ring.
  static constexpr std::size_t kTxHigh = 256;

 private:
  using tcp = boost::asio::ip::tcp;
  using udp = boost::asio::ip::udp;
  using Cmd = ParsedCommand;
  enum class Mode { Command, Data, Null };
  enum class TcpRole { None, Client, Server };
  enum class UdpRole { None, Client, Server };
  enum class DmTarget { Tcp, Udp, Socket };

  // --- core (simulator.cpp)
  void pump();
  void schedule_pump();
  void feed_command_byte(char c);
  void on_line(const std::string& line);
  void dispatch(const Cmd& c);
  bool match_slm(const Cmd& c, const char* name) const;
  void emit(std::string bytes);
  void info(const std::string& line);
  void finish(bool ok);
  void modem_reply(const std::vector<std::string>& lines, bool ok);
  void modem_urc(const std::string& text);
  void modem_cme(int code);  // "+CME ERROR: <code>" with AT+CMEE=1, else plain ERROR
  void proxy_urc(std::vector<std::string> writes, int source = 0);  // source: 0 TCP, 1 UDP thread
  void flush_interleave();
  void when_tx_ready(std::function<void()> fn);
  void reboot(int delay_ms);
  void close_all_silently();
  // Where #XTCPSVR/#XUDPSVR listen: --listen-address, or loopback of the family op asks for (2 = IPv6).
  boost::asio::ip::address server_address(int op) const;
  std::optional<std::vector<Param>> params(const Cmd& c) const;
  static std::string crlf(const std::string& s) { return "\r\n" + s + "\r\n"; }
  bool attached() const { return reg_stat_ == 1 || reg_stat_ == 5; }
  int alloc_fd();
  void free_fd(int& fd);

  // modem commands
  void modem_command(const Cmd& c);
  void set_cfun(int n);
  void set_reg(int stat);
  std::string cereg_text(bool urc) const;
  void network_lost();
  void cmd_cmng(const Cmd& c);  // AT%CMNG: the modem's credential store

  // SLM generic commands
  void cmd_xcmng(const Cmd& c);  // AT#XCMNG (native TLS builds)

  // SLM generic commands
  void cmd_slmver(const Cmd& c);
  void cmd_reset(const Cmd& c);
  void cmd_modemreset(const Cmd& c);
  void cmd_datactrl(const Cmd& c);
  void cmd_getaddrinfo(const Cmd& c);

  // --- TCP proxy (tcp_proxy.cpp)
  void cmd_tcpcli(const Cmd& c);
  void cmd_tcpsvr(const Cmd& c);
  void cmd_tcpsend(const Cmd& c);
  void cmd_tcphangup(const Cmd& c);
  void tcp_connect_done(const boost::system::error_code& ec, std::uint64_t epoch);
  void tcp_tls_done(int err, std::shared_ptr<tcp::socket> plain);
  void tcp_adopt_peer(std::shared_ptr<tcp::socket> s, const std::string& peer_ip);
  void tcp_tls_accept(tcp::socket s);
  void tcp_fail_connect(int err);
  void tcp_accept_loop();
  void tcp_start_read();
  void tcp_deliver(const std::string& data);
  void tcp_lost(int cause);
  void tcp_close_client();
  void tcp_close_peer();
  void tcp_stop_server();
  void tcp_send(std::string data, std::function<void(const boost::system::error_code&, std::size_t)> done);
  void tcp_write_next();
  void tcp_abort_writes();
  bool tcp_busy() const { return tcp_.role != TcpRole::None || tcp_.wedged || tcp_.connecting; }
  std::string recv_header(const std::string& tag, std::size_t n, const std::string& peer) const;

  // --- UDP proxy (udp_proxy.cpp)
  void cmd_udpcli(const Cmd& c);
  void cmd_udpsvr(const Cmd& c);
  void cmd_udpsend(const Cmd& c);
  void udp_start_read();
  // Makes `sock` the UDP proxy (client or server) under handle `fd`.
  void udp_open(UdpRole role, std::shared_ptr<udp::socket> sock, int fd, int family, bool blackhole);
  void udp_deliver(const std::string& data, const udp::endpoint& from);
  void udp_close(bool urc, int cause);
  void udp_dtls_done(int err, std::shared_ptr<udp::socket> plain, int fd, int family);
  void udp_send(std::string data, std::function<void(const boost::system::error_code&, std::size_t)> done);

  // --- generic sockets (socket.cpp)
  struct GenericSocket {
    int fd = -1;
    int family = 1;   // 1 IPv4, 2 IPv6
    int type = 1;     // 1 TCP, 2 UDP
    int ranking = 0;  // order of opening: the newest remaining one becomes active after a close
    std::shared_ptr<tcp::socket> sock;  // TCP: set once connected
    bool connecting = false;
    std::string rx;  // TCP: received, not yet read with #XRECV
    std::shared_ptr<udp::socket> usock;  // UDP: open from #XSOCKET on
    std::optional<udp::endpoint> peer;   // UDP: set by #XCONNECT
    bool blackhole = false;              // UDP: connected to an unmapped address; datagrams vanish
    std::deque<std::pair<udp::endpoint, std::string>> datagrams;  // UDP: received, not yet read
    bool reading = false;
    bool eof = false;
    bool recv_waiting = false;  // a blocking #XRECV waits for bytes
    bool recv_peek = false;
    bool recv_from = false;     // ... and it is a #XRECVFROM
    std::int64_t sec_tag = -1;          // #XSSOCKET: the TLS client's sec_tag; -1: plain
    TlsOptions tls_opt;                 // ... its verification settings (#XSSOCKET, #XSSOCKETOPT)
    std::shared_ptr<TlsBridge> tls;     // ... its handshake in progress
    std::shared_ptr<DtlsBridge> dtls;   // a DTLS client's bridge, from the handshake on (usock: its plaintext end)
    // v3.1 #XAPOLL (struct slm_async_poll): named in a handle list, the events armed (each fires once and is armed
    // again by the operation it reports: POLLIN by #XRECV), and off for good after POLLERR/POLLHUP/POLLNVAL.
    bool apoll_specific = false;
    int apoll_armed = 0;
    bool apoll_disabled = false;
    std::uint64_t gen = 0;
  };
  void cmd_socket(const Cmd& c);
  void cmd_socketselect(const Cmd& c);
  void cmd_ssocket(const Cmd& c);
  void cmd_ssocketopt(const Cmd& c);
  void cmd_connect(const Cmd& c);
  void socket_connected(GenericSocket& s, std::shared_ptr<boost::asio::ip::tcp::socket> sock);
  void socket_dtls_connect(GenericSocket& s, const boost::asio::ip::udp::endpoint& to, bool blackhole);
  void cmd_send(const Cmd& c);
  void cmd_recv(const Cmd& c);
  void cmd_poll(const Cmd& c);
  void cmd_apoll(const Cmd& c);
  // v3.1 #XAPOLL: arm `events` (as far as the poll asks for them) on a watched socket, then report what is due.
  void socket_apoll_arm(GenericSocket& s, int events);
  void socket_apoll_check(int fd);
  void socket_apoll_data_mode_ended();  // slm_at_socket_notify_datamode_exit()
  void cmd_sendto(const Cmd& c);
  void cmd_recvfrom(const Cmd& c);
  void socket_start_receive(int fd);  // UDP
  void socket_wait_timeout(GenericSocket& s, std::int64_t timeout);
  void socket_receive(const Cmd& c, bool from);  // #XRECV (from = false) and #XRECVFROM
  std::optional<udp::endpoint> socket_destination(const GenericSocket& s, const std::string& host, std::int64_t port,
                                                  bool& blackhole);
  bool socket_answer_datagram(GenericSocket& s, bool peek, bool from);
  void socket_send_datagram(int fd, std::optional<udp::endpoint> to, std::string data,
                            std::function<void(const boost::system::error_code&, std::size_t)> done);
  GenericSocket* active_socket();
  // A new socket in the table, made the active one (do_socket_open()); nullptr when none is left.
  GenericSocket* socket_create(int family, int type);
  void socket_close_active(std::size_t param_count);
  std::size_t socket_limit() const;
  std::size_t socket_recv_max(const GenericSocket& s) const;
  bool socket_answer_recv(GenericSocket& s, bool peek);
  bool socket_answer_poll();
  void socket_start_read(int fd);
  void socket_send(int fd, std::string data, std::function<void(const boost::system::error_code&)> done);
  void socket_close(int fd);
  void close_sockets_silently();

  // --- Serial Modem: AT host, dispatch, generic commands, data mode (sm_host.cpp)
  void sm_feed_command_byte(char c);
  void sm_flush_echo();
  void sm_dispatch(const Cmd& c);
  static bool sm_set(const Cmd& c) { return c.kind == Cmd::Kind::Action || c.kind == Cmd::Kind::Set; }
  void sm_command_done();
  void cmd_smver(const Cmd& c);
  void cmd_sm_echo(const Cmd& c);
  void cmd_sm_reset(const Cmd& c);
  void cmd_sm_modemreset(const Cmd& c);
  void sm_enter_data_mode(int fd, std::size_t len);
  void sm_dm_chunk(const std::string& chunk);
  std::size_t sm_dm_write(const std::string& data);
  bool sm_dm_raw_send(bool more);
  void sm_dm_fail(int err);
  void sm_dm_exit();
  void sm_dm_timer_fired();

  // TLS in the modem (the proxy's #XTCPCLI, #XSSOCKET's #XCONNECT on both families): the client handshake on a
  // connected socket, with the credentials under sec_tag. done(err, bridge, plaintext end) runs once, only while
  // the bridge lives; err is 0 or a negative newlib errno, and a failure is noted in the trace. nullptr (noted
  // too): the credentials are unusable, and done never runs.
  using TlsClientDone = std::function<void(int err, const std::shared_ptr<TlsBridge>& bridge,
                                           std::shared_ptr<boost::asio::ip::tcp::socket> plain)>;
  std::shared_ptr<TlsBridge> start_tls_client(boost::asio::ip::tcp::socket net, std::int64_t sec_tag,
                                              const TlsOptions& opt, TlsClientDone done);
  // The same for DTLS (the proxy's #XUDPCLI, the Serial Modem's DTLS socket): net must be connected to the peer.
  // lost runs when the peer's close_notify or a fatal alert ends an established session.
  using DtlsClientDone = std::function<void(int err, const std::shared_ptr<DtlsBridge>& bridge,
                                            std::shared_ptr<boost::asio::ip::udp::socket> plain)>;
  // #XCONNECT on a DTLS socket: a host socket connected to the peer for the handshake, or nullopt once the command
  // has been answered (or will be: an unmapped peer never answers, so the handshake times out).
  std::optional<boost::asio::ip::udp::socket> dtls_peer_socket(const boost::asio::ip::udp::endpoint& to,
                                                               bool blackhole);
  std::shared_ptr<DtlsBridge> start_dtls_client(boost::asio::ip::udp::socket net, std::int64_t sec_tag,
                                                const TlsOptions& opt, DtlsClientDone done,
                                                std::function<void(const std::shared_ptr<DtlsBridge>&)> lost);

  // --- Serial Modem sockets (sm_socket.cpp)
  enum class SmRecv { Data, Zero, Again, Error };
  void cmd_sm_socket(const Cmd& c);
  void cmd_sm_ssocket(const Cmd& c);
  void cmd_sm_close(const Cmd& c);
  void cmd_sm_socketopt(const Cmd& c);
  void cmd_sm_ssocketopt(const Cmd& c);
  void cmd_sm_bind(const Cmd& c);
  void cmd_sm_connect(const Cmd& c);
  void cmd_sm_listen(const Cmd& c);
  void cmd_sm_accept(const Cmd& c);
  void cmd_sm_send(const Cmd& c);
  void cmd_sm_sendto(const Cmd& c);
  void cmd_sm_recv(const Cmd& c);
  void cmd_sm_recvfrom(const Cmd& c);
  void cmd_sm_apoll(const Cmd& c);
  void cmd_sm_recvcfg(const Cmd& c);
  SmSocket* sm_find(int fd);
  // A new socket in the table (do_socket_open()): the lowest free handle, the "all sockets" settings applied.
  SmSocket* sm_create(int family, int type, int role, int cid);
  void sm_connected(SmSocket& s, std::shared_ptr<boost::asio::ip::tcp::socket> sock,
                    const boost::asio::ip::tcp::endpoint& named);
  void sm_dtls_connect(SmSocket& s, const boost::asio::ip::udp::endpoint& to, bool blackhole);
  void sm_recv_command(const Cmd& c, bool from);
  void sm_close_all_silently();
  void sm_network_lost();
  std::string sm_peer_reset(const std::string& arg);
  void sm_modem_restarted();
  void sm_start_read(int fd);
  void sm_start_receive(int fd);
  void sm_accept_loop(int fd);
  void sm_write_next(int fd);
  void sm_lost(SmSocket& s, bool abortive);
  int sm_transmit(SmSocket& s, std::string data, const std::optional<udp::endpoint>& to, bool blackhole);
  int sm_sendto(SmSocket& s, std::string data, const std::string& host, std::int64_t port);
  std::optional<udp::endpoint> sm_resolve(const SmSocket& s, const std::string& host, std::int64_t port,
                                          bool& blackhole) const;
  SmRecv sm_take(SmSocket& s, int flags, std::size_t len, std::string& data, udp::endpoint& from);
  bool sm_deliver(SmSocket& s, const std::string& data, const udp::endpoint& from, int mode, bool with_from,
                  const std::string& trailer);
  void sm_recv_retry(SmSocket& s, bool timed_out);
  void sm_auto_receive(SmSocket& s);
  std::uint8_t sm_state_events(const SmSocket& s) const;
  void sm_poll_check(SmSocket& s);
  void sm_update_poll(SmSocket& s, std::uint8_t events, bool update_xapoll);
  void sm_poll_schedule();
  void sm_poll_work();

  // --- data mode (data_mode.cpp)
  void enter_data_mode(DmTarget target);
  void dm_chunk(const std::string& chunk);
  void dm_append(const std::string& data);
  void dm_flush();
  void dm_restart_timer();
  void dm_timer_fired();
  void dm_exit_by_host();
  void dm_link_lost(int err, DmTarget target, const std::string& urc);
  int dm_time_limit() const;

  boost::asio::io_context& io_;
  Config cfg_;
  const Profile& p_;
  HostLine& line_;
  Trace* trace_ = nullptr;
  Stats stats_;
  LineAssembler asm_;
  CredStore creds_;  // non-volatile: survives #XRESET and reboots

  std::deque<std::string> rx_;
  bool pumping_ = false;
  bool pump_posted_ = false;
  bool busy_ = false;
  bool booting_ = true;
  bool hung_ = false;
  // control "refuse <prefix> [n]": the next n command lines starting with <prefix> answer a plain ERROR and do
  // nothing, as a firmware whose socket table, memory or network says no.
  std::string refuse_prefix_;
  int refuse_left_ = 0;
  // A fault armed to strike inside the TCP downlink ("payload-fault"): after `offset` more payload bytes (in
  // #XTCPDATA payloads or raw in data mode), the modem reboots (the rest is never sent), or `drop` bytes go
  // missing from the stream while the header keeps its count (noise or an overrun without RTS/CTS).
  struct PayloadFault {
    // header: `drop` bytes lost from the start of the #XTCPDATA header (its leading CRLF first) of the payload
    // holding `offset`; the payload itself arrives whole.
    enum class Kind { reset, drop, header } kind = Kind::reset;
    std::size_t offset = 0;
    std::size_t drop = 0;
  };
  std::optional<PayloadFault> payload_fault_;
  // Applies an armed payload fault to `data` about to be delivered; true when it struck (the caller then
  // sends nothing more of it).
  bool strike_payload_fault(const std::string& data);
  // The same for a payload framed by `header` (before the data when header_first, else after) and `trailer`.
  bool strike_payload_fault(const std::string& data, const std::string& header, bool header_first,
                            const std::string& trailer);
  bool interleave_ = false;
  Mode mode_ = Mode::Command;
  std::uint64_t epoch_ = 0;  // bumped on reboot; stale async completions compare and bail out
  std::vector<std::string> deferred_modem_urcs_;
  std::deque<std::pair<int, std::vector<std::string>>> interleave_q_;
  std::vector<std::function<void()>> tx_waiters_;
  boost::asio::steady_timer boot_timer_, attach_timer_, interleave_timer_, dm_timer_, connect_timer_;
  bool interleave_timer_armed_ = false;

  // modem
  int cfun_ = 0;
  int cereg_n_ = 0;
  int reg_stat_ = 0;
  bool network_ = true;  // control attach/detach
  int cmee_ = 0;

  std::bitset<8> fds_;

  struct Tcp {
    TcpRole role = TcpRole::None;
    std::shared_ptr<tcp::socket> sock;  // the client socket, or the server's accepted peer
    std::shared_ptr<tcp::acceptor> acceptor;
    int handle = -1;  // client socket
    int listen = -1;
    int peer = -1;
    int family = 0;
    bool wedged = false;
    bool connecting = false;
    int pending_handle = -1;
    std::int64_t sec_tag = -1;      // the client's or server's sec_tag; -1: plain TCP
    TlsOptions tls_opt;             // client: verification settings for the pending handshake
    std::shared_ptr<TlsBridge> tls;  // client: handshake in progress; server: a peer's handshake in progress
    std::uint64_t gen = 0;   // bumped when the client/peer socket goes away
    std::uint64_t agen = 0;  // bumped when the acceptor goes away
    std::deque<std::pair<std::string, std::function<void(const boost::system::error_code&, std::size_t)>>> wq;
    bool writing = false;
  } tcp_;

  struct Udp {
    UdpRole role = UdpRole::None;
    std::shared_ptr<udp::socket> sock;
    int handle = -1;
    int family = 0;
    bool blackhole = false;
    std::optional<udp::endpoint> last_peer;
    std::uint64_t gen = 0;
    std::shared_ptr<DtlsBridge> dtls;  // DTLS client: the bridge (handshake in progress or relaying)
    std::shared_ptr<DtlsServerBridge> dtls_server;  // DTLS server (native TLS): sock is its local end
  } udp_;
  bool tcp_abortive_ = false;
  std::string udp_stale_peer_;  // "ip",port of the last server peer in this boot (v2.8+ client quirk)

  std::map<int, GenericSocket> socks_;
  int active_sock_ = -1;
  int socket_ranking_ = 0;
  std::vector<int> poll_handles_;  // the sockets a waiting #XPOLL watches
  bool poll_waiting_ = false;
  bool apoll_running_ = false;  // v3.1 #XAPOLL started (its thread running); #XPOLL is refused meanwhile
  bool apoll_all_ = false;      // ... for every socket, present and future, or only the listed ones
  int apoll_events_ = 0;        // ... POLLIN (1) and/or POLLOUT (4)

  DmTarget dm_target_ = DmTarget::Tcp;
  int dm_socket_ = -1;  // DmTarget::Socket: the socket that was active on entry
  std::optional<udp::endpoint> dm_sendto_;  // ... and for #XSENDTO's data mode, where each flush goes
  std::string dm_buf_, dm_hold_;
  int dm_error_ = 0;
  int datactrl_ = 0;
  std::uint64_t dm_timer_gen_ = 0;

  // Serial Modem state (the sm- profiles)
  SmLineAssembler sm_asm_;
  bool sm_echo_ = false;     // ATE1
  std::string sm_echo_buf_;  // command-mode bytes to echo before the command runs (or at the end of the chunk)
  std::map<int, SmSocket> sm_socks_;  // by handle; handle order is also the table's slot order
  std::uint8_t sm_adr_flags_ = 0;     // #XRECVCFG and #XAPOLL without a handle: for all current and future sockets
  bool sm_adr_hex_ = false;
  std::uint8_t sm_xapoll_requested_ = 0;
  std::string sm_udp_url_;   // #XSENDTO's destination (udp_url): data mode sends there while it is set
  std::int64_t sm_udp_port_ = 0;
  std::size_t dm_len_ = 0;   // data mode with <data_len>: bytes still to come (0: the "+++" rule)
  std::size_t sm_null_match_ = 0;
  bool sm_poll_posted_ = false, sm_poll_deferred_ = false, sm_poll_tx_wait_ = false;
  std::uint64_t sm_next_gen_ = 0;  // tells a socket from an earlier one with the same handle
};

}  // namespace slmsim
