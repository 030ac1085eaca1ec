// End to end: unmodified programs under slm-run, through slmd, over a simulated SLM modem (slmsim) on a pty.
// The test network 203.0.113.0/24 is mapped by slmsim to 127.0.0.1, so a local server on 127.0.0.1:P is
// reached as 203.0.113.10:P (or files.example:P, resolved by the modem). In the network namespace the kernel
// has no route to 203.0.113.0/24: only the modem path works.
//
//   Matrix.*     the C client matrix, one slmsim+slmd per test, --baud 0 (unpaced)
//   Programs.*   curl, wget, python3 (urllib, asyncio), nc, socat at 115200 baud. On every profile (v2.5, v2.7,
//                v2.9): curl 256 KiB download, nc echo, python3 asyncio echo. On v2.9 only: wget 256 KiB,
//                python3 urllib 64 KiB upload + download, socat echo (half-close).
//   ManyAtOnce.* programs that hold several connections at once (issue 16), on v2.5, v2.9, v3.1: mosquitto_sub
//                holding its connection while mosquitto_pub connects and publishes (broker on loopback); iperf3
//                TCP both ways (control and data connections); curl -L redirected to another host.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include "harness.hpp"

using namespace slmd::preload_test;
using namespace std::chrono_literals;

namespace {

// SLMD_PRELOAD_E2E_BY_ADDRESS=1: programs connect to 203.0.113.10 instead of files.example, to look at the
// data path apart from DNS.
std::string program_host() {
    return getenv("SLMD_PRELOAD_E2E_BY_ADDRESS") != nullptr ? Modem::host_address : Modem::host_name;
}

std::string python() { return std::filesystem::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3"; }

std::string profile_name(const std::string& profile) {
    std::string n = profile;
    for (auto& c : n) {
        if (c == '.' || c == '-') c = '_';
    }
    return n;
}

// ---- The C matrix -------------------------------------------------------------------------------------------

class Matrix : public ::testing::Test {
protected:
    void start(std::vector<std::string> sim_args = {"--connect-timeout-ms", "1000"}) {
        modem_ = std::make_unique<Modem>(ModemOptions{"v2.9", 0, std::move(sim_args), {}, {}});
        ASSERT_TRUE(modem_->ready()) << modem_->diagnostics();
    }
    void SetUp() override { start(); }
    RunResult run_case(const std::string& name, std::uint16_t port, const std::string& arg = "",
                       const std::string& host = Modem::host_address) {
        std::vector<std::string> argv{slm_run(), matrix(), name, host, std::to_string(port)};
        if (!arg.empty()) argv.push_back(arg);
        return run({"SLMSOCK_SOCKET=" + modem_->api_socket()}, argv, 90s);
    }
    void expect_ok(const RunResult& r, const std::string& name) {
        EXPECT_EQ(r.exit_code, 0) << r.output << modem_->diagnostics();
        EXPECT_NE(r.output.find("ok " + name), std::string::npos) << r.output;
    }
    void TearDown() override {
        // Every case closes its sockets: the modem connections must all be gone (bounded, not a sleep).
        EXPECT_TRUE(echo_.wait_idle(10s)) << "a modem connection outlived the client\n"
                                          << (modem_ ? modem_->diagnostics() : std::string());
    }

    std::unique_ptr<Modem> modem_;
    EchoServer echo_;
};

class MatrixUnreachable : public Matrix {
protected:
    void SetUp() override { start({"--unmapped", "unreachable"}); }
};

TEST_F(Matrix, BlockingConnectWithEachReadinessApi) {
    for (const char* mode : {"poll", "select", "epoll-lt", "epoll-et"}) {
        SCOPED_TRACE(mode);
        expect_ok(run_case("echo-blocking", echo_.port(), mode), "echo-blocking");
    }
}

TEST_F(Matrix, NonBlockingConnectWithEachReadinessApi) {
    for (const char* mode : {"poll", "select", "epoll-lt", "epoll-et"}) {
        SCOPED_TRACE(mode);
        expect_ok(run_case("echo-nonblocking", echo_.port(), mode), "echo-nonblocking");
    }
}

TEST_F(Matrix, EpollRegistrationBeforeConnect) {
    expect_ok(run_case("epoll-before-connect", echo_.port()), "epoll-before-connect");
}

TEST_F(Matrix, RefusedIsEconnrefused) {
    ClosedPort closed;
    expect_ok(run_case("error-blocking", closed.port(), std::to_string(ECONNREFUSED)), "error-blocking");
    expect_ok(run_case("error-nonblocking", closed.port(), std::to_string(ECONNREFUSED)), "error-nonblocking");
}

TEST_F(Matrix, UnmappedTestAddressTimesOutWithEtimedout) {
    // 198.51.100.0/24 is not mapped: slmsim's black hole fails it with -116 after --connect-timeout-ms.
    auto r = run_case("error-blocking", 80, std::to_string(ETIMEDOUT), "198.51.100.7");
    expect_ok(r, "error-blocking");
}

TEST_F(MatrixUnreachable, UnreachableIsEhostunreach) {
    expect_ok(run_case("error-blocking", 80, std::to_string(EHOSTUNREACH), "198.51.100.7"), "error-blocking");
}

TEST_F(Matrix, DupDup2Dup3ThenCloseTheOriginal) { expect_ok(run_case("dup", echo_.port()), "dup"); }

TEST_F(Matrix, ForkedChildWrites) { expect_ok(run_case("fork", echo_.port()), "fork"); }

TEST_F(Matrix, ExecInheritsTheSocketAndItsDestination) { expect_ok(run_case("exec", echo_.port()), "exec"); }

TEST_F(Matrix, FdopenAndStdio) { expect_ok(run_case("fdopen", echo_.port()), "fdopen"); }

TEST_F(Matrix, TwentyThreadsConnectAndClose) {
    auto r = run_case("threads", echo_.port(), "20");
    expect_ok(r, "threads");
    EXPECT_NE(r.output.find("threads ok: 20 of 20"), std::string::npos) << r.output;
    EXPECT_EQ(echo_.connections(), 20);
}

TEST_F(Matrix, ClosefromStormThenANewConnect) { expect_ok(run_case("closefrom", echo_.port()), "closefrom"); }

TEST_F(Matrix, GetpeernameGivesTheRealDestination) {
    expect_ok(run_case("getpeername", echo_.port()), "getpeername");
}

TEST_F(Matrix, SyscallConnectGoesThroughTheModem) {
    expect_ok(run_case("syscall-connect", echo_.port()), "syscall-connect");
}

TEST_F(Matrix, ShutdownWriteKeepsTheReadSide) {
    expect_ok(run_case("shutdown", echo_.port()), "shutdown");
    // The client closed its socket after the shutdown: slmd must close the modem connection too.
    EXPECT_TRUE(echo_.wait_idle(10s)) << "the modem connection outlived the client's close()\n"
                                      << modem_->diagnostics();
}

TEST_F(Matrix, NamesResolveThroughTheModem) {
    expect_ok(run_case("dns", echo_.port(), Modem::host_address, Modem::host_name), "dns");
}

// ---- Real programs -----------------------------------------------------------------------------------------

class Programs : public ::testing::TestWithParam<std::string> {
protected:
    void SetUp() override {
        modem_ = std::make_unique<Modem>(ModemOptions{GetParam(), 115200, {}, {}, {}});
        ASSERT_TRUE(modem_->ready()) << modem_->diagnostics();
    }
    RunResult under_slm_run(const std::string& shell_command, std::chrono::milliseconds timeout = 150s) {
        return run({"SLMSOCK_SOCKET=" + modem_->api_socket(), "SLMRUN=" + slm_run()},
                   {"/bin/sh", "-c", shell_command}, timeout);
    }
    std::string url(std::uint16_t port) {
        return "http://" + program_host() + ":" + std::to_string(port);
    }
    std::string echo_lines() {
        std::string s;
        for (int i = 0; i < 20; ++i) s += "line " + std::to_string(i) + " +++ through the modem\n";
        return s + "QUIT\n";
    }
    void check_echo_program(const std::string& command_template) {
        EchoServer echo;
        const std::string in = modem_->dir() + "/echo.in";
        const std::string out = modem_->dir() + "/echo.out";
        write_file(in, echo_lines());
        std::string command = command_template;
        command.replace(command.find("{HOST}"), 6, program_host());
        command.replace(command.find("{PORT}"), 6, std::to_string(echo.port()));
        auto r = under_slm_run(command + " < " + in + " > " + out);
        EXPECT_EQ(r.exit_code, 0) << r.output << modem_->diagnostics();
        EXPECT_EQ(read_file(out), echo_lines());
        EXPECT_EQ(echo.connections(), 1);
    }

    std::unique_ptr<Modem> modem_;
};

class ProgramsV29 : public Programs {};

TEST_P(Programs, CurlDownloads256KiBIntact) {
    const std::string blob = random_payload(256 * 1024, 1);
    HttpServer http(blob);
    const std::string out = modem_->dir() + "/curl.out";
    auto r = under_slm_run("\"$SLMRUN\" curl -sS --fail --max-time 140 -o " + out + " " + url(http.port()) + "/blob");
    EXPECT_EQ(r.exit_code, 0) << r.output << modem_->diagnostics();
    EXPECT_EQ(hex_sha256(read_file(out)), hex_sha256(blob));
    EXPECT_EQ(http.connections(), 1);
    std::printf("[preload] curl 256 KiB on %s: %.1f s\n", GetParam().c_str(), r.seconds);
}

TEST_P(Programs, NcEcho) { check_echo_program("\"$SLMRUN\" nc {HOST} {PORT}"); }

TEST_P(Programs, PythonAsyncioEcho) {
    EchoServer echo;
    const std::string script =
        "import asyncio, sys\n"
        "async def main():\n"
        "    r, w = await asyncio.open_connection(sys.argv[1], int(sys.argv[2]))\n"
        "    peer = w.get_extra_info('peername')\n"
        "    assert peer[0] == '203.0.113.10', peer\n"
        "    msgs = [b'asyncio %d +++\\n' % i for i in range(20)] + [b'QUIT\\n']\n"
        "    for m in msgs: w.write(m)\n"
        "    await w.drain()\n"
        "    data = await asyncio.wait_for(r.read(), 60)\n"
        "    assert data == b''.join(msgs), data\n"
        "    w.close(); await w.wait_closed()\n"
        "    print('ok asyncio', len(data))\n"
        "asyncio.run(main())\n";
    const std::string path = modem_->dir() + "/asyncio_client.py";
    write_file(path, script);
    auto r = under_slm_run("\"$SLMRUN\" " + python() + " " + path + " " + program_host() + " " +
                           std::to_string(echo.port()));
    EXPECT_EQ(r.exit_code, 0) << r.output << modem_->diagnostics();
    EXPECT_NE(r.output.find("ok asyncio"), std::string::npos) << r.output;
}

TEST_P(ProgramsV29, WgetDownloads256KiBIntact) {
    const std::string blob = random_payload(256 * 1024, 2);
    HttpServer http(blob);
    const std::string out = modem_->dir() + "/wget.out";
    auto r = under_slm_run("\"$SLMRUN\" wget -q --tries=1 --timeout=140 -O " + out + " " + url(http.port()) +
                           "/blob");
    EXPECT_EQ(r.exit_code, 0) << r.output << modem_->diagnostics();
    EXPECT_EQ(hex_sha256(read_file(out)), hex_sha256(blob));
    std::printf("[preload] wget 256 KiB: %.1f s\n", r.seconds);
}

TEST_P(ProgramsV29, PythonUrllibUploadAndDownload) {
    const std::string blob = random_payload(64 * 1024, 3);
    const std::string upload = random_payload(64 * 1024, 4);
    HttpServer http(blob);
    const std::string up = modem_->dir() + "/upload.bin";
    const std::string out = modem_->dir() + "/urllib.out";
    write_file(up, upload);
    const std::string script =
        "import hashlib, sys, urllib.request\n"
        "url, up, out = sys.argv[1:4]\n"
        "data = open(up, 'rb').read()\n"
        "req = urllib.request.Request(url + '/upload', data=data, method='PUT')\n"
        "with urllib.request.urlopen(req, timeout=120) as r: answer = r.read().decode()\n"
        "assert answer == hashlib.sha256(data).hexdigest(), answer\n"
        "with urllib.request.urlopen(url + '/blob', timeout=120) as r: body = r.read()\n"
        "open(out, 'wb').write(body)\n"
        "print('ok urllib', len(body))\n";
    const std::string path = modem_->dir() + "/urllib_client.py";
    write_file(path, script);
    auto r = under_slm_run("\"$SLMRUN\" " + python() + " " + path + " " + url(http.port()) + " " + up + " " + out);
    EXPECT_EQ(r.exit_code, 0) << r.output << modem_->diagnostics();
    EXPECT_EQ(hex_sha256(http.last_upload()), hex_sha256(upload));
    EXPECT_EQ(hex_sha256(read_file(out)), hex_sha256(blob));
}

TEST_P(ProgramsV29, SocatEchoWithHalfClose) { check_echo_program("\"$SLMRUN\" socat -t 60 - TCP:{HOST}:{PORT}"); }

// nc -N shuts its socket down for writing at the end of its input and waits for the peer's end of file. SLM
// cannot send the FIN the echo server waits for before it closes (issue 18); once the server has echoed
// everything and been quiet for half-close-idle-ms, slmd closes the connection and nc exits with every line back.
// ---- Several connections at once (issue 16) ------------------------------------------------------------------

// A TCP port on loopback that was free a moment ago (for servers the test starts as programs).
std::uint16_t free_tcp_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    std::uint16_t port = 0;
    if (fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0)
        port = ntohs(address.sin_port);
    if (fd >= 0) ::close(fd);
    return port;
}

// A shell line that waits (at most 10 s, then exit 2) until a server the script started listens on `port`.
std::string until_listening(const std::string& port) {
    return "i=0; until nc -z 127.0.0.1 " + port + "; do i=$((i+1)); [ $i -lt 100 ] || exit 2; sleep 0.1; done\n";
}

class ManyAtOnce : public Programs {};

// The gateway workload that deadlocked with one TCP proxy: a subscriber holds its MQTT connection while a
// publisher connects, publishes and disconnects, all through the modem. The broker runs on loopback without
// the shim. The publisher repeats once a second until the subscriber has its message (it may subscribe late).
TEST_P(ManyAtOnce, MosquittoSubscriberAndPublisher) {
    const auto port = std::to_string(free_tcp_port());
    const std::string out = modem_->dir() + "/sub.out";
    const std::string script =
        "mosquitto -p " + port + " > " + modem_->dir() + "/broker.log 2>&1 & broker=$!\n"
        "trap 'kill $broker' EXIT\n" +
        until_listening(port) +
        "\"$SLMRUN\" mosquitto_sub -h " + program_host() + " -p " + port +
        " -t slmd/test -C 1 -W 120 > " + out + " & sub=$!\n"
        "i=0\n"
        "while kill -0 $sub 2>/dev/null && [ $i -lt 60 ]; do\n"
        "  \"$SLMRUN\" mosquitto_pub -h " + program_host() + " -p " + port +
        " -t slmd/test -m 'reading 42 +++ \"quoted\"' || exit 3\n"
        "  i=$((i+1)); sleep 1\n"
        "done\n"
        "wait $sub\n";
    auto r = under_slm_run(script);
    EXPECT_EQ(r.exit_code, 0) << r.output << modem_->diagnostics();
    EXPECT_EQ(read_file(out), "reading 42 +++ \"quoted\"\n") << r.output;
    std::printf("[preload] mosquitto sub + pub on %s: %.1f s\n", GetParam().c_str(), r.seconds);
}

// iperf3 needs two connections at once (control and data): 32 KiB each way, checked by iperf3's own byte count.
TEST_P(ManyAtOnce, Iperf3TcpBothWays) {
    const auto port = std::to_string(free_tcp_port());
    const std::string script =
        "iperf3 -s -p " + port + " > " + modem_->dir() + "/iperf3-server.log 2>&1 & server=$!\n"
        "trap 'kill $server' EXIT\n" +
        until_listening(port) +
        "\"$SLMRUN\" iperf3 -c " + program_host() + " -p " + port + " -n 32K -J > " + modem_->dir() +
        "/up.json || exit 3\n"
        "\"$SLMRUN\" iperf3 -c " + program_host() + " -p " + port + " -n 32K -R -J > " + modem_->dir() +
        "/down.json || exit 4\n";
    auto r = under_slm_run(script);
    EXPECT_EQ(r.exit_code, 0) << r.output << read_file(modem_->dir() + "/up.json")
                              << read_file(modem_->dir() + "/down.json") << modem_->diagnostics();
    for (const char* direction : {"up", "down"}) {
        const auto json = read_file(modem_->dir() + "/" + direction + ".json");
        EXPECT_NE(json.find("\"bytes\":\t32768"), std::string::npos)
            << direction << ": " << json << modem_->diagnostics();
    }
}

// curl -L to another host: curl keeps the first (keep-alive) connection while it opens the second.
TEST_P(ManyAtOnce, CurlFollowsARedirectToAnotherHost) {
    const std::string blob = random_payload(16 * 1024, 3);
    HttpServer target(blob);
    const auto port = std::to_string(free_tcp_port());
    const std::string out = modem_->dir() + "/redirected.out";
    const std::string script =
        python() + " - " + port + " http://" + std::string(Modem::host_address) + ":" +
        std::to_string(target.port()) + "/blob <<'PY' & server=$!\n"
        "import http.server, sys\n"
        "class Redirect(http.server.BaseHTTPRequestHandler):\n"
        "    protocol_version = 'HTTP/1.1'\n"
        "    def do_GET(self):\n"
        "        self.send_response(302)\n"
        "        self.send_header('Location', sys.argv[2])\n"
        "        self.send_header('Content-Length', '0')\n"
        "        self.end_headers()\n"
        "    def log_message(self, *args): pass\n"
        "http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), Redirect).serve_forever()\n"
        "PY\n"
        "trap 'kill $server' EXIT\n" +
        until_listening(port) +
        "\"$SLMRUN\" curl -sS --fail -L --max-time 100 -o " + out + " http://" + program_host() + ":" + port +
        "/start\n";
    auto r = under_slm_run(script);
    EXPECT_EQ(r.exit_code, 0) << r.output << modem_->diagnostics();
    EXPECT_EQ(hex_sha256(read_file(out)), hex_sha256(blob));
    EXPECT_EQ(target.connections(), 1);
}

// iperf3 UDP holds its TCP control connection while its 1000-byte binary datagrams go (-l 1000), both ways. On SLM
// the UDP client cannot stay on the UDP proxy beside that TCP connection and moves to a generic socket. The
// figures come from iperf3's own JSON: every byte and datagram arrived, none lost. 40 kbit/s is under the line's
// 115200 baud, so a loss would be slmd's.
TEST_P(ManyAtOnce, Iperf3UdpBothWaysWithThousandByteDatagrams) {
    const auto port = std::to_string(free_tcp_port());
    const std::string dir = modem_->dir();
    const std::string summary = python() + " -c 'import json,sys\n"
                                           "s = json.load(open(sys.argv[1]))[\"end\"]\n"
                                           "print(s[\"sum_received\"][\"bytes\"], s[\"sum\"][\"packets\"], "
                                           "s[\"sum\"][\"lost_packets\"])' ";
    const std::string script =
        "iperf3 -s -p " + port + " > " + dir + "/iperf3-server.log 2>&1 & server=$!\n"
        "trap 'kill $server' EXIT\n" +
        until_listening(port) +
        "\"$SLMRUN\" iperf3 -c " + program_host() + " -p " + port + " -u -l 1000 -b 40K -n 20000 -J > " + dir +
        "/up.json || exit 3\n"
        "\"$SLMRUN\" iperf3 -c " + program_host() + " -p " + port + " -u -l 1000 -b 40K -n 20000 -R -J > " + dir +
        "/down.json || exit 4\n" +
        summary + dir + "/up.json > " + dir + "/up.sum || exit 5\n" +
        summary + dir + "/down.json > " + dir + "/down.sum || exit 6\n";
    auto r = under_slm_run(script);
    EXPECT_EQ(r.exit_code, 0) << r.output << read_file(dir + "/up.json") << read_file(dir + "/down.json")
                              << modem_->diagnostics();
    for (const char* direction : {"up", "down"}) {
        EXPECT_EQ(read_file(dir + "/" + direction + ".sum"), "20000 20 0\n")
            << direction << ": " << read_file(dir + "/" + direction + ".json") << modem_->diagnostics();
    }
    std::printf("[preload] iperf3 UDP -l 1000 both ways on %s: %.1f s\n", GetParam().c_str(), r.seconds);
}

// git's dumb-http walker fetches loose objects over several connections, some at once. The repository has a
// binary file, so the objects are zlib streams with every byte value.
TEST_P(ManyAtOnce, GitClonesALooseObjectRepositoryOverDumbHttp) {
    const auto port = std::to_string(free_tcp_port());
    const std::string dir = modem_->dir();
    const std::string git = "git -c user.name=slmd -c user.email=slmd@example.invalid -c init.defaultBranch=main ";
    const std::string script =
        "export HOME=" + dir + " GIT_TERMINAL_PROMPT=0\n"
        "set -e\n" + git + "init -q " + dir + "/src\n"
        "cd " + dir + "/src\n" +
        python() + " -c 'import random; random.seed(5); open(\"blob.bin\", \"wb\").write(random.randbytes(40000))'\n"
        "printf 'first\\n' > README\n" + git + "add README blob.bin\n" + git + "commit -q -m first\n"
        "printf 'second +++ \"quoted\"\\n' >> README\n" + git + "commit -q -a -m second\n"
        "cd " + dir + "\n" + git + "clone -q --bare src served/repo.git\n"
        "git -C served/repo.git update-server-info\n"
        "test -z \"$(ls served/repo.git/objects/pack)\"\n"  // loose objects only
        "set +e\n" +
        python() + " -m http.server --bind 127.0.0.1 --directory served " + port + " > http.log 2>&1 & server=$!\n"
        "trap 'kill $server' EXIT\n" +
        until_listening(port) +
        "\"$SLMRUN\" git clone -q http://" + program_host() + ":" + port + "/repo.git cloned || exit 3\n"
        "[ \"$(git -C cloned rev-parse HEAD)\" = \"$(git -C src rev-parse HEAD)\" ] || exit 4\n"
        "cmp cloned/blob.bin src/blob.bin || exit 5\n"
        "cmp cloned/README src/README || exit 6\n"
        "git -C cloned fsck --strict --no-progress || exit 7\n"
        "grep -c 'GET /repo.git/objects/[0-9a-f][0-9a-f]/' http.log > objects.count\n";
    auto r = under_slm_run(script);
    EXPECT_EQ(r.exit_code, 0) << r.output << read_file(dir + "/http.log") << modem_->diagnostics();
    // Two commits, their two trees, two README versions and the blob: seven loose objects fetched.
    EXPECT_EQ(read_file(dir + "/objects.count"), "7\n") << read_file(dir + "/http.log");
    std::printf("[preload] git clone over dumb http on %s: %.1f s\n", GetParam().c_str(), r.seconds);
}

// CoAP next to MQTT: a subscriber holds its MQTT connection while coap-client PUTs a binary payload (every byte
// value, CR LF, a quote, a trailing '+') and GETs it back, then a publisher reaches the subscriber. CoAP's
// header is binary, so on SLM every one of its datagrams needs what the UDP proxy cannot do beside TCP.
TEST_P(ManyAtOnce, CoapBinaryNextToMqtt) {
    const auto mqtt_port = std::to_string(free_tcp_port());
    const auto coap_port = std::to_string(free_tcp_port());  // a UDP port: the same number is free for UDP too
    const std::string dir = modem_->dir();
    const std::string coap = "coap://" + program_host() + ":" + coap_port + "/example_data";
    const std::string script =
        "mosquitto -v -p " + mqtt_port + " > " + dir + "/broker.log 2>&1 & broker=$!\n"
        "coap-server-notls -A 127.0.0.1 -p " + coap_port + " > " + dir + "/coap-server.log 2>&1 & coap=$!\n"
        "trap 'kill $broker $coap' EXIT\n" +
        until_listening(mqtt_port) +
        python() + " -c 'import sys; sys.stdout.buffer.write(bytes(range(256)) + b\"\\r\\n\\\"quoted\\\" +\")' > " +
        dir + "/payload.bin\n"
        "\"$SLMRUN\" mosquitto_sub -h " + program_host() + " -p " + mqtt_port + " -t slmd/coap -C 1 -W 120 > " + dir +
        "/sub.out & sub=$!\n"
        "i=0; until grep -q 'Received SUBSCRIBE' " + dir + "/broker.log; do i=$((i+1)); [ $i -lt 600 ] || exit 3; "
        "sleep 0.1; done\n"
        "\"$SLMRUN\" coap-client-notls -B 30 -m put -f " + dir + "/payload.bin " + coap + " || exit 4\n"
        "\"$SLMRUN\" coap-client-notls -B 30 -m get -o " + dir + "/got.bin " + coap + " || exit 5\n"
        "cmp " + dir + "/payload.bin " + dir + "/got.bin || exit 6\n"
        "i=0\n"
        "while kill -0 $sub 2>/dev/null && [ $i -lt 60 ]; do\n"
        "  \"$SLMRUN\" mosquitto_pub -h " + program_host() + " -p " + mqtt_port +
        " -t slmd/coap -m 'coap done' || exit 7\n"
        "  i=$((i+1)); sleep 1\n"
        "done\n"
        "wait $sub\n";
    auto r = under_slm_run(script);
    EXPECT_EQ(r.exit_code, 0) << r.output << read_file(dir + "/broker.log") << modem_->diagnostics();
    EXPECT_EQ(read_file(dir + "/sub.out"), "coap done\n") << r.output;
    std::printf("[preload] CoAP beside MQTT on %s: %.1f s\n", GetParam().c_str(), r.seconds);
}

TEST(HalfClose, NcMinusNEndsOnceThePeerIsQuiet) {
    Modem modem(ModemOptions{"v2.9", 115200, {}, {"--half-close-idle-ms", "1000"}, {}});
    ASSERT_TRUE(modem.ready()) << modem.diagnostics();
    EchoServer echo;
    std::string lines;
    for (int i = 0; i < 20; ++i) lines += "line " + std::to_string(i) + " without a QUIT\n";
    const std::string in = modem.dir() + "/nc.in";
    const std::string out = modem.dir() + "/nc.out";
    write_file(in, lines);
    auto r = run({"SLMSOCK_SOCKET=" + modem.api_socket(), "SLMRUN=" + slm_run()},
                 {"/bin/sh", "-c", "\"$SLMRUN\" nc -N " + program_host() + " " + std::to_string(echo.port()) + " < " +
                                       in + " > " + out},
                 60s);
    EXPECT_EQ(r.exit_code, 0) << r.output << modem.diagnostics();
    EXPECT_EQ(read_file(out), lines);
    EXPECT_TRUE(echo.wait_idle(10s)) << "the echo server read its end of file\n" << modem.diagnostics();
}

INSTANTIATE_TEST_SUITE_P(Profiles, Programs, ::testing::Values("v2.5", "v2.7", "v2.9", "v3.1", "sm-v1.0"),
                         [](const auto& info) { return profile_name(info.param); });
INSTANTIATE_TEST_SUITE_P(Profiles, ManyAtOnce, ::testing::Values("v2.5", "v2.9", "v3.1", "sm-v1.0"),
                         [](const auto& info) { return profile_name(info.param); });
INSTANTIATE_TEST_SUITE_P(Profiles, ProgramsV29, ::testing::Values("v2.9"),
                         [](const auto& info) { return profile_name(info.param); });

}  // namespace

int main(int argc, char** argv) {
    enter_network_namespace();
    ::testing::InitGoogleTest(&argc, argv);
    return RUN_ALL_TESTS();
}
