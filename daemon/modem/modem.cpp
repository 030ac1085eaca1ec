// Owns: the modem lifecycle loop (see modem.hpp).
#include "modem/modem.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "sys/log.hpp"

namespace slmd::modem {

namespace asio = boost::asio;

const char* to_string(ModemState state) {
    switch (state) {
        case ModemState::starting: return "starting";
        case ModemState::bringing_up: return "bringing up";
        case ModemState::serving: return "serving";
        case ModemState::recovering: return "recovering";
        case ModemState::stopped: return "stopped";
    }
    return "?";
}

Modem::Modem(asio::any_io_executor executor, serial::SerialPort& port, ModemOptions options)
    : executor_(executor),
      port_(port),
      options_(options),
      // Until #XSLMVER says otherwise, assume the newest behaviour; bring-up switches the profile.
      channel_(executor, *this, at::FirmwareProfile::for_version({2, 9, 0}), options.baud),
      registration_(executor),
      driver_(executor, channel_,
              SlmProxyDriverHooks{
                  .serving = [this] { return state_ == ModemState::serving; },
                  .link_backlog = [this] { return port_.queued_bytes(); },
                  .pause_receive = [this](bool paused) { port_.pause_reading(paused); },
              }),
      wakeup_(executor) {}

Modem::~Modem() { *alive_ = false; }

void Modem::start(FirstResultHandler on_first_result) {
    on_first_result_ = std::move(on_first_result);
    channel_.set_handlers(at::ChannelHandlers{
        .urc = [this](const std::string& text) { on_urc(text); },
        .ready =
            [this] {
                reset_seen_ = true;
                registration_.note_reset();
                driver_.on_modem_lost();
                wake();
            },
        .proxy_data = [this](at::ProxyData&& data) { driver_.on_proxy_data(std::move(data)); },
        .raw_data = [this](std::string_view bytes) { driver_.on_raw_data(bytes); },
        .data_mode_exited = [this](int status) { driver_.on_data_mode_exited(status); },
    });
    port_.set_write_listener([this] { driver_.on_link_drained(); });
    port_.start([this](std::string_view bytes) { channel_.feed(bytes); },
                [this](std::error_code) {
                    link_down_ = true;
                    channel_.link_lost();
                    driver_.on_modem_lost();
                    wake();
                },
                [this] {
                    link_down_ = false;
                    wake();
                });
    asio::co_spawn(executor_, run(), asio::detached);
}

void Modem::wake() { wakeup_.cancel(); }

void Modem::stop() {
    stopping_ = true;
    state_ = ModemState::stopped;
    driver_.on_modem_lost();
    channel_.shutdown();
    registration_.note_reset();
    wake();
}

void Modem::on_urc(const std::string& text) {
    if (driver_.on_urc(text)) return;
    if (auto status = parse_cereg_urc(text)) {
        const bool was_registered = registration_.current() && is_registered(*registration_.current());
        registration_.update(*status);
        if (state_ == ModemState::serving && was_registered != is_registered(*status)) {
            SLMD_NOTICE("modem: {}", to_string(*status));
        }
        return;
    }
    SLMD_DEBUG("modem: URC {}", text);
}

asio::awaitable<void> Modem::run() {
    auto alive = alive_;
    bool first = true;
    int resets_in_a_row = 0;
    auto retry_delay = options_.retry_initial;
    for (;;) {
        if (!*alive || stopping_) co_return;
        while (link_down_) {
            state_ = ModemState::recovering;
            wakeup_.expires_after(std::chrono::hours(24));
            boost::system::error_code ignored;
            co_await wakeup_.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
            if (!*alive || stopping_) co_return;
        }
        state_ = ModemState::bringing_up;
        reset_seen_ = false;
        registration_.clear();
        auto result = co_await bring_up(channel_, registration_, options_.bringup);
        if (!*alive || stopping_) co_return;
        if (!result.error) {
            resets_in_a_row = 0;
            retry_delay = options_.retry_initial;
            info_ = result.info;
            state_ = ModemState::serving;
            driver_.on_serving();  // orphaned proxies from before (a killed slmd, a reset) are closed first
            SLMD_NOTICE("modem: ready (SLM {}, {}, {})", info_->version.ncs_version, to_string(info_->registration),
                        info_->addresses.ipv4.empty() ? info_->addresses.ipv6 : info_->addresses.ipv4);
            if (first) {
                first = false;
                if (on_first_result_) on_first_result_(result);
            }
            // Serve until the modem reboots or the line drops; then start over.
            while (!reset_seen_ && !link_down_) {
                wakeup_.expires_after(std::chrono::hours(24));
                boost::system::error_code ignored;
                co_await wakeup_.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
                if (!*alive || stopping_) co_return;
            }
            SLMD_WARN("modem: {}; bringing it up again", link_down_ ? "serial link lost" : "modem reset");
            info_.reset();
            state_ = ModemState::recovering;
            continue;
        }
        SLMD_WARN("modem: bring-up failed: {} ({})", result.error.message(), result.message);
        if (result.error == BringupError::modem_reset && ++resets_in_a_row <= options_.max_resets_during_bringup) {
            continue;  // the firmware rebooted under us: simply start over
        }
        if (result.error == BringupError::link_lost) continue;  // wait for the port to come back
        if (first) {
            first = false;
            state_ = ModemState::stopped;
            if (on_first_result_) on_first_result_(result);
            co_return;
        }
        state_ = ModemState::recovering;
        wakeup_.expires_after(retry_delay);
        boost::system::error_code ignored;
        co_await wakeup_.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
        retry_delay = std::min(retry_delay * 2, options_.retry_max);
    }
}

}  // namespace slmd::modem
