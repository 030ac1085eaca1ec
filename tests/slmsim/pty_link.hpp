// slmsim: the UART as a pseudo-terminal. Creates the pty (master raw, non-blocking), symlinks the
// slave at the requested path, keeps a slave fd open so a host closing/reopening the tty never
// makes the master see EIO, and paces both directions at baud/10 bytes per second on an absolute
// schedule. Reading from the master is paced too, so a faster host blocks in write() once the pty
// buffer fills (like RTS/CTS).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "pacer.hpp"
#include "simulator.hpp"

namespace slmsim {

class PtyLink : public HostLine {
 public:
  PtyLink(boost::asio::io_context& io, unsigned baud, std::string link_path);
  ~PtyLink() override;

  // Creates the pty and the symlink and starts serving. Throws std::system_error on failure.
  void open();
  // Serial loss: closes the master (the host sees EIO/HUP) and removes the symlink.
  void close();
  bool is_open() const { return master_ != nullptr; }
  const std::string& slave_name() const { return slave_name_; }
  const std::string& link_path() const { return link_path_; }

  void on_receive(std::function<void(std::string_view)> fn) { receive_ = std::move(fn); }
  void on_drain(std::function<void()> fn) { drain_ = std::move(fn); }

  void write(std::string bytes) override;
  std::size_t backlog() const override { return tx_bytes_; }
  bool input_pending() const override;
  std::size_t input_queued() const;  // bytes the host wrote that the modem has not read yet

  static constexpr std::size_t kMaxRead = 256;  // one UART DMA buffer per delivered chunk

 private:
  void start_read();
  void start_write();
  void remove_link();

  boost::asio::io_context& io_;
  std::string link_path_;
  std::string slave_name_;
  std::unique_ptr<boost::asio::posix::stream_descriptor> master_;
  int slave_fd_ = -1;
  std::uint64_t gen_ = 0;
  Pacer rx_pacer_, tx_pacer_;
  boost::asio::steady_timer rx_timer_, tx_timer_;
  std::function<void(std::string_view)> receive_;
  std::function<void()> drain_;
  std::deque<std::string> txq_;
  std::size_t tx_bytes_ = 0;
  std::size_t tx_offset_ = 0;
  bool writing_ = false;
  std::string staging_;
  char rxbuf_[4096];
};

}  // namespace slmsim
