// Owns: slmd's command line, process set-up (signals, logging) and wiring the layers together on one
// io_context. Runs in the foreground; systemd or the caller supervises it.
#include <sys/resource.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <functional>
#include <iostream>
#include <optional>
#include <vector>

#include "api/admin_service.hpp"
#include "api/api_server.hpp"
#include "api/data_endpoint.hpp"
#include "core/tcp_flow_manager.hpp"
#include "core/udp_relay.hpp"
#include "modem/modem.hpp"
#include "net/route_policy.hpp"
#include "serial/serial_port.hpp"
#include "config/config.hpp"
#include "sys/log.hpp"
#include "sys/service.hpp"

namespace asio = boost::asio;

namespace {

constexpr int exit_usage = 2;
constexpr int exit_failure = 1;

}  // namespace

namespace {

// Every API client, data connection and UDP stand-in is a descriptor. systemd's default soft limit (1024) is
// below what api-max-clients allows, and the hard limit is there to be used: raise the soft one (capped, so a
// huge hard limit does not make descriptor tables huge).
void raise_descriptor_limit(std::size_t api_clients) {
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
    const rlim_t wanted = std::min<rlim_t>(limit.rlim_max, 65536);
    if (limit.rlim_cur < wanted) {
        limit.rlim_cur = wanted;
        if (setrlimit(RLIMIT_NOFILE, &limit) != 0) {
            SLMD_WARN("cannot raise the descriptor limit: {}", std::strerror(errno));
        }
    }
    if (limit.rlim_cur < 3 * api_clients + 64) {
        SLMD_WARN("descriptor limit {} is low for api-max-clients {}: expect EMFILE under load", limit.rlim_cur,
                  api_clients);
    }
}

}  // namespace

int main(int argc, char** argv) {
    // Settings come from the command line and the configuration file (config/config; docs/configuration.md).
    auto loaded = slmd::config::load(argc, argv);
    if (loaded.action == slmd::config::Action::help) {
        std::cout << loaded.usage;
        return 0;
    }
    if (loaded.action == slmd::config::Action::version) {
        std::cout << "slmd " << SLMD_VERSION << "\n";
        return 0;
    }
    if (loaded.action != slmd::config::Action::run) {
        for (const auto& error : loaded.errors) std::cerr << "slmd: " << error << "\n";
        return exit_usage;
    }
    auto& settings = loaded.settings;
    const std::string& device = settings.device;
    const unsigned baud = settings.baud;
    const std::string& api_socket = settings.api_socket;
    slmd::sys::set_log_threshold(settings.verbose ? slmd::sys::LogLevel::debug : settings.log_level);
    if (!loaded.config_path.empty()) SLMD_DEBUG("config: read {}", loaded.config_path);
    std::signal(SIGPIPE, SIG_IGN);
    raise_descriptor_limit(settings.api_max_clients);

    asio::io_context io(1);
    slmd::serial::SerialPort port(io.get_executor(),
                                  slmd::serial::SerialOptions{.path = device, .baud = baud,
                                                              .rts_cts = settings.rtscts,
                                                              .read_batch_delay = settings.read_batch});
    if (auto error = port.open()) {
        SLMD_ERROR("cannot open {}: {}", device, error.message());
        return exit_failure;
    }
    SLMD_INFO("serial: {} open at {} baud{}", device, baud, settings.rtscts ? " with RTS/CTS" : "");

    slmd::modem::ModemOptions options;
    options.baud = baud;
    options.bringup.sync_timeout = settings.sync_timeout;
    options.bringup.register_timeout = settings.register_timeout;
    options.recovery.max_recoveries = settings.recovery_max;
    options.recovery.window = settings.recovery_window;
    options.recovery.backoff = settings.recovery_backoff;
    options.stop_timeout = settings.stop_timeout;
    options.native_tls = settings.native_tls;
    options.tls_servers = settings.tls_servers;
    options.dtls_servers = settings.dtls_servers;
    options.max_connections = settings.modem_connections;
    options.tcp_proxy_tls_only = settings.tcp_proxy_tls_only;
    options.answer_wait = settings.answer_wait;
    slmd::modem::Modem modem(io.get_executor(), port, options);
    // Journal entries carry the modem state (SLMD_MODEM_STATE) while the modem exists.
    slmd::sys::LogContext log_context([&modem] { return std::string(slmd::modem::to_string(modem.state())); });

    int exit_code = 0;
    const bool once = settings.once;
    slmd::net::RoutePolicy routes(std::move(settings.bypass));
    routes.watch(io.get_executor());  // route and link changes reach the next decision without a dump
    slmd::net::TlsPolicy tls_policy(std::move(settings.tls));
    slmd::core::FlowOptions flow_options;
    flow_options.max_waiting = settings.max_queued;
    flow_options.default_connect_timeout = settings.connect_timeout;
    flow_options.keep_finished = settings.finished_flow_linger;
    flow_options.slow_reader_limit = settings.slow_reader_limit;
    flow_options.half_close_idle = settings.half_close_idle;
    flow_options.socket_poll = settings.socket_poll;
    slmd::core::TcpFlowManager flows(io.get_executor(), modem.driver(), flow_options);
    slmd::core::UdpOptions udp_options;
    udp_options.max_stand_ins = settings.udp_max_stand_ins;
    udp_options.socket_poll = settings.socket_poll;
    slmd::core::UdpRelay udp(io.get_executor(), modem.driver(), udp_options);
    // The modem-side address of app sockets slmd serves (LOOKUP): the modem's current PDP address.
    auto modem_address = [&modem](slmsock::wire::Family family) -> std::string {
        const auto& info = modem.info();
        if (!info || modem.state() != slmd::modem::ModemState::serving) return {};
        return family == slmsock::wire::Family::ipv6 ? info->addresses.ipv6 : info->addresses.ipv4;
    };
    flows.set_modem_address(modem_address);
    udp.set_modem_address(modem_address);
    udp.set_bypass([&routes](const slmsock::wire::Address& peer) { return routes.bypass(peer); });
    slmd::sys::Service service(io.get_executor());
    slmd::api::DataEndpoint data_endpoint(io.get_executor(), flows);
    std::optional<slmd::api::ApiServer> api;
    slmd::api::AdminService admin(modem, flows, udp);
    if (!once) {
        if (auto error = data_endpoint.start(settings.data_port)) {
            SLMD_ERROR("data endpoint: {}", error.message());
            return exit_failure;
        }
        api.emplace(io.get_executor(),
                    slmd::api::ApiOptions{api_socket, settings.api_group, settings.admin_group,
                                          settings.api_max_clients, settings.api_idle_timeout},
                    flows, udp, modem.driver(),
                    routes,
                    [&modem] {
                        slmsock::wire::StatusReply status;
                        status.modem_state = slmd::modem::to_string(modem.state());
                        if (const auto& info = modem.info()) {
                            status.registration = slmd::modem::to_string(info->registration);
                            status.release =
                                (modem.serial_modem() ? "Serial Modem " : "") + info->version.ncs_version;
                            status.ipv4 = info->addresses.ipv4;
                            status.ipv6 = info->addresses.ipv6;
                        }
                        return status;
                    },
                    data_endpoint.port());
        api->set_admin(&admin);
        api->set_tls_policy(&tls_policy);
        // Socket activation (slmd.socket) hands over the listening socket; otherwise slmd binds its own.
        std::string activation_problem;
        const auto activated = slmd::sys::activated_socket(activation_problem);
        if (!activation_problem.empty()) {
            SLMD_ERROR("{}", activation_problem);
            return exit_failure;
        }
        if (auto error = activated ? api->adopt(*activated) : api->start()) {
            SLMD_ERROR("api socket {}: {}", api_socket, error.message());
            return exit_failure;
        }
    }
    // Ready means clients can connect; they are queued or refused per flow while the modem comes up.
    auto modem_status = [&modem] {
        std::string text = std::string("modem ") + slmd::modem::to_string(modem.state());
        if (const auto& info = modem.info(); info && modem.state() == slmd::modem::ModemState::serving) {
            text += fmt::format(" ({} {}, {}, {})", modem.serial_modem() ? "Serial Modem" : "SLM",
                                info->version.ncs_version,
                                slmd::modem::to_string(info->registration),
                                info->addresses.ipv4.empty() ? info->addresses.ipv6 : info->addresses.ipv4);
        }
        return text;
    };
    service.ready(modem_status());
    service.watch_status(modem_status, std::chrono::milliseconds(500));
    service.start_watchdog();
    modem.start([&](const slmd::modem::BringupResult& result) {
        if (result.error) {
            SLMD_ERROR("{}: {} ({})", device, result.error.message(), result.message);
            exit_code = exit_failure;
            io.stop();
        } else if (once) {
            io.stop();
        }
    });

    // Graceful stop: no new clients, the proxies and app sockets closed (open flows fail), then AT+CFUN=0 with
    // a bounded wait (the firmware saves its state; resets without it count towards the nRF91's reset-loop
    // lock-out), then exit. A second signal exits at once.
    asio::signal_set signals(io, SIGINT, SIGTERM);
    bool stopping = false;
    std::function<void(boost::system::error_code, int)> on_signal = [&](boost::system::error_code error, int signal) {
        if (error) return;
        if (stopping) {
            SLMD_NOTICE("signal {} again: exiting without waiting for the modem", signal);
            io.stop();
            return;
        }
        stopping = true;
        SLMD_NOTICE("stopping on signal {}", signal);
        service.stopping();
        if (api) api->stop();
        data_endpoint.stop();
        flows.stop();
        udp.stop();
        modem.shutdown([&io] { io.stop(); });
        signals.async_wait(on_signal);
    };
    signals.async_wait(on_signal);
    io.run();

    // Close every I/O object, then let the aborted operations complete while their owners still exist
    // (Boost 1.81's io_uring backend frees its socket services before operations still queued on them).
    service.stop();
    if (api) api->stop();
    data_endpoint.stop();
    flows.stop();
    udp.stop();
    modem.stop();
    port.close();
    signals.cancel();
    io.restart();
    io.run_for(std::chrono::seconds(2));
    return exit_code;
}
