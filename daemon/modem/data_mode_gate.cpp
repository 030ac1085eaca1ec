// Owns: the link's data mode and its owner (see data_mode_gate.hpp).
#include "modem/data_mode_gate.hpp"

#include "sys/log.hpp"

namespace slmd::modem {

void DataModeGate::with_command_mode(Step step, at::Channel::ExitTiming timing) {
    const auto mode = channel_.mode();
    if (mode != at::LinkMode::data && mode != at::LinkMode::leaving_data_mode && !exiting_) {
        step();
        return;
    }
    after_exit_.push_back(std::move(step));
    if (exiting_) return;
    exiting_ = true;
    channel_.exit_data_mode(
        [this, alive = lifetime_.guard()](std::error_code error, int status) {
            if (!*alive) return;
            exiting_ = false;
            // Leaving already on another's request (the modem layer's): the steps' commands queue behind that exit.
            if (error == at::ChannelError::not_in_data_mode) error = {};
            // Steps run before the channel's data_mode_exited handler; a UDP send waiting here reads its
            // datagram's fate from these.
            last_exit_error_ = error;
            last_exit_status_ = status;
            if (error) SLMD_WARN("slm: leaving data mode: {}", error.message());
            if (!error && status != 0 && broken_session_) broken_session_(session_, status);
            auto steps = std::exchange(after_exit_, {});
            for (auto& step : steps) step();
        },
        timing);
}

void DataModeGate::submit(at::CommandRequest request, at::Channel::ResponseHandler handler) {
    with_command_mode([this, request = std::move(request), handler = std::move(handler)]() mutable {
        channel_.submit(std::move(request), std::move(handler));
    });
}

void DataModeGate::leave_data_mode() {
    if (channel_.mode() == at::LinkMode::data) with_command_mode([] {});
}

void DataModeGate::reset() {
    exiting_ = false;
    after_exit_.clear();
    session_ = {};
}

}  // namespace slmd::modem
