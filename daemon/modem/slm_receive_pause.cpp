// Owns: the SLM proxy driver's answer to a slow app (see slm_proxy_driver.hpp and ModemDriver::pause_receive).
//
// The flow layer asks for a pause when an app stops reading. Stopping the serial line is the right
// back-pressure only while that app is the line's one user: the firmware's socket buffer and the TCP window
// then hold the far end, and nothing is lost. But the UART carries everything — command answers (DNS,
// connects, slmctl at, slmd's own registration handling), a data-mode exit's confirmation, the UDP proxy's
// datagrams — and none of it can be read while the line is stopped. So the request is granted only while
// nothing else needs the line; otherwise the line keeps being read and the flow layer keeps buffering for
// the slow app, up to its own bound (core::FlowOptions::slow_reader_limit).
#include "modem/slm_proxy_driver.hpp"

#include "sys/log.hpp"

namespace slmd::modem {

bool SlmProxyDriver::link_needed_elsewhere() const {
    // An answer is awaited (a command queued or in flight, a data-mode exit under way), or datagrams may
    // arrive for the UDP proxy at any moment (also while it is suspended around a data-mode session: it
    // reopens as soon as that ends).
    return channel_.awaiting_modem() || udp_.has_value();
}

void SlmProxyDriver::pause_receive(bool paused) {
    pause_requested_ = paused;
    apply_receive_pause();
}

void SlmProxyDriver::apply_receive_pause() {
    const bool pause = pause_requested_ && !link_needed_elsewhere();
    if (pause == receive_paused_) return;
    receive_paused_ = pause;
    if (pause) {
        SLMD_DEBUG("driver: serial line paused (an app is not reading and nothing else needs the line)");
    } else if (pause_requested_) {
        SLMD_DEBUG("driver: serial line read again although an app is not reading: {} needs it",
                   channel_.awaiting_modem() ? "an AT command" : "the UDP proxy");
    } else {
        SLMD_DEBUG("driver: serial line read again");
    }
    hooks_.pause_receive(pause);
}

}  // namespace slmd::modem
