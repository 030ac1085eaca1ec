// Owns: reading and checking slmd's settings (see config.hpp and docs/configuration.md).
#include "config/config.hpp"

#include <sys/socket.h>
#include <sys/un.h>

#include <boost/program_options/parsers.hpp>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

namespace slmd::config {

namespace po = boost::program_options;

namespace {

// Keys only the command line knows: they choose what this run does, not how the daemon is configured.
constexpr std::string_view command_line_only[] = {"help", "version", "config", "once"};

bool is_command_line_only(std::string_view key) {
    return std::find(std::begin(command_line_only), std::end(command_line_only), key) != std::end(command_line_only);
}

std::string in_quotes(std::string_view value) { return "\"" + std::string(value) + "\""; }

// Whole-string decimal number in [min, max]; the problem text otherwise.
std::optional<std::string> parse_number(std::string_view text, std::uint64_t min, std::uint64_t max,
                                        std::uint64_t& out) {
    std::uint64_t value = 0;
    const auto* end = text.data() + text.size();
    auto [at, error] = std::from_chars(text.data(), end, value);
    if (text.empty() || at != end || (error != std::errc{} && error != std::errc::result_out_of_range)) {
        return in_quotes(text) + " is not a number";
    }
    if (error == std::errc::result_out_of_range || value < min || value > max) {
        return in_quotes(text) + " is out of range (" + std::to_string(min) + "-" + std::to_string(max) + ")";
    }
    out = value;
    return std::nullopt;
}

std::optional<std::string> parse_bool(std::string_view text, bool& out) {
    static constexpr std::string_view yes[] = {"yes", "true", "on", "1"};
    static constexpr std::string_view no[] = {"no", "false", "off", "0"};
    if (std::find(std::begin(yes), std::end(yes), text) != std::end(yes)) {
        out = true;
        return std::nullopt;
    }
    if (std::find(std::begin(no), std::end(no), text) != std::end(no)) {
        out = false;
        return std::nullopt;
    }
    return in_quotes(text) + " is not yes or no";
}

std::optional<std::string> parse_log_level(std::string_view text, LogLevel& out) {
    static constexpr std::pair<std::string_view, LogLevel> names[] = {
        {"error", LogLevel::error}, {"warning", LogLevel::warning}, {"notice", LogLevel::notice},
        {"info", LogLevel::info},   {"debug", LogLevel::debug},
    };
    for (const auto& [name, level] : names) {
        if (text == name) {
            out = level;
            return std::nullopt;
        }
    }
    return in_quotes(text) + " is not a log level (error, warning, notice, info, debug)";
}

bool baud_supported(std::uint64_t baud) {
    // The rates termios can set (serial::baud_to_speed's table); anything else fails at open.
    static constexpr std::uint64_t rates[] = {1200,   2400,   4800,    9600,    19200,   38400,   57600,
                                              115200, 230400, 460800,  500000,  576000,  921600,  1000000,
                                              1152000, 1500000, 2000000, 3000000, 4000000};
    return std::find(std::begin(rates), std::end(rates), baud) != std::end(rates);
}

// Applies one entry to `settings`; returns the problem, if any.
std::optional<std::string> apply(const Entry& entry, Settings& settings) {
    const std::string& key = entry.key;
    const std::string& value = entry.value;
    std::uint64_t number = 0;
    auto milliseconds = [&](std::uint64_t min, std::uint64_t max,
                            std::chrono::milliseconds& out) -> std::optional<std::string> {
        if (auto problem = parse_number(value, min, max, number)) return problem;
        out = std::chrono::milliseconds(number);
        return std::nullopt;
    };
    if (key == "device") {
        if (value.empty()) return std::string("must not be empty");
        settings.device = value;
    } else if (key == "baud") {
        if (auto problem = parse_number(value, 1, 4000000, number)) return problem;
        if (!baud_supported(number)) return in_quotes(value) + " is not a baud rate the serial port can set";
        settings.baud = static_cast<unsigned>(number);
    } else if (key == "rtscts") {
        return parse_bool(value, settings.rtscts);
    } else if (key == "verbose") {
        return parse_bool(value, settings.verbose);
    } else if (key == "native-tls") {
        return parse_bool(value, settings.native_tls);
    } else if (key == "once") {
        settings.once = true;
    } else if (key == "api-socket") {
        if (value.empty() || value.front() != '/') return in_quotes(value) + " is not an absolute path";
        if (value.size() >= sizeof(sockaddr_un::sun_path)) {
            return in_quotes(value) + " is too long for a Unix socket (at most " +
                   std::to_string(sizeof(sockaddr_un::sun_path) - 1) + " bytes)";
        }
        settings.api_socket = value;
    } else if (key == "api-group") {
        settings.api_group = value;  // "" = only root and slmd's own user; a missing group is a warning at start
    } else if (key == "admin-group") {
        settings.admin_group = value;  // as api-group, for slmctl at/reset
    } else if (key == "data-port") {
        if (auto problem = parse_number(value, 0, 65535, number)) return problem;
        settings.data_port = static_cast<std::uint16_t>(number);
    } else if (key == "bypass") {
        auto prefix = net::parse_prefix(value);
        if (!prefix) return in_quotes(value) + " is not an address or CIDR";
        settings.bypass.push_back(*prefix);
    } else if (key == "tls" || key == "dtls") {
        std::string problem;
        auto rule = net::parse_tls_rule(value, key == "dtls", problem);
        if (!rule) return problem;
        settings.tls.push_back(std::move(*rule));
    } else if (key == "tls-server" || key == "dtls-server") {
        std::string problem;
        auto server = net::parse_tls_server(value, problem);
        if (!server) return problem;
        auto& servers = key == "tls-server" ? settings.tls_servers : settings.dtls_servers;
        if (!servers.emplace(server->first, server->second).second)
            return "port " + std::to_string(server->first) + " is a " + (key == "tls-server" ? "TLS" : "DTLS") +
                   " server already";
    } else if (key == "sync-timeout-ms") {
        return milliseconds(100, 3600000, settings.sync_timeout);
    } else if (key == "register-timeout-ms") {
        return milliseconds(1000, 86400000, settings.register_timeout);
    } else if (key == "modem-connections") {
        if (auto problem = parse_number(value, 0, 8, number)) return problem;
        settings.modem_connections = static_cast<std::size_t>(number);
    } else if (key == "tcp-proxy") {
        if (value == "auto") {
            settings.tcp_proxy_tls_only = false;
        } else if (value == "tls-only") {
            settings.tcp_proxy_tls_only = true;
        } else {
            return in_quotes(value) + " is neither auto nor tls-only";
        }
    } else if (key == "answer-wait-ms") {
        return milliseconds(0, 1000, settings.answer_wait);
    } else if (key == "max-queued") {
        if (auto problem = parse_number(value, 0, 4096, number)) return problem;
        settings.max_queued = static_cast<std::size_t>(number);
    } else if (key == "connect-timeout-ms") {
        return milliseconds(100, max_connect_timeout_ms, settings.connect_timeout);
    } else if (key == "finished-flow-linger-ms") {
        return milliseconds(100, 600000, settings.finished_flow_linger);
    } else if (key == "half-close-idle-ms") {
        if (value == "0") {
            settings.half_close_idle = std::chrono::milliseconds(0);
            return std::nullopt;
        }
        return milliseconds(1000, 3600000, settings.half_close_idle);
    } else if (key == "slow-reader-limit") {
        if (auto problem = parse_number(value, 65536, 1073741824, number)) return problem;
        settings.slow_reader_limit = static_cast<std::size_t>(number);
    } else if (key == "read-batch-ms") {
        return milliseconds(0, 50, settings.read_batch);
    } else if (key == "api-max-clients") {
        if (auto problem = parse_number(value, 8, 65536, number)) return problem;
        settings.api_max_clients = static_cast<std::size_t>(number);
    } else if (key == "api-idle-timeout-ms") {
        return milliseconds(100, 3600000, settings.api_idle_timeout);
    } else if (key == "udp-max-stand-ins") {
        if (auto problem = parse_number(value, 1, 1024, number)) return problem;
        settings.udp_max_stand_ins = static_cast<std::size_t>(number);
    } else if (key == "socket-poll-ms") {
        return milliseconds(50, 60000, settings.socket_poll);
    } else if (key == "recovery-max") {
        if (auto problem = parse_number(value, 1, 1000, number)) return problem;
        settings.recovery_max = static_cast<std::size_t>(number);
    } else if (key == "recovery-window-ms") {
        return milliseconds(1000, 86400000, settings.recovery_window);
    } else if (key == "recovery-backoff-ms") {
        return milliseconds(1000, 86400000, settings.recovery_backoff);
    } else if (key == "stop-timeout-ms") {
        return milliseconds(100, 60000, settings.stop_timeout);
    } else if (key == "log-level") {
        return parse_log_level(value, settings.log_level);
    } else {
        return std::string("unknown key");
    }
    return std::nullopt;
}

constexpr std::string_view known_keys[] = {
    "device",    "baud",        "rtscts",          "api-socket",          "api-group",  "data-port",
    "bypass",    "sync-timeout-ms", "register-timeout-ms", "max-queued", "modem-connections", "tcp-proxy", "answer-wait-ms", "connect-timeout-ms",
    "log-level", "verbose",     "once",    "udp-max-stand-ins", "socket-poll-ms",
    "recovery-max", "recovery-window-ms", "recovery-backoff-ms", "stop-timeout-ms", "admin-group",
    "api-max-clients", "api-idle-timeout-ms", "finished-flow-linger-ms", "native-tls", "tls", "dtls", "tls-server", "dtls-server",
    "slow-reader-limit", "read-batch-ms", "half-close-idle-ms",
};

bool known(std::string_view key) {
    return std::find(std::begin(known_keys), std::end(known_keys), key) != std::end(known_keys);
}

std::string trim(std::string_view text) {
    const auto first = text.find_first_not_of(" \t\r\n");
    if (first == std::string_view::npos) return {};
    const auto last = text.find_last_not_of(" \t\r\n");
    return std::string(text.substr(first, last - first + 1));
}

}  // namespace

std::string describe(const Entry& entry, std::string_view problem) {
    std::string where;
    if (entry.origin.empty()) {
        where = "--" + entry.key;
    } else {
        where = entry.origin + (entry.line ? ":" + std::to_string(entry.line) : std::string()) + ": " + entry.key;
    }
    return where + ": " + std::string(problem);
}

std::vector<std::string> validate(const RawConfig& raw, Settings& settings) {
    std::vector<std::string> problems;
    // A key given twice in one place is a mistake (which one was meant?), except the repeatable bypass.
    std::map<std::pair<std::string, std::string>, const Entry*> first_seen;
    for (const auto& entry : raw) {
        if (!known(entry.key)) {
            problems.push_back(describe(entry, "unknown key"));
            continue;
        }
        if (!entry.origin.empty() && is_command_line_only(entry.key)) {
            problems.push_back(describe(entry, "only valid on the command line"));
            continue;
        }
        if (entry.key == "bypass" || entry.key == "tls" || entry.key == "dtls" || entry.key == "tls-server" ||
            entry.key == "dtls-server")
            continue;  // repeatable
        auto [it, inserted] = first_seen.emplace(std::pair{entry.key, entry.origin}, &entry);
        if (!inserted) {
            const auto& first = *it->second;
            problems.push_back(describe(
                entry, "given more than once (first " +
                           (first.origin.empty() ? std::string("on the command line")
                                                 : "at line " + std::to_string(first.line)) + ")"));
        }
    }
    // Every value is checked, even one the command line overrides: a bad file is reported, not hidden.
    // File entries are applied first and command-line entries after them, so the command line wins.
    Settings result = settings;
    for (const bool command_line : {false, true}) {
        for (const auto& entry : raw) {
            if (entry.origin.empty() != command_line || !known(entry.key)) continue;
            if (!entry.origin.empty() && is_command_line_only(entry.key)) continue;
            if (auto problem = apply(entry, result)) problems.push_back(describe(entry, *problem));
        }
    }
    if (problems.empty() && result.device.empty()) {
        problems.emplace_back("no device: set 'device = PATH' in the configuration file or pass --device PATH");
    }
    if (problems.empty()) settings = std::move(result);
    return problems;
}

Scan scan_config_text(std::string_view text, const std::string& origin) {
    Scan scan;
    std::string prefix;
    unsigned number = 0;
    std::size_t start = 0;
    while (start <= text.size()) {
        auto end = text.find('\n', start);
        if (end == std::string_view::npos) end = text.size();
        std::string_view line = text.substr(start, end - start);
        ++number;
        start = end + 1;
        if (auto hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
        const std::string content = trim(line);
        if (content.empty()) {
            if (end == text.size()) break;
            continue;
        }
        if (content.front() == '[' && content.back() == ']') {
            prefix = content.substr(1, content.size() - 2);
            if (prefix.empty() || prefix.back() != '.') prefix += '.';
        } else if (auto equals = content.find('='); equals != std::string::npos) {
            scan.assignments.push_back({prefix + trim(std::string_view(content).substr(0, equals)), number});
        } else {
            scan.errors.push_back(origin + ":" + std::to_string(number) + ": " + in_quotes(content) +
                                  " is not a 'key = value' line");
        }
        if (end == text.size()) break;
    }
    return scan;
}

po::options_description option_description() {
    po::options_description description("Options (command line or configuration file)");
    description.add_options()
        ("device,d", po::value<std::string>(), "serial device of the nRF91 running SLM (e.g. /dev/ttyACM0); required")
        ("baud,b", po::value<std::string>(), "UART baud rate, 8N1 (default 115200)")
        ("rtscts", po::value<std::string>()->implicit_value("yes"), "use RTS/CTS hardware flow control (default no)")
        ("sync-timeout-ms", po::value<std::string>(),
         "give up when the modem does not answer AT for this long (default 10000)")
        ("register-timeout-ms", po::value<std::string>(),
         "give up when the modem does not register for this long (default 180000)")
        ("api-socket", po::value<std::string>(), "Unix-domain API socket for clients (default /run/slmd/slmd.sock)")
        ("api-group", po::value<std::string>(),
         "group whose members may use the modem, besides root and slmd's own user (default slm)")
        ("admin-group", po::value<std::string>(),
         "group whose members may send AT commands and reset the modem (slmctl at, reset), besides root and "
         "slmd's own user (default slmadmin)")
        ("finished-flow-linger-ms", po::value<std::string>(),
         "how long a closed connection's outcome stays known (SO_ERROR, getpeername), 100-600000 (default 30000)")
        ("api-max-clients", po::value<std::string>(),
         "API connections served at once; more are refused with EAGAIN, 8-65536 (default 512)")
        ("api-idle-timeout-ms", po::value<std::string>(),
         "close an API connection that has no request in progress for this long (default 10000)")
        ("data-port", po::value<std::string>(), "loopback port of the data endpoint (default 0 = any free port)")
        ("bypass", po::value<std::string>(),
         "CIDR reached without the modem (repeatable); routes other than the default bypass too")
        ("tls", po::value<std::string>(),
         "HOST:PORT sec-tag=N [peer-verify=0|1|2] [hostname-verify=0|1] [hostname=NAME]: TCP connections to "
         "HOST:PORT (HOST a name, an address, [IPv6] or *) get TLS from the modem (repeatable; docs/tls.md)")
        ("dtls", po::value<std::string>(),
         "HOST:PORT sec-tag=N [...] [dtls-cid=0|1|2]: as tls, for UDP with DTLS (repeatable)")
        ("tls-server", po::value<std::string>(),
         "PORT sec-tag=N: the modem's TCP server on PORT runs TLS; needs native-tls = yes (repeatable)")
        ("dtls-server", po::value<std::string>(),
         "PORT sec-tag=N: the modem's UDP server on PORT runs DTLS; needs native-tls = yes, SLM v2.8+ (repeatable)")
        ("max-queued", po::value<std::string>(), "connections waiting for the modem; more get EBUSY (default 32)")
        ("modem-connections", po::value<std::string>(),
         "TCP connections open on the modem at once, 1-8: the first uses the TCP proxy, the others generic "
         "sockets; 1 = the proxy only; 0 = as many as the firmware holds (default 0: 8, 7 on SLM v3.1)")
        ("tcp-proxy", po::value<std::string>(),
         "SLM: which TCP connections use the TCP proxy: auto = a connection opened while it is free (fastest for "
         "one flow at a time); tls-only = only TLS by the modem, every plain connection on a generic socket (fair "
         "shares when several download at once) (default auto)")
        ("answer-wait-ms", po::value<std::string>(),
         "SLM generic sockets: after a connection sends, other connections' reads wait up to this long for its "
         "answer, so a reply is not queued behind bulk reads (178 ms each at 115200); 0 = off, 0-1000 "
         "(default 100)")
        ("half-close-idle-ms", po::value<std::string>(),
         "after an app's shutdown(SHUT_WR), close the connection once the peer has sent nothing for this long "
         "(the modem cannot send the FIN the peer may wait for); 0 = never, else 1000-3600000 (default 10000)")
        ("slow-reader-limit", po::value<std::string>(),
         "bytes held for an app that stops reading while others need the modem; beyond that its connection is "
         "reset, 65536-1073741824 (default 1048576)")
        ("read-batch-ms", po::value<std::string>(),
         "while a bulk stream arrives from the modem, wait this long between serial reads so that each carries "
         "more bytes (fewer wake-ups, up to this much latency on a stream's tail); 0-50, 0 = off (default 8)")
        ("connect-timeout-ms", po::value<std::string>(),
         "connect timeout when the app set none, at most 120000 (default 60000)")
        ("udp-max-stand-ins", po::value<std::string>(),
         "loopback stand-ins (remote UDP peers) per app socket; the least recently used goes (default 16)")
        ("socket-poll-ms", po::value<std::string>(),
         "how often app UDP and listening sockets served through the modem are looked up (default 1000)")
        ("recovery-max", po::value<std::string>(),
         "bring-ups of the modem after a reset, serial loss or failure allowed per recovery window, 1-1000 "
         "(default 5)")
        ("recovery-window-ms", po::value<std::string>(), "the recovery window (default 600000)")
        ("recovery-backoff-ms", po::value<std::string>(),
         "wait this long when the recovery budget is spent (default 1800000)")
        ("stop-timeout-ms", po::value<std::string>(),
         "on SIGTERM, wait at most this long for AT+CFUN=0 (default 5000)")
        ("native-tls", po::value<std::string>(),
         "the SLM firmware was built with native TLS (overlay-native_tls.conf): credentials go through "
         "AT#XCMNG, without switching the radio off (default no)")
        ("log-level", po::value<std::string>(), "error, warning, notice, info or debug (default info)")
        ("verbose,v", po::value<std::string>()->implicit_value("yes"), "log every AT command (log-level debug)");
    return description;
}

RawConfig parse_config_text(const std::string& text, const std::string& origin,
                            const po::options_description& description, std::vector<std::string>& errors) {
    RawConfig raw;
    Scan scan = scan_config_text(text, origin);
    if (!scan.errors.empty()) {
        errors.insert(errors.end(), scan.errors.begin(), scan.errors.end());
        return raw;
    }
    // program_options splits the lines; the scan, which reads them the same way, supplies the line numbers:
    // the n-th occurrence of a key in the parser's output is the n-th line assigning that key.
    std::istringstream stream(text);
    po::parsed_options parsed(&description);
    try {
        parsed = po::parse_config_file(stream, description, /*allow_unregistered=*/true);
    } catch (const po::error& error) {
        errors.push_back(origin + ": " + error.what());
        return raw;
    }
    std::map<std::string, std::size_t> next_of_key;
    for (const auto& option : parsed.options) {
        Entry entry{option.string_key, option.value.empty() ? std::string() : option.value.front(), origin, 0};
        auto& next = next_of_key[entry.key];
        while (next < scan.assignments.size() && scan.assignments[next].key != entry.key) ++next;
        if (next < scan.assignments.size()) entry.line = scan.assignments[next++].line;
        raw.push_back(std::move(entry));
    }
    return raw;
}

Loaded load(int argc, const char* const* argv, const std::string& default_path) {
    Loaded loaded;
    const po::options_description shared = option_description();
    po::options_description command_line("Usage: slmd [--config PATH] [options]\nCommand line only");
    command_line.add_options()
        ("help,h", "show this help")
        ("version", "print the version")
        ("config,c", po::value<std::string>(),
         (std::string("configuration file (default ") + default_path + ", which may be missing)").c_str())
        ("once", "bring the modem up, report, and exit (0 when it registered)");
    command_line.add(shared);
    std::ostringstream usage;
    usage << command_line;

    loaded.usage = usage.str();
    RawConfig raw;
    std::optional<std::string> config_path;
    try {
        auto parsed = po::command_line_parser(argc, argv).options(command_line).run();
        for (const auto& option : parsed.options) {
            const std::string& key = option.string_key;
            if (key == "help") {
                loaded.action = Action::help;
                loaded.usage = usage.str();
                return loaded;
            }
            if (key == "version") {
                loaded.action = Action::version;
                return loaded;
            }
            if (key == "config") {
                if (config_path) {
                    loaded.errors.emplace_back("--config: given more than once");
                    return loaded;
                }
                config_path = option.value.front();
                continue;
            }
            // Switches carry no value on the command line: --rtscts means rtscts = yes.
            raw.push_back({key, option.value.empty() ? std::string("yes") : option.value.front(), {}, 0});
        }
    } catch (const po::error& error) {
        loaded.errors.push_back(std::string(error.what()) + " (see --help)");
        return loaded;
    }

    const std::string path = config_path.value_or(default_path);
    std::error_code ignored;
    if (std::filesystem::is_directory(path, ignored)) {
        loaded.errors.push_back(path + ": cannot read configuration file: it is a directory");
        return loaded;
    }
    errno = 0;
    std::ifstream file(path);
    if (!file) {
        // Only the default may be absent: an explicit --config names a file the caller expects to be read.
        if (config_path || errno != ENOENT) {
            loaded.errors.push_back(path + ": cannot read configuration file: " + std::strerror(errno));
            return loaded;
        }
    } else {
        std::ostringstream text;
        text << file.rdbuf();
        if (file.bad()) {
            loaded.errors.push_back(path + ": cannot read configuration file");
            return loaded;
        }
        loaded.config_path = path;
        RawConfig from_file = parse_config_text(text.str(), path, shared, loaded.errors);
        if (!loaded.errors.empty()) return loaded;
        // The command line first, then the file (as po::store would be called); validate gives the command
        // line precedence.
        raw.insert(raw.end(), from_file.begin(), from_file.end());
    }
    loaded.errors = validate(raw, loaded.settings);
    if (loaded.errors.empty()) loaded.action = Action::run;
    return loaded;
}

}  // namespace slmd::config
