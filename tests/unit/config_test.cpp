// Configuration: every key's accepted and refused values (table-driven, through the pure `validate`), the
// line numbers the file scan attaches, command-line precedence, and `load` end to end on real files.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "config/config.hpp"

using namespace slmd::config;
using namespace std::chrono_literals;

namespace {

Entry file_entry(std::string key, std::string value, unsigned line = 7) {
    return {std::move(key), std::move(value), "/etc/slmd/slmd.conf", line};
}
Entry cli_entry(std::string key, std::string value) { return {std::move(key), std::move(value), {}, 0}; }

struct BadValue {
    std::string key;
    std::string value;
    std::string message;  // the whole expected message, so its wording is part of the contract
};

// gtest names the case by its expected message rather than dumping the struct's bytes.
void PrintTo(const BadValue& bad, std::ostream* os) { *os << bad.message; }

class RefusedValues : public ::testing::TestWithParam<BadValue> {};

}  // namespace

TEST_P(RefusedValues, NameTheKeyAndLine) {
    const auto& bad = GetParam();
    Settings settings;
    settings.device = "/dev/untouched";
    auto errors = validate({cli_entry("device", "/dev/ttyACM0"), file_entry(bad.key, bad.value)}, settings);
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0], bad.message);
    EXPECT_EQ(settings.device, "/dev/untouched") << "settings change only when everything is valid";
}

INSTANTIATE_TEST_SUITE_P(
    Keys, RefusedValues,
    ::testing::Values(
        BadValue{"baud", "fast", "/etc/slmd/slmd.conf:7: baud: \"fast\" is not a number"},
        BadValue{"baud", "-9600", "/etc/slmd/slmd.conf:7: baud: \"-9600\" is not a number"},
        BadValue{"baud", "115200 ", "/etc/slmd/slmd.conf:7: baud: \"115200 \" is not a number"},
        BadValue{"baud", "0", "/etc/slmd/slmd.conf:7: baud: \"0\" is out of range (1-4000000)"},
        BadValue{"baud", "115201", "/etc/slmd/slmd.conf:7: baud: \"115201\" is not a baud rate the serial port can set"},
        BadValue{"baud", "99999999999999999999999",
                 "/etc/slmd/slmd.conf:7: baud: \"99999999999999999999999\" is out of range (1-4000000)"},
        BadValue{"device", "", "/etc/slmd/slmd.conf:7: device: must not be empty"},
        BadValue{"rtscts", "maybe", "/etc/slmd/slmd.conf:7: rtscts: \"maybe\" is not yes or no"},
        BadValue{"api-socket", "run/slmd.sock", "/etc/slmd/slmd.conf:7: api-socket: \"run/slmd.sock\" is not an absolute path"},
        BadValue{"api-socket", "/" + std::string(120, 'x'),
                 "/etc/slmd/slmd.conf:7: api-socket: \"/" + std::string(120, 'x') +
                     "\" is too long for a Unix socket (at most 107 bytes)"},
        BadValue{"data-port", "65536", "/etc/slmd/slmd.conf:7: data-port: \"65536\" is out of range (0-65535)"},
        BadValue{"bypass", "10.0.0.0/33", "/etc/slmd/slmd.conf:7: bypass: \"10.0.0.0/33\" is not an address or CIDR"},
        BadValue{"bypass", "example.com", "/etc/slmd/slmd.conf:7: bypass: \"example.com\" is not an address or CIDR"},
        BadValue{"sync-timeout-ms", "99", "/etc/slmd/slmd.conf:7: sync-timeout-ms: \"99\" is out of range (100-3600000)"},
        BadValue{"register-timeout-ms", "10s",
                 "/etc/slmd/slmd.conf:7: register-timeout-ms: \"10s\" is not a number"},
        BadValue{"max-queued", "4097", "/etc/slmd/slmd.conf:7: max-queued: \"4097\" is out of range (0-4096)"},
        BadValue{"connect-timeout-ms", "120001",
                 "/etc/slmd/slmd.conf:7: connect-timeout-ms: \"120001\" is out of range (100-120000)"},
        BadValue{"udp-max-stand-ins", "0",
                 "/etc/slmd/slmd.conf:7: udp-max-stand-ins: \"0\" is out of range (1-1024)"},
        BadValue{"udp-max-stand-ins", "many", "/etc/slmd/slmd.conf:7: udp-max-stand-ins: \"many\" is not a number"},
        BadValue{"api-max-clients", "7", "/etc/slmd/slmd.conf:7: api-max-clients: \"7\" is out of range (8-65536)"},
        BadValue{"api-idle-timeout-ms", "99",
                 "/etc/slmd/slmd.conf:7: api-idle-timeout-ms: \"99\" is out of range (100-3600000)"},
        BadValue{"socket-poll-ms", "10", "/etc/slmd/slmd.conf:7: socket-poll-ms: \"10\" is out of range (50-60000)"},
        BadValue{"read-batch-ms", "51", "/etc/slmd/slmd.conf:7: read-batch-ms: \"51\" is out of range (0-50)"},
        BadValue{"answer-wait-ms", "1001", "/etc/slmd/slmd.conf:7: answer-wait-ms: \"1001\" is out of range (0-1000)"},
        BadValue{"half-close-idle-ms", "999",
                 "/etc/slmd/slmd.conf:7: half-close-idle-ms: \"999\" is out of range (1000-3600000)"},
        BadValue{"recovery-max", "0", "/etc/slmd/slmd.conf:7: recovery-max: \"0\" is out of range (1-1000)"},
        BadValue{"recovery-window-ms", "999",
                 "/etc/slmd/slmd.conf:7: recovery-window-ms: \"999\" is out of range (1000-86400000)"},
        BadValue{"recovery-backoff-ms", "30min",
                 "/etc/slmd/slmd.conf:7: recovery-backoff-ms: \"30min\" is not a number"},
        BadValue{"stop-timeout-ms", "60001",
                 "/etc/slmd/slmd.conf:7: stop-timeout-ms: \"60001\" is out of range (100-60000)"},
        BadValue{"log-level", "verbose",
                 "/etc/slmd/slmd.conf:7: log-level: \"verbose\" is not a log level (error, warning, notice, info, debug)"},
        BadValue{"verbose", "2", "/etc/slmd/slmd.conf:7: verbose: \"2\" is not yes or no"},
        BadValue{"native-tls", "mbed", "/etc/slmd/slmd.conf:7: native-tls: \"mbed\" is not yes or no"},
        BadValue{"tcp-proxy", "never", "/etc/slmd/slmd.conf:7: tcp-proxy: \"never\" is neither auto nor tls-only"},
        BadValue{"devcie", "/dev/ttyACM0", "/etc/slmd/slmd.conf:7: devcie: unknown key"},
        BadValue{"once", "yes", "/etc/slmd/slmd.conf:7: once: only valid on the command line"}),
    [](const auto& info) { return "case" + std::to_string(info.index); });

TEST(Config, DefaultsNeedOnlyADevice) {
    Settings settings;
    auto errors = validate({}, settings);
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0], "no device: set 'device = PATH' in the configuration file or pass --device PATH");

    ASSERT_TRUE(validate({file_entry("device", "/dev/nrf91")}, settings).empty());
    EXPECT_EQ(settings.device, "/dev/nrf91");
    EXPECT_EQ(settings.baud, 115200u);
    EXPECT_FALSE(settings.rtscts);
    EXPECT_EQ(settings.api_socket, "/run/slmd/slmd.sock");
    EXPECT_EQ(settings.api_group, "slm");
    EXPECT_EQ(settings.admin_group, "slmadmin");
    EXPECT_EQ(settings.data_port, 0u);
    EXPECT_TRUE(settings.bypass.empty());
    EXPECT_EQ(settings.sync_timeout, 10000ms);
    EXPECT_EQ(settings.register_timeout, 180000ms);
    EXPECT_EQ(settings.max_queued, 32u);
    EXPECT_EQ(settings.connect_timeout, 60000ms);
    EXPECT_EQ(settings.udp_max_stand_ins, 16u);
    EXPECT_EQ(settings.socket_poll, 1000ms);
    EXPECT_EQ(settings.recovery_max, 5u);
    EXPECT_EQ(settings.recovery_window, 600000ms);
    EXPECT_EQ(settings.recovery_backoff, 1800000ms);
    EXPECT_EQ(settings.stop_timeout, 5000ms);
    EXPECT_FALSE(settings.native_tls);
    EXPECT_EQ(settings.log_level, LogLevel::info);
}

TEST(Config, NativeTlsIsABoolean) {
    Settings settings;
    ASSERT_TRUE(validate({file_entry("device", "/dev/nrf91"), file_entry("native-tls", "yes")}, settings).empty());
    EXPECT_TRUE(settings.native_tls);
}

TEST(Config, EveryKeyIsApplied) {
    Settings settings;
    auto errors = validate({file_entry("device", "/dev/ttyUSB0"), file_entry("baud", "921600"),
                            file_entry("rtscts", "yes"), file_entry("api-socket", "/run/x/api.sock"),
                            file_entry("api-group", ""), file_entry("data-port", "4000"),
                            file_entry("bypass", "192.168.0.0/16"), file_entry("bypass", "fd00::/8"),
                            file_entry("sync-timeout-ms", "100"), file_entry("register-timeout-ms", "1000"),
                            file_entry("max-queued", "0"), file_entry("connect-timeout-ms", "120000"),
                            file_entry("log-level", "warning"), file_entry("verbose", "off"),
                            file_entry("udp-max-stand-ins", "1024"), file_entry("socket-poll-ms", "50"),
                            file_entry("recovery-max", "1000"), file_entry("recovery-window-ms", "1000"),
                            file_entry("recovery-backoff-ms", "86400000"), file_entry("stop-timeout-ms", "100"),
                            file_entry("admin-group", "wheel"), file_entry("api-max-clients", "8"),
                            file_entry("api-idle-timeout-ms", "100"),
                            file_entry("finished-flow-linger-ms", "600000"), file_entry("read-batch-ms", "0"),
                            file_entry("half-close-idle-ms", "0"), file_entry("tcp-proxy", "tls-only"),
                            file_entry("answer-wait-ms", "0")},
                           settings);
    ASSERT_TRUE(errors.empty()) << errors[0];
    EXPECT_TRUE(settings.tcp_proxy_tls_only);
    EXPECT_EQ(settings.answer_wait, 0ms);
    EXPECT_EQ(settings.device, "/dev/ttyUSB0");
    EXPECT_EQ(settings.baud, 921600u);
    EXPECT_TRUE(settings.rtscts);
    EXPECT_EQ(settings.api_socket, "/run/x/api.sock");
    EXPECT_EQ(settings.api_group, "");
    EXPECT_EQ(settings.admin_group, "wheel");
    EXPECT_EQ(settings.api_max_clients, 8u);
    EXPECT_EQ(settings.api_idle_timeout, 100ms);
    EXPECT_EQ(settings.finished_flow_linger, 600000ms);
    EXPECT_EQ(settings.read_batch, 0ms);
    EXPECT_EQ(settings.half_close_idle, 0ms);
    EXPECT_EQ(settings.data_port, 4000u);
    EXPECT_EQ(settings.bypass.size(), 2u);
    EXPECT_EQ(settings.sync_timeout, 100ms);
    EXPECT_EQ(settings.register_timeout, 1000ms);
    EXPECT_EQ(settings.max_queued, 0u);
    EXPECT_EQ(settings.connect_timeout, 120000ms);
    EXPECT_EQ(settings.log_level, LogLevel::warning);
    EXPECT_FALSE(settings.verbose);
    EXPECT_EQ(settings.udp_max_stand_ins, 1024u);
    EXPECT_EQ(settings.socket_poll, 50ms);
    EXPECT_EQ(settings.recovery_max, 1000u);
    EXPECT_EQ(settings.recovery_window, 1000ms);
    EXPECT_EQ(settings.recovery_backoff, 86400000ms);
    EXPECT_EQ(settings.stop_timeout, 100ms);
}

TEST(Config, CommandLineWinsAndBypassAccumulates) {
    Settings settings;
    auto errors = validate({cli_entry("baud", "9600"), cli_entry("bypass", "10.0.0.0/8"),
                            file_entry("device", "/dev/a", 1), file_entry("baud", "115200", 2),
                            file_entry("bypass", "172.16.0.0/12", 3), cli_entry("log-level", "debug"),
                            file_entry("log-level", "error", 4)},
                           settings);
    ASSERT_TRUE(errors.empty()) << errors[0];
    EXPECT_EQ(settings.device, "/dev/a");
    EXPECT_EQ(settings.baud, 9600u);
    EXPECT_EQ(settings.log_level, LogLevel::debug);
    EXPECT_EQ(settings.bypass.size(), 2u);
}

TEST(Config, AnOverriddenBadFileValueIsStillAnError) {
    Settings settings;
    auto errors = validate({cli_entry("baud", "9600"), file_entry("device", "/dev/a", 1),
                            file_entry("baud", "fast", 2)},
                           settings);
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0], "/etc/slmd/slmd.conf:2: baud: \"fast\" is not a number");
}

TEST(Config, CommandLineErrorsNameTheOption) {
    Settings settings;
    auto errors = validate({cli_entry("device", "/dev/a"), cli_entry("data-port", "http")}, settings);
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0], "--data-port: \"http\" is not a number");
}

TEST(Config, ARepeatedKeyIsAnErrorExceptBypass) {
    Settings settings;
    auto errors = validate({file_entry("device", "/dev/a", 3), file_entry("device", "/dev/b", 9),
                            file_entry("bypass", "10.0.0.0/8", 10), file_entry("bypass", "10.1.0.0/16", 11)},
                           settings);
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0], "/etc/slmd/slmd.conf:9: device: given more than once (first at line 3)");
}

TEST(Config, EveryProblemIsReportedAtOnce) {
    Settings settings;
    auto errors = validate({file_entry("device", "/dev/a", 1), file_entry("baud", "x", 2),
                            file_entry("max-queued", "-1", 3), file_entry("colour", "blue", 4)},
                           settings);
    ASSERT_EQ(errors.size(), 3u);
    EXPECT_EQ(errors[0], "/etc/slmd/slmd.conf:4: colour: unknown key");
    EXPECT_EQ(errors[1], "/etc/slmd/slmd.conf:2: baud: \"x\" is not a number");
    EXPECT_EQ(errors[2], "/etc/slmd/slmd.conf:3: max-queued: \"-1\" is not a number");
}

TEST(ConfigScan, FindsLinesTheWayProgramOptionsReadsThem) {
    const std::string text =
        "# slmd\n"
        "\n"
        "device = /dev/ttyACM0   # the DK\n"
        "   baud=115200\n"
        "#baud = 9600\n"
        "[extra]\n"
        "key = value\n";
    auto scan = scan_config_text(text, "f.conf");
    ASSERT_TRUE(scan.errors.empty());
    ASSERT_EQ(scan.assignments.size(), 3u);
    EXPECT_EQ(scan.assignments[0].key, "device");
    EXPECT_EQ(scan.assignments[0].line, 3u);
    EXPECT_EQ(scan.assignments[1].key, "baud");
    EXPECT_EQ(scan.assignments[1].line, 4u);
    EXPECT_EQ(scan.assignments[2].key, "extra.key");
    EXPECT_EQ(scan.assignments[2].line, 7u);
}

TEST(ConfigScan, ALineWithoutEqualsIsASyntaxErrorWithItsLine) {
    auto scan = scan_config_text("device = /dev/a\r\nrtscts\r\n", "f.conf");
    ASSERT_EQ(scan.errors.size(), 1u);
    EXPECT_EQ(scan.errors[0], "f.conf:2: \"rtscts\" is not a 'key = value' line");
}

TEST(ConfigParse, ProgramOptionsEntriesCarryTheirLines) {
    std::vector<std::string> errors;
    auto raw = parse_config_text("# c\ndevice = /dev/a\nbypass = 10.0.0.0/8\n\nbypass = 10.1.0.0/16 # b\n"
                                 "[modem]\nbaud = 9600\n",
                                 "f.conf", option_description(), errors);
    ASSERT_TRUE(errors.empty()) << errors[0];
    ASSERT_EQ(raw.size(), 4u);
    EXPECT_EQ(raw[0].key, "device");
    EXPECT_EQ(raw[0].value, "/dev/a");
    EXPECT_EQ(raw[0].line, 2u);
    EXPECT_EQ(raw[1].line, 3u);
    EXPECT_EQ(raw[2].value, "10.1.0.0/16");
    EXPECT_EQ(raw[2].line, 5u);
    EXPECT_EQ(raw[3].key, "modem.baud");  // sections are not part of the format: an unknown key
    EXPECT_EQ(raw[3].line, 7u);
    Settings settings;
    auto problems = validate(raw, settings);
    ASSERT_EQ(problems.size(), 1u);
    EXPECT_EQ(problems[0], "f.conf:7: modem.baud: unknown key");
}

namespace {

struct TempFile {
    explicit TempFile(const std::string& text) {
        char name[] = "/tmp/slmd-config-test-XXXXXX";
        const int fd = mkstemp(name);
        path = name;
        if (fd >= 0) {
            [[maybe_unused]] auto n = ::write(fd, text.data(), text.size());
            ::close(fd);
        }
    }
    ~TempFile() { ::unlink(path.c_str()); }
    std::string path;
};

Loaded load_args(std::vector<std::string> args, const std::string& default_path) {
    std::vector<const char*> argv{"slmd"};
    for (const auto& arg : args) argv.push_back(arg.c_str());
    return load(static_cast<int>(argv.size()), argv.data(), default_path);
}

}  // namespace

TEST(ConfigLoad, AMissingDefaultFileIsFine) {
    auto loaded = load_args({"--device", "/dev/a"}, "/nonexistent/slmd.conf");
    ASSERT_EQ(loaded.action, Action::run) << loaded.errors[0];
    EXPECT_TRUE(loaded.config_path.empty());
    EXPECT_EQ(loaded.settings.device, "/dev/a");
}

TEST(ConfigLoad, AMissingExplicitFileIsAnError) {
    auto loaded = load_args({"--device", "/dev/a", "--config", "/nonexistent/slmd.conf"}, "/nonexistent/d.conf");
    ASSERT_EQ(loaded.action, Action::fail);
    ASSERT_EQ(loaded.errors.size(), 1u);
    EXPECT_EQ(loaded.errors[0], "/nonexistent/slmd.conf: cannot read configuration file: No such file or directory");
}

TEST(ConfigLoad, FileAndCommandLineTogether) {
    TempFile file("device = /dev/from-file\nbaud = 9600\nrtscts = yes\nmax-queued = 3\n");
    auto loaded = load_args({"--config", file.path, "-b", "57600", "--bypass", "10.0.0.0/8", "--once"}, "/x");
    ASSERT_EQ(loaded.action, Action::run) << loaded.errors[0];
    EXPECT_EQ(loaded.config_path, file.path);
    EXPECT_EQ(loaded.settings.device, "/dev/from-file");
    EXPECT_EQ(loaded.settings.baud, 57600u);
    EXPECT_TRUE(loaded.settings.rtscts);
    EXPECT_EQ(loaded.settings.max_queued, 3u);
    EXPECT_EQ(loaded.settings.bypass.size(), 1u);
    EXPECT_TRUE(loaded.settings.once);
}

TEST(ConfigLoad, SwitchesOnTheCommandLine) {
    auto loaded = load_args({"-d", "/dev/a", "--rtscts", "-v"}, "/nonexistent");
    ASSERT_EQ(loaded.action, Action::run) << loaded.errors[0];
    EXPECT_TRUE(loaded.settings.rtscts);
    EXPECT_TRUE(loaded.settings.verbose);
}

TEST(ConfigLoad, BadFileValueNamesPathLineAndKey) {
    TempFile file("# comment\ndevice = /dev/a\n\nconnect-timeout-ms = 500000\n");
    auto loaded = load_args({"--config", file.path}, "/x");
    ASSERT_EQ(loaded.action, Action::fail);
    ASSERT_EQ(loaded.errors.size(), 1u);
    EXPECT_EQ(loaded.errors[0], file.path + ":4: connect-timeout-ms: \"500000\" is out of range (100-120000)");
}

TEST(ConfigLoad, SyntaxErrorNamesTheLine) {
    TempFile file("device = /dev/a\nrtscts\n");
    auto loaded = load_args({"--config", file.path}, "/x");
    ASSERT_EQ(loaded.action, Action::fail);
    ASSERT_EQ(loaded.errors.size(), 1u);
    EXPECT_EQ(loaded.errors[0], file.path + ":2: \"rtscts\" is not a 'key = value' line");
}

TEST(ConfigLoad, UnknownCommandLineOptionFails) {
    auto loaded = load_args({"--colour", "blue"}, "/x");
    ASSERT_EQ(loaded.action, Action::fail);
    ASSERT_EQ(loaded.errors.size(), 1u);
    EXPECT_NE(loaded.errors[0].find("colour"), std::string::npos) << loaded.errors[0];
}

TEST(ConfigLoad, HelpListsEveryFileKey) {
    auto loaded = load_args({"--help"}, "/x");
    ASSERT_EQ(loaded.action, Action::help);
    for (const char* key : {"--device", "--baud", "--rtscts", "--api-socket", "--api-group", "--data-port",
                            "--bypass", "--sync-timeout-ms", "--register-timeout-ms", "--max-queued",
                            "--connect-timeout-ms", "--log-level", "--config", "--once", "--version",
                            "--recovery-max", "--recovery-window-ms", "--recovery-backoff-ms", "--stop-timeout-ms",
                            "--admin-group", "--api-max-clients", "--api-idle-timeout-ms", "--finished-flow-linger-ms",
                            "--read-batch-ms", "--half-close-idle-ms", "--tcp-proxy", "--answer-wait-ms"}) {
        EXPECT_NE(loaded.usage.find(key), std::string::npos) << key;
    }
}

std::string shipped_config_path() {
    return (std::filesystem::path(__FILE__).parent_path() / "../../systemd/slmd.conf").lexically_normal();
}

TEST(ConfigLoad, TheShippedDefaultFileIsValidOnceADeviceIsSet) {
    // systemd/slmd.conf documents every key commented out; it must parse cleanly as shipped.
    auto loaded = load_args({"--device", "/dev/a", "--config", shipped_config_path()}, "/x");
    ASSERT_EQ(loaded.action, Action::run) << loaded.errors[0];
    EXPECT_EQ(loaded.config_path, shipped_config_path());
}

TEST(ConfigLoad, TheShippedFileDocumentsTheRealDefaults) {
    // Uncommenting every "#key = value" line must change nothing: the documented defaults are the code's.
    std::ifstream in(shipped_config_path());
    ASSERT_TRUE(in) << shipped_config_path();
    std::string line, uncommented;
    std::vector<std::string> keys;
    while (std::getline(in, line)) {
        if (line.size() > 1 && line[0] == '#' && std::islower(static_cast<unsigned char>(line[1])) &&
            line.find(" = ") != std::string::npos) {
            keys.push_back(line.substr(1, line.find(" = ") - 1));
            uncommented += line.substr(1) + "\n";
        }
    }
    for (const char* key : {"device", "baud", "rtscts", "api-socket", "api-group", "data-port", "bypass",
                            "sync-timeout-ms", "register-timeout-ms", "max-queued", "connect-timeout-ms",
                            "log-level", "recovery-max", "recovery-window-ms", "recovery-backoff-ms",
                            "stop-timeout-ms", "admin-group", "api-max-clients", "api-idle-timeout-ms", "finished-flow-linger-ms",
                            "read-batch-ms", "half-close-idle-ms", "tcp-proxy", "answer-wait-ms"}) {
        EXPECT_NE(std::find(keys.begin(), keys.end(), key), keys.end()) << key << " is not documented";
    }
    TempFile file(uncommented);
    auto loaded = load_args({"--config", file.path}, "/x");
    ASSERT_EQ(loaded.action, Action::run) << loaded.errors[0];
    Settings defaults;
    EXPECT_EQ(loaded.settings.baud, defaults.baud);
    EXPECT_EQ(loaded.settings.rtscts, defaults.rtscts);
    EXPECT_EQ(loaded.settings.api_socket, defaults.api_socket);
    EXPECT_EQ(loaded.settings.api_group, defaults.api_group);
    EXPECT_EQ(loaded.settings.admin_group, defaults.admin_group);
    EXPECT_EQ(loaded.settings.api_max_clients, defaults.api_max_clients);
    EXPECT_EQ(loaded.settings.api_idle_timeout, defaults.api_idle_timeout);
    EXPECT_EQ(loaded.settings.finished_flow_linger, defaults.finished_flow_linger);
    EXPECT_EQ(loaded.settings.data_port, defaults.data_port);
    EXPECT_EQ(loaded.settings.sync_timeout, defaults.sync_timeout);
    EXPECT_EQ(loaded.settings.register_timeout, defaults.register_timeout);
    EXPECT_EQ(loaded.settings.max_queued, defaults.max_queued);
    EXPECT_EQ(loaded.settings.connect_timeout, defaults.connect_timeout);
    EXPECT_EQ(loaded.settings.log_level, defaults.log_level);
    EXPECT_EQ(loaded.settings.recovery_max, defaults.recovery_max);
    EXPECT_EQ(loaded.settings.recovery_window, defaults.recovery_window);
    EXPECT_EQ(loaded.settings.recovery_backoff, defaults.recovery_backoff);
    EXPECT_EQ(loaded.settings.stop_timeout, defaults.stop_timeout);
    EXPECT_EQ(loaded.settings.read_batch, defaults.read_batch);
    EXPECT_EQ(loaded.settings.tcp_proxy_tls_only, defaults.tcp_proxy_tls_only);
    EXPECT_EQ(loaded.settings.answer_wait, defaults.answer_wait);
}
