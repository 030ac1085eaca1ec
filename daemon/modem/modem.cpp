// Owns: the modem lifecycle loop (see modem.hpp; states and transitions in lifecycle.hpp).
#include "modem/modem.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cerrno>

#include "modem/admin_command.hpp"
#include "modem/slm_commands.hpp"
#include "sys/log.hpp"

namespace slmd::modem {

namespace {

AdminOutcome admin_outcome(at::FinalKind kind) {
    switch (kind) {
        case at::FinalKind::ok: return AdminOutcome::ok;
        case at::FinalKind::error: return AdminOutcome::error;
        case at::FinalKind::cme_error: return AdminOutcome::cme_error;
        case at::FinalKind::cms_error: return AdminOutcome::cms_error;
    }
    return AdminOutcome::error;
}

AdminCommandResult admin_failure(int error, std::string message) {
    AdminCommandResult result;
    result.error = error;
    result.message = std::move(message);
    return result;
}

}  // namespace

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

long long seconds(std::chrono::milliseconds duration) { return static_cast<long long>(duration.count() / 1000); }

}  // namespace

Modem::Modem(asio::any_io_executor executor, serial::Link& link, ModemOptions options)
    : executor_(executor),
      link_(link),
      options_(options),
      // Until #XSLMVER says otherwise, assume the newest behaviour; bring-up switches the profile.
      channel_(executor, *this, at::FirmwareProfile::for_version({2, 9, 0}), options.baud),
      registration_(executor),
      driver_(executor, channel_,
              SlmProxyDriverHooks{
                  .serving = [this] { return state_ == ModemState::serving && !resetting_; },
                  .link_backlog = [this] { return link_.queued_bytes(); },
                  .link_written = [this] { return link_.bytes_written(); },
                  .pause_receive =
                      [this](bool paused) {
                          link_.pause_reading(paused);
                          channel_.set_receive_paused(paused);
                      },
              },
              SlmDriverOptions{.sockets = {.answer_wait = options.answer_wait},
                               .max_connections = options.max_connections,
                               .proxy_for_tls_only = options.tcp_proxy_tls_only,
                               .udp_move_retry = options.udp_move_retry}),
      sm_gate_(channel_),
      sm_driver_(executor, channel_, sm_gate_, [this] { return state_ == ModemState::serving && !resetting_; },
                 SerialModemDriverOptions{.max_connections = options.max_connections}),
      switch_(driver_, sm_driver_, [this] { return serial_modem(); }),
      wakeup_(executor),
      state_changed_(executor),
      budget_(options.recovery) {
    options_.bringup.on_step = [this](ModemEvent event) { transition(event); };
    driver_.proxy().set_tls_servers(options_.tls_servers, options_.dtls_servers, options_.native_tls);
}

ModemCounters Modem::counters() const {
    const auto& driver = driver_.proxy().stats();
    const auto& channel = channel_.stats();
    ModemCounters out;
    out.at_commands = channel.commands;
    out.at_errors = channel.errors;
    out.at_timeouts = channel.timeouts;
    out.data_mode_sessions =
        driver.data_mode_entries + driver.udp_data_mode_sends + sm_driver_.stats().counted_sends;
    out.udp_suspensions = driver.udp_suspensions;
    out.udp_refused_tcp_busy = driver.udp_refused_tcp_busy;
    out.modem_resets = stats_.readys;
    out.admin_resets = stats_.admin_resets;
    out.registration_losses = stats_.registration_losses;
    out.recoveries = stats_.recoveries;
    out.recovery_backoffs = stats_.backoffs;
    return out;
}

Modem::~Modem() { lifetime_.end(); }

void Modem::transition(ModemEvent event) {
    const auto next = next_state(state_, event);
    if (!next || *next == state_) return;
    if (event == ModemEvent::synced) synced_once_ = true;
    SLMD_DEBUG("modem: {} -> {} ({})", to_string(state_), to_string(*next), to_string(event));
    state_ = *next;
    state_changed_.cancel();
}

void Modem::start(FirstResultHandler on_first_result) {
    on_first_result_ = std::move(on_first_result);
    channel_.set_handlers(at::ChannelHandlers{
        .urc =
            [this](const std::string& text) {
                on_urc(text);
                if (!serial_modem()) driver_.on_link_activity();  // a URC may have ended the UDP proxy
            },
        .ready = [this] { on_ready(); },
        .proxy_data =
            [this](at::ProxyData&& data) {
                if (data.handle) {
                    sm_driver_.on_proxy_data(std::move(data));
                } else {
                    driver_.on_proxy_data(std::move(data));
                }
            },
        .raw_data = [this](std::string_view bytes) { driver_.on_raw_data(bytes); },
        .data_mode_exited =
            [this](int status) {
                // Serial Modem sessions end by count and are followed by the one that began them; its URCs
                // wait for the end of data mode instead of being dropped.
                if (serial_modem()) return;
                driver_.on_data_mode_exited(status);
                // The firmware drops modem URCs in data mode instead of holding them (reference section 1,
                // "What a host daemon must do" 12): a +CEREG sent meanwhile is lost. A session that ended with an
                // error, or on its own, ended because a proxy broke, and a network loss is what breaks every
                // proxy at once: read the registration again. (-139, EOVERFLOW: a UDP datagram did not fit the
                // firmware's buffer; nothing broke.)
                const bool broke = status != 0 && status != -139;
                if (broke || !channel_.last_exit_requested()) recheck_registration();
            },
        .payload_lost =
            [this](const at::PayloadLost& lost) {
                if (lost.handle) {
                    sm_driver_.on_payload_lost(lost);
                } else {
                    driver_.on_payload_lost(lost);
                }
            },
    });
    // A slow app's pause of the serial line holds only while nothing else needs the line: every change of
    // what the channel awaits is a reason to look again (modem/slm_receive_pause.cpp).
    channel_.set_activity_listener([this] { driver_.on_link_activity(); });
    // An unconfirmed data-mode exit: the firmware rebooted under a transfer (its "Ready" was payload) or is stuck
    // in data mode. Start over as after a reset: open flows fail, and the bring-up syncs again (with "+++" if
    // the firmware still swallows commands); its proxies are closed as orphans.
    channel_.set_link_unsure_handler([this] {
        if (state_ != ModemState::serving && state_ != ModemState::deregistered) return;
        SLMD_WARN("modem: the firmware did not confirm leaving data mode; bringing it up again");
        reset_seen_ = true;
        registration_.note_reset();
        modem_lost();
        wake();
    });
    link_.set_write_listener([this] { driver_.on_link_drained(); });
    link_.set_answer_awaited([this] { return channel_.awaiting_modem(); });
    link_.start([this](std::string_view bytes) { channel_.feed(bytes); },
                [this](std::error_code) {
                    link_down_ = true;
                    channel_.link_lost();
                    modem_lost();
                    wake();
                },
                [this] {
                    link_down_ = false;
                    wake();
                });
    transition(ModemEvent::start);
    asio::co_spawn(executor_, run(), asio::detached);
}

void Modem::on_ready() {
    reset_seen_ = true;
    registration_.note_reset();
    modem_lost();
    if (resetting_) {
        // The reset an administrator asked for: counted as one, not warned about as a surprise reboot.
        resetting_ = false;
        ++stats_.readys;
        SLMD_NOTICE("modem: firmware reset (administrator's request) done; bringing the modem up again");
        wake();
        return;
    }
    // A Ready while syncing is the firmware finishing its boot, not a reboot worth counting.
    if (synced_once_ && state_ != ModemState::syncing && state_ != ModemState::stopping) {
        const auto now = std::chrono::steady_clock::now();
        ++stats_.readys;
        readys_.push_back(now);
        while (!readys_.empty() && now - readys_.front() >= options_.recovery.window) readys_.pop_front();
        // slmd adds no reset of its own (it never sends AT#XRESET); it only counts, and recovers within budget.
        SLMD_WARN("modem: firmware rebooted (Ready) while {}: {} reboot(s) within {} s, {} in total", to_string(state_),
                  readys_.size(), seconds(options_.recovery.window), stats_.readys);
    }
    wake();
}

void Modem::wake() { wakeup_.cancel(); }

void Modem::stop() {
    stopping_ = true;
    state_ = ModemState::stopped;
    modem_lost();
    channel_.shutdown();
    registration_.note_reset();
    wake();
}

void Modem::shutdown(std::function<void()> done) {
    if (stopping_) {
        done();
        return;
    }
    // The radio may be on once bring-up got past syncing; before that (or without a port) there is nobody to
    // tell, and the bounded wait would only delay the exit.
    const bool reachable = !link_down_ && state_ != ModemState::starting && state_ != ModemState::syncing &&
                           state_ != ModemState::waiting_for_port && synced_once_;
    stopping_ = true;
    transition(ModemEvent::stop_requested);
    modem_lost();      // open flows fail (ECONNRESET) and the driver forgets its proxies
    registration_.note_reset();   // a bring-up in progress stops at its next step, before another AT+CFUN=1
    wake();
    if (!reachable) {
        SLMD_INFO("modem: stopping without AT+CFUN=0 (modem not reachable)");
        transition(ModemEvent::radio_off);
        done();
        return;
    }
    asio::co_spawn(executor_, radio_off(std::move(done)), asio::detached);
}

asio::awaitable<void> Modem::radio_off(std::function<void()> done) {
    auto alive = lifetime_.guard();
    const auto started = std::chrono::steady_clock::now();
    auto finished = std::make_shared<bool>(false);
    auto finish = [this, alive, finished, done](const std::string& how) {
        if (*finished || !*alive) return;
        *finished = true;
        transition(ModemEvent::radio_off);
        SLMD_NOTICE("modem: radio off ({})", how);
        done();
    };
    // The bound covers everything below: a data-mode exit, a command in flight ahead of ours, a silent modem.
    auto bound = std::make_shared<asio::steady_timer>(executor_, options_.stop_timeout);
    bound->async_wait([finish, this](boost::system::error_code error) {
        if (!error) finish("AT+CFUN=0 unanswered after " + std::to_string(options_.stop_timeout.count()) + " ms");
    });
    if (channel_.mode() == at::LinkMode::data) {
        auto left = std::make_shared<asio::steady_timer>(executor_, asio::steady_timer::time_point::max());
        channel_.exit_data_mode([left](std::error_code, int) { left->cancel(); });
        boost::system::error_code ignored;
        co_await left->async_wait(asio::redirect_error(asio::use_awaitable, ignored));
        if (!*alive || *finished) co_return;
    }
    SLMD_INFO("modem: AT+CFUN=0");
    const at::CommandRequest radio_off = command::set_functional_mode(0, options_.stop_timeout);
    auto response = co_await channel_.async_command(radio_off, asio::use_awaitable);
    if (!*alive) co_return;
    bound->cancel();
    const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
    finish(response.ok() ? "AT+CFUN=0 OK after " + std::to_string(took.count()) + " ms"
                         : "AT+CFUN=0 -> " + response.describe());
}

bool Modem::up() const {
    return !stopping_ && !resetting_ && !link_down_ &&
           (state_ == ModemState::serving || state_ == ModemState::deregistered);
}

void Modem::admin_command(std::string line, bool force, unsigned uid, std::chrono::milliseconds timeout,
                          std::function<void(AdminCommandResult)> done) {
    const auto check = check_admin_command(line);
    if (check.verdict == AdminVerdict::invalid) {
        done(admin_failure(EINVAL, "not a valid AT command: " + check.reason));
        return;
    }
    // A credential written by hand (AT%CMNG=0,…) is never logged with its content.
    const std::string shown = redact_credential_line(line);
    if (check.verdict == AdminVerdict::needs_force) {
        if (!force) {
            ++stats_.admin_refusals;
            SLMD_NOTICE("modem: refused uid {}'s {}: {}", uid, shown, check.reason);
            done(admin_failure(EPERM, check.reason + " (refused without force)"));
            return;
        }
        SLMD_WARN("modem: uid {} forces {} ({}); slmd's view of the modem may no longer be right", uid, shown,
                  check.reason);
    }
    if (!up()) {
        done(admin_failure(ENETDOWN, std::string("the modem is not up (") + to_string(state_) + ")"));
        return;
    }
    ++stats_.admin_commands;
    SLMD_INFO("modem: uid {} sends {}", uid, shown);
    at::CommandRequest request{line, admin_response_prefix(line), timeout, true};
    if (shown != line) request.log_as = shown;
    channel_.submit(std::move(request), [shown, uid, done = std::move(done)](at::CommandResponse response) {
        SLMD_INFO("modem: uid {}'s {} -> {}", uid, shown, response.describe());
        if (!response.error) {
            done({0, "", admin_outcome(response.final.kind), response.final.code, std::move(response.info)});
        } else if (response.error == at::ChannelError::timeout) {
            done(admin_failure(ETIMEDOUT, "the modem did not answer in time"));
        } else if (response.error == at::ChannelError::modem_reset) {
            done(admin_failure(ECONNRESET, "the modem reset before answering"));
        } else {
            done(admin_failure(ENETDOWN, response.error.message()));
        }
    });
}

int Modem::admin_reset(unsigned uid) {
    if (stopping_ || resetting_) return EBUSY;
    if (!up()) return ENETDOWN;
    const auto now = std::chrono::steady_clock::now();
    // The bring-up after the reset asks the budget like any recovery; refuse now rather than let it back off.
    if (budget_.recent(now) >= options_.recovery.max_recoveries) {
        SLMD_NOTICE("modem: refused uid {}'s reset: {} recoveries within {} s already (recovery-max)", uid,
                    budget_.recent(now), seconds(options_.recovery.window));
        return EAGAIN;
    }
    resetting_ = true;
    ++stats_.admin_resets;
    SLMD_NOTICE("modem: uid {} resets the modem: closing proxies, AT+CFUN=0, AT#XRESET", uid);
    modem_lost();  // open flows fail with ECONNRESET; the firmware's proxies go with the reset
    asio::co_spawn(executor_, reset_sequence(), asio::detached);
    return 0;
}

asio::awaitable<void> Modem::reset_sequence() {
    auto alive = lifetime_.guard();
    if (channel_.mode() == at::LinkMode::data) {
        auto left = std::make_shared<asio::steady_timer>(executor_, asio::steady_timer::time_point::max());
        channel_.exit_data_mode([left](std::error_code, int) { left->cancel(); });
        boost::system::error_code ignored;
        co_await left->async_wait(asio::redirect_error(asio::use_awaitable, ignored));
        if (!*alive || !resetting_) co_return;
    }
    // CFUN=0 first: the firmware saves its network state, and a reset without it counts towards the nRF91's
    // reset-loop lock-out.
    // Named requests, not temporaries inside co_await: GCC 12 miscompiles the latter (a double free).
    const at::CommandRequest radio_off = command::set_functional_mode(0, options_.stop_timeout);
    auto off = co_await channel_.async_command(radio_off, asio::use_awaitable);
    if (!*alive || !resetting_) co_return;
    if (!off.ok()) SLMD_WARN("modem: AT+CFUN=0 before the reset -> {}", off.describe());
    const at::CommandRequest firmware_reset = command::reset_firmware();
    auto reset = co_await channel_.async_command(firmware_reset, asio::use_awaitable);
    if (!*alive || !resetting_) co_return;  // "Ready" came: on_ready took over
    if (!reset.ok()) SLMD_WARN("modem: AT#XRESET -> {}", reset.describe());
    // No "Ready" yet: wait for it a while, then bring the modem up again all the same (its radio is off).
    asio::steady_timer ready_wait(executor_, 10s);
    boost::system::error_code ignored;
    co_await ready_wait.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    if (!*alive || !resetting_) co_return;
    SLMD_WARN("modem: no Ready within 10 s of AT#XRESET; bringing the modem up again");
    resetting_ = false;
    reset_seen_ = true;
    wake();
}

namespace {

const char* operation_name(CredentialOperation operation) {
    switch (operation) {
        case CredentialOperation::write: return "write";
        case CredentialOperation::list: return "list";
        case CredentialOperation::remove: return "delete";
    }
    return "?";
}

}  // namespace

void Modem::credential(CredentialCommand command, unsigned uid, std::function<void(CredentialResult)> done) {
    if (auto refusal = validate_credential(command)) {
        SLMD_NOTICE("modem: refused uid {}'s credential {}: {}", uid, operation_name(command.operation),
                    refusal->message);
        done(std::move(*refusal));
        return;
    }
    if (credential_job_) {
        done({EBUSY, "another credential operation is under way", {}});
        return;
    }
    const bool in_sync = synced_once_ && !stopping_ && !resetting_ && !link_down_ &&
                         state_ != ModemState::starting && state_ != ModemState::syncing &&
                         state_ != ModemState::recovering && state_ != ModemState::waiting_for_port;
    if (!in_sync) {
        done({ENETDOWN, std::string("the modem is not up (") + to_string(state_) + ")", {}});
        return;
    }
    const bool radio_off = command.operation != CredentialOperation::list && !options_.native_tls;
    bool reset_connections = false;
    if (radio_off) {
        if (!up()) {
            done({ENETDOWN, std::string("the modem is not up (") + to_string(state_) + ")", {}});
            return;
        }
        const auto open =
            driver_.proxy().descriptors_in_use() + driver_.sockets().open_count() + sm_driver_.open_count();
        if (open > 0 && !command.force) {
            SLMD_NOTICE("modem: refused uid {}'s credential {}: {} connection(s) open", uid,
                        operation_name(command.operation), open);
            done({EBUSY,
                  std::to_string(open) + (open == 1 ? " connection" : " connections") +
                      " open (the radio goes off for a moment); --force resets them",
                  {}});
            return;
        }
        reset_connections = open > 0;
    }
    ++stats_.credential_operations;
    SLMD_NOTICE("modem: uid {} credential {} sec_tag {} type {}{}{}", uid, operation_name(command.operation),
                command.sec_tag, command.type,
                command.operation == CredentialOperation::write
                    ? " (" + std::to_string(command.content.size()) + " bytes)"
                    : std::string(),
                reset_connections ? ", resetting the open connections (force)" : "");
    credential_job_ = CredentialJob{std::move(command), uid, reset_connections, std::move(done)};
    asio::co_spawn(executor_, credential_sequence(), asio::detached);
}

asio::awaitable<void> Modem::leave_data_mode() {
    if (channel_.mode() != at::LinkMode::data) co_return;
    auto left = std::make_shared<asio::steady_timer>(executor_, asio::steady_timer::time_point::max());
    channel_.exit_data_mode([left](std::error_code, int) { left->cancel(); });
    boost::system::error_code ignored;
    co_await left->async_wait(asio::redirect_error(asio::use_awaitable, ignored));
}

asio::awaitable<void> Modem::credential_sequence() {
    auto alive = lifetime_.guard();
    const auto& job = *credential_job_;
    const bool radio_off = job.command.operation != CredentialOperation::list && !options_.native_tls;
    if (job.reset_connections) {
        modem_lost();  // open flows fail with ECONNRESET; the proxies are closed as orphans later
        co_await leave_data_mode();
        if (!*alive) co_return;
    }
    CredentialHooks hooks;
    hooks.native_tls = options_.native_tls;
    bool in_maintenance = false;
    hooks.radio_going_off = [this, alive, &in_maintenance] {
        if (!*alive) return;
        in_maintenance = true;
        transition(ModemEvent::maintenance_started);
        // Registration goes with the radio; it must be seen anew once the radio is back.
        registration_.update(Registration::not_registered);
    };
    hooks.radio_back = [this, alive] {
        if (!*alive) return;
        transition(ModemEvent::maintenance_ended);  // -> deregistered: serve() reads the address once registered
        wake();
    };
    auto result = co_await run_credential_command(channel_, job.command, hooks);
    if (!*alive) co_return;
    if (radio_off && in_maintenance) {
        // Wait for the normal registration, as bring-up does: URCs wake us, AT+CEREG? covers a lost one.
        const auto deadline = std::chrono::steady_clock::now() + options_.bringup.register_timeout;
        while (state_ != ModemState::serving && !stopping_ && !link_down_ && !reset_seen_ &&
               (state_ == ModemState::deregistered || state_ == ModemState::reading_address)) {
            const auto now = std::chrono::steady_clock::now();
            if (now >= deadline) {
                SLMD_WARN("modem: not registered again within {} ms of the credential {}",
                          options_.bringup.register_timeout.count(), operation_name(job.command.operation));
                if (result.error == 0) result.message = "done, but the modem has not registered again yet";
                break;
            }
            const auto current = registration_.current();
            if (state_ == ModemState::deregistered && !(current && is_registered(*current))) {
                const at::CommandRequest read_registration = command::read_registration();
                auto read = co_await channel_.async_command(read_registration, asio::use_awaitable);
                if (!*alive) co_return;
                if (read.ok() && !read.info.empty()) {
                    if (auto status = parse_cereg_read(read.info.front())) {
                        registration_.update(*status);
                        if (is_registered(*status)) wake();
                    }
                }
                if (state_ == ModemState::serving) break;
            }
            state_changed_.expires_at(std::min(deadline, std::chrono::steady_clock::now() +
                                                             options_.bringup.registration_poll));
            boost::system::error_code ignored;
            co_await state_changed_.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
            if (!*alive) co_return;
        }
        if (state_ == ModemState::serving) {
            SLMD_NOTICE("modem: serving again after the credential {}", operation_name(job.command.operation));
            if (job.reset_connections) serving_again();  // close what the firmware kept of the reset proxies
        }
    }
    SLMD_NOTICE("modem: uid {}'s credential {} sec_tag {} type {} -> {}", job.uid,
                operation_name(job.command.operation), job.command.sec_tag, job.command.type,
                result.error == 0 ? std::string("done") + (job.command.operation == CredentialOperation::list
                                                               ? " (" + std::to_string(result.entries.size()) + " entries)"
                                                               : std::string())
                                  : result.message);
    auto done = std::move(credential_job_->done);
    credential_job_.reset();
    done(std::move(result));
}

void Modem::modem_lost() {
    driver_.on_modem_lost();
    sm_driver_.on_modem_lost();
    sm_gate_.reset();
}

void Modem::serving_again() {
    if (serial_modem()) {
        sm_driver_.on_serving();
    } else {
        driver_.on_serving();
    }
}

void Modem::on_urc(const std::string& text) {
    if (serial_modem() ? sm_driver_.on_urc(text) : driver_.on_urc(text)) return;
    if (auto status = parse_cereg_urc(text)) {
        registration_seen(*status);
        return;
    }
    SLMD_DEBUG("modem: URC {}", text);
}

void Modem::registration_seen(Registration status) {
    registration_.update(status);
    if (state_ == ModemState::serving && !is_registered(status)) {
        ++stats_.registration_losses;
        transition(ModemEvent::registration_lost);
        SLMD_NOTICE("modem: {}; registration lost, new connections fail with ENETDOWN until it is back",
                    to_string(status));
        wake();
    } else if (state_ == ModemState::deregistered && is_registered(status)) {
        SLMD_NOTICE("modem: {}", to_string(status));
        wake();
    }
}

void Modem::recheck_registration() {
    if (registration_check_pending_ || stopping_ || link_down_ || reset_seen_) return;
    if (state_ != ModemState::serving && state_ != ModemState::deregistered) return;
    registration_check_pending_ = true;
    SLMD_DEBUG("modem: data mode ended with a broken proxy; reading the registration again");
    asio::co_spawn(executor_, read_registration(), asio::detached);
}

asio::awaitable<void> Modem::read_registration() {
    auto alive = lifetime_.guard();
    const at::CommandRequest read = command::read_registration();
    // A few tries: v2.1-v2.4 leave data mode on their own, and uplink bytes still on their way to the UART then
    // reach the command parser (reference section 4); a final they cause can answer our read.
    constexpr int attempts = 3;
    for (int attempt = 1; attempt <= attempts; ++attempt) {
        auto response = co_await channel_.async_command(read, asio::use_awaitable);
        if (!*alive) co_return;
        if (stopping_ || link_down_ || reset_seen_ ||
            (state_ != ModemState::serving && state_ != ModemState::deregistered)) {
            break;
        }
        std::optional<Registration> status;
        if (response.ok() && !response.info.empty()) status = parse_cereg_read(response.info.front());
        if (status) {
            registration_seen(*status);
            break;
        }
        SLMD_INFO("modem: AT+CEREG? after a broken data-mode session answered {} (try {} of {})",
                  response.describe(), attempt, attempts);
        if (attempt == attempts) break;
        asio::steady_timer pause(executor_, 200ms);
        boost::system::error_code ignored;
        co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
        if (!*alive) co_return;
    }
    registration_check_pending_ = false;
}

asio::awaitable<void> Modem::sleep_until(std::chrono::steady_clock::time_point deadline) {
    wakeup_.expires_at(deadline);
    boost::system::error_code ignored;
    co_await wakeup_.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
}

// Serving (and deregistered, and re-reading the address) until the modem reboots, the line drops or slmd stops.
asio::awaitable<void> Modem::serve() {
    auto alive = lifetime_.guard();
    while (!reset_seen_ && !link_down_ && !stopping_) {
        const auto current = registration_.current();
        if (state_ == ModemState::deregistered && current && is_registered(*current)) {
            // Registration is back: the PDP address may have changed. Re-read it before serving again.
            transition(ModemEvent::registered);
            const at::CommandRequest read_address = command::read_address();
            auto response = co_await channel_.async_command(read_address, asio::use_awaitable);
            if (!*alive || stopping_ || reset_seen_ || link_down_) co_return;
            std::optional<PdpAddresses> parsed;
            if (response.ok() && !response.info.empty()) parsed = parse_cgpaddr(response.info.front());
            if (parsed && !(parsed->ipv4.empty() && parsed->ipv6.empty())) {
                info_->addresses = *parsed;
                info_->registration = *current;
                transition(ModemEvent::address_read);
                SLMD_NOTICE("modem: serving again ({}, {})", to_string(info_->registration),
                            info_->addresses.ipv4.empty() ? info_->addresses.ipv6 : info_->addresses.ipv4);
                continue;
            }
            SLMD_WARN("modem: registered again but AT+CGPADDR=0 answered {}; staying deregistered",
                      response.describe());
            transition(ModemEvent::address_failed);
            co_await sleep_until(std::chrono::steady_clock::now() + options_.bringup.registration_poll);
            if (!*alive) co_return;
            continue;
        }
        co_await sleep_until(std::chrono::steady_clock::now() + 24h);
        if (!*alive) co_return;
    }
}

asio::awaitable<void> Modem::run() {
    auto alive = lifetime_.guard();
    bool first = true;
    int resets_in_a_row = 0;
    auto retry_delay = options_.retry_initial;
    for (;;) {
        if (!*alive || stopping_) co_return;
        // Here: syncing (a bring-up starts).
        reset_seen_ = false;
        registration_.clear();
        auto result = co_await bring_up(channel_, registration_, options_.bringup);
        if (!*alive || stopping_) co_return;
        if (!result.error) {
            resets_in_a_row = 0;
            retry_delay = options_.retry_initial;
            info_ = result.info;
            transition(ModemEvent::address_read);  // -> serving
            serving_again();  // orphaned proxies from before (a killed slmd, a reset) are closed first
            SLMD_NOTICE("modem: ready ({} {}, {}, {})", serial_modem() ? "Serial Modem" : "SLM",
                        info_->version.ncs_version, to_string(info_->registration),
                        info_->addresses.ipv4.empty() ? info_->addresses.ipv6 : info_->addresses.ipv4);
            if (first) {
                first = false;
                if (on_first_result_) on_first_result_(result);
            }
            co_await serve();
            if (!*alive || stopping_) co_return;
            SLMD_WARN("modem: {}; bringing it up again", link_down_ ? "serial link lost" : "modem reset");
            info_.reset();
            transition(link_down_ ? ModemEvent::serial_lost : ModemEvent::modem_ready);
        } else {
            SLMD_WARN("modem: bring-up failed: {} ({})", result.error.message(), result.message);
            if (result.error == BringupError::link_lost || link_down_) {
                transition(ModemEvent::serial_lost);  // wait for the port to come back
            } else if (result.error == BringupError::modem_reset &&
                       (!first || ++resets_in_a_row <= options_.max_resets_during_bringup)) {
                transition(ModemEvent::modem_ready);  // the firmware rebooted under us: start over (within budget)
            } else if (first) {
                first = false;
                transition(ModemEvent::gave_up);
                if (on_first_result_) on_first_result_(result);
                co_return;
            } else {
                transition(ModemEvent::bringup_failed);  // -> backing off for retry_delay
                SLMD_INFO("modem: next bring-up in {} ms", retry_delay.count());
                const auto deadline = std::chrono::steady_clock::now() + retry_delay;
                while (std::chrono::steady_clock::now() < deadline && !stopping_ && !link_down_) {
                    co_await sleep_until(deadline);
                    if (!*alive) co_return;
                }
                retry_delay = std::min(retry_delay * 2, options_.retry_max);
                transition(link_down_ ? ModemEvent::serial_lost : ModemEvent::backoff_elapsed);
            }
        }
        // Here: recovering or waiting for the serial port.
        while (link_down_ && !stopping_) {
            transition(ModemEvent::serial_lost);
            co_await sleep_until(std::chrono::steady_clock::now() + 24h);
            if (!*alive) co_return;
        }
        if (stopping_) co_return;
        transition(ModemEvent::serial_back);  // waiting for serial port -> recovering
        // Reset-loop protection: at most max_recoveries bring-ups per window, then one long back-off.
        while (auto backoff = budget_.request(std::chrono::steady_clock::now())) {
            ++stats_.backoffs;
            transition(ModemEvent::recovery_denied);
            SLMD_WARN("modem: recovery budget spent ({} recoveries within {} s); backing off for {} s "
                      "before bringing the modem up again",
                      options_.recovery.max_recoveries, seconds(options_.recovery.window), seconds(*backoff));
            const auto deadline = std::chrono::steady_clock::now() + *backoff;
            while (std::chrono::steady_clock::now() < deadline && !stopping_) {
                co_await sleep_until(deadline);
                if (!*alive) co_return;
            }
            if (stopping_) co_return;
            transition(ModemEvent::backoff_elapsed);
        }
        ++stats_.recoveries;
        transition(ModemEvent::recovery_allowed);  // -> syncing
        SLMD_NOTICE("modem: recovery {} ({} within {} s, budget {})", stats_.recoveries,
                    budget_.recent(std::chrono::steady_clock::now()), seconds(options_.recovery.window),
                    options_.recovery.max_recoveries);
    }
}

}  // namespace slmd::modem
