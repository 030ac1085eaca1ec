// Owns: safe cutting of uplink bytes for SLM data mode (see uplink_plan.hpp).
#include "modem/uplink_plan.hpp"

namespace slmd::modem {

namespace {

void append_data(UplinkPlan& plan, std::string_view bytes) {
    if (bytes.empty()) return;
    if (!plan.pieces.empty() && plan.pieces.back().kind == UplinkPiece::Kind::data_mode) {
        plan.pieces.back().bytes.append(bytes);
    } else {
        plan.pieces.push_back({UplinkPiece::Kind::data_mode, std::string(bytes)});
    }
}

void append_quoted(UplinkPlan& plan, std::size_t count, std::size_t max_quoted) {
    while (count > 0) {
        const std::size_t take = std::min(count, max_quoted);
        plan.pieces.push_back({UplinkPiece::Kind::quoted, std::string(take, '+')});
        count -= take;
    }
}

}  // namespace

UplinkPlan plan_uplink(std::string_view bytes, std::size_t max_quoted) {
    UplinkPlan plan;
    if (max_quoted == 0) max_quoted = 1;
    std::size_t start = 0;  // first byte not yet placed
    std::size_t i = 0;
    while (i < bytes.size()) {
        if (bytes[i] != '+') {
            ++i;
            continue;
        }
        std::size_t run_end = i;
        while (run_end < bytes.size() && bytes[run_end] == '+') ++run_end;
        const std::size_t run = run_end - i;
        if (run >= 3) {
            append_data(plan, bytes.substr(start, i - start));
            append_quoted(plan, run, max_quoted);
            start = run_end;
        } else if (run_end == bytes.size()) {
            append_data(plan, bytes.substr(start, i - start));
            plan.held_tail.assign(run, '+');
            start = run_end;
        }
        i = run_end;
    }
    append_data(plan, bytes.substr(start));
    return plan;
}

}  // namespace slmd::modem
