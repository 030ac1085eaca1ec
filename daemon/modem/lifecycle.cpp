// Owns: the modem lifecycle transition table and the recovery budget (see lifecycle.hpp).
#include "modem/lifecycle.hpp"

namespace slmd::modem {

const char* to_string(ModemState state) {
    switch (state) {
        case ModemState::starting: return "starting";
        case ModemState::syncing: return "syncing";
        case ModemState::detecting_release: return "detecting release";
        case ModemState::enabling_urcs: return "enabling registration URCs";
        case ModemState::radio_on: return "switching radio on";
        case ModemState::registering: return "waiting for registration";
        case ModemState::reading_address: return "reading address";
        case ModemState::serving: return "serving";
        case ModemState::deregistered: return "deregistered";
        case ModemState::maintenance: return "radio off for maintenance";
        case ModemState::recovering: return "recovering";
        case ModemState::backing_off: return "backing off";
        case ModemState::waiting_for_port: return "waiting for serial port";
        case ModemState::stopping: return "stopping";
        case ModemState::stopped: return "stopped";
    }
    return "?";
}

const char* to_string(ModemEvent event) {
    switch (event) {
        case ModemEvent::start: return "start";
        case ModemEvent::synced: return "synced";
        case ModemEvent::release_detected: return "release detected";
        case ModemEvent::urcs_enabled: return "URCs enabled";
        case ModemEvent::radio_switched_on: return "radio switched on";
        case ModemEvent::registered: return "registered";
        case ModemEvent::address_read: return "address read";
        case ModemEvent::registration_lost: return "registration lost";
        case ModemEvent::bringup_failed: return "bring-up failed";
        case ModemEvent::address_failed: return "address failed";
        case ModemEvent::modem_ready: return "Ready";
        case ModemEvent::recovery_allowed: return "recovery allowed";
        case ModemEvent::recovery_denied: return "recovery denied";
        case ModemEvent::backoff_elapsed: return "back-off elapsed";
        case ModemEvent::serial_lost: return "serial lost";
        case ModemEvent::serial_back: return "serial back";
        case ModemEvent::stop_requested: return "stop requested";
        case ModemEvent::radio_off: return "radio off";
        case ModemEvent::gave_up: return "gave up";
        case ModemEvent::maintenance_started: return "maintenance started";
        case ModemEvent::maintenance_ended: return "maintenance ended";
    }
    return "?";
}

bool is_bringing_up(ModemState state) {
    switch (state) {
        case ModemState::syncing:
        case ModemState::detecting_release:
        case ModemState::enabling_urcs:
        case ModemState::radio_on:
        case ModemState::registering:
        case ModemState::reading_address: return true;
        default: return false;
    }
}

std::optional<ModemState> next_state(ModemState state, ModemEvent event) {
    using S = ModemState;
    using E = ModemEvent;
    // Events that apply in (nearly) every state first.
    if (state == S::stopped) return std::nullopt;
    if (event == E::stop_requested) return state == S::stopping ? std::nullopt : std::optional(S::stopping);
    if (state == S::stopping) {
        if (event == E::radio_off) return S::stopped;
        return std::nullopt;  // a Ready or serial loss while stopping changes nothing: slmd exits anyway
    }
    if (event == E::serial_lost) return state == S::waiting_for_port ? std::nullopt : std::optional(S::waiting_for_port);
    if (event == E::modem_ready) {
        // The firmware rebooted: whatever was going on is over. Flows already failed (driver.on_modem_lost).
        // While backing off or waiting for the port, a Ready is only counted: slmd adds nothing of its own.
        if (state == S::starting || state == S::backing_off || state == S::waiting_for_port ||
            state == S::recovering) {
            return std::nullopt;
        }
        return S::recovering;
    }
    if (event == E::gave_up) return is_bringing_up(state) ? std::optional(S::stopped) : std::nullopt;
    if (event == E::bringup_failed) return is_bringing_up(state) ? std::optional(S::backing_off) : std::nullopt;
    switch (state) {
        case S::starting:
            if (event == E::start) return S::syncing;
            break;
        case S::syncing:
            if (event == E::synced) return S::detecting_release;
            break;
        case S::detecting_release:
            if (event == E::release_detected) return S::enabling_urcs;
            break;
        case S::enabling_urcs:
            if (event == E::urcs_enabled) return S::radio_on;
            break;
        case S::radio_on:
            if (event == E::radio_switched_on) return S::registering;
            break;
        case S::registering:
            if (event == E::registered) return S::reading_address;
            break;
        case S::reading_address:
            if (event == E::address_read) return S::serving;
            if (event == E::address_failed) return S::deregistered;
            if (event == E::registration_lost) return S::deregistered;
            break;
        case S::serving:
            if (event == E::registration_lost) return S::deregistered;
            if (event == E::maintenance_started) return S::maintenance;
            break;
        case S::deregistered:
            if (event == E::registered) return S::reading_address;
            if (event == E::maintenance_started) return S::maintenance;
            break;
        case S::maintenance:
            // Registration comes and goes here by design; only the radio coming back on ends the state. A Ready,
            // serial loss or stop is handled above like anywhere else.
            if (event == E::maintenance_ended) return S::deregistered;
            break;
        case S::recovering:
            if (event == E::recovery_allowed) return S::syncing;
            if (event == E::recovery_denied) return S::backing_off;
            break;
        case S::backing_off:
            if (event == E::backoff_elapsed) return S::recovering;
            break;
        case S::waiting_for_port:
            if (event == E::serial_back) return S::recovering;
            break;
        case S::stopping:
        case S::stopped: break;
    }
    return std::nullopt;
}

void RecoveryBudget::forget_before(Clock::time_point now) {
    while (!started_.empty() && now - started_.front() >= policy_.window) started_.pop_front();
}

std::size_t RecoveryBudget::recent(Clock::time_point now) {
    forget_before(now);
    return started_.size();
}

std::optional<std::chrono::milliseconds> RecoveryBudget::request(Clock::time_point now) {
    forget_before(now);
    if (started_.size() >= policy_.max_recoveries) {
        ++backoffs_;
        started_.clear();  // after the back-off, a fresh window
        return policy_.backoff;
    }
    started_.push_back(now);
    ++total_;
    return std::nullopt;
}

}  // namespace slmd::modem
