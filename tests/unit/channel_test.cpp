// Drives at::Channel over an in-memory link: what it writes is recorded, what the modem "says" is fed in.
#include "at/channel.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <string>
#include <vector>

#include "recording_link.hpp"

using namespace slmd::at;
using namespace std::chrono_literals;

namespace {

using slmd::test::RecordingLink;

class ChannelTest : public ::testing::Test {
protected:
    explicit ChannelTest(FirmwareVersion version = {2, 9, 0})
        : channel(io.get_executor(), link, FirmwareProfile::for_version(version), 115200) {
        channel.set_handlers(ChannelHandlers{
            .urc = [this](const std::string& text) { urcs.push_back(text); },
            .ready = [this] { ++readies; },
            .proxy_data = [this](ProxyData&& data) { payloads.push_back(std::move(data)); },
            .raw_data = [this](std::string_view bytes) { raw += bytes; },
            .data_mode_exited = [this](int status) { exits.push_back(status); },
            .payload_lost = [this](const PayloadLost& lost) { losses.push_back(lost); },
        });
    }

    // Runs the io_context until `done` holds, failing the test after a generous deadline.
    template <typename Predicate>
    void run_until(Predicate done, std::chrono::milliseconds limit = 5000ms) {
        const auto deadline = std::chrono::steady_clock::now() + limit;
        while (!done()) {
            ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "condition not reached";
            io.run_for(5ms);
            io.restart();
        }
    }

    std::vector<CommandResponse> responses;
    Channel::ResponseHandler record() {
        return [this](CommandResponse r) { responses.push_back(std::move(r)); };
    }

    boost::asio::io_context io;
    RecordingLink link;
    Channel channel;
    std::vector<std::string> urcs;
    int readies = 0;
    std::vector<ProxyData> payloads;
    std::string raw;
    std::vector<int> exits;
    std::vector<PayloadLost> losses;
};

class ChannelSerialModemTest : public ChannelTest {
protected:
    ChannelSerialModemTest() { channel.set_profile(FirmwareProfile::for_serial_modem({1, 0, 1})); }
};

class Channel25Test : public ChannelTest {
protected:
    Channel25Test() : ChannelTest({2, 5, 0}) {}
};
class Channel18Test : public ChannelTest {
protected:
    Channel18Test() : ChannelTest({1, 8, 0}) {}
};

}  // namespace

TEST_F(ChannelTest, CommandWithInfoLineAndOk) {
    channel.submit({"AT+CGPADDR=0", "+CGPADDR", 1000ms}, record());
    EXPECT_EQ(link.take(), "AT+CGPADDR=0\r\n");
    channel.feed("\r\n+CGPADDR: 0,\"10.1.2.3\"\r\n\r\nOK\r\n");
    ASSERT_EQ(responses.size(), 1u);
    EXPECT_TRUE(responses[0].ok());
    EXPECT_EQ(responses[0].info, std::vector<std::string>{"+CGPADDR: 0,\"10.1.2.3\""});
    EXPECT_TRUE(urcs.empty());
}

TEST_F(ChannelTest, UrcBetweenInfoAndOkGoesToUrcHandler) {
    channel.submit({"AT#XTCPSEND=\"hi\"", "#XTCPSEND", 1000ms}, record());
    link.take();
    channel.feed("\r\n#XTCPSEND: 2\r\n\r\n+CEREG: 1\r\n\r\nOK\r\n");
    ASSERT_EQ(responses.size(), 1u);
    EXPECT_EQ(responses[0].info, std::vector<std::string>{"#XTCPSEND: 2"});
    EXPECT_EQ(urcs, std::vector<std::string>{"+CEREG: 1"});
}

TEST_F(ChannelTest, ErrorsAreReportedWithTheirCodes) {
    channel.submit({"AT+CFUN=1", "", 1000ms}, record());
    channel.feed("\r\n+CME ERROR: 30\r\n");
    channel.submit({"AT#XTCPCLI=1,\"x\",1", "#XTCPCLI", 1000ms}, record());
    channel.feed("\r\n#XTCPCLI: -111,\"not connected\"\r\n\r\nERROR\r\n");
    ASSERT_EQ(responses.size(), 2u);
    EXPECT_EQ(responses[0].final, (FinalResult{FinalKind::cme_error, 30}));
    EXPECT_EQ(responses[0].describe(), "+CME ERROR: 30");
    EXPECT_EQ(responses[1].final.kind, FinalKind::error);
    EXPECT_EQ(responses[1].info, std::vector<std::string>{"#XTCPCLI: -111,\"not connected\""});
}

TEST_F(ChannelTest, OneCommandInFlight) {
    channel.submit({"AT+CEREG=5", "", 1000ms}, record());
    channel.submit({"AT+CFUN=1", "", 1000ms}, record());
    EXPECT_EQ(link.take(), "AT+CEREG=5\r\n");
    channel.feed("\r\nOK");
    EXPECT_EQ(link.take(), "") << "second command must wait for the first's final result";
    channel.feed("\r\n");
    EXPECT_EQ(link.take(), "AT+CFUN=1\r\n");
    channel.feed("\r\nOK\r\n");
    ASSERT_EQ(responses.size(), 2u);
    EXPECT_TRUE(responses[0].ok());
    EXPECT_TRUE(responses[1].ok());
}

// One command in flight, max_queued_commands behind it: the next is refused with queue_full, after submit()
// returned (posted), without a byte to the modem; the queued ones are all served in order.
TEST_F(ChannelTest, TheCommandQueueIsBoundedAndRefusesTheRestWithQueueFull) {
    channel.submit({"AT+CEREG?", "+CEREG", 1000ms}, record());
    for (std::size_t i = 0; i < max_queued_commands; ++i) channel.submit({"AT+CFUN?", "+CFUN", 1000ms}, record());
    EXPECT_EQ(channel.queued_commands(), max_queued_commands);
    channel.submit({"AT+CGMI", "", 1000ms}, record());
    EXPECT_TRUE(responses.empty()) << "refused from inside submit()";
    EXPECT_EQ(link.take(), "AT+CEREG?\r\n");
    run_until([&] { return responses.size() == 1; });
    EXPECT_EQ(responses[0].error, make_error_code(ChannelError::queue_full));
    EXPECT_EQ(channel.queue_refusals(), 1u);
    std::size_t served = 0;
    channel.feed("\r\nOK\r\n");
    while (link.take() == "AT+CFUN?\r\n") {
        ++served;
        channel.feed("\r\nOK\r\n");
    }
    EXPECT_EQ(served, max_queued_commands);
    EXPECT_EQ(responses.size(), 2 + max_queued_commands);
    for (std::size_t i = 1; i < responses.size(); ++i) EXPECT_TRUE(responses[i].ok()) << i;
    EXPECT_EQ(link.written.find("AT+CGMI"), std::string::npos);
}

TEST_F(ChannelTest, TimeoutThenResyncDropsTheLateFinal) {
    channel.submit({"AT#XGETADDRINFO=\"slow\"", "#XGETADDRINFO", 30ms}, record());
    channel.submit({"AT+CGPADDR=0", "+CGPADDR", 1000ms}, record());
    EXPECT_EQ(link.take(), "AT#XGETADDRINFO=\"slow\"\r\n");
    run_until([&] { return responses.size() == 1; });
    EXPECT_EQ(responses[0].error, ChannelError::timeout);
    // Before the next command the channel probes, so a late answer cannot be taken for the next command's.
    EXPECT_EQ(link.take(), "AT+CFUN?\r\n");
    channel.feed("\r\n#XGETADDRINFO: \"1.2.3.4\"\r\n\r\nOK\r\n");  // the late answer
    EXPECT_EQ(link.take(), "");
    channel.feed("\r\n+CFUN: 1\r\n\r\nOK\r\n");  // the probe's own answer
    EXPECT_EQ(link.take(), "AT+CGPADDR=0\r\n");
    channel.feed("\r\n+CGPADDR: 0,\"10.0.0.2\"\r\n\r\nOK\r\n");
    ASSERT_EQ(responses.size(), 2u);
    EXPECT_TRUE(responses[1].ok());
    EXPECT_EQ(responses[1].info, std::vector<std::string>{"+CGPADDR: 0,\"10.0.0.2\""});
    EXPECT_EQ(channel.stats().stale_finals, 1u);
    EXPECT_EQ(channel.stats().timeouts, 1u);
}

TEST_F(ChannelTest, ReadyFailsEverythingPendingWithModemReset) {
    channel.submit({"AT+CFUN=1", "", 1000ms}, record());
    channel.submit({"AT+CGPADDR=0", "+CGPADDR", 1000ms}, record());
    link.take();
    channel.feed("Ready\r\n");
    ASSERT_EQ(responses.size(), 2u);
    EXPECT_EQ(responses[0].error, ChannelError::modem_reset);
    EXPECT_EQ(responses[1].error, ChannelError::modem_reset);
    EXPECT_EQ(readies, 1);
    EXPECT_EQ(link.take(), "") << "nothing queued survives a reset";
    channel.submit({"AT", "", 1000ms}, record());
    EXPECT_EQ(link.take(), "AT+CFUN?\r\n") << "a probe first: pre-reset bytes may still be answered";
    channel.feed("\r\n+CEREG: 0,0\r\n\r\nOK\r\n");  // the answer to a command sent before the reboot
    EXPECT_EQ(link.take(), "");
    channel.feed("\r\n+CFUN: 0\r\n\r\nOK\r\n");
    EXPECT_EQ(link.take(), "AT\r\n");
    channel.feed("\r\nOK\r\n");
    ASSERT_EQ(responses.size(), 3u);
    EXPECT_TRUE(responses[2].ok());
}

// The OK of one command and the firmware's "Ready" arrive in one read. The OK's handler enters data mode at once
// (its next step); the reboot, parsed before that, must still leave the link in command mode, or every command
// after it (bring-up's first AT) would wait for a data-mode entry that never comes. Found as slmd stuck in
// "syncing" after a modem reset in the middle of a send (ManyConnections reset test, under load).
TEST_F(ChannelTest, ReadyInTheSameReadAsAnOkWhoseHandlerEntersDataMode) {
    channel.submit({"AT#XSEND=\"+++\"", "#XSEND", 1000ms}, [&](CommandResponse r) {
        responses.push_back(r);
        if (r.ok()) channel.enter_data_mode({"AT#XSEND", "", 1000ms}, record());
    });
    EXPECT_EQ(link.take(), "AT#XSEND=\"+++\"\r\n");
    channel.feed("\r\n#XSEND: 3\r\n\r\nOK\r\nReady\r\n");
    ASSERT_EQ(responses.size(), 2u);
    EXPECT_TRUE(responses[0].ok());
    EXPECT_EQ(responses[1].error, ChannelError::modem_reset) << "the data-mode entry died with the reboot";
    EXPECT_EQ(readies, 1);
    EXPECT_EQ(link.take(), "AT#XSEND\r\n") << "written before the reboot was seen";
    channel.submit({"AT", "", 1000ms}, record());
    EXPECT_EQ(link.take(), "AT+CFUN?\r\n") << "command mode: the probe goes out";
    channel.feed("\r\nERROR\r\n");  // the fresh firmware's answer to the data-mode entry
    EXPECT_EQ(link.take(), "");
    channel.feed("\r\n+CFUN: 0\r\n\r\nOK\r\n");
    EXPECT_EQ(link.take(), "AT\r\n");
    channel.feed("\r\nOK\r\n");
    ASSERT_EQ(responses.size(), 3u);
    EXPECT_TRUE(responses[2].ok());
}

TEST_F(ChannelTest, LinkLostFailsEverythingPending) {
    channel.submit({"AT+CFUN=1", "", 1000ms}, record());
    channel.submit({"AT", "", 1000ms}, record());
    channel.link_lost();
    ASSERT_EQ(responses.size(), 2u);
    EXPECT_EQ(responses[0].error, ChannelError::link_lost);
    EXPECT_EQ(responses[1].error, ChannelError::link_lost);
}

TEST_F(ChannelTest, ProxyDataIsRoutedWhileACommandIsPending) {
    channel.submit({"AT#XTCPSEND=\"a\"", "#XTCPSEND", 1000ms}, record());
    channel.feed("\r\n#XTCPSEND: 1\r\n\r\n#XTCPDATA: 4\r\nOK\r\n\r\nOK\r\n");
    ASSERT_EQ(payloads.size(), 1u);
    EXPECT_EQ(payloads[0].bytes, "OK\r\n");
    ASSERT_EQ(responses.size(), 1u);
    EXPECT_TRUE(responses[0].ok());
}

TEST_F(ChannelTest, DataModeRoundTrip) {
    bool entered = false;
    channel.enter_data_mode({"AT#XTCPSEND", "", 1000ms}, [&](CommandResponse r) { entered = r.ok(); });
    EXPECT_EQ(link.take(), "AT#XTCPSEND\r\n");
    EXPECT_EQ(channel.write_data("early"), ChannelError::not_in_data_mode);
    channel.feed("\r\nOK\r\n");
    ASSERT_TRUE(entered);
    EXPECT_EQ(channel.mode(), LinkMode::data);
    channel.submit({"AT+CEREG?", "+CEREG", 1000ms}, record());
    EXPECT_FALSE(channel.write_data(std::string("a\0b\r\n\"", 6)));
    EXPECT_EQ(link.take(), std::string("a\0b\r\n\"", 6)) << "commands wait while the link is in data mode";
    channel.feed("downlink\r\nOK\r\n");
    run_until([&] { return raw == "downlink\r\nOK\r\n"; });
    std::optional<int> status;
    channel.exit_data_mode([&](std::error_code error, int s) {
        EXPECT_FALSE(error);
        status = s;
    });
    EXPECT_EQ(link.take(), "+++");
    channel.feed("\r\n#XDATAMODE: 0\r\n");
    ASSERT_EQ(status, 0);
    EXPECT_EQ(channel.mode(), LinkMode::command);
    EXPECT_EQ(link.take(), "AT+CEREG?\r\n") << "the queued command goes out once back in command mode";
}

// What a slow app's pause of the serial line depends on (modem/slm_receive_pause.cpp): the channel says when it
// awaits the modem — a command queued or in flight, a data-mode exit under way — and when that changes.
TEST_F(ChannelTest, TellsWhenItAwaitsTheModem) {
    std::vector<bool> seen;
    channel.set_activity_listener([&] { seen.push_back(channel.awaiting_modem()); });
    EXPECT_FALSE(channel.awaiting_modem());
    channel.enter_data_mode({"AT#XTCPSEND", "", 1000ms}, record());
    EXPECT_TRUE(channel.awaiting_modem());
    channel.feed("\r\nOK\r\n");
    link.take();
    EXPECT_FALSE(channel.awaiting_modem()) << "in data mode, the uplink needs no answer";
    EXPECT_EQ(seen, (std::vector<bool>{true, false}));
    channel.submit({"AT+CEREG?", "+CEREG", 1000ms}, record());
    EXPECT_TRUE(channel.awaiting_modem()) << "a command waits for the data-mode exit";
    channel.exit_data_mode([](std::error_code, int) {});
    EXPECT_EQ(link.take(), "+++");
    channel.feed("\r\n#XDATAMODE: 0\r\n");
    EXPECT_TRUE(channel.awaiting_modem()) << "the queued command is in flight now";
    channel.feed("\r\n+CEREG: 5,1\r\n\r\nOK\r\n");
    EXPECT_FALSE(channel.awaiting_modem());
    EXPECT_EQ(seen, (std::vector<bool>{true, false, true, false}));
    // A data-mode exit alone (the idle exit) awaits the firmware's confirmation.
    channel.enter_data_mode({"AT#XTCPSEND", "", 1000ms}, record());
    channel.feed("\r\nOK\r\n");
    channel.exit_data_mode([](std::error_code, int) {});
    EXPECT_TRUE(channel.awaiting_modem());
    channel.feed("\r\n#XDATAMODE: 0\r\n");
    EXPECT_FALSE(channel.awaiting_modem());
}

TEST_F(ChannelTest, PeerTerminatorIsAnsweredAndReportsTheError) {
    channel.enter_data_mode({"AT#XTCPSEND", "", 1000ms}, record());
    channel.feed("\r\nOK\r\n");
    link.take();
    channel.feed("+++");
    run_until([&] { return !link.written.empty(); });
    EXPECT_EQ(link.take(), "+++") << "v2.7+: the host answers the firmware's +++";
    channel.feed("\r\n#XDATAMODE: -104\r\n");
    EXPECT_EQ(exits, std::vector<int>{-104});
    EXPECT_EQ(raw, "") << "the terminator is a signal, not payload";
    EXPECT_EQ(channel.mode(), LinkMode::command);
}

// A caller that needs command mode while the channel answers the firmware's "+++" on its own (the driver's
// with_command_mode) waits for that exit's confirmation and learns its status, instead of being told "not in
// data mode" at once and queueing work for a connection the status reports gone.
TEST_F(ChannelTest, AnExitAskedForWhileAnsweringThePeerTerminatorWaitsForItsConfirmation) {
    channel.enter_data_mode({"AT#XTCPSEND", "", 1000ms}, record());
    channel.feed("\r\nOK\r\n");
    link.take();
    channel.feed("+++");
    run_until([&] { return !link.written.empty(); });
    EXPECT_EQ(link.take(), "+++");
    EXPECT_EQ(channel.mode(), LinkMode::leaving_data_mode);
    std::optional<std::error_code> error;
    std::optional<int> status;
    channel.exit_data_mode([&](std::error_code e, int s) {
        error = e;
        status = s;
        EXPECT_TRUE(exits.empty()) << "the exit handler runs before data_mode_exited";
    });
    EXPECT_FALSE(status) << "not answered before the firmware confirms";
    EXPECT_EQ(link.take(), "") << "no second +++";
    channel.feed("\r\n#XDATAMODE: -104\r\n");
    ASSERT_TRUE(status);
    EXPECT_FALSE(*error);
    EXPECT_EQ(*status, -104);
    EXPECT_EQ(exits, std::vector<int>{-104});
    EXPECT_TRUE(channel.last_exit_requested()) << "answering the firmware's +++ is an exit of ours";
}

// Whether an exit answered a "+++" of ours or was the firmware's own (v2.1-v2.4 leave data mode by themselves
// when the proxy breaks): the modem layer reads the registration again after the latter, URCs having been
// dropped meanwhile.
TEST_F(ChannelTest, TellsWhetherTheLastDataModeExitWasAskedFor) {
    channel.enter_data_mode({"AT#XTCPSEND", "", 1000ms}, record());
    channel.feed("\r\nOK\r\n");
    channel.exit_data_mode([](std::error_code, int) {});
    channel.feed("\r\n#XDATAMODE: 0\r\n");
    EXPECT_TRUE(channel.last_exit_requested());
}

// A reboot in data mode (issue 15): the firmware's "Ready" comes after a quiet line as raw downlink. It is held,
// and the channel leaves data mode to tell: a rebooted firmware never confirms, and the banner goes nowhere; a live
// one confirms, and the bytes were the peer's after all. Nothing more is written in between.
class ChannelRebootInDataModeTest : public ChannelTest {
protected:
    void banner_after_a_quiet_line() {
        channel.set_link_unsure_handler([this] { ++unsure; });
        channel.enter_data_mode({"AT#XTCPSEND", "", 1000ms}, record());
        channel.feed("\r\nOK\r\n");
        channel.feed("abc");
        ASSERT_TRUE(channel.data_mode_writable());
        // The line falls quiet for longer than the channel's idle gap: the io_context's timers, not a race.
        io.run_for(200ms);
        io.restart();
        link.take();
        channel.feed("Ready\r\n");
        run_until([&] { return link.written == "+++"; });
        EXPECT_FALSE(channel.data_mode_writable()) << "an exit is under way";
        EXPECT_EQ(channel.write_data("more"), make_error_code(ChannelError::not_in_data_mode));
        EXPECT_EQ(raw, "abc") << "the banner is held";
    }
    int unsure = 0;
};

TEST_F(ChannelRebootInDataModeTest, AnUnconfirmedExitDropsTheBannerAndSaysTheLinkIsUnsure) {
    banner_after_a_quiet_line();
    run_until([&] { return unsure == 1; });
    EXPECT_EQ(raw, "abc") << "the banner never reaches the app";
    EXPECT_EQ(channel.mode(), LinkMode::command);
    EXPECT_TRUE(exits.empty());
    EXPECT_EQ(channel.stats().timeouts, 1u);
}

TEST_F(ChannelRebootInDataModeTest, AConfirmedExitDeliversTheBannerAsData) {
    banner_after_a_quiet_line();
    channel.feed("\r\n#XDATAMODE: 0\r\n");
    EXPECT_EQ(raw, "abcReady\r\n");
    EXPECT_EQ(exits, std::vector<int>{0});
    EXPECT_TRUE(channel.last_exit_requested());
    EXPECT_EQ(unsure, 0);
}

TEST_F(ChannelRebootInDataModeTest, BytesBehindTheBannerAreData) {
    channel.enter_data_mode({"AT#XTCPSEND", "", 1000ms}, record());
    channel.feed("\r\nOK\r\n");
    io.run_for(200ms);
    io.restart();
    channel.feed("Ready\r\n");
    channel.feed("more");
    EXPECT_EQ(raw, "Ready\r\nmore");
}

class Channel24Test : public ChannelTest {
protected:
    Channel24Test() : ChannelTest({2, 4, 0}) {}
};

TEST_F(Channel24Test, AnAutomaticExitIsNotAskedFor) {
    channel.enter_data_mode({"AT#XTCPSEND", "", 1000ms}, record());
    channel.feed("\r\nOK\r\n");
    link.take();
    channel.feed("\r\n#XDATAMODE: -104\r\n");
    run_until([&] { return !exits.empty(); });
    EXPECT_EQ(exits, std::vector<int>{-104});
    EXPECT_FALSE(channel.last_exit_requested());
    EXPECT_EQ(channel.mode(), LinkMode::command);
    // Uplink bytes still in flight are AT input to the firmware now: their line is ended, and the next command
    // waits behind a probe, so the ERROR they cause is not taken for its answer.
    EXPECT_EQ(link.take(), "\r\n");
    responses.clear();  // the entry's
    channel.submit({"AT#XTCPCLI=0", "#XTCPCLI", 1000ms}, record());
    EXPECT_EQ(link.take(), "AT+CFUN?\r\n");
    channel.feed("\r\nERROR\r\n");  // the junk line's
    EXPECT_TRUE(responses.empty());
    channel.feed("\r\n+CFUN: 1\r\n\r\nOK\r\n");
    EXPECT_EQ(link.take(), "AT#XTCPCLI=0\r\n");
    channel.feed("\r\nOK\r\n");
    ASSERT_EQ(responses.size(), 1u);
    EXPECT_TRUE(responses[0].ok());
}

TEST_F(Channel18Test, SilenceGuardBeforeTerminator) {
    bool entered = false;
    channel.enter_data_mode({"AT#XTCPSEND", "", 1000ms}, [&](CommandResponse r) { entered = r.ok(); });
    // v1.7/v1.8 enter data mode without answering.
    EXPECT_TRUE(entered);
    link.take();
    ASSERT_FALSE(channel.write_data("payload"));
    link.take();
    std::optional<int> status;
    channel.exit_data_mode([&](std::error_code, int s) { status = s; });
    io.poll();
    EXPECT_EQ(link.take(), "") << "v1.8 needs a second of silence before +++";
    run_until([&] { return !link.written.empty(); }, 3000ms);
    EXPECT_EQ(link.take(), "+++");
    channel.feed("\r\nOK\r\n");
    EXPECT_EQ(status, 0);
}

TEST_F(ChannelTest, AsyncCommandWorksWithCallbacks) {
    std::optional<CommandResponse> got;
    channel.async_command(CommandRequest{"AT", "", 1000ms}, [&](CommandResponse r) { got = std::move(r); });
    channel.feed("\r\nOK\r\n");
    ASSERT_TRUE(got);
    EXPECT_TRUE(got->ok());
}

TEST_F(ChannelTest, SilentModemFailsQueuedCommandsInsteadOfProbingForever) {
    channel.submit({"AT", "", 30ms}, record());
    run_until([&] { return responses.size() == 1; });
    EXPECT_EQ(responses[0].error, ChannelError::timeout);
    EXPECT_EQ(link.take(), "AT\r\n");
    channel.submit({"AT", "", 30ms}, record());
    EXPECT_EQ(link.take(), "AT+CFUN?\r\n") << "a probe goes before the next command after a timeout";
    // The probe goes unanswered too: the queued command fails rather than waiting behind probes forever.
    run_until([&] { return responses.size() == 2; });
    EXPECT_EQ(responses[1].error, ChannelError::timeout);
    EXPECT_EQ(link.take(), "") << "no further probe while nothing is queued";
    // A modem that comes back answers the next probe, then the command.
    channel.submit({"AT+CGPADDR=0", "+CGPADDR", 1000ms}, record());
    EXPECT_EQ(link.take(), "AT+CFUN?\r\n");
    channel.feed("\r\n+CFUN: 1\r\n\r\nOK\r\n");
    EXPECT_EQ(link.take(), "AT+CGPADDR=0\r\n");
    channel.feed("\r\n+CGPADDR: 0,\"10.0.0.2\"\r\n\r\nOK\r\n");
    ASSERT_EQ(responses.size(), 3u);
    EXPECT_TRUE(responses[2].ok());
}

// The modem rebooted 1000 bytes into a 2048-byte #XTCPDATA payload (issue 15): its "Ready" and anything
// after it used to be taken as payload, and the channel waited for the rest forever. The silence after the
// banner gives the payload up: no byte of it is delivered, the reboot is seen, and the command that was
// waiting fails with modem_reset.
TEST_F(ChannelTest, AModemResetInTheMiddleOfAPayloadIsSeenOnceTheLineFallsSilent) {
    channel.submit({"AT#XGETADDRINFO=\"example.com\"", "#XGETADDRINFO", 30000ms}, record());
    channel.feed("\r\n#XTCPDATA: 2048\r\n");
    channel.feed(std::string(1000, 'p'));
    channel.feed("\r\nReady\r\n");
    const auto start = std::chrono::steady_clock::now();
    run_until([&] { return readies == 1; });
    // 1048 bytes still owed: 92 ms of wire time at 115200, plus the margin.
    EXPECT_GE(std::chrono::steady_clock::now() - start, payload_stall_margin);
    ASSERT_EQ(losses.size(), 1u);
    EXPECT_EQ(losses[0], (PayloadLost{Proxy::tcp, 2048, 1009}));
    EXPECT_TRUE(payloads.empty());
    ASSERT_EQ(responses.size(), 1u);
    EXPECT_EQ(responses[0].error, ChannelError::modem_reset);
    EXPECT_EQ(channel.stats().payloads_lost, 1u);
}

// Bytes lost on the UART inside a payload: the count never completes and no banner comes. The payload is
// given up and the channel serves the next command.
TEST_F(ChannelTest, APayloadMissingBytesIsGivenUpAndTheNextCommandIsServed) {
    channel.feed("\r\n#XTCPDATA: 100\r\n" + std::string(60, 'q'));
    run_until([&] { return losses.size() == 1; });
    EXPECT_EQ(losses[0], (PayloadLost{Proxy::tcp, 100, 60}));
    EXPECT_EQ(readies, 0);
    EXPECT_TRUE(payloads.empty());
    link.take();
    channel.submit({"AT+CGPADDR=0", "+CGPADDR", 1000ms}, record());
    run_until([&] { return !link.written.empty(); });
    channel.feed("\r\n+CGPADDR: 0,\"10.1.2.3\"\r\n\r\nOK\r\n");
    run_until([&] { return responses.size() == 1; });
    EXPECT_TRUE(responses[0].ok());
    // The next payload is framed as usual.
    channel.feed("\r\n#XTCPDATA: 3\r\nabc");
    run_until([&] { return payloads.size() == 1; });
    EXPECT_EQ(payloads[0].bytes, "abc");
}

// A payload that trickles in (or a line slmd paused for a slow app) is not given up: only silence counts,
// and time paused does not.
TEST_F(ChannelTest, APausedLineNeverGivesAPayloadUp) {
    channel.feed("\r\n#XTCPDATA: 10\r\nabcde");
    channel.set_receive_paused(true);
    const auto paused_until = std::chrono::steady_clock::now() + payload_stall_margin + 500ms;
    while (std::chrono::steady_clock::now() < paused_until) {
        io.run_for(20ms);
        io.restart();
    }
    EXPECT_TRUE(losses.empty());
    channel.set_receive_paused(false);
    channel.feed("fghij");
    run_until([&] { return payloads.size() == 1; });
    EXPECT_EQ(payloads[0].bytes, "abcdefghij");
    EXPECT_TRUE(losses.empty());
}

// A generic socket's #XRECV answer: its counted bytes belong to the command, not to a proxy.
TEST_F(ChannelTest, ARecvAnswerCarriesItsCountedBytes) {
    channel.submit({"AT#XRECV=0,64", "#XRECV", 1000ms}, record());
    EXPECT_EQ(link.take(), "AT#XRECV=0,64\r\n");
    channel.feed(std::string("\r\n#XRECV: 5\r\nOK\r\n\0\r\nOK\r\n", 24));
    ASSERT_EQ(responses.size(), 1u);
    EXPECT_TRUE(responses[0].ok());
    EXPECT_EQ(responses[0].info, std::vector<std::string>{"#XRECV: 5"});
    EXPECT_EQ(responses[0].payload, std::string("OK\r\n\0", 5));
    EXPECT_FALSE(responses[0].payload_lost);
    EXPECT_TRUE(payloads.empty()) << "no proxy hears a socket's bytes";
}

TEST_F(Channel18Test, ARecvAnswerIsCountedOnADataFirstRelease) {
    channel.submit({"AT#XRECV=1", "#XRECV", 1000ms}, record());
    channel.feed("\r\n#XRECV: 6\r\nline\r\n\r\nOK\r\n");
    run_until([&] { return responses.size() == 1; });  // data-first: the OK waits out the look-back
    ASSERT_EQ(responses.size(), 1u);
    EXPECT_EQ(responses[0].payload, "line\r\n");
    EXPECT_TRUE(urcs.empty());
}

TEST_F(ChannelTest, ARecvAnswerThatDoesNotMatchItsCountIsReportedLost) {
    channel.submit({"AT#XRECV=0,64", "#XRECV", 1000ms}, record());
    channel.feed("\r\n#XRECV: 2\r\nhix\r\nOK\r\n");
    ASSERT_EQ(responses.size(), 1u);
    EXPECT_TRUE(responses[0].payload_lost);
    EXPECT_EQ(responses[0].payload, "");
    EXPECT_TRUE(losses.empty()) << "a socket's loss is its command's, not a proxy's";
}

// Serial Modem (docs/reference/serial-modem-and-generic-sockets.md 2.8): CR ends a command; a counted send
// leaves data mode by itself, so no "+++" follows its bytes, even when they hold one.
TEST_F(ChannelSerialModemTest, CommandsEndInCrAlone) {
    channel.submit({"AT#XSMVER", "#XSMVER", 1000ms}, record());
    EXPECT_EQ(link.take(), "AT#XSMVER\r");
    channel.feed("\r\n#XSMVER: \"v1.0.1\",\"3.2.4\"\r\n\r\nOK\r\n");
    ASSERT_EQ(responses.size(), 1u);
    EXPECT_EQ(responses[0].info, std::vector<std::string>{"#XSMVER: \"v1.0.1\",\"3.2.4\""});
}

TEST_F(ChannelSerialModemTest, ACountedSendEndsWithoutATerminatorAndACommandWaitsForIt) {
    std::vector<std::pair<std::error_code, int>> counted_exits;
    bool entered = false;
    channel.enter_data_mode({"AT#XSEND=3,2,0,7", "", 1000ms}, [&](CommandResponse r) {
        entered = r.ok();
        const auto error = channel.write_counted_data(std::string("a+++\0\r\n", 7),
                                                      [&](std::error_code e, int status) { counted_exits.emplace_back(e, status); });
        EXPECT_FALSE(error);
    });
    EXPECT_EQ(link.take(), "AT#XSEND=3,2,0,7\r");
    channel.feed("\r\nOK\r\n");
    ASSERT_TRUE(entered);
    EXPECT_EQ(link.take(), std::string("a+++\0\r\n", 7));
    EXPECT_FALSE(channel.data_mode_writable()) << "the count is spent";
    // Someone else needs command mode meanwhile: no "+++" (it would be payload); it waits for the end.
    std::vector<std::pair<std::error_code, int>> joined_exits;
    channel.exit_data_mode([&](std::error_code e, int status) { joined_exits.emplace_back(e, status); });
    io.run_for(50ms);
    io.restart();
    EXPECT_EQ(link.take(), "");
    channel.feed("\r\n#XDATAMODE: 0\r\n");
    EXPECT_EQ(counted_exits, (std::vector<std::pair<std::error_code, int>>{{{}, 0}}));
    EXPECT_EQ(joined_exits, (std::vector<std::pair<std::error_code, int>>{{{}, 0}}));
    EXPECT_EQ(exits, std::vector<int>{0});
    EXPECT_TRUE(channel.last_exit_requested());
    EXPECT_EQ(channel.mode(), LinkMode::command);
}

TEST_F(ChannelSerialModemTest, AFailedCountedSendIsAnsweredLikeAPeerTerminator) {
    std::vector<int> statuses;
    channel.enter_data_mode({"AT#XSEND=3,2,0,4", "", 1000ms}, [&](CommandResponse) {
        EXPECT_FALSE(channel.write_counted_data("abcd", [&](std::error_code, int status) { statuses.push_back(status); }));
    });
    channel.feed("\r\nOK\r\n");
    link.take();
    // The socket failed: the firmware writes "+++" and drops input until the host's own "+++".
    channel.feed("+++");
    run_until([&] { return link.written.find("+++") != std::string::npos; });
    channel.feed("\r\n#XDATAMODE: -1\r\n");
    EXPECT_EQ(statuses, std::vector<int>{-1});
    EXPECT_EQ(channel.mode(), LinkMode::command);
}

// One read can hold a URC and the entry's OK behind it: the URC's handler asking for command mode (a close
// report, for example) must not slip a "+++" in before the counted bytes: the owner writes first, then the
// exit joins the firmware's own.
TEST_F(ChannelSerialModemTest, AnExitAskedForBeforeTheEntryHandlerRanWaitsForTheCountedBytes) {
    std::vector<int> joined;
    channel.set_handlers(ChannelHandlers{
        .urc =
            [&](const std::string&) {
                channel.exit_data_mode([&](std::error_code, int status) { joined.push_back(status); });
            },
        .ready = [] {},
        .proxy_data = [](ProxyData&&) {},
        .raw_data = [](std::string_view) {},
        .data_mode_exited = [](int) {},
        .payload_lost = [](const PayloadLost&) {},
    });
    std::vector<int> counted;
    channel.enter_data_mode({"AT#XSEND=3,2,0,4", "", 1000ms}, [&](CommandResponse r) {
        ASSERT_TRUE(r.ok());
        EXPECT_FALSE(channel.write_counted_data("ab+c", [&](std::error_code, int status) { counted.push_back(status); }));
    });
    EXPECT_EQ(link.take(), "AT#XSEND=3,2,0,4\r");
    channel.feed("\r\n#XAPOLL: 4,16\r\n\r\nOK\r\n");
    EXPECT_EQ(link.take(), "ab+c") << "the counted bytes, and no terminator";
    channel.feed("\r\n#XDATAMODE: 0\r\n");
    EXPECT_EQ(counted, std::vector<int>{0});
    EXPECT_EQ(joined, std::vector<int>{0});
    EXPECT_EQ(channel.mode(), LinkMode::command);
}
