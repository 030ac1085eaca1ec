// slmsim: per-release quirk table of the Serial LTE Modem firmware (one entry per NCS release v2.0 … v2.9, v3.0, v3.1)
// and of its successor, Nordic's Serial Modem (ncs-serial-modem v1.0.x and v2.0.0-preview1: the "sm-" profiles).
// Every host-observable difference between releases that the simulator reproduces is a field here.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace slmsim {

enum class CaseRule {
  Insensitive,  // ≤v2.5: slm_util_cmd_casecmp
  UpperCase,    // v2.6: command name upper-cased before matching
  Sensitive,    // v2.7+: AT_CMD_CUSTOM filters, lower case goes to the modem (ERROR)
};

enum class TerminatorRule {
  TrailingOnTimeout,  // v1.9–v2.4: "+++" only as the last bytes when the inactivity timer fires
  Anywhere,           // v2.5+: "+++" anywhere, bytes after it parsed as AT input
};

enum class PeerLossRule {
  ExitOk0,        // ≤v2.0: back to AT mode, #XDATAMODE: 0, then "disconnected" URC
  ExitWithError,  // v2.1–v2.4: back to AT mode, #XDATAMODE: <err>, then "disconnected" URC
  NullModeUrc,    // v2.5–v2.6: null mode, "disconnected" URC mixed into the downlink
  NullModeRawTerminator,  // v2.7+: raw "+++" to the host, null mode, no URC
};

struct Profile {
  std::string name;        // "v2.9"
  int major = 2;
  int minor = 9;
  std::string ncs_version;      // first #XSLMVER string
  std::string libmodem_version; // second #XSLMVER string

  CaseRule case_rule = CaseRule::Sensitive;
  bool skip_junk_before_at = true;     // v2.5+
  std::size_t max_line = 4096;         // 4096 (v2.6+) or 4095
  bool rx_disabled_while_executing = false;  // ≤v2.4: UART RX off while a command runs
  bool header_first = true;            // v2.3+: \r\n#XTCPDATA: n\r\n<data>; earlier data first
  std::size_t rx_chunk = 2048;         // one notification per recv(): 2048 (v2.3+) or 1272
  std::size_t max_payload = 1024;      // command-mode <data> limit: 1024 (v2.3+) or 1272
  bool udpdata_with_peer = true;       // v2.8+: #XUDPDATA: n,"ip",port
  bool udpsvr_sec_tag = true;          // v2.8+: #XUDPSVR=<op>[,<port>[,<sec_tag>]]
  bool udpsvr_fail_line = true;        // v2.8+: "#UDPSVR: <err>,\"not started\"" (sic) on failure
  bool tcpcli_verify_params = true;    // v2.6+: peer_verify, hostname_verify
  bool udpcli_dtls_cid = true;         // v2.5+: use_dtls_cid
  bool strict_integers = true;         // v2.8+: at_parser rejects leading zeros
  bool space_before_param = true;      // v2.8+: one optional space before each parameter
  bool ok_on_datamode_entry = true;    // v2.1+
  bool xdatamode_on_exit = true;       // v2.1+ (≤v2.0: OK)
  TerminatorRule terminator = TerminatorRule::Anywhere;
  PeerLossRule peer_loss = PeerLossRule::NullModeRawTerminator;
  bool hangup_ok_first = true;         // v2.7+: OK before #XTCPSVR: 0,"disconnected"
  bool gai_family = true;              // v2.8+: #XGETADDRINFO="host"[,family]
  bool tcpsend_datamode_unconnected = true;  // v2.9: AT#XTCPSEND enters data mode unconnected
  bool tcpsvr_sec_tag_wedges = true;   // v2.9: #XTCPSVR with sec_tag (no native TLS) → ERROR, proxy busy
  bool modemreset = true;              // v2.5+: AT#XMODEMRESET
  bool udp_notconn_enotconn = true;    // v2.5+: #XUDPSEND/#XUDPSEND data mode unconnected → ERROR
  bool datactrl_rejects_zero = true;   // v2.9
  bool udpdata_client_peer = false;    // v3.0+: a UDP client's #XUDPDATA names the real peer, not "::",0
  bool proxy_client_cid = false;       // v3.1: #XTCPCLI/#XUDPCLI take a trailing <cid> (PDN context)
  bool send_flags = false;             // v3.1: #XTCPSEND/#XUDPSEND=[<data>][,<flags>]; =,<flags> → data mode
  std::string cgmm = "nRF9160-SICA";   // AT+CGMM / AT+CGMR answers (nominal)
  std::string cgmr = "mfw_nrf9160_1.3.5";

  // Serial Modem (ncs-serial-modem) profiles. With sm set, sm_host.cpp and sm_socket.cpp run the firmware: CR
  // terminates a command, #XSMVER, handle-based sockets, #XAPOLL and automatic reception; none of the SLM
  // commands exist (the modem answers them ERROR). The SLM fields above keep their v3.1 values and are unused,
  // apart from the at_parser ones (strict_integers, space_before_param).
  bool sm = false;
  std::string sm_version;              // first #XSMVER string: `git describe` of the release ("v1.0.1");
                                       // the second is ncs_version (NCS_VERSION_STRING of the sdk-nrf it builds on)
  std::size_t sm_max_sockets = 8;      // v1.0.x: CONFIG_POSIX_OPEN_MAX - 1 = 7; preview1: NRF_MODEM_MAX_SOCKET_COUNT
  bool sm_preview = false;             // v2.0.0-preview1: #XLISTEN/#XACCEPT, option 55, no client-role check on
                                       // #XCONNECT, byte-wise AT host (buffer grows to 8192, BS/DEL quirk)

  bool at_least(int maj, int min) const { return major > maj || (major == maj && minor >= min); }
};

// Known profile names: "v2.0" … "v2.9", "v3.0", "v3.1" (also accepted without the "v" and with a ".0" patch), and
// the Serial Modem ones "sm-v1.0" (v1.0.1; "sm-v1.0.1" too, "sm-v1.0.0" for v1.0.0's version strings) and
// "sm-v2.0-preview1" (also "sm-v2.0.0-preview1").
std::optional<Profile> find_profile(const std::string& name);
std::vector<std::string> profile_names();     // the SLM releases
std::vector<std::string> sm_profile_names();  // the Serial Modem releases
Profile default_profile();  // v2.9

}  // namespace slmsim
