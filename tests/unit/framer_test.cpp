// Owns: the table-driven tests of at::Framer. Every input is a byte string the SLM firmware really writes
// (docs/reference/slm-firmware-behaviour.md), every expectation is the exact event list. Each table
// case is also replayed split at every byte position and in random chunks: the events must not depend on how
// the UART read() calls cut the stream.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "at/framer.hpp"

namespace slmd::at {

// Readable failure output: gtest prints a variant through PrintTo of the held alternative (found by ADL).
void print_event(const Event& event, std::ostream* os) {
    auto quoted = [os](const std::string& s) {
        *os << '"';
        for (unsigned char c : s) {
            if (c == '\r') *os << "\\r";
            else if (c == '\n') *os << "\\n";
            else if (c < 0x20 || c >= 0x7f) *os << "\\x" << std::hex << int(c) << std::dec;
            else *os << c;
        }
        *os << '"';
    };
    std::visit(
        [&](const auto& e) {
            using T = std::decay_t<decltype(e)>;
            if constexpr (std::is_same_v<T, FinalResult>) *os << "Final{" << int(e.kind) << "," << e.code << "}";
            else if constexpr (std::is_same_v<T, InfoLine>) *os << "Info{", quoted(e.text), *os << "}";
            else if constexpr (std::is_same_v<T, Urc>) *os << "Urc{", quoted(e.text), *os << "}";
            else if constexpr (std::is_same_v<T, ReadyBanner>) *os << "Ready";
            else if constexpr (std::is_same_v<T, ProxyData>) {
                *os << (e.proxy == Proxy::tcp ? "Tcp{" : e.proxy == Proxy::udp ? "Udp{" : "Socket{");
                quoted(e.bytes);
                if (e.peer_address) *os << "," << *e.peer_address << ":" << e.peer_port.value_or(0);
                *os << "}";
            } else if constexpr (std::is_same_v<T, RawData>) *os << "Raw{", quoted(e.bytes), *os << "}";
            else if constexpr (std::is_same_v<T, DataModeExited>) *os << "Exited{" << e.status << "}";
            else if constexpr (std::is_same_v<T, PeerTerminator>) *os << "PeerTerminator";
            else if constexpr (std::is_same_v<T, PossibleReboot>) *os << "PossibleReboot";
            else if constexpr (std::is_same_v<T, PayloadLost>)
                *os << "PayloadLost{" << (e.proxy == Proxy::tcp ? "tcp," : e.proxy == Proxy::udp ? "udp," : "socket,")
                    << e.expected << "," << e.received
                    << "}";
            else *os << "Discarded{", quoted(e.bytes), *os << "}";
        },
        event);
}
void PrintTo(const FinalResult& e, std::ostream* os) { print_event(e, os); }
void PrintTo(const InfoLine& e, std::ostream* os) { print_event(e, os); }
void PrintTo(const Urc& e, std::ostream* os) { print_event(e, os); }
void PrintTo(const ReadyBanner& e, std::ostream* os) { print_event(e, os); }
void PrintTo(const ProxyData& e, std::ostream* os) { print_event(e, os); }
void PrintTo(const RawData& e, std::ostream* os) { print_event(e, os); }
void PrintTo(const DataModeExited& e, std::ostream* os) { print_event(e, os); }
void PrintTo(const PeerTerminator& e, std::ostream* os) { print_event(e, os); }
void PrintTo(const Discarded& e, std::ostream* os) { print_event(e, os); }
void PrintTo(const PayloadLost& e, std::ostream* os) { print_event(e, os); }
void PrintTo(const PossibleReboot& e, std::ostream* os) { print_event(e, os); }

namespace {

using Events = std::vector<Event>;

// One caller action, in stream order.
struct Step {
    enum Kind { feed, command, command_unprefixed, data_mode, exit_data_mode, idle, silence } kind;
    std::string arg;
};
Step F(std::string bytes) { return {Step::feed, std::move(bytes)}; }
Step C(std::string prefix) { return {Step::command, std::move(prefix)}; }
Step U(std::string prefix) { return {Step::command_unprefixed, std::move(prefix)}; }  // its answer has bare lines
Step D() { return {Step::data_mode, {}}; }
Step X() { return {Step::exit_data_mode, {}}; }
Step I() { return {Step::idle, {}}; }
Step S() { return {Step::silence, {}}; }  // bytes resume after a silence (Framer::resume_after_silence)

Event ok() { return FinalResult{FinalKind::ok, 0}; }
Event error() { return FinalResult{FinalKind::error, 0}; }
Event info(std::string s) { return InfoLine{std::move(s)}; }
Event urc(std::string s) { return Urc{std::move(s)}; }
Event raw(std::string s) { return RawData{std::move(s)}; }
Event junk(std::string s) { return Discarded{std::move(s)}; }
Event lost(Proxy proxy, std::size_t expected, std::size_t received) { return PayloadLost{proxy, expected, received}; }
Event exited(int status) { return DataModeExited{status}; }
Event tcp(std::string s) { return ProxyData{Proxy::tcp, std::move(s), std::nullopt, std::nullopt}; }
Event udp(std::string s) { return ProxyData{Proxy::udp, std::move(s), std::nullopt, std::nullopt}; }
Event udp_from(std::string s, std::string ip, std::uint16_t port) {
    return ProxyData{Proxy::udp, std::move(s), std::move(ip), port};
}
Event recv(std::string s) { return ProxyData{Proxy::socket, std::move(s), std::nullopt, std::nullopt}; }
Event recv_from(std::string s, std::string ip, std::optional<std::uint16_t> port) {
    return ProxyData{Proxy::socket, std::move(s), std::move(ip), port};
}
// Serial Modem: bytes for socket `handle`, answer or automatic reception alike.
Event sm_recv(int handle, std::string s) { return ProxyData{Proxy::socket, std::move(s), std::nullopt, std::nullopt, handle}; }
Event sm_recv_from(int handle, std::string s, std::string ip, std::uint16_t port) {
    return ProxyData{Proxy::socket, std::move(s), std::move(ip), port, handle};
}
const Event ready = ReadyBanner{};
const Event peer_terminator = PeerTerminator{};
const Event possible_reboot = PossibleReboot{};

// RawData and Discarded come out in as many pieces as the reads had; only their concatenation is defined.
Events merged(const Events& in) {
    Events out;
    for (const Event& e : in) {
        if (!out.empty()) {
            if (auto* r = std::get_if<RawData>(&e); r && std::holds_alternative<RawData>(out.back())) {
                std::get<RawData>(out.back()).bytes += r->bytes;
                continue;
            }
            if (auto* d = std::get_if<Discarded>(&e); d && std::holds_alternative<Discarded>(out.back())) {
                std::get<Discarded>(out.back()).bytes += d->bytes;
                continue;
            }
        }
        out.push_back(e);
    }
    return out;
}

// "2.9.0": that SLM release; "sm1.0.1": that Serial Modem release.
FirmwareProfile profile(const char* version) {
    const std::string_view text(version);
    if (text.starts_with("sm")) return FirmwareProfile::for_serial_modem(*parse_firmware_version(text.substr(2)));
    return FirmwareProfile::for_version(*parse_firmware_version(text));
}

using Splitter = std::function<std::vector<std::string>(std::size_t step, const std::string& bytes)>;

std::vector<std::string> whole(std::size_t, const std::string& bytes) { return {bytes}; }

// Runs the steps and a final idle(), returning the merged events.
Events run(const FirmwareProfile& p, const std::vector<Step>& steps, const Splitter& split = whole,
           Framer* keep = nullptr) {
    Framer local(p);
    Framer& framer = keep ? *keep : local;
    Events out;
    for (std::size_t i = 0; i < steps.size(); ++i) {
        const Step& s = steps[i];
        switch (s.kind) {
            case Step::feed:
                for (const std::string& chunk : split(i, s.arg)) framer.feed(chunk, out);
                break;
            case Step::command: framer.command_sent(s.arg); break;
            case Step::command_unprefixed: framer.command_sent(s.arg, true); break;
            case Step::data_mode: framer.data_mode_requested(); break;
            case Step::exit_data_mode: framer.data_mode_exit_requested(); break;
            case Step::idle: framer.idle(out); break;
            case Step::silence: framer.resume_after_silence(); break;
        }
    }
    framer.idle(out);
    return merged(out);
}

struct Case {
    const char* name;
    const char* version;
    std::vector<Step> steps;
    Events expected;
    LinkMode final_mode = LinkMode::command;
    bool pending_after = false;
};

// Keeps ctest's test list short: a case prints as its name, not as 72 raw bytes.
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

const std::string long_line(5000, 'x');

const std::vector<Case>& cases() {
    static const std::vector<Case> table = {
        // --- command responses (reference 1 "Response framing", 2.3) ---
        {"tcpcli_connected", "2.9.0", {C("#XTCPCLI"), F("\r\n#XTCPCLI: 0,\"connected\"\r\n\r\nOK\r\n")},
         {info("#XTCPCLI: 0,\"connected\""), ok()}},
        {"cgpaddr", "2.9.0", {C("+CGPADDR"), F("\r\n+CGPADDR: 0,\"10.1.2.3\"\r\n\r\nOK\r\n")},
         {info("+CGPADDR: 0,\"10.1.2.3\""), ok()}},
        {"cfun_plain_ok", "2.9.0", {C(""), F("\r\nOK\r\n")}, {ok()}},
        {"tcpcli_not_connected", "2.9.0", {C("#XTCPCLI"), F("\r\n#XTCPCLI: -111,\"not connected\"\r\n\r\nERROR\r\n")},
         {info("#XTCPCLI: -111,\"not connected\""), error()}},
        {"cme_error_30", "2.9.0", {C("+CGPADDR"), F("\r\n+CME ERROR: 30\r\n")}, {FinalResult{FinalKind::cme_error, 30}}},
        {"cms_error_500", "2.9.0", {C("+CMGS"), F("\r\n+CMS ERROR: 500\r\n")}, {FinalResult{FinalKind::cms_error, 500}}},
        {"cme_error_unreadable_code", "2.9.0", {C(""), F("\r\n+CME ERROR: 0x1e\r\n")},
         {FinalResult{FinalKind::cme_error, -1}}},
        {"cme_error_overflowing_code", "2.9.0", {C(""), F("\r\n+CME ERROR: 99999999999999999999\r\n")},
         {FinalResult{FinalKind::cme_error, -1}}},
        {"urc_between_info_and_ok", "2.9.0",
         {C("#XTCPCLI"), F("\r\n#XTCPCLI: 0,\"connected\"\r\n\r\n+CEREG: 1\r\n\r\nOK\r\n")},
         {info("#XTCPCLI: 0,\"connected\""), urc("+CEREG: 1"), ok()}},
        {"modem_multi_line_response", "2.9.0",
         {C("+CGDCONT"), F("\r\n+CGDCONT: 0,\"IP\",\"apn\"\r\n+CGDCONT: 1,\"IP\",\"b\"\r\n\r\nOK\r\n")},
         {info("+CGDCONT: 0,\"IP\",\"apn\""), info("+CGDCONT: 1,\"IP\",\"b\""), ok()}},
        {"disconnected_is_info_while_tcpcli_pending", "2.9.0",
         {C("#XTCPCLI"), F("\r\n#XTCPCLI: 0,\"disconnected\"\r\n\r\nOK\r\n")}, {info("#XTCPCLI: 0,\"disconnected\""), ok()}},
        {"disconnected_is_urc_otherwise", "2.9.0", {F("\r\n#XTCPCLI: -104,\"disconnected\"\r\n")},
         {urc("#XTCPCLI: -104,\"disconnected\"")}},
        {"disconnected_is_urc_during_other_command", "2.9.0",
         {C("+CEREG"), F("\r\n#XTCPCLI: -104,\"disconnected\"\r\n\r\n+CEREG: 5,1\r\n\r\nOK\r\n")},
         {urc("#XTCPCLI: -104,\"disconnected\""), info("+CEREG: 5,1"), ok()}},
        {"prefix_needs_colon_boundary", "2.9.0", {C("#XTCP"), F("\r\n#XTCPCLI: 0,\"connected\"\r\n\r\nOK\r\n")},
         {urc("#XTCPCLI: 0,\"connected\""), ok()}},
        {"hangup_ok_before_urc", "2.9.0", {C("#XTCPHANGUP"), F("\r\nOK\r\n\r\n#XTCPSVR: 0,\"disconnected\"\r\n")},
         {ok(), urc("#XTCPSVR: 0,\"disconnected\"")}},
        {"udpsvr_failure_typo_is_info", "2.9.0", {C("#XUDPSVR"), F("\r\n#UDPSVR: -115,\"not started\"\r\n\r\nERROR\r\n")},
         {info("#UDPSVR: -115,\"not started\""), error()}},
        {"stray_ok_without_command_is_urc", "2.9.0", {F("\r\nOK\r\n")}, {urc("OK")}},
        {"second_ok_after_final_is_urc", "2.9.0", {C(""), F("\r\nOK\r\n\r\nOK\r\n")}, {ok(), urc("OK")}},
        {"pending_until_final", "2.9.0", {C("#XTCPCLI"), F("\r\n#XTCPCLI: 0,\"connected\"\r\n")},
         {info("#XTCPCLI: 0,\"connected\"")}, LinkMode::command, true},

        // --- Ready (reference 1 "Boot and wake banner", 6 "Reset") ---
        {"ready_at_boot", "2.9.0", {F("Ready\r\n")}, {ready}},
        {"ready_after_reset_command", "2.9.0", {C(""), F("\r\nOK\r\nReady\r\n")}, {ok(), ready}},
        {"ready_clears_pending_command", "2.9.0", {C("#XTCPCLI"), F("\r\n#XTCPCLI: 0,\"connected\"\r\nReady\r\n")},
         {info("#XTCPCLI: 0,\"connected\""), ready}, LinkMode::command, false},
        {"ready_behind_power_on_noise", "2.9.0", {F(std::string("\0\xff", 2) + "Ready\r\n")},
         {junk(std::string("\0\xff", 2)), ready}},
        // Not a banner. Nor any firmware message (those start "+", "#", "%"): bytes no header claimed, reported lost.
        {"ready_inside_text_is_not_a_banner", "2.9.0", {F("\r\nNot Ready\r\n")},
         {junk("Not Ready\r\n"), lost(Proxy::tcp, 0, 11)}},
        {"ready_while_entering_data_mode", "2.9.0", {D(), F("Ready\r\n")}, {ready}},
        {"ready_after_idle_wake", "2.9.0", {F("\r\n+CEREG: 1\r\nReady\r\n\r\n#XTCPDATA: 2\r\nhi")},
         {urc("+CEREG: 1"), ready, tcp("hi")}},

        // --- header-first receive, v2.3+ (reference 3) ---
        {"tcpdata", "2.9.0", {F("\r\n#XTCPDATA: 5\r\nhello")}, {tcp("hello")}},
        {"tcpdata_payload_looks_like_ok", "2.9.0", {C(""), F("\r\n#XTCPDATA: 6\r\nOK\r\n\r\n\r\nOK\r\n")},
         {tcp("OK\r\n\r\n"), ok()}},
        {"tcpdata_between_info_and_ok", "2.9.0",
         {C("#XTCPSEND"), F("\r\n#XTCPSEND: 5\r\n\r\n#XTCPDATA: 4\r\nOK\r\n\r\nOK\r\n")},
         {info("#XTCPSEND: 5"), tcp("OK\r\n"), ok()}},
        {"tcpdata_back_to_back", "2.9.0", {F("\r\n#XTCPDATA: 3\r\nabc\r\n#XTCPDATA: 2\r\nde")}, {tcp("abc"), tcp("de")}},
        {"tcpdata_binary_payload", "2.9.0", {F(std::string("\r\n#XTCPDATA: 4\r\n\0\r\xff\n", 20))},
         {tcp(std::string("\0\r\xff\n", 4))}},
        {"tcpdata_payload_contains_ready", "2.9.0", {F("\r\n#XTCPDATA: 7\r\nReady\r\n")}, {tcp("Ready\r\n")}},
        {"tcpdata_zero_length", "2.9.0", {F("\r\n#XTCPDATA: 0\r\n\r\n+CEREG: 1\r\n")}, {tcp(""), urc("+CEREG: 1")}},
        {"tcpdata_max_chunk", "2.9.0", {F("\r\n#XTCPDATA: 2048\r\n" + std::string(2048, 'z'))}, {tcp(std::string(2048, 'z'))}},
        {"tcpdata_over_chunk_is_urc", "2.9.0", {F("\r\n#XTCPDATA: 2049\r\n")}, {urc("#XTCPDATA: 2049")}},
        {"tcpdata_leading_zero_is_urc", "2.9.0", {F("\r\n#XTCPDATA: 05\r\nhello")}, {urc("#XTCPDATA: 05")}},
        {"tcpdata_overflow_is_urc", "2.9.0", {F("\r\n#XTCPDATA: 18446744073709551621\r\n")},
         {urc("#XTCPDATA: 18446744073709551621")}},
        {"tcpdata_negative_is_urc", "2.9.0", {F("\r\n#XTCPDATA: -5\r\n")}, {urc("#XTCPDATA: -5")}},
        // Bytes right after the counted ones that are no CRLF: bytes went missing inside the payload and the count
        // ran on. The payload is given up whole, never delivered; framing resumes at the next line.
        {"payload_not_followed_by_crlf_is_given_up", "2.9.0", {F("\r\n#XTCPDATA: 3\r\nabcde\r\n\r\n+CEREG: 1\r\n")},
         {lost(Proxy::tcp, 3, 3), junk("abcde\r\n"), urc("+CEREG: 1")}},
        {"udpdata_size_only_v27", "2.7.0", {F("\r\n#XUDPDATA: 5\r\nhello")}, {udp("hello")}},
        {"udpdata_client_v29", "2.9.0", {F("\r\n#XUDPDATA: 9,\"::\",0\r\ndatagram!")}, {udp_from("datagram!", "::", 0)}},
        {"udpdata_server_v29", "2.9.0", {F("\r\n#XUDPDATA: 7,\"192.168.1.100\",24210\r\nabc\r\nde")},
         {udp_from("abc\r\nde", "192.168.1.100", 24210)}},
        {"udpdata_bad_port_is_urc", "2.9.0", {F("\r\n#XUDPDATA: 1,\"1.2.3.4\",65536\r\n")},
         {urc("#XUDPDATA: 1,\"1.2.3.4\",65536")}},
        {"tcpdata_with_address_is_urc", "2.9.0", {F("\r\n#XTCPDATA: 1,\"1.2.3.4\",1\r\n")},
         {urc("#XTCPDATA: 1,\"1.2.3.4\",1")}},

        // --- another proxy's notification between a header and its payload (reference 1, interleaving) ---
        {"udp_data_between_tcp_header_and_payload", "2.9.0",
         {F("\r\n#XTCPDATA: 5\r\n\r\n#XUDPDATA: 3,\"::\",0\r\nabchello")},
         {udp_from("abc", "::", 0), tcp("hello")}},
        {"proxy_urc_between_tcp_header_and_payload", "2.5.0",
         {F("\r\n#XTCPDATA: 2\r\n\r\n#XUDPCLI: -104,\"disconnected\"\r\nhi\r\nOK\r\n")},
         {urc("#XUDPCLI: -104,\"disconnected\""), tcp("hi"), urc("OK")}},
        // v3.1's poll thread writes its reports as whole lines too: one can sit between a read's header and bytes.
        {"apoll_report_between_recv_header_and_payload", "3.1.0",
         {C("#XRECV"), F("\r\n#XRECV: 4\r\n\r\n#XAPOLL: 2,1\r\nab\r\n\r\nOK\r\n")},
         {info("#XRECV: 4"), urc("#XAPOLL: 2,1"), recv("ab\r\n"), ok()}},
        {"apoll_report_after_recv_payload_before_ok", "3.1.0",
         {C("#XRECV"), F("\r\n#XRECV: 2\r\nhi\r\n#XAPOLL: 0,17\r\n\r\nOK\r\n")},
         {info("#XRECV: 2"), recv("hi"), urc("#XAPOLL: 0,17"), ok()}},
        {"payload_that_only_looks_like_a_notification_is_payload", "2.9.0",
         {F("\r\n#XTCPDATA: 9\r\n\r\n#XUDzzz")}, {tcp("\r\n#XUDzzz")}},
        {"partial_notification_at_idle_is_payload", "2.9.0",
         {F("\r\n#XTCPDATA: 4\r\n\r\n#X"), I(), F("\r\n+CEREG: 1\r\n")}, {tcp("\r\n#X"), urc("+CEREG: 1")}},

        // --- data-first receive, v1.7-v2.2 (reference 3) ---
        {"data_first_tcp", "2.2.0", {F("\r\n+CEREG: 1\r\nhello\r\n#XTCPDATA: 5\r\n")}, {urc("+CEREG: 1"), tcp("hello")}},
        {"data_first_payload_with_lines", "2.2.0", {F("\r\n+CEREG: 1\r\na\r\nOK\r\nb\r\n#XTCPDATA: 8\r\n")},
         {urc("+CEREG: 1"), tcp("a\r\nOK\r\nb")}},
        {"data_first_payload_starting_with_crlf", "2.0.0", {F("\r\n+CEREG: 1\r\n\r\nhi\r\n#XTCPDATA: 4\r\n")},
         {urc("+CEREG: 1"), tcp("\r\nhi")}},
        {"data_first_udp", "1.7.0", {F("\r\n+CEREG: 5\r\nping\r\n#XUDPDATA: 4\r\n")}, {urc("+CEREG: 5"), udp("ping")}},
        {"data_first_final_waits_for_idle", "2.2.0", {C("+CFUN"), F("\r\nOK\r\n")}, {ok()}},
        // A data-first payload follows a complete message or the previous header. A count that reaches back
        // into a line (bytes lost, or foreign bytes in) or beyond what came since the last message (bytes lost,
        // or part released as lines after a silence) is never delivered: PayloadLost, the bytes discarded.
        {"data_first_payload_cuts_a_line", "2.2.0", {F("\r\n+CEREG: 1\r\nxyzabc\r\n#XTCPDATA: 3\r\n")},
         {urc("+CEREG: 1"), junk("xyzabc\r\n"), lost(Proxy::tcp, 3, 6)}},
        {"data_first_claim_beyond_held_bytes", "2.2.0", {F("\r\nab\r\n"), I(), F("cd\r\n#XTCPDATA: 6\r\n")},
         {junk("ab\r\n"), lost(Proxy::tcp, 0, 4), junk("cd\r\n"), lost(Proxy::tcp, 6, 2)}},
        // Two bytes of a 12-byte payload lost: the count reaches into the "+CEREG: 1" before it, and what
        // that line was (a message, or payload) can no longer be told; nothing is delivered.
        {"data_first_payload_with_bytes_missing", "2.2.0",
         {F("\r\n+CEREG: 1\r\n0123456789\r\n#XTCPDATA: 12\r\n")},
         {junk("+CEREG: 1\r\n0123456789\r\n"), lost(Proxy::tcp, 12, 21)}},
        {"data_first_lines_released_after_reach", "2.2.0",
         {C(""), F("\r\nOK\r\n" + std::string(1300, 'p') + "\r\n#XTCPDATA: 1272\r\n")},
         {ok(), junk(std::string(1300, 'p') + "\r\n"), lost(Proxy::tcp, 1272, 1300)}},
        // The modem rebooted part-way through a data-first payload: its first bytes came, then a silence, then
        // the boot banner on the same line. The cut payload is no message and the banner a reboot.
        {"data_first_reboot_in_the_middle_of_a_payload", "2.1.0",
         {F("\r\n+CEREG: 1\r\nab\r\ncd"), I(), S(), F("Ready\r\n")},
         {urc("+CEREG: 1"), junk("ab\r\n"), lost(Proxy::tcp, 0, 4), junk("cd"), ready}},
        // The same when slmd did not see the silence (it had paused reading): a line ending in the banner.
        {"data_first_reboot_unseen_silence", "2.1.0", {F("\r\n+CEREG: 1\r\nab\r\ncd\xf9\nReady\r\n")},
         {urc("+CEREG: 1"), junk("ab\r\n"), lost(Proxy::tcp, 0, 4), junk("cd\xf9\n"), ready}},
        // Bytes lost inside a data-first header ("\r\n#XTCP" here): nothing claims the payload before it. A line
        // that is no firmware message ("+…", "#…", "%…", a final) is that payload: reported lost, never a URC,
        // so its connection ends in an error rather than a stream with a hole.
        {"data_first_header_lost", "2.2.0", {F("\r\n+CEREG: 1\r\nhello\r\nDATA: 5\r\n\r\n+CEREG: 5\r\n")},
         {urc("+CEREG: 1"), junk("hello\r\n"), lost(Proxy::tcp, 0, 7), junk("DATA: 5\r\n"), lost(Proxy::tcp, 0, 9),
          urc("+CEREG: 5")}},
        // Unprefixed answers of a pending command (AT+CGSN's serial number) are no payload.
        {"data_first_unprefixed_answer_is_no_loss", "2.2.0", {U("+CGSN"), F("\r\n352656100000000\r\n\r\nOK\r\n")},
         {info("352656100000000"), ok()}},
        // Bytes that resume a line after a silence and are not a banner: the line is an ordinary one.
        {"a_line_resumed_after_a_silence_is_still_a_line", "2.1.0",
         {F("\r\n+CEREG: 1\r\n+CEREG"), I(), S(), F(": 5\r\n")},
         {urc("+CEREG: 1"), urc("+CEREG: 5")}},
        {"data_first_line_before_a_command_is_not_its_answer", "2.2.0",
         {F("\r\n#XTCPCLI: -104,\"disconnected\"\r\n"), C("#XTCPCLI"), F("\r\nOK\r\n")},
         {urc("#XTCPCLI: -104,\"disconnected\""), ok()}},
        // A command sent while a data-first payload is arriving (its lines held, its header not yet in): the
        // payload is still claimed whole by its header, and the command's own answer follows.
        {"data_first_payload_survives_a_command_sent_before_its_header", "2.2.0",
         {F("\r\n+CEREG: 1\r\nGET / HTTP/1.1\r\nHost: x\r\n"), C("#XTCPCLI"), F("\r\n#XTCPDATA: 25\r\n"),
          F("\r\n#XTCPCLI: (0,1,2),<url>,<port>\r\nOK\r\n")},
         {urc("+CEREG: 1"), tcp("GET / HTTP/1.1\r\nHost: x\r\n"), info("#XTCPCLI: (0,1,2),<url>,<port>"), ok()}},
        {"data_first_payload_survives_a_command_sent_mid_line", "2.0.0",
         {F("\r\n+CEREG: 1\r\nab\r\ncd"), C("+CFUN"), F("ef\r\n#XTCPDATA: 8\r\n\r\n+CFUN: 1\r\nOK\r\n")},
         {urc("+CEREG: 1"), tcp("ab\r\ncdef"), info("+CFUN: 1"), ok()}},

        // --- a generic socket's #XRECV / #XRECVFROM answer (serial-modem-and-generic-sockets.md 3.2): header
        // first on every release, exactly n bytes, then the final result ---
        {"recv_answer_is_counted", "2.9.0", {C("#XRECV"), F(std::string("\r\n#XRECV: 9\r\nab\r\nOK\r\n\0\r\nOK\r\n", 28))},
         {info("#XRECV: 9"), recv(std::string("ab\r\nOK\r\n\0", 9)), ok()}},
        {"recv_answer_is_counted_on_data_first_releases", "2.0.0",
         {C("#XRECV"), F("\r\n#XRECV: 5\r\nOK\r\n+\r\nOK\r\n")}, {info("#XRECV: 5"), recv("OK\r\n+"), ok()}},
        {"recv_answer_data_first_release_after_a_urc", "2.2.0",
         {C("#XRECV"), F("\r\n+CEREG: 1\r\n\r\n#XRECV: 2\r\nhi\r\nOK\r\n")},
         {urc("+CEREG: 1"), info("#XRECV: 2"), recv("hi"), ok()}},
        {"recv_end_of_stream_is_ok_alone", "2.9.0", {C("#XRECV"), F("\r\nOK\r\n")}, {ok()}},
        {"recv_nothing_waiting_is_error", "2.9.0", {C("#XRECV"), F("\r\nERROR\r\n")}, {error()}},
        {"recvfrom_answer_names_the_peer", "2.9.0",
         {C("#XRECVFROM"), F("\r\n#XRECVFROM: 4,\"192.0.2.1\",5683\r\nping\r\nOK\r\n")},
         {info("#XRECVFROM: 4,\"192.0.2.1\",5683"), recv_from("ping", "192.0.2.1", 5683), ok()}},
        {"recvfrom_answer_before_v2_5_has_no_port", "2.4.0",
         {C("#XRECVFROM"), F("\r\n#XRECVFROM: 2,\"192.0.2.1\"\r\nhi\r\nOK\r\n")},
         {info("#XRECVFROM: 2,\"192.0.2.1\""), recv_from("hi", "192.0.2.1", std::nullopt), ok()}},
        {"recv_header_without_its_command_is_a_urc", "2.9.0", {C("+CEREG"), F("\r\n#XRECV: 2\r\n\r\nOK\r\n")},
         {urc("#XRECV: 2"), ok()}},
        {"recv_answer_with_another_proxys_data_between", "2.9.0",
         {C("#XRECV"), F("\r\n#XRECV: 2\r\n\r\n#XTCPDATA: 3\r\nabchi\r\nOK\r\n")},
         {info("#XRECV: 2"), tcp("abc"), recv("hi"), ok()}},
        {"recv_answer_longer_than_its_count_is_lost", "2.9.0", {C("#XRECV"), F("\r\n#XRECV: 2\r\nhix\r\nOK\r\n")},
         {info("#XRECV: 2"), lost(Proxy::socket, 2, 2), junk("hix\r\n"), ok()}},

        // --- data mode entry (reference 4) ---
        {"data_mode_entry_ok", "2.9.0", {D(), F("\r\nOK\r\nhello\r\nOK\r\n")}, {ok(), raw("hello\r\nOK\r\n")}, LinkMode::data},
        {"data_mode_entry_error", "2.9.0", {D(), F("\r\nERROR\r\n\r\n+CEREG: 1\r\n")}, {error(), urc("+CEREG: 1")}},
        {"data_mode_raw_before_ok", "2.9.0", {D(), F("abc\r\nOK\r\ndef")}, {raw("abc"), ok(), raw("def")}, LinkMode::data},
        {"data_mode_tcpdata_before_switch", "2.9.0", {D(), F("\r\n#XTCPDATA: 2\r\nhi\r\nOK\r\nraw")},
         {tcp("hi"), ok(), raw("raw")}, LinkMode::data},
        // A payload given up (bytes lost inside it), then AT#XTCPSEND goes out while the junk is skipped: the
        // skip resumes at a CRLF that may lie inside the lost bytes, so the next byte not being CR proves no early
        // downlink (the race rule); only the OK enters data mode.
        {"data_mode_not_entered_on_bytes_after_a_lost_payload", "2.9.0",
         {F("\r\n#XTCPDATA: 3\r\nabcde"), D(), F("fg\r\nxyz\r\n\r\nOK\r\nraw")},
         {lost(Proxy::tcp, 3, 3), junk("abcdefg\r\nxyz\r\n"), lost(Proxy::tcp, 0, 5), ok(), raw("raw")},
         LinkMode::data},
        // While AT#XTCPSEND waits for its OK, a header that lost its leading CRLF ("#XTCPDATA: 3" right after the
        // last payload) is no early downlink: a loss, and the payload after it is read as a line.
        {"data_mode_race_rule_spares_a_header_that_lost_its_crlf", "2.5.0",
         {D(), F("\r\n#XTCPDATA: 2\r\nhi#XTCPDATA: 3\r\nabc\r\nOK\r\nraw")},
         {tcp("hi"), junk("#XTCPDATA: 3\r\n"), lost(Proxy::tcp, 0, 14), junk("abc\r\n"), lost(Proxy::tcp, 0, 5), ok(),
          raw("raw")},
         LinkMode::data},
        {"data_mode_race_rule_spares_a_header_that_lost_more", "2.5.0",
         {D(), F("\r\n#XTCPDATA: 2\r\nhiTCPDATA: 3\r\nabc\r\nOK\r\nraw")},
         {tcp("hi"), junk("TCPDATA: 3\r\n"), lost(Proxy::tcp, 0, 12), junk("abc\r\n"), lost(Proxy::tcp, 0, 5), ok(),
          raw("raw")},
         LinkMode::data},
        // Early downlink that only starts like a header's tail is still early downlink.
        {"data_mode_raw_that_starts_like_a_header_tail", "2.5.0", {D(), F("DATA: x\r\nOK\r\n")},
         {raw("DATA: x"), ok()}, LinkMode::data},
        {"data_mode_immediate_v20", "2.0.0", {D(), F("xyz\r\nOK\r\n")}, {raw("xyz\r\nOK\r\n")}, LinkMode::data},
        {"data_mode_raw_starting_like_ready", "2.9.0", {D(), F("Rea"), I(), F("\r\nOK\r\n")},
         {raw("Rea"), ok()}, LinkMode::data},
        // A reboot in data mode (issue 15): after a quiet line, a banner and nothing behind it is held, not
        // delivered, until something follows it (data after all) or the exit it prompts settles it.
        {"data_mode_banner_after_a_quiet_line_is_held", "2.0.0", {D(), F("payload"), I(), F("Ready\r\n")},
         {raw("payload"), possible_reboot}, LinkMode::data},
        {"data_mode_banner_behind_noise_after_a_quiet_line_is_held", "2.9.0",
         {D(), F("\r\nOK\r\nabc"), I(), F(std::string("\0\xff\r\nRea", 7)), F("dy\r\n")},
         {ok(), raw("abc"), possible_reboot}, LinkMode::data},
        {"data_mode_banner_followed_by_bytes_is_data", "2.0.0", {D(), F("abc"), I(), F("Ready\r\n"), I(), F("more")},
         {raw("abc"), possible_reboot, raw("Ready\r\nmore")}, LinkMode::data},
        {"data_mode_banner_followed_at_once_by_bytes_is_data", "2.0.0", {D(), F("abc"), I(), F("Ready\r\n"), F("more")},
         {raw("abcReady\r\nmore")}, LinkMode::data},
        {"data_mode_banner_then_a_confirmed_exit_is_data", "2.0.0",
         {D(), F("abc"), I(), F("Ready\r\n"), I(), X(), F("\r\nOK\r\n")},
         {raw("abc"), possible_reboot, raw("Ready\r\n"), exited(0)}},
        {"data_mode_banner_while_leaving_is_held", "2.9.0", {D(), F("\r\nOK\r\nabc"), I(), X(), F("Ready\r\n")},
         {ok(), raw("abc"), possible_reboot}, LinkMode::leaving_data_mode},
        {"data_mode_banner_without_a_quiet_line_is_data", "2.9.0", {D(), F("\r\nOK\r\nabc"), F("Ready\r\n")},
         {ok(), raw("abcReady\r\n")}, LinkMode::data},
        {"data_mode_banner_begun_before_another_quiet_is_data", "2.9.0",
         {D(), F("\r\nOK\r\nabc"), I(), F("Rea"), I(), F("dy\r\n")}, {ok(), raw("abcReady\r\n")}, LinkMode::data},

        // --- data mode exit ---
        {"exit_v29", "2.9.0", {D(), F("\r\nOK\r\nhello"), X(), F("\r\n#XDATAMODE: 0\r\n\r\n+CEREG: 1\r\n")},
         {ok(), raw("hello"), exited(0), urc("+CEREG: 1")}},
        {"exit_data_before_status", "2.9.0", {D(), F("\r\nOK\r\n"), X(), F("tail\r\n#XDATAMODE: 0\r\n")},
         {ok(), raw("tail"), exited(0)}},
        {"exit_status_not_recognised_without_request", "2.9.0", {D(), F("\r\nOK\r\n\r\n#XDATAMODE: 0\r\n")},
         {ok(), raw("\r\n#XDATAMODE: 0\r\n")}, LinkMode::data},
        {"exit_ok_v20", "2.0.0", {D(), F("xyz"), X(), F("\r\nOK\r\n")}, {raw("xyz"), exited(0)}},
        {"exit_error_v18", "1.8.0", {D(), X(), F("\r\nERROR\r\n")}, {exited(-5)}},
        {"exit_requested_before_entry_ok", "2.9.0", {D(), X(), F("\r\nOK\r\n\r\n#XDATAMODE: 0\r\n")}, {ok(), exited(0)}},
        {"exit_status_malformed_is_data", "2.9.0", {D(), F("\r\nOK\r\n"), X(), F("\r\n#XDATAMODE: 00\r\n")},
         {ok(), raw("\r\n#XDATAMODE: 00\r\n")}, LinkMode::leaving_data_mode},
        {"auto_exit_v24", "2.4.0",
         {D(), F("\r\nOK\r\ndata\r\n#XDATAMODE: -104\r\n\r\n#XTCPCLI: -104,\"disconnected\"\r\n")},
         {ok(), raw("data"), exited(-104), urc("#XTCPCLI: -104,\"disconnected\"")}},
        {"auto_exit_v20_status_zero", "2.0.0", {D(), F("data\r\n#XDATAMODE: 0\r\n")}, {raw("data"), exited(0)}},

        // --- peer loss in data mode ---
        {"loss_urc_v26", "2.6.0",
         {D(), F("\r\nOK\r\nab\r\n#XTCPCLI: -104,\"disconnected\"\r\ncd"), X(), F("\r\n#XDATAMODE: -104\r\n")},
         {ok(), raw("ab"), urc("#XTCPCLI: -104,\"disconnected\""), raw("cd"), exited(-104)}},
        {"loss_urc_not_on_v29", "2.9.0", {D(), F("\r\nOK\r\n\r\n#XTCPCLI: -104,\"disconnected\"\r\n")},
         {ok(), raw("\r\n#XTCPCLI: -104,\"disconnected\"\r\n")}, LinkMode::data},
        {"server_next_peer_in_null_mode_v25", "2.5.0",
         {D(), F("\r\nOK\r\nab\r\n#XTCPSVR: 0,\"disconnected\"\r\n\r\n#XTCPSVR: \"127.0.0.1\",\"connected\"\r\n"), X(),
          F("\r\n#XDATAMODE: 0\r\n")},
         {ok(), raw("ab"), urc("#XTCPSVR: 0,\"disconnected\""), urc("#XTCPSVR: \"127.0.0.1\",\"connected\""), exited(0)}},
        {"server_next_peer_after_terminator_v29", "2.9.0",
         {D(), F("\r\nOK\r\nab+++"), I(), F("\r\n#XTCPSVR: \"2001:db8::1\",\"connected\"\r\n"), X(),
          F("\r\n#XDATAMODE: -104\r\n")},
         // Bytes after a peer "+++" make it look like payload, so it is released as data; the connection it
         // would belong to is gone by then, and the driver has answered the terminator already.
         {ok(), raw("ab"), peer_terminator, raw("+++"), urc("#XTCPSVR: \"2001:db8::1\",\"connected\""), exited(-104)}},
        {"server_peer_line_malformed_is_data", "2.9.0", {D(), F("\r\nOK\r\n\r\n#XTCPSVR: \"x\",\"connected\"\r\n")},
         {ok(), raw("\r\n#XTCPSVR: \"x\",\"connected\"\r\n")}, LinkMode::data},
        {"terminator_v27", "2.7.0", {D(), F("\r\nOK\r\ndata+++"), I(), X(), F("\r\n#XDATAMODE: -104\r\n")},
         {ok(), raw("data"), peer_terminator, exited(-104)}},
        {"plus_inside_payload_is_data", "2.9.0", {D(), F("\r\nOK\r\na+++b++c+"), I()}, {ok(), raw("a+++b++c+")},
         LinkMode::data},
        {"plus_at_end_then_status_zero_is_data", "2.9.0", {D(), F("\r\nOK\r\nx+++"), I(), X(), F("\r\n#XDATAMODE: 0\r\n")},
         {ok(), raw("x"), peer_terminator, raw("+++"), exited(0)}},
        {"plus_false_alarm_released_with_next_bytes", "2.9.0", {D(), F("\r\nOK\r\n+++"), I(), F("more")},
         {ok(), peer_terminator, raw("+++more")}, LinkMode::data},
        {"four_plus_last_three_are_candidate", "2.9.0", {D(), F("\r\nOK\r\na++++"), I()},
         {ok(), raw("a+"), peer_terminator}, LinkMode::data},
        {"terminator_crossing_host_exit", "2.9.0", {D(), F("\r\nOK\r\n"), X(), F("+++\r\n#XDATAMODE: -104\r\n")},
         {ok(), exited(-104)}},
        {"plus_ignored_before_v27", "2.6.0", {D(), F("\r\nOK\r\n+++"), I()}, {ok(), raw("+++")}, LinkMode::data},
        {"udp_overflow_status", "2.9.0", {D(), F("\r\nOK\r\n"), X(), F("\r\n#XDATAMODE: -139\r\n")}, {ok(), exited(-139)}},

        // --- noise, resynchronisation, limits ---
        {"noise_then_resync", "2.9.0", {F(std::string("\0\xff\x13garbage\r\n\r\n+CEREG: 1\r\n", 25))},
         {junk(std::string("\0\xff\x13garbage\r\n", 12)), urc("+CEREG: 1")}},
        {"mid_line_start_is_fragment", "2.9.0", {C(""), F("EG: 1\r\n\r\nOK\r\n")}, {junk("EG: 1\r\n"), ok()}},
        {"over_long_line", "2.9.0", {C(""), F("\r\n" + long_line + "\r\n\r\nOK\r\n")}, {junk(long_line + "\r\n"), ok()}},
        {"line_at_limit_is_kept", "2.9.0", {F("\r\n#" + std::string(4095, 'y') + "\r\n")},
         {urc("#" + std::string(4095, 'y'))}},
        {"lone_cr_and_lf_are_text", "2.9.0", {F("\r\n+a\rb\nc\r\n")}, {urc("+a\rb\nc")}},
        // Header-first: a header lost after a message that is no payload; the payload read as a line is no
        // firmware message and is reported lost, never taken for a URC.
        {"header_first_payload_without_its_header", "2.9.0",
         {C(""), F("\r\nOK\r\nhello\r\n#XTCPDATA: 2\r\nhi")},
         {ok(), junk("hello\r\n"), lost(Proxy::tcp, 0, 7), tcp("hi")}},
        {"unknown_line_is_urc", "2.9.0", {F("\r\n#XMODEM: FAULT,0x1,0x2\r\n")}, {urc("#XMODEM: FAULT,0x1,0x2")}},

        // --- Serial Modem (serial-modem-and-generic-sockets.md 2.4-2.8): handle-tagged counted payloads ---
        // Automatic reception: header, n bytes, CRLF; the bytes may hold anything, a final result included.
        {"sm_automatic_reception", "sm1.0.1",
         {F(std::string("\r\n#XRECV: 3,0,9\r\nab\r\nOK\r\n\0\r\n\r\n#XRECV: 12,0,3\r\n+++\r\n", 50))},
         {sm_recv(3, std::string("ab\r\nOK\r\n\0", 9)), sm_recv(12, "+++")}},
        {"sm_automatic_reception_beside_a_command", "sm1.0.1",
         {C("#XSOCKET"), F("\r\n#XRECV: 5,0,3\r\nabc\r\n\r\n#XSOCKET: 6,1,6\r\n\r\nOK\r\n")},
         {sm_recv(5, "abc"), info("#XSOCKET: 6,1,6"), ok()}},
        {"sm_recvfrom_names_the_peer", "sm1.0.1", {F("\r\n#XRECVFROM: 4,0,4,\"192.0.2.1\",5683\r\nping\r\n")},
         {sm_recv_from(4, "ping", "192.0.2.1", 5683)}},
        {"sm_recv_answer_is_the_sockets_bytes", "sm1.0.1", {C(""), F("\r\n#XRECV: 3,0,2\r\nhi\r\nOK\r\n")},
         {sm_recv(3, "hi"), ok()}},
        {"sm_recv_end_of_stream_is_ok_alone", "sm1.0.1", {C(""), F("\r\nOK\r\n")}, {ok()}},
        {"sm_hex_mode_is_not_counted_in_bytes", "sm1.0.1", {F("\r\n#XRECV: 3,1,2\r\n")}, {urc("#XRECV: 3,1,2")}},
        {"sm_proxy_headers_are_plain_lines", "sm1.0.1", {F("\r\n#XTCPDATA: 3\r\n")}, {urc("#XTCPDATA: 3")}},
        {"sm_close_report_is_a_urc", "sm1.0.1", {F("\r\n#XAPOLL: 3,16\r\n")}, {urc("#XAPOLL: 3,16")}},
        {"slm_handle_shaped_recv_without_a_command_is_a_line", "2.9.0", {F("\r\n#XRECV: 3,0,2\r\nhi\r\n")},
         {urc("#XRECV: 3,0,2"), junk("hi\r\n"), lost(Proxy::tcp, 0, 4)}},
        // A counted send: OK enters, the firmware leaves by itself after the count ("+++" never sent).
        {"sm_counted_send_ends_by_itself", "sm1.0.1", {D(), F("\r\nOK\r\n"), F("\r\n#XDATAMODE: 0\r\n")},
         {ok(), exited(0)}},
        {"sm_counted_send_failure", "sm1.0.1", {D(), F("\r\nOK\r\n+++"), I(), X(), F("\r\n#XDATAMODE: -1\r\n")},
         {ok(), peer_terminator, exited(-1)}},
    };
    return table;
}

class FramerTable : public ::testing::TestWithParam<Case> {};

TEST_P(FramerTable, WholeInput) {
    const Case& c = GetParam();
    Framer framer(profile(c.version));
    EXPECT_EQ(run(framer.profile(), c.steps, whole, &framer), c.expected);
    EXPECT_EQ(framer.mode(), c.final_mode);
    EXPECT_EQ(framer.command_pending(), c.pending_after);
}

// Every single split point of every fed string.
TEST_P(FramerTable, SplitAtEveryByte) {
    const Case& c = GetParam();
    const auto p = profile(c.version);
    for (std::size_t step = 0; step < c.steps.size(); ++step) {
        if (c.steps[step].kind != Step::feed) continue;
        for (std::size_t at = 1; at < c.steps[step].arg.size(); ++at) {
            auto split = [&](std::size_t i, const std::string& bytes) -> std::vector<std::string> {
                if (i != step) return {bytes};
                return {bytes.substr(0, at), bytes.substr(at)};
            };
            ASSERT_EQ(run(p, c.steps, split), c.expected) << "step " << step << " split at " << at;
        }
    }
}

TEST_P(FramerTable, OneByteAtATime) {
    const Case& c = GetParam();
    auto split = [](std::size_t, const std::string& bytes) {
        std::vector<std::string> parts;
        for (char ch : bytes) parts.emplace_back(1, ch);
        return parts;
    };
    EXPECT_EQ(run(profile(c.version), c.steps, split), c.expected);
}

TEST_P(FramerTable, RandomChunks) {
    const Case& c = GetParam();
    for (unsigned seed = 0; seed < 50; ++seed) {
        std::mt19937 rng(seed);
        auto split = [&](std::size_t, const std::string& bytes) {
            std::vector<std::string> parts;
            for (std::size_t at = 0; at < bytes.size();) {
                const std::size_t n = std::uniform_int_distribution<std::size_t>(1, 9)(rng);
                parts.push_back(bytes.substr(at, n));
                at += n;
            }
            return parts;
        };
        ASSERT_EQ(run(profile(c.version), c.steps, split), c.expected) << "seed " << seed;
    }
}

INSTANTIATE_TEST_SUITE_P(Slm, FramerTable, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Case>& info) { return std::string(info.param.name); });

// --- tests that look at more than the event list ---

TEST(Framer, HeaderSplitAtEveryPositionAcrossTwoReadsAndIdle) {
    // idle() between the pieces must not release a partial header as something else.
    const std::string wire = "\r\n#XTCPDATA: 5\r\nhello\r\n#XUDPDATA: 2,\"::\",0\r\nhi";
    for (std::size_t at = 1; at < wire.size(); ++at) {
        Framer framer(profile("2.9.0"));
        Events out;
        framer.feed(wire.substr(0, at), out);
        framer.idle(out);
        framer.feed(wire.substr(at), out);
        framer.confirm_payload(out);  // the channel, once the burst has ended (a payload waits for its CRLF)
        EXPECT_EQ(merged(out), (Events{tcp("hello"), udp_from("hi", "::", 0)})) << "split at " << at;
    }
}

TEST(Framer, DataModeExitSplitAtEveryPosition) {
    const std::string wire = "payload\r\n#XDATAMODE: -104\r\n\r\n+CEREG: 1\r\n";
    for (std::size_t at = 1; at < wire.size(); ++at) {
        Framer framer(profile("2.9.0"));
        Events out;
        framer.data_mode_requested();
        framer.feed("\r\nOK\r\n", out);
        framer.data_mode_exit_requested();
        framer.feed(wire.substr(0, at), out);
        framer.feed(wire.substr(at), out);
        EXPECT_EQ(merged(out), (Events{ok(), raw("payload"), exited(-104), urc("+CEREG: 1")})) << at;
    }
}

TEST(Framer, GarbageWithoutCrlfStaysBounded) {
    Framer framer(profile("2.9.0"));
    Events out;
    const std::string chunk(1000, 'g');
    for (int i = 0; i < 100; ++i) {
        framer.feed(chunk, out);
        ASSERT_LE(framer.buffered_bytes(), Framer::max_line_length + 2);
    }
    framer.feed("\r\n\r\nOK\r\n", out);
    framer.command_sent("");
    framer.feed("\r\nOK\r\n", out);
    const Events events = merged(out);
    ASSERT_EQ(events.size(), 3u);
    EXPECT_EQ(std::get<Discarded>(events[0]).bytes, std::string(100000, 'g') + "\r\n");
    EXPECT_EQ(events[1], urc("OK"));
    EXPECT_EQ(events[2], ok());
    EXPECT_EQ(framer.discarded_bytes(), 100002u);
}

TEST(Framer, DataFirstLookbackStaysBounded) {
    Framer framer(profile("2.2.0"));
    Events out;
    for (int i = 0; i < 1000; ++i) {
        framer.feed("\r\n+CEREG: 1\r\n", out);
        ASSERT_LE(framer.buffered_bytes(), 2 * framer.profile().receive_chunk_max + Framer::max_line_length);
    }
    framer.idle(out);
    EXPECT_EQ(out.size(), 1000u);
    EXPECT_EQ(framer.buffered_bytes(), 0u);
}

TEST(Framer, ResetForgetsPartialPayloadAndMode) {
    Framer framer(profile("2.9.0"));
    Events out;
    framer.data_mode_requested();
    framer.feed("\r\nOK\r\n", out);
    EXPECT_EQ(framer.mode(), LinkMode::data);
    framer.reset();
    EXPECT_EQ(framer.mode(), LinkMode::command);
    framer.feed("\r\n#XTCPDATA: 10\r\nabc", out);
    framer.reset();
    EXPECT_EQ(framer.buffered_bytes(), 0u);
    out.clear();
    framer.feed("Ready\r\n", out);
    EXPECT_EQ(out, (Events{ready}));
}

// An administrator's command (slmctl at) takes bare text lines as its answer, never a URC: every URC starts with
// '+', '#' or '%'. The next command is back to prefixed lines only.
TEST(Framer, UnprefixedLinesAnswerOnlyACommandThatAsksForThem) {
    Framer framer(profile("2.9.0"));
    Events out;
    framer.command_sent("+CGMR", true);
    framer.feed("\r\nmfw_nrf9160_1.3.5\r\n\r\n+CEREG: 2\r\n\r\n%XSIM: 1\r\n\r\nOK\r\n", out);
    EXPECT_EQ(out, (Events{InfoLine{"mfw_nrf9160_1.3.5"}, Urc{"+CEREG: 2"}, Urc{"%XSIM: 1"},
                           FinalResult{FinalKind::ok, 0}}));
    out.clear();
    framer.command_sent("+CGSN");
    framer.feed("\r\n352656100000000\r\n\r\nOK\r\n", out);
    // Not asked for: no firmware message, so bytes no header claimed (reported lost), never an answer.
    EXPECT_EQ(merged(out), (Events{Discarded{"352656100000000\r\n"}, PayloadLost{Proxy::tcp, 0, 17},
                                   FinalResult{FinalKind::ok, 0}}));
}

TEST(Framer, ModeTransitionsAreVisibleImmediately) {
    Framer framer(profile("2.9.0"));
    Events out;
    framer.data_mode_requested();
    EXPECT_EQ(framer.mode(), LinkMode::entering_data_mode);
    EXPECT_TRUE(framer.command_pending());
    framer.feed("\r\nOK\r\n", out);
    EXPECT_EQ(framer.mode(), LinkMode::data);
    EXPECT_FALSE(framer.command_pending());
    framer.data_mode_exit_requested();
    EXPECT_EQ(framer.mode(), LinkMode::leaving_data_mode);
    framer.feed("\r\n#XDATAMODE: 0\r\n", out);
    EXPECT_EQ(framer.mode(), LinkMode::command);
}

TEST(Framer, ProfileForV2_0EntersDataModeWithoutOk) {
    Framer framer(profile("2.0.0"));
    framer.data_mode_requested();
    EXPECT_EQ(framer.mode(), LinkMode::data);
    EXPECT_FALSE(framer.command_pending());
}

// The channel's stall timer gives a payload up: nothing of it is delivered, and a reboot banner among its bytes
// is read as the reboot it is, with what followed it (issue 15).
TEST(Framer, PayloadStalledWithABannerInsideIsARebootAndNoData) {
    Framer framer(profile("2.9.0"));
    Events out;
    framer.command_sent("#XGETADDRINFO");
    framer.feed("\r\n#XTCPDATA: 2048\r\n" + std::string(1000, 'p') + "\r\nReady\r\n", out);
    EXPECT_TRUE(out.empty());
    EXPECT_EQ(framer.payload_outstanding(), 2048u - 1009u);
    framer.payload_stalled(out);
    EXPECT_EQ(merged(out), (Events{lost(Proxy::tcp, 2048, 1009), junk(std::string(1000, 'p') + "\r\n"), ready}));
    EXPECT_FALSE(framer.command_pending());
    EXPECT_EQ(framer.payload_outstanding(), 0u);
    out.clear();
    framer.command_sent("+CFUN");
    framer.feed("\r\n+CFUN: 1\r\n\r\nOK\r\n", out);
    EXPECT_EQ(merged(out), (Events{info("+CFUN: 1"), ok()}));
}

// The reboot banner ("Ready\r\n") that happens to complete the payload's count (7 bytes owed), or to end
// past it: counted as payload it would be delivered as data. Coming after a silence in the middle of the
// payload, it is read as the reboot it is.
TEST(Framer, ABannerAfterASilenceInsideAPayloadIsARebootEvenWhenItCompletesTheCount) {
    for (const std::size_t owed : {7u, 5u, 3u, 9u, 20u}) {
        Framer framer(profile("2.9.0"));
        Events out;
        framer.feed("\r\n#XTCPDATA: " + std::to_string(100 + owed) + "\r\n" + std::string(100, 'p'), out);
        framer.resume_after_silence();  // the channel: the line was silent, now bytes come again
        framer.feed(owed == 9 ? "\r\nReady\r\n" : "Ready\r\n", out);  // also behind power-on noise
        framer.confirm_payload(out);
        EXPECT_EQ(merged(out), (Events{lost(Proxy::tcp, 100 + owed, 100), junk(std::string(100, 'p')), ready}))
            << owed << " bytes owed";
    }
}

TEST(Framer, OrdinaryBytesAfterASilenceInsideAPayloadAreStillPayload) {
    Framer framer(profile("2.9.0"));
    Events out;
    framer.feed("\r\n#XTCPDATA: 10\r\nabcde", out);
    framer.resume_after_silence();
    framer.feed("\r\nxyz", out);
    framer.confirm_payload(out);
    EXPECT_EQ(merged(out), (Events{tcp("abcde\r\nxyz")}));
}

TEST(Framer, PayloadStalledWithoutABannerDiscardsItAndFramesOn) {
    Framer framer(profile("2.9.0"));
    Events out;
    framer.feed("\r\n#XTCPDATA: 100\r\n" + std::string(60, 'q'), out);
    framer.payload_stalled(out);
    EXPECT_EQ(merged(out), (Events{lost(Proxy::tcp, 100, 60), junk(std::string(60, 'q'))}));
    out.clear();
    framer.feed("\r\n#XTCPDATA: 3\r\nabc\r\n+CEREG: 1\r\n", out);
    EXPECT_EQ(merged(out), (Events{tcp("abc"), urc("+CEREG: 1")}));
}

}  // namespace
}  // namespace slmd::at
