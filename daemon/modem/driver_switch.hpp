// Owns: the one ModemDriver the flow layer holds, whichever firmware family bring-up found on the line. It
// forwards every call to the SLM driver or to the Serial Modem driver, as `use_second()` says at the moment
// of the call; core/ keeps one reference for the life of slmd while the modem behind it may change from one
// bring-up to the next (a flashed board, a swapped USB modem).
#pragma once

#include <functional>

#include "modem/modem_driver.hpp"

namespace slmd::modem {

class DriverSwitch final : public ModemDriver {
  public:
    DriverSwitch(ModemDriver& first, ModemDriver& second, std::function<bool()> use_second)
        : first_(first), second_(second), use_second_(std::move(use_second)) {}

    ModemDriver& active() { return use_second_() ? second_ : first_; }
    const ModemDriver& active() const { return use_second_() ? second_ : first_; }

    std::size_t tcp_capacity() const override { return active().tcp_capacity(); }
    std::size_t tcp_available() const override { return active().tcp_available(); }
    void set_capacity_listener(std::function<void()> listener) override {
        first_.set_capacity_listener(listener);
        second_.set_capacity_listener(std::move(listener));
    }
    bool serving() const override { return active().serving(); }
    void tcp_connect(const TcpEndpoint& destination, std::chrono::milliseconds timeout,
                     TcpConnectionEvents events,
                     std::function<void(int error, ConnectionId id)> done) override {
        active().tcp_connect(destination, timeout, std::move(events), std::move(done));
    }
    void tcp_send(ConnectionId id, std::string bytes, std::function<void(int error)> done) override {
        active().tcp_send(id, std::move(bytes), std::move(done));
    }
    void tcp_close(ConnectionId id) override { active().tcp_close(id); }
    void pause_receive(bool paused) override { active().pause_receive(paused); }
    bool receive_paused() const override { return active().receive_paused(); }
    void when_written(std::function<void()> then) override { active().when_written(std::move(then)); }
    bool tcp_listen_available() const override { return active().tcp_listen_available(); }
    bool tcp_listen_supported() const override { return active().tcp_listen_supported(); }
    bool tcp_listen_beside_connections() const override { return active().tcp_listen_beside_connections(); }
    void tcp_listen(std::uint16_t port, bool ipv6, TcpListenerEvents events,
                    std::function<void(int error, ListenerId id)> done) override {
        active().tcp_listen(port, ipv6, std::move(events), std::move(done));
    }
    void tcp_stop_listen(ListenerId id) override { active().tcp_stop_listen(id); }
    std::size_t udp_available() const override { return active().udp_available(); }
    std::size_t udp_max_send() const override { return active().udp_max_send(); }
    std::size_t udp_max_receive() const override { return active().udp_max_receive(); }
    void udp_connect(const TcpEndpoint& destination, UdpEvents events,
                     std::function<void(int error, ConnectionId id)> done) override {
        active().udp_connect(destination, std::move(events), std::move(done));
    }
    void udp_serve(std::uint16_t port, bool ipv6, UdpEvents events,
                   std::function<void(int error, ConnectionId id)> done) override {
        active().udp_serve(port, ipv6, std::move(events), std::move(done));
    }
    void udp_send(ConnectionId id, std::string datagram, std::function<void(int error)> done) override {
        active().udp_send(id, std::move(datagram), std::move(done));
    }
    void udp_close(ConnectionId id) override { active().udp_close(id); }
    void describe_proxies(std::function<void(std::string text)> done) override {
        active().describe_proxies(std::move(done));
    }
    void resolve(const std::string& name, int family,
                 std::function<void(int status, std::vector<std::string> addresses)> done) override {
        active().resolve(name, family, std::move(done));
    }

  private:
    ModemDriver& first_;
    ModemDriver& second_;
    std::function<bool()> use_second_;
};

}  // namespace slmd::modem
