// Owns: one modem on one serial port: the channel over the port, routing of modem-level URCs (+CEREG,
// "Ready"), and the lifecycle loop: bring up, serve, and bring up again after a modem reset or serial loss.
// This is the seed of the lifecycle state machine; the gateway-service work extends it (docs/design.md).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <functional>
#include <memory>
#include <optional>

#include "at/channel.hpp"
#include "modem/bringup.hpp"
#include "modem/slm_proxy_driver.hpp"
#include "serial/serial_port.hpp"

namespace slmd::modem {

enum class ModemState { starting, bringing_up, serving, recovering, stopped };
const char* to_string(ModemState state);

struct ModemOptions {
    BringupOptions bringup;
    unsigned baud = 115200;
    int max_resets_during_bringup = 5;  // "Ready" this often in a row during bring-up: give up
    std::chrono::milliseconds retry_initial{2000};
    std::chrono::milliseconds retry_max{60000};
};

class Modem final : public at::LinkWriter {
public:
    using FirstResultHandler = std::function<void(const BringupResult&)>;

    Modem(boost::asio::any_io_executor executor, serial::SerialPort& port, ModemOptions options);
    ~Modem() override;

    // Starts the lifecycle. `on_first_result` runs once, when the first bring-up succeeded or failed for good.
    void start(FirstResultHandler on_first_result);

    ModemState state() const { return state_; }
    const std::optional<ModemInfo>& info() const { return info_; }
    at::Channel& channel() { return channel_; }
    ModemDriver& driver() { return driver_; }
    const SlmProxyDriver& slm_driver() const { return driver_; }

    void write_to_modem(std::string bytes) override { port_.write(std::move(bytes)); }
    // Ends the lifecycle loop and fails whatever is pending; the io_context then runs out of work.
    void stop();

private:
    boost::asio::awaitable<void> run();
    void on_urc(const std::string& text);
    void wake();

    boost::asio::any_io_executor executor_;
    serial::SerialPort& port_;
    ModemOptions options_;
    at::Channel channel_;
    RegistrationWatch registration_;
    SlmProxyDriver driver_;
    boost::asio::steady_timer wakeup_;
    ModemState state_ = ModemState::starting;
    std::optional<ModemInfo> info_;
    bool reset_seen_ = false;
    bool link_down_ = false;
    bool stopping_ = false;
    FirstResultHandler on_first_result_;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace slmd::modem
