// Owns: the firmware's own view of its proxies, from the read forms (AT#XTCPCLI? and friends) and the test
// forms (AT#XTCPCLI=? and friends): describe_proxies() for operators and tests, and after every bring-up
// (on_serving) closing orphans — proxies the firmware still holds that this driver does not own, typically
// left by an slmd that was killed while connected (the firmware survives a daemon restart; nothing else
// would ever close them, and an orphan makes every open of that proxy answer ERROR). Opens asked for while
// this runs wait (when_reconciled), so an orphan close never hits a proxy we just opened.
#include <algorithm>

#include "modem/answer_parsers.hpp"
#include "modem/slm_commands.hpp"
#include "modem/slm_proxy_driver.hpp"
#include "sys/log.hpp"

namespace slmd::modem {

using namespace std::chrono_literals;

namespace {

struct ReadForm {
    const char* line;
    const char* prefix;
    std::size_t values;  // "#XTCPSVR: <listen>,<peer>,<family>" has three, the others two
};
constexpr ReadForm read_forms[] = {
    {"AT#XTCPCLI?", "#XTCPCLI", 2},
    {"AT#XTCPSVR?", "#XTCPSVR", 3},
    {"AT#XUDPCLI?", "#XUDPCLI", 2},
    {"AT#XUDPSVR?", "#XUDPSVR", 2},
};

constexpr std::size_t describe_limit = 256;

}  // namespace

void SlmProxyDriver::when_reconciled(Step step) {
    if (!reconciling_) {
        step();
        return;
    }
    after_reconcile_.push_back(std::move(step));
}

void SlmProxyDriver::route_stray_lines(const std::vector<std::string>& info, std::string_view expected_prefix) {
    // A read form shares its prefix with that proxy's URCs ("#XTCPSVR: \"ip\",\"connected\""), so a URC that
    // arrives while the read is in flight is delivered as one of its info lines. Hand those back.
    for (const auto& text : info) {
        if (!parse_proxy_read(text, expected_prefix, expected_prefix == "#XTCPSVR" ? 3 : 2)) on_urc(text);
    }
}

void SlmProxyDriver::run_read_forms(std::function<void(std::vector<std::string>)> done) {
    auto lines = std::make_shared<std::vector<std::string>>(std::size(read_forms));
    auto remaining = std::make_shared<std::size_t>(std::size(read_forms));
    for (std::size_t i = 0; i < std::size(read_forms); ++i) {
        const auto& form = read_forms[i];
        submit({form.line, form.prefix, 5s},
               [this, alive = lifetime_.guard(), lines, remaining, i, done](at::CommandResponse response) {
                   if (!*alive) return;
                   const auto& form = read_forms[i];
                   for (const auto& text : response.info) {
                       if (parse_proxy_read(text, form.prefix, form.values)) (*lines)[i] = text;
                   }
                   route_stray_lines(response.info, form.prefix);
                   if (--*remaining == 0) done(std::move(*lines));
               });
    }
}

void SlmProxyDriver::describe_proxies(std::function<void(std::string)> done) {
    if (!serving()) {
        done({});
        return;
    }
    run_read_forms([done = std::move(done)](std::vector<std::string> lines) {
        std::string text;
        for (const auto& line : lines) {
            if (line.empty()) continue;
            if (!text.empty()) text += '\n';
            text += line;
        }
        if (text.size() > describe_limit) text.resize(describe_limit);
        done(std::move(text));
    });
}

void SlmProxyDriver::on_serving() {
    reconciling_ = true;
    run_read_forms([this, alive = lifetime_.guard()](std::vector<std::string> lines) {
        if (!*alive || !reconciling_) return;  // the modem went away again meanwhile
        for (std::size_t i = 0; i < lines.size(); ++i) {
            const auto& form = read_forms[i];
            auto values = parse_proxy_read(lines[i], form.prefix, form.values);
            if (!values || (*values)[0] < 0) continue;
            const std::string_view prefix = form.prefix;
            bool owned = false;
            if (prefix == "#XTCPCLI") owned = connection_ && !connection_->server_peer;
            if (prefix == "#XTCPSVR") owned = listener_.has_value();
            if (prefix == "#XUDPCLI") owned = udp_ && udp_->role == UdpRole::client;
            if (prefix == "#XUDPSVR") owned = udp_ && udp_->role == UdpRole::server;
            if (owned) continue;
            ++stats_.orphans_closed;
            SLMD_INFO("slm: closing a {} proxy the firmware kept from before ({})", form.prefix + 2, lines[i]);
            submit(command::proxy_close(std::string(prefix)), [](at::CommandResponse response) {
                if (!response.ok()) SLMD_WARN("slm: closing an orphaned proxy: {}", response.describe());
            });
        }
        // Opens that waited go behind the orphan closes in the channel's queue.
        reconciling_ = false;
        auto steps = std::exchange(after_reconcile_, {});
        for (auto& step : steps) step();
        read_capabilities();
    });
}

void SlmProxyDriver::read_capabilities() {
    struct TestForm {
        const char* line;
        const char* prefix;
        std::string Capabilities::*field;
    };
    static const TestForm forms[] = {
        {"AT#XTCPCLI=?", "#XTCPCLI", &Capabilities::tcp_client},
        {"AT#XTCPSVR=?", "#XTCPSVR", &Capabilities::tcp_server},
        {"AT#XUDPCLI=?", "#XUDPCLI", &Capabilities::udp_client},
        {"AT#XUDPSVR=?", "#XUDPSVR", &Capabilities::udp_server},
        // The docs print the answer as "#TCPHANGUP: <handle>"; the firmware (and slmsim) prints the X.
        {"AT#XTCPHANGUP=?", "#XTCPHANGUP", &Capabilities::tcp_hangup},
    };
    for (const auto& form : forms) {
        submit({form.line, form.prefix, 5s}, [this, alive = lifetime_.guard(), &form](at::CommandResponse response) {
            if (!*alive) return;
            std::optional<std::vector<std::string>> parameters;
            for (const auto& text : response.info) {
                if (auto parsed = parse_test_form(text, form.prefix); parsed && !parameters) {
                    parameters = parsed;
                    capabilities_.*form.field = text;
                } else {
                    on_urc(text);
                }
            }
            SLMD_DEBUG("slm: {} -> {}", form.line, parameters ? capabilities_.*form.field : response.describe());
            if (!parameters) {
                SLMD_WARN("slm: the firmware does not answer {} ({})", form.line, response.describe());
                return;
            }
            // Cross-check what the profile (from #XSLMVER) claims against what the firmware offers.
            auto offers = [&](std::string_view name) {
                return std::find(parameters->begin(), parameters->end(), "<" + std::string(name) + ">") !=
                       parameters->end();
            };
            const auto& profile = channel_.profile();
            const std::string_view prefix = form.prefix;
            auto check = [&](bool claimed, std::string_view name) {
                if (claimed != offers(name)) {
                    SLMD_WARN("slm: release {} should {}offer <{}> in {} but the firmware answers \"{}\"",
                              profile.version.to_string(), claimed ? "" : "not ", name, form.line,
                              capabilities_.*form.field);
                }
            };
            if (prefix == "#XTCPCLI") check(profile.tls_verify_params, "hostname_verify");
            if (prefix == "#XUDPCLI") {
                check(profile.tls_verify_params, "hostname_verify");
                check(profile.udp_client_dtls_cid, "use_dtls_cid");
            }
            if (prefix == "#XUDPSVR") check(profile.udp_server_takes_sec_tag, "sec_tag");
        });
    }
}

}  // namespace slmd::modem
