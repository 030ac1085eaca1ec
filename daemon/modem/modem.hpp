// Owns: one modem on one serial link (serial/link.hpp): the channel over the link, routing of modem-level
// URCs (+CEREG, "Ready"), and the lifecycle loop that drives the state machine of modem/lifecycle.hpp: bring
// up, serve, follow registration loss and return, bring up again after a modem reset or serial loss (within
// the recovery budget), and the graceful stop (AT+CFUN=0). docs/design.md "Modem lifecycle" draws it.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <deque>
#include <functional>
#include <memory>
#include <optional>

#include "at/channel.hpp"
#include "modem/bringup.hpp"
#include "modem/credentials.hpp"
#include "modem/lifecycle.hpp"
#include "modem/modem_control.hpp"
#include "modem/driver_switch.hpp"
#include "modem/serial_modem_driver.hpp"
#include "modem/slm_driver.hpp"
#include "serial/link.hpp"
#include "sys/lifetime.hpp"

namespace slmd::modem {

struct ModemOptions {
    BringupOptions bringup;
    unsigned baud = 115200;
    int max_resets_during_bringup = 5;  // "Ready" this often in a row during bring-up: give up
    std::chrono::milliseconds retry_initial{2000};
    std::chrono::milliseconds retry_max{60000};
    RecoveryPolicy recovery;
    std::chrono::milliseconds stop_timeout{5000};  // graceful stop: the longest AT+CFUN=0 may take
    // The firmware was built with native TLS (overlay-native_tls.conf): credentials go through AT#XCMNG and
    // the radio stays on. Configuration key native-tls.
    bool native_tls = false;
    // The modem's servers that run TLS / DTLS (tls-server, dtls-server): port → sec_tag.
    std::map<std::uint16_t, int> tls_servers;
    std::map<std::uint16_t, int> dtls_servers;
    // TCP connections at once (modem-connections): 0 = as many as the firmware holds, 1 = the TCP proxy only.
    std::size_t max_connections = 0;
    // SLM: plain TCP connections always on generic sockets, the TCP proxy for TLS only (tcp-proxy = tls-only).
    bool tcp_proxy_tls_only = false;
    std::chrono::milliseconds udp_move_retry{5000};  // SlmDriverOptions::udp_move_retry
    std::chrono::milliseconds answer_wait{100};      // SlmSocketDriverOptions::answer_wait (answer-wait-ms)
};

struct LifecycleStats {
    std::uint64_t recoveries = 0;       // bring-ups started again after the first (reset, serial loss, failure)
    std::uint64_t backoffs = 0;         // times the recovery budget was spent
    std::uint64_t readys = 0;           // "Ready" seen after the first sync: firmware reboots
    std::uint64_t registration_losses = 0;
    std::uint64_t admin_resets = 0;     // resets an administrator asked for (slmctl reset)
    std::uint64_t admin_commands = 0;   // AT commands an administrator sent (slmctl at)
    std::uint64_t admin_refusals = 0;   // ... refused without force
    std::uint64_t credential_operations = 0;  // slmctl cred operations that reached the modem
};

class Modem final : public at::LinkWriter, public ModemControl {
public:
    using FirstResultHandler = std::function<void(const BringupResult&)>;

    Modem(boost::asio::any_io_executor executor, serial::Link& link, ModemOptions options);
    ~Modem() override;

    // Starts the lifecycle. `on_first_result` runs once, when the first bring-up succeeded or failed for good.
    void start(FirstResultHandler on_first_result);

    ModemState state() const { return state_; }
    const std::optional<ModemInfo>& info() const { return info_; }
    at::Channel& channel() { return channel_; }
    // The driver for the firmware on the line: SLM's (proxies and generic sockets) or the Serial Modem's.
    ModemDriver& driver() { return switch_; }
    bool serial_modem() const { return channel_.profile().serial_modem(); }
    const SerialModemDriver& serial_modem_driver() const { return sm_driver_; }
    const SlmProxyDriver& slm_driver() const { return driver_.proxy(); }
    SlmProxyDriver& slm_driver() { return driver_.proxy(); }
    const SlmSocketDriver& slm_sockets() const { return driver_.sockets(); }
    const SlmDriver& slm() const { return driver_; }

    void write_to_modem(std::string bytes) override { link_.write(std::move(bytes)); }
    // Graceful stop: ends the lifecycle loop, fails the flows the driver holds, and switches the radio off
    // with AT+CFUN=0 (the firmware saves its state; repeated resets without it trip the nRF91's reset-loop
    // lock-out). `done` runs once, when CFUN=0 was answered, or after options.stop_timeout, or at once when
    // the modem cannot be reached.
    void shutdown(std::function<void()> done);
    // Ends the lifecycle loop and fails whatever is pending; the io_context then runs out of work.
    void stop();
    const LifecycleStats& lifecycle_stats() const { return stats_; }
    const serial::Link& link() const { return link_; }

    // An administrator's AT command (slmctl at), checked by modem/admin_command.hpp, through the same channel
    // as slmd's own commands: it waits for the command in flight and for a data-mode session to end. `uid`
    // names the administrator in the log. `done` runs once.
    void admin_command(std::string line, bool force, unsigned uid, std::chrono::milliseconds timeout,
                       std::function<void(AdminCommandResult)> done) override;
    // Graceful reset (slmctl reset): open flows fail (ECONNRESET), AT+CFUN=0, AT#XRESET, then the normal
    // bring-up, which counts against the recovery budget like any other. Returns at once: 0 when the reset
    // started, EAGAIN when the budget has no room for another recovery (the nRF91's reset-loop lock-out is
    // what the budget avoids), ENETDOWN when the modem is not up, EBUSY during a reset or stop.
    int admin_reset(unsigned uid) override;
    // An administrator's credential operation (slmctl cred; modem/credentials.hpp). Validated first; one at a
    // time (EBUSY). List: any time the modem is in sync. Write/remove on the default build: EBUSY while a TCP
    // connection, TCP server or UDP proxy is open unless `force` (they are then reset, ECONNRESET), then the
    // maintenance state around AT+CFUN=4 → %CMNG → AT+CFUN=1, and `done` only once the modem serves again
    // (or register_timeout passed). With native TLS, #XCMNG alone. `done` runs once.
    void credential(CredentialCommand command, unsigned uid, std::function<void(CredentialResult)> done) override;
    ModemCounters counters() const override;
    bool native_tls() const { return options_.native_tls; }

private:
    boost::asio::awaitable<void> run();
    boost::asio::awaitable<void> serve();
    boost::asio::awaitable<void> sleep_until(std::chrono::steady_clock::time_point deadline);
    boost::asio::awaitable<void> radio_off(std::function<void()> done);
    boost::asio::awaitable<void> reset_sequence();
    boost::asio::awaitable<void> credential_sequence();
    boost::asio::awaitable<void> leave_data_mode();
    bool up() const;
    void transition(ModemEvent event);
    void on_urc(const std::string& text);
    // Every connection is gone with the modem (reset, serial loss): both drivers forget theirs.
    void modem_lost();
    // Bring-up finished: the driver of the family found closes what a previous run left and sets up.
    void serving_again();
    // A +CEREG status, from a URC or from AT+CEREG?: follows registration loss and return while serving.
    void registration_seen(Registration status);
    // Reads AT+CEREG? once (coalesced) when a +CEREG URC may have been dropped in data mode.
    void recheck_registration();
    boost::asio::awaitable<void> read_registration();
    void on_ready();
    void wake();

    boost::asio::any_io_executor executor_;
    serial::Link& link_;
    ModemOptions options_;
    at::Channel channel_;
    RegistrationWatch registration_;
    SlmDriver driver_;
    DataModeGate sm_gate_;
    SerialModemDriver sm_driver_;
    DriverSwitch switch_;
    boost::asio::steady_timer wakeup_;
    ModemState state_ = ModemState::starting;
    std::optional<ModemInfo> info_;
    bool reset_seen_ = false;
    bool link_down_ = false;
    bool stopping_ = false;
    bool synced_once_ = false;
    bool resetting_ = false;  // admin_reset() under way until the firmware's "Ready"
    bool registration_check_pending_ = false;  // recheck_registration()'s AT+CEREG? under way
    // The credential operation under way (one at a time), its requester and whether it reset connections.
    struct CredentialJob {
        CredentialCommand command;
        unsigned uid = 0;
        bool reset_connections = false;
        std::function<void(CredentialResult)> done;
    };
    std::optional<CredentialJob> credential_job_;
    boost::asio::steady_timer state_changed_;  // cancelled on every lifecycle transition
    RecoveryBudget budget_;
    LifecycleStats stats_;
    std::deque<std::chrono::steady_clock::time_point> readys_;  // within options.recovery.window
    FirstResultHandler on_first_result_;
    sys::Lifetime lifetime_;
};

}  // namespace slmd::modem
