// Owns: the TLS/DTLS tail of SLM's client commands (and the Serial Modem's #XSSOCKET) — `,<sec_tag>[,<peer_verify>[,<hostname_verify>]]` for
// #XTCPCLI and `,<sec_tag>[,<use_dtls_cid>[,<peer_verify>[,<hostname_verify>]]]` for #XUDPCLI — per firmware
// release, and what a release cannot do. Pure, so every release's rule is a table row in tls_command_test.
#pragma once

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

// The Serial Modem's TLS socket: the tail of AT#XSSOCKET=<family>,1,0 (`,<sec_tag>[,<peer_verify>]`) and
// whether the host name goes to AT#XSSOCKETOPT (TLS_HOSTNAME: the modem then checks it), or a Linux errno:
// EINVAL (a value out of range, a DTLS option on TLS).
struct SerialModemTls {
    std::string socket_tail;
    bool set_hostname = true;
};
std::variant<SerialModemTls, int> serial_modem_tls(const TlsOptions& tls);

}  // namespace slmd::modem
