// Owns: running the project's programs as child processes in integration tests: spawn with arguments,
// read their stderr/stdout line by line with deadlines, signal them, and collect their exit status.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace slmd::test {

class ChildProcess {
public:
    // Starts `argv[0]` with its stdout and stderr captured (merged into one stream).
    explicit ChildProcess(std::vector<std::string> argv);
    ~ChildProcess();
    ChildProcess(const ChildProcess&) = delete;
    ChildProcess& operator=(const ChildProcess&) = delete;

    // Returns the next output line, or nullopt when the deadline passes or the stream ends.
    std::optional<std::string> read_line(std::chrono::milliseconds timeout);
    // Reads lines until one contains `needle`; every line read is kept in output().
    bool wait_for_output(const std::string& needle, std::chrono::milliseconds timeout);
    // Waits for the process to exit; returns its exit code (128+signal if killed), nullopt on timeout.
    std::optional<int> wait_exit(std::chrono::milliseconds timeout);
    void signal(int signo);
    int pid() const { return pid_; }
    const std::string& output() const { return output_; }

private:
    int pid_ = -1;
    int out_fd_ = -1;
    std::string pending_;
    std::string output_;
    std::optional<int> status_;
};

// Connects to an AF_UNIX stream control socket, sends one line, returns the reply line.
std::string control_command(const std::string& socket_path, const std::string& line);

// Waits until `path` exists.
bool wait_for_path(const std::string& path, std::chrono::milliseconds timeout);

// A fresh temporary directory, removed with its contents on destruction.
class TempDir {
public:
    TempDir();
    ~TempDir();
    const std::string& path() const { return path_; }
    std::string operator/(const std::string& name) const { return path_ + "/" + name; }

private:
    std::string path_;
};

}  // namespace slmd::test
