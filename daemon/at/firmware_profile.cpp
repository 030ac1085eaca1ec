// Owns: the table from SLM release to observable UART behaviour (see "Firmware profiles" in docs/design.md).
#include "at/firmware_profile.hpp"

#include <charconv>

namespace slmd::at {

std::string FirmwareVersion::to_string() const {
    return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
}

std::optional<FirmwareVersion> parse_firmware_version(std::string_view text) {
    if (!text.empty() && (text.front() == 'v' || text.front() == 'V')) text.remove_prefix(1);
    FirmwareVersion v;
    int* parts[] = {&v.major, &v.minor, &v.patch};
    for (int i = 0; i < 3; ++i) {
        auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *parts[i]);
        if (ec != std::errc{} || end == text.data()) return i >= 2 ? std::optional(v) : std::nullopt;
        text.remove_prefix(static_cast<std::size_t>(end - text.data()));
        if (i < 2) {
            if (text.empty() || text.front() != '.') return i == 1 ? std::optional(v) : std::nullopt;
            text.remove_prefix(1);
        }
    }
    return v;
}

std::chrono::milliseconds FirmwareProfile::data_mode_min_time_limit(unsigned baud) {
    if (baud == 0) return std::chrono::milliseconds(10);
    return std::chrono::milliseconds(256u * 10u * 1000u / baud + 10u);
}

FirmwareProfile FirmwareProfile::for_version(FirmwareVersion v) {
    using V = FirmwareVersion;
    FirmwareProfile p;
    p.version = v;
    p.receive_order = v >= V{2, 3, 0} ? ReceiveOrder::header_first : ReceiveOrder::data_first;
    p.receive_chunk_max = v >= V{2, 3, 0} ? 2048 : 1272;
    p.max_send_string = v >= V{2, 3, 0} ? 1024 : 1272;
    p.max_command_length = v >= V{2, 6, 0} ? 4096 : 4095;
    // The #XUDPDATA address form arrived with commit e0aaba1c2f, first released in v2.8.0 (in 2.7.99-cs1).
    p.udp_data_header = v >= V{2, 7, 99} ? UdpDataHeader::size_addr_port : UdpDataHeader::size_only;
    p.udp_server_takes_sec_tag = v >= V{2, 7, 99};
    p.udp_server_failure_typo = v >= V{2, 7, 99};
    p.getaddrinfo_takes_family = v >= V{2, 8, 0};
    if (v >= V{2, 5, 0}) {
        p.data_mode_exit = DataModeExitRule::anywhere;
    } else if (v >= V{1, 9, 0}) {
        p.data_mode_exit = DataModeExitRule::trailing_silence;
    } else {
        p.data_mode_exit = DataModeExitRule::silence_both_sides;
    }
    if (v >= V{2, 7, 0}) {
        p.data_mode_peer_loss = DataModePeerLoss::null_mode_with_terminator;
    } else if (v >= V{2, 5, 0}) {
        p.data_mode_peer_loss = DataModePeerLoss::null_mode_with_urc;
    } else {
        p.data_mode_peer_loss = DataModePeerLoss::immediate_exit;
    }
    p.ok_on_data_mode_entry = v >= V{2, 1, 0};
    p.data_mode_exit_reports_status = v >= V{2, 1, 0};
    p.commands_case_sensitive = v >= V{2, 7, 0};
    p.skips_junk_before_at = v >= V{2, 5, 0};
    p.rx_paused_during_command = v < V{2, 5, 0};
    p.hangup_ok_before_urc = v >= V{2, 7, 0};
    p.tcp_send_enters_data_mode_unconnected = v >= V{2, 9, 0};
    p.data_mode_buffer = 4096;
    p.udp_send_data_mode = v >= V{1, 7, 0};
    p.udp_receive_buffer = v >= V{2, 3, 0} ? 2048 : 1272;  // slm_data_buf vs rx_data[SLM_MAX_PAYLOAD]
    p.tls_verify_params = v >= V{2, 6, 0};
    p.udp_client_dtls_cid = v >= V{2, 5, 0};
    return p;
}

FirmwareProfile FirmwareProfile::for_serial_modem(FirmwareVersion v) {
    // Serial Modem v0.1 is a copy of SLM from NCS 3.1 (sm_at_host.c keeps its data-mode and line rules): take
    // v3.1's answers, then what the add-on changed.
    FirmwareProfile p = for_version(FirmwareVersion{3, 1, 0});
    p.version = v;
    p.family = FirmwareFamily::serial_modem;
    // AT#XSEND="..." string mode is bounded by the AT buffer (CONFIG_SM_AT_BUF_SIZE, 4096 in v1.0.x).
    p.max_send_string = 1024;
    p.receive_chunk_max = 2048;  // SM_MAX_MESSAGE_SIZE per #XRECV
    p.udp_receive_buffer = 2048;
    p.data_mode_buffer = 4096;  // CONFIG_SM_DATAMODE_BUF_SIZE: one UDP datagram per data-mode send
    return p;
}

}  // namespace slmd::at
