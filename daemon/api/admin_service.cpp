// Owns: STATS, AT, RESET and CREDENTIAL of the API (see admin_service.hpp).
#include "api/admin_service.hpp"

#include <cerrno>

namespace slmd::api {

namespace wire = slmsock::wire;

namespace {

// slmd's default for an administrator's command without a timeout: longer than any of its own commands'
// (the network reads an operator runs, like AT+CESQ or AT%XMONITOR, answer within a few seconds).
constexpr std::chrono::milliseconds default_at_timeout{10000};

// One figure per direction, TCP and UDP together: histograms add up bucket by bucket, percentiles do not.
wire::LatencySummary summary(const core::LatencyHistogram& tcp, const core::LatencyHistogram& udp) {
    core::LatencyHistogram both = tcp;
    both.merge(udp);
    return {both.percentile_us(50), both.percentile_us(99), both.samples()};
}

wire::AtOutcome outcome_of(modem::AdminOutcome outcome) {
    switch (outcome) {
        case modem::AdminOutcome::ok:
            return wire::AtOutcome::ok;
        case modem::AdminOutcome::error:
            return wire::AtOutcome::error;
        case modem::AdminOutcome::cme_error:
            return wire::AtOutcome::cme_error;
        case modem::AdminOutcome::cms_error:
            return wire::AtOutcome::cms_error;
    }
    return wire::AtOutcome::error;
}

}  // namespace

AdminService::AdminService(modem::ModemControl& modem, const core::TcpFlowManager& flows, const core::UdpRelay& udp)
    : modem_(modem), flows_(flows), udp_(udp) {}

wire::StatsReply AdminService::stats() const {
    wire::StatsReply out;
    out.uptime_s = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_)
            .count());
    const auto& flows = flows_.counters();
    const auto& udp = udp_.counters();
    const auto modem = modem_.counters();
    out.tcp_bytes_up = flows.bytes_up;
    out.tcp_bytes_down = flows.bytes_down;
    out.udp_bytes_up = udp.bytes_up;
    out.udp_bytes_down = udp.bytes_down;
    out.udp_datagrams_up = udp.datagrams_up;
    out.udp_datagrams_down = udp.datagrams_down;
    out.flows_opened = flows.opened;
    out.flows_failed = flows.failed;
    out.tcp_dropped_app_gone = flows.dropped_down_app_gone;
    out.tcp_dropped_peer_gone = flows.dropped_up_peer_gone;
    out.tcp_refused_busy = flows.refused_busy;
    out.udp_dropped_not_last_peer = udp.dropped_not_last_peer;
    out.udp_dropped_too_big = udp.dropped_too_big;
    out.udp_dropped_busy = udp.dropped_busy;
    out.udp_dropped_no_proxy = udp.dropped_no_proxy;
    out.udp_dropped_queue_full = udp.dropped_queue_full;
    out.udp_dropped_send_failed = udp.dropped_send_failed;
    out.udp_dropped_app_gone = udp.dropped_app_gone;
    out.udp_suspensions = modem.udp_suspensions;
    out.udp_refused_tcp_busy = modem.udp_refused_tcp_busy;
    out.data_mode_sessions = modem.data_mode_sessions;
    out.at_commands = modem.at_commands;
    out.at_errors = modem.at_errors;
    out.at_timeouts = modem.at_timeouts;
    out.modem_resets = modem.modem_resets;
    out.admin_resets = modem.admin_resets;
    out.registration_losses = modem.registration_losses;
    out.recoveries = modem.recoveries;
    out.recovery_backoffs = modem.recovery_backoffs;
    out.downlink = summary(flows_.downlink_latency(), udp_.downlink_latency());
    out.uplink = summary(flows_.uplink_latency(), udp_.uplink_latency());
    return out;
}

void AdminService::at(const wire::AtRequest& request, unsigned uid,
                      std::function<void(wire::AtReply)> reply) {
    const auto timeout =
        request.timeout_ms == 0 ? default_at_timeout : std::chrono::milliseconds(request.timeout_ms);
    modem_.admin_command(request.command, request.force, uid, timeout,
                         [reply = std::move(reply)](modem::AdminCommandResult result) {
                             wire::AtReply answer;
                             answer.status = -result.error;
                             if (result.error == 0) {
                                 answer.outcome = outcome_of(result.outcome);
                                 answer.code = result.code;
                                 for (auto& line : result.lines) {
                                     if (answer.lines.size() == wire::max_at_lines) break;
                                     answer.lines.push_back(std::move(line));
                                 }
                             } else {
                                 // The reason travels as the only line, so slmctl can say what to do.
                                 answer.lines.push_back(result.message);
                             }
                             reply(std::move(answer));
                         });
}

wire::ResetReply AdminService::reset(unsigned uid) {
    return {-modem_.admin_reset(uid)};
}

void AdminService::credential(const wire::CredentialRequest& request, unsigned uid,
                              std::function<void(wire::CredentialReply)> reply) {
    modem::CredentialCommand command;
    switch (request.op) {
        case wire::CredentialOp::write: command.operation = modem::CredentialOperation::write; break;
        case wire::CredentialOp::list: command.operation = modem::CredentialOperation::list; break;
        case wire::CredentialOp::remove: command.operation = modem::CredentialOperation::remove; break;
    }
    command.sec_tag = request.sec_tag;  // any_sec_tag (-1) = every sec_tag, as in the command
    command.type = request.type == wire::any_credential_type ? -1 : request.type;
    command.content = request.content;
    command.force = request.force;
    modem_.credential(std::move(command), uid, [reply = std::move(reply)](modem::CredentialResult result) {
        wire::CredentialReply answer;
        answer.status = -result.error;
        answer.message = std::move(result.message);
        for (auto& entry : result.entries) {
            if (answer.entries.size() == wire::max_credential_entries) break;
            answer.entries.push_back({static_cast<std::int32_t>(entry.sec_tag),
                                      static_cast<wire::CredentialType>(entry.type), std::move(entry.sha256)});
        }
        reply(std::move(answer));
    });
}

}  // namespace slmd::api
