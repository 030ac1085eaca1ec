// Owns: slmd.conf's tls/dtls mappings and the resolved-name memory (see tls_policy.hpp).
#include "net/tls_policy.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>

namespace slmd::net {

namespace wire = slmsock::wire;

namespace {

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

bool parse_int(std::string_view text, long long min, long long max, long long& out) {
    if (text.empty()) return false;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    return ec == std::errc() && end == text.data() + text.size() && out >= min && out <= max;
}

std::optional<wire::Address> numeric(const std::string& text) {
    wire::Address a;
    if (inet_pton(AF_INET, text.c_str(), a.bytes.data()) == 1) {
        a.family = wire::Family::ipv4;
        return a;
    }
    if (inet_pton(AF_INET6, text.c_str(), a.bytes.data()) == 1) {
        a.family = wire::Family::ipv6;
        return a;
    }
    return std::nullopt;
}

// A DNS name as the firmware's url takes it: letters, digits, '-', '.', '_' (no quotes), ≤ 127 characters.
bool valid_name(std::string_view name) {
    if (name.empty() || name.size() > 127) return false;
    return std::all_of(name.begin(), name.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_';
    });
}

std::array<std::uint8_t, 17> key_of(const wire::Address& a) {
    std::array<std::uint8_t, 17> k{};
    k[0] = static_cast<std::uint8_t>(a.family);
    const std::size_t n = a.family == wire::Family::ipv4 ? 4 : 16;
    std::copy_n(a.bytes.begin(), n, k.begin() + 1);
    return k;
}

}  // namespace

std::optional<TlsRule> parse_tls_rule(std::string_view text, bool datagram, std::string& problem) {
    std::vector<std::string_view> words;
    for (std::size_t pos = 0; pos < text.size();) {
        const auto start = text.find_first_not_of(" \t", pos);
        if (start == std::string_view::npos) break;
        const auto end = std::min(text.find_first_of(" \t", start), text.size());
        words.push_back(text.substr(start, end - start));
        pos = end;
    }
    if (words.empty()) {
        problem = "expected HOST:PORT sec-tag=N";
        return std::nullopt;
    }
    TlsRule rule;
    rule.datagram = datagram;
    // HOST:PORT, [IPv6]:PORT or *:PORT
    const std::string_view destination = words[0];
    const auto colon = destination.rfind(':');
    if (colon == std::string_view::npos || colon == 0) {
        problem = "\"" + std::string(destination) + "\" is not HOST:PORT";
        return std::nullopt;
    }
    std::string host(destination.substr(0, colon));
    long long port = 0;
    if (!parse_int(destination.substr(colon + 1), 1, 65535, port)) {
        problem = "\"" + std::string(destination.substr(colon + 1)) + "\" is not a port (1-65535)";
        return std::nullopt;
    }
    rule.port = static_cast<std::uint16_t>(port);
    if (host.front() == '[') {
        if (host.size() < 3 || host.back() != ']') {
            problem = "\"" + host + "\" is not a bracketed IPv6 address";
            return std::nullopt;
        }
        host = host.substr(1, host.size() - 2);
        rule.address = numeric(host);
        if (!rule.address || rule.address->family != wire::Family::ipv6) {
            problem = "\"" + host + "\" is not an IPv6 address";
            return std::nullopt;
        }
        rule.host = host;
    } else if (host == "*") {
        rule.host.clear();
    } else if (auto address = numeric(host)) {
        if (address->family == wire::Family::ipv6) {
            problem = "an IPv6 address needs brackets: [" + host + "]:" + std::to_string(port);
            return std::nullopt;
        }
        rule.address = address;
        rule.host = host;
    } else if (valid_name(host)) {
        rule.host = lower(host);
    } else {
        problem = "\"" + host + "\" is not a host name, an address or *";
        return std::nullopt;
    }
    bool have_sec_tag = false;
    for (std::size_t i = 1; i < words.size(); ++i) {
        const auto eq = words[i].find('=');
        const auto name = words[i].substr(0, eq);
        const auto value = eq == std::string_view::npos ? std::string_view() : words[i].substr(eq + 1);
        long long n = 0;
        auto choice = [&](long long max, std::uint8_t& out) {
            if (!parse_int(value, 0, max, n)) {
                problem = std::string(name) + " must be 0-" + std::to_string(max);
                return false;
            }
            out = static_cast<std::uint8_t>(n);
            return true;
        };
        if (eq == std::string_view::npos) {
            problem = "\"" + std::string(words[i]) + "\" is not NAME=VALUE";
            return std::nullopt;
        } else if (name == "sec-tag") {
            if (!parse_int(value, 0, wire::max_sec_tag, n)) {
                problem = "sec-tag must be 0-" + std::to_string(wire::max_sec_tag);
                return std::nullopt;
            }
            rule.parameters.sec_tag = static_cast<std::int32_t>(n);
            have_sec_tag = true;
        } else if (name == "peer-verify") {
            if (!choice(2, rule.parameters.peer_verify)) return std::nullopt;
        } else if (name == "hostname-verify") {
            if (!choice(1, rule.parameters.hostname_verify)) return std::nullopt;
        } else if (name == "dtls-cid") {
            if (!datagram) {
                problem = "dtls-cid is for dtls mappings";
                return std::nullopt;
            }
            if (!choice(2, rule.parameters.dtls_cid)) return std::nullopt;
        } else if (name == "hostname") {
            if (!valid_name(value)) {
                problem = "hostname \"" + std::string(value) + "\" is not a host name";
                return std::nullopt;
            }
            rule.parameters.hostname = lower(value);
        } else {
            problem = "unknown option \"" + std::string(name) + "\" (sec-tag, peer-verify, hostname-verify, " +
                      "hostname" + (datagram ? ", dtls-cid)" : ")");
            return std::nullopt;
        }
    }
    if (!have_sec_tag) {
        problem = "sec-tag=N is required";
        return std::nullopt;
    }
    return rule;
}

std::optional<std::pair<std::uint16_t, std::int32_t>> parse_tls_server(std::string_view text, std::string& problem) {
    // The same grammar as a mapping, with a bare port for HOST:PORT.
    const auto start = text.find_first_not_of(" \t");
    if (start == std::string_view::npos) {
        problem = "expected PORT sec-tag=N";
        return std::nullopt;
    }
    const auto rule = parse_tls_rule("*:" + std::string(text.substr(start)), false, problem);
    if (!rule) return std::nullopt;
    if (rule->parameters.peer_verify != wire::tls_default || rule->parameters.hostname_verify != wire::tls_default ||
        !rule->parameters.hostname.empty()) {
        problem = "a TLS server takes only sec-tag=N";
        return std::nullopt;
    }
    return std::pair{rule->port, rule->parameters.sec_tag};
}

TlsPolicy::TlsPolicy(std::vector<TlsRule> rules) : rules_(std::move(rules)) {}

void TlsPolicy::remember(std::string_view name, const std::vector<wire::Address>& addresses,
                         std::chrono::steady_clock::time_point now) {
    if (rules_.empty() || !valid_name(name)) return;  // nothing would ever ask
    for (const auto& address : addresses) {
        if (names_.size() >= max_remembered && !names_.count(key_of(address))) {
            // Full: drop what has expired, else the entry closest to expiry.
            std::erase_if(names_, [now](const auto& entry) { return entry.second.until <= now; });
            if (names_.size() >= max_remembered) {
                auto oldest = std::min_element(names_.begin(), names_.end(), [](const auto& a, const auto& b) {
                    return a.second.until < b.second.until;
                });
                names_.erase(oldest);
            }
        }
        names_[key_of(address)] = Remembered{lower(name), now + remember_for};
    }
}

std::optional<std::string> TlsPolicy::name_of(const wire::Address& address,
                                              std::chrono::steady_clock::time_point now) const {
    auto it = names_.find(key_of(address));
    if (it == names_.end() || it->second.until <= now) return std::nullopt;
    return it->second.name;
}

std::optional<wire::TlsParameters> TlsPolicy::lookup(bool datagram, const wire::Address& address, std::uint16_t port,
                                                     std::chrono::steady_clock::time_point now) const {
    if (rules_.empty()) return std::nullopt;
    const auto name = name_of(address, now);
    // The most specific rule wins: the address itself, then the name it came from, then `*`.
    const TlsRule* by_address = nullptr;
    const TlsRule* by_name = nullptr;
    const TlsRule* any = nullptr;
    for (const auto& rule : rules_) {
        if (rule.datagram != datagram || rule.port != port) continue;
        if (rule.address && *rule.address == address) {
            if (!by_address) by_address = &rule;
        } else if (!rule.address && !rule.host.empty() && name && rule.host == *name) {
            if (!by_name) by_name = &rule;
        } else if (rule.host.empty()) {
            if (!any) any = &rule;
        }
    }
    const TlsRule* rule = by_address ? by_address : by_name ? by_name : any;
    if (!rule) return std::nullopt;
    auto parameters = rule->parameters;
    if (parameters.hostname.empty()) {
        if (rule == by_name) parameters.hostname = rule->host;
        else if (name) parameters.hostname = *name;
    }
    return parameters;
}

}  // namespace slmd::net
