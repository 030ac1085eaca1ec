// Owns: slmctl, the operator's command line for slmd: `status` (the modem as slmd sees it), `sockets` (the
// firmware's proxies, who holds them, bytes each way, and the firmware's own read-command view), `stats`
// (bytes, drops by reason, AT errors, resets, recoveries, latency percentiles), and for administrators
// `at [--force] [--timeout-ms N] "CMD"` (one AT command through slmd's own channel) and `reset` (graceful
// modem reset within the recovery budget) and `cred write|list|delete` (the modem's TLS credential store,
// docs/credentials.md), each readable or as JSON (--json). It finds slmd like every client
// ($SLMSOCK_SOCKET, or --socket) and speaks only through libslmsock, so what it shows is exactly what apps can
// see. Exit status: 0 done (and OK from the modem), 1 the modem answered ERROR/+CME/+CMS, 2 usage, 69 slmd or
// the modem unavailable, 75 try again later (reset budget spent, timeout), 77 not allowed (EACCES/EPERM).
#include <boost/json/src.hpp>
#include <boost/program_options.hpp>

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "slmsock.h"

namespace po = boost::program_options;
namespace json = boost::json;

namespace {

constexpr int exit_usage = 2;
constexpr int exit_unavailable = 69;  // EX_UNAVAILABLE: slmd is not running or refused us
constexpr int exit_modem_error = 1;   // the modem answered ERROR, +CME ERROR or +CMS ERROR
constexpr int exit_tempfail = 75;     // EX_TEMPFAIL: try again later
constexpr int exit_noperm = 77;       // EX_NOPERM

int report_failure(const char* what, int error) {
    std::cerr << "slmctl: " << what << ": " << slmsock_strerror(error);
    if (error == -ENETDOWN) std::cerr << " (is slmd running? socket " << slmsock_socket_path() << ")";
    if (error == -EACCES) std::cerr << " (slmd allows root, its own user and the group slm)";
    std::cerr << '\n';
    return exit_unavailable;
}

const char* errno_name(int error) {
    switch (-error) {
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case EINVAL: return "EINVAL";
    case ENETDOWN: return "ENETDOWN";
    case ETIMEDOUT: return "ETIMEDOUT";
    case ECONNRESET: return "ECONNRESET";
    case EAGAIN: return "EAGAIN";
    case EBUSY: return "EBUSY";
    case ENOENT: return "ENOENT";
    case ENOSPC: return "ENOSPC";
    case EMSGSIZE: return "EMSGSIZE";
    default: return "EIO";
    }
}

// What an operator can do about a failed administrator request, and the exit status that says it.
int report_admin_failure(const char* what, int error, const std::string& reason, bool as_json) {
    std::string advice;
    int status = exit_unavailable;
    switch (-error) {
    case EACCES:
        advice = "administrators only: run it as root, or join slmd's api-group (default slm) and admin-group "
                 "(default slmadmin; slmd.conf(5)) and log in again";
        status = exit_noperm;
        break;
    case EPERM:
        advice = "it would break slmd's own state; add --force to send it anyway (slmd logs it with your uid; "
                 "`slmctl reset` brings slmd and the modem back in step)";
        status = exit_noperm;
        break;
    case EAGAIN:
        advice = "slmd's recovery budget (recovery-max within recovery-window-ms) is spent: another reset now risks "
                 "the nRF91's 30-minute reset-loop lock-out; try again later";
        status = exit_tempfail;
        break;
    case ETIMEDOUT: status = exit_tempfail; break;
    case EINVAL:
    case EMSGSIZE: status = exit_usage; break;
    case ENOENT:
    case ENOSPC:
    case EIO: status = exit_modem_error; break;
    case ENETDOWN:
        if (reason.empty()) advice = std::string("is slmd running? socket ") + slmsock_socket_path();
        break;
    case ECONNRESET:
    case EBUSY: status = exit_tempfail; break;
    default: break;
    }
    if (as_json) {
        json::object out{{"error", errno_name(error)}, {"message", reason.empty() ? slmsock_strerror(error) : reason}};
        if (!advice.empty()) out["advice"] = advice;
        std::cout << json::serialize(out) << '\n';
    }
    std::cerr << "slmctl: " << what << ": " << slmsock_strerror(error);
    if (!reason.empty()) std::cerr << ": " << reason;
    if (!advice.empty()) std::cerr << " (" << advice << ")";
    std::cerr << '\n';
    return status;
}

int show_status(bool as_json) {
    struct slmsock_status status {};
    if (const int rc = slmsock_status(&status); rc < 0) return report_failure("status", rc);
    if (as_json) {
        json::object out{{"modem_state", status.modem_state}, {"registration", status.registration},
                         {"release", status.release},         {"ipv4", status.ipv4},
                         {"ipv6", status.ipv6},               {"active_flows", status.active_flows},
                         {"queued_flows", status.queued_flows}};
        std::cout << json::serialize(out) << '\n';
        return 0;
    }
    std::cout << "modem:         " << status.modem_state << '\n'
              << "registration:  " << status.registration << '\n'
              << "firmware:      SLM " << (status.release[0] ? status.release : "(unknown)") << '\n'
              << "IPv4 address:  " << (status.ipv4[0] ? status.ipv4 : "-") << '\n'
              << "IPv6 address:  " << (status.ipv6[0] ? status.ipv6 : "-") << '\n'
              << "flows:         " << status.active_flows << " active, " << status.queued_flows << " waiting\n";
    return 0;
}

const char* role_name(enum slmsock_proxy_role role) {
    switch (role) {
    case SLMSOCK_PROXY_CLIENT: return "client";
    case SLMSOCK_PROXY_SERVER: return "server";
    default: return "idle";
    }
}

int show_sockets(bool as_json) {
    struct slmsock_proxies proxies {};
    if (const int rc = slmsock_proxies(&proxies); rc < 0) return report_failure("sockets", rc);
    if (as_json) {
        json::array rows;
        for (std::size_t i = 0; i < proxies.count; ++i) {
            const auto& p = proxies.proxy[i];
            rows.push_back(json::object{{"transport", p.type == SOCK_DGRAM ? "udp" : "tcp"},
                                        {"role", role_name(p.role)},
                                        {"port", p.port},
                                        {"peer", p.peer},
                                        {"owner_pid", p.owner_pid},
                                        {"bytes_up", p.bytes_up},
                                        {"bytes_down", p.bytes_down}});
        }
        json::object out{{"proxies", rows}, {"waiting", proxies.waiting}, {"modem_view", proxies.modem_view}};
        std::cout << json::serialize(out) << '\n';
        return 0;
    }
    std::printf("%-5s %-7s %6s  %-40s %8s %12s %12s\n", "PROXY", "ROLE", "PORT", "PEER", "PID", "BYTES UP",
                "BYTES DOWN");
    for (std::size_t i = 0; i < proxies.count; ++i) {
        const auto& p = proxies.proxy[i];
        std::printf("%-5s %-7s %6u  %-40s %8u %12llu %12llu\n", p.type == SOCK_DGRAM ? "udp" : "tcp",
                    role_name(p.role), unsigned{p.port}, p.peer[0] ? p.peer : "-", p.owner_pid,
                    static_cast<unsigned long long>(p.bytes_up), static_cast<unsigned long long>(p.bytes_down));
    }
    std::printf("waiting for a proxy: %u\n", proxies.waiting);
    if (proxies.modem_view[0]) std::printf("firmware's view:\n%s\n", proxies.modem_view);
    return 0;
}

int show_stats(bool as_json) {
    struct slmsock_stats s {};
    if (const int rc = slmsock_stats(&s); rc < 0) return report_failure("stats", rc);
    if (as_json) {
        // Field names are a contract: tests/bench reads "latency" and the bytes_* totals.
        json::object out{
            {"uptime_s", s.uptime_s},
            {"bytes_uplink", s.tcp_bytes_up + s.udp_bytes_up},
            {"bytes_downlink", s.tcp_bytes_down + s.udp_bytes_down},
            {"tcp", json::object{{"bytes_uplink", s.tcp_bytes_up},
                                 {"bytes_downlink", s.tcp_bytes_down},
                                 {"flows_opened", s.flows_opened},
                                 {"flows_failed", s.flows_failed}}},
            {"udp", json::object{{"bytes_uplink", s.udp_bytes_up},
                                 {"bytes_downlink", s.udp_bytes_down},
                                 {"datagrams_uplink", s.udp_datagrams_up},
                                 {"datagrams_downlink", s.udp_datagrams_down}}},
            {"drops", json::object{{"tcp_app_gone", s.tcp_dropped_app_gone},
                                   {"tcp_peer_gone", s.tcp_dropped_peer_gone},
                                   {"tcp_refused_busy", s.tcp_refused_busy},
                                   {"udp_not_last_peer", s.udp_dropped_not_last_peer},
                                   {"udp_too_big", s.udp_dropped_too_big},
                                   {"udp_busy", s.udp_dropped_busy},
                                   {"udp_no_proxy", s.udp_dropped_no_proxy},
                                   {"udp_queue_full", s.udp_dropped_queue_full},
                                   {"udp_send_failed", s.udp_dropped_send_failed},
                                   {"udp_app_gone", s.udp_dropped_app_gone},
                                   {"udp_refused_tcp_busy", s.udp_refused_tcp_busy}}},
            {"udp_suspensions", s.udp_suspensions},
            {"data_mode_sessions", s.data_mode_sessions},
            {"at_commands", s.at_commands},
            {"at_errors", s.at_errors},
            {"at_timeouts", s.at_timeouts},
            {"modem_resets", s.modem_resets},
            {"admin_resets", s.admin_resets},
            {"registration_losses", s.registration_losses},
            {"recoveries", s.recoveries},
            {"recovery_backoffs", s.recovery_backoffs},
            {"latency", json::object{{"downlink_p50_us", s.downlink.p50_us},
                                     {"downlink_p99_us", s.downlink.p99_us},
                                     {"uplink_p50_us", s.uplink.p50_us},
                                     {"uplink_p99_us", s.uplink.p99_us},
                                     {"samples_downlink", s.downlink.samples},
                                     {"samples_uplink", s.uplink.samples}}},
        };
        std::cout << json::serialize(out) << '\n';
        return 0;
    }
    auto u = [](std::uint64_t v) { return static_cast<unsigned long long>(v); };
    std::printf("uptime:              %llu s\n", u(s.uptime_s));
    std::printf("bytes uplink:        %llu (TCP %llu, UDP %llu in %llu datagrams)\n", u(s.tcp_bytes_up + s.udp_bytes_up),
                u(s.tcp_bytes_up), u(s.udp_bytes_up), u(s.udp_datagrams_up));
    std::printf("bytes downlink:      %llu (TCP %llu, UDP %llu in %llu datagrams)\n",
                u(s.tcp_bytes_down + s.udp_bytes_down), u(s.tcp_bytes_down), u(s.udp_bytes_down),
                u(s.udp_datagrams_down));
    std::printf("connections:         %llu opened, %llu failed, %llu refused busy\n", u(s.flows_opened),
                u(s.flows_failed), u(s.tcp_refused_busy));
    std::printf("TCP bytes dropped:   %llu app gone, %llu peer gone\n", u(s.tcp_dropped_app_gone),
                u(s.tcp_dropped_peer_gone));
    std::printf("UDP datagrams dropped: %llu not last peer, %llu too big, %llu busy, %llu no proxy, %llu queue full,"
                " %llu send failed, %llu app gone, %llu refused (TCP data mode)\n",
                u(s.udp_dropped_not_last_peer), u(s.udp_dropped_too_big), u(s.udp_dropped_busy),
                u(s.udp_dropped_no_proxy), u(s.udp_dropped_queue_full), u(s.udp_dropped_send_failed),
                u(s.udp_dropped_app_gone), u(s.udp_refused_tcp_busy));
    std::printf("UDP suspensions:     %llu\n", u(s.udp_suspensions));
    std::printf("data-mode sessions:  %llu\n", u(s.data_mode_sessions));
    std::printf("AT commands:         %llu (%llu errors, %llu timeouts)\n", u(s.at_commands), u(s.at_errors),
                u(s.at_timeouts));
    std::printf("modem resets:        %llu (%llu by an administrator)\n", u(s.modem_resets), u(s.admin_resets));
    std::printf("registration losses: %llu\n", u(s.registration_losses));
    std::printf("recoveries:          %llu (%llu back-offs)\n", u(s.recoveries), u(s.recovery_backoffs));
    std::printf("latency downlink:    p50 %u us, p99 %u us (%llu samples)\n", s.downlink.p50_us, s.downlink.p99_us,
                u(s.downlink.samples));
    std::printf("latency uplink:      p50 %u us, p99 %u us (%llu samples)\n", s.uplink.p50_us, s.uplink.p99_us,
                u(s.uplink.samples));
    return 0;
}

std::string final_text(const struct slmsock_at_answer& answer) {
    switch (answer.final) {
    case SLMSOCK_AT_OK: return "OK";
    case SLMSOCK_AT_ERROR: return "ERROR";
    case SLMSOCK_AT_CME_ERROR: return "+CME ERROR: " + std::to_string(answer.code);
    case SLMSOCK_AT_CMS_ERROR: return "+CMS ERROR: " + std::to_string(answer.code);
    }
    return "ERROR";
}

std::vector<std::string> split_lines(const char* text) {
    std::vector<std::string> out;
    std::string current;
    for (const char* p = text; *p; ++p) {
        if (*p == '\n') {
            out.push_back(std::move(current));
            current.clear();
        } else {
            current += *p;
        }
    }
    if (!current.empty()) out.push_back(std::move(current));
    return out;
}

int run_at(const std::string& command, bool force, std::uint32_t timeout_ms, bool as_json) {
    struct slmsock_at_answer answer {};
    std::vector<char> lines(4096);
    const int rc = slmsock_at(command.c_str(), force ? 1 : 0, timeout_ms, &answer, lines.data(), lines.size());
    const auto info = split_lines(lines.data());
    if (rc < 0) return report_admin_failure("at", rc, info.empty() ? std::string() : info.front(), as_json);
    const bool ok = answer.final == SLMSOCK_AT_OK;
    if (as_json) {
        json::array rows;
        for (const auto& line : info) rows.emplace_back(line);
        static const char* const names[] = {"ok", "error", "cme_error", "cms_error"};
        json::object out{{"command", command},  {"lines", rows},
                         {"final", names[answer.final]}, {"code", answer.code},
                         {"result", final_text(answer)}, {"truncated", answer.truncated != 0}};
        std::cout << json::serialize(out) << '\n';
    } else {
        for (const auto& line : info) std::cout << line << '\n';
        std::cout << final_text(answer) << '\n';
    }
    return ok ? 0 : exit_modem_error;
}

int run_reset(bool as_json) {
    if (const int rc = slmsock_reset(); rc < 0) return report_admin_failure("reset", rc, "", as_json);
    if (as_json) {
        std::cout << json::serialize(json::object{{"reset", "started"}}) << '\n';
    } else {
        std::cout << "modem reset started; `slmctl status` shows it coming back\n";
    }
    return 0;
}


// Credentials -------------------------------------------------------------------------------------------------

constexpr const char* credential_type_names[] = {"ca", "cert", "key", "psk", "identity"};

std::optional<int> credential_type(const std::string& text) {
    for (int i = 0; i < 5; ++i) {
        if (text == credential_type_names[i] || text == std::to_string(i)) return i;
    }
    return std::nullopt;
}

// The file's bytes ("-" = standard input), or a message naming it.
std::optional<std::string> read_credential_file(const std::string& path, std::string& problem) {
    std::string bytes;
    if (path == "-") {
        bytes.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    } else {
        std::ifstream in(path, std::ios::binary);
        if (!in) {
            problem = path + ": cannot read it";
            return std::nullopt;
        }
        bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    return bytes;
}

// The checks that need no modem, so a wrong file is named before slmd is asked (slmd checks all of it again).
std::string check_credential_file(const std::string& name, const std::string& bytes, int type) {
    const std::string file = name == "-" ? "standard input" : name;
    if (bytes.size() > SLMSOCK_CRED_MAX_LENGTH) {
        return file + " is " + std::to_string(bytes.size()) + " bytes; the modem takes at most " +
               std::to_string(SLMSOCK_CRED_MAX_LENGTH) + " per credential";
    }
    if (bytes.empty()) return file + " is empty";
    if (bytes.find('"') != std::string::npos) return file + " contains '\"', which the modem's AT command cannot carry";
    if (bytes.find('\0') != std::string::npos) return file + " contains NUL bytes (a DER file? the modem takes PEM)";
    if (type <= 2 && bytes.find("-----BEGIN ") == std::string::npos) {
        return file + " (" + std::to_string(bytes.size()) + " bytes) is not PEM: no -----BEGIN line (convert DER with "
               "`openssl x509 -inform der` or `openssl pkey -inform der`)";
    }
    return {};
}

int run_cred(const std::vector<std::string>& arguments, std::optional<long long> sec_tag,
             const std::optional<std::string>& type_text, bool force, bool as_json) {
    const std::string action = arguments.empty() ? "" : arguments.front();
    std::optional<int> type;
    if (type_text) {
        type = credential_type(*type_text);
        if (!type) {
            std::cerr << "slmctl: cred: --type is ca, cert, key, psk or identity (or 0-4), not '" << *type_text << "'\n";
            return exit_usage;
        }
    }
    if (sec_tag && (*sec_tag < 0 || *sec_tag > 2147483647LL)) {
        std::cerr << "slmctl: cred: --sec-tag is 0-2147483647, not " << *sec_tag << '\n';
        return exit_usage;
    }
    if (action == "write") {
        if (!sec_tag || !type || arguments.size() != 2) {
            std::cerr << "slmctl: cred write --sec-tag N --type ca|cert|key|psk|identity FILE (- = standard input)\n";
            return exit_usage;
        }
        std::string problem;
        const auto bytes = read_credential_file(arguments[1], problem);
        if (bytes) problem = check_credential_file(arguments[1], *bytes, *type);
        if (!problem.empty()) {
            std::cerr << "slmctl: cred write: " << problem << '\n';
            return exit_usage;
        }
        const int rc = slmsock_cred_write(static_cast<int>(*sec_tag), *type, bytes->data(), bytes->size(), force ? 1 : 0);
        if (rc < 0) return report_admin_failure("cred write", rc, slmsock_cred_message(), as_json);
        if (as_json) {
            std::cout << json::serialize(json::object{{"written", true}, {"sec_tag", *sec_tag},
                                                      {"type", credential_type_names[*type]},
                                                      {"bytes", bytes->size()}, {"message", slmsock_cred_message()}})
                      << '\n';
        } else {
            std::cout << credential_type_names[*type] << " written to sec_tag " << *sec_tag << " (" << bytes->size()
                      << " bytes)";
            if (*slmsock_cred_message() != '\0') std::cout << "; " << slmsock_cred_message();
            std::cout << '\n';
        }
        return 0;
    }
    if (action == "delete") {
        if (!sec_tag || !type || arguments.size() != 1) {
            std::cerr << "slmctl: cred delete --sec-tag N --type ca|cert|key|psk|identity\n";
            return exit_usage;
        }
        const int rc = slmsock_cred_delete(static_cast<int>(*sec_tag), *type, force ? 1 : 0);
        if (rc < 0) return report_admin_failure("cred delete", rc, slmsock_cred_message(), as_json);
        if (as_json) {
            std::cout << json::serialize(json::object{{"deleted", true}, {"sec_tag", *sec_tag},
                                                      {"type", credential_type_names[*type]}})
                      << '\n';
        } else {
            std::cout << credential_type_names[*type] << " of sec_tag " << *sec_tag << " deleted\n";
        }
        return 0;
    }
    if (action == "list") {
        if (arguments.size() != 1) {
            std::cerr << "slmctl: cred list [--sec-tag N] [--type T]\n";
            return exit_usage;
        }
        std::vector<slmsock_credential> entries(SLMSOCK_CRED_MAX_ENTRIES);
        size_t count = 0;
        const int rc = slmsock_cred_list(sec_tag ? static_cast<int>(*sec_tag) : -1, type ? *type : -1, entries.data(),
                                         entries.size(), &count);
        if (rc < 0) return report_admin_failure("cred list", rc, slmsock_cred_message(), as_json);
        entries.resize(std::min(count, entries.size()));
        const auto name = [](int t) { return t >= 0 && t < 5 ? credential_type_names[t] : "?"; };
        if (as_json) {
            json::array rows;
            for (const auto& e : entries) {
                rows.push_back(json::object{{"sec_tag", e.sec_tag}, {"type", name(e.type)}, {"sha256", e.sha256}});
            }
            json::object out{{"credentials", rows}};
            if (*slmsock_cred_message() != '\0') out["message"] = slmsock_cred_message();
            std::cout << json::serialize(out) << '\n';
        } else {
            if (entries.empty()) std::cout << "no credentials\n";
            for (const auto& e : entries) {
                std::printf("%-10d %-8s %s\n", e.sec_tag, name(e.type), e.sha256[0] ? e.sha256 : "-");
            }
            if (*slmsock_cred_message() != '\0') std::cout << slmsock_cred_message() << '\n';
        }
        return 0;
    }
    std::cerr << "slmctl: cred write|list|delete\n";
    return exit_usage;
}

}  // namespace

int main(int argc, char** argv) {
    po::options_description options(
        "slmctl [--socket PATH] [--json] status|sockets|stats|reset\n"
        "slmctl [--socket PATH] [--json] at [--force] [--timeout-ms N] \"AT...\"\n"
        "slmctl [--socket PATH] [--json] cred write --sec-tag N --type ca|cert|key|psk|identity [--force] FILE|-\n"
        "slmctl [--socket PATH] [--json] cred list [--sec-tag N] [--type T]\n"
        "slmctl [--socket PATH] [--json] cred delete --sec-tag N --type T [--force]");
    options.add_options()("help,h", "this help")("socket", po::value<std::string>(),
                                                  "slmd's API socket (default: $SLMSOCK_SOCKET or " SLMSOCK_DEFAULT_SOCKET ")")(
        "json", "machine-readable output")(
        "force", "at: send a command slmd would refuse; cred write/delete: reset open connections (administrators only)")(
        "sec-tag", po::value<long long>(), "cred: the credential set, 0-2147483647")(
        "type", po::value<std::string>(), "cred: ca, cert, key, psk or identity")(
        "timeout-ms", po::value<std::uint32_t>()->default_value(0), "at: the modem's time to answer (0 = slmd's 10 s)")(
        "command", po::value<std::string>(), "status | sockets | stats | at | reset | cred")(
        "argument", po::value<std::vector<std::string>>(), "at: the AT command line; cred: write|list|delete [FILE]");
    po::positional_options_description positional;
    positional.add("command", 1).add("argument", -1);
    po::variables_map vm;
    try {
        po::store(po::command_line_parser(argc, argv).options(options).positional(positional).run(), vm);
        po::notify(vm);
    } catch (const po::error& error) {
        std::cerr << "slmctl: " << error.what() << '\n' << options;
        return exit_usage;
    }
    if (vm.count("help")) {
        std::cout << options;
        return 0;
    }
    if (vm.count("socket")) setenv("SLMSOCK_SOCKET", vm["socket"].as<std::string>().c_str(), 1);
    const std::string command = vm.count("command") ? vm["command"].as<std::string>() : "status";
    const bool as_json = vm.count("json") > 0;
    if (command == "status") return show_status(as_json);
    if (command == "sockets") return show_sockets(as_json);
    if (command == "stats") return show_stats(as_json);
    if (command == "reset") return run_reset(as_json);
    if (command == "at") {
        const auto arguments =
            vm.count("argument") ? vm["argument"].as<std::vector<std::string>>() : std::vector<std::string>{};
        if (arguments.size() != 1) {
            std::cerr << "slmctl: at takes one AT command line, quoted: slmctl at \"AT+CGMR\"\n";
            return exit_usage;
        }
        return run_at(arguments.front(), vm.count("force") > 0, vm["timeout-ms"].as<std::uint32_t>(), as_json);
    }
    if (command == "cred") {
        const auto arguments =
            vm.count("argument") ? vm["argument"].as<std::vector<std::string>>() : std::vector<std::string>{};
        std::optional<long long> sec_tag;
        if (vm.count("sec-tag")) sec_tag = vm["sec-tag"].as<long long>();
        std::optional<std::string> type;
        if (vm.count("type")) type = vm["type"].as<std::string>();
        return run_cred(arguments, sec_tag, type, vm.count("force") > 0, as_json);
    }
    std::cerr << "slmctl: unknown command '" << command << "'\n" << options;
    return exit_usage;
}
