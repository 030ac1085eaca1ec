// Owns: the link's one data mode and who holds it. SLM has a single data mode per link, shared by every user
// of the firmware (the TCP proxy, the UDP proxy, and generic sockets next): a session belongs to one owner,
// whose raw downlink it carries, and anyone's AT command waits until the session has ended. with_command_mode()
// runs a step at once in command mode, or after the exit it starts (or joins); a nonzero exit status is
// reported before the waiting steps run, so none of them uses the connection the session just lost.
#pragma once

#include <functional>
#include <system_error>
#include <vector>

#include "at/channel.hpp"
#include "modem/modem_driver.hpp"
#include "sys/lifetime.hpp"

namespace slmd::modem {

class DataModeGate {
public:
    enum class Owner { none, tcp, udp, socket };  // socket: a generic socket (SlmSocketDriver)
    struct Session {
        Owner owner = Owner::none;
        ConnectionId connection = 0;  // the connection whose bytes the session carries (TCP)
    };
    using Step = std::function<void()>;

    explicit DataModeGate(at::Channel& channel) : channel_(channel) {}
    ~DataModeGate() { lifetime_.end(); }
    DataModeGate(const DataModeGate&) = delete;
    DataModeGate& operator=(const DataModeGate&) = delete;

    // Runs when an exit this gate asked for reports a nonzero status: the session's owner lost its proxy.
    void set_broken_session_handler(std::function<void(const Session&, int status)> handler) {
        broken_session_ = std::move(handler);
    }

    // Runs `step` in command mode: now, or once the link has left data mode (an exit is started if none is
    // under way; leaving counts as data mode, since the channel may be answering the firmware's own "+++").
    void with_command_mode(Step step, at::Channel::ExitTiming timing = at::Channel::ExitTiming::immediate);
    // A command, in command mode.
    void submit(at::CommandRequest request, at::Channel::ResponseHandler handler);
    // Leaves data mode if the link is in it, with nothing to run afterwards.
    void leave_data_mode();
    // Whether the session can take uplink bytes now (in data mode, no exit asked for or under way).
    bool writable() const { return channel_.data_mode_writable() && !exiting_; }
    // Whether the link is in command mode with no exit under way: a command sent now goes out at once.
    bool in_command_mode() const { return channel_.mode() == at::LinkMode::command && !exiting_; }

    // The session just entered belongs to `session`; end_session() hands it back when the link left.
    void begin_session(Session session) { session_ = session; }
    const Session& session() const { return session_; }
    Session end_session() { return std::exchange(session_, Session{}); }
    // The last exit this gate asked for: the channel's error (timeout: the firmware never confirmed) and the
    // firmware's #XDATAMODE status. clear_last_exit() before a session whose result a caller reads.
    std::error_code last_exit_error() const { return last_exit_error_; }
    int last_exit_status() const { return last_exit_status_; }
    void note_exit_status(int status) { last_exit_status_ = status; }
    void clear_last_exit() {
        last_exit_error_ = {};
        last_exit_status_ = 0;
    }

    // The modem is gone: steps waiting for an exit are dropped (their objects fail on their own), no session.
    void reset();

private:
    at::Channel& channel_;
    bool exiting_ = false;
    std::vector<Step> after_exit_;
    Session session_;
    std::error_code last_exit_error_;
    int last_exit_status_ = 0;
    std::function<void(const Session&, int)> broken_session_;
    sys::Lifetime lifetime_;
};

}  // namespace slmd::modem
