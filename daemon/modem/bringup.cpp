// Owns: the bring-up sequence (see bringup.hpp).
#include "modem/bringup.hpp"

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "modem/slm_commands.hpp"
#include "sys/log.hpp"

namespace slmd::modem {

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

class BringupCategory final : public std::error_category {
public:
    const char* name() const noexcept override { return "slmd.modem.bringup"; }
    std::string message(int value) const override {
        switch (static_cast<BringupError>(value)) {
            case BringupError::not_responding: return "modem does not respond to AT";
            case BringupError::not_slm:
                return "device answers AT but runs neither SLM nor Serial Modem firmware";
            case BringupError::unknown_release: return "unrecognised SLM release";
            case BringupError::command_failed: return "bring-up command failed";
            case BringupError::not_registered: return "no network registration";
            case BringupError::no_address: return "registered but no PDP address";
            case BringupError::modem_reset: return "modem reset during bring-up";
            case BringupError::link_lost: return "serial link lost during bring-up";
        }
        return "unknown bring-up error";
    }
};

BringupResult failure(BringupError error, std::string message) {
    return BringupResult{make_error_code(error), std::move(message), {}};
}

// Maps what the channel said about a command to the bring-up error that aborts the sequence, if any.
std::optional<BringupError> fatal_channel_error(const at::CommandResponse& response) {
    if (response.error == at::ChannelError::modem_reset) return BringupError::modem_reset;
    if (response.error == at::ChannelError::link_lost) return BringupError::link_lost;
    return std::nullopt;
}

// Takes the request by reference: it lives in the caller's frame for the whole co_await. (GCC 12 miscompiles
// prvalue class arguments of coroutines: the frame's copy ends up pointing into the caller's temporary.)
// `needs_info`: an OK without the command's info line is a misattributed answer, retried like an ERROR.
asio::awaitable<at::CommandResponse> run_with_retries(at::Channel& channel, const at::CommandRequest& request,
                                                      int attempts, bool needs_info = false) {
    at::CommandResponse response;
    for (int attempt = 1; attempt <= attempts; ++attempt) {
        response = co_await channel.async_command(request, asio::use_awaitable);
        if ((response.ok() && (!needs_info || !response.info.empty())) || fatal_channel_error(response))
            co_return response;
        SLMD_WARN("modem: {} -> {} (attempt {}/{})", request.line, response.describe(), attempt, attempts);
    }
    co_return response;
}

}  // namespace

const std::error_category& bringup_category() {
    static const BringupCategory category;
    return category;
}
std::error_code make_error_code(BringupError error) { return {static_cast<int>(error), bringup_category()}; }

void RegistrationWatch::update(Registration status) {
    current_ = status;
    changed_.cancel();
}

void RegistrationWatch::note_reset() {
    reset_noted_ = true;
    current_.reset();
    changed_.cancel();
}

asio::awaitable<void> RegistrationWatch::wait_change(std::chrono::steady_clock::time_point deadline) {
    changed_.expires_at(deadline);
    boost::system::error_code ignored;
    co_await changed_.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
}

asio::awaitable<BringupResult> bring_up(at::Channel& channel, RegistrationWatch& registration,
                                         const BringupOptions& options) {
    // A "Ready" between two commands reboots the modem just as surely as one during a command.
    auto step_done = [&](ModemEvent event) {
        if (options.on_step) options.on_step(event);
    };
    auto rebooted = [&](const char* step) -> std::optional<BringupResult> {
        if (!registration.reset_noted()) return std::nullopt;
        return failure(BringupError::modem_reset, step);
    };

    // 1. Sync: the firmware may be booting (Ready comes by itself) or already up (answers AT).
    SLMD_INFO("modem: syncing");
    const auto sync_deadline = std::chrono::steady_clock::now() + options.sync_timeout;
    bool synced = false;
    bool escaped = false;
    while (std::chrono::steady_clock::now() < sync_deadline) {
        const at::CommandRequest probe = command::probe(options.probe_interval);
        auto response = co_await channel.async_command(probe, asio::use_awaitable);
        if (response.ok()) {
            synced = true;
            break;
        }
        if (response.error == at::ChannelError::link_lost) {
            co_return failure(BringupError::link_lost, "serial link lost while syncing");
        }
        // slmd is stopping (Channel::shutdown): probing on until the sync deadline would only delay the exit.
        if (response.error == at::ChannelError::cancelled) co_return failure(BringupError::link_lost, "stopping");
        if (response.error == at::ChannelError::modem_reset) {
            SLMD_INFO("modem: Ready received");
            continue;
        }
        if (!response.error) {
            // ERROR to plain AT: noise glued to the command; try again.
            continue;
        }
        if (response.error == at::ChannelError::timeout && !escaped) {
            // No answer at all: the firmware may still be in the data mode it kept over a serial loss or a
            // restart of slmd, taking "AT" as payload. Leave it with "+++", then keep the line silent for the
            // time limit (before v2.5 the silence after it is what makes it a terminator).
            escaped = true;
            SLMD_INFO("modem: no answer to AT; sending \"+++\" in case the firmware is still in data mode");
            channel.send_blind_terminator();
            asio::steady_timer quiet(co_await asio::this_coro::executor, channel.data_mode_time_limit() * 2 + 50ms);
            boost::system::error_code ignored;
            co_await quiet.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
        } else if (response.error == at::ChannelError::timeout) {
            // Still nothing, so not data mode: the command parser may be stuck inside a quoted string. A
            // modem that rebooted while slmd was writing a payload took those bytes for a command, and one odd
            // '"' among them makes it ignore every line end until the next '"'. Close the quote; if there was
            // none this opens one, and the next silence closes it again.
            SLMD_INFO("modem: still no answer to AT; sending '\"' in case the firmware's parser is inside quotes");
            channel.send_quote_closer();
            // Its ERROR (for the garbage line it ends) arrives before the next probe, not as that probe's answer.
            asio::steady_timer settle(co_await asio::this_coro::executor, 200ms);
            boost::system::error_code ignored;
            co_await settle.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
        }
    }
    if (!synced) {
        co_return failure(BringupError::not_responding,
                          "no answer to AT within " + std::to_string(options.sync_timeout.count()) + " ms");
    }
    SLMD_INFO("modem: in sync");
    step_done(ModemEvent::synced);
    // Resets seen while syncing are part of getting in step; from here on one means starting over.
    registration.clear();

    // 2. Release detection: SLM answers #XSLMVER; the Serial Modem add-on answers it with ERROR and #XSMVER
    // instead.
    const at::CommandRequest read_version = command::read_slm_version();
    const at::CommandRequest read_sm_version = command::read_serial_modem_version();
    at::CommandResponse version_response;
    at::CommandResponse sm_response;
    bool serial_modem = false;
    for (int attempt = 1; attempt <= options.command_attempts; ++attempt) {
        version_response = co_await channel.async_command(read_version, asio::use_awaitable);
        if (auto fatal = fatal_channel_error(version_response)) co_return failure(*fatal, "while reading #XSLMVER");
        if (version_response.ok() && !version_response.info.empty()) break;
        sm_response = co_await channel.async_command(read_sm_version, asio::use_awaitable);
        if (auto fatal = fatal_channel_error(sm_response)) co_return failure(*fatal, "while reading #XSMVER");
        if (sm_response.ok() && !sm_response.info.empty()) {
            serial_modem = true;
            version_response = std::move(sm_response);
            break;
        }
        SLMD_WARN("modem: AT#XSLMVER -> {}, AT#XSMVER -> {} (attempt {}/{})", version_response.describe(),
                  sm_response.describe(), attempt, options.command_attempts);
    }
    if (!version_response.ok() || version_response.info.empty()) {
        co_return failure(BringupError::not_slm, "AT#XSLMVER answered " + version_response.describe() +
                                                     ", AT#XSMVER " + sm_response.describe());
    }
    const std::optional<SlmVersion> version = serial_modem ? parse_smver(version_response.info.front())
                                                           : parse_slmver(version_response.info.front());
    auto release = version ? at::parse_firmware_version(version->ncs_version) : std::nullopt;
    if (!release) {
        co_return failure(BringupError::unknown_release, "cannot read " + version_response.info.front());
    }
    ModemInfo info;
    info.version = *version;
    info.profile = serial_modem ? at::FirmwareProfile::for_serial_modem(*release)
                                : at::FirmwareProfile::for_version(*release);
    channel.set_profile(info.profile);
    if (serial_modem) {
        SLMD_NOTICE("modem: Serial Modem {} (NCS {}), using its socket driver", version->ncs_version,
                    version->modem_library);
    } else {
        SLMD_NOTICE("modem: SLM release {} (modem library {}), using profile {}", version->ncs_version,
                    version->modem_library, info.profile.version.to_string());
    }
    step_done(ModemEvent::release_detected);

    // 3. Registration URCs, then the radio.
    if (auto reset = rebooted("after reading the release")) co_return *reset;
    const at::CommandRequest enable_cereg = command::set_registration_reports(options.cereg_mode);
    auto cereg = co_await run_with_retries(channel, enable_cereg, options.command_attempts);
    if (auto fatal = fatal_channel_error(cereg)) co_return failure(*fatal, "while enabling +CEREG");
    if (!cereg.ok()) co_return failure(BringupError::command_failed, "AT+CEREG answered " + cereg.describe());
    SLMD_INFO("modem: registration URCs enabled");
    step_done(ModemEvent::urcs_enabled);
    if (auto reset = rebooted("after enabling +CEREG")) co_return *reset;

    const at::CommandRequest radio_on = command::set_functional_mode(1, 30s);
    auto cfun = co_await run_with_retries(channel, radio_on, options.command_attempts);
    if (auto fatal = fatal_channel_error(cfun)) co_return failure(*fatal, "while switching the radio on");
    if (!cfun.ok()) co_return failure(BringupError::command_failed, "AT+CFUN=1 answered " + cfun.describe());
    SLMD_INFO("modem: radio on, waiting for registration");
    step_done(ModemEvent::radio_switched_on);

    // 4. Registration: URCs wake us; a periodic read covers a URC that was lost.
    const auto register_deadline = std::chrono::steady_clock::now() + options.register_timeout;
    while (!(registration.current() && is_registered(*registration.current()))) {
        const auto now = std::chrono::steady_clock::now();
        if (now >= register_deadline) {
            co_return failure(BringupError::not_registered,
                              std::string("still ") +
                                  (registration.current() ? to_string(*registration.current()) : "not registered") +
                                  " after " + std::to_string(options.register_timeout.count()) + " ms");
        }
        const at::CommandRequest read_registration = command::read_registration();
        auto read = co_await channel.async_command(read_registration, asio::use_awaitable);
        if (auto fatal = fatal_channel_error(read)) co_return failure(*fatal, "while waiting for registration");
        if (read.ok() && !read.info.empty()) {
            if (auto status = parse_cereg_read(read.info.front())) registration.update(*status);
        }
        if (auto reset = rebooted("while waiting for registration")) co_return *reset;
        if (registration.current() && is_registered(*registration.current())) break;
        co_await registration.wait_change(std::min(register_deadline, now + options.registration_poll));
        if (auto reset = rebooted("while waiting for registration")) co_return *reset;
    }
    info.registration = *registration.current();
    SLMD_NOTICE("modem: {}", to_string(info.registration));
    step_done(ModemEvent::registered);

    // 5. Address of the default PDP context.
    if (auto reset = rebooted("after registering")) co_return *reset;
    const at::CommandRequest read_address = command::read_address();
    auto address = co_await run_with_retries(channel, read_address, options.command_attempts, true);
    if (auto fatal = fatal_channel_error(address)) co_return failure(*fatal, "while reading the address");
    std::optional<PdpAddresses> parsed;
    if (address.ok() && !address.info.empty()) parsed = parse_cgpaddr(address.info.front());
    if (!parsed || (parsed->ipv4.empty() && parsed->ipv6.empty())) {
        co_return failure(BringupError::no_address, "AT+CGPADDR=0 answered " + address.describe());
    }
    if (auto reset = rebooted("while reading the address")) co_return *reset;
    info.addresses = *parsed;
    SLMD_NOTICE("modem: address {}{}{}", info.addresses.ipv4, info.addresses.ipv6.empty() ? "" : " ",
                info.addresses.ipv6);
    co_return BringupResult{{}, {}, info};
}

}  // namespace slmd::modem
