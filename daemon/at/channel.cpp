// Owns: the command/response conversation and data-mode transitions on one link (see channel.hpp).
#include "at/channel.hpp"

#include <boost/asio/post.hpp>

#include <algorithm>
#include <type_traits>
#include <utility>

#include "sys/log.hpp"

namespace slmd::at {

namespace {

// The probe that puts the channel back in step after a timeout. Its info line ("+CFUN: n") tells the probe's
// own final result apart from a late final of the command that timed out.
constexpr std::string_view resync_line = "AT+CFUN?";
constexpr std::string_view resync_prefix = "+CFUN";
constexpr std::chrono::milliseconds resync_timeout{2000};
// Held-back bytes (a possible frame start) are released after this much line silence.
constexpr std::chrono::milliseconds idle_gap{50};
// v1.7-v1.8 need a second of silence on both sides of "+++"; the margin covers timer and UART jitter.
constexpr std::chrono::milliseconds silence_guard{1000};
constexpr std::chrono::milliseconds guard_margin{20};

class ChannelCategory final : public std::error_category {
  public:
    const char* name() const noexcept override { return "slmd.at.channel"; }
    std::string message(int value) const override {
        switch (static_cast<ChannelError>(value)) {
            case ChannelError::timeout:
                return "modem did not answer in time";
            case ChannelError::modem_reset:
                return "modem reset";
            case ChannelError::link_lost:
                return "serial link lost";
            case ChannelError::not_in_data_mode:
                return "link is not in data mode";
            case ChannelError::cancelled:
                return "cancelled";
            case ChannelError::queue_full:
                return "too many commands queued";
        }
        return "unknown channel error";
    }
};

}  // namespace

const std::error_category& channel_category() {
    static const ChannelCategory category;
    return category;
}

std::error_code make_error_code(ChannelError error) {
    return {static_cast<int>(error), channel_category()};
}

std::string CommandResponse::describe() const {
    if (error) return error.message();
    switch (final.kind) {
        case FinalKind::ok:
            return "OK";
        case FinalKind::error:
            return "ERROR";
        case FinalKind::cme_error:
            return "+CME ERROR: " + std::to_string(final.code);
        case FinalKind::cms_error:
            return "+CMS ERROR: " + std::to_string(final.code);
    }
    return "?";
}

Channel::Channel(boost::asio::any_io_executor executor, LinkWriter& writer, FirmwareProfile profile,
                 unsigned baud)
    : executor_(executor),
      writer_(writer),
      framer_(profile),
      time_limit_(FirmwareProfile::data_mode_min_time_limit(baud)),
      baud_(baud),
      command_timer_(executor),
      guard_timer_(executor),
      idle_timer_(executor),
      stall_timer_(executor),
      confirm_timer_(executor) {}

Channel::~Channel() {
    lifetime_.end();
    command_timer_.cancel();
    guard_timer_.cancel();
    idle_timer_.cancel();
    stall_timer_.cancel();
    confirm_timer_.cancel();
}

void Channel::set_profile(const FirmwareProfile& profile) {
    framer_.set_profile(profile);
}

bool Channel::refuse_if_full(ResponseHandler& handler) {
    if (queue_.size() < max_queued_commands) return false;
    ++queue_refusals_;
    CommandResponse response;
    response.error = make_error_code(ChannelError::queue_full);
    // Never from inside submit(): the caller may hold state the handler changes.
    boost::asio::post(executor_, [handler = std::move(handler), response]() mutable { handler(std::move(response)); });
    return true;
}

void Channel::submit(CommandRequest request, ResponseHandler handler) {
    if (refuse_if_full(handler)) return;
    auto pending = std::make_unique<Pending>();
    pending->request = std::move(request);
    pending->handler = std::move(handler);
    queue_.push_back(std::move(pending));
    pump();
    note_activity();
}

void Channel::enter_data_mode(CommandRequest send_command, ResponseHandler handler) {
    if (refuse_if_full(handler)) return;
    auto pending = std::make_unique<Pending>();
    pending->request = std::move(send_command);
    pending->handler = std::move(handler);
    pending->enters_data_mode = true;
    queue_.push_back(std::move(pending));
    pump();
    note_activity();
}

void Channel::pump() {
    if (in_flight_ || framer_.mode() != LinkMode::command) return;
    if (resync_needed_ && !queue_.empty()) {
        auto probe = std::make_unique<Pending>();
        probe->request = {std::string(resync_line), std::string(resync_prefix), resync_timeout};
        probe->resync_probe = true;
        send(std::move(probe));
        return;
    }
    if (queue_.empty()) return;
    auto next = std::move(queue_.front());
    queue_.pop_front();
    send(std::move(next));
}

void Channel::send(std::unique_ptr<Pending> pending) {
    in_flight_ = std::move(pending);
    ++stats_.commands;
    if (in_flight_->enters_data_mode) {
        framer_.data_mode_requested();
    } else {
        framer_.command_sent(in_flight_->request.response_prefix, in_flight_->request.take_unprefixed_lines);
    }
    SLMD_DEBUG("at: > {}", in_flight_->request.loggable());
    writer_.write_to_modem(in_flight_->request.line + std::string(framer_.profile().command_terminator()));
    const auto generation = ++generation_;
    command_timer_.expires_after(in_flight_->request.timeout);
    command_timer_.async_wait([this, generation, alive = lifetime_.guard()](boost::system::error_code error) {
        if (!*alive || error) return;
        on_timeout(generation);
    });
    if (in_flight_->enters_data_mode && framer_.mode() == LinkMode::data) {
        // Releases before v2.1 enter data mode without answering.
        complete_in_flight(CommandResponse{{}, FinalResult{FinalKind::ok, 0}, {}});
    }
}

void Channel::complete_in_flight(CommandResponse response) {
    if (!in_flight_) return;
    ++generation_;
    command_timer_.cancel();
    auto done = std::move(in_flight_);
    if (done->resync_probe) {
        if (!response.error) {
            resync_needed_ = false;
        } else if (!queue_.empty()) {
            // The modem answers nothing at all: the next command would fare no better, so it fails now
            // instead of waiting behind probes forever. Probing goes on while commands are queued.
            auto next = std::move(queue_.front());
            queue_.pop_front();
            if (next->handler) next->handler(CommandResponse{make_error_code(ChannelError::timeout), {}, {}});
        }
    } else if (done->handler) {
        SLMD_DEBUG("at: < {} ({})", done->request.loggable(), response.describe());
        done->handler(std::move(response));
    }
    for (auto& [handler, timing] : std::exchange(deferred_exits_, {})) {
        exit_data_mode(std::move(handler), timing);
    }
    pump();
    note_activity();
}

void Channel::fail_all(std::error_code error) {
    ++generation_;
    command_timer_.cancel();
    auto in_flight = std::move(in_flight_);
    auto queue = std::move(queue_);
    queue_.clear();
    if (in_flight && !in_flight->resync_probe && in_flight->handler) {
        in_flight->handler(CommandResponse{error, {}, {}});
    }
    for (auto& pending : queue) {
        if (pending->handler) pending->handler(CommandResponse{error, {}, {}});
    }
    for (auto& [handler, timing] : std::exchange(deferred_exits_, {})) {
        if (handler) handler(error, 0);
    }
    if (exit_handler_) {
        auto handler = std::move(exit_handler_);
        exit_handler_ = nullptr;
        handler(error, 0);
    }
    note_activity();
}

void Channel::note_activity() {
    const bool awaiting = awaiting_modem();
    if (awaiting == awaiting_reported_) return;
    awaiting_reported_ = awaiting;
    if (activity_listener_) activity_listener_();
}

void Channel::on_timeout(std::uint64_t generation) {
    if (generation != generation_ || !in_flight_) return;
    ++stats_.timeouts;
    SLMD_WARN("at: no answer to {} within {} ms", in_flight_->request.loggable(),
              in_flight_->request.timeout.count());
    // A late final for this command may still come; the probe sent next tells it apart.
    resync_needed_ = true;
    complete_in_flight(CommandResponse{make_error_code(ChannelError::timeout), {}, {}});
}

void Channel::feed(std::string_view bytes) {
    const auto now = std::chrono::steady_clock::now();
    // Bytes after a silence in the middle of a payload or a line may be a rebooted modem's banner (Framer
    // decides).
    if ((framer_.payload_outstanding() > 0 || framer_.partial_line_held()) && !receive_paused_ &&
        now - last_rx_ >= idle_gap)
        framer_.resume_after_silence();
    last_rx_ = now;
    events_.clear();
    framer_.feed(bytes, events_);
    // Handlers may submit commands; take the events out first so re-entrant feeds cannot disturb the loop.
    auto events = std::move(events_);
    events_.clear();
    for (auto& event : events) dispatch(event);
    arm_idle_timer();
    if (framer_.payload_unconfirmed()) confirm_payload_soon();
}

// A complete payload waits for the CRLF that must follow it; at the end of a burst nothing follows. Two
// bytes' wire time (twice over) plus a millisecond of quiet says the burst ended: deliver it then, so an
// interactive exchange pays about a millisecond for the check, not the 50 ms idle gap.
void Channel::confirm_payload_soon() {
    if (confirm_timer_armed_) return;
    confirm_timer_armed_ = true;
    const auto gap = std::chrono::microseconds(baud_ == 0 ? 0 : 2 * 2 * 10 * 1000000ull / baud_) +
                     std::chrono::milliseconds(1);
    confirm_timer_.expires_after(gap);
    confirm_timer_.async_wait([this, alive = lifetime_.guard()](boost::system::error_code error) {
        if (!*alive || error) return;
        confirm_timer_armed_ = false;
        if (!framer_.payload_unconfirmed()) return;
        std::vector<Event> events;
        framer_.confirm_payload(events);
        for (auto& event : events) dispatch(event);
    });
}

void Channel::arm_idle_timer() {
    if (idle_timer_armed_) return;
    idle_timer_armed_ = true;
    idle_timer_.expires_after(idle_gap);
    idle_timer_.async_wait([this, alive = lifetime_.guard()](boost::system::error_code error) {
        if (!*alive || error) return;
        idle_timer_armed_ = false;
        if (std::chrono::steady_clock::now() - last_rx_ < idle_gap) {
            arm_idle_timer();
            return;
        }
        std::vector<Event> events;
        framer_.idle(events);
        for (auto& event : events) dispatch(event);
        watch_payload_stall();
    });
}

std::chrono::milliseconds payload_stall_bound(std::size_t outstanding, unsigned baud) {
    const auto wire_ms = baud == 0 ? 0 : outstanding * 10 * 1000 / baud + 1;
    return std::chrono::milliseconds(wire_ms) + payload_stall_margin;
}

void Channel::watch_payload_stall() {
    const std::size_t outstanding = framer_.payload_outstanding();
    if (outstanding == 0 || receive_paused_) return;
    stall_timer_.expires_at(last_rx_ + payload_stall_bound(outstanding, baud_));
    stall_timer_.async_wait([this, alive = lifetime_.guard()](boost::system::error_code error) {
        if (!*alive || error || receive_paused_) return;
        const std::size_t outstanding = framer_.payload_outstanding();
        if (outstanding == 0) return;
        if (std::chrono::steady_clock::now() - last_rx_ < payload_stall_bound(outstanding, baud_)) {
            watch_payload_stall();  // bytes came meanwhile and the line fell silent again
            return;
        }
        std::vector<Event> events;
        framer_.payload_stalled(events);
        for (auto& event : events) dispatch(event);
    });
}

void Channel::set_receive_paused(bool paused) {
    if (paused == receive_paused_) return;
    receive_paused_ = paused;
    if (paused) {
        stall_timer_.cancel();
    } else {
        last_rx_ = std::chrono::steady_clock::now();  // the silence was ours
        arm_idle_timer();
    }
}

void Channel::dispatch(Event& event) {
    std::visit(
        [this](auto& e) {
            using T = std::decay_t<decltype(e)>;
            if constexpr (std::is_same_v<T, FinalResult>) {
                on_final(e);
            } else if constexpr (std::is_same_v<T, InfoLine>) {
                if (in_flight_) {
                    if (in_flight_->resync_probe) in_flight_->probe_answered = true;
                    in_flight_->response.info.push_back(std::move(e.text));
                } else {
                    ++stats_.urcs;
                    if (handlers_.urc) handlers_.urc(e.text);
                }
            } else if constexpr (std::is_same_v<T, Urc>) {
                ++stats_.urcs;
                if (handlers_.urc) handlers_.urc(e.text);
            } else if constexpr (std::is_same_v<T, ReadyBanner>) {
                ++stats_.resets_seen;
                SLMD_NOTICE("at: modem sent Ready (reboot)");
                terminator_sent_ = false;
                exit_armed_ = false;
                counted_exit_ = false;
                // Bytes we wrote just before the reboot can still reach the fresh firmware (they were in the
                // tty's buffers) and be answered: probe before the next command so those answers are not
                // taken for its.
                resync_needed_ = true;
                guard_timer_.cancel();
                // A handler of an event before the banner may have sent a command after the framer parsed it
                // (a data-mode entry answering an OK in the same read): whatever it set up died with the reboot.
                // Forgotten before the handlers below run, as they may send the next command.
                framer_.forget_modes();
                fail_all(make_error_code(ChannelError::modem_reset));
                if (handlers_.ready) handlers_.ready();
                pump();
                note_activity();
            } else if constexpr (std::is_same_v<T, ProxyData>) {
                stats_.payload_bytes += e.bytes.size();
                if (e.proxy == Proxy::socket && !e.handle) {
                    // The framer reads these bytes only while the #XRECV that asked for them is in flight.
                    if (in_flight_) in_flight_->response.payload += e.bytes;
                } else if (handlers_.proxy_data) {
                    handlers_.proxy_data(std::move(e));
                }
            } else if constexpr (std::is_same_v<T, RawData>) {
                stats_.raw_bytes += e.bytes.size();
                if (handlers_.raw_data) handlers_.raw_data(e.bytes);
            } else if constexpr (std::is_same_v<T, DataModeExited>) {
                last_exit_requested_ = exit_handler_ || terminator_sent_;
                terminator_sent_ = false;
                exit_armed_ = false;
                counted_exit_ = false;
                guard_timer_.cancel();
                if (!last_exit_requested_) {
                    // The firmware left data mode on its own (v2.0-v2.4, the proxy broke): uplink bytes still
                    // on their way are AT input to it now, an unterminated line that would swallow our next
                    // command. End that line, and probe before the next command so the finals it causes are
                    // not taken for that command's.
                    writer_.write_to_modem(std::string(framer_.profile().command_terminator()));
                    resync_needed_ = true;
                }
                if (exit_handler_) {
                    auto handler = std::move(exit_handler_);
                    exit_handler_ = nullptr;
                    handler({}, e.status);
                }
                if (handlers_.data_mode_exited) handlers_.data_mode_exited(e.status);
                pump();
                note_activity();
            } else if constexpr (std::is_same_v<T, PeerTerminator>) {
                // v2.7+: the proxy broke in data mode; the firmware drops input until we answer "+++".
                if (!terminator_sent_) send_terminator();
            } else if constexpr (std::is_same_v<T, PossibleReboot>) {
                // Raw downlink that ends, after a quiet line, in "Ready": the modem rebooted, or the peer sent
                // that. Leave data mode to tell: a rebooted firmware never confirms the exit (then the held
                // banner is dropped with everything else), a live one does (then it is delivered). Nothing is
                // written meanwhile that a rebooted firmware would take as its command line.
                if (framer_.mode() == LinkMode::data && !terminator_sent_ && !exit_handler_) {
                    SLMD_INFO("at: \"Ready\" in data mode after a quiet line; leaving data mode to tell a reboot "
                              "from data");
                    exit_data_mode(nullptr, ExitTiming::after_inactivity_flush);
                }
            } else if constexpr (std::is_same_v<T, Discarded>) {
                SLMD_DEBUG("at: discarded {} unframed bytes", e.bytes.size());
            } else if constexpr (std::is_same_v<T, PayloadLost>) {
                ++stats_.payloads_lost;
                if (e.expected == 0 && e.received > 0) {
                    SLMD_WARN("at: {} bytes arrived that no data header claimed (its header was lost on the UART)",
                              e.received);
                } else {
                    SLMD_WARN(
                        "at: the line fell silent {} bytes into a {}-byte {} payload; giving it up (modem reset "
                        "or bytes lost on the UART)",
                        e.received, e.expected,
                        e.proxy == Proxy::tcp ? "#XTCPDATA" : e.proxy == Proxy::udp ? "#XUDPDATA" : "#XRECV");
                }
                if (e.proxy == Proxy::socket && !e.handle) {
                    if (in_flight_) {
                        in_flight_->response.payload.clear();
                        in_flight_->response.payload_lost = true;
                    }
                } else if (handlers_.payload_lost) {
                    handlers_.payload_lost(e);
                }
            }
        },
        event);
}

void Channel::on_final(const FinalResult& final) {
    if (!in_flight_) {
        ++stats_.stale_finals;
        return;
    }
    if (in_flight_->resync_probe && !in_flight_->probe_answered) {
        // The late answer of the command that timed out; the probe's own answer is still to come.
        ++stats_.stale_finals;
        framer_.command_sent(resync_prefix);
        return;
    }
    auto response = std::move(in_flight_->response);
    response.final = final;
    if (final.kind != FinalKind::ok && !in_flight_->resync_probe) ++stats_.errors;
    complete_in_flight(std::move(response));
}

std::error_code Channel::write_data(std::string_view bytes) {
    if (!data_mode_writable()) return make_error_code(ChannelError::not_in_data_mode);
    if (bytes.empty()) return {};
    last_data_tx_ = std::chrono::steady_clock::now();
    last_data_tx_bytes_ = bytes.size();
    stats_.data_bytes_written += bytes.size();
    writer_.write_to_modem(std::string(bytes));
    return {};
}

std::error_code Channel::write_counted_data(std::string_view bytes, ExitHandler handler) {
    if (!data_mode_writable() || bytes.empty()) return make_error_code(ChannelError::not_in_data_mode);
    const auto error = write_data(bytes);
    if (error) return error;
    exit_handler_ = std::move(handler);
    exit_armed_ = true;  // the count is spent: nothing more goes into this session
    counted_exit_ = true;
    note_activity();
    // The firmware confirms once the bytes crossed the line; if it never does (a reboot swallowed the session,
    // or bytes went missing on the line and it still waits for them), give up as for an unanswered "+++".
    const auto on_the_wire = std::chrono::microseconds(bytes.size() * 15'000'000ULL / std::max(baud_, 1u));
    guard_timer_.expires_after(on_the_wire + std::max(time_limit_ * 4, std::chrono::milliseconds(2000)));
    guard_timer_.async_wait([this, alive = lifetime_.guard()](boost::system::error_code error) {
        if (!*alive || error || !counted_exit_ || terminator_sent_ || framer_.mode() != LinkMode::data) return;
        SLMD_WARN("at: firmware did not confirm the end of a counted data-mode send");
        // Still in data mode, perhaps waiting for bytes the line lost: the terminator ends it either way (a
        // rebooted firmware never answers, and send_terminator's own limit then gives the link up).
        send_terminator();
    });
    return {};
}

void Channel::exit_data_mode(ExitHandler handler, ExitTiming timing) {
    if (in_flight_ && in_flight_->enters_data_mode) {
        // The entry's answer may be parsed already while its handler has not run: the events of one read are
        // dispatched in order, and a URC ahead of the OK can ask for command mode. The session's owner writes
        // first (a counted send must have its bytes before anything else), then this exit runs.
        deferred_exits_.push_back({std::move(handler), timing});
        return;
    }
    // Leaving data mode already, because the channel answered the firmware's own "+++" (v2.7+ peer loss): the
    // caller waits for that exit's confirmation like for one it asked for.
    const bool answering_peer =
        framer_.mode() == LinkMode::leaving_data_mode && terminator_sent_ && !exit_handler_;
    if (framer_.mode() != LinkMode::data && !answering_peer) {
        handler(make_error_code(ChannelError::not_in_data_mode), 0);
        return;
    }
    if (counted_exit_) {
        // A counted send ends by itself; a "+++" now would be taken as its payload. Wait for that end.
        auto first = std::move(exit_handler_);
        exit_handler_ = [first = std::move(first), handler = std::move(handler)](std::error_code error, int status) {
            if (first) first(error, status);
            if (handler) handler(error, status);
        };
        return;
    }
    exit_handler_ = std::move(handler);
    note_activity();
    if (terminator_sent_) return;  // already answering a peer "+++"
    const bool silence_first = framer_.profile().data_mode_exit == DataModeExitRule::silence_both_sides;
    if (silence_first || timing == ExitTiming::after_inactivity_flush) {
        // 10 bit times per byte on the wire, with half again for UART and tty buffering.
        const auto on_the_wire =
            std::chrono::microseconds(last_data_tx_bytes_ * 15'000'000ULL / std::max(baud_, 1u));
        const auto due = silence_first ? last_data_tx_ + silence_guard + guard_margin
                                       : last_data_tx_ + on_the_wire + time_limit_ + guard_margin;
        exit_armed_ = true;
        guard_timer_.expires_at(std::max(due, std::chrono::steady_clock::now()));
        guard_timer_.async_wait([this, alive = lifetime_.guard()](boost::system::error_code error) {
            if (!*alive || error) return;
            if (framer_.mode() == LinkMode::data && !terminator_sent_) send_terminator();
        });
        return;
    }
    // v1.9+: "+++" may directly follow data; from v2.5 it is found anywhere. Releases before v2.5 only need
    // the silence after it, which holds because nothing is written until the firmware confirms the exit.
    send_terminator();
}

void Channel::send_terminator() {
    terminator_sent_ = true;
    exit_armed_ = false;
    counted_exit_ = false;
    framer_.data_mode_exit_requested();
    writer_.write_to_modem("+++");
    note_activity();
    // If the firmware never confirms, give up on the exit after a generous multiple of its time limit.
    auto confirm = std::max(time_limit_ * 4, std::chrono::milliseconds(2000));
    if (framer_.profile().data_mode_exit == DataModeExitRule::silence_both_sides) confirm += silence_guard;
    guard_timer_.expires_after(confirm);
    guard_timer_.async_wait([this, alive = lifetime_.guard()](boost::system::error_code error) {
        if (!*alive || error || !terminator_sent_) return;
        SLMD_WARN("at: firmware did not confirm leaving data mode");
        terminator_sent_ = false;
        exit_armed_ = false;
        counted_exit_ = false;
        ++stats_.timeouts;
        framer_.reset();
        resync_needed_ = true;
        if (exit_handler_) {
            auto handler = std::move(exit_handler_);
            exit_handler_ = nullptr;
            handler(make_error_code(ChannelError::timeout), 0);
        }
        pump();
        note_activity();
        if (link_unsure_) link_unsure_();
    });
}

void Channel::send_blind_terminator() {
    if (in_flight_ || framer_.mode() != LinkMode::command) return;
    writer_.write_to_modem("+++");
}

void Channel::send_quote_closer() {
    // A resync probe may be in flight: it went into the same quoted string. The garbage line the quote ends is
    // answered ERROR, which the probe logic takes for a stale final; the probe itself then times out and the
    // next one is answered.
    if ((in_flight_ && !in_flight_->resync_probe) || framer_.mode() != LinkMode::command) return;
    writer_.write_to_modem("\"" + std::string(framer_.profile().command_terminator()));
}

void Channel::shutdown() {
    terminator_sent_ = false;
    exit_armed_ = false;
    counted_exit_ = false;
    resync_needed_ = false;
    guard_timer_.cancel();
    idle_timer_.cancel();
    stall_timer_.cancel();
    confirm_timer_.cancel();
    fail_all(make_error_code(ChannelError::cancelled));
}

void Channel::link_lost() {
    terminator_sent_ = false;
    exit_armed_ = false;
    counted_exit_ = false;
    resync_needed_ = false;
    guard_timer_.cancel();
    framer_.reset();
    fail_all(make_error_code(ChannelError::link_lost));
}

}  // namespace slmd::at
