// Owns: the byte-level framing of the SLM UART (see docs/at-framer.md for the event model and every
// ambiguity). Pure: every decision is a function of the bytes received so far, the caller's notifications and
// idle() calls, never of how the bytes were split into feed() calls; that is what the split-invariance tests
// and the fuzzer hold the code to.
#include "at/framer.hpp"

#include <algorithm>
#include <limits>
#include <utility>

namespace slmd::at {
namespace {

constexpr std::string_view crlf = "\r\n";
constexpr std::string_view ready_line = "Ready";
// A line may be this long including its CRLF; a longer one is noise and gets discarded.
constexpr std::size_t line_limit = Framer::max_line_length + 2;
// match_data_pattern(): the pattern may still match once more bytes arrive.
constexpr std::size_t partial_match = std::numeric_limits<std::size_t>::max();

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

// Strict decimal as the firmware prints it with %d: "0" or [1-9][0-9]*, at most 10 digits, value <= max.
std::optional<std::uint64_t> parse_unsigned(std::string_view s, std::uint64_t max) {
    if (s.empty() || s.size() > 10) return std::nullopt;
    if (s.front() == '0' && s.size() > 1) return std::nullopt;
    std::uint64_t value = 0;
    for (char c : s) {
        if (!is_digit(c)) return std::nullopt;
        value = value * 10 + static_cast<std::uint64_t>(c - '0');
    }
    if (value > max) return std::nullopt;
    return value;
}

std::optional<int> parse_signed(std::string_view s) {
    const bool negative = !s.empty() && s.front() == '-';
    if (negative) s.remove_prefix(1);
    constexpr auto int_max = static_cast<std::uint64_t>(std::numeric_limits<int>::max());
    auto magnitude = parse_unsigned(s, negative ? int_max + 1 : int_max);
    if (!magnitude || (negative && *magnitude == 0)) return std::nullopt;
    const auto wide = static_cast<std::int64_t>(*magnitude);
    return static_cast<int>(negative ? -wide : wide);
}

std::optional<FinalResult> parse_final(std::string_view text) {
    if (text == "OK") return FinalResult{FinalKind::ok, 0};
    if (text == "ERROR") return FinalResult{FinalKind::error, 0};
    for (auto [prefix, kind] : {std::pair{std::string_view("+CME ERROR:"), FinalKind::cme_error},
                                std::pair{std::string_view("+CMS ERROR:"), FinalKind::cms_error}}) {
        if (!text.starts_with(prefix)) continue;
        std::string_view rest = text.substr(prefix.size());
        if (rest.starts_with(' ')) rest.remove_prefix(1);
        // A final result with an unreadable code still ends the command; -1 says "code unknown".
        auto code = parse_unsigned(rest, static_cast<std::uint64_t>(std::numeric_limits<int>::max()));
        return FinalResult{kind, code ? static_cast<int>(*code) : -1};
    }
    return std::nullopt;
}

struct DataHeader {
    Proxy proxy = Proxy::tcp;
    std::size_t size = 0;
    std::optional<std::string> address;
    std::optional<std::uint16_t> port;
    std::optional<int> handle{};
};

// Serial Modem: "#XRECV: <h>,<mode>,<n>" or "#XRECVFROM: <h>,<mode>,<n>,\"<ip>\",<port>", the header of an
// AT#XRECV answer and of automatic reception alike. Only binary mode (0) is counted in bytes; slmd never asks
// for hex (mode 1, twice the characters).
std::optional<DataHeader> parse_sm_recv_header(std::string_view text) {
    const bool from = text.starts_with("#XRECVFROM: ");
    if (!from && !text.starts_with("#XRECV: ")) return std::nullopt;
    std::string_view rest = text.substr(from ? 12 : 8);
    std::optional<std::uint64_t> fields[3];
    for (int i = 0; i < 3; ++i) {
        const std::size_t comma = rest.find(',');
        const bool last = i == 2 && !from;
        if (last != (comma == std::string_view::npos)) return std::nullopt;
        fields[i] = parse_unsigned(rest.substr(0, comma), i == 2 ? (1u << 20) : 0x7fffffffu);
        if (!fields[i]) return std::nullopt;
        rest = last ? std::string_view{} : rest.substr(comma + 1);
    }
    if (*fields[1] != 0) return std::nullopt;
    DataHeader header;
    header.proxy = Proxy::socket;
    header.handle = static_cast<int>(*fields[0]);
    header.size = static_cast<std::size_t>(*fields[2]);
    if (!from) return header;
    if (!rest.starts_with('"')) return std::nullopt;
    const std::size_t close = rest.find('"', 1);
    if (close == std::string_view::npos) return std::nullopt;
    std::string_view tail = rest.substr(close + 1);
    if (!tail.starts_with(',')) return std::nullopt;
    auto port = parse_unsigned(tail.substr(1), 65535);
    if (!port) return std::nullopt;
    header.address = std::string(rest.substr(1, close - 1));
    header.port = static_cast<std::uint16_t>(*port);
    return header;
}

// "#XTCPDATA: <n>", "#XUDPDATA: <n>" or "#XUDPDATA: <n>,\"<ip>\",<port>". Both UDP shapes are accepted on
// every profile: the shapes cannot be confused, and development builds (2.7.99-cs1) sit between the releases.
std::optional<DataHeader> parse_data_header(std::string_view text) {
    DataHeader header;
    if (text.starts_with("#XTCPDATA: ")) {
        header.proxy = Proxy::tcp;
    } else if (text.starts_with("#XUDPDATA: ")) {
        header.proxy = Proxy::udp;
    } else {
        return std::nullopt;
    }
    std::string_view rest = text.substr(11);
    const std::size_t comma = rest.find(',');
    constexpr std::uint64_t size_max = 1u
                                       << 20;  // far above any chunk; the caller applies the profile's limit
    auto size = parse_unsigned(rest.substr(0, comma), size_max);
    if (!size) return std::nullopt;
    header.size = static_cast<std::size_t>(*size);
    if (comma == std::string_view::npos) return header;
    if (header.proxy != Proxy::udp) return std::nullopt;
    std::string_view peer = rest.substr(comma + 1);
    if (!peer.starts_with('"')) return std::nullopt;
    const std::size_t close = peer.find('"', 1);
    if (close == std::string_view::npos) return std::nullopt;
    std::string_view tail = peer.substr(close + 1);
    if (!tail.starts_with(',')) return std::nullopt;
    auto port = parse_unsigned(tail.substr(1), 65535);
    if (!port) return std::nullopt;
    header.address = std::string(peer.substr(1, close - 1));
    header.port = static_cast<std::uint16_t>(*port);
    return header;
}

// The header of a generic socket's answer: "#XRECV: <n>", or "#XRECVFROM: <n>,\"<ip>\"" (v2.0-v2.4) and
// "#XRECVFROM: <n>,\"<ip>\",<port>" (v2.5+). `prefix` is the pending command's ("#XRECV" or "#XRECVFROM").
std::optional<DataHeader> parse_recv_header(std::string_view text, std::string_view prefix) {
    if (!text.starts_with(prefix) || text.substr(prefix.size()).substr(0, 2) != ": ") return std::nullopt;
    std::string_view rest = text.substr(prefix.size() + 2);
    const std::size_t comma = rest.find(',');
    auto size = parse_unsigned(rest.substr(0, comma), 1u << 20);
    if (!size) return std::nullopt;
    DataHeader header;
    header.proxy = Proxy::socket;
    header.size = static_cast<std::size_t>(*size);
    if (prefix == "#XRECV") return comma == std::string_view::npos ? std::optional(header) : std::nullopt;
    if (comma == std::string_view::npos) return std::nullopt;
    std::string_view peer = rest.substr(comma + 1);
    if (!peer.starts_with('"')) return std::nullopt;
    const std::size_t close = peer.find('"', 1);
    if (close == std::string_view::npos) return std::nullopt;
    header.address = std::string(peer.substr(1, close - 1));
    std::string_view tail = peer.substr(close + 1);
    if (tail.empty()) return header;
    if (!tail.starts_with(',')) return std::nullopt;
    auto port = parse_unsigned(tail.substr(1), 65535);
    if (!port) return std::nullopt;
    header.port = static_cast<std::uint16_t>(*port);
    return header;
}

#define SLMD_MATCH_QUOTE_STEP(expr)                         \
    do {                                                    \
        const Match step_result = (expr);                   \
        if (step_result != Match::full) return step_result; \
    } while (false)

// Incremental matcher for the data-mode patterns: it must tell "cannot match" from "might match once more
// bytes arrive", because a pattern split across reads has to be held back rather than released as data.
enum class Match { no, partial, full };

struct Matcher {
    std::string_view s;
    std::size_t i = 0;

    Match literal(std::string_view l) {
        const std::size_t k = std::min(l.size(), s.size() - i);
        if (s.substr(i, k) != l.substr(0, k)) return Match::no;
        if (k < l.size()) return Match::partial;
        i += k;
        return Match::full;
    }

    // A quoted numeric IPv4/IPv6 address: '"', 1-45 address characters, '"'.
    Match quoted_address() {
        SLMD_MATCH_QUOTE_STEP(literal("\""));
        std::size_t j = i;
        while (j < s.size() && j - i < 46 &&
               (is_digit(s[j]) || s[j] == '.' || s[j] == ':' || (s[j] >= 'a' && s[j] <= 'f') ||
                (s[j] >= 'A' && s[j] <= 'F')))
            ++j;
        if (j == s.size()) return Match::partial;
        if (j == i || j - i > 45 || s[j] != '"') return Match::no;
        i = j + 1;
        return Match::full;
    }

    Match integer(int& value) {
        std::size_t j = i;
        if (j < s.size() && s[j] == '-') ++j;
        const std::size_t digits = j;
        while (j < s.size() && is_digit(s[j]) && j - digits <= 10) ++j;
        if (j - digits > 10) return Match::no;
        if (j - digits >= 2 && s[digits] == '0') return Match::no;
        if (j == s.size()) return Match::partial;
        auto parsed = parse_signed(s.substr(i, j - i));
        if (!parsed) return Match::no;
        value = *parsed;
        i = j;
        return Match::full;
    }
};

#define SLMD_MATCH_STEP(expr)                               \
    do {                                                    \
        const Match step_result = (expr);                   \
        if (step_result != Match::full) return step_result; \
    } while (false)

// "\r\n<head><int>\r\n", e.g. "\r\n#XDATAMODE: -104\r\n".
Match match_status_line(Matcher& m, std::string_view head, int& value) {
    SLMD_MATCH_STEP(m.literal(crlf));
    SLMD_MATCH_STEP(m.literal(head));
    SLMD_MATCH_STEP(m.integer(value));
    SLMD_MATCH_STEP(m.literal(crlf));
    return Match::full;
}

// "\r\n<head><int>,\"<word>\"\r\n", e.g. "\r\n#XTCPCLI: -104,\"disconnected\"\r\n".
Match match_loss_line(Matcher& m, std::string_view head, std::string_view word) {
    int ignored = 0;
    SLMD_MATCH_STEP(m.literal(crlf));
    SLMD_MATCH_STEP(m.literal(head));
    SLMD_MATCH_STEP(m.integer(ignored));
    SLMD_MATCH_STEP(m.literal(",\""));
    SLMD_MATCH_STEP(m.literal(word));
    SLMD_MATCH_STEP(m.literal("\"\r\n"));
    return Match::full;
}

// "\r\n#XTCPSVR: \"<ip>\",\"connected\"\r\n": a server's next peer. It can only arrive after the previous
// peer left, i.e. while the link waits in null mode for our "+++", and the firmware prints it into the
// stream.
Match match_server_peer_line(Matcher& m) {
    SLMD_MATCH_STEP(m.literal(crlf));
    SLMD_MATCH_STEP(m.literal("#XTCPSVR: "));
    SLMD_MATCH_STEP(m.quoted_address());
    SLMD_MATCH_STEP(m.literal(",\"connected\"\r\n"));
    return Match::full;
}

#undef SLMD_MATCH_STEP
#undef SLMD_MATCH_QUOTE_STEP

bool is_noise_byte(char c) {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u >= 0x7f;
}

// "Ready", or "Ready" after power-on glitch bytes (NUL, 0xFF, ...) that no firmware line ever contains.
bool is_ready_with_noise(std::string_view text) {
    if (!text.ends_with(ready_line)) return false;
    std::string_view prefix = text.substr(0, text.size() - ready_line.size());
    return std::all_of(prefix.begin(), prefix.end(), is_noise_byte);
}

enum class BannerMatch { none, partial, whole };

// Raw data-mode bytes that came after a quiet line: are they (so far) a rebooted modem's banner, "Ready\r\n"
// behind at most 16 power-on noise bytes, and nothing after it?
BannerMatch banner_at_front(std::string_view s) {
    constexpr std::string_view banner = "Ready\r\n";
    constexpr std::size_t max_noise = 16;
    const std::size_t noise = std::find_if_not(s.begin(), s.end(), is_noise_byte) - s.begin();
    if (noise > max_noise) return BannerMatch::none;
    const std::string_view text = s.substr(noise);
    if (text == banner) return BannerMatch::whole;
    return banner.starts_with(text) ? BannerMatch::partial : BannerMatch::none;
}

}  // namespace

Framer::Framer(FirmwareProfile profile) : profile_(std::move(profile)) {}

void Framer::set_profile(const FirmwareProfile& profile) {
    flush_lookback(deferred_);
    profile_ = profile;
}

void Framer::command_sent(std::string_view response_prefix, bool take_unprefixed_lines) {
    // Lines that came before the command must not be taken for its answer. They stay held all the same: on a
    // data-first release they may be the start of a payload whose header is still on its way, and releasing
    // them now would lose that payload (seen as whole #XTCPDATA chunks missing when a command went out in the
    // middle of a download).
    for (auto& line : held_lines_) line.before_command = true;
    command_pending_ = true;
    response_prefix_ = std::string(response_prefix);
    take_unprefixed_lines_ = take_unprefixed_lines;
    scan_hint_ = 0;
}

void Framer::data_mode_requested() {
    flush_lookback(deferred_);
    response_prefix_.clear();
    take_unprefixed_lines_ = false;
    exit_requested_ = false;
    entry_ok_outstanding_ = false;
    terminator_reported_ = false;
    scan_hint_ = 0;
    if (profile_.ok_on_data_mode_entry) {
        mode_ = LinkMode::entering_data_mode;
        command_pending_ = true;
    } else {
        // Before v2.1 the firmware answers nothing: the link is in data mode as soon as the command is out.
        mode_ = LinkMode::data;
        command_pending_ = false;
        quiet_before_raw_ = false;
        banner_reported_ = false;
    }
}

void Framer::data_mode_exit_requested() {
    flush_lookback(deferred_);
    if (mode_ == LinkMode::data) {
        mode_ = LinkMode::leaving_data_mode;
    } else if (mode_ == LinkMode::entering_data_mode) {
        exit_requested_ = true;  // applies once the entry OK (or the first raw byte) arrives
    }
}

void Framer::reset() {
    mode_ = LinkMode::command;
    command_pending_ = false;
    response_prefix_.clear();
    take_unprefixed_lines_ = false;
    buffer_.clear();
    payload_remaining_ = 0;
    payload_ = {};
    silence_at_.reset();
    stale_line_bytes_ = 0;
    unchecked_payload_.reset();
    in_payload_ = false;
    payload_start_ = false;
    prev_ = Prev::stream_start;
    skipping_ = false;
    scan_hint_ = 0;
    exit_requested_ = false;
    entry_ok_outstanding_ = false;
    terminator_reported_ = false;
    quiet_before_raw_ = false;
    banner_reported_ = false;
    lookback_.clear();
    held_lines_.clear();
    deferred_.clear();
}

std::size_t Framer::buffered_bytes() const {
    return buffer_.size() + lookback_.size() + payload_.bytes.size();
}

void Framer::feed(std::string_view bytes, std::vector<Event>& out) {
    buffer_.append(bytes);
    process(out, false);
}

void Framer::idle(std::vector<Event>& out) {
    process(out, true);
    // Whatever comes next in data mode comes after a quiet line, as a rebooted modem's banner does.
    if (buffer_.empty() && (mode_ == LinkMode::data || mode_ == LinkMode::leaving_data_mode))
        quiet_before_raw_ = true;
}

void Framer::process(std::vector<Event>& out, bool idle) {
    if (!deferred_.empty()) {
        std::move(deferred_.begin(), deferred_.end(), std::back_inserter(out));
        deferred_.clear();
    }
    // A data-first payload and its header are written back to back; after a quiet line nothing can claim
    // the held lines any more.
    if (idle) flush_lookback(out);
    std::size_t cur = 0;
    // A complete payload still waiting for its CRLF check runs even with nothing buffered (idle, confirm).
    while (cur < buffer_.size() || (in_payload_ && payload_remaining_ == 0)) {
        if (unchecked_payload_ && cur < buffer_.size()) {
            // The payload delivered on a quiet line was followed by something that is no message: bytes went
            // missing inside it after all. It cannot be taken back; its connection must end in an error.
            if (buffer_[cur] != '\r' || (cur + 1 < buffer_.size() && buffer_[cur + 1] != '\n')) {
                out.emplace_back(PayloadLost{*unchecked_payload_, 0, 0, unchecked_handle_});
                unchecked_payload_.reset();
            } else if (cur + 1 < buffer_.size()) {
                unchecked_payload_.reset();
            }
        }
        bool more = false;
        if (in_payload_) {
            scan_hint_ = 0;
            more = step_payload(cur, out, idle);
        } else if (mode_ == LinkMode::data || mode_ == LinkMode::leaving_data_mode) {
            scan_hint_ = 0;
            more = step_data(cur, out, idle);
        } else if (skipping_) {
            scan_hint_ = 0;
            more = step_skip(cur, out, idle);
        } else {
            more = step_line(cur, out, idle);
        }
        if (!more) break;
    }
    buffer_.erase(0, cur);
}

bool Framer::step_payload(std::size_t& cur, std::vector<Event>& out, bool idle) {
    while (payload_start_) {
        std::size_t length = 0;
        const auto verdict =
            interleaved_notification(std::string_view(buffer_).substr(cur), idle, length, out);
        if (verdict == Interleaved::undecided) return false;  // wait for the bytes that decide it
        if (verdict == Interleaved::none) {
            payload_start_ = false;
            break;
        }
        cur += length;
    }
    const std::size_t take = std::min(payload_remaining_, buffer_.size() - cur);
    payload_.bytes.append(buffer_, cur, take);
    cur += take;
    payload_remaining_ -= take;
    if (silence_at_ && payload_.bytes.size() > *silence_at_) {
        // Bytes after a silence in the middle of a payload: the firmware writes a payload in one go, so a
        // banner here is a reboot that cut the payload short (its "Ready" would otherwise be counted as
        // payload). The banner is "Ready\r\n", possibly behind power-on noise (control bytes, CRLF, 0xFF).
        constexpr std::string_view banner = "Ready\r\n";
        const std::string_view resumed = std::string_view(payload_.bytes).substr(*silence_at_);
        const std::size_t noise =
            std::find_if_not(resumed.begin(), resumed.end(), is_noise_byte) - resumed.begin();
        const std::string_view text = resumed.substr(noise);
        if (!banner.starts_with(text.substr(0, banner.size()))) {
            silence_at_.reset();  // ordinary bytes after a pause
        } else if (text.size() >= ready_line.size() || payload_remaining_ == 0) {
            std::string rebooted(resumed);
            const std::size_t before = *silence_at_;
            out.emplace_back(
                PayloadLost{payload_.proxy, payload_.bytes.size() + payload_remaining_, before, payload_.handle});
            discard(std::string_view(payload_.bytes).substr(0, before), out);
            payload_ = {};
            payload_remaining_ = 0;
            in_payload_ = false;
            payload_start_ = false;
            silence_at_.reset();
            prev_ = Prev::payload_end;  // the banner's CRLF starts a message
            buffer_.insert(cur, rebooted);
            return true;
        }
    }
    if (payload_remaining_ != 0) return false;
    if (mode_ == LinkMode::command && !payload_confirmed_) {
        // The firmware starts every message after a payload with CRLF. Anything else right after the counted
        // bytes means bytes went missing inside the payload and the count ran on into the next message: the
        // payload holds foreign bytes and must not be delivered. Until the CRLF is here, or the caller says
        // nothing more is coming (confirm_payload(), idle()), the payload waits.
        const std::size_t after = buffer_.size() - cur;
        const bool crlf_so_far =
            after == 0 || (buffer_[cur] == '\r' && (after == 1 || buffer_[cur + 1] == '\n'));
        if (!crlf_so_far) {
            out.emplace_back(
                PayloadLost{payload_.proxy, payload_.bytes.size(), payload_.bytes.size(), payload_.handle});
            discard(payload_.bytes, out);
            payload_ = {};
            in_payload_ = false;
            payload_start_ = false;
            prev_ = Prev::skipped;  // what follows is the middle of a message: read on from its line end
            skipping_ = true;
            return true;
        }
        if (after < 2 && !idle) return false;
    }
    // Delivered before its CRLF was seen (the line was quiet): the bytes that come next still get the check.
    const bool crlf_seen = buffer_.size() - cur >= 2;
    unchecked_payload_ =
        !crlf_seen && mode_ == LinkMode::command ? std::optional(payload_.proxy) : std::nullopt;
    unchecked_handle_ = payload_.handle;
    out.emplace_back(std::move(payload_));
    payload_ = {};
    in_payload_ = false;
    payload_start_ = false;
    prev_ = Prev::payload_end;
    return true;
}

Framer::Interleaved Framer::damaged_header(std::string_view s, bool idle, std::size_t& length) const {
    // The header's tail from "DATA: " on must be there to tell it from data: shorter tails (": 12") are too
    // common in a byte stream. Losses that leave less fall to the rule they came to (docs/at-framer.md).
    static constexpr std::string_view heads[] = {"\r\n#XTCPDATA: ", "\r\n#XUDPDATA: "};
    constexpr std::size_t kept_at_least = std::string_view("DATA: ").size();
    constexpr std::size_t header_line_max = 64;
    const auto undecided_or_none = idle ? Interleaved::none : Interleaved::undecided;
    bool undecided = false;
    for (std::string_view head : heads) {
        for (std::size_t lost = 1; lost + kept_at_least <= head.size(); ++lost) {
            const std::string_view tail = head.substr(lost);
            if (s.size() < tail.size()) {
                undecided |= tail.starts_with(s);
                continue;
            }
            if (!s.starts_with(tail)) continue;
            if (s.size() == tail.size()) return undecided_or_none;
            if (s[tail.size()] < '0' || s[tail.size()] > '9') continue;
            const std::size_t end = s.substr(0, header_line_max).find(crlf, tail.size());
            if (end == std::string_view::npos) {
                if (s.size() < header_line_max) return undecided_or_none;
                continue;
            }
            length = end + 2;
            return Interleaved::taken;
        }
    }
    return undecided ? undecided_or_none : Interleaved::none;
}

Framer::Interleaved Framer::interleaved_notification(std::string_view s, bool idle, std::size_t& length,
                                                     std::vector<Event>& out) const {
    // Only what the proxy threads write can come between a header and its payload (modem URCs come out
    // between commands). A payload that itself starts with one of these complete notifications would be taken
    // for it: binary data does not, and a text payload would have to carry a whole, well-formed SLM line.
    // SLM v3.1's poll thread writes its #XAPOLL reports the same way.
    static constexpr std::string_view heads[] = {"\r\n#XUDPDATA: ", "\r\n#XTCPDATA: ", "\r\n#XTCPCLI: ",
                                                 "\r\n#XUDPCLI: ",  "\r\n#XTCPSVR: ",  "\r\n#XUDPSVR: ",
                                                 "\r\n#XAPOLL: "};
    const auto undecided_or_none = idle ? Interleaved::none : Interleaved::undecided;
    bool head_found = false;
    for (std::string_view head : heads) {
        if (s.size() < head.size() && head.starts_with(s)) return undecided_or_none;
        head_found |= s.starts_with(head);
    }
    if (!head_found) return Interleaved::none;
    const std::size_t end = s.find(crlf, 2);
    if (end == std::string_view::npos) return s.size() < line_limit ? undecided_or_none : Interleaved::none;
    const std::string_view text = s.substr(2, end - 2);
    if (auto header = parse_data_header(text)) {
        // Another proxy's data notification, whole (its header and its payload are each one write).
        if (header->proxy == payload_.proxy || header->size > profile_.receive_chunk_max)
            return Interleaved::none;
        if (s.size() < end + 2 + header->size) return undecided_or_none;
        out.emplace_back(ProxyData{header->proxy, std::string(s.substr(end + 2, header->size)),
                                   std::move(header->address), header->port});
        length = end + 2 + header->size;
        return Interleaved::taken;
    }
    if (text.ends_with("\"disconnected\"") || text.ends_with("\"stopped\"") ||
        text.ends_with("\"connected\"") || text.starts_with("#XAPOLL: ")) {
        out.emplace_back(Urc{std::string(text)});
        length = end + 2;
        return Interleaved::taken;
    }
    return Interleaved::none;
}

bool Framer::step_skip(std::size_t& cur, std::vector<Event>& out, bool /*idle*/) {
    std::string_view b(buffer_);
    const std::size_t p = b.find(crlf, cur);
    if (p != std::string_view::npos) {
        discard(b.substr(cur, p + 2 - cur), out);
        cur = p + 2;
        skipping_ = false;
        prev_ = Prev::resynced;
        return true;
    }
    // Keep a trailing CR: it may be the first half of the CRLF that ends the junk.
    std::size_t end = b.size();
    if (b.back() == '\r') --end;
    if (end > cur) discard(b.substr(cur, end - cur), out);
    cur = end;
    return false;
}

bool Framer::step_line(std::size_t& cur, std::vector<Event>& out, bool idle) {
    std::string_view b(buffer_);
    const std::size_t avail = b.size() - cur;
    if (mode_ == LinkMode::entering_data_mode && message_start() && b[cur] != '\r') {
        // A header that lost its leading bytes on the line would pass for early downlink below, and every byte
        // after it (later headers included) would go to the app as data. It is a loss: its payload is not
        // announced, and what follows is read as lines (no message start), so the connection ends in an error.
        std::size_t length = 0;
        switch (damaged_header(b.substr(cur), idle, length)) {
            case Interleaved::undecided: return false;
            case Interleaved::taken: {
                const std::string line(b.substr(cur, length));
                cur += length;
                discard(line, out);
                out.emplace_back(PayloadLost{Proxy::tcp, 0, line.size()});
                prev_ = Prev::resynced;
                return true;
            }
            case Interleaved::none: break;
        }
        // Every firmware message starts with CRLF (only "Ready" does not), so anything else here is downlink
        // data that the firmware wrote after switching to data mode but before its OK (reference section 4,
        // race).
        std::string_view head = b.substr(cur, 7);
        const bool could_be_ready = std::string_view("Ready\r\n").starts_with(head);
        if (could_be_ready && head.size() < 7 && !idle) return false;
        if (!could_be_ready || head.size() < 7) {
            entry_ok_outstanding_ = command_pending_;
            enter_data_mode();
            return true;
        }
    }
    const std::size_t window = std::min(avail, line_limit);
    const std::size_t from = cur + std::min(scan_hint_, window);
    const std::size_t p = b.substr(0, cur + window).find(crlf, from);
    if (p != std::string_view::npos) {
        scan_hint_ = 0;
        std::string_view text = b.substr(cur, p - cur);
        cur = p + 2;
        const std::size_t stale = std::exchange(stale_line_bytes_, 0);
        if (stale > 0 && stale <= text.size() && is_ready_with_noise(text.substr(stale))) {
            // The line was cut by a silence and what came after it is a boot banner: the modem rebooted in
            // the middle of writing (on data-first releases, in the middle of a payload whose header never
            // came). The cut bytes are no message; what was held before them goes out first, in order.
            flush_lookback(out);
            discard(text.substr(0, text.size() - ready_line.size()), out);
            prev_ = Prev::text_line;
            on_ready(out);
            return true;
        }
        handle_line(text, out);
        return true;
    }
    if (avail >= line_limit) {
        // Too long for any firmware line: noise. Drop it up to the next CRLF; what follows is a fresh line.
        flush_lookback(out);
        scan_hint_ = 0;
        skipping_ = true;
        prev_ = Prev::skipped;
        return true;
    }
    scan_hint_ = avail - 1;  // a trailing CR may still pair with the next LF
    return false;
}

bool Framer::message_start() const {
    return prev_ == Prev::stream_start || prev_ == Prev::text_line || prev_ == Prev::payload_end;
}

bool Framer::lookback_active() const {
    return profile_.receive_order == ReceiveOrder::data_first && mode_ == LinkMode::command;
}

void Framer::handle_line(std::string_view text, std::vector<Event>& out) {
    const bool fragment = prev_ == Prev::stream_start || prev_ == Prev::payload_end || prev_ == Prev::skipped;
    prev_ = text.empty() ? Prev::empty_line : Prev::text_line;
    if (recv_answer_header(text, fragment, out)) return;
    if (!lookback_active()) {
        // Header-first, every line is final when read: one that no header claimed is checked as one.
        const std::size_t before = out.size();
        classify(text, fragment, out, false, profile_.receive_order == ReceiveOrder::header_first);
        // A payload read as a line ran into the next message's leading CRLF: what follows is that message's
        // text, no message start (the data-mode race rule must not fire on it).
        if (out.size() > before && std::holds_alternative<PayloadLost>(out.back())) prev_ = Prev::resynced;
        return;
    }
    if (!fragment) {
        if (auto header = parse_data_header(text); header && header->size <= profile_.receive_chunk_max) {
            data_first_payload(header->proxy, header->size, std::move(header->address), header->port, out);
            return;
        }
    }
    lookback_.append(text);
    lookback_.append(crlf);
    held_lines_.push_back(HeldLine{text.size() + 2, fragment});
    release_lookback(out, false);
}

bool Framer::recv_answer_header(std::string_view text, bool fragment, std::vector<Event>& out) {
    // Serial Modem's headers name their socket and are read as notifications (classify), answer or not.
    if (!command_pending_ || fragment || profile_.serial_modem() ||
        (response_prefix_ != "#XRECV" && response_prefix_ != "#XRECVFROM")) {
        return false;
    }
    auto header = parse_recv_header(text, response_prefix_);
    if (!header || header->size > profile_.receive_chunk_max) return false;
    // Lines before it are final: no data-first header can claim bytes across a command's answer.
    flush_lookback(out);
    out.emplace_back(InfoLine{std::string(text)});
    start_payload(ProxyData{Proxy::socket, {}, std::move(header->address), header->port}, header->size, out);
    return true;
}

void Framer::start_payload(ProxyData header, std::size_t size, std::vector<Event>& out) {
    payload_ = std::move(header);
    if (size == 0) {
        out.emplace_back(std::move(payload_));
        payload_ = {};
        prev_ = Prev::payload_end;
        return;
    }
    in_payload_ = true;
    silence_at_.reset();
    payload_start_ = true;
    payload_remaining_ = size;
}

void Framer::release_lookback(std::vector<Event>& out, bool all) {
    // A future header claims at most receive_chunk_max bytes before its leading CRLF, and that CRLF is at the
    // earliest the last one held; a line wholly before that reach is final.
    while (!held_lines_.empty()) {
        const HeldLine front = held_lines_.front();
        if (!all && front.length + profile_.receive_chunk_max + 2 > lookback_.size()) break;
        std::string text = lookback_.substr(0, front.length - 2);
        held_lines_.pop_front();
        lookback_.erase(0, front.length);
        classify(text, front.fragment, out, front.before_command, true);
    }
}

void Framer::flush_lookback(std::vector<Event>& out) {
    release_lookback(out, true);
}

void Framer::data_first_payload(Proxy proxy, std::size_t n, std::optional<std::string> address,
                                std::optional<std::uint16_t> port,
                                std::vector<Event>& out) {
    ProxyData data;
    data.proxy = proxy;
    data.peer_address = std::move(address);
    data.peer_port = port;
    if (n == 0) {
        // Nothing claimed: the header's leading CRLF ends the last held line, which stays a line.
        flush_lookback(out);
        out.emplace_back(std::move(data));
        return;
    }
    auto payload_lost = [&](std::size_t received) {
        // Never delivered: which of these bytes are the peer's cannot be told. The connection must end in an
        // error, not a stream with a hole in it.
        std::string lost = std::move(lookback_);
        lookback_.clear();
        held_lines_.clear();
        discard(lost, out);
        out.emplace_back(PayloadLost{proxy, n, received});
    };
    if (lookback_.size() < n + 2) {
        // Fewer bytes than the count came since the last message (bytes lost on the line), or part of the
        // payload was already released as lines (a silence inside it): it cannot be rebuilt.
        payload_lost(lookback_.size() >= 2 ? lookback_.size() - 2 : 0);
        return;
    }
    std::size_t start = lookback_.size() - 2 - n;
    while (!held_lines_.empty() && held_lines_.front().length <= start) {
        const HeldLine front = held_lines_.front();
        std::string text = lookback_.substr(0, front.length - 2);
        held_lines_.pop_front();
        lookback_.erase(0, front.length);
        start -= front.length;
        classify(text, front.fragment, out, front.before_command, true);
    }
    if (start > 0) {
        // The payload follows a complete message (its CRLF) or the previous header: a start inside a line
        // means the count reaches back into that message, so bytes of the payload went missing on the line
        // (or foreign bytes came in).
        payload_lost(lookback_.size() - 2);
        return;
    }
    data.bytes = lookback_.substr(start, n);
    lookback_.clear();
    held_lines_.clear();
    out.emplace_back(std::move(data));
}

void Framer::classify(std::string_view text, bool fragment, std::vector<Event>& out, bool before_command,
                      bool unclaimed) {
    if (text.empty()) return;  // framing
    // A line no header claimed, as the URC it would otherwise be. Every unsolicited firmware line is "+…",
    // "#…" or "%…" (or a final, or the banner): anything else is payload whose header was lost on the line
    // (data-first: the payload came before it; header-first: the payload was read as lines). Its stream has a
    // hole, so whoever it was for must hear of it; which proxy cannot be told.
    auto urc = [&] {
        if (unclaimed && !text.empty() && text.front() != '+' && text.front() != '#' && text.front() != '%' &&
            !parse_final(text)) {
            std::string bytes(text);
            bytes.append(crlf);
            discard(bytes, out);
            out.emplace_back(PayloadLost{Proxy::tcp, 0, bytes.size()});
            return;
        }
        out.emplace_back(Urc{std::string(text)});
    };
    if (fragment) {
        // The line did not start after a CRLF (stream start, after a payload or over-long junk): it is the
        // tail of something we did not see whole. A reset banner behind noise is still a reset.
        if (text.ends_with(ready_line)) {
            discard(text.substr(0, text.size() - ready_line.size()), out);
            on_ready(out);
            return;
        }
        std::string bytes(text);
        bytes.append(crlf);
        discard(bytes, out);
        return;
    }
    if (is_ready_with_noise(text) ||
        (profile_.receive_order == ReceiveOrder::data_first && text.ends_with(ready_line))) {
        // The boot banner behind power-on noise. On data-first releases also behind any bytes: no firmware
        // line but the banner ends in "Ready", and the bytes before it on the line are the tail of a
        // payload the reboot cut short (its header never came). Read this way even when slmd did not see
        // the reboot's silence (it had paused reading the line). Header-first lines are never payload, so
        // there such a line stays text.
        discard(text.substr(0, text.size() - ready_line.size()), out);
        on_ready(out);
        return;
    }
    if (before_command) {
        // Unsolicited by construction: the command now pending was sent after this line arrived.
        urc();
        return;
    }
    if (command_pending_) {
        if (auto final = parse_final(text)) {
            command_pending_ = false;
            response_prefix_.clear();
            take_unprefixed_lines_ = false;
            out.emplace_back(*final);
            if (mode_ == LinkMode::entering_data_mode) {
                if (final->kind == FinalKind::ok) {
                    enter_data_mode();
                } else {
                    mode_ = LinkMode::command;
                    exit_requested_ = false;
                }
            }
            return;
        }
    }
    if (profile_.receive_order == ReceiveOrder::header_first) {
        auto header = profile_.serial_modem() ? parse_sm_recv_header(text) : parse_data_header(text);
        if (header && header->size <= profile_.receive_chunk_max) {
            start_payload(ProxyData{header->proxy, {}, std::move(header->address), header->port, header->handle},
                          header->size, out);
            return;
        }
    }
    if (command_pending_ && take_unprefixed_lines_ && !text.empty() && text.front() != '+' &&
        text.front() != '#' && text.front() != '%') {
        out.emplace_back(InfoLine{std::string(text)});
        return;
    }
    if (command_pending_ && !response_prefix_.empty()) {
        auto answers = [text](std::string_view prefix) {
            if (!text.starts_with(prefix)) return false;
            return prefix.ends_with(':') || text.size() == prefix.size() || text[prefix.size()] == ':';
        };
        // v2.8+ spells the #XUDPSVR failure line "#UDPSVR:"; it still answers the command.
        if (answers(response_prefix_) ||
            (profile_.udp_server_failure_typo && response_prefix_ == "#XUDPSVR" && answers("#UDPSVR"))) {
            out.emplace_back(InfoLine{std::string(text)});
            return;
        }
    }
    urc();
}

void Framer::forget_modes() {
    command_pending_ = false;
    response_prefix_.clear();
    take_unprefixed_lines_ = false;
    mode_ = LinkMode::command;
    exit_requested_ = false;
    entry_ok_outstanding_ = false;
    terminator_reported_ = false;
}

void Framer::on_ready(std::vector<Event>& out) {
    forget_modes();
    in_payload_ = false;
    payload_start_ = false;
    payload_ = {};
    payload_remaining_ = 0;
    // Not prev_ or skipping_: those describe the tokenizer's position, which a delayed (look-back) release
    // of the banner must not move.
    out.emplace_back(ReadyBanner{});
}

void Framer::resume_after_silence() {
    if (in_payload_ && payload_remaining_ > 0) silence_at_ = payload_.bytes.size();
    if (partial_line_held() && mode_ == LinkMode::command) stale_line_bytes_ = buffer_.size();
}

void Framer::confirm_payload(std::vector<Event>& out) {
    if (!in_payload_ || payload_remaining_ != 0) return;
    payload_confirmed_ = true;
    process(out, false);
    payload_confirmed_ = false;
}

void Framer::payload_stalled(std::vector<Event>& out) {
    if (!in_payload_) return;
    std::string partial = std::move(payload_.bytes);
    out.emplace_back(
        PayloadLost{payload_.proxy, partial.size() + payload_remaining_, partial.size(), payload_.handle});
    payload_ = {};
    payload_remaining_ = 0;
    in_payload_ = false;
    payload_start_ = false;
    // The firmware prints its banner as a line of its own on boot, possibly behind power-on noise: from the
    // start of the last such line, the bytes are the rebooted firmware's and are read as lines (a fragment,
    // so whatever precedes "Ready" on that line is noise). Everything before it is the lost payload.
    std::size_t resume = partial.size();
    if (const auto banner = partial.rfind("Ready\r\n"); banner != std::string::npos) {
        const auto line_start = partial.rfind(crlf, banner);
        resume = line_start == std::string::npos ? 0 : line_start + 2;
    }
    discard(std::string_view(partial).substr(0, resume), out);
    prev_ = Prev::skipped;
    skipping_ = false;
    if (resume < partial.size()) {
        buffer_.insert(0, partial, resume, std::string::npos);
        scan_hint_ = 0;
        process(out, false);
    }
}

void Framer::discard(std::string_view bytes, std::vector<Event>& out) {
    if (bytes.empty()) return;
    discarded_bytes_ += bytes.size();
    out.emplace_back(Discarded{std::string(bytes)});
}

void Framer::enter_data_mode() {
    mode_ = exit_requested_ ? LinkMode::leaving_data_mode : LinkMode::data;
    exit_requested_ = false;
    terminator_reported_ = false;
    quiet_before_raw_ = false;
    banner_reported_ = false;
}

std::size_t Framer::match_data_pattern(std::string_view s, PatternKind& kind, int& status,
                                       std::string& text) const {
    const bool leaving = mode_ == LinkMode::leaving_data_mode;
    bool any_partial = false;
    // Call only with the Match already computed, so the matcher's length is read after it ran.
    auto full = [&](Match result, PatternKind k) {
        if (result == Match::partial) any_partial = true;
        if (result != Match::full) return false;
        kind = k;
        return true;
    };
    if (entry_ok_outstanding_) {
        Matcher m{s};
        const Match r = m.literal("\r\nOK\r\n");
        if (full(r, PatternKind::entry_ok)) return m.i;
    }
    // Serial Modem ends a counted send's data mode by itself, without a "+++" from the host.
    if (leaving || profile_.data_mode_peer_loss == DataModePeerLoss::immediate_exit || profile_.serial_modem()) {
        Matcher m{s};
        const Match r = match_status_line(m, "#XDATAMODE: ", status);
        if (full(r, PatternKind::exit_status)) return m.i;
    }
    if (leaving && !profile_.data_mode_exit_reports_status) {
        Matcher ok{s};
        const Match r_ok = ok.literal("\r\nOK\r\n");
        if (full(r_ok, PatternKind::exit_ok)) {
            status = 0;
            return ok.i;
        }
        Matcher error{s};
        const Match r_error = error.literal("\r\nERROR\r\n");
        if (full(r_error, PatternKind::exit_error)) {
            status = -5;  // v1.7/1.8 answer a failed send with ERROR and no status; EIO stands in for it
            return error.i;
        }
    }
    {
        Matcher m{s};
        const Match r = match_server_peer_line(m);
        if (full(r, PatternKind::loss_urc)) {
            text = std::string(s.substr(2, m.i - 4));
            return m.i;
        }
    }
    if (profile_.data_mode_peer_loss == DataModePeerLoss::null_mode_with_urc) {
        for (std::string_view head : {"#XTCPCLI: ", "#XUDPCLI: ", "#XTCPSVR: ", "#XUDPSVR: "}) {
            for (std::string_view word : {"disconnected", "stopped"}) {
                Matcher m{s};
                const Match r = match_loss_line(m, head, word);
                if (full(r, PatternKind::loss_urc)) {
                    text = std::string(s.substr(2, m.i - 4));
                    return m.i;
                }
            }
        }
    }
    return any_partial ? partial_match : 0;
}

bool Framer::step_data(std::size_t& cur, std::vector<Event>& out, bool idle) {
    std::string_view b(buffer_);
    const bool terminator_profile =
        profile_.data_mode_peer_loss == DataModePeerLoss::null_mode_with_terminator;
    std::size_t raw_start = cur;
    std::size_t i = cur;
    auto release_raw = [&](std::size_t end) {
        if (end > raw_start) out.emplace_back(RawData{std::string(b.substr(raw_start, end - raw_start))});
        raw_start = end;
    };
    auto hold = [&] {
        release_raw(i);
        cur = i;
        return false;
    };
    auto leave = [&](int status, std::size_t consumed) {
        out.emplace_back(DataModeExited{status});
        if (entry_ok_outstanding_) command_pending_ = false;
        mode_ = LinkMode::command;
        exit_requested_ = false;
        entry_ok_outstanding_ = false;
        terminator_reported_ = false;
        quiet_before_raw_ = false;
        banner_reported_ = false;
        prev_ = Prev::text_line;
        cur = i + consumed;
        return true;
    };
    if (quiet_before_raw_) {
        // A reboot cuts data mode without a word: the banner after the quiet is all that shows it. Held until
        // something follows it (then it was the peer's) or the exit the host now starts settles it.
        const auto match = banner_at_front(b.substr(cur));
        if (match == BannerMatch::whole) {
            // A rebooted firmware says nothing more until spoken to: only a banner before a quiet line counts.
            if (idle && !banner_reported_) {
                out.emplace_back(PossibleReboot{});
                banner_reported_ = true;
            }
            return false;
        }
        if (match == BannerMatch::partial && !idle) return false;
        // The firmware writes its banner in one go: a beginning of one before another quiet is the peer's.
        quiet_before_raw_ = false;
        banner_reported_ = false;
    }
    while (i < b.size()) {
        const std::size_t next = b.find_first_of(terminator_profile ? "\r+" : "\r", i);
        if (next == std::string_view::npos) {
            i = b.size();
            break;
        }
        i = next;
        PatternKind kind = PatternKind::none;
        int status = 0;
        std::string text;
        if (b[i] == '+') {
            // v2.7+ peer-loss signal: a raw "+++" after which the firmware goes silent (null mode). Downlink
            // data may contain "+++" too, so a "+++" is only a candidate while nothing but silence (or, once
            // the host has sent its own "+++", the #XDATAMODE answer) follows it.
            std::string_view rest = b.substr(i);
            const std::string_view head = rest.substr(0, 3);
            if (!std::string_view("+++").starts_with(head)) {
                ++i;
                continue;
            }
            if (head.size() < 3) {
                if (idle) {  // the firmware writes its "+++" in one go; a lone "+" before silence is data
                    ++i;
                    continue;
                }
                return hold();
            }
            const bool leaving = mode_ == LinkMode::leaving_data_mode;
            if (rest.size() == 3) {
                if (idle && !leaving && !terminator_reported_) {
                    release_raw(i);
                    out.emplace_back(PeerTerminator{});
                    terminator_reported_ = true;
                }
                return hold();
            }
            if (leaving) {
                const std::size_t m = match_data_pattern(rest.substr(3), kind, status, text);
                if (m == partial_match && !idle) return hold();
                if (m != 0 && m != partial_match &&
                    (kind == PatternKind::exit_status || kind == PatternKind::exit_ok ||
                     kind == PatternKind::exit_error)) {
                    // A failed link reports a nonzero status: the "+++" was the firmware's signal and is
                    // dropped. Status 0 means the link was fine, so the "+++" was downlink data.
                    release_raw(status != 0 ? i : i + 3);
                    return leave(status, 3 + m);
                }
            }
            terminator_reported_ = false;
            ++i;
            continue;
        }
        const std::size_t m = match_data_pattern(b.substr(i), kind, status, text);
        if (m == 0) {
            ++i;
            continue;
        }
        if (m == partial_match) {
            if (idle) {  // the firmware writes each of these lines in one go; a fragment before silence is
                         // data
                ++i;
                continue;
            }
            return hold();
        }
        release_raw(i);
        switch (kind) {
            case PatternKind::exit_status:
            case PatternKind::exit_ok:
            case PatternKind::exit_error:
                return leave(status, m);
            case PatternKind::entry_ok:
                out.emplace_back(FinalResult{FinalKind::ok, 0});
                command_pending_ = false;
                entry_ok_outstanding_ = false;
                break;
            case PatternKind::loss_urc:
                out.emplace_back(Urc{std::move(text)});
                break;
            case PatternKind::none:
                break;
        }
        i += m;
        raw_start = i;
    }
    release_raw(i);
    cur = i;
    return false;
}

}  // namespace slmd::at
