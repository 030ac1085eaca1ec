// Owns: turning the raw byte stream from the SLM UART into events. Pure: no I/O, no timers, no clocks.
// The caller (at::Channel) tells the framer what it sent (a command, a data-mode request, "+++"), and the
// framer classifies everything that comes back: final results, info lines of the pending command, URCs
// (anything else, anywhere), the "Ready" banner, counted #XTCPDATA/#XUDPDATA payloads in the form the
// firmware profile says, the counted bytes of a generic socket's #XRECV/#XRECVFROM answer, raw data-mode
// bytes, and bytes it had to discard to get back in step.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "at/firmware_profile.hpp"

namespace slmd::at {

enum class FinalKind { ok, error, cme_error, cms_error };

struct FinalResult {
    FinalKind kind = FinalKind::ok;
    int code = 0;  // the number of "+CME ERROR: n" / "+CMS ERROR: n"
    bool operator==(const FinalResult&) const = default;
};

// A line that answers the pending command: it starts with the command's response prefix.
struct InfoLine {
    std::string text;
    bool operator==(const InfoLine&) const = default;
};

// Any other complete line, at any moment, including between an info line and its final result.
struct Urc {
    std::string text;
    bool operator==(const Urc&) const = default;
};

// "Ready": the firmware (re)booted. All proxies are gone, any pending command is lost.
struct ReadyBanner {
    bool operator==(const ReadyBanner&) const = default;
};

// tcp, udp: the proxies' notifications. socket: the bytes that follow the info line of a generic socket's
// #XRECV / #XRECVFROM answer, before its OK; they answer the pending command (header first on every release).
enum class Proxy { tcp, udp, socket };

// One counted payload (#XTCPDATA / #XUDPDATA / #XRECV / #XRECVFROM). For v2.8+ UDP and #XRECVFROM the header
// carries the peer (#XRECVFROM: the port from v2.5).
struct ProxyData {
    Proxy proxy = Proxy::tcp;
    std::string bytes;
    std::optional<std::string> peer_address;
    std::optional<std::uint16_t> peer_port;
    // Serial Modem: the socket handle of "#XRECV: <h>,…" (answer or automatic reception); such bytes go to
    // the driver, never to a pending command. Unset on SLM.
    std::optional<int> handle{};
    bool operator==(const ProxyData&) const = default;
};

// Downlink bytes while the link is in data mode (no framing at all).
struct RawData {
    std::string bytes;
    bool operator==(const RawData&) const = default;
};

// The link is back in AT-command mode. `status` is the #XDATAMODE value (0, or e.g. -104/-139), or 0 for
// the "OK" of releases before v2.1.
struct DataModeExited {
    int status = 0;
    bool operator==(const DataModeExited&) const = default;
};

// v2.7+: the firmware wrote a raw "+++" in data mode, meaning the proxy broke; the host must answer "+++".
struct PeerTerminator {
    bool operator==(const PeerTerminator&) const = default;
};

// Data mode: the raw downlink ends, before a silence, in what may be a rebooted modem's banner ("Ready\r\n",
// possibly behind power-on noise). Raw bytes carry no framing, so it may as well be the peer's. Those bytes
// are held, not released: the next downlink byte or the firmware's confirmation of a data-mode exit shows they
// were data (released then, in order); an exit the firmware never confirms shows a reboot, and reset() drops
// them. The host should leave data mode now, to find out (and to stop writing into a rebooted modem's command
// line). Reported once per held banner.
struct PossibleReboot {
    bool operator==(const PossibleReboot&) const = default;
};

// A counted payload stopped arriving part-way (at::Channel saw the line silent beyond its bound while the
// payload still owed bytes): the modem rebooted, or UART bytes were lost and the count no longer matches the
// stream. None of its bytes is delivered (they go out as Discarded): the ones that came may hold the reboot
// banner, answers to later commands or a later header, and which ones are the peer's cannot be told.
// expected == received == 0: a payload already delivered (the line was quiet after it) turned out to be
// followed by no message, so bytes had gone missing inside it; its connection must end in an error.
// expected == 0, received > 0 (data-first releases): a line that no header claimed and that is no firmware
// message: payload whose header was lost. Reported as TCP, whose stream it holes; a UDP datagram it may have
// been is lost like any other.
struct PayloadLost {
    Proxy proxy = Proxy::tcp;
    std::size_t expected = 0;  // the header's count
    std::size_t received = 0;  // what had come when the line fell silent
    std::optional<int> handle{};  // Serial Modem: the socket the payload was for
    bool operator==(const PayloadLost&) const = default;
};

// Bytes that belonged to no frame (line noise, garbage before "Ready", an over-long line) and were skipped.
struct Discarded {
    std::string bytes;
    bool operator==(const Discarded&) const = default;
};

using Event = std::variant<FinalResult, InfoLine, Urc, ReadyBanner, ProxyData, RawData, DataModeExited,
                           PeerTerminator, Discarded, PayloadLost, PossibleReboot>;

enum class LinkMode {
    command,             // AT-command mode
    entering_data_mode,  // bare AT#XTCPSEND/AT#XUDPSEND sent; its OK switches to data mode
    data,                // raw bytes both ways
    leaving_data_mode,   // host sent "+++"; waiting for #XDATAMODE (or OK)
};

class Framer {
  public:
    explicit Framer(FirmwareProfile profile);

    void set_profile(const FirmwareProfile& profile);
    const FirmwareProfile& profile() const { return profile_; }

    // A command line went out. Lines beginning with `response_prefix` (e.g. "#XTCPCLI") are InfoLines until
    // the final result; an empty prefix means the command has no info lines of its own. With
    // `take_unprefixed_lines`, lines that start with none of '+', '#', '%' (which every URC starts with)
    // answer it too: an administrator's AT+CGMR or AT+CGSN answers with bare text.
    void command_sent(std::string_view response_prefix, bool take_unprefixed_lines = false);
    // The bare send command went out (AT#XTCPSEND / AT#XUDPSEND): its OK (or, before v2.1, nothing) enters
    // data mode.
    void data_mode_requested();
    // The host wrote "+++" to leave data mode.
    void data_mode_exit_requested();
    // The line was reopened or the caller gave up on the modem: forget all partial state.
    void reset();
    // The firmware rebooted: command mode, nothing pending, no data-mode entry or exit under way. Bytes not yet
    // parsed stay. The channel calls it once it has handled a Ready, because a command sent while handling the
    // events before it (a data-mode entry from an OK's handler) may have changed the mode after the framer
    // parsed the banner.
    void forget_modes();

    // Consumes bytes, appending every event they complete to `out`. Never throws on any input.
    void feed(std::string_view bytes, std::vector<Event>& out);
    // The line has been idle for a while: release bytes held back only because they might start a frame.
    void idle(std::vector<Event>& out);
    // Bytes the counted payload being received still owes (header-first releases), 0 when none is under way.
    std::size_t payload_outstanding() const { return in_payload_ ? payload_remaining_ : 0; }
    // Bytes of a line still waiting for its CRLF (command mode). Every firmware message arrives whole, so a
    // partial line that a silence interrupts is the tail of something cut short (a data-first payload whose
    // modem rebooted part-way).
    bool partial_line_held() const { return !in_payload_ && !buffer_.empty(); }
    // The line stayed silent in the middle of a counted payload (the caller's timer; the framer has no
    // clock): gives the payload up (PayloadLost, its bytes Discarded) and reads what came from the last line
    // ending in "Ready" on as ordinary lines, so a reboot in the middle of a payload is seen as one.
    void payload_stalled(std::vector<Event>& out);
    // A counted payload has all its bytes but waits for the CRLF that must follow it (the check that no byte
    // went missing inside it); true while it waits.
    bool payload_unconfirmed() const { return in_payload_ && payload_remaining_ == 0; }
    // The line stayed quiet after such a payload: nothing follows it yet, so it is delivered now.
    void confirm_payload(std::vector<Event>& out);
    // The caller saw the line silent for a while (at::Channel: 50 ms, not counting its own pauses) in the
    // middle of a counted payload or of a line, and bytes arrive again: if they are the start of a reboot
    // banner ("\r\nReady\r\n", "Ready\r\n"), the modem rebooted part-way: a header-first payload is given up
    // (PayloadLost), the cut line (a data-first payload's tail) is discarded, and the banner read as a reboot.
    void resume_after_silence();

    LinkMode mode() const { return mode_; }
    bool command_pending() const { return command_pending_; }
    // Bytes discarded since construction (for stats).
    std::uint64_t discarded_bytes() const { return discarded_bytes_; }
    // Bytes received but not yet turned into events (partial line, partial payload, held-back patterns, the
    // data-first look-back). Bounded by roughly max_line_length + 2 * receive_chunk_max; the fuzzer checks
    // it.
    std::size_t buffered_bytes() const;

    // Longest line text (without CRLF) the framer accepts; SLM's response buffer is 4096 bytes.
    static constexpr std::size_t max_line_length = 4096;

  private:
    // What the last complete token was; decides whether the next line is a fragment and whether the firmware
    // must start its next message with CRLF (see docs/at-framer.md, "Boundaries").
    // resynced: at a CRLF found by skipping junk, which may be a message's leading CRLF or a CRLF inside lost
    // payload bytes: the next line is read as a line, but its first byte proves nothing (no data-mode race).
    enum class Prev { stream_start, empty_line, text_line, payload_end, skipped, resynced };
    enum class PatternKind { none, exit_status, exit_ok, exit_error, entry_ok, loss_urc };
    struct HeldLine {
        std::size_t length;  // text + CRLF
        bool fragment;
        // Held when a command was sent: whatever it turns out to be, it is not that command's answer.
        bool before_command = false;
    };

    void process(std::vector<Event>& out, bool idle);
    bool step_payload(std::size_t& cur, std::vector<Event>& out, bool idle);
    enum class Interleaved { none, undecided, taken };
    // At the start of a header-first payload: another proxy's notification the firmware wrote between the
    // header and its payload (reference: proxy threads interleave between whole writes). `taken`: it was
    // emitted and is `length` bytes long.
    // While a send's data mode is being entered: `s` starts with a data header that lost its first bytes on the
    // line (its leading CRLF at least), not early downlink. taken: `length` is that line, CRLF included.
    Interleaved damaged_header(std::string_view s, bool idle, std::size_t& length) const;
    Interleaved interleaved_notification(std::string_view s, bool idle, std::size_t& length,
                                         std::vector<Event>& out) const;
    bool step_skip(std::size_t& cur, std::vector<Event>& out, bool idle);
    bool step_line(std::size_t& cur, std::vector<Event>& out, bool idle);
    bool step_data(std::size_t& cur, std::vector<Event>& out, bool idle);
    void handle_line(std::string_view text, std::vector<Event>& out);
    // A pending #XRECV/#XRECVFROM's header line: emits it as its InfoLine and reads its counted bytes next.
    bool recv_answer_header(std::string_view text, bool fragment, std::vector<Event>& out);
    void start_payload(ProxyData header, std::size_t size, std::vector<Event>& out);
    // unclaimed: a line no header claimed (header-first: any line; data-first: one released from the look-back).
    void classify(std::string_view text, bool fragment, std::vector<Event>& out, bool before_command = false,
                  bool unclaimed = false);
    void data_first_payload(Proxy proxy, std::size_t n, std::optional<std::string> address,
                            std::optional<std::uint16_t> port,
                            std::vector<Event>& out);
    void release_lookback(std::vector<Event>& out, bool all);
    void flush_lookback(std::vector<Event>& out);
    void on_ready(std::vector<Event>& out);
    void discard(std::string_view bytes, std::vector<Event>& out);
    void enter_data_mode();
    bool lookback_active() const;
    bool message_start() const;
    // Matches the data-mode patterns at the start of `s`: 0 = no, SIZE_MAX = partial, else the length.
    std::size_t match_data_pattern(std::string_view s, PatternKind& kind, int& status,
                                   std::string& text) const;

    FirmwareProfile profile_;
    LinkMode mode_ = LinkMode::command;
    bool command_pending_ = false;
    std::string response_prefix_;
    bool take_unprefixed_lines_ = false;
    std::uint64_t discarded_bytes_ = 0;
    std::string buffer_;  // received bytes not yet consumed; a partial line or a held-back pattern
    std::size_t payload_remaining_ = 0;
    ProxyData payload_;
    bool in_payload_ = false;
    bool payload_start_ = false;      // no byte of the current payload taken yet: an interleaved URC may come first
    bool payload_confirmed_ = false;  // inside confirm_payload(): deliver a complete payload without the check
    std::optional<std::size_t> silence_at_;   // payload offset where bytes resumed after a silence
    std::size_t stale_line_bytes_ = 0;        // bytes of the partial line that came before a silence
    std::optional<Proxy> unchecked_payload_;  // a payload delivered before the CRLF behind it was seen
    std::optional<int> unchecked_handle_;     // ... and its Serial Modem socket
    Prev prev_ = Prev::stream_start;
    bool skipping_ = false;              // inside the rest of an over-long line
    std::size_t scan_hint_ = 0;          // bytes at the front of buffer_ already searched for CRLF
    bool exit_requested_ = false;        // host sent "+++" (possibly before the data-mode OK came)
    bool entry_ok_outstanding_ = false;  // raw data came before the data-mode OK; the OK is still due
    bool terminator_reported_ = false;   // PeerTerminator emitted for the "+++" at the front of buffer_
    bool quiet_before_raw_ = false;      // data mode: the line was quiet before the bytes at the front of buffer_
    bool banner_reported_ = false;       // PossibleReboot emitted for the banner held at the front of buffer_
    // Data-first profiles: complete lines a later "#XTCPDATA: n" may still claim as its payload.
    std::string lookback_;
    std::deque<HeldLine> held_lines_;
    // Events produced by an API call (the look-back is flushed before state changes); handed out by the next
    // feed()/idle(), ahead of anything newer.
    std::vector<Event> deferred_;
};

}  // namespace slmd::at
