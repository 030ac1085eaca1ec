// Owns: running a short list of AT commands one after another, each once the previous one was accepted, and
// stopping at the first refusal: the options a socket needs between its open and its connect (#XSSOCKETOPT
// host name, DTLS connection id), on either driver, whichever way it reaches the channel.
#pragma once

#include <functional>
#include <optional>
#include <vector>

#include "at/channel.hpp"
#include "sys/lifetime.hpp"

namespace slmd::modem {

using SubmitCommand = std::function<void(at::CommandRequest, at::Channel::ResponseHandler)>;

// done(nullopt) once every request was answered OK (at once when there are none), else done(the first answer
// that was not). Nothing runs once `alive` has ended.
void submit_in_order(sys::Lifetime::Guard alive, std::vector<at::CommandRequest> requests, SubmitCommand submit,
                     std::function<void(std::optional<at::CommandResponse> refused)> done);

}  // namespace slmd::modem
