// Owns: the TLS/DTLS tail of SLM's client commands — `,<sec_tag>[,<peer_verify>[,<hostname_verify>]]` for
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

}  // namespace slmd::modem
