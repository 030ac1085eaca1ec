// Owns: the byte layout of slmd's Unix-domain API, version 1 (encode/decode of every message in wire.hpp and
// the data-connection credential). docs/api.md describes the same bytes for humans; keep the two in step.
//
// The encoding is canonical: every value has exactly one byte string, and decode refuses everything else
// (booleans other than 0/1, reserved flag bits, non-zero padding in addresses). That is what lets the fuzzer
// check encode(decode(x)) == x, and it means two implementations can never disagree on what a message says.
#include "wire.hpp"

#include <algorithm>
#include <cstring>
#include <type_traits>

namespace slmsock::wire {
namespace {

// Type numbers: requests have the high bit clear, replies set; a reply is its request's number | 0x8000.
// ErrorReply answers any request. Adding a type does not change the protocol version (see docs/api.md).
enum : std::uint16_t {
    type_connect_request = 0x0001,
    type_flow_status_request = 0x0002,
    type_shutdown_request = 0x0003,
    type_resolve_request = 0x0004,
    type_status_request = 0x0005,
    type_bind_request = 0x0006,
    type_listen_request = 0x0007,
    type_udp_associate_request = 0x0008,
    type_lookup_request = 0x0009,
    type_proxies_request = 0x000a,
    type_stats_request = 0x000b,
    type_at_request = 0x000c,
    type_reset_request = 0x000d,
    type_credential_request = 0x000e,
    type_connect_reply = 0x8001,
    type_flow_status_reply = 0x8002,
    type_shutdown_reply = 0x8003,
    type_resolve_reply = 0x8004,
    type_status_reply = 0x8005,
    type_bind_reply = 0x8006,
    type_listen_reply = 0x8007,
    type_udp_associate_reply = 0x8008,
    type_lookup_reply = 0x8009,
    type_proxies_reply = 0x800a,
    type_stats_reply = 0x800b,
    type_at_reply = 0x800c,
    type_reset_reply = 0x800d,
    type_credential_reply = 0x800e,
    type_error_reply = 0x80ff,
};

// StatsReply's counters in wire order (docs/api.md lists the same order); the latency summaries follow them.
constexpr std::uint64_t StatsReply::* stats_counters[] = {
    &StatsReply::uptime_s,
    &StatsReply::tcp_bytes_up,
    &StatsReply::tcp_bytes_down,
    &StatsReply::udp_bytes_up,
    &StatsReply::udp_bytes_down,
    &StatsReply::udp_datagrams_up,
    &StatsReply::udp_datagrams_down,
    &StatsReply::flows_opened,
    &StatsReply::flows_failed,
    &StatsReply::tcp_dropped_app_gone,
    &StatsReply::tcp_dropped_peer_gone,
    &StatsReply::tcp_refused_busy,
    &StatsReply::udp_dropped_not_last_peer,
    &StatsReply::udp_dropped_too_big,
    &StatsReply::udp_dropped_busy,
    &StatsReply::udp_dropped_no_proxy,
    &StatsReply::udp_dropped_queue_full,
    &StatsReply::udp_dropped_send_failed,
    &StatsReply::udp_dropped_app_gone,
    &StatsReply::udp_suspensions,
    &StatsReply::udp_refused_tcp_busy,
    &StatsReply::data_mode_sessions,
    &StatsReply::at_commands,
    &StatsReply::at_errors,
    &StatsReply::at_timeouts,
    &StatsReply::modem_resets,
    &StatsReply::admin_resets,
    &StatsReply::registration_losses,
    &StatsReply::recoveries,
    &StatsReply::recovery_backoffs,
};

constexpr std::size_t header_size = 8;   // magic, version, u16 type, u32 request_id
constexpr std::size_t address_size = 17;  // u8 family + 16 bytes

// Writer ------------------------------------------------------------------------------------------------

class Writer {
public:
    void u8(std::uint8_t v) { out_.push_back(v); }
    void u16(std::uint16_t v) { put_le(v, 2); }
    void u32(std::uint32_t v) { put_le(v, 4); }
    void i32(std::int32_t v) { put_le(static_cast<std::uint32_t>(v), 4); }
    void u64(std::uint64_t v) { put_le(v, 8); }
    void bytes(const std::uint8_t* p, std::size_t n) { out_.insert(out_.end(), p, p + n); }
    // Clamped to `limit` so the result always decodes (the decoder refuses longer strings).
    void string(std::string_view s, std::size_t limit) {
        const std::size_t n = std::min(s.size(), limit);
        u16(static_cast<std::uint16_t>(n));
        bytes(reinterpret_cast<const std::uint8_t*>(s.data()), n);
    }
    // A TLS block: sec_tag, the three choices (tls_default or their range), the host name.
    void tls(const TlsParameters& t) {
        i32(std::clamp(t.sec_tag, std::int32_t{0}, max_sec_tag));
        u8(choice(t.peer_verify, 2));
        u8(choice(t.hostname_verify, 1));
        u8(choice(t.dtls_cid, 2));
        string(t.hostname, max_name_length);
    }
    void address(const Address& a) {
        // An unknown family is written as unspecified; padding is always zero (the canonical form).
        std::array<std::uint8_t, 16> b{};
        Family f = a.family;
        if (f == Family::ipv4) {
            std::copy_n(a.bytes.begin(), 4, b.begin());
        } else if (f == Family::ipv6) {
            b = a.bytes;
        } else {
            f = Family::unspecified;
        }
        u8(static_cast<std::uint8_t>(f));
        bytes(b.data(), b.size());
    }
    std::vector<std::uint8_t> take() { return std::move(out_); }

private:
    static std::uint8_t choice(std::uint8_t v, std::uint8_t max) { return v <= max ? v : tls_default; }
    void put_le(std::uint64_t v, int n) {
        for (int i = 0; i < n; ++i) out_.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
    }
    std::vector<std::uint8_t> out_;
};

// Out-of-range enum values (only possible through a cast) are written as the field's default, so the encoder
// still never produces bytes the decoder refuses.
std::uint8_t transport_byte(Transport t) {
    return (t == Transport::tcp || t == Transport::udp) ? static_cast<std::uint8_t>(t) : 1;
}
std::uint8_t family_byte(Family f) {
    return (f == Family::ipv4 || f == Family::ipv6) ? static_cast<std::uint8_t>(f) : 0;
}
std::uint8_t how_byte(ShutdownHow h) {
    const auto v = static_cast<std::uint8_t>(h);
    return v <= 2 ? v : 2;
}
std::uint8_t route_byte(Route r) {
    const auto v = static_cast<std::uint8_t>(r);
    return v <= 1 ? v : 0;
}
std::uint8_t role_byte(ProxyRole r) {
    const auto v = static_cast<std::uint8_t>(r);
    return v <= 2 ? v : 0;
}
std::uint8_t outcome_byte(AtOutcome o) {
    const auto v = static_cast<std::uint8_t>(o);
    return v <= 3 ? v : 0;
}
std::uint8_t state_byte(FlowState s) {
    const auto v = static_cast<std::uint8_t>(s);
    return (v >= 1 && v <= 4) ? v : 1;
}

struct BodyEncoder {
    Writer& w;
    std::uint16_t operator()(const ConnectRequest& m) const {
        w.u8(transport_byte(m.transport));
        w.address(m.destination);
        w.u16(m.port);
        // flags: bit 0 = nonblocking, bit 1 = a TLS block follows, bit 2 = the socket's inode follows (after
        // the TLS block), others reserved (0)
        w.u8(static_cast<std::uint8_t>((m.nonblocking ? 1 : 0) | (m.tls ? 2 : 0) | (m.socket_inode ? 4 : 0)));
        w.u32(m.timeout_ms);
        if (m.tls) w.tls(*m.tls);
        if (m.socket_inode) w.u64(m.socket_inode);
        return type_connect_request;
    }
    std::uint16_t operator()(const FlowStatusRequest& m) const {
        w.u64(m.flow_id);
        w.u16(m.data_local_port);
        return type_flow_status_request;
    }
    std::uint16_t operator()(const ShutdownRequest& m) const {
        w.u64(m.flow_id);
        w.u16(m.data_local_port);
        w.u8(how_byte(m.how));
        return type_shutdown_request;
    }
    std::uint16_t operator()(const ResolveRequest& m) const {
        w.u8(family_byte(m.family));
        w.string(m.name, max_name_length);
        return type_resolve_request;
    }
    std::uint16_t operator()(const StatusRequest&) const { return type_status_request; }
    std::uint16_t operator()(const BindRequest& m) const {
        w.u8(transport_byte(m.transport));
        w.u8(family_byte(m.family));
        w.u16(m.modem_port);
        w.u16(m.app_port);
        return type_bind_request;
    }
    std::uint16_t operator()(const ListenRequest& m) const {
        w.u8(family_byte(m.family));
        w.u16(m.app_port);
        return type_listen_request;
    }
    std::uint16_t operator()(const UdpAssociateRequest& m) const {
        w.u8(family_byte(m.family));
        w.u16(m.app_port);
        w.address(m.peer);
        w.u16(m.peer_port);
        w.u8(m.tls ? 1 : 0);  // flags: bit 0 = a DTLS block follows, others reserved (0)
        if (m.tls) w.tls(*m.tls);
        return type_udp_associate_request;
    }
    std::uint16_t operator()(const LookupRequest& m) const {
        w.u8(transport_byte(m.transport));
        w.u8(family_byte(m.family));
        w.u16(m.app_port);
        w.u16(m.loopback_peer_port);
        return type_lookup_request;
    }
    std::uint16_t operator()(const ProxiesRequest&) const { return type_proxies_request; }
    std::uint16_t operator()(const StatsRequest&) const { return type_stats_request; }
    std::uint16_t operator()(const AtRequest& m) const {
        w.string(m.command, max_at_command_length);
        w.u8(m.force ? 1 : 0);
        w.u32(std::min(m.timeout_ms, max_at_timeout_ms));
        return type_at_request;
    }
    std::uint16_t operator()(const ResetRequest&) const { return type_reset_request; }
    std::uint16_t operator()(const CredentialRequest& m) const {
        const auto op = static_cast<std::uint8_t>(m.op);
        w.u8(op == 0 || op == 1 || op == 3 ? op : 1);
        w.i32(m.sec_tag < 0 ? any_sec_tag : m.sec_tag);
        w.u8(m.type <= 4 ? m.type : any_credential_type);
        w.string(m.content, max_credential_length);
        w.u8(m.force ? 1 : 0);
        return type_credential_request;
    }
    std::uint16_t operator()(const CredentialReply& m) const {
        w.i32(m.status);
        const std::size_t n = std::min(m.entries.size(), max_credential_entries);
        w.u8(static_cast<std::uint8_t>(n));
        for (std::size_t i = 0; i < n; ++i) {
            const auto& e = m.entries[i];
            w.i32(std::max(e.sec_tag, std::int32_t{0}));
            const auto t = static_cast<std::uint8_t>(e.type);
            w.u8(t <= 4 ? t : 0);
            w.string(e.sha256, max_text_length);
        }
        w.string(m.message, max_text_length);
        return type_credential_reply;
    }
    std::uint16_t operator()(const StatsReply& m) const {
        for (auto field : stats_counters) w.u64(m.*field);
        for (const auto* latency : {&m.downlink, &m.uplink}) {
            w.u32(latency->p50_us);
            w.u32(latency->p99_us);
            w.u64(latency->samples);
        }
        return type_stats_reply;
    }
    std::uint16_t operator()(const AtReply& m) const {
        w.i32(m.status);
        w.u8(outcome_byte(m.outcome));
        w.i32(m.code);
        const std::size_t n = std::min(m.lines.size(), max_at_lines);
        w.u8(static_cast<std::uint8_t>(n));
        for (std::size_t i = 0; i < n; ++i) w.string(m.lines[i], max_text_length);
        return type_at_reply;
    }
    std::uint16_t operator()(const ResetReply& m) const {
        w.i32(m.status);
        return type_reset_reply;
    }
    std::uint16_t operator()(const ConnectReply& m) const {
        w.i32(m.status);
        w.u8(route_byte(m.route));
        w.u64(m.flow_id);
        w.bytes(m.token.data(), m.token.size());
        w.u16(m.data_port);
        return type_connect_reply;
    }
    std::uint16_t operator()(const FlowStatusReply& m) const {
        w.u64(m.flow_id);
        w.u8(state_byte(m.state));
        w.i32(m.error);
        w.address(m.peer);
        w.u16(m.peer_port);
        return type_flow_status_reply;
    }
    std::uint16_t operator()(const ShutdownReply& m) const {
        w.i32(m.status);
        return type_shutdown_reply;
    }
    std::uint16_t operator()(const ResolveReply& m) const {
        w.i32(m.status);
        const std::size_t n = std::min(m.addresses.size(), max_addresses);
        w.u8(static_cast<std::uint8_t>(n));
        for (std::size_t i = 0; i < n; ++i) w.address(m.addresses[i]);
        return type_resolve_reply;
    }
    std::uint16_t operator()(const StatusReply& m) const {
        w.string(m.modem_state, max_text_length);
        w.string(m.registration, max_text_length);
        w.string(m.release, max_text_length);
        w.string(m.ipv4, max_text_length);
        w.string(m.ipv6, max_text_length);
        w.u32(m.active_flows);
        w.u32(m.queued_flows);
        w.u16(m.data_port);
        return type_status_reply;
    }
    std::uint16_t operator()(const BindReply& m) const {
        w.i32(m.status);
        return type_bind_reply;
    }
    std::uint16_t operator()(const ListenReply& m) const {
        w.i32(m.status);
        return type_listen_reply;
    }
    std::uint16_t operator()(const UdpAssociateReply& m) const {
        w.i32(m.status);
        w.u8(route_byte(m.route));
        w.u16(m.stand_in_port);
        return type_udp_associate_reply;
    }
    std::uint16_t operator()(const LookupReply& m) const {
        w.i32(m.status);
        w.address(m.local);
        w.u16(m.local_port);
        w.address(m.peer);
        w.u16(m.peer_port);
        return type_lookup_reply;
    }
    std::uint16_t operator()(const ProxiesReply& m) const {
        const std::size_t n = std::min(m.proxies.size(), max_proxies);
        w.u8(static_cast<std::uint8_t>(n));
        for (std::size_t i = 0; i < n; ++i) {
            const auto& p = m.proxies[i];
            w.u8(transport_byte(p.transport));
            w.u8(role_byte(p.role));
            w.u16(p.port);
            w.string(p.peer, max_text_length);
            w.u32(p.owner_pid);
            w.u64(p.bytes_up);
            w.u64(p.bytes_down);
        }
        w.u32(m.waiting);
        w.string(m.modem_view, max_text_length);
        return type_proxies_reply;
    }
    std::uint16_t operator()(const ErrorReply& m) const {
        w.i32(m.error);
        w.string(m.message, max_text_length);
        return type_error_reply;
    }
};

// Reader ------------------------------------------------------------------------------------------------

// Thrown nowhere: every read reports failure through `error_`, and the first failure sticks, so the decode
// functions read straight through and check once at the end.
class Reader {
public:
    explicit Reader(std::span<const std::uint8_t> b) : b_(b) {}

    std::uint8_t u8() { return static_cast<std::uint8_t>(le(1)); }
    std::uint16_t u16() { return static_cast<std::uint16_t>(le(2)); }
    std::uint32_t u32() { return static_cast<std::uint32_t>(le(4)); }
    std::int32_t i32() { return static_cast<std::int32_t>(static_cast<std::uint32_t>(le(4))); }
    std::uint64_t u64() { return le(8); }
    bool boolean() {
        const auto v = u8();
        if (v > 1) fail(DecodeError::malformed);
        return v == 1;
    }
    template <std::size_t N>
    std::array<std::uint8_t, N> array() {
        std::array<std::uint8_t, N> a{};
        if (take(N)) std::memcpy(a.data(), b_.data() + pos_ - N, N);
        return a;
    }
    // A length prefix that promises more than remains is `malformed` (a fixed field cut short is `too_short`).
    std::string string(std::size_t limit) {
        const std::size_t n = u16();
        if (error_) return {};
        if (n > limit || n > remaining()) {
            fail(DecodeError::malformed);
            return {};
        }
        std::string s(reinterpret_cast<const char*>(b_.data() + pos_), n);
        pos_ += n;
        return s;
    }
    Family family() {
        const auto v = u8();
        if (v != 0 && v != 4 && v != 6) fail(DecodeError::malformed);
        return static_cast<Family>(v);
    }
    TlsParameters tls() {
        TlsParameters t;
        t.sec_tag = i32();
        if (t.sec_tag < 0) fail(DecodeError::malformed);
        t.peer_verify = choice(2);
        t.hostname_verify = choice(1);
        t.dtls_cid = choice(2);
        t.hostname = string(max_name_length);
        return t;
    }
    Address address() {
        Address a;
        a.family = family();
        a.bytes = array<16>();
        // Canonical form: bytes an address does not use are zero.
        const std::size_t used = a.family == Family::ipv4 ? 4 : a.family == Family::ipv6 ? 16 : 0;
        for (std::size_t i = used; i < a.bytes.size(); ++i)
            if (a.bytes[i] != 0) fail(DecodeError::malformed);
        return a;
    }
    template <typename E>
    E enumeration(std::uint8_t lo, std::uint8_t hi) {
        const auto v = u8();
        if (v < lo || v > hi) fail(DecodeError::malformed);
        return static_cast<E>(v);
    }
    std::size_t remaining() const { return b_.size() - pos_; }
    // A value in 0…max, or tls_default.
    std::uint8_t choice(std::uint8_t max) {
        const auto v = u8();
        if (v > max && v != tls_default) fail(DecodeError::malformed);
        return v;
    }
    void fail(DecodeError e) {
        if (!error_) error_ = e;
    }
    const std::optional<DecodeError>& error() const { return error_; }

private:
    bool take(std::size_t n) {
        if (error_) return false;
        if (remaining() < n) {
            fail(DecodeError::too_short);
            return false;
        }
        pos_ += n;
        return true;
    }
    std::uint64_t le(std::size_t n) {
        if (!take(n)) return 0;
        std::uint64_t v = 0;
        for (std::size_t i = 0; i < n; ++i) v |= std::uint64_t{b_[pos_ - n + i]} << (8 * i);
        return v;
    }

    std::span<const std::uint8_t> b_;
    std::size_t pos_ = 0;
    std::optional<DecodeError> error_;
};

std::optional<Message> decode_body(std::uint16_t type, Reader& r) {
    switch (type) {
    case type_connect_request: {
        ConnectRequest m;
        m.transport = r.enumeration<Transport>(1, 2);
        m.destination = r.address();
        m.port = r.u16();
        const auto flags = r.u8();
        if (flags > 7) r.fail(DecodeError::malformed);  // bits 0, 1 and 2 only
        m.nonblocking = flags & 1;
        m.timeout_ms = r.u32();
        if (flags & 2) m.tls = r.tls();
        if (flags & 4) {
            m.socket_inode = r.u64();
            if (m.socket_inode == 0) r.fail(DecodeError::malformed);  // one encoding per request
        }
        return m;
    }
    case type_flow_status_request: {
        FlowStatusRequest m;
        m.flow_id = r.u64();
        m.data_local_port = r.u16();
        return m;
    }
    case type_shutdown_request: {
        ShutdownRequest m;
        m.flow_id = r.u64();
        m.data_local_port = r.u16();
        m.how = r.enumeration<ShutdownHow>(0, 2);
        return m;
    }
    case type_resolve_request: {
        ResolveRequest m;
        m.family = r.family();
        m.name = r.string(max_name_length);
        return m;
    }
    case type_status_request:
        return StatusRequest{};
    case type_bind_request: {
        BindRequest m;
        m.transport = r.enumeration<Transport>(1, 2);
        m.family = r.family();
        m.modem_port = r.u16();
        m.app_port = r.u16();
        return m;
    }
    case type_listen_request: {
        ListenRequest m;
        m.family = r.family();
        m.app_port = r.u16();
        return m;
    }
    case type_udp_associate_request: {
        UdpAssociateRequest m;
        m.family = r.family();
        m.app_port = r.u16();
        m.peer = r.address();
        m.peer_port = r.u16();
        if (r.boolean()) m.tls = r.tls();  // flags byte: only bit 0 is defined
        return m;
    }
    case type_lookup_request: {
        LookupRequest m;
        m.transport = r.enumeration<Transport>(1, 2);
        m.family = r.family();
        m.app_port = r.u16();
        m.loopback_peer_port = r.u16();
        return m;
    }
    case type_proxies_request:
        return ProxiesRequest{};
    case type_stats_request:
        return StatsRequest{};
    case type_at_request: {
        AtRequest m;
        m.command = r.string(max_at_command_length);
        m.force = r.boolean();  // flags byte: only bit 0 is defined
        m.timeout_ms = r.u32();
        if (m.timeout_ms > max_at_timeout_ms) r.fail(DecodeError::malformed);
        return m;
    }
    case type_reset_request:
        return ResetRequest{};
    case type_credential_request: {
        CredentialRequest m;
        m.op = static_cast<CredentialOp>(r.u8());
        if (m.op != CredentialOp::write && m.op != CredentialOp::list && m.op != CredentialOp::remove)
            r.fail(DecodeError::malformed);
        m.sec_tag = r.i32();
        if (m.sec_tag < any_sec_tag) r.fail(DecodeError::malformed);
        m.type = r.u8();
        if (m.type > 4 && m.type != any_credential_type) r.fail(DecodeError::malformed);
        m.content = r.string(max_credential_length);
        m.force = r.boolean();
        return m;
    }
    case type_credential_reply: {
        CredentialReply m;
        m.status = r.i32();
        const std::size_t n = r.u8();
        if (r.error()) return m;
        if (n > max_credential_entries) {
            r.fail(DecodeError::malformed);
            return m;
        }
        for (std::size_t i = 0; i < n && !r.error(); ++i) {
            CredentialEntry e;
            e.sec_tag = r.i32();
            if (e.sec_tag < 0) r.fail(DecodeError::malformed);
            e.type = r.enumeration<CredentialType>(0, 4);
            e.sha256 = r.string(max_text_length);
            m.entries.push_back(std::move(e));
        }
        m.message = r.string(max_text_length);
        return m;
    }
    case type_stats_reply: {
        StatsReply m;
        for (auto field : stats_counters) m.*field = r.u64();
        for (auto* latency : {&m.downlink, &m.uplink}) {
            latency->p50_us = r.u32();
            latency->p99_us = r.u32();
            latency->samples = r.u64();
        }
        return m;
    }
    case type_at_reply: {
        AtReply m;
        m.status = r.i32();
        m.outcome = r.enumeration<AtOutcome>(0, 3);
        m.code = r.i32();
        const std::size_t n = r.u8();
        if (r.error()) return m;
        if (n > max_at_lines) {
            r.fail(DecodeError::malformed);
            return m;
        }
        for (std::size_t i = 0; i < n && !r.error(); ++i) m.lines.push_back(r.string(max_text_length));
        return m;
    }
    case type_reset_reply:
        return ResetReply{r.i32()};
    case type_bind_reply:
        return BindReply{r.i32()};
    case type_listen_reply:
        return ListenReply{r.i32()};
    case type_udp_associate_reply: {
        UdpAssociateReply m;
        m.status = r.i32();
        m.route = r.enumeration<Route>(0, 1);
        m.stand_in_port = r.u16();
        return m;
    }
    case type_lookup_reply: {
        LookupReply m;
        m.status = r.i32();
        m.local = r.address();
        m.local_port = r.u16();
        m.peer = r.address();
        m.peer_port = r.u16();
        return m;
    }
    case type_proxies_reply: {
        ProxiesReply m;
        const std::size_t n = r.u8();
        if (r.error()) return m;
        if (n > max_proxies) {
            r.fail(DecodeError::malformed);
            return m;
        }
        for (std::size_t i = 0; i < n && !r.error(); ++i) {
            ProxyInfo p;
            p.transport = r.enumeration<Transport>(1, 2);
            p.role = r.enumeration<ProxyRole>(0, 2);
            p.port = r.u16();
            p.peer = r.string(max_text_length);
            p.owner_pid = r.u32();
            p.bytes_up = r.u64();
            p.bytes_down = r.u64();
            m.proxies.push_back(std::move(p));
        }
        m.waiting = r.u32();
        m.modem_view = r.string(max_text_length);
        return m;
    }
    case type_connect_reply: {
        ConnectReply m;
        m.status = r.i32();
        m.route = r.enumeration<Route>(0, 1);
        m.flow_id = r.u64();
        m.token = r.array<16>();
        m.data_port = r.u16();
        return m;
    }
    case type_flow_status_reply: {
        FlowStatusReply m;
        m.flow_id = r.u64();
        m.state = r.enumeration<FlowState>(1, 4);
        m.error = r.i32();
        m.peer = r.address();
        m.peer_port = r.u16();
        return m;
    }
    case type_shutdown_reply: {
        ShutdownReply m;
        m.status = r.i32();
        return m;
    }
    case type_resolve_reply: {
        ResolveReply m;
        m.status = r.i32();
        const std::size_t n = r.u8();
        if (r.error()) return m;
        if (n > max_addresses || n * address_size > r.remaining()) {
            r.fail(DecodeError::malformed);
            return m;
        }
        m.addresses.reserve(n);
        for (std::size_t i = 0; i < n && !r.error(); ++i) m.addresses.push_back(r.address());
        return m;
    }
    case type_status_reply: {
        StatusReply m;
        m.modem_state = r.string(max_text_length);
        m.registration = r.string(max_text_length);
        m.release = r.string(max_text_length);
        m.ipv4 = r.string(max_text_length);
        m.ipv6 = r.string(max_text_length);
        m.active_flows = r.u32();
        m.queued_flows = r.u32();
        m.data_port = r.u16();
        return m;
    }
    case type_error_reply: {
        ErrorReply m;
        m.error = r.i32();
        m.message = r.string(max_text_length);
        return m;
    }
    default:
        return std::nullopt;
    }
}

}  // namespace

const char* to_string(DecodeError error) {
    switch (error) {
    case DecodeError::too_short: return "too short";
    case DecodeError::too_long: return "too long";
    case DecodeError::bad_magic: return "bad magic";
    case DecodeError::unsupported_version: return "unsupported version";
    case DecodeError::unknown_type: return "unknown type";
    case DecodeError::malformed: return "malformed";
    }
    return "unknown decode error";
}

std::vector<std::uint8_t> encode(const Envelope& envelope) {
    Writer body;
    const std::uint16_t type = std::visit(BodyEncoder{body}, envelope.message);
    auto fields = body.take();

    Writer w;
    w.u8(protocol_magic);
    w.u8(protocol_version);
    w.u16(type);
    w.u32(envelope.request_id);
    auto out = w.take();
    out.insert(out.end(), fields.begin(), fields.end());
    return out;
}

std::variant<Envelope, DecodeError> decode(std::span<const std::uint8_t> bytes) {
    if (bytes.size() > max_message_size) return DecodeError::too_long;
    if (bytes.size() < header_size) return DecodeError::too_short;
    Reader r(bytes);
    if (r.u8() != protocol_magic) return DecodeError::bad_magic;
    if (r.u8() != protocol_version) return DecodeError::unsupported_version;
    const std::uint16_t type = r.u16();
    Envelope envelope;
    envelope.request_id = r.u32();
    auto message = decode_body(type, r);
    if (!message) return DecodeError::unknown_type;
    if (r.error()) return *r.error();
    if (r.remaining() != 0) return DecodeError::malformed;  // trailing bytes
    envelope.message = std::move(*message);
    return envelope;
}

std::optional<std::uint32_t> peek_request_id(std::span<const std::uint8_t> bytes) {
    if (bytes.size() < header_size || bytes[0] != protocol_magic) return std::nullopt;
    return static_cast<std::uint32_t>(bytes[4]) | static_cast<std::uint32_t>(bytes[5]) << 8 |
           static_cast<std::uint32_t>(bytes[6]) << 16 | static_cast<std::uint32_t>(bytes[7]) << 24;
}

std::array<std::uint8_t, credential_size> encode_credential(std::uint64_t flow_id, const Token& token) {
    std::array<std::uint8_t, credential_size> out{};
    for (std::size_t i = 0; i < 8; ++i) out[i] = static_cast<std::uint8_t>(flow_id >> (8 * i));
    std::copy(token.begin(), token.end(), out.begin() + 8);
    return out;
}

std::optional<std::pair<std::uint64_t, Token>> decode_credential(std::span<const std::uint8_t> bytes) {
    if (bytes.size() != credential_size) return std::nullopt;
    std::uint64_t flow_id = 0;
    for (std::size_t i = 0; i < 8; ++i) flow_id |= std::uint64_t{bytes[i]} << (8 * i);
    Token token{};
    std::copy(bytes.begin() + 8, bytes.end(), token.begin());
    return std::pair{flow_id, token};
}

}  // namespace slmsock::wire
