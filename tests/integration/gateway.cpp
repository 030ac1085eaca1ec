// Owns: the shared integration-test gateway (see gateway.hpp).
#include "gateway.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/file.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "slmsock.h"

namespace slmd::test {

using namespace std::chrono_literals;

Gateway::Gateway(GatewayOptions opts) : options(std::move(opts)) {
    std::vector<std::string> sim_args{SLMSIM_BIN,
                                      "--link",
                                      dir / "tty",
                                      "--profile",
                                      options.profile,
                                      "--baud",
                                      options.baud,
                                      "--control",
                                      dir / "control",
                                      "--trace",
                                      dir / "trace",
                                      "--map",
                                      "203.0.113.0/24=127.0.0.1",
                                      "--map",
                                      "2001:db8::/32=::1"};
    sim_args.insert(sim_args.end(), options.sim_extra.begin(), options.sim_extra.end());
    sim.emplace(sim_args);
    if (!wait_for_path(dir / "tty", 10s) || !wait_for_path(dir / "control", 10s)) return;
    // Every libslmsock call of the test goes to this slmd.
    setenv("SLMSOCK_SOCKET", (dir / "slmd.sock").c_str(), 1);
    start_slmd();
}

bool Gateway::start_slmd() {
    std::vector<std::string> argv{SLMD_BIN,
                                  "--device",
                                  dir / "tty",
                                  "--baud",
                                  options.baud == "0" ? "115200" : options.baud,
                                  "--api-socket",
                                  options.api_socket.empty() ? dir / "slmd.sock" : options.api_socket,
                                  "--register-timeout-ms",
                                  "20000"};
    argv.insert(argv.end(), options.slmd_extra.begin(), options.slmd_extra.end());
    if (slmd) {
        slmd.reset();  // a previous slmd is killed and reaped first (ChildProcess's destructor)
        // Its lock on the tty can outlive it briefly: the tty file may still be held by its io_uring instance,
        // which the kernel tears down asynchronously after the exit. Start the next one once the lock is free
        // (a second slmd refuses a locked line).
        eventually(
            [&] {
                const int fd = open((dir / "tty").c_str(), O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
                if (fd < 0) return true;  // gone or unopenable: slmd will say why
                const bool free = flock(fd, LOCK_EX | LOCK_NB) == 0;
                close(fd);
                return free;
            },
            10s);
    }
    slmd.emplace(argv);
    ready = slmd->wait_for_output("modem: ready", 20s);
    return ready;
}

std::string Gateway::control(const std::string& line) const {
    return control_command(dir / "control", line);
}

std::string Gateway::state() const {
    struct slmsock_status status {};
    if (slmsock_status(&status) != 0) return "?";
    return status.modem_state;
}

std::string Gateway::trace() const {
    return read_file(dir / "trace");
}

std::string Gateway::uplink_trace() const {
    // Trace lines: <sec.usec> H>M|M>H <n> "<escaped bytes>".
    std::ifstream in(dir / "trace");
    std::string line, out;
    while (std::getline(in, line)) {
        if (line.find(" H>M ") == std::string::npos) continue;
        const auto open = line.find('"');
        if (open == std::string::npos || line.size() < open + 2) continue;
        const std::string text = line.substr(open + 1, line.size() - open - 2);
        for (std::size_t i = 0; i < text.size(); ++i) {
            if (text[i] != '\\' || i + 1 >= text.size()) {
                out += text[i];
                continue;
            }
            const char escaped = text[++i];
            if (escaped == 'r') {
                out += '\r';
            } else if (escaped == 'n') {
                out += '\n';
            } else if (escaped == 'x' && i + 2 < text.size()) {
                out += static_cast<char>(std::stoi(text.substr(i + 1, 2), nullptr, 16));
                i += 2;
            } else {
                out += escaped;  // \\ and \"
            }
        }
    }
    return out;
}

int loopback_tcp_listener(std::uint16_t& port, int backlog) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
    listen(fd, backlog);
    socklen_t length = sizeof address;
    getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
    port = ntohs(address.sin_port);
    return fd;
}

std::size_t descriptors_of(int pid) {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& entry :
         std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) {
        ++n;
    }
    return n;
}

long resident_kib(int pid) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    std::string key;
    long value = 0;
    while (status >> key) {
        if (key == "VmRSS:") {
            status >> value;
            return value;
        }
        status.ignore(4096, '\n');
    }
    return -1;
}

LocalServer::LocalServer(Mode mode, std::string greeting) : mode_(mode), greeting_(std::move(greeting)) {
    fd_ = loopback_tcp_listener(port_);
    thread_ = std::thread([this] { serve(); });
}

LocalServer::~LocalServer() {
    stop_ = true;
    shutdown(fd_, SHUT_RDWR);
    thread_.join();
    {
        std::lock_guard lock(clients_mutex_);
        for (const int client : clients_) shutdown(client, SHUT_RDWR);  // ends their reads
    }
    for (auto& echo : echoes_) echo.join();
    close(fd_);
}

// Each client is echoed on its own thread: connections run at once, as through a modem with many sockets.
void LocalServer::serve() {
    while (!stop_) {
        int client = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (client < 0) return;
        ++accepted_;
        if (mode_ == Mode::greet_and_close) {
            [[maybe_unused]] auto n = write(client, greeting_.data(), greeting_.size());
            close(client);
            continue;
        }
        {
            std::lock_guard lock(clients_mutex_);
            clients_.push_back(client);
        }
        echoes_.emplace_back([this, client] {
            char buffer[8192];
            for (;;) {
                ssize_t n = read(client, buffer, sizeof buffer);
                if (n <= 0) break;
                ssize_t off = 0;
                while (off < n) {
                    ssize_t w = write(client, buffer + off, static_cast<std::size_t>(n - off));
                    if (w <= 0) break;
                    off += w;
                }
            }
            std::lock_guard lock(clients_mutex_);
            clients_.erase(std::find(clients_.begin(), clients_.end(), client));
            close(client);
        });
    }
}

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

std::size_t count(const std::string& text, const std::string& needle) {
    std::size_t n = 0;
    for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
    return n;
}

bool write_all(int fd, const std::string& bytes) {
    std::size_t off = 0;
    while (off < bytes.size()) {
        ssize_t n = write(fd, bytes.data() + off, bytes.size() - off);
        if (n <= 0) return false;
        off += static_cast<std::size_t>(n);
    }
    return true;
}

std::string read_n(int fd, std::size_t count, std::chrono::milliseconds limit) {
    std::string out;
    const auto deadline = Clock::now() + limit;
    char buffer[8192];
    while (out.size() < count && Clock::now() < deadline) {
        pollfd pfd{fd, POLLIN, 0};
        if (poll(&pfd, 1, 200) <= 0) continue;
        ssize_t n = read(fd, buffer, std::min(sizeof buffer, count - out.size()));
        if (n <= 0) break;
        out.append(buffer, static_cast<std::size_t>(n));
    }
    return out;
}

}  // namespace slmd::test
