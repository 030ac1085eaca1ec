// Owns: the tty (see serial_port.hpp).
#include "serial/serial_port.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/write.hpp>

#include "sys/log.hpp"

namespace slmd::serial {

namespace asio = boost::asio;

bool baud_to_speed(unsigned baud, unsigned& speed_out) {
    struct Entry {
        unsigned baud;
        speed_t speed;
    };
    static constexpr Entry table[] = {
        {1200, B1200},       {2400, B2400},       {4800, B4800},       {9600, B9600},
        {19200, B19200},     {38400, B38400},     {57600, B57600},     {115200, B115200},
        {230400, B230400},   {460800, B460800},   {500000, B500000},   {576000, B576000},
        {921600, B921600},   {1000000, B1000000}, {1152000, B1152000}, {1500000, B1500000},
        {2000000, B2000000}, {3000000, B3000000}, {4000000, B4000000},
    };
    for (const auto& entry : table) {
        if (entry.baud == baud) {
            speed_out = entry.speed;
            return true;
        }
    }
    return false;
}

SerialPort::SerialPort(asio::any_io_executor executor, SerialOptions options)
    : options_(std::move(options)),
      descriptor_(executor),
      reopen_timer_(executor),
      batch_timer_(executor),
      backoff_(options_.reopen_initial_backoff) {}

SerialPort::~SerialPort() {
    lifetime_.end();
    close();
}

std::error_code SerialPort::configure(int fd) {
    if (!isatty(fd)) return std::make_error_code(std::errc::not_a_stream);
    // TIOCEXCL stops other non-root openers; flock stops a second slmd (even as root) from sharing the line.
    if (ioctl(fd, TIOCEXCL) != 0) return {errno, std::system_category()};
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK) return std::make_error_code(std::errc::device_or_resource_busy);
        return {errno, std::system_category()};
    }
    termios tio{};
    if (tcgetattr(fd, &tio) != 0) return {errno, std::system_category()};
    cfmakeraw(&tio);
    tio.c_cflag |= CLOCAL | CREAD;
    tio.c_cflag &= ~static_cast<tcflag_t>(CSTOPB | PARENB | CSIZE);
    tio.c_cflag |= CS8;
    if (options_.rts_cts) {
        tio.c_cflag |= CRTSCTS;
    } else {
        tio.c_cflag &= ~static_cast<tcflag_t>(CRTSCTS);
    }
    tio.c_cc[VMIN] = 1;
    tio.c_cc[VTIME] = 0;
    unsigned speed = 0;
    if (!baud_to_speed(options_.baud, speed)) return std::make_error_code(std::errc::invalid_argument);
    cfsetispeed(&tio, static_cast<speed_t>(speed));
    cfsetospeed(&tio, static_cast<speed_t>(speed));
    if (tcsetattr(fd, TCSANOW, &tio) != 0) return {errno, std::system_category()};
    // Stale bytes from before we owned the line belong to nobody.
    tcflush(fd, TCIOFLUSH);
    return {};
}

std::error_code SerialPort::open() {
    int fd = ::open(options_.path.c_str(), O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return {errno, std::system_category()};
    if (auto error = configure(fd)) {
        ::close(fd);
        return error;
    }
    boost::system::error_code assign_error;
    descriptor_.assign(fd, assign_error);
    if (assign_error) {
        ::close(fd);
        return assign_error;
    }
    return {};
}

void SerialPort::start(BytesHandler on_bytes, LinkHandler on_lost, std::function<void()> on_restored) {
    on_bytes_ = std::move(on_bytes);
    on_lost_ = std::move(on_lost);
    on_restored_ = std::move(on_restored);
    started_ = true;
    read_loop();
}

void SerialPort::pause_reading(bool paused) {
    read_paused_ = paused;
    if (!paused && !reading_) read_loop();
}

void SerialPort::read_loop() {
    if (!descriptor_.is_open() || read_paused_ || reading_ || batch_waiting_) return;
    reading_ = true;
    descriptor_.async_read_some(asio::buffer(read_buffer_),
                                [this, alive = lifetime_.guard()](boost::system::error_code error, std::size_t n) {
                                    if (!*alive) return;
                                    reading_ = false;
                                    if (closing_) return;
                                    if (error == asio::error::operation_aborted) return;
                                    if (error == asio::error::interrupted || error == asio::error::would_block ||
                                        error == asio::error::try_again) {
                                        read_loop();  // a signal or a spurious wake-up, not a lost device
                                        return;
                                    }
                                    if (error || n == 0) {
                                        // EIO/EOF: the device vanished (USB unplugged, pty master closed).
                                        lost(error ? std::error_code(error)
                                                   : std::make_error_code(std::errc::io_error));
                                        return;
                                    }
                                    bytes_read_ += n;
                                    ++reads_;
                                    const bool streaming = n >= options_.batch_min_bytes && n < options_.batch_max_bytes;
                                    large_reads_in_row_ = streaming ? large_reads_in_row_ + 1 : 0;
                                    on_bytes_(std::string_view(read_buffer_.data(), n));
                                    // A command's answer in the stream is waited for: batching would delay
                                    // it (and every turn of a command-per-read exchange) by the delay.
                                    const bool answer_awaited = answer_awaited_ && answer_awaited_();
                                    if (options_.read_batch_delay.count() > 0 && !answer_awaited &&
                                        large_reads_in_row_ >= options_.batch_after_reads) {
                                        read_after_batch_delay();
                                        return;
                                    }
                                    read_loop();
                                });
}

// A bulk stream is arriving: let the tty buffer gather for a moment, so that one wake-up (ours, and the app's
// for what we pass on) carries several hundred bytes. The kernel buffers 4 KiB per tty, 44 ms at 921600 baud.
void SerialPort::read_after_batch_delay() {
    if (batch_waiting_) return;
    batch_waiting_ = true;
    ++batched_reads_;
    batch_timer_.expires_after(options_.read_batch_delay);
    batch_timer_.async_wait([this, alive = lifetime_.guard()](boost::system::error_code) {
        if (!*alive) return;
        batch_waiting_ = false;
        if (closing_) return;
        read_loop();
    });
}

void SerialPort::write(std::string bytes) {
    if (bytes.empty()) return;
    if (!descriptor_.is_open()) {
        discarded_ += bytes.size();
        return;
    }
    queued_bytes_ += bytes.size();
    write_queue_.push_back(std::move(bytes));
    if (!writing_) write_loop();
}

void SerialPort::write_loop() {
    if (write_queue_.empty() || !descriptor_.is_open()) {
        writing_ = false;
        return;
    }
    writing_ = true;
    asio::async_write(descriptor_, asio::buffer(write_queue_.front()),
                      [this, alive = lifetime_.guard()](boost::system::error_code error, std::size_t n) {
                          if (!*alive || closing_) return;
                          if (drop_queue_when_aborted_) {
                              // The link this write was for is gone; so is everything queued for it.
                              drop_queue_when_aborted_ = false;
                              write_queue_.clear();
                              writing_ = false;
                              if (descriptor_.is_open()) write_loop();
                              return;
                          }
                          if (error == asio::error::operation_aborted) return;
                          if (error == asio::error::interrupted || error == asio::error::would_block ||
                              error == asio::error::try_again) {
                              // Nothing of this chunk is known to be written only when n == 0; keep the rest.
                              write_queue_.front().erase(0, n);
                              queued_bytes_ -= n;
                              bytes_written_ += n;
                              write_loop();
                              return;
                          }
                          if (error) {
                              // This write is over: lost() must drop the queue now, not wait for an aborted
                              // write that will never come (writing_ stuck true stopped every later write).
                              writing_ = false;
                              lost(error);
                              return;
                          }
                          bytes_written_ += n;
                          queued_bytes_ -= write_queue_.front().size();
                          write_queue_.pop_front();
                          write_loop();
                          if (on_written_) on_written_();
                      });
}

void SerialPort::lost(std::error_code error) {
    if (!descriptor_.is_open()) return;
    SLMD_WARN("serial: lost {} ({}), reopening with backoff", options_.path, error.message());
    boost::system::error_code ignored;
    descriptor_.cancel(ignored);
    large_reads_in_row_ = 0;
    const int stale = descriptor_.release();
    ::flock(stale, LOCK_UN);  // the new descriptor takes the device's lock (flock is per open file)
    stale_descriptors_.push_back(stale);
    for (const auto& chunk : write_queue_) discarded_ += chunk.size();
    queued_bytes_ = 0;
    if (writing_) {
        drop_queue_when_aborted_ = true;
    } else {
        write_queue_.clear();
    }
    backoff_ = options_.reopen_initial_backoff;
    if (on_lost_) on_lost_(error);
    schedule_reopen();
}

void SerialPort::schedule_reopen() {
    reopen_timer_.expires_after(backoff_);
    reopen_timer_.async_wait([this, alive = lifetime_.guard()](boost::system::error_code error) {
        if (!*alive || closing_ || error) return;
        if (auto open_error = open()) {
            SLMD_DEBUG("serial: reopen {} failed: {}", options_.path, open_error.message());
            backoff_ = std::min(backoff_ * 2, options_.reopen_max_backoff);
            schedule_reopen();
            return;
        }
        SLMD_NOTICE("serial: {} is back", options_.path);
        for (int stale : stale_descriptors_) ::close(stale);
        stale_descriptors_.clear();
        backoff_ = options_.reopen_initial_backoff;
        if (on_restored_) on_restored_();
        read_loop();
        if (!writing_) write_loop();
    });
}

void SerialPort::close() {
    closing_ = true;
    reopen_timer_.cancel();
    batch_timer_.cancel();
    boost::system::error_code ignored;
    if (descriptor_.is_open()) descriptor_.close(ignored);
    for (int stale : stale_descriptors_) ::close(stale);
    stale_descriptors_.clear();
    write_queue_.clear();
    queued_bytes_ = 0;
    writing_ = false;
}

}  // namespace slmd::serial
