// Owns: child-process plumbing for integration tests (see process.hpp).
#include "process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <utility>
#include <filesystem>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace slmd::test {

using Clock = std::chrono::steady_clock;

ChildProcess::ChildProcess(std::vector<std::string> argv) {
    int pipe_fds[2];
    if (pipe2(pipe_fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
    // The child writes its log into this pipe and the test reads it only when it asks (wait_for_output,
    // output()). A 64 KiB pipe fills during a long test and then blocks the child in write(2) — slmd stalls
    // mid-request and the test hangs waiting for it. 1 MiB (the default pipe-max-size) holds every test's log.
    fcntl(pipe_fds[0], F_SETPIPE_SZ, 1 << 20);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDERR_FILENO);
    std::vector<char*> args;
    for (auto& arg : argv) args.push_back(arg.data());
    args.push_back(nullptr);
    int rc = posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    close(pipe_fds[1]);
    out_fd_ = pipe_fds[0];
    if (rc != 0) {
        close(out_fd_);
        throw std::runtime_error("posix_spawn " + argv[0] + ": " + std::strerror(rc));
    }
}

ChildProcess::~ChildProcess() {
    if (!status_) {
        kill(pid_, SIGKILL);
        wait_exit(std::chrono::seconds(5));
    }
    if (out_fd_ >= 0) close(out_fd_);
}

std::optional<std::string> ChildProcess::read_line(std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
        if (auto newline = pending_.find('\n'); newline != std::string::npos) {
            std::string line = pending_.substr(0, newline);
            pending_.erase(0, newline + 1);
            output_ += line + "\n";
            return line;
        }
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (left.count() <= 0 || out_fd_ < 0) return std::nullopt;
        pollfd pfd{out_fd_, POLLIN, 0};
        if (poll(&pfd, 1, static_cast<int>(left.count())) <= 0) continue;
        char buffer[4096];
        ssize_t n = read(out_fd_, buffer, sizeof buffer);
        if (n <= 0) {
            close(out_fd_);
            out_fd_ = -1;
            if (!pending_.empty()) {
                std::string line = std::exchange(pending_, {});
                output_ += line + "\n";
                return line;
            }
            return std::nullopt;
        }
        pending_.append(buffer, static_cast<std::size_t>(n));
    }
}

bool ChildProcess::wait_for_output(const std::string& needle, std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        auto line = read_line(left);
        if (!line) return false;
        if (line->find(needle) != std::string::npos) return true;
    }
    return false;
}

std::optional<int> ChildProcess::wait_exit(std::chrono::milliseconds timeout) {
    if (status_) return status_;
    const auto deadline = Clock::now() + timeout;
    for (;;) {
        // Keep draining output so the child never blocks on a full pipe.
        while (out_fd_ >= 0 && read_line(std::chrono::milliseconds(0))) {
        }
        int status = 0;
        pid_t r = waitpid(pid_, &status, WNOHANG);
        if (r == pid_) {
            status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            while (out_fd_ >= 0 && read_line(std::chrono::milliseconds(50))) {
            }
            return status_;
        }
        if (Clock::now() >= deadline) return std::nullopt;
        pollfd pfd{out_fd_, POLLIN, 0};
        poll(&pfd, out_fd_ >= 0 ? 1 : 0, 10);
    }
}

void ChildProcess::signal(int signo) { kill(pid_, signo); }

std::string control_command(const std::string& socket_path, const std::string& line) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, socket_path.c_str(), sizeof address.sun_path - 1);
    if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
        close(fd);
        return "error connect: " + std::string(std::strerror(errno));
    }
    std::string request = line + "\n";
    if (write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) {
        close(fd);
        return "error write";
    }
    std::string reply;
    char c;
    pollfd pfd{fd, POLLIN, 0};
    while (poll(&pfd, 1, 5000) > 0 && read(fd, &c, 1) == 1 && c != '\n') reply += c;
    close(fd);
    return reply;
}

bool wait_for_path(const std::string& path, std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
        if (std::filesystem::exists(path)) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return false;
}

TempDir::TempDir() {
    char pattern[] = "/tmp/slmd-test.XXXXXX";
    if (!mkdtemp(pattern)) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
}

TempDir::~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
}

}  // namespace slmd::test
