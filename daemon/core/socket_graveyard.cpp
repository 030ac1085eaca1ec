// Owns: the deferred close of released sockets (see socket_graveyard.hpp).
#include "core/socket_graveyard.hpp"

#include <unistd.h>

#include <algorithm>

namespace slmd::core {

SocketGraveyard::SocketGraveyard(boost::asio::any_io_executor executor, std::chrono::milliseconds delay)
    : timer_(executor), delay_(delay) {}

SocketGraveyard::~SocketGraveyard() {
    lifetime_.end();
    close_all();
}

void SocketGraveyard::bury(int fd) {
    graves_.push_back({fd, std::chrono::steady_clock::now() + delay_});
    arm();
}

void SocketGraveyard::close_all() {
    for (const auto& grave : graves_) ::close(grave.fd);
    graves_.clear();
    timer_.cancel();
    armed_ = false;
}

void SocketGraveyard::arm() {
    if (armed_ || graves_.empty()) return;
    armed_ = true;
    timer_.expires_at(graves_.front().due);
    timer_.async_wait([this, alive = lifetime_.guard()](boost::system::error_code error) {
        if (!*alive) return;
        armed_ = false;
        if (error) return;
        const auto now = std::chrono::steady_clock::now();
        auto due = std::partition(graves_.begin(), graves_.end(), [now](const Grave& g) { return g.due > now; });
        for (auto it = due; it != graves_.end(); ++it) ::close(it->fd);
        graves_.erase(due, graves_.end());
        arm();
    });
}

}  // namespace slmd::core
