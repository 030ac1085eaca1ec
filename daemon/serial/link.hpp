// Owns: what the modem layer needs from a serial link, and nothing more: start reading, queue bytes in order,
// pause reading for a slow app, read promptly while an answer is awaited, and the two counters the uplink's flow control reads. serial::SerialPort is the
// tty behind it in slmd; tests put a scripted firmware behind it (tests/unit/scripted_firmware.hpp) so that
// modem::Modem and its drivers run in-process.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <system_error>

namespace slmd::serial {

class Link {
public:
    using BytesHandler = std::function<void(std::string_view)>;
    using LinkHandler = std::function<void(std::error_code)>;

    virtual ~Link() = default;
    // Starts reading. `on_bytes` gets what the modem sent, in order; `on_lost` runs when the link went away
    // (bytes queued meanwhile are discarded), `on_restored` when it is back.
    virtual void start(BytesHandler on_bytes, LinkHandler on_lost, std::function<void()> on_restored) = 0;
    // Queues bytes; they are written in order.
    virtual void write(std::string bytes) = 0;
    // Stops (true) or resumes (false) reading.
    virtual void pause_reading(bool paused) = 0;
    // Runs after each chunk has been written, so writers waiting for room can go on.
    virtual void set_write_listener(std::function<void()> listener) = 0;
    // While `awaited` returns true, someone waits for the modem's answer: reads go on at once instead of being
    // batched for throughput (a link without batching ignores it).
    virtual void set_answer_awaited(std::function<bool()> awaited) { (void)awaited; }
    // Bytes queued and not yet written; bytes written so far.
    virtual std::size_t queued_bytes() const = 0;
    virtual std::uint64_t bytes_written() const = 0;
};

}  // namespace slmd::serial
