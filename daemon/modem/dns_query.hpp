// Owns: DNS through an SLM modem (#XGETADDRINFO), for every SLM driver: the name checked before it goes
// inside quotes, the command per release (v2.8+ takes the family), the answer's addresses filtered by family,
// and the EAI code of a failure.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "at/firmware_profile.hpp"
#include "modem/data_mode_gate.hpp"

namespace slmd::modem {

// `done(status, addresses)`: status 0 or a negative EAI_* value; addresses as numeric text. The caller checks
// that the modem serves first.
void resolve_name(DataModeGate& gate, const at::FirmwareProfile& profile, const std::string& name, int family,
                  std::function<void(int status, std::vector<std::string> addresses)> done);

}  // namespace slmd::modem
