// Owns: the libFuzzer target for the API codec (libslmsock/src/wire.cpp). It checks invariants, not just
// "no crash":
//   1. decode() of any byte string returns (no crash, no leak, no UB), and refuses anything over
//      max_message_size;
//   2. the encoding is canonical: when decode(x) succeeds, encode(decode(x)) == x byte for byte (so it also
//      decodes to an equal Envelope);
//   3. encode() never produces bytes decode() refuses, never more than max_message_size, and a value within
//      the documented limits survives encode → decode unchanged; beyond them the encoder clamps, and
//      clamping is idempotent;
//   4. peek_request_id agrees with decode on every message decode accepts; credentials round-trip.
//
// Input format: the whole input is first decoded as a message (so encoded messages make good seeds); the
// same bytes then drive a generator (FuzzedDataProvider) that builds an Envelope for invariant 3.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <vector>

#include "wire.hpp"

using namespace slmsock::wire;

namespace {

#define FUZZ_CHECK(cond)                                                               \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            std::fprintf(stderr, "invariant failed: %s (line %d)\n", #cond, __LINE__); \
            std::abort();                                                              \
        }                                                                              \
    } while (false)

// Values a valid program can hold; `exotic` lets the generator also produce casts out of range and
// over-long strings and lists, which the encoder must clamp.
struct Generator {
    FuzzedDataProvider& in;
    bool within_limits = true;

    template <typename E>
    E enumeration(std::initializer_list<std::uint8_t> valid) {
        if (in.ConsumeIntegralInRange<int>(0, 15) == 0) {
            const auto raw = in.ConsumeIntegral<std::uint8_t>();
            bool ok = false;
            for (auto v : valid) ok = ok || v == raw;
            within_limits = within_limits && ok;
            return static_cast<E>(raw);
        }
        return static_cast<E>(*(valid.begin() + in.ConsumeIntegralInRange<std::size_t>(0, valid.size() - 1)));
    }
    std::string text(std::size_t limit) {
        const std::size_t n = in.ConsumeIntegralInRange<std::size_t>(0, limit + limit / 4);
        if (n > limit) within_limits = false;
        return in.ConsumeBytesAsString(n);
    }
    Address address() {
        Address a;
        a.family = enumeration<Family>({0, 4, 6});
        const auto raw = in.ConsumeBytes<std::uint8_t>(16);
        std::copy(raw.begin(), raw.end(), a.bytes.begin());
        // Only the bytes a family uses are part of its value; any others make it "not canonical".
        const std::size_t used = a.family == Family::ipv4 ? 4 : a.family == Family::ipv6 ? 16 : 0;
        for (std::size_t i = used; i < 16; ++i)
            if (a.bytes[i] != 0) within_limits = false;
        return a;
    }
    std::optional<TlsParameters> tls() {
        if (!in.ConsumeBool()) return std::nullopt;
        TlsParameters t;
        t.sec_tag = in.ConsumeIntegral<std::int32_t>();
        if (t.sec_tag < 0) within_limits = false;  // the encoder clamps it
        t.peer_verify = enumeration<std::uint8_t>({0, 1, 2, tls_default});
        t.hostname_verify = enumeration<std::uint8_t>({0, 1, tls_default});
        t.dtls_cid = enumeration<std::uint8_t>({0, 1, 2, tls_default});
        t.hostname = text(max_name_length);
        return t;
    }
    Token token() {
        Token t{};
        const auto raw = in.ConsumeBytes<std::uint8_t>(16);
        std::copy(raw.begin(), raw.end(), t.begin());
        return t;
    }

    Message message() {
        switch (in.ConsumeIntegralInRange<int>(0, 20)) {
        case 0: {
            ConnectRequest m{enumeration<Transport>({1, 2}), address(), in.ConsumeIntegral<std::uint16_t>(),
                             in.ConsumeBool(), in.ConsumeIntegral<std::uint32_t>(), std::nullopt};
            m.tls = tls();
            return m;
        }
        case 17: {
            UdpAssociateRequest m{enumeration<Family>({0, 4, 6}), in.ConsumeIntegral<std::uint16_t>(), address(),
                                  in.ConsumeIntegral<std::uint16_t>(), std::nullopt};
            m.tls = tls();
            return m;
        }
        case 18: {
            CredentialRequest m;
            m.op = enumeration<CredentialOp>({0, 1, 3});
            m.sec_tag = in.ConsumeIntegral<std::int32_t>();
            if (m.sec_tag < any_sec_tag) within_limits = false;
            m.type = enumeration<std::uint8_t>({0, 1, 2, 3, 4, any_credential_type});
            m.content = text(max_credential_length);
            m.force = in.ConsumeBool();
            return m;
        }
        case 19: {
            CredentialReply m;
            m.status = in.ConsumeIntegral<std::int32_t>();
            const std::size_t n = in.ConsumeIntegralInRange<std::size_t>(0, 4);
            for (std::size_t i = 0; i < n; ++i) {
                CredentialEntry e;
                e.sec_tag = in.ConsumeIntegral<std::int32_t>();
                if (e.sec_tag < 0) within_limits = false;
                e.type = enumeration<CredentialType>({0, 1, 2, 3, 4});
                e.sha256 = text(max_text_length);
                m.entries.push_back(std::move(e));
            }
            m.message = text(max_text_length);
            return m;
        }
        case 1:
            return FlowStatusRequest{in.ConsumeIntegral<std::uint64_t>(), in.ConsumeIntegral<std::uint16_t>()};
        case 2:
            return ShutdownRequest{in.ConsumeIntegral<std::uint64_t>(), in.ConsumeIntegral<std::uint16_t>(),
                                   enumeration<ShutdownHow>({0, 1, 2})};
        case 3: {
            ResolveRequest m;
            m.family = enumeration<Family>({0, 4, 6});
            m.name = text(max_name_length);
            return m;
        }
        case 4:
            return StatusRequest{};
        case 5:
            return ConnectReply{in.ConsumeIntegral<std::int32_t>(), enumeration<Route>({0, 1}),
                                in.ConsumeIntegral<std::uint64_t>(), token(), in.ConsumeIntegral<std::uint16_t>()};
        case 6: {
            FlowStatusReply m;
            m.flow_id = in.ConsumeIntegral<std::uint64_t>();
            m.state = enumeration<FlowState>({1, 2, 3, 4});
            m.error = in.ConsumeIntegral<std::int32_t>();
            m.peer = address();
            m.peer_port = in.ConsumeIntegral<std::uint16_t>();
            return m;
        }
        case 7:
            return ShutdownReply{in.ConsumeIntegral<std::int32_t>()};
        case 8: {
            ResolveReply m;
            m.status = in.ConsumeIntegral<std::int32_t>();
            const std::size_t n = in.ConsumeIntegralInRange<std::size_t>(0, max_addresses + 4);
            if (n > max_addresses) within_limits = false;
            for (std::size_t i = 0; i < n; ++i) m.addresses.push_back(address());
            return m;
        }
        case 9: {
            StatusReply m;
            m.modem_state = text(max_text_length);
            m.registration = text(max_text_length);
            m.release = text(max_text_length);
            m.ipv4 = text(max_text_length);
            m.ipv6 = text(max_text_length);
            m.active_flows = in.ConsumeIntegral<std::uint32_t>();
            m.queued_flows = in.ConsumeIntegral<std::uint32_t>();
            m.data_port = in.ConsumeIntegral<std::uint16_t>();
            return m;
        }
        case 11:
            return StatsRequest{};
        case 12: {
            AtRequest m;
            m.command = text(max_at_command_length);
            m.force = in.ConsumeBool();
            m.timeout_ms = in.ConsumeIntegral<std::uint32_t>();
            if (m.timeout_ms > max_at_timeout_ms) within_limits = false;  // the encoder clamps it
            return m;
        }
        case 13:
            return ResetRequest{};
        case 14: {
            StatsReply m;
            m.uptime_s = in.ConsumeIntegral<std::uint64_t>();
            m.tcp_bytes_up = in.ConsumeIntegral<std::uint64_t>();
            m.udp_dropped_busy = in.ConsumeIntegral<std::uint64_t>();
            m.recovery_backoffs = in.ConsumeIntegral<std::uint64_t>();
            m.downlink = {in.ConsumeIntegral<std::uint32_t>(), in.ConsumeIntegral<std::uint32_t>(),
                          in.ConsumeIntegral<std::uint64_t>()};
            m.uplink = {in.ConsumeIntegral<std::uint32_t>(), in.ConsumeIntegral<std::uint32_t>(),
                        in.ConsumeIntegral<std::uint64_t>()};
            return m;
        }
        case 15: {
            AtReply m;
            m.status = in.ConsumeIntegral<std::int32_t>();
            m.outcome = enumeration<AtOutcome>({0, 1, 2, 3});
            m.code = in.ConsumeIntegral<std::int32_t>();
            const std::size_t n = in.ConsumeIntegralInRange<std::size_t>(0, max_at_lines + 2);
            if (n > max_at_lines) within_limits = false;
            for (std::size_t i = 0; i < n; ++i) m.lines.push_back(text(max_text_length));
            return m;
        }
        case 16:
            return ResetReply{in.ConsumeIntegral<std::int32_t>()};
        default: {
            ErrorReply m;
            m.error = in.ConsumeIntegral<std::int32_t>();
            m.message = text(max_text_length);
            return m;
        }
        }
    }
};

void check_decode(std::span<const std::uint8_t> bytes) {
    auto decoded = decode(bytes);
    if (bytes.size() > max_message_size) {
        FUZZ_CHECK(std::holds_alternative<DecodeError>(decoded) &&
                   std::get<DecodeError>(decoded) == DecodeError::too_long);
    }
    if (auto* error = std::get_if<DecodeError>(&decoded)) {
        FUZZ_CHECK(to_string(*error) != nullptr);
        return;
    }
    const Envelope& envelope = std::get<Envelope>(decoded);
    const std::vector<std::uint8_t> again = encode(envelope);
    FUZZ_CHECK(again.size() == bytes.size());
    FUZZ_CHECK(std::equal(again.begin(), again.end(), bytes.begin()));
    auto peeked = peek_request_id(bytes);
    FUZZ_CHECK(peeked && *peeked == envelope.request_id);
}

void check_encode(FuzzedDataProvider& in) {
    Generator g{in};
    Envelope envelope;
    envelope.request_id = in.ConsumeIntegral<std::uint32_t>();
    envelope.message = g.message();
    const auto bytes = encode(envelope);
    FUZZ_CHECK(bytes.size() <= max_message_size);
    auto decoded = decode(bytes);
    FUZZ_CHECK(std::holds_alternative<Envelope>(decoded));
    const Envelope& back = std::get<Envelope>(decoded);
    if (g.within_limits) FUZZ_CHECK(back == envelope);
    FUZZ_CHECK(encode(back) == bytes);  // clamping is idempotent

    const auto flow_id = in.ConsumeIntegral<std::uint64_t>();
    const Token token = g.token();
    const auto credential = encode_credential(flow_id, token);
    const auto pair = decode_credential(credential);
    FUZZ_CHECK(pair && pair->first == flow_id && pair->second == token);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::span<const std::uint8_t> bytes(data, size);
    check_decode(bytes);
    (void)decode_credential(bytes);
    FuzzedDataProvider in(data, size);
    check_encode(in);
    return 0;
}
