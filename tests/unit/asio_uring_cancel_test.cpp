// The io_uring reactor with compat/liburing.h: cancelling one socket's operation never completes another
// descriptor's pending read. Without the fix, Boost 1.81 + liburing 2.3 submit the cancel with the stale
// user_data of the ring slot's previous submission, and a pending read elsewhere (slmd's serial port, in the
// soak run) completed with 0 bytes: a false end of file.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <boost/asio/buffer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <cstddef>

#include "io_test_support.hpp"

namespace asio = boost::asio;
using slmd::test::run_until;

namespace {

#if defined(BOOST_ASIO_HAS_IO_URING) && !defined(BOOST_ASIO_HAS_EPOLL)
constexpr bool io_uring_backend = true;
#else
constexpr bool io_uring_backend = false;
#endif

// More submissions than Asio's ring has slots (16384 in Boost 1.81, 1024 with compat/liburing.h), so that
// nearly every slot last carried this read.
constexpr int reads_to_fill_the_ring = 2 * 16384 + 512;

class AsioUringCancel : public ::testing::Test {
  protected:
    AsioUringCancel() {
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) == 0) {
            reader.assign(fds[0]);
            writer = fds[1];
        }
    }
    ~AsioUringCancel() override {
        if (writer >= 0) ::close(writer);
    }

    asio::io_context io;
    asio::posix::stream_descriptor reader{io};
    int writer = -1;
    std::array<char, 16> buffer{};
};

TEST_F(AsioUringCancel, CancellingAnotherSocketLeavesAPendingReadPending) {
    if (!io_uring_backend) GTEST_SKIP() << "built with the epoll reactor";
    ASSERT_GE(writer, 0);

    // Fill the submission ring's slots with this descriptor's read queue as their last user_data.
    int completed = 0;
    boost::system::error_code fill_error;
    std::function<void()> read_one = [&] {
        ASSERT_EQ(::write(writer, "r", 1), 1);
        reader.async_read_some(asio::buffer(buffer), [&](boost::system::error_code error, std::size_t n) {
            if (error || n != 1) {
                fill_error = error ? error : asio::error::eof;
                return;
            }
            if (++completed < reads_to_fill_the_ring) read_one();
        });
    };
    read_one();
    io.run();
    ASSERT_FALSE(fill_error) << fill_error.message();
    ASSERT_EQ(completed, reads_to_fill_the_ring);
    io.restart();

    // A read that waits (nothing written), like slmd's serial read between bursts.
    boost::system::error_code read_error;
    std::size_t read_bytes = 0;
    bool read_done = false;
    reader.async_read_some(asio::buffer(buffer), [&](boost::system::error_code error, std::size_t n) {
        read_error = error;
        read_bytes = n;
        read_done = true;
    });

    // Another socket's receive, cancelled: its cancel submission takes one of the filled slots.
    asio::ip::udp::socket other(io, asio::ip::udp::endpoint(asio::ip::address_v4::loopback(), 0));
    std::array<char, 16> other_buffer{};
    boost::system::error_code other_error;
    bool other_done = false;
    other.async_receive(asio::buffer(other_buffer), [&](boost::system::error_code error, std::size_t) {
        other_error = error;
        other_done = true;
    });
    io.poll();
    other.cancel();
    ASSERT_TRUE(run_until(io, [&] { return other_done; }))
        << "the cancel never completed the receive; the waiting read "
        << (read_done ? "completed" : "did not") << " (" << read_error.message() << ", " << read_bytes
        << " bytes)";
    EXPECT_EQ(other_error, asio::error::operation_aborted);

    // The cancel's own completion has been reaped by now; the waiting read must not have seen it.
    io.poll();
    EXPECT_FALSE(read_done) << "the pending read completed early: " << read_error.message() << ", "
                            << read_bytes << " bytes";

    // It still gets the next byte written.
    ASSERT_EQ(::write(writer, "x", 1), 1);
    ASSERT_TRUE(run_until(io, [&] { return read_done; }));
    EXPECT_FALSE(read_error) << read_error.message();
    ASSERT_EQ(read_bytes, 1u);
    EXPECT_EQ(buffer[0], 'x');
}

}  // namespace
