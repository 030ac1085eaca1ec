// SerialPort against a real pseudo-terminal: the device vanishing while a write is in flight (and no read
// is), coming back under the same path, and read batching for bulk streams (counts and bytes, never timing).
#include "serial/serial_port.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <cerrno>
#include <filesystem>
#include <string>

#include "io_test_support.hpp"

using slmd::serial::SerialOptions;
using slmd::serial::SerialPort;
using slmd::test::run_until;
using namespace std::chrono_literals;

namespace {

// The modem's side of the line: a pty master, with the slave symlinked where slmd opens it.
class FakeLine {
  public:
    explicit FakeLine(const std::string& link) : link_(link) {
        master_ = ::posix_openpt(O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
        if (master_ < 0 || ::grantpt(master_) != 0 || ::unlockpt(master_) != 0) return;
        char name[128];
        if (::ptsname_r(master_, name, sizeof name) != 0) return;
        std::filesystem::remove(link_);
        std::filesystem::create_symlink(name, link_);
        ok_ = true;
    }
    ~FakeLine() { unplug(); }
    bool ok() const { return ok_; }
    // The USB adapter is pulled: the host's reads and writes fail with EIO, the path is gone.
    void unplug() {
        if (master_ >= 0) ::close(master_);
        master_ = -1;
        std::error_code ignored;
        std::filesystem::remove(link_, ignored);
    }
    // Bytes the host wrote that the modem has not read.
    int pending() const {
        int queued = 0;
        return ::ioctl(master_, FIONREAD, &queued) == 0 ? queued : -1;
    }
    std::string read_available() {
        std::string out;
        char buffer[4096];
        ssize_t n;
        while ((n = ::read(master_, buffer, sizeof buffer)) > 0)
            out.append(buffer, static_cast<std::size_t>(n));
        return out;
    }
    bool write(const std::string& bytes) {
        return ::write(master_, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size());
    }

  private:
    std::string link_;
    int master_ = -1;
    bool ok_ = false;
};

class SerialPortTest : public ::testing::Test {
  protected:
    SerialPortTest() {
        char pattern[] = "/tmp/slmd-serial-test.XXXXXX";
        if (::mkdtemp(pattern) != nullptr) dir = pattern;
        link = dir + "/tty";
    }
    ~SerialPortTest() override {
        std::error_code ignored;
        std::filesystem::remove_all(dir, ignored);
    }

    SerialOptions options() const {
        SerialOptions result;
        result.path = link;
        result.baud = 921600;
        result.reopen_initial_backoff = 10ms;
        result.reopen_max_backoff = 20ms;
        return result;
    }

    void start(SerialPort& port) {
        port.start([this](std::string_view bytes) { received.append(bytes); },
                   [this](std::error_code) { ++lost; }, [this] { ++restored; });
    }

    // Writes `bytes` on the modem's side and runs until the port has read everything sent so far.
    bool modem_sends(FakeLine& line, const std::string& bytes) {
        if (!line.write(bytes)) return false;
        sent += bytes;
        return run_until(io, [&] { return received == sent; });
    }
    std::string sent;

    boost::asio::io_context io{1};
    std::string dir;
    std::string link;
    std::string received;
    int lost = 0;
    int restored = 0;
};

TEST_F(SerialPortTest, ADeviceLostUnderAWriteWritesAgainOnceItIsBack) {
    auto line = std::make_unique<FakeLine>(link);
    ASSERT_TRUE(line->ok());
    SerialPort port(io.get_executor(), options());
    ASSERT_FALSE(port.open());
    // No read pending (a slow app holds the line), so the failing write is the first to notice the loss.
    port.pause_reading(true);
    start(port);
    port.write(std::string(256 * 1024, 'x'));  // more than the pty holds: a write stays in flight
    ASSERT_TRUE(run_until(io, [&] { return line->pending() > 0; }));
    line->unplug();
    ASSERT_TRUE(run_until(io, [&] { return lost == 1; }));

    line.reset();
    line = std::make_unique<FakeLine>(link);  // plugged in again
    ASSERT_TRUE(line->ok());
    ASSERT_TRUE(run_until(io, [&] { return restored == 1; }));
    port.write("AT\r\n");
    std::string seen;
    EXPECT_TRUE(run_until(
        io, [&] { return (seen += line->read_available()) == "AT\r\n"; }, 2s))
        << "the modem got " << seen.size() << " bytes after the device came back";
    port.close();
}

TEST_F(SerialPortTest, ABulkStreamIsReadInBatchesAndShortReadsAreNot) {
    FakeLine line(link);
    ASSERT_TRUE(line.ok());
    SerialPort port(io.get_executor(), options());
    ASSERT_FALSE(port.open());
    start(port);
    // Answers and URCs: short reads never batch.
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(modem_sends(line, "\r\nOK " + std::to_string(i) + "\r\n"));
    EXPECT_EQ(port.batched_reads(), 0u);
    // A stream: the third read of 64 bytes or more in a row makes the next one wait for the batch.
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(modem_sends(line, std::string(100, static_cast<char>('a' + i))));
    EXPECT_EQ(port.batched_reads(), 1u);
    // The stream's tail arrives whole and in order, and a short read ends the batching.
    ASSERT_TRUE(modem_sends(line, "\r\nOK\r\n"));
    ASSERT_TRUE(modem_sends(line, "\r\n#XTCPDATA: 5\r\n"));
    EXPECT_EQ(port.batched_reads(), 1u);
    EXPECT_EQ(port.reads(), 10u);
    port.close();
}

TEST_F(SerialPortTest, AStreamIsNotBatchedWhileAnAnswerIsAwaited) {
    FakeLine line(link);
    ASSERT_TRUE(line.ok());
    SerialPort port(io.get_executor(), options());
    ASSERT_FALSE(port.open());
    bool awaited = true;
    port.set_answer_awaited([&awaited] { return awaited; });
    start(port);
    // Reads a command's answer rides in (sliced AT#XRECV replies one after another): never delayed.
    for (int i = 0; i < 6; ++i) ASSERT_TRUE(modem_sends(line, std::string(153, static_cast<char>('a' + i))));
    EXPECT_EQ(port.batched_reads(), 0u);
    // Nothing awaited any more: the same stream batches again.
    awaited = false;
    ASSERT_TRUE(modem_sends(line, std::string(153, 'x')));
    EXPECT_EQ(port.batched_reads(), 1u);
    EXPECT_EQ(received, sent);
    port.close();
}

TEST_F(SerialPortTest, ReadsThatAlreadyCarryAKilobyteAreNotDelayed) {
    FakeLine line(link);
    ASSERT_TRUE(line.ok());
    SerialPort port(io.get_executor(), options());
    ASSERT_FALSE(port.open());
    start(port);
    // An unpaced or very fast line: waiting would only throttle it against the tty's 4 KiB buffer.
    for (int i = 0; i < 6; ++i) ASSERT_TRUE(modem_sends(line, std::string(2048, static_cast<char>('a' + i))));
    EXPECT_EQ(port.batched_reads(), 0u);
    port.close();
}

}  // namespace
