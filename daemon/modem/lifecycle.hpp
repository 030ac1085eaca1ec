// Owns: the modem lifecycle as data — its states, the events that move it, the pure transition function
// `next_state`, and the recovery budget that keeps slmd from bringing the modem up again in a loop.
// modem::Modem drives it (modem.cpp); docs/design.md "Modem lifecycle" draws it. Nothing here does I/O.
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <optional>

namespace slmd::modem {

// The names (to_string) are what STATUS= and the API's StatusReply.modem_state show.
enum class ModemState {
    starting,           // "starting": nothing sent yet
    syncing,            // "syncing": AT probes until the firmware answers (or "Ready")
    detecting_release,  // "detecting release": AT#XSLMVER
    enabling_urcs,      // "enabling registration URCs": AT+CEREG=<n>
    radio_on,           // "switching radio on": AT+CFUN=1
    registering,        // "waiting for registration": +CEREG URCs / AT+CEREG? polls
    reading_address,    // "reading address": AT+CGPADDR=0 (also after registration came back)
    serving,            // "serving": registered, address known; apps are served
    deregistered,       // "deregistered": registration lost while serving; new opens fail with ENETDOWN
    maintenance,        // "radio off for maintenance": AT+CFUN=4 for a credential write (slmctl cred), planned:
                        // no registration loss counted, no recovery; AT+CFUN=1 ends it (-> deregistered)
    recovering,         // "recovering": about to bring the modem up again (asks the recovery budget)
    backing_off,        // "backing off": waiting before the next bring-up (failure, or recovery budget spent)
    waiting_for_port,   // "waiting for serial port": the serial device is gone
    stopping,           // "stopping": graceful stop, AT+CFUN=0 in flight
    stopped,            // "stopped"
};
const char* to_string(ModemState state);

// True in the states where a bring-up sequence is running.
bool is_bringing_up(ModemState state);

enum class ModemEvent {
    start,                 // the lifecycle begins
    synced,                // the firmware answered AT
    release_detected,      // #XSLMVER read and understood
    urcs_enabled,          // AT+CEREG=<n> OK
    radio_switched_on,     // AT+CFUN=1 OK
    registered,            // +CEREG: 1|5 (during bring-up or while deregistered)
    address_read,          // AT+CGPADDR=0 gave an address
    registration_lost,     // +CEREG: other than 1|5 while serving
    bringup_failed,        // a bring-up step failed (not a reset, not serial loss)
    address_failed,        // re-reading the address after registration came back failed
    modem_ready,           // "Ready": the firmware rebooted (any state); open flows already failed
    recovery_allowed,      // the recovery budget allows another bring-up now
    recovery_denied,       // the recovery budget is spent: back off
    backoff_elapsed,       // the back-off delay is over
    serial_lost,           // the serial device went away
    serial_back,           // the serial device is back
    stop_requested,        // SIGTERM/SIGINT: AT+CFUN=0, bounded
    radio_off,             // AT+CFUN=0 answered, timed out, or was not possible
    gave_up,               // the first bring-up failed for good (slmd exits 1)
    maintenance_started,   // an administrator's credential write/delete switches the radio off (AT+CFUN=4)
    maintenance_ended,     // ... and on again (AT+CFUN=1 sent): registration is awaited as after a loss
};
const char* to_string(ModemEvent event);

// The whole transition table. An event that does not apply in a state leaves it unchanged (nullopt).
std::optional<ModemState> next_state(ModemState state, ModemEvent event);

// Reset-loop protection. slmd itself never resets the modem (no AT#XRESET, no AT#XMODEMRESET), but it does
// bring it up again (AT+CFUN=1) after resets, serial loss and failures. At most `max_recoveries` of those may
// start within `window`; one more and slmd backs off for `backoff` before trying again.
struct RecoveryPolicy {
    std::size_t max_recoveries = 5;
    std::chrono::milliseconds window{600000};    // 10 min
    std::chrono::milliseconds backoff{1800000};  // 30 min: as long as the nRF91's own reset-loop lock-out
};

class RecoveryBudget {
public:
    using Clock = std::chrono::steady_clock;
    explicit RecoveryBudget(RecoveryPolicy policy) : policy_(policy) {}

    // Asks for one recovery at `now`. Returns nullopt when it may start (and counts it), or how long to back
    // off. After a back-off the window starts empty again.
    std::optional<std::chrono::milliseconds> request(Clock::time_point now);
    // Recoveries started within the window ending at `now`.
    std::size_t recent(Clock::time_point now);
    std::uint64_t total() const { return total_; }
    std::uint64_t backoffs() const { return backoffs_; }
    const RecoveryPolicy& policy() const { return policy_; }

private:
    void forget_before(Clock::time_point now);

    RecoveryPolicy policy_;
    std::deque<Clock::time_point> started_;
    std::uint64_t total_ = 0;
    std::uint64_t backoffs_ = 0;
};

}  // namespace slmd::modem
