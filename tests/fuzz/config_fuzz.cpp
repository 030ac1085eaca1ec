// Owns: the libFuzzer target for slmd's configuration reader (daemon/config/config.*): a file's text goes
// through parse_config_text (program_options' parser plus our line scan) and validate, as `slmd --config
// FILE` does. It checks invariants, not just "no crash":
//   1. nothing throws: a bad file must become error messages, never an exception out of the reader;
//   2. the line scan and program_options agree: every entry read from an accepted file carries a line number
//      within the file, and that line assigns that key (an operator's error message points at the right
//      line);
//   3. every problem names the file: each message starts with the file's path, so the operator can find it
//      (except "no device", which belongs to no line);
//   4. a rejected file leaves no entries; reading the same text twice gives the same entries and messages.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "config/config.hpp"

using namespace slmd::config;

#define FUZZ_CHECK(cond)                                                               \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            std::fprintf(stderr, "invariant failed: %s (line %d)\n", #cond, __LINE__); \
            std::abort();                                                              \
        }                                                                              \
    } while (false)

namespace {

const std::string origin = "/etc/slmd/slmd.conf";

struct Outcome {
    RawConfig raw;
    std::vector<std::string> read_errors;
    std::vector<std::string> problems;
};

Outcome read(const std::string& text) {
    Outcome out;
    static const auto description = option_description();
    out.raw = parse_config_text(text, origin, description, out.read_errors);
    if (out.read_errors.empty()) {
        Settings settings;
        out.problems = validate(out.raw, settings);
    }
    return out;
}

bool same(const RawConfig& a, const RawConfig& b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (a[i].key != b[i].key || a[i].value != b[i].value || a[i].line != b[i].line) return false;
    }
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    const Outcome first = read(text);

    if (!first.read_errors.empty()) FUZZ_CHECK(first.raw.empty());
    for (const auto& message : first.read_errors) FUZZ_CHECK(message.rfind(origin, 0) == 0);
    // The one problem that belongs to no line: the file never names the device.
    for (const auto& message : first.problems) {
        FUZZ_CHECK(message.rfind(origin, 0) == 0 || message.rfind("no device:", 0) == 0);
    }

    if (first.read_errors.empty()) {
        const Scan scan = scan_config_text(text, origin);
        FUZZ_CHECK(scan.errors.empty());
        std::size_t lines = 1;
        for (char c : text) lines += c == '\n';
        for (const auto& entry : first.raw) {
            FUZZ_CHECK(entry.origin == origin);
            FUZZ_CHECK(entry.line >= 1 && entry.line <= lines);
            bool assigned_there = false;
            for (const auto& assignment : scan.assignments) {
                assigned_there |= assignment.line == entry.line && assignment.key == entry.key;
            }
            FUZZ_CHECK(assigned_there);
        }
    }

    const Outcome second = read(text);
    FUZZ_CHECK(same(first.raw, second.raw));
    FUZZ_CHECK(first.read_errors == second.read_errors);
    FUZZ_CHECK(first.problems == second.problems);
    return 0;
}
