// slmd brings each simulated SLM release up to "registered" over a real pty, survives noise and a modem
// reset during bring-up, and fails clearly (non-zero, no hang) on a missing or silent device.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "process.hpp"

using namespace slmd::test;
using namespace std::chrono_literals;

namespace {

struct Simulator {
    Simulator(const TempDir& dir, const std::string& profile, std::vector<std::string> extra = {})
        : link(dir / "ttySLM"), control(dir / "control.sock") {
        std::vector<std::string> argv{SLMSIM_BIN, "--link", link, "--profile", profile, "--control", control};
        argv.insert(argv.end(), extra.begin(), extra.end());
        process.emplace(argv);
        ready = wait_for_path(link, 10s) && wait_for_path(control, 10s);
    }
    std::string link;
    std::string control;
    std::optional<ChildProcess> process;
    bool ready = false;
};

std::vector<std::string> slmd_args(const std::string& device, std::vector<std::string> extra = {}) {
    std::vector<std::string> argv{SLMD_BIN, "--device", device, "--once", "--register-timeout-ms", "20000",
                                  "--sync-timeout-ms", "5000"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
}

class BringupPerProfile : public ::testing::TestWithParam<std::pair<std::string, std::string>> {};

}  // namespace

TEST_P(BringupPerProfile, ReachesRegisteredAndReportsTheRelease) {
    const auto& [profile, release] = GetParam();
    TempDir dir;
    Simulator sim(dir, profile, {"--baud", "115200"});
    ASSERT_TRUE(sim.ready);
    ChildProcess slmd(slmd_args(sim.link, {"--baud", "115200"}));
    auto code = slmd.wait_exit(30s);
    ASSERT_TRUE(code) << slmd.output();
    EXPECT_EQ(*code, 0) << slmd.output();
    const auto& out = slmd.output();
    EXPECT_NE(out.find(release), std::string::npos) << out;
    EXPECT_NE(out.find("registered (home)"), std::string::npos) << out;
    EXPECT_NE(out.find("modem: ready"), std::string::npos) << out;
}

INSTANTIATE_TEST_SUITE_P(Releases, BringupPerProfile,
                         ::testing::Values(std::pair{std::string("v2.5"), std::string("SLM release 2.5.0")},
                                           std::pair{std::string("v2.7"), std::string("SLM release 2.7.0")},
                                           std::pair{std::string("v2.9"), std::string("SLM release 2.9.0")},
                                           std::pair{std::string("sm-v1.0"), std::string("Serial Modem v1.0.1")}),
                         [](const auto& info) {
                             std::string name = info.param.first;
                             for (auto& c : name) {
                                 if (c == '.' || c == '-') c = '_';
                             }
                             return name;
                         });

TEST(Bringup, SurvivesAModemResetWhileWaitingForRegistration) {
    TempDir dir;
    // A slow attach keeps slmd waiting for registration long enough to reset the modem under it.
    Simulator sim(dir, "v2.9", {"--baud", "0", "--attach-delay-ms", "3000"});
    ASSERT_TRUE(sim.ready);
    ChildProcess slmd(slmd_args(sim.link));
    ASSERT_TRUE(slmd.wait_for_output("waiting for registration", 10s)) << slmd.output();
    EXPECT_EQ(control_command(sim.control, "reset"), "ok");
    auto code = slmd.wait_exit(30s);
    ASSERT_TRUE(code) << slmd.output();
    EXPECT_EQ(*code, 0) << slmd.output();
    EXPECT_NE(slmd.output().find("modem reset during bring-up"), std::string::npos) << slmd.output();
    // Bring-up ran twice: once interrupted, once to the end.
    std::string out = slmd.output();
    std::size_t radio_on = 0;
    for (auto at = out.find("radio on"); at != std::string::npos; at = out.find("radio on", at + 1)) ++radio_on;
    EXPECT_EQ(radio_on, 2u) << out;
}

TEST(Bringup, SurvivesNoiseOnTheLine) {
    TempDir dir;
    Simulator sim(dir, "v2.9", {"--baud", "0", "--attach-delay-ms", "1000"});
    ASSERT_TRUE(sim.ready);
    // Garbage before slmd even starts, and more in the middle of bring-up.
    EXPECT_EQ(control_command(sim.control, "noise 00ff0d0a4f4b0d0a2b2b2b"), "ok");
    ChildProcess slmd(slmd_args(sim.link));
    ASSERT_TRUE(slmd.wait_for_output("waiting for registration", 10s)) << slmd.output();
    EXPECT_EQ(control_command(sim.control, "noise 41540d0a45524").rfind("error", 0), 0u) << "odd hex digit count";
    EXPECT_EQ(control_command(sim.control, "noise 0d0a23585443504441"), "ok");
    auto code = slmd.wait_exit(30s);
    ASSERT_TRUE(code) << slmd.output();
    EXPECT_EQ(*code, 0) << slmd.output();
    EXPECT_NE(slmd.output().find("address 10.0.0.2"), std::string::npos) << slmd.output();
}

TEST(Bringup, MissingDeviceFailsClearly) {
    TempDir dir;
    ChildProcess slmd(slmd_args(dir / "no-such-tty"));
    auto code = slmd.wait_exit(10s);
    ASSERT_TRUE(code) << "slmd hung on a missing device";
    EXPECT_EQ(*code, 1);
    EXPECT_NE(slmd.output().find("cannot open"), std::string::npos) << slmd.output();
    EXPECT_NE(slmd.output().find("No such file or directory"), std::string::npos) << slmd.output();
}

TEST(Bringup, SilentDeviceFailsClearly) {
    // A pty with nobody behind it: the device exists but nothing ever answers.
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    ASSERT_GE(master, 0);
    ASSERT_EQ(grantpt(master), 0);
    ASSERT_EQ(unlockpt(master), 0);
    std::string slave = ptsname(master);
    ChildProcess slmd({SLMD_BIN, "--device", slave, "--once", "--sync-timeout-ms", "1500"});
    auto code = slmd.wait_exit(15s);
    close(master);
    ASSERT_TRUE(code) << "slmd hung on a silent device";
    EXPECT_EQ(*code, 1);
    EXPECT_NE(slmd.output().find("does not respond to AT"), std::string::npos) << slmd.output();
}

TEST(Bringup, NotATtyFailsClearly) {
    TempDir dir;
    ChildProcess slmd(slmd_args("/dev/null"));
    auto code = slmd.wait_exit(10s);
    ASSERT_TRUE(code);
    EXPECT_EQ(*code, 1);
    EXPECT_NE(slmd.output().find("cannot open /dev/null"), std::string::npos) << slmd.output();
}
