// Benchmark: TCP goodput through slmd and a simulated SLM modem at a real line rate, per firmware release,
// both directions, printed as a fraction of the UART's 8N1 line rate (baud/10 bytes per second) measured in
// this run. Not a pass/fail test: it prints numbers for docs and closing notes.
//
// Usage: tcp_goodput [--baud N] [--bytes N] [--profiles v2.5,v2.7,v2.9]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "process.hpp"
#include "slmsock.h"

using namespace slmd::test;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

// A one-shot local server: sends its bytes (download), or reads until EOF and counts (upload).
struct Server {
    int fd = -1;
    std::uint16_t port = 0;
    std::thread thread;
    std::atomic<std::size_t> received{0};

    explicit Server(std::string to_send) {
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
        listen(fd, 1);
        socklen_t length = sizeof address;
        getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
        port = ntohs(address.sin_port);
        thread = std::thread([this, to_send = std::move(to_send)] {
            int client = accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
            if (client < 0) return;
            std::size_t off = 0;
            while (off < to_send.size()) {
                ssize_t n = write(client, to_send.data() + off, to_send.size() - off);
                if (n <= 0) break;
                off += static_cast<std::size_t>(n);
            }
            // No shutdown(SHUT_WR) for an upload: SLM reports a peer's FIN as the end of the whole connection.
            if (!to_send.empty()) shutdown(client, SHUT_WR);
            char buffer[8192];
            for (;;) {
                ssize_t n = read(client, buffer, sizeof buffer);
                if (n <= 0) break;
                received += static_cast<std::size_t>(n);
            }
            close(client);
        });
    }
    ~Server() {
        shutdown(fd, SHUT_RDWR);
        close(fd);
        thread.join();
    }
};

std::string random_bytes(std::size_t size) {
    std::mt19937 rng(99);
    std::string bytes(size, '\0');
    for (auto& b : bytes) b = static_cast<char>(rng() & 0xff);
    return bytes;
}

struct Result {
    double down_bps = 0;
    double up_bps = 0;
    bool ok = false;
};

Result measure(const std::string& profile, unsigned baud, std::size_t bytes) {
    Result result;
    TempDir dir;
    ChildProcess sim({SLMSIM_BIN, "--link", dir / "tty", "--profile", profile, "--baud", std::to_string(baud),
                      "--map", "203.0.113.0/24=127.0.0.1"});
    if (!wait_for_path(dir / "tty", 10s)) return result;
    ChildProcess slmd({SLMD_BIN, "--device", dir / "tty", "--baud", std::to_string(baud), "--api-socket",
                       dir / "slmd.sock"});
    if (!slmd.wait_for_output("modem: ready", 30s)) return result;
    setenv("SLMSOCK_SOCKET", (dir / "slmd.sock").c_str(), 1);

    // Download: the server sends, we read and time from connect to the last byte.
    {
        const auto payload = random_bytes(bytes);
        Server server(payload);
        const auto start = Clock::now();
        int fd = slmsock_tcp_connect("203.0.113.10", server.port, AF_INET);
        if (fd < 0) return result;
        std::size_t got = 0;
        char buffer[8192];
        while (got < bytes) {
            ssize_t n = read(fd, buffer, sizeof buffer);
            if (n <= 0) break;
            got += static_cast<std::size_t>(n);
        }
        const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
        close(fd);
        if (got != bytes) return result;
        result.down_bps = static_cast<double>(bytes) / seconds;
    }
    // Upload: we write, the server counts; time until the server has every byte.
    {
        Server server("");
        const auto payload = random_bytes(bytes);
        const auto start = Clock::now();
        int fd = slmsock_tcp_connect("203.0.113.10", server.port, AF_INET);
        if (fd < 0) return result;
        std::size_t off = 0;
        while (off < payload.size()) {
            ssize_t n = write(fd, payload.data() + off, payload.size() - off);
            if (n <= 0) break;
            off += static_cast<std::size_t>(n);
        }
        while (server.received < bytes && Clock::now() - start < 600s) poll(nullptr, 0, 5);
        const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
        close(fd);
        if (server.received != bytes) return result;
        result.up_bps = static_cast<double>(bytes) / seconds;
    }
    result.ok = true;
    return result;
}

}  // namespace

int main(int argc, char** argv) {
    unsigned baud = 115200;
    std::size_t bytes = 128 * 1024;
    std::string profiles = "v2.5,v2.7,v2.9";
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string flag = argv[i];
        if (flag == "--baud") baud = static_cast<unsigned>(std::stoul(argv[i + 1]));
        if (flag == "--bytes") bytes = std::stoul(argv[i + 1]);
        if (flag == "--profiles") profiles = argv[i + 1];
    }
    const double line_rate = baud / 10.0;
    std::printf("TCP goodput through slmd + slmsim, %zu bytes each way, %u baud (line rate %.0f B/s)\n", bytes, baud,
                line_rate);
    std::printf("%-8s %12s %10s %12s %10s\n", "profile", "down B/s", "down/line", "up B/s", "up/line");
    std::stringstream list(profiles);
    std::string profile;
    int failures = 0;
    while (std::getline(list, profile, ',')) {
        auto r = measure(profile, baud, bytes);
        if (!r.ok) {
            std::printf("%-8s %12s\n", profile.c_str(), "FAILED");
            ++failures;
            continue;
        }
        std::printf("%-8s %12.0f %10.3f %12.0f %10.3f\n", profile.c_str(), r.down_bps, r.down_bps / line_rate,
                    r.up_bps, r.up_bps / line_rate);
    }
    return failures ? 1 : 0;
}
