// slmsim: command-line entry point — parses options, builds the Simulator on a PtyLink, prints the
// link path, serves until SIGTERM/SIGINT (exit 0, link removed).
#include <signal.h>
#include <sys/signalfd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/program_options.hpp>
#include <iostream>
#include <memory>

#include "control.hpp"
#include "pty_link.hpp"
#include "simulator.hpp"
#include "trace.hpp"

namespace po = boost::program_options;
using namespace slmsim;

int main(int argc, char** argv) {
  Config cfg;
  std::string link, profile_name = "v2.9", control_path, trace_path, hosts, unmapped = "timeout";
  std::string libmodem, ncs, sm_version;
  std::vector<std::string> maps;
  po::options_description desc("slmsim — Serial LTE Modem / Serial Modem firmware simulator on a pty");
  // clang-format off
  desc.add_options()
    ("help,h", "show this help")
    ("link", po::value(&link), "symlink to create for the pty slave (required)")
    ("baud", po::value(&cfg.baud)->default_value(115200), "line rate in both directions (8N1: baud/10 bytes/s); 0 = unpaced")
    ("profile", po::value(&profile_name)->default_value("v2.9"), "firmware release: v2.0 … v2.9, v3.0, v3.1 (SLM), sm-v1.0, sm-v2.0-preview1 (Serial Modem)")
    ("list-profiles", "print the known profiles and exit")
    ("boot-delay-ms", po::value(&cfg.boot_delay_ms)->default_value(0), "delay before \"Ready\" at start and after each reboot")
    ("attach-delay-ms", po::value(&cfg.attach_delay_ms)->default_value(200), "AT+CFUN=1 → +CEREG: 1 delay")
    ("reset-delay-ms", po::value(&cfg.reset_delay_ms)->default_value(50), "AT#XRESET OK → reboot delay")
    ("connect-timeout-ms", po::value(&cfg.connect_timeout_ms)->default_value(3000), "connect to an unmapped test address fails with ETIMEDOUT (-116) after this")
    ("unmapped", po::value(&unmapped)->default_value("timeout"), "unmapped test addresses: timeout (-116) or unreachable (-118 at once)")
    ("cgpaddr", po::value(&cfg.ipv4_address)->default_value("10.0.0.2"), "PDN IPv4 address reported by AT+CGPADDR")
    ("cgpaddr6", po::value(&cfg.ipv6_address), "optional PDN IPv6 address reported by AT+CGPADDR")
    ("listen-address", po::value(&cfg.listen_address)->default_value("127.0.0.1"), "host address the #XTCPSVR/#XUDPSVR sockets bind to")
    ("hosts", po::value(&hosts), "hosts file (/etc/hosts format) for #XGETADDRINFO and the proxies")
    ("map", po::value(&maps)->composing(), "map a test address or prefix to a local address, e.g. 203.0.113.0/24=127.0.0.1 (repeatable)")
    ("control", po::value(&control_path), "AF_UNIX control socket for fault injection")
    ("trace", po::value(&trace_path), "byte trace of both directions")
    ("auto-connect", po::bool_switch(&cfg.auto_connect), "CFUN=1 at boot (CONFIG_SLM_AUTO_CONNECT)")
    ("interleave-hold-ms", po::value(&cfg.interleave_hold_ms)->default_value(200), "interleave on: longest a proxy URC waits for a response to land in")
    ("native-tls", po::bool_switch(&cfg.native_tls), "overlay-native_tls.conf build: AT#XCMNG, TLS server (#XTCPSVR with a sec_tag), DTLS server (#XUDPSVR with a sec_tag, v2.8+)")
    ("cred-dir", po::value(&cfg.cred_dir), "keep the credential store (AT%CMNG/AT#XCMNG) in this directory across restarts")
    ("tls-handshake-timeout-ms", po::value(&cfg.tls_handshake_timeout_ms)->default_value(10000), "TLS/DTLS handshake limit (ETIMEDOUT, -116)")
    ("dtls-server-timeout-ms", po::value(&cfg.dtls_server_timeout_ms)->default_value(5000), "DTLS server: after this much silence from its peer a new peer may take over")
    ("libmodem-version", po::value(&libmodem), "override the second #XSLMVER string")
    ("ncs-version", po::value(&ncs), "override the first #XSLMVER string (the second #XSMVER string)")
    ("sm-version", po::value(&sm_version), "Serial Modem: override the first #XSMVER string")
    ("sm-handle-base", po::value(&cfg.sm_handle_base)->default_value(3), "Serial Modem: the first socket handle (0: as on a device)")
    ("sm-eof-pollin", po::bool_switch(&cfg.sm_eof_pollin), "Serial Modem: POLLIN together with POLLHUP at the end of a TCP stream");
  // clang-format on
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
  } catch (const std::exception& e) {
    std::cerr << "slmsim: " << e.what() << "\n";
    return 2;
  }
  if (vm.count("help")) {
    std::cout << desc << "\n";
    return 0;
  }
  if (vm.count("list-profiles")) {
    for (const auto& n : profile_names()) std::cout << n << "\n";
    for (const auto& n : sm_profile_names()) std::cout << n << "\n";
    return 0;
  }
  if (link.empty()) {
    std::cerr << "slmsim: --link PATH is required\n";
    return 2;
  }
  auto prof = find_profile(profile_name);
  if (!prof) {
    std::cerr << "slmsim: unknown profile " << profile_name << "\n";
    return 2;
  }
  cfg.profile = *prof;
  if (!libmodem.empty()) cfg.profile.libmodem_version = libmodem;
  if (!ncs.empty()) cfg.profile.ncs_version = ncs;
  if (!sm_version.empty()) cfg.profile.sm_version = sm_version;
  if (cfg.sm_handle_base < 0) {
    std::cerr << "slmsim: --sm-handle-base must be >= 0\n";
    return 2;
  }
  if (unmapped == "unreachable") cfg.unmapped_unreachable = true;
  else if (unmapped != "timeout") {
    std::cerr << "slmsim: --unmapped must be timeout or unreachable\n";
    return 2;
  }
  for (const auto& m : maps) {
    if (!cfg.net.add_mapping(m)) {
      std::cerr << "slmsim: bad --map " << m << "\n";
      return 2;
    }
  }
  if (!hosts.empty() && !cfg.net.load_hosts_file(hosts)) {
    std::cerr << "slmsim: cannot read hosts file " << hosts << "\n";
    return 2;
  }
  ::signal(SIGPIPE, SIG_IGN);
  // SIGTERM/SIGINT arrive through a signalfd: blocked from the start, so none can slip past
  // before the loop is ready, and independent of the reactor backend.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  sigprocmask(SIG_BLOCK, &stop_signals, nullptr);
  int sfd = ::signalfd(-1, &stop_signals, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) {
    std::perror("slmsim: signalfd");
    return 1;
  }

  boost::asio::io_context io;
  std::unique_ptr<Trace> trace;
  if (!trace_path.empty()) {
    trace = std::make_unique<Trace>(trace_path);
    if (!trace->ok()) {
      std::cerr << "slmsim: cannot open trace file " << trace_path << "\n";
      return 2;
    }
  }
  PtyLink pty(io, cfg.baud, link);
  Simulator sim(io, cfg, pty);
  sim.set_trace(trace.get());
  pty.on_receive([&sim](std::string_view b) { sim.host_bytes(b); });
  pty.on_drain([&sim] { sim.tx_drained(); });
  try {
    pty.open();
  } catch (const std::exception& e) {
    std::cerr << "slmsim: " << e.what() << "\n";
    return 1;
  }
  std::unique_ptr<ControlServer> control;
  if (!control_path.empty()) {
    try {
      control = std::make_unique<ControlServer>(io, control_path, [&](std::string_view line) -> std::string {
        if (line == "close-link") {
          if (!pty.is_open()) return "error link already closed";
          pty.close();
          return "ok";
        }
        if (line == "reopen") {
          if (pty.is_open()) return "error link is open";
          try {
            pty.open();
          } catch (const std::exception& e) {
            return std::string("error ") + e.what();
          }
          return "ok " + pty.link_path();
        }
        return sim.control(line);
      });
    } catch (const std::exception& e) {
      std::cerr << "slmsim: control socket: " << e.what() << "\n";
      return 1;
    }
  }
  boost::asio::posix::stream_descriptor signals(io, sfd);
  signalfd_siginfo si{};
  signals.async_read_some(boost::asio::buffer(&si, sizeof si),
                          [&](const boost::system::error_code&, std::size_t) { io.stop(); });

  sim.start();
  std::cout << link << std::endl;  // one line, flushed: the link is ready
  io.run();

  if (trace) trace->note("counters " + sim.stats().to_string());
  // Close everything, then let the aborted operations complete while their owners still exist: Boost 1.81's
  // io_uring backend frees its socket service before still-queued operations that hold sockets of it.
  control.reset();
  pty.close();
  sim.shutdown();
  boost::system::error_code ignored;
  signals.close(ignored);
  io.restart();
  io.run_for(std::chrono::milliseconds(100));
  return 0;
}
