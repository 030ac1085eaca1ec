// Owns: the one definition of slmd's Unix-domain API (version 1): message types, their fields, and the pure
// codec between them and bytes. Used by slmd (daemon/api/) and by libslmsock (and through it the preload
// shim); nothing else may know the byte layout. Protocol description: docs/api.md.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <utility>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace slmsock::wire {

inline constexpr std::uint8_t protocol_magic = 'S';
inline constexpr std::uint8_t protocol_version = 1;
// One SOCK_SEQPACKET message; anything longer is refused by both sides.
inline constexpr std::size_t max_message_size = 4096;
inline constexpr std::size_t max_name_length = 253;     // a DNS name
inline constexpr std::size_t max_addresses = 16;         // per RESOLVE reply
inline constexpr std::size_t max_text_length = 256;      // any text field
inline constexpr std::size_t credential_size = 24;
inline constexpr std::size_t max_proxies = 8;           // per PROXIES reply       // flow id (8) + token (16), first bytes on a data connection
// An administrator's AT command line (without CRLF). SLM's AT command buffer is CONFIG_SLM_AT_MAX_CMD_LEN
// = 4096 bytes, but no command an operator types needs more than a line; 256 keeps an AtRequest and its reply
// far inside one message and bounds what slmd queues on the UART for a human.
inline constexpr std::size_t max_at_command_length = 256;
// Information lines of one AtReply, each up to max_text_length, and all of them within one message.
inline constexpr std::size_t max_at_lines = 12;
inline constexpr std::uint32_t max_at_timeout_ms = 300000;  // 5 min: AT+COPS=? takes minutes on a real network
// slmd's own connect timeout (ConnectRequest.timeout_ms == 0) must not exceed this: a blocking client waits
// (timeout_ms, or this when 0) + 5 s for the reply before giving up with ETIMEDOUT.
inline constexpr std::uint32_t max_default_connect_timeout_ms = 120000;

enum class Family : std::uint8_t { unspecified = 0, ipv4 = 4, ipv6 = 6 };
enum class Transport : std::uint8_t { tcp = 1, udp = 2 };

struct Address {
    Family family = Family::ipv4;
    std::array<std::uint8_t, 16> bytes{};  // IPv4 uses the first 4
    bool operator==(const Address&) const = default;
};

using Token = std::array<std::uint8_t, 16>;

// TLS or DTLS run by the modem itself (docs/tls.md): the UART then carries plaintext. Fields the firmware takes
// as command parameters; tls_default leaves the firmware's own default, which differs between releases.
inline constexpr std::uint8_t tls_default = 0xff;
inline constexpr std::int32_t max_sec_tag = 2147483647;
struct TlsParameters {
    std::int32_t sec_tag = 0;                     // the modem's credential set, 0 … max_sec_tag
    std::uint8_t peer_verify = tls_default;       // 0 none, 1 optional, 2 required
    std::uint8_t hostname_verify = tls_default;   // 0 off, 1 on (v2.6+ firmware)
    std::uint8_t dtls_cid = tls_default;          // DTLS connection id: 0 disabled, 1 supported, 2 enabled (v2.5+)
    std::string hostname;                         // what the modem connects to and verifies ("" = the address)
    bool operator==(const TlsParameters&) const = default;
};

// Requests (client → slmd) ---------------------------------------------------------------------------------

// Open a connection through the modem. With `nonblocking`, slmd answers at once (status -EINPROGRESS) and
// the outcome is read later with FlowStatusRequest; otherwise it answers when the modem has.
struct ConnectRequest {
    Transport transport = Transport::tcp;
    Address destination;
    std::uint16_t port = 0;
    bool nonblocking = false;
    std::uint32_t timeout_ms = 0;  // 0 = slmd's default
    std::optional<TlsParameters> tls;  // TLS by the modem; none = plain TCP (or slmd's tls mapping decides)
    // The inode of the app's socket (fstat): the data connection presenting this flow's credential must come
    // from that very socket. 0 = not sent (then only its owner's uid is checked).
    std::uint64_t socket_inode = 0;
    bool operator==(const ConnectRequest&) const = default;
};

// Names a flow by id, or (flow_id == 0) by the local port of its data connection on loopback: that lets the
// shim answer getpeername()/SO_ERROR for any fd, including ones it inherited through exec or dup.
struct FlowStatusRequest {
    std::uint64_t flow_id = 0;
    std::uint16_t data_local_port = 0;
    bool operator==(const FlowStatusRequest&) const = default;
};

enum class ShutdownHow : std::uint8_t { read = 0, write = 1, both = 2 };
struct ShutdownRequest {
    std::uint64_t flow_id = 0;
    std::uint16_t data_local_port = 0;  // as in FlowStatusRequest
    ShutdownHow how = ShutdownHow::both;
    bool operator==(const ShutdownRequest&) const = default;
};

struct ResolveRequest {
    Family family = Family::unspecified;
    std::string name;  // ≤ max_name_length
    bool operator==(const ResolveRequest&) const = default;
};

struct StatusRequest {
    bool operator==(const StatusRequest&) const = default;
};

// Servers and UDP (docs/api.md, "Servers and UDP"). The app's real socket is bound on loopback (127.0.0.1
// for Family::ipv4, ::1 for ipv6) at `app_port`; slmd stands in for the modem side of it.

// Serve `modem_port` through the modem for the app socket bound on loopback at `app_port`. UDP: the modem's
// UDP server starts now (the reply waits for the modem). TCP: the port is reserved; the modem's TCP server
// starts at ListenRequest. Ends when the app's socket is gone.
struct BindRequest {
    Transport transport = Transport::tcp;
    Family family = Family::ipv4;
    std::uint16_t modem_port = 0;
    std::uint16_t app_port = 0;
    bool operator==(const BindRequest&) const = default;
};

// listen() on a TCP socket earlier named in a BindRequest: start the modem's TCP server. Each peer the modem
// accepts arrives as an ordinary connection to the app's listening socket from a loopback port of slmd's.
struct ListenRequest {
    Family family = Family::ipv4;
    std::uint16_t app_port = 0;
    bool operator==(const ListenRequest&) const = default;
};

// The loopback stand-in for one remote UDP peer of the app's UDP socket at `app_port`: datagrams the app
// sends to 127.0.0.1:stand_in_port (or ::1) go to `peer` through the modem, and datagrams from `peer` come
// from there. For a socket without a BindRequest this opens (or re-targets) the modem's UDP client.
struct UdpAssociateRequest {
    Family family = Family::ipv4;  // of the app's socket
    std::uint16_t app_port = 0;
    Address peer;
    std::uint16_t peer_port = 0;
    std::optional<TlsParameters> tls;  // DTLS by the modem (a UDP client only)
    bool operator==(const UdpAssociateRequest&) const = default;
};

// What an app socket's loopback addresses stand for: its modem-side local address (for getsockname) and, when
// `loopback_peer_port` != 0, the real peer behind that loopback port of slmd's (for accept, recvfrom,
// getpeername).
struct LookupRequest {
    Transport transport = Transport::tcp;
    Family family = Family::ipv4;
    std::uint16_t app_port = 0;
    std::uint16_t loopback_peer_port = 0;
    bool operator==(const LookupRequest&) const = default;
};

// The modem's proxies as slmd sees them (for slmctl and tests).
struct ProxiesRequest {
    bool operator==(const ProxiesRequest&) const = default;
};

// Counters and latency (slmctl stats). Open to every client, like StatusRequest.
struct StatsRequest {
    bool operator==(const StatsRequest&) const = default;
};

// One AT command from an administrator, sent through slmd's own AT channel (root, slmd's user or the
// admin group). slmd refuses commands that would break its own state (EPERM) unless `force` is set.
struct AtRequest {
    std::string command;         // "AT…", printable ASCII, no CR/LF, ≤ max_at_command_length
    bool force = false;
    std::uint32_t timeout_ms = 0;  // 0 = slmd's default (10 s); ≤ max_at_timeout_ms
    bool operator==(const AtRequest&) const = default;
};

// Graceful modem reset (administrators only): proxies closed, AT+CFUN=0, AT#XRESET, normal bring-up.
struct ResetRequest {
    bool operator==(const ResetRequest&) const = default;
};

// The modem's credential store (slmctl cred; administrators only). Writes and deletes go through AT%CMNG with
// the radio off (AT+CFUN=4) for the moment they take, or #XCMNG on firmware built with native TLS; slmd refuses
// them with EBUSY while connections are open unless `force`. Content is never logged.
enum class CredentialOp : std::uint8_t { write = 0, list = 1, remove = 3 };
enum class CredentialType : std::uint8_t { ca = 0, certificate = 1, private_key = 2, psk = 3, identity = 4 };
inline constexpr std::uint8_t any_credential_type = 0xff;  // list: every type
inline constexpr std::int32_t any_sec_tag = -1;             // list: every sec_tag
// Content of one credential: the modem's AT line is 4096 bytes, and the command around the content takes < 40.
inline constexpr std::size_t max_credential_length = 4000;
inline constexpr std::size_t max_credential_entries = 48;  // per CredentialReply
struct CredentialRequest {
    CredentialOp op = CredentialOp::list;
    std::int32_t sec_tag = any_sec_tag;        // write/remove: 0 … max_sec_tag
    std::uint8_t type = any_credential_type;   // a CredentialType; any_credential_type only for list
    std::string content;                       // write only: PEM text, or hex for a PSK
    bool force = false;                        // write/remove while connections are open (they are reset)
    bool operator==(const CredentialRequest&) const = default;
};

// Replies (slmd → client) -----------------------------------------------------------------------------------

enum class Route : std::uint8_t {
    modem = 0,   // connect the socket to the data endpoint and present the credential
    bypass = 1,  // a local route reaches the destination: use the kernel's own connect()
};

struct ConnectReply {
    std::int32_t status = 0;  // 0 connected, -EINPROGRESS (nonblocking), or -errno
    Route route = Route::modem;
    std::uint64_t flow_id = 0;
    Token token{};
    std::uint16_t data_port = 0;  // slmd's loopback data endpoint, on 127.0.0.1 and ::1
    bool operator==(const ConnectReply&) const = default;
};

enum class FlowState : std::uint8_t { connecting = 1, connected = 2, closed = 3, failed = 4 };
struct FlowStatusReply {
    std::uint64_t flow_id = 0;
    FlowState state = FlowState::connecting;
    std::int32_t error = 0;  // -errno when failed (or reset), else 0
    Address peer;            // the real destination
    std::uint16_t peer_port = 0;
    bool operator==(const FlowStatusReply&) const = default;
};

struct ShutdownReply {
    std::int32_t status = 0;
    bool operator==(const ShutdownReply&) const = default;
};

struct ResolveReply {
    std::int32_t status = 0;  // 0, or a negative EAI_* value (netdb.h)
    std::vector<Address> addresses;  // ≤ max_addresses
    bool operator==(const ResolveReply&) const = default;
};

struct StatusReply {
    std::string modem_state;   // "serving", "bringing up", ...
    std::string registration;  // "registered (home)", ...
    std::string release;       // SLM release, e.g. "2.9.0"
    std::string ipv4;
    std::string ipv6;
    std::uint32_t active_flows = 0;
    std::uint32_t queued_flows = 0;
    std::uint16_t data_port = 0;  // the loopback data endpoint
    bool operator==(const StatusReply&) const = default;
};

struct BindReply {
    std::int32_t status = 0;  // 0, or -EBUSY (proxy in use), -EADDRINUSE (port served already), -ENETDOWN, ...
    bool operator==(const BindReply&) const = default;
};

struct ListenReply {
    std::int32_t status = 0;
    bool operator==(const ListenReply&) const = default;
};

struct UdpAssociateReply {
    std::int32_t status = 0;  // 0, or -errno (-EBUSY: the UDP proxy serves another socket)
    Route route = Route::modem;
    std::uint16_t stand_in_port = 0;  // with Route::modem and status 0
    bool operator==(const UdpAssociateReply&) const = default;
};

struct LookupReply {
    std::int32_t status = 0;  // 0, or -ENOENT when slmd knows no such socket
    Address local;             // the modem-side address the app socket stands for (modem address or unspecified)
    std::uint16_t local_port = 0;
    Address peer;              // unspecified when not asked for or unknown
    std::uint16_t peer_port = 0;
    bool operator==(const LookupReply&) const = default;
};

enum class ProxyRole : std::uint8_t { none = 0, client = 1, server = 2 };
struct ProxyInfo {
    Transport transport = Transport::tcp;
    ProxyRole role = ProxyRole::none;
    std::uint16_t port = 0;        // the destination port (client) or the served port (server)
    std::string peer;              // destination or current peer, as text ("" when none)
    std::uint32_t owner_pid = 0;   // the requesting process, 0 when unknown
    std::uint64_t bytes_up = 0;
    std::uint64_t bytes_down = 0;
    bool operator==(const ProxyInfo&) const = default;
};
struct ProxiesReply {
    std::vector<ProxyInfo> proxies;  // ≤ max_proxies; one per proxy the firmware has (TCP, UDP)
    std::uint32_t waiting = 0;       // requests queued for a busy proxy
    std::string modem_view;          // the firmware's own answer to its read commands, one line per proxy
    bool operator==(const ProxiesReply&) const = default;
};

// Latency of one direction from slmd's own timestamps, in microseconds (0 without samples).
struct LatencySummary {
    std::uint32_t p50_us = 0;
    std::uint32_t p99_us = 0;
    std::uint64_t samples = 0;
    bool operator==(const LatencySummary&) const = default;
};

// Counters since slmd started. "up" is app → modem, "down" modem → app. docs/api.md names each field.
struct StatsReply {
    std::uint64_t uptime_s = 0;
    std::uint64_t tcp_bytes_up = 0;
    std::uint64_t tcp_bytes_down = 0;
    std::uint64_t udp_bytes_up = 0;
    std::uint64_t udp_bytes_down = 0;
    std::uint64_t udp_datagrams_up = 0;
    std::uint64_t udp_datagrams_down = 0;
    std::uint64_t flows_opened = 0;
    std::uint64_t flows_failed = 0;
    std::uint64_t tcp_dropped_app_gone = 0;   // modem bytes for an app that had closed
    std::uint64_t tcp_dropped_peer_gone = 0;  // app bytes after the peer closed
    std::uint64_t tcp_refused_busy = 0;
    std::uint64_t udp_dropped_not_last_peer = 0;
    std::uint64_t udp_dropped_too_big = 0;
    std::uint64_t udp_dropped_busy = 0;
    std::uint64_t udp_dropped_no_proxy = 0;
    std::uint64_t udp_dropped_queue_full = 0;
    std::uint64_t udp_dropped_send_failed = 0;
    std::uint64_t udp_dropped_app_gone = 0;
    std::uint64_t udp_suspensions = 0;
    std::uint64_t udp_refused_tcp_busy = 0;
    std::uint64_t data_mode_sessions = 0;
    std::uint64_t at_commands = 0;
    std::uint64_t at_errors = 0;   // ERROR / +CME ERROR / +CMS ERROR finals
    std::uint64_t at_timeouts = 0;
    std::uint64_t modem_resets = 0;          // firmware reboots seen while up ("Ready"), admin resets included
    std::uint64_t admin_resets = 0;
    std::uint64_t registration_losses = 0;
    std::uint64_t recoveries = 0;
    std::uint64_t recovery_backoffs = 0;
    LatencySummary downlink;
    LatencySummary uplink;
    bool operator==(const StatsReply&) const = default;
};

enum class AtOutcome : std::uint8_t { ok = 0, error = 1, cme_error = 2, cms_error = 3 };
// status 0: the modem answered (outcome, code, lines). Otherwise -errno and no answer: -EPERM (refused, see
// force), -EINVAL (not a valid command), -ENETDOWN (modem not up), -ETIMEDOUT, -ECONNRESET (modem reset).
struct AtReply {
    std::int32_t status = 0;
    AtOutcome outcome = AtOutcome::ok;
    std::int32_t code = 0;            // the n of "+CME ERROR: n" / "+CMS ERROR: n"
    std::vector<std::string> lines;   // information lines, ≤ max_at_lines of ≤ max_text_length
    bool operator==(const AtReply&) const = default;
};

// status 0 once the reset started; -EAGAIN (recovery budget spent), -ENETDOWN (modem not up), -EBUSY (a
// reset or a stop is already under way).
struct ResetReply {
    std::int32_t status = 0;
    bool operator==(const ResetReply&) const = default;
};

struct CredentialEntry {
    std::int32_t sec_tag = 0;
    CredentialType type = CredentialType::ca;
    std::string sha256;  // as the modem reports it (hex), "" when it does not
    bool operator==(const CredentialEntry&) const = default;
};
// status 0, or -EACCES, -EBUSY (connections open; see force), -EINVAL (bad sec_tag/type/content), -EMSGSIZE
// (content over max_credential_length), -ENOENT (remove: no such credential), -EIO (the modem refused;
// `message` holds its answer), -ENETDOWN.
struct CredentialReply {
    std::int32_t status = 0;
    std::vector<CredentialEntry> entries;  // list: ≤ max_credential_entries
    std::string message;                   // a one-line reason when status != 0
    bool operator==(const CredentialReply&) const = default;
};

// Any request that could not be served at all (malformed, unknown type, not authorised).
struct ErrorReply {
    std::int32_t error = 0;  // -errno
    std::string message;
    bool operator==(const ErrorReply&) const = default;
};

using Message =
    std::variant<ConnectRequest, FlowStatusRequest, ShutdownRequest, ResolveRequest, StatusRequest, BindRequest,
                 ListenRequest, UdpAssociateRequest, LookupRequest, ProxiesRequest, StatsRequest, AtRequest,
                 ResetRequest, CredentialRequest, ConnectReply, FlowStatusReply, ShutdownReply, ResolveReply,
                 StatusReply, BindReply, ListenReply, UdpAssociateReply, LookupReply, ProxiesReply, StatsReply,
                 AtReply, ResetReply, CredentialReply, ErrorReply>;

struct Envelope {
    std::uint32_t request_id = 0;  // echoed in the reply
    Message message;
    bool operator==(const Envelope&) const = default;
};

enum class DecodeError {
    too_short,
    too_long,
    bad_magic,
    unsupported_version,
    unknown_type,
    malformed,  // a field out of range, a length past the end, trailing bytes
};
const char* to_string(DecodeError error);

// Encodes one message. Never fails for values within the documented limits; text and lists beyond them are
// truncated to the limit (the encoder never produces a message the decoder would refuse).
std::vector<std::uint8_t> encode(const Envelope& envelope);
// Decodes one whole SEQPACKET message. Pure: any byte string gives an Envelope or a DecodeError.
std::variant<Envelope, DecodeError> decode(std::span<const std::uint8_t> bytes);
// The request_id of a message decode() refused, when its fixed header is there to read (≥ 8 bytes, right
// magic; any version): slmd echoes it in the ErrorReply (-EPROTONOSUPPORT, -EBADMSG, ...).
std::optional<std::uint32_t> peek_request_id(std::span<const std::uint8_t> bytes);

// The credential a data connection presents first: flow id (little-endian) then token.
std::array<std::uint8_t, credential_size> encode_credential(std::uint64_t flow_id, const Token& token);
// Exactly credential_size bytes, else nullopt.
std::optional<std::pair<std::uint64_t, Token>> decode_credential(std::span<const std::uint8_t> bytes);

}  // namespace slmsock::wire
