// Owns: slmd's command line, process set-up (signals, logging) and wiring the layers together on one
// io_context. Runs in the foreground; systemd or the caller supervises it.
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/program_options.hpp>

#include <csignal>
#include <iostream>
#include <optional>
#include <vector>

#include "api/api_server.hpp"
#include "api/data_endpoint.hpp"
#include "core/flow_manager.hpp"
#include "modem/modem.hpp"
#include "net/route_policy.hpp"
#include "serial/serial_port.hpp"
#include "sys/log.hpp"

namespace po = boost::program_options;
namespace asio = boost::asio;

namespace {

constexpr int exit_usage = 2;
constexpr int exit_failure = 1;

}  // namespace

int main(int argc, char** argv) {
    std::string device;
    unsigned baud = 115200;
    unsigned sync_timeout_ms = 10000;
    unsigned register_timeout_ms = 180000;
    std::string api_socket = "/run/slmd/slmd.sock";
    std::string api_group = "slm";
    unsigned data_port = 0;
    std::vector<std::string> bypass;
    po::options_description description("Usage: slmd --device PATH [options]\nOptions");
    description.add_options()
        ("help,h", "show this help")
        ("version", "print the version")
        ("device,d", po::value(&device), "serial device of the nRF91 running SLM (e.g. /dev/ttyACM0)")
        ("baud,b", po::value(&baud)->default_value(baud), "UART baud rate (8N1)")
        ("rtscts", "use RTS/CTS hardware flow control")
        ("sync-timeout-ms", po::value(&sync_timeout_ms)->default_value(sync_timeout_ms),
         "give up when the modem does not answer AT for this long")
        ("register-timeout-ms", po::value(&register_timeout_ms)->default_value(register_timeout_ms),
         "give up when the modem does not register for this long")
        ("api-socket", po::value(&api_socket)->default_value(api_socket), "Unix-domain API socket for clients")
        ("api-group", po::value(&api_group)->default_value(api_group),
         "group whose members may use the modem (besides root and slmd's own user)")
        ("data-port", po::value(&data_port)->default_value(data_port),
         "loopback port of the data endpoint (0 = any free port)")
        ("bypass", po::value(&bypass)->composing(),
         "CIDR reached without the modem (repeatable); routes other than the default bypass too")
        ("once", "bring the modem up, report, and exit (0 when it registered)")
        ("verbose,v", "log every AT command");
    po::variables_map vm;
    try {
        po::store(po::parse_command_line(argc, argv, description), vm);
        po::notify(vm);
    } catch (const po::error& error) {
        std::cerr << "slmd: " << error.what() << "\n" << description;
        return exit_usage;
    }
    if (vm.count("help")) {
        std::cout << description;
        return 0;
    }
    if (vm.count("version")) {
        std::cout << "slmd " << SLMD_VERSION << "\n";
        return 0;
    }
    if (device.empty()) {
        std::cerr << "slmd: --device is required\n" << description;
        return exit_usage;
    }
    if (vm.count("verbose")) slmd::sys::set_log_threshold(slmd::sys::LogLevel::debug);
    std::signal(SIGPIPE, SIG_IGN);

    asio::io_context io(1);
    slmd::serial::SerialPort port(io.get_executor(),
                                  slmd::serial::SerialOptions{.path = device, .baud = baud,
                                                              .rts_cts = vm.count("rtscts") > 0});
    if (auto error = port.open()) {
        SLMD_ERROR("cannot open {}: {}", device, error.message());
        return exit_failure;
    }
    SLMD_INFO("serial: {} open at {} baud{}", device, baud, vm.count("rtscts") ? " with RTS/CTS" : "");

    slmd::modem::ModemOptions options;
    options.baud = baud;
    options.bringup.sync_timeout = std::chrono::milliseconds(sync_timeout_ms);
    options.bringup.register_timeout = std::chrono::milliseconds(register_timeout_ms);
    slmd::modem::Modem modem(io.get_executor(), port, options);

    std::vector<slmd::net::Prefix> bypass_prefixes;
    for (const auto& text : bypass) {
        auto prefix = slmd::net::parse_prefix(text);
        if (!prefix) {
            SLMD_ERROR("--bypass {}: not an address or CIDR", text);
            return exit_usage;
        }
        bypass_prefixes.push_back(*prefix);
    }
    if (data_port > 65535) {
        SLMD_ERROR("--data-port {}: out of range", data_port);
        return exit_usage;
    }

    int exit_code = 0;
    const bool once = vm.count("once") > 0;
    slmd::net::RoutePolicy routes(std::move(bypass_prefixes));
    slmd::core::FlowManager flows(io.get_executor(), modem.driver());
    slmd::api::DataEndpoint data_endpoint(io.get_executor(), flows);
    std::optional<slmd::api::ApiServer> api;
    if (!once) {
        if (auto error = data_endpoint.start(static_cast<std::uint16_t>(data_port))) {
            SLMD_ERROR("data endpoint: {}", error.message());
            return exit_failure;
        }
        api.emplace(io.get_executor(), slmd::api::ApiOptions{api_socket, api_group}, flows, modem.driver(), routes,
                    [&modem] {
                        slmsock::wire::StatusReply status;
                        status.modem_state = slmd::modem::to_string(modem.state());
                        if (const auto& info = modem.info()) {
                            status.registration = slmd::modem::to_string(info->registration);
                            status.release = info->version.ncs_version;
                            status.ipv4 = info->addresses.ipv4;
                            status.ipv6 = info->addresses.ipv6;
                        }
                        return status;
                    },
                    data_endpoint.port());
        if (auto error = api->start()) {
            SLMD_ERROR("api socket {}: {}", api_socket, error.message());
            return exit_failure;
        }
    }
    modem.start([&](const slmd::modem::BringupResult& result) {
        if (result.error) {
            SLMD_ERROR("{}: {} ({})", device, result.error.message(), result.message);
            exit_code = exit_failure;
            io.stop();
        } else if (once) {
            io.stop();
        }
    });

    asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](boost::system::error_code error, int signal) {
        if (error) return;
        SLMD_NOTICE("stopping on signal {}", signal);
        io.stop();
    });
    io.run();

    // Close every I/O object, then let the aborted operations complete while their owners still exist
    // (Boost 1.81's io_uring backend frees its socket services before operations still queued on them).
    if (api) api->stop();
    data_endpoint.stop();
    flows.stop();
    modem.stop();
    port.close();
    signals.cancel();
    io.restart();
    io.run_for(std::chrono::seconds(2));
    return exit_code;
}
