// slmsim: implementation of the paced pty link (see pty_link.hpp).
#include "pty_link.hpp"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <system_error>

namespace slmsim {

namespace asio = boost::asio;
using boost::system::error_code;
using clock_type = Pacer::clock;

namespace {
constexpr auto kMinGap = std::chrono::microseconds(1000);  // batch granularity of paced bulk I/O

// When to move the next batch: when the last of the `pending` bytes is due, but no later than one batch from
// now, and never before the next byte is due. A short command or answer therefore arrives when its last byte
// would on a real UART (4 bytes at 921600 baud: 43 us), instead of a batch period later; bulk data still
// moves in batches of about kMinGap.
clock_type::time_point next_wake(const Pacer& pacer, std::size_t pending) {
  const auto now = clock_type::now();
  return std::max(pacer.next_due(), std::min(pacer.last_due(pending), now + kMinGap));
}
[[noreturn]] void fail(const char* what) { throw std::system_error(errno, std::generic_category(), what); }
}  // namespace

PtyLink::PtyLink(asio::io_context& io, unsigned baud, std::string link_path)
    : io_(io),
      link_path_(std::move(link_path)),
      rx_pacer_(baud / 10.0),
      tx_pacer_(baud / 10.0),
      rx_timer_(io),
      tx_timer_(io) {}

PtyLink::~PtyLink() { close(); }

void PtyLink::open() {
  if (master_) return;
  int m = ::posix_openpt(O_RDWR | O_NOCTTY);
  if (m < 0) fail("posix_openpt");
  if (::grantpt(m) != 0 || ::unlockpt(m) != 0) {
    ::close(m);
    fail("grantpt/unlockpt");
  }
  char name[128];
  if (::ptsname_r(m, name, sizeof name) != 0) {
    ::close(m);
    fail("ptsname_r");
  }
  slave_name_ = name;
  termios tio{};
  if (::tcgetattr(m, &tio) == 0) {
    ::cfmakeraw(&tio);
    ::tcsetattr(m, TCSANOW, &tio);
  }
  // Our own slave fd: keeps the master from seeing EIO while the host has the tty closed, and
  // makes the line raw until the host configures it.
  slave_fd_ = ::open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (slave_fd_ >= 0 && ::tcgetattr(slave_fd_, &tio) == 0) {
    ::cfmakeraw(&tio);
    ::tcsetattr(slave_fd_, TCSANOW, &tio);
  }
  ::fcntl(m, F_SETFL, ::fcntl(m, F_GETFL) | O_NONBLOCK);
  ::fcntl(m, F_SETFD, FD_CLOEXEC);
  remove_link();
  if (::symlink(name, link_path_.c_str()) != 0) {
    int e = errno;
    ::close(m);
    if (slave_fd_ >= 0) ::close(slave_fd_);
    slave_fd_ = -1;
    errno = e;
    fail("symlink");
  }
  master_ = std::make_unique<asio::posix::stream_descriptor>(io_, m);
  ++gen_;
  rx_pacer_.mark_idle();
  tx_pacer_.mark_idle();
  start_read();
  if (!txq_.empty()) start_write();
}

void PtyLink::remove_link() {
  struct stat st {};
  if (::lstat(link_path_.c_str(), &st) == 0 && S_ISLNK(st.st_mode)) ::unlink(link_path_.c_str());
}

void PtyLink::close() {
  if (!master_) return;
  ++gen_;
  error_code ec;
  rx_timer_.cancel();
  tx_timer_.cancel();
  master_->close(ec);
  master_.reset();
  if (slave_fd_ >= 0) ::close(slave_fd_);
  slave_fd_ = -1;
  remove_link();
  txq_.clear();
  tx_bytes_ = 0;
  tx_offset_ = 0;
  writing_ = false;
  if (drain_) drain_();
}

void PtyLink::start_read() {
  if (!master_) return;
  const auto armed = clock_type::now();
  // Armed on an idle line, this read completes when the host's first byte arrives: the burst starts then.
  const bool first_of_burst = rx_pacer_.paced() && rx_pacer_.starts_burst(armed);
  std::size_t allow = std::min(rx_pacer_.allowance(armed), rx_pacer_.paced() ? kMaxRead : sizeof rxbuf_);
  auto g = gen_;
  if (allow == 0) {
    rx_timer_.expires_at(rx_pacer_.next_due());
    rx_timer_.async_wait([this, g](const error_code& ec) {
      if (!ec && g == gen_) start_read();
    });
    return;
  }
  master_->async_read_some(asio::buffer(rxbuf_, allow), [this, g, first_of_burst](const error_code& ec,
                                                                                  std::size_t n) {
    if (g != gen_) return;
    if (ec) {
      if (ec == asio::error::operation_aborted) return;
      // EIO cannot happen while we hold the slave open; back off and retry on anything else.
      rx_timer_.expires_after(std::chrono::milliseconds(10));
      rx_timer_.async_wait([this, g](const error_code& e2) {
        if (!e2 && g == gen_) start_read();
      });
      return;
    }
    if (first_of_burst) rx_pacer_.begin_burst(clock_type::now());
    rx_pacer_.consume(n);
    if (receive_) receive_(std::string_view(rxbuf_, n));
    if (g != gen_ || !master_) return;
    if (!rx_pacer_.paced()) return start_read();
    const std::size_t pending = input_queued();
    if (pending == 0) {
      rx_pacer_.mark_idle();  // the host has nothing more queued: wait for its next byte, whenever it comes
      return start_read();
    }
    rx_timer_.expires_at(next_wake(rx_pacer_, pending));
    rx_timer_.async_wait([this, g](const error_code& e2) {
      if (!e2 && g == gen_) start_read();
    });
  });
}

void PtyLink::write(std::string bytes) {
  if (!master_ || bytes.empty()) return;  // serial line down: the bytes are lost
  tx_bytes_ += bytes.size();
  txq_.push_back(std::move(bytes));
  if (!writing_) start_write();
}

void PtyLink::start_write() {
  if (!master_) return;
  if (txq_.empty()) {
    writing_ = false;
    tx_pacer_.mark_idle();
    return;
  }
  writing_ = true;
  std::size_t allow = tx_pacer_.allowance(clock_type::now());
  auto g = gen_;
  if (allow == 0) {
    tx_timer_.expires_at(tx_pacer_.next_due());
    tx_timer_.async_wait([this, g](const error_code& ec) {
      if (!ec && g == gen_) start_write();
    });
    return;
  }
  // Gather up to `allow` bytes across queued writes.
  staging_.clear();
  std::size_t cap = std::min<std::size_t>(allow, 4096);
  std::size_t off = tx_offset_;
  for (auto it = txq_.begin(); it != txq_.end() && staging_.size() < cap; ++it) {
    std::size_t take = std::min(cap - staging_.size(), it->size() - off);
    staging_.append(*it, off, take);
    off = 0;
  }
  master_->async_write_some(asio::buffer(staging_), [this, g](const error_code& ec, std::size_t n) {
    if (g != gen_) return;
    if (ec) {
      if (ec == asio::error::operation_aborted) return;
      tx_timer_.expires_after(std::chrono::milliseconds(10));
      tx_timer_.async_wait([this, g](const error_code& e2) {
        if (!e2 && g == gen_) start_write();
      });
      return;
    }
    tx_pacer_.consume(n);
    tx_bytes_ -= n;
    std::size_t left = n;
    while (left > 0 && !txq_.empty()) {
      std::size_t avail = txq_.front().size() - tx_offset_;
      if (left >= avail) {
        left -= avail;
        txq_.pop_front();
        tx_offset_ = 0;
      } else {
        tx_offset_ += left;
        left = 0;
      }
    }
    if (drain_ && tx_bytes_ < Simulator::kTxHigh) drain_();
    if (g != gen_ || !master_) return;
    if (txq_.empty()) {
      writing_ = false;
      tx_pacer_.mark_idle();
      return;
    }
    if (!tx_pacer_.paced()) return start_write();
    tx_timer_.expires_at(next_wake(tx_pacer_, tx_bytes_));
    tx_timer_.async_wait([this, g](const error_code& e2) {
      if (!e2 && g == gen_) start_write();
    });
  });
}

std::size_t PtyLink::input_queued() const {
  if (!master_) return 0;
  int queued = 0;
  return ::ioctl(master_->native_handle(), FIONREAD, &queued) == 0 && queued > 0 ? static_cast<std::size_t>(queued)
                                                                                 : 0;
}

bool PtyLink::input_pending() const { return input_queued() > 0; }

}  // namespace slmsim
