// A ModemDriver in memory for core/ tests: records every call as one line of text (in order), completes
// requests from the event loop like the real driver (never inside the call), and lets a test play the
// modem's side: datagrams and peers arriving, peers closing, the modem getting lost.
#pragma once

#include <netdb.h>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/post.hpp>

#include <cerrno>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "modem/modem_driver.hpp"

namespace slmd::test {

class FakeModemDriver final : public modem::ModemDriver {
public:
    explicit FakeModemDriver(boost::asio::any_io_executor executor) : executor_(executor) {}

    // --- what the test sets ---
    bool is_serving = true;
    int udp_open_error = 0;   // udp_connect / udp_serve fail with this
    std::size_t udp_sockets = 1;  // UDP clients/servers open at once (SLM: its one proxy; Serial Modem: more)
    int udp_send_error = 0;
    int tcp_listen_error = 0;
    bool listen_supported = true;           // false: a firmware without TCP servers (Serial Modem v1.0)
    bool listen_beside_connections = false;  // true: a server is a socket of its own (Serial Modem previews)
    int tcp_connect_error = 0;  // tcp_connect fails with this
    std::map<std::string, std::vector<std::string>> dns;  // resolve(): name → addresses; others EAI_NONAME
    std::size_t max_send = 1024;
    std::string proxies_text = "#XTCPCLI: 0\n#XUDPCLI: 0";

    // --- what the test reads ---
    std::vector<std::string> calls;      // "udp_connect 203.0.113.5:7", "udp_close 1", "tcp_close 2", ...
    std::vector<std::string> udp_sent;   // datagrams, whole
    std::map<modem::ConnectionId, std::vector<std::string>> udp_sent_on;  // ... per UDP client/server
    std::map<modem::ConnectionId, std::string> tcp_sent;

    std::size_t count(const std::string& prefix) const {
        std::size_t n = 0;
        for (const auto& call : calls) n += call.rfind(prefix, 0) == 0;
        return n;
    }

    // --- the modem's side ---
    // A datagram for the UDP client or server opened last; `peer` as a v2.8+ server reports it.
    void udp_arrives(std::string datagram, std::optional<modem::UdpPeer> peer = std::nullopt) {
        udp_arrives_on(udp_id_, std::move(datagram), std::move(peer));
    }
    void udp_arrives_on(modem::ConnectionId id, std::string datagram,
                        std::optional<modem::UdpPeer> peer = std::nullopt) {
        auto it = udp_open_.find(id);
        if (it != udp_open_.end() && it->second.datagram) it->second.datagram(datagram, peer);
    }
    void udp_lost(int error) {
        auto open = std::exchange(udp_open_, {});
        for (auto& [id, events] : open) {
            if (events.closed) events.closed(modem::CloseReason::modem_lost, error);
        }
    }
    std::vector<modem::ConnectionId> udp_ids() const {
        std::vector<modem::ConnectionId> ids;
        for (const auto& [id, events] : udp_open_) ids.push_back(id);
        return ids;
    }
    // A peer connects to the modem's TCP server; returns its connection id.
    modem::ConnectionId tcp_peer_arrives(const std::string& peer_address) {
        const auto id = next_id_++;
        tcp_events_[id] = listener_events_.incoming(id, peer_address);
        return id;
    }
    void tcp_arrives(modem::ConnectionId id, const std::string& bytes) { tcp_events_.at(id).data(bytes); }
    void tcp_peer_closes(modem::ConnectionId id) {
        auto events = std::move(tcp_events_.at(id));
        tcp_events_.erase(id);
        if (id == client_) client_.reset();
        events.closed(modem::CloseReason::peer_closed, 0);
        post([this] {
            if (capacity_listener_) capacity_listener_();
        });
    }
    // The modem rebooted: every TCP connection ends with modem_lost.
    void modem_lost() {
        auto connections = std::exchange(tcp_events_, {});
        client_.reset();
        for (auto& [id, events] : connections) events.closed(modem::CloseReason::modem_lost, ECONNRESET);
        post([this] {
            if (capacity_listener_) capacity_listener_();
        });
    }

    // --- ModemDriver ---
    std::size_t tcp_capacity() const override { return 1; }
    std::size_t tcp_available() const override {
        return client_ || (listening_ && !listen_beside_connections) ? 0 : 1;
    }
    void set_capacity_listener(std::function<void()> listener) override { capacity_listener_ = std::move(listener); }
    bool serving() const override { return is_serving; }
    bool tcp_listen_supported() const override { return listen_supported; }
    bool tcp_listen_beside_connections() const override { return listen_beside_connections; }
    bool tcp_listen_available() const override {
        return listen_beside_connections ? !listening_ : tcp_available() > 0;
    }

    void tcp_connect(const modem::TcpEndpoint& destination, std::chrono::milliseconds, modem::TcpConnectionEvents events,
                     std::function<void(int, modem::ConnectionId)> done) override {
        calls.push_back("tcp_connect " + destination.host + ":" + std::to_string(destination.port));
        if (const int error = tcp_connect_error ? tcp_connect_error : (tcp_available() ? 0 : EBUSY)) {
            post([done, error] { done(error, 0); });
            return;
        }
        const auto id = next_id_++;
        client_ = id;
        tcp_events_[id] = std::move(events);
        post([done, id] { done(0, id); });
    }
    void tcp_send(modem::ConnectionId id, std::string bytes, std::function<void(int)> done) override {
        const int error = tcp_events_.count(id) ? 0 : ENOTCONN;
        if (!error) tcp_sent[id] += bytes;
        post([done, error] { done(error); });
    }
    void tcp_close(modem::ConnectionId id) override {
        calls.push_back("tcp_close " + std::to_string(id));
        auto it = tcp_events_.find(id);
        if (it == tcp_events_.end()) return;
        auto events = std::move(it->second);
        tcp_events_.erase(it);
        if (client_ == id) client_.reset();
        post([this, events] {
            events.closed(modem::CloseReason::local_close, 0);
            if (capacity_listener_) capacity_listener_();
        });
    }
    void pause_receive(bool paused) override { calls.push_back(paused ? "pause" : "resume"); }

    void tcp_listen(std::uint16_t port, bool ipv6, modem::TcpListenerEvents events,
                    std::function<void(int, modem::ListenerId)> done) override {
        calls.push_back("tcp_listen " + std::to_string(port) + (ipv6 ? " v6" : " v4"));
        const int error = tcp_listen_error ? tcp_listen_error : (tcp_listen_available() ? 0 : EBUSY);
        if (!error) {
            listening_ = true;
            listener_events_ = std::move(events);
        }
        post([done, error] { done(error, error ? 0 : 7); });
    }
    void tcp_stop_listen(modem::ListenerId id) override {
        calls.push_back("tcp_stop_listen " + std::to_string(id));
        listening_ = false;
        listener_events_ = {};
        auto peers = std::move(tcp_events_);
        tcp_events_.clear();
        post([this, peers] {
            for (const auto& [peer, events] : peers) events.closed(modem::CloseReason::local_close, 0);
            if (capacity_listener_) capacity_listener_();
        });
    }

    std::size_t udp_available() const override {
        return udp_open_.size() >= udp_sockets ? 0 : udp_sockets - udp_open_.size();
    }
    std::size_t udp_max_send() const override { return max_send; }
    std::size_t udp_max_receive() const override { return 2048; }
    void udp_connect(const modem::TcpEndpoint& destination, modem::UdpEvents events,
                     std::function<void(int, modem::ConnectionId)> done) override {
        calls.push_back("udp_connect " + destination.host + ":" + std::to_string(destination.port));
        udp_open(std::move(events), std::move(done));
    }
    void udp_serve(std::uint16_t port, bool ipv6, modem::UdpEvents events,
                   std::function<void(int, modem::ConnectionId)> done) override {
        calls.push_back("udp_serve " + std::to_string(port) + (ipv6 ? " v6" : " v4"));
        udp_open(std::move(events), std::move(done));
    }
    void udp_send(modem::ConnectionId id, std::string datagram, std::function<void(int)> done) override {
        calls.push_back("udp_send " + std::to_string(id));
        const int error = udp_send_error ? udp_send_error : (udp_open_.count(id) ? 0 : ENOTCONN);
        if (!error) {
            udp_sent_on[id].push_back(datagram);
            udp_sent.push_back(std::move(datagram));
        }
        post([done, error] { done(error); });
    }
    void udp_close(modem::ConnectionId id) override {
        calls.push_back("udp_close " + std::to_string(id));
        auto it = udp_open_.find(id);
        if (it == udp_open_.end()) return;
        auto events = std::move(it->second);
        udp_open_.erase(it);
        post([events] {
            if (events.closed) events.closed(modem::CloseReason::local_close, 0);
        });
    }

    void describe_proxies(std::function<void(std::string)> done) override {
        calls.push_back("describe_proxies");
        post([done, text = proxies_text] { done(text); });
    }
    void resolve(const std::string& name, int, std::function<void(int, std::vector<std::string>)> done) override {
        auto found = dns.find(name);
        if (found == dns.end()) {
            post([done] { done(EAI_NONAME, {}); });
            return;
        }
        post([done, addresses = found->second] { done(0, addresses); });
    }

private:
    template <typename F>
    void post(F f) {
        boost::asio::post(executor_, std::move(f));
    }
    void udp_open(modem::UdpEvents events, std::function<void(int, modem::ConnectionId)> done) {
        const int error = udp_open_error ? udp_open_error : (udp_open_.size() >= udp_sockets ? EBUSY : 0);
        modem::ConnectionId id = 0;
        if (!error) {
            udp_id_ = id = next_id_++;
            udp_open_[id] = std::move(events);
        }
        post([done, error, id] { done(error, id); });
    }

    boost::asio::any_io_executor executor_;
    std::function<void()> capacity_listener_;
    modem::ConnectionId next_id_ = 1;
    std::optional<modem::ConnectionId> client_;
    bool listening_ = false;
    modem::TcpListenerEvents listener_events_;
    std::map<modem::ConnectionId, modem::TcpConnectionEvents> tcp_events_;
    std::map<modem::ConnectionId, modem::UdpEvents> udp_open_;
    modem::ConnectionId udp_id_ = 0;  // the last one opened
};

}  // namespace slmd::test
