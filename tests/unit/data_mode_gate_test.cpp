// modem::DataModeGate over an at::Channel on an in-memory link: steps run at once in command mode and wait for
// one exit in data mode, in order; a broken session is reported before them; a lost modem drops them.
#include "modem/data_mode_gate.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include <string>
#include <vector>

#include "recording_link.hpp"

using namespace slmd;
using namespace std::chrono_literals;

namespace {

using slmd::test::RecordingLink;

class DataModeGateTest : public ::testing::Test {
protected:
    DataModeGateTest() {
        gate.set_broken_session_handler([this](const modem::DataModeGate::Session& session, int status) {
            events.push_back("broken " + std::to_string(session.connection) + " " + std::to_string(status));
        });
    }
    void enter_data_mode(modem::ConnectionId connection) {
        bool entered = false;
        channel.enter_data_mode({"AT#XTCPSEND", "", 1000ms}, [&](at::CommandResponse r) { entered = r.ok(); });
        channel.feed("\r\nOK\r\n");
        ASSERT_TRUE(entered);
        gate.begin_session({modem::DataModeGate::Owner::tcp, connection});
        link.take();
    }
    // Runs the io_context until the channel wrote "+++" (its guard time), bounded.
    bool terminator_written() {
        const auto deadline = std::chrono::steady_clock::now() + 5s;
        while (link.written.find("+++") == std::string::npos) {
            if (std::chrono::steady_clock::now() > deadline) return false;
            io.run_for(5ms);
            io.restart();
        }
        return true;
    }

    boost::asio::io_context io;
    RecordingLink link;
    at::Channel channel{io.get_executor(), link, at::FirmwareProfile::for_version({2, 9, 0}), 115200};
    modem::DataModeGate gate{channel};
    std::vector<std::string> events;
};

}  // namespace

TEST_F(DataModeGateTest, InCommandModeAStepRunsAtOnce) {
    gate.with_command_mode([&] { events.push_back("step"); });
    EXPECT_EQ(events, std::vector<std::string>{"step"});
    EXPECT_TRUE(gate.in_command_mode());
    EXPECT_FALSE(gate.writable());
    EXPECT_EQ(link.take(), "");
}

TEST_F(DataModeGateTest, InDataModeStepsWaitForOneExitAndRunInOrder) {
    enter_data_mode(7);
    EXPECT_TRUE(gate.writable());
    gate.with_command_mode([&] { events.push_back("first"); });
    gate.submit({"AT+CEREG?", "+CEREG", 1000ms}, [&](at::CommandResponse) { events.push_back("answered"); });
    gate.with_command_mode([&] { events.push_back("second"); });
    EXPECT_TRUE(events.empty());
    EXPECT_FALSE(gate.writable()) << "an exit under way takes no more uplink";
    EXPECT_FALSE(gate.in_command_mode());
    ASSERT_TRUE(terminator_written());
    EXPECT_EQ(link.take(), "+++") << "one exit for all three";
    channel.feed("\r\n#XDATAMODE: 0\r\n");
    EXPECT_EQ(events, (std::vector<std::string>{"first", "second"}));
    EXPECT_EQ(link.take(), "AT+CEREG?\r\n");
    EXPECT_EQ(gate.last_exit_status(), 0);
    EXPECT_FALSE(gate.last_exit_error());
    EXPECT_EQ(gate.end_session().connection, 7u);
    EXPECT_EQ(gate.session().owner, modem::DataModeGate::Owner::none);
}

TEST_F(DataModeGateTest, ABrokenSessionIsReportedBeforeTheWaitingSteps) {
    enter_data_mode(3);
    gate.with_command_mode([&] { events.push_back("step"); });
    ASSERT_TRUE(terminator_written());
    channel.feed("\r\n#XDATAMODE: -104\r\n");
    EXPECT_EQ(events, (std::vector<std::string>{"broken 3 -104", "step"}));
    EXPECT_EQ(gate.last_exit_status(), -104);
}

TEST_F(DataModeGateTest, LeavingWithNothingToRunStillLeaves) {
    enter_data_mode(1);
    gate.leave_data_mode();
    ASSERT_TRUE(terminator_written());
    channel.feed("\r\n#XDATAMODE: 0\r\n");
    EXPECT_TRUE(gate.in_command_mode());
    gate.leave_data_mode();
    EXPECT_EQ(link.take(), "+++") << "no second exit in command mode";
}

TEST_F(DataModeGateTest, AResetDropsTheWaitingStepsAndTheSession) {
    enter_data_mode(5);
    gate.with_command_mode([&] { events.push_back("step"); });
    gate.reset();
    EXPECT_EQ(gate.session().owner, modem::DataModeGate::Owner::none);
    channel.link_lost();
    io.run_for(20ms);
    EXPECT_TRUE(events.empty());
    gate.with_command_mode([&] { events.push_back("after"); });
    EXPECT_EQ(events, std::vector<std::string>{"after"}) << "the lost link is in command mode again";
}
