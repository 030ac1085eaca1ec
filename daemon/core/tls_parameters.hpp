// Owns: the translation of an API request's TLS block (wire::TlsParameters) into what a modem driver takes
// (modem::TlsOptions plus the host name the modem connects to and verifies). Shared by TCP flows and the UDP relay.
#pragma once

#include <optional>
#include <string>

#include "modem/modem_driver.hpp"
#include "wire.hpp"

namespace slmd::core {

inline modem::TlsOptions to_tls_options(const slmsock::wire::TlsParameters& p) {
    modem::TlsOptions o;
    o.sec_tag = p.sec_tag;
    if (p.peer_verify != slmsock::wire::tls_default) o.peer_verify = p.peer_verify;
    if (p.hostname_verify != slmsock::wire::tls_default) o.hostname_verify = p.hostname_verify;
    if (p.dtls_cid != slmsock::wire::tls_default) o.dtls_cid = p.dtls_cid;
    return o;
}

// The endpoint the driver gets: with TLS and a host name, the modem connects to (and verifies) the name;
// otherwise the numeric address.
inline modem::TcpEndpoint modem_endpoint(const std::string& numeric_host, std::uint16_t port, bool ipv6,
                                         const std::optional<slmsock::wire::TlsParameters>& tls) {
    modem::TcpEndpoint e{numeric_host, port, ipv6, std::nullopt};
    if (tls) {
        e.tls = to_tls_options(*tls);
        if (!tls->hostname.empty()) e.host = tls->hostname;
    }
    return e;
}

}  // namespace slmd::core
