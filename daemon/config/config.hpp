// Owns: slmd's settings and where they come from — the command line and the configuration file
// (/etc/slmd/slmd.conf, `key = value` lines, `#` comments; see docs/configuration.md). Both are read with one
// Boost.Program_options description, so every key works in both places; the command line wins.
//
// Every option is declared to program_options as a string: program_options only splits lines into
// (key, value) pairs, and the typing and range checks happen here in `validate`, a pure function, so one
// error format covers both sources and names the file's line (program_options reports no line numbers; we
// find them with `scan_config_text`, which reads the file the way program_options does).
#pragma once

#include <boost/program_options/options_description.hpp>

#include <chrono>
#include <map>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "net/route_policy.hpp"
#include "net/tls_policy.hpp"
#include "sys/log.hpp"

namespace slmd::config {

using sys::LogLevel;

inline constexpr const char* default_config_path = "/etc/slmd/slmd.conf";

// Upper bounds that are part of the documented contract (docs/configuration.md).
inline constexpr unsigned max_connect_timeout_ms = 120000;

struct Settings {
    std::string device;
    unsigned baud = 115200;
    bool rtscts = false;
    std::string api_socket = "/run/slmd/slmd.sock";
    std::string api_group = "slm";
    std::string admin_group = "slmadmin";  // api::ApiOptions::admin_group
    std::size_t api_max_clients = 512;                  // api::ApiOptions::max_clients
    std::chrono::milliseconds api_idle_timeout{10000};  // api::ApiOptions::idle_timeout
    std::uint16_t data_port = 0;
    std::vector<net::Prefix> bypass;
    std::vector<net::TlsRule> tls;  // `tls` and `dtls` mappings, in the order given (net::TlsPolicy)
    std::map<std::uint16_t, int> tls_servers;   // `tls-server`: modem port → sec_tag (SlmProxyDriver)
    std::map<std::uint16_t, int> dtls_servers;  // `dtls-server`: the same for the UDP server
    std::chrono::milliseconds sync_timeout{10000};
    std::chrono::milliseconds register_timeout{180000};
    std::size_t max_queued = 32;  // core::FlowOptions::max_waiting
    std::size_t modem_connections = 0;  // modem::SlmDriverOptions::max_connections; 0 = the firmware's count
    bool tcp_proxy_tls_only = false;    // tcp-proxy = tls-only: modem::SlmDriverOptions::proxy_for_tls_only
    std::chrono::milliseconds answer_wait{100};  // modem::SlmSocketDriverOptions::answer_wait; 0 = off
    std::chrono::milliseconds connect_timeout{60000};  // core::FlowOptions::default_connect_timeout
    std::chrono::milliseconds finished_flow_linger{30000};  // core::FlowOptions::keep_finished
    std::size_t slow_reader_limit = 1024 * 1024;            // core::FlowOptions::slow_reader_limit
    std::chrono::milliseconds half_close_idle{10000};       // core::FlowOptions::half_close_idle; 0 = never
    std::chrono::milliseconds read_batch{8};                // serial::SerialOptions::read_batch_delay; 0 = off
    std::size_t udp_max_stand_ins = 16;                // core::UdpOptions::max_stand_ins
    std::chrono::milliseconds socket_poll{1000};       // UdpOptions/FlowOptions::socket_poll
    std::size_t recovery_max = 5;                          // modem::RecoveryPolicy::max_recoveries
    std::chrono::milliseconds recovery_window{600000};     // modem::RecoveryPolicy::window
    std::chrono::milliseconds recovery_backoff{1800000};   // modem::RecoveryPolicy::backoff
    std::chrono::milliseconds stop_timeout{5000};          // modem::ModemOptions::stop_timeout (AT+CFUN=0)
    bool native_tls = false;                               // modem::ModemOptions::native_tls (#XCMNG credentials)
    LogLevel log_level = LogLevel::info;
    bool verbose = false;  // log every AT command: log-level debug, whatever log-level says
    bool once = false;
};

// One `key = value` as it was given, with where it was given: `origin` is the file's path with `line` its
// 1-based line number, or empty (line 0) for the command line.
struct Entry {
    std::string key;
    std::string value;
    std::string origin;
    unsigned line = 0;
};
using RawConfig = std::vector<Entry>;

// "path:line: key: problem" or "--key: problem" — what an operator needs to find and fix it.
std::string describe(const Entry& entry, std::string_view problem);

// Pure: checks every entry (types, ranges, CIDRs, log level, unknown or repeated keys) and, when there is no
// problem, fills `settings`. Command-line entries take precedence over file entries of the same key; `bypass`
// accumulates from both. Returns one message per problem, empty when the configuration is good.
std::vector<std::string> validate(const RawConfig& raw, Settings& settings);

// Pure: the assignments in a configuration file's text, in order, with their line numbers, read the way
// program_options' parser reads them (`#` starts a comment anywhere, blank lines skipped, `[section]`
// prefixes later keys with "section."). Lines that are neither are reported in `errors`.
struct ScannedLine {
    std::string key;
    unsigned line = 0;
};
struct Scan {
    std::vector<ScannedLine> assignments;
    std::vector<std::string> errors;
};
Scan scan_config_text(std::string_view text, const std::string& origin);

// The one description of every option, for the command line, the file and --help.
boost::program_options::options_description option_description();

enum class Action { run, help, version, fail };
struct Loaded {
    Action action = Action::fail;
    Settings settings;
    std::vector<std::string> errors;  // Action::fail: what to print (each one line, no "slmd: " prefix)
    std::string config_path;          // the file that was read, empty when none
    std::string usage;                // --help text
};

// Parses the command line, then the configuration file (--config PATH, else the default path, which may be
// missing), then validates both. Never throws.
Loaded load(int argc, const char* const* argv, const std::string& default_path = default_config_path);

// Entries of a configuration file's text (`parse_config_file` with line numbers attached); problems go to
// `errors`. Exposed for tests.
RawConfig parse_config_text(const std::string& text, const std::string& origin,
                            const boost::program_options::options_description& description,
                            std::vector<std::string>& errors);

}  // namespace slmd::config
