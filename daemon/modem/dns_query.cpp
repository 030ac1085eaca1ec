// Owns: DNS through an SLM modem (see dns_query.hpp).
#include "modem/dns_query.hpp"

#include <netdb.h>
#include <sys/socket.h>

#include "modem/answer_parsers.hpp"
#include "modem/at_string.hpp"
#include "sys/log.hpp"

namespace slmd::modem {

using namespace std::chrono_literals;

void resolve_name(DataModeGate& gate, const at::FirmwareProfile& profile, const std::string& name, int family,
                  std::function<void(int status, std::vector<std::string> addresses)> done) {
    // A name goes inside quotes: only what at_string.hpp lets a host name hold. Anything else (control bytes,
    // quotes, spaces) is no name the modem could resolve, and could end the command early.
    const auto quoted = at_quoted(AtStringKind::host, name);
    if (!quoted) {
        SLMD_NOTICE("slm: refused to resolve a name the modem cannot be given: \"{}\"", name);
        done(EAI_NONAME, {});
        return;
    }
    std::string line = "AT#XGETADDRINFO=" + *quoted;
    if (profile.getaddrinfo_takes_family) {
        line += family == AF_INET ? ",1" : family == AF_INET6 ? ",2" : ",0";
    }
    gate.submit({line, "#XGETADDRINFO", 35s}, [family, done = std::move(done)](at::CommandResponse response) {
        std::optional<std::vector<std::string>> parsed;
        if (!response.info.empty()) parsed = parse_getaddrinfo(response.info.front());
        if (!response.ok()) {
            const bool again = response.error || (parsed && !parsed->empty() &&
                                                  parsed->front().find("AGAIN") != std::string::npos);
            done(again ? EAI_AGAIN : EAI_NONAME, {});
            return;
        }
        std::vector<std::string> addresses;
        for (auto& address : parsed.value_or(std::vector<std::string>{})) {
            const bool v6 = address.find(':') != std::string::npos;
            if (family == AF_UNSPEC || (family == AF_INET6) == v6) addresses.push_back(std::move(address));
        }
        const int status =
            addresses.empty() ? EAI_NONAME : 0;  // before the move: argument order is unspecified
        done(status, std::move(addresses));
    });
}

}  // namespace slmd::modem
