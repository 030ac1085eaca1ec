// Owns: closing sockets that may still have asynchronous operations in flight, without letting the kernel hand
// their descriptor number to a new socket while those operations are being cancelled. Boost 1.81's io_uring
// backend loses the first operation started on a new socket that reuses such a number (seen as a UDP stand-in
// that never received and a server peer whose loopback connect never completed), so a closing socket is
// released from Asio at once (its operations complete with operation_aborted) and its descriptor is closed a
// moment later, once the cancellations have gone through the ring.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/socket_base.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <memory>
#include <vector>

#include "sys/lifetime.hpp"

namespace slmd::core {

class SocketGraveyard {
public:
    explicit SocketGraveyard(boost::asio::any_io_executor executor,
                             std::chrono::milliseconds delay = std::chrono::milliseconds(100));
    ~SocketGraveyard();
    SocketGraveyard(const SocketGraveyard&) = delete;
    SocketGraveyard& operator=(const SocketGraveyard&) = delete;

    // Takes the socket's descriptor (the socket object is closed afterwards). With `reset`, the eventual
    // close sends an RST instead of a FIN (SO_LINGER 0), which is what a peer reset must look like.
    template <typename Socket>
    void bury(Socket& socket, bool reset = false) {
        if (!socket.is_open()) return;
        boost::system::error_code ignored;
        if (reset) socket.set_option(boost::asio::socket_base::linger(true, 0), ignored);
        const int fd = socket.release(ignored);
        if (ignored || fd < 0) {
            socket.close(ignored);
            return;
        }
        bury(fd);
    }
    void bury(int fd);
    // Closes everything now (slmd is stopping: nothing will be reused any more).
    void close_all();
    std::size_t pending() const { return graves_.size(); }

private:
    struct Grave {
        int fd;
        std::chrono::steady_clock::time_point due;
    };
    void arm();

    boost::asio::steady_timer timer_;
    std::chrono::milliseconds delay_;
    std::vector<Grave> graves_;
    bool armed_ = false;
    sys::Lifetime lifetime_;
};

}  // namespace slmd::core
