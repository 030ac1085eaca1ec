// Owns: the preload tests' environment (see harness.hpp).
#include "harness.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

namespace slmd::preload_test {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// ---- Network namespace -----------------------------------------------------------------------------------

namespace {
bool g_isolated = false;
}

bool isolated() { return g_isolated; }

void enter_network_namespace() {
    if (getenv("SLMD_PRELOAD_TEST_NO_NETNS") != nullptr) {
        std::fprintf(stderr, "[preload] SLMD_PRELOAD_TEST_NO_NETNS set: running in the host network namespace\n");
        return;
    }
    if (unshare(CLONE_NEWNET) != 0) {
        std::fprintf(stderr,
                     "[preload] cannot enter a network namespace (unshare(CLONE_NEWNET): %s; needs root or "
                     "CAP_SYS_ADMIN): running in the host namespace, so a connection that bypasses the shim "
                     "would not fail loudly; the isolation test is skipped\n",
                     std::strerror(errno));
        return;
    }
    const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ifreq request{};
    std::strncpy(request.ifr_name, "lo", IFNAMSIZ - 1);
    bool up = fd >= 0 && ioctl(fd, SIOCGIFFLAGS, &request) == 0;
    if (up) {
        request.ifr_flags = static_cast<short>(request.ifr_flags | IFF_UP | IFF_RUNNING);
        up = ioctl(fd, SIOCSIFFLAGS, &request) == 0;
    }
    if (fd >= 0) close(fd);
    if (!up) {
        std::fprintf(stderr, "[preload] could not bring lo up in the new namespace: %s\n", std::strerror(errno));
        std::abort();
    }
    g_isolated = true;
}

// ---- Bytes -------------------------------------------------------------------------------------------------

namespace {

struct Sha256 {
    std::array<std::uint32_t, 8> h{0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    static std::uint32_t rotr(std::uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }
    void block(const unsigned char* p) {
        static constexpr std::uint32_t k[64] = {
            0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
            0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
            0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
            0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
            0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
            0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
            0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
            0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};
        std::uint32_t w[64];
        for (int i = 0; i < 16; ++i) {
            w[i] = std::uint32_t(p[4 * i]) << 24 | std::uint32_t(p[4 * i + 1]) << 16 | std::uint32_t(p[4 * i + 2]) << 8 |
                   std::uint32_t(p[4 * i + 3]);
        }
        for (int i = 16; i < 64; ++i) {
            std::uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
            std::uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16] + s0 + w[i - 7] + s1;
        }
        auto v = h;
        for (int i = 0; i < 64; ++i) {
            std::uint32_t s1 = rotr(v[4], 6) ^ rotr(v[4], 11) ^ rotr(v[4], 25);
            std::uint32_t ch = (v[4] & v[5]) ^ (~v[4] & v[6]);
            std::uint32_t t1 = v[7] + s1 + ch + k[i] + w[i];
            std::uint32_t s0 = rotr(v[0], 2) ^ rotr(v[0], 13) ^ rotr(v[0], 22);
            std::uint32_t maj = (v[0] & v[1]) ^ (v[0] & v[2]) ^ (v[1] & v[2]);
            std::uint32_t t2 = s0 + maj;
            v = {t1 + t2, v[0], v[1], v[2], v[3] + t1, v[4], v[5], v[6]};
        }
        for (int i = 0; i < 8; ++i) h[i] += v[i];
    }
};

}  // namespace

std::string hex_sha256(const std::string& bytes) {
    Sha256 s;
    std::string data = bytes;
    const std::uint64_t bits = std::uint64_t(bytes.size()) * 8;
    data.push_back(static_cast<char>(0x80));
    while (data.size() % 64 != 56) data.push_back('\0');
    for (int i = 7; i >= 0; --i) data.push_back(static_cast<char>((bits >> (8 * i)) & 0xff));
    for (std::size_t i = 0; i < data.size(); i += 64) s.block(reinterpret_cast<const unsigned char*>(data.data() + i));
    char out[65];
    for (int i = 0; i < 8; ++i) std::snprintf(out + 8 * i, 9, "%08x", s.h[i]);
    return std::string(out, 64);
}

std::string random_payload(std::size_t size, unsigned seed) {
    std::mt19937 rng(seed);
    std::string data(size, '\0');
    for (auto& c : data) c = static_cast<char>(rng() & 0xff);
    static const char* const escapes[] = {"+++", "\r\n+++\r\n", "+++AT\r\n", "++++++", "a+++b"};
    for (std::size_t at = 100, i = 0; at + 16 < size; at += 997 + (rng() % 2000), ++i) {
        const char* e = escapes[i % 5];
        std::memcpy(&data[at], e, std::strlen(e));
    }
    if (size >= 3) std::memcpy(&data[size - 3], "+++", 3);  // and at the very end
    return data;
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

void write_file(const std::string& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary);
    out << bytes;
}

// ---- Servers -----------------------------------------------------------------------------------------------

namespace {

bool write_all(int fd, const char* data, std::size_t len) {
    while (len > 0) {
        ssize_t n = ::send(fd, data, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        data += n;
        len -= static_cast<std::size_t>(n);
    }
    return true;
}

}  // namespace

Server::~Server() = default;

void Server::start() {
    listener_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    if (bind(listener_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || listen(listener_, 64) != 0 ||
        getsockname(listener_, reinterpret_cast<sockaddr*>(&sa), &len) != 0 || pipe2(wake_, O_CLOEXEC) != 0) {
        throw std::runtime_error("server setup failed");
    }
    port_ = ntohs(sa.sin_port);
    acceptor_ = std::thread([this] {
        for (;;) {
            pollfd p[2] = {{listener_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
            if (poll(p, 2, -1) < 0 && errno == EINTR) continue;
            if (p[1].revents != 0) return;
            const int fd = accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
            if (fd < 0) continue;
            ++connections_;
            std::lock_guard lock(mutex_);
            ++active_;
            workers_.emplace_back([this, fd] {
                serve(fd);
                close(fd);
                std::lock_guard done(mutex_);
                --active_;
                idle_.notify_all();
            });
        }
    });
}

bool Server::wait_idle(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    return idle_.wait_for(lock, timeout, [this] { return active_ == 0; });
}

void Server::stop() {
    if (wake_[1] >= 0) {
        char c = 'x';
        (void)!write(wake_[1], &c, 1);
    }
    if (acceptor_.joinable()) acceptor_.join();
    std::vector<std::thread> workers;
    {
        std::lock_guard lock(mutex_);
        workers.swap(workers_);
    }
    for (auto& w : workers) w.join();
    for (int fd : {listener_, wake_[0], wake_[1]}) {
        if (fd >= 0) close(fd);
    }
}

void EchoServer::serve(int fd) {
    std::string line;
    char buffer[8192];
    for (;;) {
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, 20000) <= 0) return;  // a bounded life for a leaked connection
        ssize_t n = recv(fd, buffer, sizeof buffer, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        if (!write_all(fd, buffer, static_cast<std::size_t>(n))) return;
        line.append(buffer, static_cast<std::size_t>(n));
        if (line.find("QUIT\n") != std::string::npos) return;
        if (line.size() > 64) line.erase(0, line.size() - 8);
    }
}

void HttpServer::serve(int fd) {
    std::string request;
    char buffer[16384];
    std::size_t header_end = std::string::npos;
    while ((header_end = request.find("\r\n\r\n")) == std::string::npos) {
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, 60000) <= 0) return;
        ssize_t n = recv(fd, buffer, sizeof buffer, 0);
        if (n <= 0) return;
        request.append(buffer, static_cast<std::size_t>(n));
    }
    const std::string head = request.substr(0, header_end);
    std::string body = request.substr(header_end + 4);
    std::string lower = head;
    for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::size_t content_length = 0;
    if (auto at = lower.find("\r\ncontent-length:"); at != std::string::npos) {
        content_length = std::stoul(head.substr(at + 17));
    }
    const bool expect_continue = lower.find("\r\nexpect: 100-continue") != std::string::npos;
    auto reply = [&](const std::string& status, const std::string& content) {
        std::string r = "HTTP/1.1 " + status + "\r\nContent-Type: application/octet-stream\r\nContent-Length: " +
                        std::to_string(content.size()) + "\r\nConnection: close\r\n\r\n";
        if (write_all(fd, r.data(), r.size())) write_all(fd, content.data(), content.size());
        shutdown(fd, SHUT_WR);
        // Wait for the client to close, so the last bytes are not lost to a reset.
        pollfd p{fd, POLLIN, 0};
        while (poll(&p, 1, 30000) > 0 && recv(fd, buffer, sizeof buffer, 0) > 0) {
        }
    };
    if (head.rfind("GET /blob ", 0) == 0) {
        reply("200 OK", blob_);
        return;
    }
    if (head.rfind("PUT /upload ", 0) == 0 || head.rfind("POST /upload ", 0) == 0) {
        if (expect_continue) {
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            write_all(fd, cont, sizeof cont - 1);
        }
        while (body.size() < content_length) {
            pollfd p{fd, POLLIN, 0};
            if (poll(&p, 1, 60000) <= 0) return;
            ssize_t n = recv(fd, buffer, sizeof buffer, 0);
            if (n <= 0) return;
            body.append(buffer, static_cast<std::size_t>(n));
        }
        {
            std::lock_guard lock(upload_mutex_);
            upload_ = body;
        }
        reply("200 OK", hex_sha256(body));
        return;
    }
    reply("404 Not Found", "not found\n");
}

std::string HttpServer::last_upload() {
    std::lock_guard lock(upload_mutex_);
    return upload_;
}

UdpEchoServer::UdpEchoServer() {
    fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    if (bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 ||
        getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &len) != 0 || pipe2(wake_, O_CLOEXEC) != 0) {
        throw std::runtime_error("udp echo setup failed");
    }
    port_ = ntohs(sa.sin_port);
    thread_ = std::thread([this] {
        static thread_local char buffer[65536];
        for (;;) {
            pollfd p[2] = {{fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
            if (poll(p, 2, -1) < 0 && errno == EINTR) continue;
            if (p[1].revents != 0) return;
            sockaddr_storage from;
            socklen_t from_len = sizeof from;
            const ssize_t n = recvfrom(fd_, buffer, sizeof buffer, 0, reinterpret_cast<sockaddr*>(&from), &from_len);
            if (n < 0) continue;
            ++datagrams_;
            if (static_cast<std::size_t>(n) > largest_.load()) largest_ = static_cast<std::size_t>(n);
            sendto(fd_, buffer, static_cast<std::size_t>(n), 0, reinterpret_cast<sockaddr*>(&from), from_len);
        }
    });
}

UdpEchoServer::~UdpEchoServer() {
    char c = 'x';
    (void)!write(wake_[1], &c, 1);
    if (thread_.joinable()) thread_.join();
    for (int fd : {fd_, wake_[0], wake_[1]}) {
        if (fd >= 0) close(fd);
    }
}

ClosedPort::ClosedPort() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    if (bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 ||
        getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &len) != 0) {
        throw std::runtime_error("closed port setup failed");
    }
    port_ = ntohs(sa.sin_port);
}

ClosedPort::~ClosedPort() { close(fd_); }

// ---- Processes ---------------------------------------------------------------------------------------------

DrainedProcess::DrainedProcess(std::vector<std::string> argv) : child_(std::move(argv)) {
    reader_ = std::thread([this] {
        while (!stopping_.load()) {
            if (auto line = child_.read_line(100ms)) {
                std::lock_guard lock(mutex_);
                output_ += *line + "\n";
                changed_.notify_all();
            } else if (child_.wait_exit(0ms)) {
                break;  // exited; whatever it still printed is in child_.output()
            }
        }
    });
}

DrainedProcess::~DrainedProcess() { stop(); }

bool DrainedProcess::wait_for(const std::string& needle, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return output_.find(needle) != std::string::npos; });
}

bool DrainedProcess::wait_for_count(const std::string& needle, std::size_t times, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] {
        std::size_t found = 0;
        for (auto at = output_.find(needle); at != std::string::npos; at = output_.find(needle, at + needle.size()))
            ++found;
        return found >= times;
    });
}

std::string DrainedProcess::output() {
    std::lock_guard lock(mutex_);
    return output_;
}

void DrainedProcess::stop() {
    if (stopping_.exchange(true)) return;
    if (reader_.joinable()) reader_.join();
    child_.signal(SIGTERM);
    if (!child_.wait_exit(10s)) {
        child_.signal(SIGKILL);
        child_.wait_exit(5s);
    }
    std::lock_guard lock(mutex_);
    output_ = child_.output();  // everything it printed, including what came after the reader stopped
}

std::string Modem::control(const std::string& line) const { return slmd::test::control_command(control_, line); }

Modem::Modem(ModemOptions options)
    : link_(dir_ / "ttySLM"), control_(dir_ / "control.sock"), api_socket_(dir_ / "slmd.sock") {
    const std::string hosts = dir_ / "hosts";
    write_file(hosts, std::string(host_address) + " " + host_name + "\n" + options.extra_hosts);
    std::vector<std::string> sim{SLMSIM_BIN, "--link", link_, "--profile", options.profile, "--baud",
                                 std::to_string(options.baud), "--control", control_, "--hosts", hosts,
                                 "--map", "203.0.113.0/24=127.0.0.1", "--attach-delay-ms", "50"};
    sim.insert(sim.end(), options.sim_args.begin(), options.sim_args.end());
    sim_ = std::make_unique<DrainedProcess>(sim);
    if (!slmd::test::wait_for_path(link_, 10s) || !slmd::test::wait_for_path(control_, 10s)) return;
    std::vector<std::string> slmd{SLMD_BIN, "--device", link_, "--baud",
                                  std::to_string(options.baud == 0 ? 115200 : options.baud), "--api-socket",
                                  api_socket_};
    slmd.insert(slmd.end(), options.slmd_args.begin(), options.slmd_args.end());
    slmd_ = std::make_unique<DrainedProcess>(slmd);
    ready_ = slmd_->wait_for("modem: ready", 30s) && slmd::test::wait_for_path(api_socket_, 10s);
}

Modem::~Modem() {
    if (slmd_) slmd_->stop();
    if (sim_) sim_->stop();
}

std::string Modem::diagnostics() {
    return "--- slmd ---\n" + (slmd_ ? slmd_->output() : std::string("(not started)\n")) + "--- slmsim ---\n" +
           (sim_ ? sim_->output() : std::string());
}

RunResult run(const std::vector<std::string>& env, const std::vector<std::string>& argv,
              std::chrono::milliseconds timeout) {
    std::vector<std::string> full{"/usr/bin/env"};
    full.insert(full.end(), env.begin(), env.end());
    full.insert(full.end(), argv.begin(), argv.end());
    const auto start = Clock::now();
    slmd::test::ChildProcess child(full);
    RunResult result;
    result.exit_code = child.wait_exit(timeout);
    if (!result.exit_code) {
        child.signal(SIGKILL);
        child.wait_exit(5s);
    }
    result.output = child.output();
    result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    return result;
}

std::string slm_run() { return SLMRUN_BIN; }
std::string shim() { return SHIM_PATH; }
std::string matrix() { return MATRIX_BIN; }

}  // namespace slmd::preload_test
