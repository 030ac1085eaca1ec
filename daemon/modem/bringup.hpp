// Owns: the bring-up sequence of an SLM modem: get in step with the firmware ("Ready" or "AT"), detect the
// release (#XSLMVER) and switch the channel to its profile, enable registration URCs, switch the radio on,
// wait for registration, read the PDP address. Each step is logged; every wait is bounded.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <system_error>

#include "at/channel.hpp"
#include "at/firmware_profile.hpp"
#include "modem/lifecycle.hpp"
#include "modem/answer_parsers.hpp"

namespace slmd::modem {

struct BringupOptions {
    std::chrono::milliseconds sync_timeout{10000};      // no answer to "AT" for this long: not a modem
    std::chrono::milliseconds probe_interval{1000};     // timeout of each "AT" probe
    std::chrono::milliseconds register_timeout{180000}; // radio on but no registration for this long: give up
    std::chrono::milliseconds registration_poll{2000};  // re-read +CEREG? in case a URC was lost
    int command_attempts = 3;                           // ERROR/timeout retries per step (noise on the line)
    int cereg_mode = 5;
    // Called as each step completes (synced, release_detected, urcs_enabled, radio_switched_on, registered):
    // the lifecycle follows bring-up through its states. May be empty.
    std::function<void(ModemEvent)> on_step;
};

// What bring-up learnt about the modem.
struct ModemInfo {
    SlmVersion version;
    at::FirmwareProfile profile;
    Registration registration = Registration::not_registered;
    PdpAddresses addresses;
};

enum class BringupError {
    not_responding = 1,  // nothing answered "AT"
    not_slm,             // answers AT but not #XSLMVER
    unknown_release,     // #XSLMVER text we cannot read
    command_failed,      // a bring-up command kept failing
    not_registered,      // no registration within register_timeout
    no_address,          // registered but no PDP address
    modem_reset,         // "Ready" during bring-up (the caller starts over)
    link_lost,
};
const std::error_category& bringup_category();
std::error_code make_error_code(BringupError error);

// Registration state fed from +CEREG URCs, and whether the modem rebooted ("Ready") since bring-up began;
// bring-up waits on it.
class RegistrationWatch {
public:
    explicit RegistrationWatch(boost::asio::any_io_executor executor) : changed_(executor) {}
    void update(Registration status);
    void note_reset();
    bool reset_noted() const { return reset_noted_; }
    std::optional<Registration> current() const { return current_; }
    void clear() {
        current_.reset();
        reset_noted_ = false;
    }
    // Returns when the status changes or the deadline passes.
    boost::asio::awaitable<void> wait_change(std::chrono::steady_clock::time_point deadline);

private:
    boost::asio::steady_timer changed_;
    std::optional<Registration> current_;
    bool reset_noted_ = false;
};

struct BringupResult {
    std::error_code error;
    std::string message;  // human-readable reason when error is set
    ModemInfo info;
};

boost::asio::awaitable<BringupResult> bring_up(at::Channel& channel, RegistrationWatch& registration,
                                              const BringupOptions& options);

}  // namespace slmd::modem

template <>
struct std::is_error_code_enum<slmd::modem::BringupError> : std::true_type {};
