// Owns: the preload tests' environment: a network namespace with only loopback, local servers (line echo,
// HTTP with upload), a simulated modem (slmsim) with slmd in front of it, and running commands under slm-run.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "process.hpp"

namespace slmd::preload_test {

// Set by main(): true when the test process runs in its own network namespace with only `lo` up, so any
// connection that escapes the shim fails with ENETUNREACH instead of leaking.
bool isolated();
// Called from main() before anything else: enters the namespace when possible (root), else explains why not.
void enter_network_namespace();

std::string hex_sha256(const std::string& bytes);
// Deterministic random bytes with "+++", "\r\n+++\r\n" and "+++AT" sprinkled in (SLM's data-mode escape).
std::string random_payload(std::size_t size, unsigned seed);
std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& bytes);

// Accepts on 127.0.0.1:<ephemeral>; one thread per connection.
class Server {
public:
    virtual ~Server();
    std::uint16_t port() const { return port_; }
    int connections() const { return connections_.load(); }
    // Waits until no connection is open any more (the far end of every modem flow was closed).
    bool wait_idle(std::chrono::milliseconds timeout);

protected:
    void start();
    virtual void serve(int fd) = 0;
    void stop();

private:
    int listener_ = -1;
    int wake_[2] = {-1, -1};
    std::uint16_t port_ = 0;
    std::thread acceptor_;
    std::mutex mutex_;
    std::vector<std::thread> workers_;
    std::atomic<int> connections_{0};
    int active_ = 0;  // guarded by mutex_
    std::condition_variable idle_;
};

// Echoes every byte back; closes after echoing a line "QUIT", or at the client's EOF.
class EchoServer : public Server {
public:
    EchoServer() { start(); }
    ~EchoServer() override { stop(); }

protected:
    void serve(int fd) override;
};

// HTTP/1.1 (Connection: close): GET /blob → the blob; PUT or POST /upload → stored, answered with its sha256.
class HttpServer : public Server {
public:
    explicit HttpServer(std::string blob) : blob_(std::move(blob)) { start(); }
    ~HttpServer() override { stop(); }
    std::string last_upload();

protected:
    void serve(int fd) override;

private:
    std::string blob_;
    std::mutex upload_mutex_;
    std::string upload_;
};

// A UDP echo server on 127.0.0.1:<ephemeral> (the "remote" peer behind the modem): every datagram goes back to
// its source unchanged. Counts what it saw.
class UdpEchoServer {
public:
    UdpEchoServer();
    ~UdpEchoServer();
    std::uint16_t port() const { return port_; }
    int datagrams() const { return datagrams_.load(); }
    std::size_t largest() const { return largest_.load(); }

private:
    int fd_ = -1;
    int wake_[2] = {-1, -1};
    std::uint16_t port_ = 0;
    std::atomic<int> datagrams_{0};
    std::atomic<std::size_t> largest_{0};
    std::thread thread_;
};

// A port on 127.0.0.1 that refuses connections (bound, never listening), held for the object's lifetime.
class ClosedPort {
public:
    ClosedPort();
    ~ClosedPort();
    std::uint16_t port() const { return port_; }

private:
    int fd_ = -1;
    std::uint16_t port_ = 0;
};

// A process whose output is drained on a thread so it never blocks on a full pipe.
class DrainedProcess {
public:
    explicit DrainedProcess(std::vector<std::string> argv);
    ~DrainedProcess();
    // Waits until the output contains `needle`.
    bool wait_for(const std::string& needle, std::chrono::milliseconds timeout);
    // Waits until the output contains `needle` at least `times` times.
    bool wait_for_count(const std::string& needle, std::size_t times, std::chrono::milliseconds timeout);
    std::string output();
    void stop();  // SIGTERM, bounded wait, SIGKILL

private:
    slmd::test::ChildProcess child_;
    std::atomic<bool> stopping_{false};
    std::mutex mutex_;
    std::condition_variable changed_;
    std::string output_;
    std::thread reader_;
};

// slmsim on a pty plus slmd serving its API socket. The test network 203.0.113.0/24 maps to 127.0.0.1.
struct ModemOptions {
    std::string profile = "v2.9";
    int baud = 0;
    std::vector<std::string> sim_args;  // extra slmsim options
    std::vector<std::string> slmd_args;  // extra slmd options
    std::string extra_hosts;             // more lines for slmsim's hosts file ("203.0.113.10 name")
};

class Modem {
public:
    explicit Modem(ModemOptions options);
    ~Modem();
    bool ready() const { return ready_; }
    const std::string& api_socket() const { return api_socket_; }
    const std::string& dir() const { return dir_.path(); }
    std::string diagnostics();
    // One command on slmsim's control socket (e.g. "state"), its one-line answer.
    std::string control(const std::string& line) const;
    // The name slmsim resolves to 203.0.113.10 (and so to 127.0.0.1 through the map).
    static constexpr const char* host_name = "files.example";
    static constexpr const char* host_address = "203.0.113.10";

private:
    slmd::test::TempDir dir_;
    std::string link_;
    std::string control_;
    std::string api_socket_;
    std::unique_ptr<DrainedProcess> sim_;
    std::unique_ptr<DrainedProcess> slmd_;
    bool ready_ = false;
};

struct RunResult {
    std::optional<int> exit_code;  // nullopt: timed out (and killed)
    std::string output;            // stdout and stderr, merged
    double seconds = 0;
};

// Runs argv with extra environment (NAME=value) through /usr/bin/env, bounded by `timeout`.
RunResult run(const std::vector<std::string>& env, const std::vector<std::string>& argv,
              std::chrono::milliseconds timeout);

// Paths of the built programs (compile definitions).
std::string slm_run();
std::string shim();
std::string matrix();

}  // namespace slmd::preload_test
