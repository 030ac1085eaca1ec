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

}  // namespace

int main(int argc, char** argv) {
    po::options_description options("slmctl [--socket PATH] [--json] status");
    options.add_options()("help,h", "this help")("socket", po::value<std::string>(),
                                                  "slmd's API socket (default: $SLMSOCK_SOCKET or " SLMSOCK_DEFAULT_SOCKET ")")(
        "json", "machine-readable output")("command", po::value<std::string>(), "status");
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
    std::cerr << "slmctl: unknown command '" << command << "'\n" << options;
    return exit_usage;
}
