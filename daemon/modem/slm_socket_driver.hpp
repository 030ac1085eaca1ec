// Owns: SLM's generic sockets (#XSOCKET & co., docs/reference/serial-modem-and-generic-sockets.md §3) as a
// ModemDriver for TCP and UDP clients: up to the firmware's socket count at once (8; 7 on v3.1), on the
// channel and data-mode gate it shares with the proxy driver. The firmware acts on one "active" socket, which
// the driver tracks and changes with #XSOCKETSELECT only when needed. No URC says that bytes arrived (before
// v3.1): the driver polls all sockets with one AT#XPOLL=0, faster while data flows and slower when idle, and
// reads ready sockets in turn with AT#XRECV=0,64 (never a blocking read: it would hold the firmware's AT
// channel). On v3.1 the firmware reports instead (AT#XAPOLL=1,1: one #XAPOLL: <h>,1 per arrival, armed again by
// each read), and nothing is polled. After a send, that socket's answer is read before other sockets' bytes
// (answer_wait), since a reply queued behind bulk reads waits 178 ms per read at 115200. Sends go quoted when short and quotable, else in data mode, planned like the proxy's so that no
// "+++" reaches the firmware inside data mode. TLS and DTLS clients are TLS/DTLS sockets of the modem's own
// (#XSSOCKET, the handshake in #XCONNECT). Servers (#XLISTEN/#XACCEPT) are not offered (EOPNOTSUPP): they stay on
// the proxies.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "at/channel.hpp"
#include "modem/data_mode_gate.hpp"
#include "modem/modem_driver.hpp"
#include "modem/uplink_plan.hpp"
#include "sys/lifetime.hpp"

namespace slmd::modem {

struct SlmSocketDriverOptions {
    std::chrono::milliseconds poll_busy{50};    // poll interval while a socket had data within busy_window
    std::chrono::milliseconds poll_idle{1000};  // ... and the longest one, reached by doubling when idle
    std::chrono::milliseconds busy_window{1000};
    std::size_t quoted_send_limit = 128;  // short quotable sends go as AT#XSEND="…"
    // While another user of the link (the TCP proxy) holds data mode, a due poll waits for the session to end,
    // so it does not cut a bulk upload into short sessions, but no longer than this after the last poll.
    std::chrono::milliseconds poll_defer_limit{1000};
    // v3.1: learn of received bytes from #XAPOLL reports instead of polling (AT#XAPOLL=1,1 once, for every socket).
    bool async_poll = true;
    // Answer first: after a socket's send, other sockets' reads wait up to this long for its answer, so that a
    // request's reply is not queued behind a 2048-byte bulk read (178 ms at 115200). A socket whose answer did
    // not come in time is not waited for again until one does. 0 = off. Configuration key answer-wait-ms.
    std::chrono::milliseconds answer_wait{100};
    // Only a send this small is a request: a larger one is an upload, and holding reads back for the whole of
    // it (seconds at 115200) would stall a download beside it.
    std::size_t answer_request_max = 1024;
    std::chrono::milliseconds answer_poll{10};  // before v3.1: poll interval while an answer is awaited
};

class SlmSocketDriver final : public ModemDriver {
  public:
    SlmSocketDriver(boost::asio::any_io_executor executor, at::Channel& channel, DataModeGate& gate,
                    std::function<bool()> serving, SlmSocketDriverOptions options = {});
    ~SlmSocketDriver() override;

    // The modem rebooted or the link dropped: every socket is gone (closed with modem_lost).
    void on_modem_lost();
    // The largest number of generic sockets the firmware holds: 8, and 7 on v3.1 (its #XAPOLL keeps one).
    std::size_t socket_limit() const;
    // The firmware's descriptors held by others on the same link (the proxies): they count against the limit.
    void set_descriptors_elsewhere(std::function<std::size_t()> count) { descriptors_elsewhere_ = std::move(count); }
    // Runs in command mode just before a socket's send enters data mode (the proxy driver suspends its UDP
    // proxy, whose raw downlink would be mistaken for the TCP proxy's).
    void set_before_data_mode(std::function<void()> step) { before_data_mode_ = std::move(step); }
    // Sockets open or being opened.
    std::size_t open_count() const { return sockets_.size() + opening_; }
    // A line no command claimed: true when it was this driver's (v3.1's #XAPOLL report).
    bool on_urc(const std::string& text);

    std::size_t tcp_capacity() const override { return socket_limit(); }
    std::size_t tcp_available() const override;
    void set_capacity_listener(std::function<void()> listener) override {
        capacity_listener_ = std::move(listener);
    }
    bool serving() const override { return serving_(); }
    void tcp_connect(const TcpEndpoint& destination, std::chrono::milliseconds timeout,
                     TcpConnectionEvents events,
                     std::function<void(int error, ConnectionId id)> done) override;
    void tcp_send(ConnectionId id, std::string bytes, std::function<void(int error)> done) override;
    void tcp_close(ConnectionId id) override;
    void pause_receive(bool paused) override;
    bool receive_paused() const override { return paused_; }
    void tcp_listen(std::uint16_t port, bool ipv6, TcpListenerEvents events,
                    std::function<void(int error, ListenerId id)> done) override;
    void tcp_stop_listen(ListenerId) override {}
    std::size_t udp_available() const override { return tcp_available(); }
    std::size_t udp_max_send() const override;
    std::size_t udp_max_receive() const override;
    void udp_connect(const TcpEndpoint& destination, UdpEvents events,
                     std::function<void(int error, ConnectionId id)> done) override;
    void udp_serve(std::uint16_t port, bool ipv6, UdpEvents events,
                   std::function<void(int error, ConnectionId id)> done) override;
    void udp_send(ConnectionId id, std::string datagram, std::function<void(int error)> done) override;
    void udp_close(ConnectionId id) override { tcp_close(id); }
    void describe_proxies(std::function<void(std::string text)> done) override;
    void resolve(const std::string& name, int family,
                 std::function<void(int status, std::vector<std::string> addresses)> done) override;

    struct Stats {
        std::uint64_t polls = 0;
        std::uint64_t reports = 0;  // #XAPOLL reports (v3.1)
        std::uint64_t reads = 0;
        std::uint64_t selects = 0;
        std::uint64_t bytes_up = 0;
        std::uint64_t bytes_down = 0;
        std::uint64_t answer_waits = 0;         // requests whose answer other reads waited for
        std::uint64_t answer_waits_lapsed = 0;  // ... that came too late or never
    };
    const Stats& stats() const { return stats_; }

  private:
    struct SendJob {
        std::string bytes;
        std::function<void(int)> done;
    };
    struct Socket {
        ConnectionId id = 0;
        int handle = -1;
        bool udp = false;
        TcpConnectionEvents tcp_events;
        UdpEvents udp_events;
        std::deque<SendJob> sends;
        bool sending = false;
        bool closing = false;
        bool gone = false;  // closed on the modem, or lost: no more events
        bool hung_up = false;  // v3.1: #XAPOLL reported POLLHUP, the last report: read on to the end of the stream
        // Answer first: none, a request being sent (others' reads wait), or its answer due until answer_due.
        enum class Answer { none, sending, due };
        Answer answer = Answer::none;
        std::chrono::steady_clock::time_point answer_due{};
        std::chrono::steady_clock::time_point sent_at{};  // the last send that completed
        bool answers_promptly = true;  // its last answer came within answer_wait of a send
    };
    using Step = DataModeGate::Step;

    // Opens a socket for `socket` (its kind and events) and connects it; `done(error, id)`.
    void open(const TcpEndpoint& destination, std::chrono::milliseconds timeout, Socket socket,
              std::function<void(int error, ConnectionId id)> done);
    // Queues `request` for the socket `handle`, with an #XSOCKETSELECT first unless it is the active one.
    void submit_on(int handle, at::CommandRequest request, at::Channel::ResponseHandler handler);
    Socket* find(ConnectionId id);
    Socket* find_handle(int handle);
    void pump(ConnectionId id);
    void run_pieces(ConnectionId id, std::shared_ptr<std::deque<UplinkPiece>> pieces,
                    std::function<void(int)> finished);
    void send_piece(Socket& socket, std::string bytes, bool quoted, std::function<void(int)> finished);
    void finish_close(ConnectionId id);
    void lose(ConnectionId id, CloseReason reason, int error);
    void slot_freed();
    void abandon_opening(int handle, int error, bool close, std::function<void(int, ConnectionId)> done);
    bool polling_wanted() const;  // sockets open, and not all of them held back by a pause
    void schedule_poll(std::chrono::milliseconds delay);
    void poll();
    void read_ready(std::deque<int> handles);
    // v3.1: starts the firmware's poll thread for every socket, once per modem session.
    void start_async_poll();
    bool async_polling() const { return async_poll_ != AsyncPoll::off; }
    void read_reported();  // reads the sockets #XAPOLL reported, unless a read round runs
    // Answer first (SlmSocketDriverOptions::answer_wait).
    void request_started(Socket& socket, std::size_t bytes);
    void request_sent(Socket& socket, bool ok);
    void note_ready(Socket& socket);  // bytes are waiting: an answer that came in time
    bool awaiting_answer(const Socket& socket) const;
    bool awaiting_answer(int handle) const;
    bool holding_for_answer() const;  // some socket's answer is still awaited: other reads wait
    void hold_for_answer(std::deque<int> handles);  // ends a read round, keeping `handles` for later
    void answer_wait_over();
    void arm_answer_timer(std::chrono::steady_clock::time_point at);
    void disarm_answer_timer();
    void resume_reads();  // the reads an answer's wait held back

    boost::asio::any_io_executor executor_;
    at::Channel& channel_;
    DataModeGate& gate_;
    std::function<bool()> serving_;
    std::function<std::size_t()> descriptors_elsewhere_;
    std::function<void()> before_data_mode_;
    SlmSocketDriverOptions options_;
    std::map<ConnectionId, Socket> sockets_;
    std::size_t opening_ = 0;  // sockets being opened: they count against the limit
    std::optional<int> active_;
    ConnectionId next_id_ = 1;
    std::function<void()> capacity_listener_;
    boost::asio::steady_timer poll_timer_;
    boost::asio::steady_timer answer_timer_;
    bool answer_timer_armed_ = false;  // a wait is pending (a cancelled timer keeps its old expiry)
    bool poll_scheduled_ = false;
    bool polling_ = false;
    std::chrono::milliseconds poll_interval_;
    std::chrono::steady_clock::time_point last_data_{};
    std::chrono::steady_clock::time_point last_poll_{};
    bool paused_ = false;
    // v3.1 #XAPOLL: off (polling with #XPOLL), asked for, or running; #XPOLL is refused while it runs.
    enum class AsyncPoll { off, starting, on };
    AsyncPoll async_poll_ = AsyncPoll::off;
    std::deque<int> reported_;  // handles #XAPOLL reported, not read yet
    std::set<int> held_;        // TCP handles reported during a pause: read when it ends (no report comes again)
    std::map<int, int> early_reports_;  // handle → events reported before its socket was known
    Stats stats_;
    sys::Lifetime lifetime_;
};

}  // namespace slmd::modem
