// Owns: the tty. Exclusive open, raw 8N1 termios at the configured baud, optional RTS/CTS, ordered
// asynchronous writes, a continuous read loop, and noticing loss of the device (EIO, HUP, EOF) with
// reopening after a bounded exponential backoff. Knows bytes, never AT.
#pragma once

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <vector>
#include <functional>
#include <string>
#include <string_view>
#include <system_error>

#include "serial/link.hpp"
#include "sys/lifetime.hpp"

namespace slmd::serial {

struct SerialOptions {
    std::string path;
    unsigned baud = 115200;
    bool rts_cts = false;
    std::chrono::milliseconds reopen_initial_backoff{100};
    std::chrono::milliseconds reopen_max_backoff{5000};
    // Read batching for bulk receive: after `batch_after_reads` reads in a row of `batch_min_bytes` up to
    // `batch_max_bytes` each, the next read waits `read_batch_delay` so that the kernel's tty buffer gathers
    // more: at 921600 baud that is ~740 bytes per wake-up instead of the ~90 a USB-serial or pty hands over per
    // millisecond. Short answers and interactive traffic never qualify; a stream's last bytes wait at most the
    // delay. A read of batch_max_bytes or more already carries enough, and waiting then would only throttle a
    // fast line against the tty's 4 KiB buffer. 0 = off.
    std::chrono::microseconds read_batch_delay{8000};
    std::size_t batch_min_bytes = 64;
    std::size_t batch_max_bytes = 1024;
    unsigned batch_after_reads = 3;
};

// Maps a numeric baud rate to the termios constant; returns false for rates termios cannot express.
bool baud_to_speed(unsigned baud, unsigned& speed_out);

class SerialPort final : public Link {
public:

    SerialPort(boost::asio::any_io_executor executor, SerialOptions options);
    SerialPort(const SerialPort&) = delete;
    SerialPort& operator=(const SerialPort&) = delete;
    ~SerialPort() override;

    // Opens and configures the device once; the error says why it failed (ENOENT, EBUSY for another owner,
    // ENOTTY for a non-tty, EINVAL for an unsupported baud rate).
    std::error_code open();
    // Starts the read loop. `on_lost` runs when the device goes away (the port then retries opening with
    // backoff); `on_restored` runs after a successful reopen.
    void start(BytesHandler on_bytes, LinkHandler on_lost, std::function<void()> on_restored) override;
    // Queues bytes; they are written in order. Bytes queued while the device is lost are discarded and counted,
    // because whatever they belonged to is void once the link dropped.
    void write(std::string bytes) override;
    void close();
    // Stops (true) or resumes (false) reading: with RTS/CTS the modem then holds its output.
    void pause_reading(bool paused) override;
    // Runs after each chunk has been written, so writers waiting for room can go on.
    void set_write_listener(std::function<void()> listener) override { on_written_ = std::move(listener); }
    void set_answer_awaited(std::function<bool()> awaited) override { answer_awaited_ = std::move(awaited); }
    bool is_open() const { return descriptor_.is_open(); }
    std::size_t queued_bytes() const override { return queued_bytes_; }
    std::uint64_t bytes_read() const { return bytes_read_; }
    std::uint64_t reads() const { return reads_; }
    std::uint64_t batched_reads() const { return batched_reads_; }
    std::uint64_t bytes_written() const override { return bytes_written_; }
    std::uint64_t bytes_discarded_while_lost() const { return discarded_; }
    const SerialOptions& options() const { return options_; }

private:
    std::error_code configure(int fd);
    void read_loop();
    void read_after_batch_delay();
    void write_loop();
    void lost(std::error_code error);
    void schedule_reopen();

    SerialOptions options_;
    boost::asio::posix::stream_descriptor descriptor_;
    boost::asio::steady_timer reopen_timer_;
    boost::asio::steady_timer batch_timer_;
    std::chrono::milliseconds backoff_;
    std::array<char, 4096> read_buffer_{};
    std::deque<std::string> write_queue_;
    std::size_t queued_bytes_ = 0;
    bool writing_ = false;
    // The link was lost while a write was in flight: its chunk must stay alive until the aborted write's
    // handler has run (the kernel may still be reading it), and then the whole queue goes.
    bool drop_queue_when_aborted_ = false;
    // Descriptors of a lost link, closed only once the new one is open: a new open must not get the same
    // number while operations on the old one may still be completing (io_uring completes cancellations
    // asynchronously, and Boost 1.81 mixes up a reused number's operations).
    std::vector<int> stale_descriptors_;
    bool started_ = false;
    bool closing_ = false;
    bool read_paused_ = false;
    bool reading_ = false;
    std::function<bool()> answer_awaited_;
    bool batch_waiting_ = false;      // the next read waits for the batch timer
    unsigned large_reads_in_row_ = 0;  // consecutive reads of batch_min_bytes up to batch_max_bytes
    std::function<void()> on_written_;
    BytesHandler on_bytes_;
    LinkHandler on_lost_;
    std::function<void()> on_restored_;
    std::uint64_t bytes_read_ = 0;
    std::uint64_t reads_ = 0;
    std::uint64_t batched_reads_ = 0;
    std::uint64_t bytes_written_ = 0;
    std::uint64_t discarded_ = 0;
    sys::Lifetime lifetime_;
};

}  // namespace slmd::serial
