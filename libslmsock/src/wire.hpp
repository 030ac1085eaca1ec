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
inline constexpr std::size_t credential_size = 24;       // flow id (8) + token (16), first bytes on a data connection
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

// Requests (client → slmd) ---------------------------------------------------------------------------------

// Open a connection through the modem. With `nonblocking`, slmd answers at once (status -EINPROGRESS) and
// the outcome is read later with FlowStatusRequest; otherwise it answers when the modem has.
struct ConnectRequest {
    Transport transport = Transport::tcp;
    Address destination;
    std::uint16_t port = 0;
    bool nonblocking = false;
    std::uint32_t timeout_ms = 0;  // 0 = slmd's default
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

// Any request that could not be served at all (malformed, unknown type, not authorised).
struct ErrorReply {
    std::int32_t error = 0;  // -errno
    std::string message;
    bool operator==(const ErrorReply&) const = default;
};

using Message = std::variant<ConnectRequest, FlowStatusRequest, ShutdownRequest, ResolveRequest, StatusRequest,
                             ConnectReply, FlowStatusReply, ShutdownReply, ResolveReply, StatusReply, ErrorReply>;

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
