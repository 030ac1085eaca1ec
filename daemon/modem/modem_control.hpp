// Owns: what the API layer may ask of the modem as a whole, in modem-level types: its counters, an
// administrator's AT command, a reset and credential operations. Connections, servers and names go through
// modem_driver.hpp instead. Nothing here names an AT type, so api/ never sees the AT layer (docs/HACKING.md).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "modem/credentials.hpp"

namespace slmd::modem {

// How the modem answered an administrator's command.
enum class AdminOutcome { ok, error, cme_error, cms_error };

// The outcome of an administrator's AT command. error: 0 when the modem answered (outcome, code, lines), else
// EINVAL (not a valid command line), EPERM (would break slmd's state; see force), ENETDOWN (modem not up or
// lost), ETIMEDOUT (no final result in time), ECONNRESET (the modem reset meanwhile).
struct AdminCommandResult {
    int error = 0;
    std::string message;  // why, when error != 0
    AdminOutcome outcome = AdminOutcome::error;
    int code = 0;                    // the +CME/+CMS ERROR number
    std::vector<std::string> lines;  // what the modem answered before its final result
};

// Counters of the modem layer for STATS (slmctl stats).
struct ModemCounters {
    std::uint64_t at_commands = 0;
    std::uint64_t at_errors = 0;
    std::uint64_t at_timeouts = 0;
    std::uint64_t data_mode_sessions = 0;    // data-mode entries, TCP and UDP
    std::uint64_t udp_suspensions = 0;       // the UDP proxy closed to let a TCP session use data mode
    std::uint64_t udp_refused_tcp_busy = 0;  // UDP opens refused while TCP held the one data-mode proxy
    std::uint64_t modem_resets = 0;          // firmware reboots ("Ready" after the first sync)
    std::uint64_t admin_resets = 0;
    std::uint64_t registration_losses = 0;
    std::uint64_t recoveries = 0;
    std::uint64_t recovery_backoffs = 0;
};

class ModemControl {
public:
    virtual ~ModemControl() = default;
    virtual ModemCounters counters() const = 0;
    // An administrator's AT command (slmctl at); `done` runs once. See Modem::admin_command.
    virtual void admin_command(std::string line, bool force, unsigned uid, std::chrono::milliseconds timeout,
                               std::function<void(AdminCommandResult)> done) = 0;
    // Graceful reset (slmctl reset): 0 when it started, else an errno. See Modem::admin_reset.
    virtual int admin_reset(unsigned uid) = 0;
    // A credential operation (slmctl cred); `done` runs once. See Modem::credential.
    virtual void credential(CredentialCommand command, unsigned uid, std::function<void(CredentialResult)> done) = 0;
};

}  // namespace slmd::modem
