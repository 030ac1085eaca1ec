// Owns: slmctl, the operator's command line for slmd: `status` (the modem as slmd sees it) and `sockets`
// (the firmware's proxies, who holds them, bytes each way, and the firmware's own read-command view), each
// readable or as JSON (--json). It finds slmd like every client ($SLMSOCK_SOCKET, or --socket) and speaks
// only through libslmsock, so what it shows is exactly what apps can see.
#include <boost/json/src.hpp>
#include <boost/program_options.hpp>

#include <sys/socket.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "slmsock.h"

namespace po = boost::program_options;
namespace json = boost::json;

namespace {

constexpr int exit_usage = 2;
constexpr int exit_unavailable = 69;  // EX_UNAVAILABLE: slmd is not running or refused us

int report_failure(const char* what, int error) {
    std::cerr << "slmctl: " << what << ": " << slmsock_strerror(error);
    if (error == -ENETDOWN) std::cerr << " (is slmd running? socket " << slmsock_socket_path() << ")";
    if (error == -EACCES) std::cerr << " (slmd allows root, its own user and the group slm)";
    std::cerr << '\n';
    return exit_unavailable;
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

}  // namespace

int main(int argc, char** argv) {
    po::options_description options("slmctl [--socket PATH] [--json] status|sockets");
    options.add_options()("help,h", "this help")("socket", po::value<std::string>(),
                                                  "slmd's API socket (default: $SLMSOCK_SOCKET or " SLMSOCK_DEFAULT_SOCKET ")")(
        "json", "machine-readable output")("command", po::value<std::string>(), "status | sockets");
    po::positional_options_description positional;
    positional.add("command", 1);
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
    std::cerr << "slmctl: unknown command '" << command << "'\n" << options;
    return exit_usage;
}
