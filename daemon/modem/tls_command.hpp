// Owns: the TLS/DTLS tail of SLM's proxy client commands — `,<sec_tag>[,<peer_verify>[,<hostname_verify>]]` for
// #XTCPCLI and `,<sec_tag>[,<use_dtls_cid>[,<peer_verify>[,<hostname_verify>]]]` for #XUDPCLI — per firmware
// release, and what a release cannot do; and the modem's own TLS sockets (#XSSOCKET and the name for
// #XSSOCKETOPT, alike on SLM's generic sockets and the Serial Modem). Pure, so every rule is a table row in
// tls_command_test.
#pragma once

#include <optional>
#include <string>
#include <variant>

#include "at/firmware_profile.hpp"
#include "modem/modem_driver.hpp"

namespace slmd::modem {

enum class TlsTransport { tcp, udp };

// The parameters to append after `<url>,<port>`, or a Linux errno: EINVAL (a value out of range),
// EOPNOTSUPP (the release has no such parameter and its fixed behaviour differs from what was asked, e.g. a
// hostname check before v2.6, where the firmware never checks the name).
std::variant<std::string, int> tls_parameters(const TlsOptions& tls, TlsTransport transport,
                                              const at::FirmwareProfile& profile);

// A TLS (tcp) or DTLS (udp) socket of the modem's own, for a connection to `host`: the tail of
// AT#XSSOCKET=<family>,<type>,0 (`,<sec_tag>[,<peer_verify>]`), the quoted name for #XSSOCKETOPT TLS_HOSTNAME when
// the modem is to check it (the firmware checks a name only once it is set: not for hostname_verify 0, nor for a
// numeric address), and the value for #XSSOCKETOPT DTLS_CID when the app chose one; or a Linux errno: EINVAL (a
// value out of range, a DTLS option on TLS, a name that cannot be quoted).
struct TlsSocket {
    std::string socket_tail;
    std::optional<std::string> quoted_hostname;
    std::optional<int> dtls_cid;
};
std::variant<TlsSocket, int> tls_socket(const TlsOptions& tls, const std::string& host,
                                        TlsTransport transport = TlsTransport::tcp);

}  // namespace slmd::modem
