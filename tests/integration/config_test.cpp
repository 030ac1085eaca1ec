// The real slmd binary with configuration files: bad values stop it with exit code 2 and a message naming
// file, line and key; good files configure it, and the command line overrides them.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <fstream>

#include "process.hpp"

using namespace slmd::test;
using namespace std::chrono_literals;

namespace {

std::string write_file(const TempDir& dir, const std::string& name, const std::string& text) {
    const std::string path = dir / name;
    std::ofstream(path) << text;
    return path;
}

struct Refusal {
    std::string body;     // the file after a valid "device =" line 1
    std::string message;  // expected after "slmd: PATH:"
};

void PrintTo(const Refusal& refusal, std::ostream* os) { *os << refusal.message; }

class ConfigFileRefused : public ::testing::TestWithParam<Refusal> {};

}  // namespace

TEST_P(ConfigFileRefused, ExitsTwoNamingLineAndKey) {
    TempDir dir;
    const auto path = write_file(dir, "slmd.conf", "device = " + (dir / "tty") + "\n" + GetParam().body);
    ChildProcess slmd({SLMD_BIN, "--config", path});
    auto code = slmd.wait_exit(10s);
    ASSERT_TRUE(code) << "slmd did not exit: " << slmd.output();
    EXPECT_EQ(*code, 2) << slmd.output();
    EXPECT_NE(slmd.output().find("slmd: " + path + ":" + GetParam().message), std::string::npos) << slmd.output();
    EXPECT_EQ(slmd.output().find("serial:"), std::string::npos) << "slmd must not start: " << slmd.output();
}

INSTANTIATE_TEST_SUITE_P(
    BadValues, ConfigFileRefused,
    ::testing::Values(Refusal{"# comment\n\nbaud = fast\n", "4: baud: \"fast\" is not a number"},
                      Refusal{"colour = blue\n", "2: colour: unknown key"},
                      Refusal{"data-port = 70000\n", "2: data-port: \"70000\" is out of range (0-65535)"},
                      Refusal{"bypass = 10.0.0.0/8\nbypass = 10.0.0.0/40\n",
                              "3: bypass: \"10.0.0.0/40\" is not an address or CIDR"},
                      Refusal{"log-level = loud\n",
                              "2: log-level: \"loud\" is not a log level (error, warning, notice, info, debug)"},
                      Refusal{"connect-timeout-ms = 120001\n",
                              "2: connect-timeout-ms: \"120001\" is out of range (100-120000)"},
                      Refusal{"   max-queued=-3   # queue\n", "2: max-queued: \"-3\" is not a number"},
                      Refusal{"rtscts\n", "2: \"rtscts\" is not a 'key = value' line"}),
    [](const auto& info) { return "case" + std::to_string(info.index); });

TEST(ConfigFile, AMissingExplicitFileIsAnError) {
    TempDir dir;
    ChildProcess slmd({SLMD_BIN, "--config", dir / "absent.conf", "--device", dir / "tty"});
    auto code = slmd.wait_exit(10s);
    ASSERT_TRUE(code) << slmd.output();
    EXPECT_EQ(*code, 2) << slmd.output();
    EXPECT_NE(slmd.output().find("slmd: " + (dir / "absent.conf") +
                                 ": cannot read configuration file: No such file or directory"),
              std::string::npos)
        << slmd.output();
}

TEST(ConfigFile, ABadCommandLineValueIsRefusedToo) {
    TempDir dir;
    const auto path = write_file(dir, "slmd.conf", "");
    ChildProcess slmd({SLMD_BIN, "--config", path, "--device", dir / "tty", "--sync-timeout-ms", "soon"});
    auto code = slmd.wait_exit(10s);
    ASSERT_TRUE(code) << slmd.output();
    EXPECT_EQ(*code, 2) << slmd.output();
    EXPECT_NE(slmd.output().find("slmd: --sync-timeout-ms: \"soon\" is not a number"), std::string::npos)
        << slmd.output();
}

TEST(ConfigFile, ConfiguresSlmdAndTheCommandLineWins) {
    TempDir dir;
    ChildProcess sim({SLMSIM_BIN, "--link", dir / "tty", "--baud", "0", "--profile", "v2.9"});
    ASSERT_TRUE(wait_for_path(dir / "tty", 10s)) << sim.output();
    // The file names the device and the API socket; its log level (warning) is overridden to info.
    const auto path = write_file(dir, "slmd.conf",
                                 "# test\n"
                                 "device = " + (dir / "tty") + "\n"
                                 "api-socket = " + (dir / "from-file.sock") + "\n"
                                 "register-timeout-ms = 20000\n"
                                 "max-queued = 4\n"
                                 "connect-timeout-ms = 5000\n"
                                 "bypass = 192.168.0.0/16\n"
                                 "log-level = warning\n");
    ChildProcess slmd({SLMD_BIN, "--config", path, "--log-level", "info"});
    ASSERT_TRUE(slmd.wait_for_output("modem: ready", 20s)) << slmd.output();
    EXPECT_NE(slmd.output().find("api: listening on " + (dir / "from-file.sock")), std::string::npos)
        << slmd.output();
    struct stat st {};
    EXPECT_EQ(::stat((dir / "from-file.sock").c_str(), &st), 0);
    slmd.signal(SIGTERM);
    auto code = slmd.wait_exit(10s);
    ASSERT_TRUE(code) << slmd.output();
    EXPECT_EQ(*code, 0) << slmd.output();
}

TEST(ConfigFile, LogLevelFromTheFileFiltersInfo) {
    TempDir dir;
    ChildProcess sim({SLMSIM_BIN, "--link", dir / "tty", "--baud", "0", "--profile", "v2.9"});
    ASSERT_TRUE(wait_for_path(dir / "tty", 10s)) << sim.output();
    const auto path = write_file(dir, "slmd.conf",
                                 "device = " + (dir / "tty") + "\nregister-timeout-ms = 20000\nlog-level = notice\n");
    ChildProcess slmd({SLMD_BIN, "--config", path, "--once"});
    auto code = slmd.wait_exit(30s);
    ASSERT_TRUE(code) << slmd.output();
    EXPECT_EQ(*code, 0) << slmd.output();
    EXPECT_NE(slmd.output().find("modem: ready"), std::string::npos) << slmd.output();  // a notice
    EXPECT_EQ(slmd.output().find("serial: "), std::string::npos) << slmd.output();      // an info line
}
