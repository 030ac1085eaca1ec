// Owns: the libFuzzer target for at::Framer. It checks invariants, not just "no crash":
//   1. split invariance: the same script fed in whole segments and in random chunks gives the same events
//      (adjacent RawData / Discarded merged), the same mode, pending flag and discard count;
//   2. every ProxyData is at most the profile's receive_chunk_max;
//   3. bytes accounted for in events plus bytes still buffered never exceed the bytes fed, and Discarded events
//      add up to discarded_bytes();
//   4. the framer's buffered bytes stay bounded;
//   5. FinalResult only while a command is pending; RawData, DataModeExited only outside command mode;
//      PeerTerminator only on profiles with the v2.7+ peer-loss signal; PossibleReboot only in data mode.
//
// Input format (so real byte strings make good seeds): byte 0 picks the firmware profile, byte 1 seeds the
// chunk splitter, the rest is the UART stream. 0xFE escapes a caller action: FE FE is a literal 0xFE; FE <op>
// with op & 7 = 0 command_sent(prefix[(op >> 3) % n]), 1 data_mode_requested, 2 data_mode_exit_requested,
// 3 idle, 4 reset, 5-7 command_sent("").
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "at/framer.hpp"

using namespace slmd::at;

namespace {

#define FUZZ_CHECK(cond)                                                         \
    do {                                                                         \
        if (!(cond)) {                                                           \
            std::fprintf(stderr, "invariant failed: %s (line %d)\n", #cond, __LINE__); \
            std::abort();                                                        \
        }                                                                        \
    } while (false)

constexpr const char* versions[] = {"1.7.0", "1.8.0", "1.9.0", "2.0.0", "2.1.0", "2.2.0", "2.3.0",
                                    "2.4.0", "2.5.0", "2.6.0", "2.7.0", "2.8.0", "2.9.0", "3.1.0"};
constexpr const char* prefixes[] = {"#XTCPCLI", "+CGPADDR", "#XUDPSVR",  "#XTCPSEND", "#XTCPDATA", "+CEREG",
                                    "#XSLMVER", "",         "#XTCPSVR:", "Ready",     "#XRECV",    "#XRECVFROM"};

struct Action {
    enum Kind { feed, command, data_mode, exit_data_mode, idle, reset } kind;
    std::string bytes;  // feed: the segment; command: the prefix
};

std::vector<Action> parse_script(std::string_view in) {
    std::vector<Action> script;
    std::string segment;
    auto flush = [&] {
        if (!segment.empty()) script.push_back({Action::feed, std::move(segment)});
        segment.clear();
    };
    for (std::size_t i = 0; i < in.size();) {
        const std::size_t escape = in.find('\xFE', i);
        if (escape == std::string_view::npos || escape + 1 == in.size()) {
            segment.append(in.substr(i));
            break;
        }
        segment.append(in.substr(i, escape - i));
        const auto op = static_cast<unsigned char>(in[escape + 1]);
        i = escape + 2;
        if (op == 0xFE) {
            segment.push_back('\xFE');
            continue;
        }
        flush();
        switch (op & 7) {
            case 0: script.push_back({Action::command, prefixes[(op >> 3) % std::size(prefixes)]}); break;
            case 1: script.push_back({Action::data_mode, {}}); break;
            case 2: script.push_back({Action::exit_data_mode, {}}); break;
            case 3: script.push_back({Action::idle, {}}); break;
            case 4: script.push_back({Action::reset, {}}); break;
            default: script.push_back({Action::command, ""}); break;
        }
    }
    flush();
    return script;
}

std::size_t content_bytes(const Event& e) {
    if (auto* x = std::get_if<InfoLine>(&e)) return x->text.size();
    if (auto* x = std::get_if<Urc>(&e)) return x->text.size();
    if (auto* x = std::get_if<ProxyData>(&e)) return x->bytes.size();
    if (auto* x = std::get_if<RawData>(&e)) return x->bytes.size();
    if (auto* x = std::get_if<Discarded>(&e)) return x->bytes.size();
    return 0;
}

void merge_into(std::vector<Event>& out, const Event& e) {
    if (!out.empty()) {
        if (auto* r = std::get_if<RawData>(&e); r && std::holds_alternative<RawData>(out.back())) {
            std::get<RawData>(out.back()).bytes += r->bytes;
            return;
        }
        if (auto* d = std::get_if<Discarded>(&e); d && std::holds_alternative<Discarded>(out.back())) {
            std::get<Discarded>(out.back()).bytes += d->bytes;
            return;
        }
    }
    out.push_back(e);
}

struct Outcome {
    std::vector<Event> events;  // merged
    LinkMode mode;
    bool pending;
    std::uint64_t discarded;
};

// Runs the script; with a nonzero seed every feed segment is cut into pseudo-random chunks (1..64 bytes).
Outcome run(const FirmwareProfile& profile, const std::vector<Action>& script, std::uint32_t seed) {
    Framer framer(profile);
    Outcome result{};
    std::uint64_t fed = 0;                 // since the last reset
    std::uint64_t accounted = 0;           // event content since the last reset
    std::uint64_t discarded_events = 0;    // over the whole run
    unsigned deferred_finals = 0;          // look-back flushes by API calls may yield a FinalResult later
    const std::size_t buffer_bound = 2 * (Framer::max_line_length + 2) + profile.receive_chunk_max + 64;
    const bool terminator_profile = profile.data_mode_peer_loss == DataModePeerLoss::null_mode_with_terminator;
    std::uint32_t rng = seed * 2654435761u + 1;

    auto deliver = [&](auto&& call) {
        const bool pending_before = framer.command_pending();
        const LinkMode mode_before = framer.mode();
        std::vector<Event> out;
        call(out);
        unsigned finals = 0, exits = 0;
        for (const Event& e : out) {
            accounted += content_bytes(e);
            if (auto* d = std::get_if<Discarded>(&e)) discarded_events += d->bytes.size();
            if (auto* p = std::get_if<ProxyData>(&e)) FUZZ_CHECK(p->bytes.size() <= profile.receive_chunk_max);
            if (std::holds_alternative<FinalResult>(e)) ++finals;
            if (std::holds_alternative<DataModeExited>(e)) ++exits;
            if (std::holds_alternative<RawData>(e)) FUZZ_CHECK(mode_before != LinkMode::command);
            if (std::holds_alternative<PeerTerminator>(e)) {
                FUZZ_CHECK(terminator_profile);
                // entering_data_mode too: raw bytes before the entry OK already put the link in data mode.
                FUZZ_CHECK(mode_before != LinkMode::command);
            }
            if (std::holds_alternative<PossibleReboot>(e)) FUZZ_CHECK(mode_before != LinkMode::command);
            merge_into(result.events, e);
        }
        FUZZ_CHECK(finals <= (pending_before ? 1u : 0u) + deferred_finals);
        FUZZ_CHECK(exits <= 1);
        if (exits) FUZZ_CHECK(mode_before != LinkMode::command);
        deferred_finals = 0;
        FUZZ_CHECK(framer.buffered_bytes() <= buffer_bound);
        FUZZ_CHECK(accounted + framer.buffered_bytes() <= fed);
        FUZZ_CHECK(discarded_events == framer.discarded_bytes());
    };
    auto before_api_call = [&] {
        if (framer.command_pending()) ++deferred_finals;
    };

    for (const Action& a : script) {
        switch (a.kind) {
            case Action::feed:
                for (std::size_t at = 0; at < a.bytes.size();) {
                    std::size_t n = a.bytes.size() - at;
                    if (seed != 0) {
                        rng ^= rng << 13, rng ^= rng >> 17, rng ^= rng << 5;
                        n = std::min<std::size_t>(n, 1 + rng % 64);
                    }
                    fed += n;
                    deliver([&](std::vector<Event>& out) { framer.feed(std::string_view(a.bytes).substr(at, n), out); });
                    at += n;
                }
                break;
            case Action::command:
                before_api_call();
                framer.command_sent(a.bytes);
                FUZZ_CHECK(framer.command_pending());
                break;
            case Action::data_mode:
                before_api_call();
                framer.data_mode_requested();
                FUZZ_CHECK(framer.mode() != LinkMode::command);
                break;
            case Action::exit_data_mode:
                before_api_call();
                framer.data_mode_exit_requested();
                break;
            case Action::idle: deliver([&](std::vector<Event>& out) { framer.idle(out); }); break;
            case Action::reset:
                framer.reset();
                FUZZ_CHECK(framer.buffered_bytes() == 0);
                FUZZ_CHECK(framer.mode() == LinkMode::command && !framer.command_pending());
                fed = 0;
                accounted = 0;
                // Events the framer had not handed out yet are forgotten with the rest; their bytes stay counted.
                discarded_events = framer.discarded_bytes();
                deferred_finals = 0;
                break;
        }
    }
    deliver([&](std::vector<Event>& out) { framer.idle(out); });
    result.mode = framer.mode();
    result.pending = framer.command_pending();
    result.discarded = framer.discarded_bytes();
    return result;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return 0;
    const auto profile =
        FirmwareProfile::for_version(*parse_firmware_version(versions[data[0] % std::size(versions)]));
    const std::uint32_t seed = 1u + data[1];
    const auto script = parse_script(std::string_view(reinterpret_cast<const char*>(data) + 2, size - 2));

    const Outcome whole = run(profile, script, 0);
    const Outcome split = run(profile, script, seed);
    FUZZ_CHECK(whole.events == split.events);
    FUZZ_CHECK(whole.mode == split.mode);
    FUZZ_CHECK(whole.pending == split.pending);
    FUZZ_CHECK(whole.discarded == split.discarded);
    return 0;
}
