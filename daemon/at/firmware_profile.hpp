// Owns: the one value that describes how a given SLM firmware release behaves on the UART.
// Every per-release difference the framer, channel and driver must respect lives here and nowhere else;
// code asks the profile ("is the receive header first?") instead of comparing version numbers.
#pragma once

#include <chrono>
#include <compare>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace slmd::at {

struct FirmwareVersion {
    int major = 0;
    int minor = 0;
    int patch = 0;
    auto operator<=>(const FirmwareVersion&) const = default;
    std::string to_string() const;
};

// Parses "2.9.0", "v2.5.0", "2.7.99-cs1" style NCS version text. Returns nullopt for anything else.
std::optional<FirmwareVersion> parse_firmware_version(std::string_view text);

// Where the counted payload of #XTCPDATA/#XUDPDATA sits relative to its header line.
enum class ReceiveOrder {
    header_first,  // v2.3+: "\r\n#XTCPDATA: n\r\n" then n raw bytes
    data_first,    // v1.7-v2.2: n raw bytes then "\r\n#XTCPDATA: n\r\n"
};

// Shape of the #XUDPDATA header.
enum class UdpDataHeader {
    size_only,       // "#XUDPDATA: <n>" (v2.7 and earlier)
    size_addr_port,  // "#XUDPDATA: <n>,\"<ip>\",<port>" (v2.8+)
};

// How the firmware recognises the host's "+++" that ends data mode.
enum class DataModeExitRule {
    silence_both_sides,  // v1.7-v1.8: "+++" alone, 1 s of silence before and after
    trailing_silence,    // v1.9-v2.4: "+++" must be the last bytes when the inactivity timer fires
    anywhere,            // v2.5+: "+++" anywhere in the stream ends data mode, even inside a payload
};

// What the firmware does when the proxy breaks while the link is in data mode.
enum class DataModePeerLoss {
    immediate_exit,            // <=v2.4: back to AT mode at once, "#XDATAMODE: <err>" (or 0) then "disconnected"
    null_mode_with_urc,        // v2.5-v2.6: drops host input until "+++"; "disconnected" URC mixed into downlink
    null_mode_with_terminator, // v2.7+: writes raw "+++" to the host, drops input until the host's "+++"
};

// Which firmware line: Nordic's Serial LTE Modem (sdk-nrf, "#XSLMVER", up to v3.1) or its successor, the
// Serial Modem add-on (ncs-serial-modem, "#XSMVER", v0.1 on): handle-based sockets, no proxies, CR-terminated
// commands (docs/reference/serial-modem-and-generic-sockets.md).
enum class FirmwareFamily { slm, serial_modem };

struct FirmwareProfile {
    FirmwareVersion version;
    FirmwareFamily family = FirmwareFamily::slm;
    ReceiveOrder receive_order = ReceiveOrder::header_first;
    UdpDataHeader udp_data_header = UdpDataHeader::size_only;
    DataModeExitRule data_mode_exit = DataModeExitRule::anywhere;
    DataModePeerLoss data_mode_peer_loss = DataModePeerLoss::null_mode_with_terminator;
    bool ok_on_data_mode_entry = true;        // v2.1+: "OK" after the bare send command; before: nothing
    bool data_mode_exit_reports_status = true;  // v2.1+: "#XDATAMODE: <status>"; before: "OK"
    bool commands_case_sensitive = true;      // v2.7+: lower-case "at#x..." is not intercepted
    bool skips_junk_before_at = true;         // v2.5+
    bool rx_paused_during_command = false;    // <=v2.4: bytes sent while a command runs may be lost
    bool hangup_ok_before_urc = true;         // v2.7+: AT#XTCPHANGUP answers OK before "disconnected"
    bool getaddrinfo_takes_family = true;     // v2.8+
    bool udp_server_takes_sec_tag = true;     // v2.8+
    bool udp_server_failure_typo = true;      // v2.8+: failure spelled "#UDPSVR:"
    bool tcp_send_enters_data_mode_unconnected = false;  // v2.9 quirk
    std::size_t max_command_length = 4096;    // characters before CRLF
    std::size_t max_send_string = 1024;       // bytes inside AT#XTCPSEND="..."
    std::size_t receive_chunk_max = 2048;     // largest #XTCPDATA payload
    std::size_t data_mode_buffer = 4096;      // uplink ring; one UDP datagram per flush must fit
    // UDP and servers (docs/design.md, "UDP and servers on the SLM proxy driver").
    bool udp_send_data_mode = true;           // v1.7+: bare AT#XUDPSEND enters data mode, one datagram per flush
    std::size_t udp_receive_buffer = 2048;    // largest #XUDPDATA datagram: 2048 (v2.3+) or 1272; longer is cut
    bool tls_verify_params = true;            // v2.6+: #XTCPCLI/#XUDPCLI take peer_verify, hostname_verify
    bool udp_client_dtls_cid = true;          // v2.5+: #XUDPCLI takes use_dtls_cid

    // Serial Modem: a send in data mode with a length ends by itself after that many bytes ("#XDATAMODE: 0",
    // no "+++"), and "#XRECV: <h>,<mode>,<n>" / "#XRECVFROM: <h>,<mode>,<n>,\"<ip>\",<port>" carry a handle
    // and arrive unsolicited (automatic reception, #XRECVCFG) as well as in answer to AT#XRECV.
    bool serial_modem() const { return family == FirmwareFamily::serial_modem; }
    // What ends a command line: CR+LF on SLM; CR on Serial Modem (its default CONFIG_SM_CR_TERMINATION): an LF
    // behind the CR would be read there as the first byte of whatever follows, in data mode as payload.
    std::string_view command_terminator() const { return serial_modem() ? "\r" : "\r\n"; }

    // The firmware's minimum data-mode inactivity time limit at this baud rate
    // (256 * 10 * 1000 / baud + 10 ms, integer arithmetic as in the firmware).
    static std::chrono::milliseconds data_mode_min_time_limit(unsigned baud);

    // The behaviour of a release; versions between known ones take the nearest older behaviour. v3.0 and
    // v3.1 (the last SLM releases) answer every question as v2.9 does (docs/firmware-support.md).
    static FirmwareProfile for_version(FirmwareVersion version);
    // The Serial Modem add-on's behaviour (v1.0.x and the v2.0 previews answer the same to every question the
    // daemon asks; the v0.x previews before the handle-based socket commands are not supported).
    static FirmwareProfile for_serial_modem(FirmwareVersion version);
    bool operator==(const FirmwareProfile&) const = default;
};

}  // namespace slmd::at
