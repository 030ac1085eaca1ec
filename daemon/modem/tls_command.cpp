// Owns: the TLS/DTLS parameters of #XTCPCLI / #XUDPCLI and of #XSSOCKET (see tls_command.hpp).
#include "modem/tls_command.hpp"

#include <arpa/inet.h>

#include <cerrno>
#include <vector>

#include "modem/at_string.hpp"

namespace slmd::modem {

namespace {

// What releases without a parameter do anyway (docs/tls.md, from the firmware source): the TCP client
// always requires a verified peer and never checks the host name; the DTLS client leaves the modem's
// default, which is "required" too.
constexpr int fixed_peer_verify = 2;
constexpr int fixed_hostname_verify = 0;
// The v2.6+ defaults, written out when a later parameter forces an earlier one to be present.
constexpr int default_peer_verify = 2;
constexpr int default_hostname_verify = 1;
constexpr int default_dtls_cid = 0;

bool in_range(const std::optional<int>& v, int max) { return !v || (*v >= 0 && *v <= max); }

bool is_numeric_address(const std::string& host) {
    in6_addr v6{};
    in_addr v4{};
    return inet_pton(AF_INET, host.c_str(), &v4) == 1 || inet_pton(AF_INET6, host.c_str(), &v6) == 1;
}

}  // namespace

std::variant<std::string, int> tls_parameters(const TlsOptions& tls, TlsTransport transport,
                                              const at::FirmwareProfile& profile) {
    if (tls.sec_tag < 0) return EINVAL;
    if (!in_range(tls.peer_verify, 2) || !in_range(tls.hostname_verify, 1) || !in_range(tls.dtls_cid, 2))
        return EINVAL;
    if (transport == TlsTransport::tcp && tls.dtls_cid) return EINVAL;  // a DTLS option on TCP

    // Positional parameters: [cid,] peer_verify, hostname_verify. Trailing unset ones are left out; an unset
    // one before a set one is written with its default.
    std::vector<std::optional<int>> tail;
    std::vector<int> defaults;
    const bool has_cid = transport == TlsTransport::udp && profile.udp_client_dtls_cid;
    if (transport == TlsTransport::udp && !has_cid && tls.dtls_cid.value_or(0) != 0) return EOPNOTSUPP;
    if (has_cid) {
        tail.push_back(tls.dtls_cid);
        defaults.push_back(default_dtls_cid);
    }
    if (profile.tls_verify_params) {
        tail.push_back(tls.peer_verify);
        defaults.push_back(default_peer_verify);
        tail.push_back(tls.hostname_verify);
        defaults.push_back(default_hostname_verify);
    } else {
        // The release does one fixed thing; asking for it is fine, asking for anything else is not.
        if (tls.peer_verify.value_or(fixed_peer_verify) != fixed_peer_verify) return EOPNOTSUPP;
        if (tls.hostname_verify.value_or(fixed_hostname_verify) != fixed_hostname_verify) return EOPNOTSUPP;
    }
    while (!tail.empty() && !tail.back()) {
        tail.pop_back();
        defaults.pop_back();
    }
    std::string out = "," + std::to_string(tls.sec_tag);
    for (std::size_t i = 0; i < tail.size(); ++i) out += "," + std::to_string(tail[i].value_or(defaults[i]));
    return out;
}

std::variant<TlsSocket, int> tls_socket(const TlsOptions& tls, const std::string& host, TlsTransport transport) {
    if (tls.sec_tag < 0) return EINVAL;
    if (!in_range(tls.peer_verify, 2) || !in_range(tls.hostname_verify, 1) || !in_range(tls.dtls_cid, 2))
        return EINVAL;
    if (transport == TlsTransport::tcp && tls.dtls_cid) return EINVAL;  // a DTLS option on a TLS socket
    TlsSocket out;
    out.dtls_cid = tls.dtls_cid;
    out.socket_tail = "," + std::to_string(tls.sec_tag);
    if (tls.peer_verify) out.socket_tail += "," + std::to_string(*tls.peer_verify);
    if (tls.hostname_verify.value_or(default_hostname_verify) == 1 && !is_numeric_address(host)) {
        out.quoted_hostname = at_quoted(AtStringKind::host, host);
        if (!out.quoted_hostname) return EINVAL;
    }
    return out;
}

}  // namespace slmd::modem
