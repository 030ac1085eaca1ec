// modem::Modem in-process on a scripted firmware (scripted_firmware.hpp): bring-up per release from its
// transcript, a TCP connection through the proxy both ways, and the lifecycle's answers to a reboot, a lost
// serial link, a registration loss and a graceful stop, asserted on the command lines written, the events the
// driver reports and the lifecycle's counters.
#include "modem/modem.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include <cerrno>
#include <optional>
#include <string>
#include <vector>

#include "io_test_support.hpp"
#include "sys/log.hpp"
#include "scripted_firmware.hpp"

using namespace slmd;
using namespace std::chrono_literals;
using slmd::test::run_until;
using slmd::test::ScriptedFirmware;

namespace {

modem::ModemOptions quick_options() {
    modem::ModemOptions options;
    options.bringup.sync_timeout = 600ms;
    options.bringup.probe_interval = 100ms;
    options.bringup.register_timeout = 2000ms;
    options.bringup.registration_poll = 100ms;
    options.retry_initial = 50ms;
    options.retry_max = 200ms;
    options.stop_timeout = 500ms;
    return options;
}

class ModemInProcess : public ::testing::TestWithParam<int> {
protected:
    ModemInProcess() {
        if (std::getenv("TEST_DEBUG")) sys::set_log_threshold(sys::LogLevel::debug);
        slmd::test::script_slm_bringup(firmware, GetParam());
    }

    void start() {
        modem.start([this](const modem::BringupResult& result) { first_result = result; });
    }
    bool serving() const { return modem.state() == modem::ModemState::serving; }
    void start_serving() {
        start();
        ASSERT_TRUE(run_until(io, [&] { return serving(); })) << "state " << to_string(modem.state());
        // on_serving's read and test forms: the firmware's proxies were reconciled before anything else.
        ASSERT_TRUE(run_until(io, [&] { return firmware.count("AT#XTCPHANGUP=?") == 1; }));
    }

    struct Connection {
        std::optional<int> error;
        modem::ConnectionId id = 0;
        std::string received;
        std::vector<std::pair<modem::CloseReason, int>> closes;
    };
    void connect(Connection& connection) {
        firmware.answer("AT#XTCPCLI=1,\"192.0.2.1\",80", "\r\n#XTCPCLI: 0,\"connected\"\r\n\r\nOK\r\n");
        modem.driver().tcp_connect(
            {"192.0.2.1", 80, false, std::nullopt}, 5s,
            {.data = [&connection](std::string_view bytes) { connection.received += bytes; },
             .closed = [&connection](modem::CloseReason reason, int error) {
                 connection.closes.emplace_back(reason, error);
             }},
            [&connection](int error, modem::ConnectionId id) {
                connection.error = error;
                connection.id = id;
            });
        ASSERT_TRUE(run_until(io, [&] { return connection.error.has_value(); }));
        ASSERT_EQ(*connection.error, 0);
    }

    boost::asio::io_context io;
    ScriptedFirmware firmware{io.get_executor()};
    modem::Modem modem{io.get_executor(), firmware, quick_options()};
    std::optional<modem::BringupResult> first_result;
};

std::string release_name(const ::testing::TestParamInfo<int>& info) { return "v2_" + std::to_string(info.param); }

}  // namespace

TEST_P(ModemInProcess, BringsTheReleaseUpFromItsTranscript) {
    start_serving();
    ASSERT_TRUE(first_result);
    EXPECT_FALSE(first_result->error) << first_result->message;
    EXPECT_EQ(first_result->info.profile.version.minor, GetParam());
    EXPECT_EQ(first_result->info.addresses.ipv4, "10.0.0.2");
    EXPECT_EQ(first_result->info.registration, modem::Registration::home);
    ASSERT_GE(firmware.commands.size(), 5u);
    EXPECT_EQ(std::vector<std::string>(firmware.commands.begin(), firmware.commands.begin() + 4),
              (std::vector<std::string>{"AT", "AT#XSLMVER", "AT+CEREG=5", "AT+CFUN=1"}));
    EXPECT_EQ(firmware.count("AT+CGPADDR=0"), 1u);
    EXPECT_EQ(firmware.count("AT#XTCPCLI?"), 1u);
    EXPECT_TRUE(modem.driver().serving());
    EXPECT_EQ(modem.slm_driver().tcp_available(), 1u);
    // The TCP proxy, and the firmware's descriptor pool for the connections after it (generic sockets); a
    // data-first release (v2.0) keeps to the proxy.
    const std::size_t connections = GetParam() == 0 ? 1 : 8;
    EXPECT_EQ(modem.driver().tcp_capacity(), connections);
    EXPECT_EQ(modem.driver().tcp_available(), connections);
    EXPECT_EQ(modem.lifecycle_stats().recoveries, 0u);
}

TEST_P(ModemInProcess, CarriesATcpConnectionBothWaysThroughTheProxy) {
    start_serving();
    Connection connection;
    connect(connection);
    EXPECT_EQ(modem.slm_driver().tcp_available(), 0u);

    // CR/LF cannot be quoted: the bytes go through data mode, and leave it once the uplink is idle.
    std::optional<int> sent;
    modem.driver().tcp_send(connection.id, "GET / HTTP/1.0\r\n\r\n", [&](int error) { sent = error; });
    ASSERT_TRUE(run_until(io, [&] { return sent.has_value() && !firmware.in_data_mode(); }));
    EXPECT_EQ(*sent, 0);
    EXPECT_EQ(firmware.uplink, "GET / HTTP/1.0\r\n\r\n");
    EXPECT_EQ(firmware.data_mode_entries, 1u);
    EXPECT_EQ(firmware.count("AT#XTCPSEND"), 1u);

    firmware.say(slmd::test::slm_tcp_data(GetParam(), "HTTP/1.0 200"));
    firmware.say(slmd::test::slm_tcp_data(GetParam(), "\r\n\r\n"));
    ASSERT_TRUE(run_until(io, [&] { return connection.received.size() == 16; }));
    EXPECT_EQ(connection.received, "HTTP/1.0 200\r\n\r\n");

    firmware.say("\r\n#XTCPCLI: -104,\"disconnected\"\r\n");
    ASSERT_TRUE(run_until(io, [&] { return !connection.closes.empty() && modem.slm_driver().tcp_available() == 1; }));
    EXPECT_EQ(connection.closes,
              (std::vector<std::pair<modem::CloseReason, int>>{{modem::CloseReason::peer_closed, ECONNRESET}}));
}

TEST_P(ModemInProcess, AFirmwareRebootEndsTheConnectionAndBringsTheModemUpAgain) {
    start_serving();
    Connection connection;
    connect(connection);

    firmware.say("\r\nReady\r\n");
    ASSERT_TRUE(run_until(io, [&] { return !connection.closes.empty(); }));
    EXPECT_EQ(connection.closes.front().first, modem::CloseReason::modem_lost);
    ASSERT_TRUE(run_until(io, [&] { return firmware.count("AT#XSLMVER") == 2 && serving(); }));
    EXPECT_EQ(connection.closes.size(), 1u);
    EXPECT_EQ(modem.lifecycle_stats().readys, 1u);
    EXPECT_EQ(modem.lifecycle_stats().recoveries, 1u);
    EXPECT_EQ(modem.slm_driver().tcp_available(), 1u);
}

TEST_P(ModemInProcess, ALostSerialLinkIsWaitedForAndTheModemBroughtUpAgain) {
    start_serving();
    Connection connection;
    connect(connection);

    firmware.lose();
    ASSERT_TRUE(run_until(io, [&] { return modem.state() == modem::ModemState::waiting_for_port; }));
    ASSERT_EQ(connection.closes.size(), 1u);
    EXPECT_EQ(connection.closes.front().first, modem::CloseReason::modem_lost);
    EXPECT_FALSE(modem.driver().serving());
    const auto probes_before = firmware.count("AT");

    firmware.restore();
    ASSERT_TRUE(run_until(io, [&] { return firmware.count("AT#XSLMVER") == 2 && serving(); }));
    EXPECT_GT(firmware.count("AT"), probes_before);
    EXPECT_EQ(modem.lifecycle_stats().recoveries, 1u);
    EXPECT_EQ(modem.lifecycle_stats().readys, 0u);
}

TEST_P(ModemInProcess, FollowsARegistrationLossAndItsReturn) {
    start_serving();
    firmware.say("\r\n+CEREG: 4\r\n");
    ASSERT_TRUE(run_until(io, [&] { return modem.state() == modem::ModemState::deregistered; }));
    EXPECT_FALSE(modem.driver().serving());

    firmware.say("\r\n+CEREG: 5,\"0001\",\"01234567\",7\r\n");
    ASSERT_TRUE(run_until(io, [&] { return serving(); }));
    EXPECT_EQ(firmware.count("AT+CGPADDR=0"), 2u) << "the address is read again after registration returns";
    EXPECT_EQ(modem.lifecycle_stats().registration_losses, 1u);
    EXPECT_EQ(modem.lifecycle_stats().recoveries, 0u) << "a registration loss is not a reboot";
}

TEST_P(ModemInProcess, AGracefulStopSwitchesTheRadioOff) {
    start_serving();
    Connection connection;
    connect(connection);
    bool stopped = false;
    modem.shutdown([&] { stopped = true; });
    ASSERT_TRUE(run_until(io, [&] { return stopped; }));
    EXPECT_EQ(firmware.commands.back(), "AT+CFUN=0");
    ASSERT_EQ(connection.closes.size(), 1u);
    EXPECT_EQ(modem.slm_driver().tcp_available(), 1u);
}

TEST_P(ModemInProcess, ASilentDeviceIsReportedAsNotResponding) {
    firmware.silent("AT");
    start();
    ASSERT_TRUE(run_until(io, [&] { return first_result.has_value(); }));
    EXPECT_EQ(first_result->error, modem::BringupError::not_responding) << first_result->message;
    EXPECT_EQ(firmware.count("AT#XSLMVER"), 0u);
    EXPECT_GE(firmware.count("AT"), 2u);
}

TEST_P(ModemInProcess, ADeviceThatIsNotSlmIsToldApart) {
    firmware.answer("AT#XSLMVER", "\r\nERROR\r\n");
    start();
    ASSERT_TRUE(run_until(io, [&] { return first_result.has_value(); }));
    EXPECT_EQ(first_result->error, modem::BringupError::not_slm) << first_result->message;
    EXPECT_EQ(firmware.count("AT#XSLMVER"), 3u) << "retried as often as command_attempts says";
    EXPECT_EQ(firmware.count("AT+CFUN=1"), 0u);
}

INSTANTIATE_TEST_SUITE_P(Releases, ModemInProcess, ::testing::Values(0, 5, 9), release_name);

// A Serial Modem on the line (docs/reference/serial-modem-and-generic-sockets.md §2): it answers #XSLMVER with
// ERROR and #XSMVER with its release; slmd then speaks CR-terminated commands and runs the Serial Modem
// driver behind the same ModemDriver, and a reboot ends its sockets like any other.
TEST(ModemInProcessSerialModem, IsDetectedAndServesSocketsThroughItsOwnDriver) {
    boost::asio::io_context io;
    ScriptedFirmware firmware{io.get_executor()};
    firmware.line_end = "\r";
    slmd::test::script_slm_bringup(firmware, 9);
    firmware.answer("AT#XSLMVER", "\r\nERROR\r\n");
    firmware.answer("AT#XSMVER", "\r\n#XSMVER: \"v1.0.1\",\"3.2.4\"\r\n\r\nOK\r\n");
    for (const char* line : {"AT#XCLOSE", "AT#XRECVCFG=,1", "AT#XAPOLL=,1,0"}) firmware.answer(line, "\r\nOK\r\n");
    firmware.answer("AT#XSOCKET=1,1,0", "\r\n#XSOCKET: 3,1,6\r\n\r\nOK\r\n");
    firmware.answer("AT#XCONNECT=3,\"192.0.2.1\",80", "\r\n#XCONNECT: 3,1\r\n\r\nOK\r\n");
    firmware.answer("AT#XSEND=3,0,0,\"hi\"", "\r\n#XSEND: 3,0,2\r\n\r\nOK\r\n");
    modem::Modem modem{io.get_executor(), firmware, quick_options()};
    std::optional<modem::BringupResult> first;
    modem.start([&](const modem::BringupResult& result) { first = result; });
    ASSERT_TRUE(run_until(io, [&] { return firmware.count("AT#XAPOLL=,1,0") == 1; }));
    ASSERT_TRUE(first);
    EXPECT_FALSE(first->error) << first->message;
    EXPECT_TRUE(modem.serial_modem());
    EXPECT_EQ(first->info.version.ncs_version, "v1.0.1");
    EXPECT_EQ(std::vector<std::string>(firmware.commands.begin(), firmware.commands.begin() + 4),
              (std::vector<std::string>{"AT", "AT#XSLMVER", "AT#XSMVER", "AT+CEREG=5"}));
    EXPECT_EQ(firmware.count_prefix("AT#XTCPCLI"), 0u) << "no SLM proxy command reaches a Serial Modem";
    EXPECT_EQ(modem.driver().tcp_capacity(), 7u) << "v1.0.x keeps one of its 8 descriptors";

    std::optional<int> error;
    modem::ConnectionId id = 0;
    std::string received;
    std::vector<modem::CloseReason> closes;
    modem.driver().tcp_connect({"192.0.2.1", 80, false, std::nullopt}, 5s,
                               {.data = [&](std::string_view bytes) { received += bytes; },
                                .closed = [&](modem::CloseReason reason, int) { closes.push_back(reason); }},
                               [&](int e, modem::ConnectionId opened) {
                                   error = e;
                                   id = opened;
                               });
    ASSERT_TRUE(run_until(io, [&] { return error.has_value(); }));
    ASSERT_EQ(*error, 0);
    firmware.say(std::string("\r\n#XRECV: 3,0,7\r\nhe\0\r\nOK\r\n", 26));
    ASSERT_TRUE(run_until(io, [&] { return received.size() == 7; }));
    EXPECT_EQ(received, std::string("he\0\r\nOK", 7));
    std::optional<int> sent;
    modem.driver().tcp_send(id, "hi", [&](int e) { sent = e; });
    ASSERT_TRUE(run_until(io, [&] { return sent.has_value(); }));
    EXPECT_EQ(*sent, 0);

    // A reboot: the socket ends with the modem, bring-up runs again and closes leftovers first.
    firmware.say("\r\nReady\r\n");
    ASSERT_TRUE(run_until(io, [&] { return closes.size() == 1 && firmware.count("AT#XAPOLL=,1,0") == 2; }));
    EXPECT_EQ(closes, std::vector<modem::CloseReason>{modem::CloseReason::modem_lost});
    EXPECT_EQ(firmware.count("AT#XCLOSE"), 2u);
}
