// The shim and slm-run without slmd: what is exported and linked, syscall() passthrough, slmd absent (fast
// ENETDOWN, no hang), loopback bypass, strict mode, local names, logging, and slm-run's launcher duties.
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <set>
#include <sstream>

#include "harness.hpp"

using namespace slmd::preload_test;
using namespace std::chrono_literals;

namespace {

const std::string absent_socket = "SLMSOCK_SOCKET=/nonexistent/slmd.sock";

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
}

RunResult matrix_case(std::vector<std::string> env, std::vector<std::string> args) {
    std::vector<std::string> argv{slm_run(), matrix()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(env, argv, 30s);
}

}  // namespace

TEST(Exports, OnlyTheHooksAreDefined) {
    auto r = run({}, {"/bin/sh", "-c", "nm -D --defined-only '" + shim() + "' | awk '{print $3}'"}, 30s);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    std::set<std::string> got;
    for (auto& l : lines_of(r.output)) {
        if (!l.empty()) got.insert(l);
    }
    const std::set<std::string> want{"connect",        "getpeername",     "getsockopt",      "shutdown",
                                     "sendto",         "sendmsg",         "syscall",         "bind",
                                     "listen",         "accept",          "accept4",         "getsockname",
                                     "recvfrom",       "__recvfrom_chk",  "recvmsg",         "recvmmsg",
                                     "sendmmsg",       "getaddrinfo",     "gethostbyname",   "gethostbyname2",
                                     "gethostbyname_r", "gethostbyname2_r", "gethostbyaddr", "gethostbyaddr_r",
                                     "getnameinfo"};
    EXPECT_EQ(got, want) << r.output;
}

TEST(Exports, NeedsNothingButLibc) {
    auto r = run({}, {"/bin/sh", "-c", "readelf -d '" + shim() + "'"}, 30s);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    for (auto& l : lines_of(r.output)) {
        if (l.find("(NEEDED)") != std::string::npos) {
            EXPECT_TRUE(l.find("[libc.so.6]") != std::string::npos || l.find("[ld-linux") != std::string::npos) << l;
        }
        EXPECT_EQ(l.find("RUNPATH"), std::string::npos) << l;
        EXPECT_EQ(l.find("RPATH"), std::string::npos) << l;
    }
}

TEST(Isolation, TheNamespaceHasNoRouteOut) {
    if (!isolated()) GTEST_SKIP() << "no network namespace (needs root): leaks would not fail loudly";
    // Without the shim a connect to the test network fails at once: anything that escapes the shim is seen.
    auto r = run({}, {matrix(), "kernel-connect", std::to_string(ENETUNREACH)}, 30s);
    EXPECT_EQ(r.exit_code, 0) << r.output;
}

TEST(Shim, SyscallPassesUnknownNumbersThroughAndHooksSocketOnes) {
    auto r = matrix_case({absent_socket}, {"syscall-passthrough"});
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("ok syscall-passthrough"), std::string::npos) << r.output;
}

TEST(Shim, SlmdAbsentFailsFastWithEnetdown) {
    auto r = matrix_case({absent_socket}, {"absent"});
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_LT(r.seconds, 5.0) << r.output;
}

TEST(Shim, SilentOnStderrByDefault) {
    auto r = matrix_case({absent_socket}, {"absent"});
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_EQ(r.output.find("slmsock"), std::string::npos) << r.output;
}

TEST(Shim, DebugLogsOneLinePerRoutingDecision) {
    auto r = matrix_case({absent_socket, "SLMSOCK_DEBUG=1"}, {"absent"});
    ASSERT_EQ(r.exit_code, 0) << r.output;
    int connect_lines = 0;
    for (auto& l : lines_of(r.output)) {
        if (l.rfind("slmsock[", 0) == 0 && l.find(" connect fd=") != std::string::npos) ++connect_lines;
    }
    EXPECT_EQ(connect_lines, 4) << r.output;  // blocking, non-blocking, IPv6, Fast Open
    EXPECT_NE(r.output.find("203.0.113.10:80: failed: Network is down"), std::string::npos) << r.output;
}

TEST(Shim, BindWithoutSlmdFallsBackToTheKernelForTheWildcard) {
    // A free port: bound and released by the test.
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    socklen_t len = sizeof sa;
    ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len), 0);
    const std::string port = std::to_string(ntohs(sa.sin_port));
    close(fd);
    // SLMSOCK_LISTEN=modem: the wildcard is offered to the modem first (the default keeps it local outright).
    auto r = matrix_case({absent_socket, "SLMSOCK_LISTEN=modem"},
                         {"bind-fallback", "-", port, std::to_string(EADDRNOTAVAIL)});
    EXPECT_EQ(r.exit_code, 0) << r.output;
}

TEST(Shim, LoopbackGoesToTheKernelWithoutSlmd) {
    auto r = matrix_case({absent_socket}, {"loopback"});
    EXPECT_EQ(r.exit_code, 0) << r.output;
}

TEST(Shim, StrictModeAndUdpWithoutSlmd) {
    auto r = matrix_case({absent_socket, "SLMSOCK_STRICT=1"}, {"strict"});
    EXPECT_EQ(r.exit_code, 0) << r.output;
}

TEST(Shim, LocalNamesAreTheCLibrarys) {
    // A name /etc/hosts lists (other than localhost): the C library answers it, slmd is not asked.
    std::string listed;
    std::istringstream hosts(read_file("/etc/hosts"));
    for (std::string line; listed.empty() && std::getline(hosts, line);) {
        std::istringstream fields(line.substr(0, line.find('#')));
        std::string address, name;
        fields >> address;
        while (listed.empty() && fields >> name) {
            if (name.find("localhost") == std::string::npos && name.find("loopback") == std::string::npos) listed = name;
        }
    }
    if (listed.empty()) GTEST_SKIP() << "/etc/hosts lists no name besides localhost";
    auto r = matrix_case({absent_socket, "SLMSOCK_DEBUG=1"}, {"dns-local", listed});
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("getaddrinfo " + listed + ": C library"), std::string::npos) << r.output;
    EXPECT_EQ(r.output.find("resolve " + listed), std::string::npos) << r.output;
}

TEST(SlmRun, VersionAndHelp) {
    auto v = run({}, {slm_run(), "--version"}, 10s);
    EXPECT_EQ(v.exit_code, 0);
    EXPECT_EQ(v.output.rfind("slm-run (slmd) ", 0), 0u) << v.output;
    auto h = run({}, {slm_run(), "--help"}, 10s);
    EXPECT_EQ(h.exit_code, 0);
    EXPECT_NE(h.output.find("Usage: slm-run"), std::string::npos) << h.output;
}

TEST(SlmRun, UsageErrorsAndMissingCommands) {
    EXPECT_EQ(run({}, {slm_run()}, 10s).exit_code, 2);
    EXPECT_EQ(run({}, {slm_run(), "--bogus", "true"}, 10s).exit_code, 2);
    auto r = run({}, {slm_run(), "--", "no-such-command-anywhere"}, 10s);
    EXPECT_EQ(r.exit_code, 127);
    EXPECT_NE(r.output.find("no-such-command-anywhere: command not found"), std::string::npos) << r.output;
    EXPECT_EQ(run({}, {slm_run(), "/nonexistent/prog"}, 10s).exit_code, 127);
    slmd::test::TempDir dir;
    write_file(dir / "not-executable", "#!/bin/sh\n");
    EXPECT_EQ(run({}, {slm_run(), dir / "not-executable"}, 10s).exit_code, 126);
}

TEST(SlmRun, PassesTheCommandsExitStatusAndArguments) {
    EXPECT_EQ(run({}, {slm_run(), "/bin/sh", "-c", "exit 7"}, 10s).exit_code, 7);
    auto r = run({}, {slm_run(), "--", "/bin/echo", "--help", "a b"}, 10s);
    EXPECT_EQ(r.output, "--help a b\n");
}

TEST(SlmRun, PrependsTheShimToLdPreloadOnce) {
    const auto canonical = std::filesystem::canonical(shim()).string();
    auto r = run({"LD_PRELOAD="}, {slm_run(), "/bin/sh", "-c", "echo \"$LD_PRELOAD\""}, 10s);
    EXPECT_EQ(r.output, canonical + "\n");
    r = run({"LD_PRELOAD=libm.so.6"}, {slm_run(), "/bin/sh", "-c", "echo \"$LD_PRELOAD\""}, 10s);
    EXPECT_EQ(r.output, canonical + ":libm.so.6\n");
    // slm-run inside slm-run does not stack a second copy.
    r = run({"LD_PRELOAD="}, {slm_run(), slm_run(), "/bin/sh", "-c", "echo \"$LD_PRELOAD\""}, 10s);
    EXPECT_EQ(r.output, canonical + "\n");
}

TEST(SlmRun, OptionsSetTheEnvironment) {
    auto r = run({}, {slm_run(), "--strict", "--debug", "--socket", "/tmp/x.sock", "/bin/sh", "-c",
                      "echo \"$SLMSOCK_STRICT $SLMSOCK_DEBUG $SLMSOCK_SOCKET\""},
                 10s);
    EXPECT_EQ(r.output, "1 1 /tmp/x.sock\n");
    r = run({"SLMSOCK_SOCKET=/from/env"}, {slm_run(), "/bin/sh", "-c", "echo \"$SLMSOCK_SOCKET\""}, 10s);
    EXPECT_EQ(r.output, "/from/env\n");
    r = run({}, {slm_run(), "/bin/sh", "-c", "echo \"$SLMSOCK_LISTEN\""}, 10s);
    EXPECT_EQ(r.output, "local\n");
    r = run({}, {slm_run(), "--listen", "modem", "/bin/sh", "-c", "echo \"$SLMSOCK_LISTEN\""}, 10s);
    EXPECT_EQ(r.output, "modem\n");
    r = run({"SLMSOCK_LISTEN=modem"}, {slm_run(), "/bin/sh", "-c", "echo \"$SLMSOCK_LISTEN\""}, 10s);
    EXPECT_EQ(r.output, "modem\n");
    EXPECT_EQ(run({}, {slm_run(), "--listen=elsewhere", "true"}, 10s).exit_code, 2);
}

TEST(SlmRun, WarnsForAStaticallyLinkedCommandAndRunsIt) {
    auto r = run({}, {slm_run(), STATIC_HELLO_BIN}, 10s);
    EXPECT_EQ(r.exit_code, 0);
    EXPECT_NE(r.output.find("static hello"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("slm-run: warning:"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("statically linked"), std::string::npos) << r.output;
    auto dynamic = run({}, {slm_run(), "/bin/true"}, 10s);
    EXPECT_EQ(dynamic.output, "") << "no warning for a dynamic program";
}

TEST(SlmRun, WarnsForASetuidCommand) {
    if (geteuid() != 0) GTEST_SKIP() << "making a set-uid file owned by someone else needs root";
    slmd::test::TempDir dir;
    const std::string copy = dir / "setuid-true";
    std::filesystem::copy_file("/bin/true", copy);
    ASSERT_EQ(chown(copy.c_str(), 65534, 65534), 0);
    ASSERT_EQ(chmod(copy.c_str(), 04755), 0);
    auto r = run({}, {slm_run(), copy}, 10s);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("set-uid"), std::string::npos) << r.output;
}

TEST(SlmRun, FindsTheShimInAnInstalledLayout) {
    slmd::test::TempDir dir;
    const std::string bin = dir / "prefix/bin";
    std::filesystem::create_directories(bin);
    const std::filesystem::path shim_path = std::filesystem::path(bin) / SLMRUN_SHIM_RELATIVE;
    std::filesystem::create_directories(shim_path.parent_path());
    std::filesystem::copy_file(slm_run(), bin + "/slm-run");
    std::filesystem::copy_file(shim(), shim_path);
    auto r = run({"LD_PRELOAD="}, {bin + "/slm-run", "/bin/sh", "-c", "echo \"$LD_PRELOAD\""}, 10s);
    EXPECT_EQ(r.output, std::filesystem::canonical(shim_path).string() + "\n");
    // Without a shim anywhere: a clear error, not a silent run without the modem.
    std::filesystem::remove(shim_path);
    r = run({}, {bin + "/slm-run", "/bin/true"}, 10s);
    EXPECT_EQ(r.exit_code, 125);
    EXPECT_NE(r.output.find("cannot find libslmsock-preload.so"), std::string::npos) << r.output;
}

int main(int argc, char** argv) {
    enter_network_namespace();
    ::testing::InitGoogleTest(&argc, argv);
    return RUN_ALL_TESTS();
}
