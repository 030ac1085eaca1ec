// Owns: pure parsers of the modem's information lines, 3GPP (+CEREG, +CGPADDR, +CFUN) and SLM (#XSLMVER, the
// proxies' status, read and test forms, send counts, #XGETADDRINFO). Each takes one line without CRLF and returns
// nullopt for anything malformed; table-tested with real lines in tests/unit/answer_parsers_test.cpp.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace slmd::modem {

struct SlmVersion {
    std::string ncs_version;    // e.g. "2.9.0"
    std::string modem_library;  // libmodem version, e.g. "2.9.0"
    std::string customer;       // optional third field
};
// "#XSLMVER: \"2.9.0\",\"2.9.0\"[,\"custom\"]"
std::optional<SlmVersion> parse_slmver(std::string_view line);
// "#XSMVER: \"v1.0.1\",\"3.2.4\"[,\"custom\"]": the Serial Modem release goes in ncs_version (it is what
// decides the behaviour), the NCS it was built on in modem_library.
std::optional<SlmVersion> parse_smver(std::string_view line);

// The number a text starts with ("3,1,6" → 3), or nothing.
std::optional<int> parse_leading_int(std::string_view text);
// "#XSOCKET: <h>,<type>,<proto>" among the info lines of an AT#XSOCKET=… answer (SLM's generic sockets and the
// Serial Modem alike) → the new socket's handle.
std::optional<int> parse_opened_socket(const std::vector<std::string>& info);
// A Serial Modem's "#XACCEPT: <h>,<cid>,\"<address>\",<port>" (v2.0 previews) → the accepted socket's handle and
// its peer's numeric address.
struct AcceptedPeer {
    int handle = -1;
    std::string address;
    int port = 0;
};
std::optional<AcceptedPeer> parse_sm_accept(std::string_view line);

// 3GPP TS 27.007 registration status.
enum class Registration {
    not_registered = 0,
    home = 1,
    searching = 2,
    denied = 3,
    unknown = 4,
    roaming = 5,
    emergency_only = 8,
    uicc_failure = 90,
};
bool is_registered(Registration status);
const char* to_string(Registration status);

// URC "+CEREG: <stat>[,...]".
std::optional<Registration> parse_cereg_urc(std::string_view line);
// Read answer "+CEREG: <n>,<stat>[,...]".
std::optional<Registration> parse_cereg_read(std::string_view line);

struct PdpAddresses {
    int cid = 0;
    std::string ipv4;
    std::string ipv6;
};
// "+CGPADDR: <cid>[,\"<addr>\"[,\"<addr>\"]]"; each address lands in ipv4 or ipv6 by its form.
std::optional<PdpAddresses> parse_cgpaddr(std::string_view line);

// "+CFUN: <fun>"
std::optional<int> parse_cfun(std::string_view line);

// "#XTCPCLI: <n>,\"<word>\"" — handle or error with "connected", "not connected" or "disconnected".
struct ProxyStatus {
    int value = 0;
    std::string word;
    bool operator==(const ProxyStatus&) const = default;
};
std::optional<ProxyStatus> parse_tcpcli(std::string_view line);

// "<prefix>: <n>,\"<word>\"" for any proxy status line: #XTCPSVR started/not started/disconnected/stopped,
// #XUDPCLI connected/not connected/disconnected, #XUDPSVR started/stopped. `prefix` without the colon. A
// "#XUDPSVR" prefix also accepts the v2.8+ failure spelling "#UDPSVR:" (reference §2.3).
std::optional<ProxyStatus> parse_proxy_status(std::string_view line, std::string_view prefix);

// "#XTCPSVR: \"<ip>\",\"connected\"": a peer was accepted; returns its address text.
std::optional<std::string> parse_tcpsvr_peer(std::string_view line);

// Read forms: "#XTCPCLI: <sock>,<family>", "#XTCPSVR: <listen>,<peer>,<family>", "#XUDPCLI: <sock>,<family>",
// "#XUDPSVR: <sock>,<family>". Returns the integers when there are exactly `count` of them (negative allowed).
std::optional<std::vector<int>> parse_proxy_read(std::string_view line, std::string_view prefix, std::size_t count);

// "#XUDPSEND: <n>" / "#XTCPSEND: <n>": bytes the firmware sent.
std::optional<int> parse_send_count(std::string_view line, std::string_view prefix);

// Test forms, e.g. "#XTCPCLI: (0,1,2),<url>,<port>,<sec_tag>,<peer_verify>,<hostname_verify>" or
// "#XTCPHANGUP: <handle>": the parameter names in order, the op list "(0,1,2)" kept as one item. The docs
// misprint the hang-up answer as "#TCPHANGUP"; `prefix` "#XTCPHANGUP" accepts that spelling too.
std::optional<std::vector<std::string>> parse_test_form(std::string_view line, std::string_view prefix);

// "#XGETADDRINFO: \"<a> <b> …\"" → the distinct addresses in order (v1.9–v2.9 repeat the first one for every
// entry, a firmware bug). A failure text ("EAI_AGAIN", "not found") comes back as the single item.
std::optional<std::vector<std::string>> parse_getaddrinfo(std::string_view line);

// Splits the parameters after "<prefix>: " at commas outside quotes; quoted items come back without quotes.
// nullopt if the line does not start with the prefix or a quote is unbalanced.
std::optional<std::vector<std::string>> split_parameters(std::string_view line, std::string_view prefix);

}  // namespace slmd::modem
