// Owns: which connections get TLS (or DTLS) from the modem without the program asking — slmd.conf's `tls`
// and `dtls` mappings (docs/tls.md) — and the memory of which host name a program resolved to which address,
// so a program that connects to an address it looked up by name gets the modem to verify that name.
// Pure matching and parsing; slmd's API layer applies it to CONNECT and UDP_ASSOCIATE requests that carry no
// TLS block of their own.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "wire.hpp"

namespace slmd::net {

// One mapping: `HOST:PORT sec-tag=N [peer-verify=0|1|2] [hostname-verify=0|1] [hostname=NAME] [dtls-cid=0|1|2]`.
// HOST is a name, an IPv4 address, a bracketed IPv6 address, or `*` (any destination on that port).
struct TlsRule {
    bool datagram = false;           // a `dtls` mapping (UDP); else `tls` (TCP)
    std::string host;                // lower-case name or numeric text; empty for `*`
    std::optional<slmsock::wire::Address> address;  // when host is numeric
    std::uint16_t port = 0;
    slmsock::wire::TlsParameters parameters;  // hostname: from `hostname=`, else empty
    bool operator==(const TlsRule&) const = default;
};

// Parses one mapping's value; on failure returns nullopt and sets `problem` to a one-line reason.
std::optional<TlsRule> parse_tls_rule(std::string_view text, bool datagram, std::string& problem);

// `tls-server = PORT sec-tag=N`: the modem's TCP server on PORT runs TLS with that sec_tag (native-TLS
// firmware only). Returns {port, sec_tag}, or nullopt with `problem` set.
std::optional<std::pair<std::uint16_t, std::int32_t>> parse_tls_server(std::string_view text, std::string& problem);

class TlsPolicy {
public:
    static constexpr std::size_t max_remembered = 1024;
    static constexpr std::chrono::hours remember_for{1};  // the firmware's DNS answer carries no TTL

    explicit TlsPolicy(std::vector<TlsRule> rules = {});

    bool empty() const { return rules_.empty(); }
    // The modem resolved `name` to these addresses for a program.
    void remember(std::string_view name, const std::vector<slmsock::wire::Address>& addresses,
                  std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now());
    // The TLS block for a connection to address:port, when a mapping matches: a rule naming the address, the
    // name the address was resolved from, or `*`. The host name the modem verifies is the rule's `hostname=`,
    // else the name the rule or the program's lookup gave, else none (the numeric address is used).
    std::optional<slmsock::wire::TlsParameters> lookup(
        bool datagram, const slmsock::wire::Address& address, std::uint16_t port,
        std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now()) const;
    // The name `address` was last resolved from, if remembered and fresh.
    std::optional<std::string> name_of(const slmsock::wire::Address& address,
                                       std::chrono::steady_clock::time_point now) const;

private:
    struct Remembered {
        std::string name;
        std::chrono::steady_clock::time_point until;
    };
    std::vector<TlsRule> rules_;
    std::map<std::array<std::uint8_t, 17>, Remembered> names_;  // family byte + address bytes
};

}  // namespace slmd::net
