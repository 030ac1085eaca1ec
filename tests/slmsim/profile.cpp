// slmsim: builds the quirk table entries from the release number (see profile.hpp for the meaning of each field).
#include "profile.hpp"

namespace slmsim {

namespace {

// v3.0 and v3.1 are v2.9 plus the differences listed at the end (docs/reference/slm-firmware-behaviour.md §2.2,
// and the v3.0/3.1 trees: main 578095f452 and ncs-serial-modem 0b6369c, a copy of sdk-nrf 437f372b).
Profile make(int major, int minor) {
  Profile p;
  p.major = major;
  p.minor = minor;
  const std::string release = std::to_string(major) + "." + std::to_string(minor);
  p.name = "v" + release;
  p.ncs_version = release + ".0";
  p.libmodem_version = release + ".0";
  auto ge = [&](int m) { return major > 2 || minor >= m; };

  p.case_rule = ge(7) ? CaseRule::Sensitive : (ge(6) ? CaseRule::UpperCase : CaseRule::Insensitive);
  p.skip_junk_before_at = ge(5);
  p.max_line = ge(6) ? 4096 : 4095;
  p.rx_disabled_while_executing = !ge(5);
  p.header_first = ge(3);
  p.rx_chunk = ge(3) ? 2048 : 1272;
  p.max_payload = ge(3) ? 1024 : 1272;
  p.udpdata_with_peer = ge(8);
  p.udpsvr_sec_tag = ge(8);
  p.udpsvr_fail_line = ge(8);
  p.tcpcli_verify_params = ge(6);
  p.udpcli_dtls_cid = ge(5);
  p.strict_integers = ge(8);
  p.space_before_param = ge(8);
  p.ok_on_datamode_entry = ge(1);
  p.xdatamode_on_exit = ge(1);
  p.terminator = ge(5) ? TerminatorRule::Anywhere : TerminatorRule::TrailingOnTimeout;
  p.peer_loss = ge(7)   ? PeerLossRule::NullModeRawTerminator
                : ge(5) ? PeerLossRule::NullModeUrc
                : ge(1) ? PeerLossRule::ExitWithError
                        : PeerLossRule::ExitOk0;
  p.hangup_ok_first = ge(7);
  p.gai_family = ge(8);
  p.tcpsend_datamode_unconnected = ge(9);
  p.tcpsvr_sec_tag_wedges = ge(9);
  p.modemreset = ge(5);
  p.udp_notconn_enotconn = ge(5);
  p.datactrl_rejects_zero = ge(9);
  p.udpdata_client_peer = major >= 3;
  p.proxy_client_cid = p.at_least(3, 1);
  p.send_flags = p.at_least(3, 1);
  return p;
}

// Serial Modem releases: the sources are the release tags of nrfconnect/ncs-serial-modem (app/src/sm_at_host.c,
// sm_at_socket.c, sm_at_commands.c; the version strings come from app/cmake/write_sm_version_header.cmake, i.e.
// `git describe` of the tag, and from the NCS release in west.yml).
Profile make_sm(const std::string& sm_version, const std::string& ncs, bool preview) {
  Profile p = make(3, 1);
  p.name = preview ? "sm-v2.0-preview1" : "sm-v1.0";
  p.sm = true;
  p.sm_version = sm_version;
  p.ncs_version = ncs;
  p.libmodem_version.clear();
  p.sm_preview = preview;
  // v1.0.x: SM_MAX_SOCKET_COUNT = CONFIG_POSIX_OPEN_MAX - 1 with CONFIG_ZVFS_OPEN_MAX=8 in prj.conf; preview1
  // (commit f19f4db): NRF_MODEM_MAX_SOCKET_COUNT = 8.
  p.sm_max_sockets = preview ? 8 : 7;
  p.max_line = preview ? 8189 : 4096;
  p.cgmm = "nRF9151-LACA";
  p.cgmr = "mfw_nrf91x1_2.0.3";
  return p;
}

}  // namespace

std::optional<Profile> find_profile(const std::string& name) {
  if (name == "sm-v1.0" || name == "sm-v1.0.1") return make_sm("v1.0.1", "3.2.4", false);
  if (name == "sm-v1.0.0") {
    auto p = make_sm("v1.0.0", "3.2.2", false);
    p.name = "sm-v1.0.0";
    return p;
  }
  if (name == "sm-v2.0-preview1" || name == "sm-v2.0.0-preview1") return make_sm("v2.0.0-preview1", "3.3.0-rc1", true);
  std::string n = name;
  if (!n.empty() && (n[0] == 'v' || n[0] == 'V')) n = n.substr(1);
  if (n.size() > 4 && n.substr(n.size() - 2) == ".0") n = n.substr(0, n.size() - 2);
  if (n.size() == 3 && n[0] == '2' && n[1] == '.' && n[2] >= '0' && n[2] <= '9') return make(2, n[2] - '0');
  if (n == "3.0" || n == "3.1") return make(3, n[2] - '0');
  return std::nullopt;
}

std::vector<std::string> profile_names() {
  std::vector<std::string> v;
  for (int m = 0; m <= 9; ++m) v.push_back("v2." + std::to_string(m));
  v.push_back("v3.0");
  v.push_back("v3.1");
  return v;
}

std::vector<std::string> sm_profile_names() { return {"sm-v1.0", "sm-v2.0-preview1"}; }

Profile default_profile() { return make(2, 9); }

}  // namespace slmsim
