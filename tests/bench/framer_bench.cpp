// Owns: the AT framer's parse rate (Google Benchmark), to show how far the daemon's hot parsing path is from
// being a limit: the UART delivers at most 92 160 B/s at 921600 baud.
//
// The stream is what a busy download looks like on the wire: full #XTCPDATA chunks of the release's size, a
// few small ones, an #XTCPSEND answer, +CEREG URCs, and is fed in 256-byte pieces because that is what one
// UART DMA buffer (and slmsim) delivers per read.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "at/firmware_profile.hpp"
#include "at/framer.hpp"

namespace {

using slmd::at::FirmwareProfile;
using slmd::at::FirmwareVersion;
using slmd::at::Framer;
using slmd::at::ReceiveOrder;

std::string payload(std::size_t n, std::mt19937& rng) {
    std::string bytes(n, '\0');
    for (auto& b : bytes) b = static_cast<char>(rng() & 0xff);
    return bytes;
}

std::string tcp_data(const FirmwareProfile& profile, const std::string& bytes) {
    const std::string header = "\r\n#XTCPDATA: " + std::to_string(bytes.size()) + "\r\n";
    return profile.receive_order == ReceiveOrder::header_first ? header + bytes : bytes + header;
}

// One cycle of the mix. The #XTCPSEND answer comes first so the framer has a command pending for it.
std::string cycle(const FirmwareProfile& profile) {
    std::mt19937 rng(7);
    std::string s = "\r\n#XTCPSEND: 64\r\n\r\nOK\r\n";
    for (int i = 0; i < 8; ++i) s += tcp_data(profile, payload(profile.receive_chunk_max, rng));
    s += "\r\n+CEREG: 1\r\n";
    s += tcp_data(profile, payload(64, rng));
    s += "\r\n+CEREG: 5\r\n";
    s += tcp_data(profile, payload(700, rng));
    return s;
}

void BM_FramerMix(benchmark::State& state) {
    const auto profile =
        FirmwareProfile::for_version(FirmwareVersion{2, static_cast<int>(state.range(0)), 0});
    const std::string stream = cycle(profile);
    Framer framer(profile);
    std::vector<slmd::at::Event> events;
    events.reserve(64);
    std::size_t payload_bytes = 0;
    for (auto _ : state) {
        framer.command_sent("#XTCPSEND");
        for (std::size_t off = 0; off < stream.size(); off += 256) {
            framer.feed(std::string_view(stream).substr(off, 256), events);
            for (const auto& event : events) {
                if (const auto* data = std::get_if<slmd::at::ProxyData>(&event))
                    payload_bytes += data->bytes.size();
            }
            events.clear();
        }
        // Data-first releases hold the last lines back until they know no header claims them.
        framer.idle(events);
        events.clear();
    }
    benchmark::DoNotOptimize(payload_bytes);
    // Payload bytes the framer handed out per pass: proves the mix really is parsed as #XTCPDATA, not
    // skipped.
    state.counters["payload_per_pass"] = static_cast<double>(payload_bytes) /
                                         static_cast<double>(std::max<std::int64_t>(state.iterations(), 1));
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * stream.size()));
    state.SetLabel("v2." + std::to_string(state.range(0)));
}
// v2.0 (data first, 1272-byte chunks) and v2.9 (header first, 2048).
BENCHMARK(BM_FramerMix)->Arg(0)->Arg(9);

// Raw data-mode downlink: the framer only has to look for the exit patterns.
void BM_FramerDataMode(benchmark::State& state) {
    const auto profile = FirmwareProfile::for_version(FirmwareVersion{2, 9, 0});
    std::mt19937 rng(11);
    std::string stream = payload(64 * 1024, rng);
    // No "+++" or "\r\n#XDATAMODE" inside, so the benchmark stays in data mode: replace '+' and CR.
    for (auto& c : stream) {
        if (c == '+' || c == '\r') c = 'x';
    }
    Framer framer(profile);
    std::vector<slmd::at::Event> events;
    framer.data_mode_requested();
    framer.feed("\r\nOK\r\n", events);
    events.clear();
    for (auto _ : state) {
        for (std::size_t off = 0; off < stream.size(); off += 256) {
            framer.feed(std::string_view(stream).substr(off, 256), events);
            events.clear();
        }
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * stream.size()));
}
BENCHMARK(BM_FramerDataMode);

}  // namespace

BENCHMARK_MAIN();
