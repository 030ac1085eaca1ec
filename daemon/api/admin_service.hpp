// Owns: the operator requests of the API beyond status: STATS (counters and latency gathered from the flow
// manager, the UDP relay, the modem and its driver — read, never kept twice), and the administrators' AT and
// RESET and CREDENTIAL (handed to modem::Modem, which owns the AT policy, the recovery budget and the
// credential store's commands). Turns their results into
// wire replies; who may ask is the API server's decision.
#pragma once

#include <chrono>
#include <functional>

#include "core/tcp_flow_manager.hpp"
#include "core/udp_relay.hpp"
#include "modem/modem_control.hpp"
#include "wire.hpp"

namespace slmd::api {

class AdminService {
  public:
    AdminService(modem::ModemControl& modem, const core::TcpFlowManager& flows, const core::UdpRelay& udp);

    slmsock::wire::StatsReply stats() const;
    void at(const slmsock::wire::AtRequest& request, unsigned uid,
            std::function<void(slmsock::wire::AtReply)> reply);
    slmsock::wire::ResetReply reset(unsigned uid);
    // CREDENTIAL (slmctl cred): handed to modem::Modem::credential, which owns validation and the AT side.
    void credential(const slmsock::wire::CredentialRequest& request, unsigned uid,
                    std::function<void(slmsock::wire::CredentialReply)> reply);

  private:
    modem::ModemControl& modem_;
    const core::TcpFlowManager& flows_;
    const core::UdpRelay& udp_;
    std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
};

}  // namespace slmd::api
