// Owns: the preload shim's cost on calls it lets through to the kernel (Google Benchmark). scripts/bench.sh
// runs this binary twice, plain and with LD_PRELOAD=libslmsock-preload.so, and reports the ratio: every
// program run under slm-run pays it on each such call, so it has to stay small.
#include <arpa/inet.h>
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <thread>

namespace {

// A loopback listener whose peer side is accepted and closed at once, so the backlog never fills.
struct Listener {
    int fd = -1;
    sockaddr_in address{};
    std::atomic<bool> stop{false};
    std::thread thread;

    Listener() {
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 || listen(fd, 4096) != 0)
            std::abort();
        socklen_t length = sizeof address;
        getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
        thread = std::thread([this] {
            while (!stop) {
                int peer = accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
                if (peer >= 0) close(peer);
            }
        });
    }
    ~Listener() {
        stop = true;
        shutdown(fd, SHUT_RDWR);
        thread.join();
        close(fd);
    }
};

// socket + connect to a loopback listener + close: the shim inspects the destination, sees loopback, and
// hands the call to the kernel. SO_LINGER 0 so a million iterations do not exhaust ports in TIME_WAIT.
void BM_LoopbackConnect(benchmark::State& state) {
    static Listener listener;
    const linger no_linger{1, 0};
    for (auto _ : state) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (connect(fd, reinterpret_cast<const sockaddr*>(&listener.address), sizeof listener.address) != 0) {
            state.SkipWithError("connect failed");
        }
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &no_linger, sizeof no_linger);
        close(fd);
    }
}
BENCHMARK(BM_LoopbackConnect)->UseRealTime();

// write + read of 64 bytes on a pipe: not a socket at all (and read/write are not hooked: a control).
void BM_PipeWriteRead(benchmark::State& state) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) std::abort();
    char buffer[64] = {};
    for (auto _ : state) {
        benchmark::DoNotOptimize(write(fds[1], buffer, sizeof buffer));
        benchmark::DoNotOptimize(read(fds[0], buffer, sizeof buffer));
    }
    close(fds[0]);
    close(fds[1]);
}
BENCHMARK(BM_PipeWriteRead);

// sendto + recvfrom of 64 bytes on a Unix socket pair: both are hooked (the shim translates UDP addresses),
// so this is the cost of the shim deciding "not mine" on every datagram-style call. read/write are not
// hooked.
void BM_SocketpairSendtoRecvfrom(benchmark::State& state) {
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) std::abort();
    char buffer[64] = {};
    for (auto _ : state) {
        benchmark::DoNotOptimize(sendto(fds[1], buffer, sizeof buffer, 0, nullptr, 0));
        benchmark::DoNotOptimize(recvfrom(fds[0], buffer, sizeof buffer, 0, nullptr, nullptr));
    }
    close(fds[0]);
    close(fds[1]);
}
BENCHMARK(BM_SocketpairSendtoRecvfrom);

}  // namespace

BENCHMARK_MAIN();
