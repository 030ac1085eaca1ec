// An at::LinkWriter that records what the channel wrote, for tests that feed the modem's side by hand.
#pragma once

#include <string>
#include <utility>

#include "at/channel.hpp"

namespace slmd::test {

class RecordingLink : public at::LinkWriter {
public:
    void write_to_modem(std::string bytes) override { written += bytes; }
    // What was written since the last take().
    std::string take() { return std::exchange(written, {}); }
    std::string written;
};

}  // namespace slmd::test
