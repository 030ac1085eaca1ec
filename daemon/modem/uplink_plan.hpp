// Owns: cutting uplink bytes into pieces that are safe on an SLM link. In data mode the firmware ends the
// mode when it sees "+++" (anywhere on v2.5+, at the end of a burst on v1.9–v2.4), and a payload ending in
// '+' could complete a terminator with the next write or with our own "+++". So runs of three or more '+'
// go as quoted AT#XTCPSEND="+++…" pieces, and a trailing run of one or two '+' is held back for the next
// chunk. Pure; table-tested in uplink_plan_test.cpp.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace slmd::modem {

struct UplinkPiece {
    enum class Kind { data_mode, quoted };
    Kind kind = Kind::data_mode;
    std::string bytes;
    bool operator==(const UplinkPiece&) const = default;
};

struct UplinkPlan {
    std::vector<UplinkPiece> pieces;
    std::string held_tail;  // "" , "+" or "++": prepend to the next chunk, or send quoted when the uplink idles
    bool operator==(const UplinkPlan&) const = default;
};

// `max_quoted` is the firmware's longest AT#XTCPSEND string (1024 on v2.3+).
UplinkPlan plan_uplink(std::string_view bytes, std::size_t max_quoted);

}  // namespace slmd::modem
