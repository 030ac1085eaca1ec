// Owns: the ModemDriver for SLM's TCP proxy (#XTCPCLI/#XTCPSEND/#XTCPDATA, one connection at a time) and
// DNS (#XGETADDRINFO). It decides per piece of uplink between data mode and quoted AT#XTCPSEND (see
// uplink_plan.hpp), keeps the link in data mode while bytes flow and returns it to command mode when a
// command needs it or the uplink idles, and turns every way the firmware reports a lost connection into one
// `closed` event.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <deque>
#include <functional>
#include <memory>
#include <optional>

#include "at/channel.hpp"
#include "modem/modem_driver.hpp"
#include "modem/uplink_plan.hpp"

namespace slmd::modem {

struct SlmProxyDriverOptions {
    std::size_t link_backlog_limit = 2048;                 // uplink bytes queued on the serial line before we wait
    std::size_t quoted_send_limit = 128;                   // short quotable writes in command mode go as AT#XTCPSEND="…"
    std::chrono::milliseconds tail_flush_delay{10};        // a held trailing '+' waits this long for more bytes
    std::chrono::milliseconds data_mode_idle_exit{500};    // leave data mode after this long without uplink
};

// What the driver needs from the rest of the modem layer.
struct SlmProxyDriverHooks {
    std::function<bool()> serving;                     // modem up and registered
    std::function<std::size_t()> link_backlog;         // bytes still queued for the serial line
    std::function<void(bool paused)> pause_receive;    // stop/resume reading the serial line
};

class SlmProxyDriver final : public ModemDriver {
public:
    SlmProxyDriver(boost::asio::any_io_executor executor, at::Channel& channel, SlmProxyDriverHooks hooks,
                   SlmProxyDriverOptions options = {});
    ~SlmProxyDriver() override;

    // Events routed by modem::Modem. on_urc returns true when the line was the driver's.
    bool on_urc(const std::string& text);
    void on_proxy_data(at::ProxyData&& data);
    void on_raw_data(std::string_view bytes);
    void on_data_mode_exited(int status);
    void on_link_drained();
    void on_modem_lost();

    std::size_t tcp_capacity() const override { return 1; }
    std::size_t tcp_available() const override { return slot_busy_ ? 0 : 1; }
    void set_capacity_listener(std::function<void()> listener) override { capacity_listener_ = std::move(listener); }
    bool serving() const override { return hooks_.serving(); }
    void tcp_connect(const TcpEndpoint& destination, std::chrono::milliseconds timeout, TcpConnectionEvents events,
                     std::function<void(int error, ConnectionId id)> done) override;
    void tcp_send(ConnectionId id, std::string bytes, std::function<void(int error)> done) override;
    void tcp_close(ConnectionId id) override;
    void pause_receive(bool paused) override { hooks_.pause_receive(paused); }
    void resolve(const std::string& name, int family,
                 std::function<void(int status, std::vector<std::string> addresses)> done) override;

    void tcp_listen(std::uint16_t port, bool ipv6, TcpListenerEvents events,
                    std::function<void(int error, ListenerId id)> done) override;
    void tcp_stop_listen(ListenerId id) override;
    std::size_t udp_available() const override;
    std::size_t udp_max_send() const override;
    std::size_t udp_max_receive() const override;
    void udp_connect(const TcpEndpoint& destination, UdpEvents events,
                     std::function<void(int error, ConnectionId id)> done) override;
    void udp_serve(std::uint16_t port, bool ipv6, UdpEvents events,
                   std::function<void(int error, ConnectionId id)> done) override;
    void udp_send(ConnectionId id, std::string datagram, std::function<void(int error)> done) override;
    void udp_close(ConnectionId id) override;
    void describe_proxies(std::function<void(std::string text)> done) override;

    struct Stats {
        std::uint64_t data_mode_entries = 0;
        std::uint64_t quoted_sends = 0;
        std::uint64_t bytes_up = 0;
        std::uint64_t bytes_down = 0;
    };
    const Stats& stats() const { return stats_; }

private:
    struct Connection {
        ConnectionId id = 0;
        TcpConnectionEvents events;
        bool closing = false;  // tcp_close() asked; close once the uplink is flushed
    };
    struct SendJob {
        std::string bytes;
        std::function<void(int)> done;
    };
    using Step = std::function<void()>;

    void with_command_mode(Step step);
    void submit(at::CommandRequest request, at::Channel::ResponseHandler handler);
    void connect_attempt(TcpEndpoint destination, std::chrono::milliseconds timeout, bool retried,
                         std::function<void(int, ConnectionId)> done, TcpConnectionEvents events);
    void pump();
    void run_pieces(std::shared_ptr<std::deque<UplinkPiece>> pieces, std::function<void(int)> finished);
    void send_quoted(std::string bytes, std::function<void(int)> finished);
    void send_in_data_mode(std::string bytes, std::function<void(int)> finished);
    void when_drained(std::function<void()> then);
    void after_uplink_idle();
    void connection_lost(CloseReason reason, int error);
    void release_slot_then(std::function<void()> then);
    void finish_close();
    void free_slot();
    bool alive_connection(ConnectionId id) const { return connection_ && connection_->id == id; }

    boost::asio::any_io_executor executor_;
    at::Channel& channel_;
    SlmProxyDriverHooks hooks_;
    SlmProxyDriverOptions options_;
    std::optional<Connection> connection_;
    bool slot_busy_ = false;
    ConnectionId next_id_ = 1;
    std::deque<SendJob> sends_;
    bool pumping_ = false;
    std::string held_tail_;
    bool exiting_data_mode_ = false;
    std::vector<Step> after_exit_;
    std::vector<std::function<void()>> drain_waiters_;
    boost::asio::steady_timer tail_timer_;
    boost::asio::steady_timer idle_timer_;
    Stats stats_;
    std::function<void()> capacity_listener_;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace slmd::modem
