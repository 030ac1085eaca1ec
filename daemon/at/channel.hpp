// Owns: the conversation with the modem over one link. One command in flight with its own timeout, a queue
// behind it, routing of everything unsolicited (URCs, "Ready", proxy payloads, raw data-mode bytes) to the
// layer above, data-mode entry and exit following the firmware profile's "+++" rule, and getting back in step
// after a command timed out. Bytes come in through feed(); bytes go out through an injected LinkWriter, so
// tests drive the channel with an in-memory link.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "at/firmware_profile.hpp"
#include "at/framer.hpp"
#include "sys/lifetime.hpp"

namespace slmd::at {

// Where the channel's bytes go (the serial port in slmd, a recording buffer in tests).
class LinkWriter {
  public:
    virtual ~LinkWriter() = default;
    virtual void write_to_modem(std::string bytes) = 0;
};

enum class ChannelError {
    timeout = 1,       // no final result within the command's timeout
    modem_reset,       // "Ready" arrived: the modem rebooted and forgot the command
    link_lost,         // the serial device went away
    not_in_data_mode,  // data-mode operation while the link is in command mode
    cancelled,         // the channel was shut down
    queue_full,        // max_queued_commands already wait: refused without reaching the modem
};

// Commands waiting behind the one in flight. Everything slmd queues is bounded upstream (connects by the
// flow queue, requests per client and per uid by the API server), so reaching this means a bug or an
// unforeseen burst: it is refused rather than held without bound.
inline constexpr std::size_t max_queued_commands = 256;
const std::error_category& channel_category();
std::error_code make_error_code(ChannelError error);

struct CommandRequest {
    std::string line;             // without CRLF, e.g. "AT+CFUN=1"
    std::string response_prefix;  // info lines that answer it, e.g. "+CFUN"; empty if none
    std::chrono::milliseconds timeout{5000};
    bool take_unprefixed_lines = false;  // see Framer::command_sent (administrators' commands)
    // What logs show instead of `line` when it carries a secret (a credential's content, redacted by
    // modem/credentials.hpp); empty = `line` itself. Only `line` ever goes to the modem.
    std::string log_as{};
    const std::string& loggable() const { return log_as.empty() ? line : log_as; }
};

struct CommandResponse {
    std::error_code error;  // set when no final result arrived
    FinalResult final;
    std::vector<std::string> info;
    // A generic socket's #XRECV/#XRECVFROM answer: the counted bytes after its info line (the peer, for
    // #XRECVFROM, is in the info line). Empty for every other command.
    std::string payload{};
    // Those bytes stopped arriving part-way (at::PayloadLost): `payload` is empty, and the socket's stream can
    // no longer be delivered exactly.
    bool payload_lost = false;
    bool ok() const { return !error && final.kind == FinalKind::ok; }
    // A one-line description for logs: "OK", "ERROR", "+CME ERROR: 30", "timeout", ...
    std::string describe() const;
};

struct ChannelHandlers {
    std::function<void(const std::string&)> urc;
    std::function<void()> ready;
    std::function<void(ProxyData&&)> proxy_data;
    std::function<void(std::string_view)> raw_data;
    // The link left data mode on its own (v2.1-v2.4 automatic exit) or after the host's "+++".
    std::function<void(int status)> data_mode_exited;
    // A counted payload stopped arriving part-way and was given up (see PayloadLost): the stream of that
    // proxy's connection can no longer be delivered exactly.
    std::function<void(const PayloadLost&)> payload_lost;
};

// How long the line may stay silent while a counted payload still owes `outstanding` bytes before the
// payload is given up: their wire time at `baud` (10 bits a byte) plus payload_stall_margin. The firmware
// writes a header and its payload back to back, so a silence this long in the middle means the modem
// rebooted or bytes were lost; time during which slmd itself stopped reading the line does not count.
inline constexpr std::chrono::milliseconds payload_stall_margin{1000};
std::chrono::milliseconds payload_stall_bound(std::size_t outstanding, unsigned baud);

struct ChannelStats {
    std::uint64_t commands = 0;
    std::uint64_t timeouts = 0;
    std::uint64_t errors = 0;        // ERROR, +CME ERROR, +CMS ERROR finals
    std::uint64_t stale_finals = 0;  // late answers to timed-out commands, dropped during resync
    std::uint64_t resets_seen = 0;
    std::uint64_t urcs = 0;
    std::uint64_t payload_bytes = 0;
    std::uint64_t raw_bytes = 0;
    std::uint64_t data_bytes_written = 0;
    std::uint64_t payloads_lost = 0;  // counted payloads given up part-way (PayloadLost)
};

class Channel {
  public:
    using ResponseHandler = std::function<void(CommandResponse)>;
    using ExitHandler = std::function<void(std::error_code, int status)>;

    Channel(boost::asio::any_io_executor executor, LinkWriter& writer, FirmwareProfile profile,
            unsigned baud);
    ~Channel();
    Channel(const Channel&) = delete;
    Channel& operator=(const Channel&) = delete;

    void set_handlers(ChannelHandlers handlers) { handlers_ = std::move(handlers); }
    // Called when the firmware never confirmed leaving data mode: it rebooted meanwhile (its "Ready" was
    // taken as payload), or it is still in data mode. Either way nothing the link held can be trusted any
    // more.
    void set_link_unsure_handler(std::function<void()> handler) { link_unsure_ = std::move(handler); }
    void set_profile(const FirmwareProfile& profile);
    const FirmwareProfile& profile() const { return framer_.profile(); }
    // The data-mode inactivity time limit in force (#XDATACTRL); guards around "+++" are derived from it.
    void set_data_mode_time_limit(std::chrono::milliseconds limit) { time_limit_ = limit; }
    std::chrono::milliseconds data_mode_time_limit() const { return time_limit_; }

    // Queues a command; the handler runs exactly once with its final result or an error (queue_full, posted,
    // when max_queued_commands already wait).
    void submit(CommandRequest request, ResponseHandler handler);

    template <typename CompletionToken>
    auto async_command(CommandRequest request, CompletionToken&& token) {
        return boost::asio::async_initiate<CompletionToken, void(CommandResponse)>(
            [this](auto handler, CommandRequest req) {
                auto shared = std::make_shared<decltype(handler)>(std::move(handler));
                submit(std::move(req),
                       [shared](CommandResponse response) { (*shared)(std::move(response)); });
            },
            token, std::move(request));
    }

    // Sends the bare send command (e.g. "AT#XTCPSEND"); the handler runs once the link is in data mode.
    void enter_data_mode(CommandRequest send_command, ResponseHandler handler);
    // Data-mode uplink. Returns not_in_data_mode unless the link is in data mode. The caller is responsible
    // for never writing the terminator pattern inside payload (modem/uplink_plan.hpp does that for SLM).
    std::error_code write_data(std::string_view bytes);
    // In data mode with no exit under way: what write_data() needs. An exit on its way (its guard time
    // running) takes no more data: "+++" must follow the bytes it was timed for.
    bool data_mode_writable() const {
        return framer_.mode() == LinkMode::data && !terminator_sent_ && !exit_armed_;
    }
    // Serial Modem: the bytes of a data-mode send that announced their count (AT#XSEND=<h>,2,<flags>,<n>). The
    // firmware leaves data mode by itself after the n-th byte ("#XDATAMODE: <status>"), so no "+++" is sent
    // and none is searched for in them: any byte value is safe. `handler` runs with that status, as for
    // exit_data_mode(). Returns not_in_data_mode (handler not called) unless data_mode_writable().
    std::error_code write_counted_data(std::string_view bytes, ExitHandler handler);
    // When "+++" may follow the data: at once (the profile's own guards still apply), or only once the
    // firmware's inactivity timer has flushed what was written (the data's time on the wire plus the time
    // limit). The latter keeps a payload ending in '+' whole on releases that find "+++" anywhere: the
    // firmware holds a trailing partial match back and would join it to our terminator.
    enum class ExitTiming { immediate, after_inactivity_flush };
    // Sends "+++" with the guard times the profile needs and waits for the firmware to confirm.
    void exit_data_mode(ExitHandler handler, ExitTiming timing = ExitTiming::immediate);

    // A bare "+++" for a data mode the framer does not know about: the firmware kept one over a serial loss
    // or a restart of slmd, and swallows every command as payload. Only while nothing is in flight; the
    // caller keeps the line silent for the time limit afterwards (releases before v2.5 need the silence after
    // it).
    void send_blind_terminator();
    // A bare '"' and the command terminator, for a firmware whose command parser is stuck inside a quoted
    // string: its parser ignores the terminator between quotes and has no escape, so one stray '"' (payload a
    // rebooted modem took for a command) swallows every later command until another '"' comes. When the parser
    // was not inside quotes this opens them instead, so a caller that still gets no answer sends it again.
    // Only while nothing but a resync probe is in flight.
    void send_quote_closer();

    // Bytes from the modem.
    void feed(std::string_view bytes);
    // The serial device went away: everything pending fails with link_lost and the framer forgets its state.
    void link_lost();
    // slmd is stopping: everything pending fails with cancelled and every timer stops.
    void shutdown();

    LinkMode mode() const { return framer_.mode(); }
    // Whether the last data-mode exit answered a "+++" (ours, or ours answering the firmware's), as opposed
    // to an automatic exit of the firmware (v2.0-v2.4 when the proxy broke). Valid from the data_mode_exited
    // handler on.
    bool last_exit_requested() const { return last_exit_requested_; }
    bool idle() const { return !in_flight_ && queue_.empty(); }
    std::size_t queued_commands() const { return queue_.size(); }
    std::uint64_t queue_refusals() const { return queue_refusals_; }
    // Whether an answer from the modem is awaited: a command queued or in flight, or a data-mode exit under
    // way. While it is, the link must be read, whatever a slow app would like
    // (SlmProxyDriver::pause_receive).
    bool awaiting_modem() const { return in_flight_ || !queue_.empty() || exit_handler_ || terminator_sent_; }
    // Runs whenever awaiting_modem() changed (possibly from inside a channel call: it must not feed bytes).
    void set_activity_listener(std::function<void()> listener) { activity_listener_ = std::move(listener); }
    const ChannelStats& stats() const { return stats_; }
    // slmd stopped (or resumed) reading the line for a slow app: silence meanwhile is not the modem's.
    void set_receive_paused(bool paused);
    std::uint64_t discarded_bytes() const { return framer_.discarded_bytes(); }

  private:
    bool refuse_if_full(ResponseHandler& handler);
    struct Pending {
        CommandRequest request;
        ResponseHandler handler;
        bool enters_data_mode = false;
        bool resync_probe = false;
        bool probe_answered = false;
        CommandResponse response;
    };

    void pump();
    void send(std::unique_ptr<Pending> pending);
    void complete_in_flight(CommandResponse response);
    void fail_all(std::error_code error);
    void on_timeout(std::uint64_t generation);
    void dispatch(Event& event);
    void on_final(const FinalResult& final);
    void send_terminator();
    void arm_idle_timer();
    void watch_payload_stall();

    boost::asio::any_io_executor executor_;
    LinkWriter& writer_;
    Framer framer_;
    std::chrono::milliseconds time_limit_;
    unsigned baud_;
    ChannelHandlers handlers_;
    std::deque<std::unique_ptr<Pending>> queue_;
    std::uint64_t queue_refusals_ = 0;
    std::unique_ptr<Pending> in_flight_;
    std::uint64_t generation_ = 0;
    boost::asio::steady_timer command_timer_;
    boost::asio::steady_timer guard_timer_;
    boost::asio::steady_timer idle_timer_;
    bool idle_timer_armed_ = false;
    boost::asio::steady_timer stall_timer_;
    boost::asio::steady_timer confirm_timer_;
    bool confirm_timer_armed_ = false;
    void confirm_payload_soon();
    bool receive_paused_ = false;
    bool resync_needed_ = false;
    std::chrono::steady_clock::time_point last_rx_{};
    std::chrono::steady_clock::time_point last_data_tx_{};
    std::size_t last_data_tx_bytes_ = 0;
    ExitHandler exit_handler_;
    bool terminator_sent_ = false;
    bool exit_armed_ = false;  // exit_data_mode() waits out a guard time before its "+++"
    bool counted_exit_ = false;  // write_counted_data(): the firmware leaves data mode by itself
    // exit_data_mode() calls made while a data-mode entry was in flight: run once its handler has.
    std::vector<std::pair<ExitHandler, ExitTiming>> deferred_exits_;
    bool last_exit_requested_ = false;
    std::vector<Event> events_;
    ChannelStats stats_;
    std::function<void()> link_unsure_;
    void note_activity();
    std::function<void()> activity_listener_;
    bool awaiting_reported_ = false;
    sys::Lifetime lifetime_;
};

}  // namespace slmd::at

template <>
struct std::is_error_code_enum<slmd::at::ChannelError> : std::true_type {};
