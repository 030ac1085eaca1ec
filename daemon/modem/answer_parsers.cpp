// Owns: pure parsers for bring-up and lifecycle answers (see answer_parsers.hpp).
#include "modem/answer_parsers.hpp"

#include <algorithm>
#include <charconv>

namespace slmd::modem {

namespace {

std::optional<int> parse_int(std::string_view text) {
    if (text.empty()) return std::nullopt;
    int value = 0;
    const char* begin = text.data();
    if (*begin == '+') ++begin;
    auto [end, ec] = std::from_chars(begin, text.data() + text.size(), value);
    if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
    return value;
}

bool is_quoted(std::string_view raw) { return raw.size() >= 2 && raw.front() == '"' && raw.back() == '"'; }

}  // namespace

std::optional<std::vector<std::string>> split_parameters(std::string_view line, std::string_view prefix) {
    if (line.substr(0, prefix.size()) != prefix) return std::nullopt;
    line.remove_prefix(prefix.size());
    if (line.empty() || line.front() != ':') return std::nullopt;
    line.remove_prefix(1);
    while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
    std::vector<std::string> items;
    std::string current;
    bool in_quotes = false;
    for (char c : line) {
        if (c == '"') {
            in_quotes = !in_quotes;
            current += c;
        } else if (c == ',' && !in_quotes) {
            items.push_back(std::move(current));
            current.clear();
        } else {
            current += c;
        }
    }
    if (in_quotes) return std::nullopt;
    items.push_back(std::move(current));
    for (auto& item : items) {
        std::string_view view(item);
        while (!view.empty() && view.front() == ' ') view.remove_prefix(1);
        if (is_quoted(view)) view = view.substr(1, view.size() - 2);
        item = std::string(view);
    }
    return items;
}

std::optional<SlmVersion> parse_slmver(std::string_view line) {
    auto items = split_parameters(line, "#XSLMVER");
    if (!items || items->size() < 2 || items->size() > 3 || (*items)[0].empty()) return std::nullopt;
    SlmVersion version{(*items)[0], (*items)[1], items->size() == 3 ? (*items)[2] : std::string()};
    return version;
}

std::optional<SlmVersion> parse_smver(std::string_view line) {
    auto items = split_parameters(line, "#XSMVER");
    if (!items || items->size() < 2 || items->size() > 3 || (*items)[0].empty()) return std::nullopt;
    return SlmVersion{(*items)[0], (*items)[1], items->size() == 3 ? (*items)[2] : std::string()};
}

std::optional<int> parse_leading_int(std::string_view text) {
    int value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end == text.data()) return std::nullopt;
    return value;
}

std::optional<int> parse_opened_socket(const std::vector<std::string>& info) {
    for (const auto& line : info) {
        if (line.starts_with("#XSOCKET: ")) return parse_leading_int(std::string_view(line).substr(10));
        if (line.starts_with("#XSSOCKET: ")) return parse_leading_int(std::string_view(line).substr(11));
    }
    return std::nullopt;
}

std::optional<AcceptedPeer> parse_sm_accept(std::string_view line) {
    const auto items = split_parameters(line, "#XACCEPT");
    if (!items || items->size() != 4 || (*items)[2].empty()) return std::nullopt;
    const auto handle = parse_int((*items)[0]);
    const auto port = parse_int((*items)[3]);
    if (!handle || *handle < 0 || !parse_int((*items)[1]) || !port || *port < 0 || *port > 65535) return std::nullopt;
    return AcceptedPeer{*handle, (*items)[2], *port};
}

bool is_registered(Registration status) {
    return status == Registration::home || status == Registration::roaming;
}

const char* to_string(Registration status) {
    switch (status) {
        case Registration::not_registered: return "not registered";
        case Registration::home: return "registered (home)";
        case Registration::searching: return "searching";
        case Registration::denied: return "registration denied";
        case Registration::unknown: return "unknown";
        case Registration::roaming: return "registered (roaming)";
        case Registration::emergency_only: return "emergency bearer only";
        case Registration::uicc_failure: return "UICC failure";
    }
    return "invalid";
}

namespace {
std::optional<Registration> to_registration(std::string_view text) {
    auto value = parse_int(text);
    if (!value) return std::nullopt;
    switch (*value) {
        case 0: case 1: case 2: case 3: case 4: case 5: case 8: case 90:
            return static_cast<Registration>(*value);
        default:
            return std::nullopt;
    }
}
}  // namespace

std::optional<Registration> parse_cereg_urc(std::string_view line) {
    auto items = split_parameters(line, "+CEREG");
    if (!items || items->empty()) return std::nullopt;
    // A read answer is "<n>,<stat>,..." with an unquoted second field; a URC's second field is a quoted TAC.
    if (items->size() >= 2) {
        auto comma = line.find(',');
        auto second = line.substr(comma + 1);
        while (!second.empty() && second.front() == ' ') second.remove_prefix(1);
        if (second.empty() || second.front() != '"') return std::nullopt;
    }
    return to_registration((*items)[0]);
}

std::optional<Registration> parse_cereg_read(std::string_view line) {
    auto items = split_parameters(line, "+CEREG");
    if (!items || items->size() < 2) return std::nullopt;
    if (!parse_int((*items)[0])) return std::nullopt;
    return to_registration((*items)[1]);
}

std::optional<PdpAddresses> parse_cgpaddr(std::string_view line) {
    auto items = split_parameters(line, "+CGPADDR");
    if (!items || items->empty() || items->size() > 3) return std::nullopt;
    auto cid = parse_int((*items)[0]);
    if (!cid) return std::nullopt;
    PdpAddresses addresses;
    addresses.cid = *cid;
    for (std::size_t i = 1; i < items->size(); ++i) {
        const auto& address = (*items)[i];
        if (address.empty()) continue;
        if (address.find(':') != std::string::npos) {
            addresses.ipv6 = address;
        } else {
            addresses.ipv4 = address;
        }
    }
    return addresses;
}

std::optional<int> parse_cfun(std::string_view line) {
    auto items = split_parameters(line, "+CFUN");
    if (!items || items->size() != 1) return std::nullopt;
    return parse_int((*items)[0]);
}

std::optional<ProxyStatus> parse_tcpcli(std::string_view line) { return parse_proxy_status(line, "#XTCPCLI"); }

std::optional<ProxyStatus> parse_proxy_status(std::string_view line, std::string_view prefix) {
    // v2.8+ spells the #XUDPSVR failure line "#UDPSVR:" (commit e0aaba1c2f); it is the same status.
    if (prefix == "#XUDPSVR" && line.starts_with("#UDPSVR")) return parse_proxy_status(line.substr(1), "UDPSVR");
    // The word is quoted; read forms ("<sock>,<family>") are not statuses.
    const auto comma = line.find(',');
    if (comma == std::string_view::npos || line.substr(comma + 1, 1) != "\"" || line.back() != '"') return std::nullopt;
    auto items = split_parameters(line, prefix);
    if (!items || items->size() != 2 || (*items)[1].empty()) return std::nullopt;
    auto number = parse_int((*items)[0]);
    if (!number || (*items)[0].front() == '"') return std::nullopt;
    return ProxyStatus{*number, (*items)[1]};
}

std::optional<std::string> parse_tcpsvr_peer(std::string_view line) {
    const auto head = std::string_view("#XTCPSVR:");
    if (!line.starts_with(head)) return std::nullopt;
    auto rest = line.substr(head.size());
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    if (rest.empty() || rest.front() != '"') return std::nullopt;  // "<ip>" is quoted, a status number is not
    auto items = split_parameters(line, "#XTCPSVR");
    if (!items || items->size() != 2 || (*items)[1] != "connected" || (*items)[0].empty()) return std::nullopt;
    return (*items)[0];
}

std::optional<std::vector<int>> parse_proxy_read(std::string_view line, std::string_view prefix, std::size_t count) {
    if (line.find('"') != std::string_view::npos) return std::nullopt;
    auto items = split_parameters(line, prefix);
    if (!items || items->size() != count) return std::nullopt;
    std::vector<int> values;
    for (const auto& item : *items) {
        if (item.starts_with('+')) return std::nullopt;
        auto value = parse_int(item);
        if (!value) return std::nullopt;
        values.push_back(*value);
    }
    return values;
}

std::optional<int> parse_send_count(std::string_view line, std::string_view prefix) {
    auto items = split_parameters(line, prefix);
    if (!items || items->size() != 1 || (*items)[0].starts_with('+')) return std::nullopt;
    auto value = parse_int((*items)[0]);
    if (!value || *value < 0) return std::nullopt;
    return value;
}

std::optional<std::vector<std::string>> parse_test_form(std::string_view line, std::string_view prefix) {
    // The published docs print the #XTCPHANGUP test answer as "#TCPHANGUP:"; the firmware prints the X.
    if (prefix == "#XTCPHANGUP" && line.starts_with("#TCPHANGUP")) return parse_test_form(line.substr(1), "TCPHANGUP");
    if (line.substr(0, prefix.size()) != prefix) return std::nullopt;
    auto rest = line.substr(prefix.size());
    if (rest.empty() || rest.front() != ':') return std::nullopt;
    rest.remove_prefix(1);
    std::vector<std::string> items;
    std::string current;
    int depth = 0;
    for (char c : rest) {
        if (c == '(') ++depth;
        if (c == ')') --depth;
        if (depth < 0) return std::nullopt;
        if (c == ',' && depth == 0) {
            items.push_back(std::move(current));
            current.clear();
        } else if (c != ' ' || !current.empty()) {
            current += c;
        }
    }
    if (depth != 0) return std::nullopt;
    items.push_back(std::move(current));
    for (const auto& item : items) {
        if (item.empty()) return std::nullopt;
    }
    // A test answer lists choices "(0,1,2)" or placeholders "<port>"; anything else with the same prefix is a
    // URC that arrived while the test command was pending (e.g. "#XTCPCLI: -104,\"disconnected\"").
    const char first = items.front().front();
    if (first != '(' && first != '<') return std::nullopt;
    return items;
}

std::optional<std::vector<std::string>> parse_getaddrinfo(std::string_view line) {
    auto items = split_parameters(line, "#XGETADDRINFO");
    if (!items || items->empty()) return std::nullopt;
    std::vector<std::string> addresses;
    const std::string& text = items->front();
    std::size_t start = 0;
    while (start < text.size()) {
        auto end = text.find(' ', start);
        if (end == std::string::npos) end = text.size();
        std::string address = text.substr(start, end - start);
        if (!address.empty() && std::find(addresses.begin(), addresses.end(), address) == addresses.end())
            addresses.push_back(std::move(address));
        start = end + 1;
    }
    return addresses;
}

}  // namespace slmd::modem
