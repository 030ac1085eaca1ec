// The credential store's AT side (modem/credentials.hpp): validation and normalisation, command lines, the
// list parser on real byte strings, the errno mapping, log redaction, and the sequencer driven over an
// in-memory link (what it writes is recorded, what the modem "says" is fed in).
#include "modem/credentials.hpp"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <cerrno>
#include <optional>
#include <string>
#include <vector>

#include "sys/log.hpp"

using namespace slmd::modem;
using namespace std::chrono_literals;

namespace {

const std::string ca_pem =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBszCCAVmgAwIBAgIUTESTTESTTESTTESTTESTTESTTEQwCgYIKoZIzj0EAwIw\n"
    "Dz0NMAsGA1UEAwwEdGVzdDAeFw0yNjAxMDEwMDAwMDBaFw0zNjAxMDEwMDAwMDBa\n"
    "-----END CERTIFICATE-----\n";
const std::string key_pem =
    "-----BEGIN EC PRIVATE KEY-----\n"
    "MHcCAQEEIBTESTTESTTESTTESTTESTTESTTESTTESTTESTTESTTESToAoGCCqGSM49\n"
    "-----END EC PRIVATE KEY-----\n";

CredentialCommand write(std::int64_t tag, int type, std::string content, bool force = false) {
    return {CredentialOperation::write, tag, type, std::move(content), force};
}

std::optional<int> refusal(CredentialCommand command) {
    auto result = validate_credential(command);
    if (!result) return std::nullopt;
    return result->error;
}

}  // namespace

TEST(CredentialValidation, AcceptsEachTypeInItsForm) {
    EXPECT_EQ(refusal(write(42, 0, ca_pem)), std::nullopt);
    EXPECT_EQ(refusal(write(42, 1, ca_pem + ca_pem)), std::nullopt);  // a chain
    EXPECT_EQ(refusal(write(42, 2, key_pem)), std::nullopt);
    EXPECT_EQ(refusal(write(42, 2, "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n" +
                                       key_pem)),
              std::nullopt);
    EXPECT_EQ(refusal(write(42, 3, "0123456789abcdefABCDEF\n")), std::nullopt);
    EXPECT_EQ(refusal(write(42, 4, "device-17@example.com")), std::nullopt);
    EXPECT_EQ(refusal(write(0, 0, ca_pem)), std::nullopt);
    EXPECT_EQ(refusal(write(2147483647, 0, ca_pem)), std::nullopt);
}

TEST(CredentialValidation, RefusesWithTheDocumentedErrno) {
    struct Row {
        CredentialCommand command;
        int error;
    };
    const std::vector<Row> rows = {
        {write(-1, 0, ca_pem), EINVAL},
        {write(2147483648LL, 0, ca_pem), EINVAL},
        {write(1, 5, ca_pem), EINVAL},
        {write(1, -1, ca_pem), EINVAL},
        {write(1, 0, std::string(4001, 'A')), EMSGSIZE},
        {write(1, 0, ""), EINVAL},
        {write(1, 4, "a\"b"), EINVAL},
        {write(1, 4, std::string("a\0b", 3)), EINVAL},
        {write(1, 0, "just text\n"), EINVAL},                                                  // no PEM block
        {write(1, 0, key_pem), EINVAL},                                                         // a key as a CA
        {write(1, 1, key_pem), EINVAL},                                                         // a key as a cert
        {write(1, 2, ca_pem), EINVAL},                                                          // a cert as a key
        {write(1, 0, "-----BEGIN CERTIFICATE-----\nMIIB\n"), EINVAL},                           // no END
        {write(1, 0, "-----BEGIN CERTIFICATE-----\nMI IB!\n-----END CERTIFICATE-----\n"), EINVAL},  // not base64
        {write(1, 0, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END PRIVATE KEY-----\n"), EINVAL},   // mismatched
        {write(1, 0, "-----BEGIN CERTIFICATE-----\nMI\x08IB\n-----END CERTIFICATE-----\n"), EINVAL},  // backspace
        {write(1, 3, "abc"), EINVAL},       // odd number of hex digits
        {write(1, 3, "0x12"), EINVAL},      // not hex
        {write(1, 3, "\n"), EINVAL},        // empty once its line ending is gone
        {write(1, 4, "two\nlines"), EINVAL},
        {write(1, 4, "tab\there"), EINVAL},
        {{CredentialOperation::remove, -1, 0, "", false}, EINVAL},  // remove names one credential
        {{CredentialOperation::remove, 5, -1, "", false}, EINVAL},
        {{CredentialOperation::list, -2, -1, "", false}, EINVAL},
        {{CredentialOperation::list, -1, 5, "", false}, EINVAL},
        {{CredentialOperation::remove, 5, 0, "x", false}, EINVAL},  // content only with a write
    };
    for (const auto& row : rows) {
        EXPECT_EQ(refusal(row.command), row.error) << row.command.sec_tag << "/" << row.command.type << " "
                                                   << row.command.content.substr(0, 40);
    }
    EXPECT_EQ(refusal(write(1, 4, std::string(4000, 'i'))), std::nullopt);  // the limit itself is fine
}

TEST(CredentialValidation, NormalisesLineEndingsToLf) {
    auto crlf = write(7, 0, "-----BEGIN CERTIFICATE-----\r\nMIIB\r\n-----END CERTIFICATE-----\r\n");
    ASSERT_EQ(validate_credential(crlf), std::nullopt);
    EXPECT_EQ(crlf.content, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
    auto cr = write(7, 0, "-----BEGIN CERTIFICATE-----\rMIIB\r-----END CERTIFICATE-----\r");
    ASSERT_EQ(validate_credential(cr), std::nullopt);
    EXPECT_EQ(cr.content, crlf.content);
    auto psk = write(7, 3, "00ff\r\n");
    ASSERT_EQ(validate_credential(psk), std::nullopt);
    EXPECT_EQ(psk.content, "00ff");  // a PSK's file line ending is not part of the key
    auto identity = write(7, 4, "me\n");
    ASSERT_EQ(validate_credential(identity), std::nullopt);
    EXPECT_EQ(identity.content, "me");
}

TEST(CredentialCommands, LinesForEachOperationAndBuild) {
    EXPECT_EQ(credential_command_line(write(42, 0, "PEM\n"), false), "AT%CMNG=0,42,0,\"PEM\n\"");
    // Content no quoted parameter can carry never becomes a line (validate_credential() refuses it first).
    EXPECT_EQ(credential_command_line(write(42, 0, "a\"b"), false), std::nullopt);
    EXPECT_EQ(credential_command_line(write(42, 0, ""), false), std::nullopt);
    EXPECT_EQ(credential_command_line(write(42, 3, "00ff"), true), "AT#XCMNG=0,42,3,\"00ff\"");
    EXPECT_EQ(credential_command_line({CredentialOperation::list, -1, -1, "", false}, false), "AT%CMNG=1");
    EXPECT_EQ(credential_command_line({CredentialOperation::list, 42, -1, "", false}, false), "AT%CMNG=1,42");
    EXPECT_EQ(credential_command_line({CredentialOperation::list, 42, 2, "", false}, false), "AT%CMNG=1,42,2");
    EXPECT_EQ(credential_command_line({CredentialOperation::list, -1, 2, "", false}, false), "AT%CMNG=1");
    EXPECT_EQ(credential_command_line({CredentialOperation::list, 42, 2, "", false}, true), "AT#XCMNG=1");
    EXPECT_EQ(credential_command_line({CredentialOperation::remove, 42, 1, "", false}, false), "AT%CMNG=3,42,1");
    EXPECT_EQ(credential_command_line({CredentialOperation::remove, 42, 1, "", false}, true), "AT#XCMNG=3,42,1");
}

TEST(CredentialList, ParsesRealLines) {
    struct Row {
        std::string line;
        bool native;
        std::optional<CredentialInfo> expected;
    };
    const std::string sha = "2C43952EE9E000FF2ACC4E2ED0897C0A72AD5FA72C3D934E81741CBD54F05BD1";
    const std::vector<Row> rows = {
        {"%CMNG: 42,0,\"" + sha + "\"", false, CredentialInfo{42, 0, sha}},
        {"%CMNG: 0,4", false, CredentialInfo{0, 4, ""}},
        {"%CMNG: 2147483647,2,\"" + sha + "\"", false, CredentialInfo{2147483647, 2, sha}},
        {"%CMNG: 4294967292,0,\"" + sha + "\"", false, std::nullopt},  // the modem's own reserved tag
        {"%CMNG: 16842753,6,\"" + sha + "\"", false, std::nullopt},    // type 6: a public key of the modem's
        {"#XCMNG: 42,1", true, CredentialInfo{42, 1, ""}},
        {"#XCMNG: 7,3", true, CredentialInfo{7, 3, ""}},
        {"%CMNG: 42,0", true, std::nullopt},                    // the other build's prefix
        {"#XCMNG: 42,0", false, std::nullopt},
        {"%CMNG: 42,0,\"XYZ\"", false, std::nullopt},           // not hex
        {"%CMNG: 42,0,\"" + sha, false, std::nullopt},          // cut
        {"%CMNG: -1,0", false, std::nullopt},
        {"%CMNG: ,0", false, std::nullopt},
        {"%CMNG: 42", false, std::nullopt},
        {"%CMNG: 42,0,", false, std::nullopt},
        {"OK", false, std::nullopt},
    };
    for (const auto& row : rows) EXPECT_EQ(parse_credential_line(row.line, row.native), row.expected) << row.line;
}

TEST(CredentialErrors, MapsTheModemsAnswers) {
    auto answer = [](slmd::at::FinalKind kind, int code) {
        slmd::at::CommandResponse response;
        response.final = {kind, code};
        return credential_failure(response, "AT%CMNG=3,1,0").error;
    };
    using slmd::at::FinalKind;
    EXPECT_EQ(answer(FinalKind::ok, 0), 0);
    EXPECT_EQ(answer(FinalKind::cme_error, 513), ENOENT);
    EXPECT_EQ(answer(FinalKind::cme_error, 514), EACCES);
    EXPECT_EQ(answer(FinalKind::cme_error, 515), ENOSPC);
    EXPECT_EQ(answer(FinalKind::cme_error, 518), EBUSY);
    EXPECT_EQ(answer(FinalKind::cme_error, 520), EIO);
    EXPECT_EQ(answer(FinalKind::error, 0), EIO);
    slmd::at::CommandResponse refused;
    refused.final = {FinalKind::cme_error, 527};
    EXPECT_EQ(credential_failure(refused, "AT%CMNG=3,1,0").message, "AT%CMNG=3,1,0 -> +CME ERROR: 527");
    slmd::at::CommandResponse silent;
    silent.error = make_error_code(slmd::at::ChannelError::timeout);
    EXPECT_EQ(credential_failure(silent, "x").error, ETIMEDOUT);
}

TEST(CredentialRedaction, HidesTheContentOfWritesOnly) {
    EXPECT_EQ(redact_credential_line("AT%CMNG=0,42,0,\"" + ca_pem + "\""),
              "AT%CMNG=0,42,0,\"<" + std::to_string(ca_pem.size()) + " bytes redacted>\"");
    EXPECT_EQ(redact_credential_line("at#xcmng=0,1,3,\"00ff\""), "at#xcmng=0,1,3,\"<4 bytes redacted>\"");
    EXPECT_EQ(redact_credential_line("AT%CMNG=0,1,3,\"00ff"), "AT%CMNG=0,1,3,\"<4 bytes redacted>\"");  // unclosed
    EXPECT_EQ(redact_credential_line("AT%CMNG=1"), "AT%CMNG=1");
    EXPECT_EQ(redact_credential_line("AT%CMNG=3,42,0"), "AT%CMNG=3,42,0");
    EXPECT_EQ(redact_credential_line("AT#XTCPSEND=\"hello\""), "AT#XTCPSEND=\"hello\"");
}

TEST(CredentialRedaction, HidesCredentialsConcatenatedAfterOtherCommands) {
    // An administrator's line may carry a credential write anywhere, not only as its first command.
    EXPECT_EQ(redact_credential_line("AT+CMEE?;%CMNG=0,42,0,\"secret\""), "AT+CMEE?;%CMNG=0,42,0,\"<6 bytes redacted>\"");
    EXPECT_EQ(redact_credential_line("at+cgmi;#xcmng=0,1,3,\"00ff\";+CGMR"),
              "at+cgmi;#xcmng=0,1,3,\"<4 bytes redacted>\";+CGMR");
    EXPECT_EQ(redact_credential_line("AT%CMNG=0,1,3,\"aa\";%CMNG=0,2,3,\"bbbb\""),
              "AT%CMNG=0,1,3,\"<2 bytes redacted>\";%CMNG=0,2,3,\"<4 bytes redacted>\"");
    EXPECT_EQ(redact_credential_line("AT+CGMI; AT%CMNG=0,1,4,\"id"), "AT+CGMI; AT%CMNG=0,1,4,\"<2 bytes redacted>\"");
    // A ';' inside another command's quoted string separates nothing, and that string is not a credential.
    EXPECT_EQ(redact_credential_line("AT#XTCPSEND=\"a;%CMNG=0,1,3,x\""), "AT#XTCPSEND=\"a;%CMNG=0,1,3,x\"");
    EXPECT_EQ(redact_credential_line("AT+CGMI;+CGMR"), "AT+CGMI;+CGMR");
}

// The sequencer over an in-memory link.
namespace {

class RecordingLink : public slmd::at::LinkWriter {
public:
    void write_to_modem(std::string bytes) override { written += bytes; }
    std::string take() { return std::exchange(written, {}); }
    std::string written;
};

class CredentialSequenceTest : public ::testing::Test {
protected:
    CredentialSequenceTest()
        : channel(io.get_executor(), link, slmd::at::FirmwareProfile::for_version({2, 9, 0}), 115200) {
        channel.set_handlers(slmd::at::ChannelHandlers{
            .urc = [](const std::string&) {},
            .ready = [] {},
            .proxy_data = [](slmd::at::ProxyData&&) {},
            .raw_data = [](std::string_view) {},
            .data_mode_exited = [](int) {},
            .payload_lost = [](const slmd::at::PayloadLost&) {},
        });
        hooks.radio_going_off = [this] { events.push_back("off"); };
        hooks.radio_back = [this] { events.push_back("back"); };
    }

    void start(CredentialCommand c) {
        command = std::move(c);
        ASSERT_EQ(validate_credential(command), std::nullopt);
        boost::asio::co_spawn(io, run_credential_command(channel, command, hooks),
                              [this](std::exception_ptr, CredentialResult r) { result = std::move(r); });
    }
    // Runs until the link carries `line` + CRLF (and returns what was written), failing after a deadline.
    std::string expect_written(const std::string& line) {
        const auto deadline = std::chrono::steady_clock::now() + 5s;
        while (link.written.find(line + "\r\n") == std::string::npos && std::chrono::steady_clock::now() < deadline) {
            io.run_for(2ms);
            io.restart();
        }
        EXPECT_EQ(link.written, line + "\r\n");
        return link.take();
    }
    void finish() {
        const auto deadline = std::chrono::steady_clock::now() + 5s;
        while (!result && std::chrono::steady_clock::now() < deadline) {
            io.run_for(2ms);
            io.restart();
        }
        ASSERT_TRUE(result.has_value());
    }

    boost::asio::io_context io;
    RecordingLink link;
    slmd::at::Channel channel;
    CredentialHooks hooks;
    CredentialCommand command;
    std::vector<std::string> events;
    std::optional<CredentialResult> result;
};

}  // namespace

TEST_F(CredentialSequenceTest, WriteSwitchesTheRadioOffAroundCmng) {
    start(write(42, 0, ca_pem));
    expect_written("AT+CFUN=4");
    EXPECT_EQ(events, std::vector<std::string>{"off"});
    channel.feed("\r\nOK\r\n");
    expect_written("AT%CMNG=0,42,0,\"" + ca_pem + "\"");
    channel.feed("\r\nOK\r\n");
    expect_written("AT+CFUN=1");
    EXPECT_FALSE(result);
    channel.feed("\r\nOK\r\n");
    finish();
    EXPECT_EQ(result->error, 0);
    EXPECT_EQ(events, (std::vector<std::string>{"off", "back"}));
}

TEST_F(CredentialSequenceTest, FailedCmngStillSwitchesTheRadioBackOn) {
    start({CredentialOperation::remove, 42, 0, "", false});
    expect_written("AT+CFUN=4");
    channel.feed("\r\nOK\r\n");
    expect_written("AT%CMNG=3,42,0");
    channel.feed("\r\n+CME ERROR: 513\r\n");
    expect_written("AT+CFUN=1");
    channel.feed("\r\nOK\r\n");
    finish();
    EXPECT_EQ(result->error, ENOENT);
    EXPECT_EQ(events, (std::vector<std::string>{"off", "back"}));
}

TEST_F(CredentialSequenceTest, RefusedCfun4SendsNoCmngButCfun1) {
    start(write(42, 3, "00ff"));
    expect_written("AT+CFUN=4");
    channel.feed("\r\nERROR\r\n");
    expect_written("AT+CFUN=1");
    channel.feed("\r\nOK\r\n");
    finish();
    EXPECT_EQ(result->error, EIO);
    EXPECT_NE(result->message.find("radio off"), std::string::npos) << result->message;
}

TEST_F(CredentialSequenceTest, StoreBusyIsEbusy) {
    start(write(42, 4, "me"));
    expect_written("AT+CFUN=4");
    channel.feed("\r\nOK\r\n");
    expect_written("AT%CMNG=0,42,4,\"me\"");
    channel.feed("\r\n+CME ERROR: 518\r\n");
    expect_written("AT+CFUN=1");
    channel.feed("\r\nOK\r\n");
    finish();
    EXPECT_EQ(result->error, EBUSY);
}

TEST_F(CredentialSequenceTest, ResetDuringCmngEndsWithoutCfun1) {
    // The lifecycle brings a rebooted modem up again, AT+CFUN=1 included.
    start(write(42, 0, ca_pem));
    expect_written("AT+CFUN=4");
    channel.feed("\r\nOK\r\n");
    expect_written("AT%CMNG=0,42,0,\"" + ca_pem + "\"");
    channel.feed("Ready\r\n");
    finish();
    EXPECT_EQ(result->error, ECONNRESET);
    EXPECT_EQ(link.written, "");
    EXPECT_EQ(events, (std::vector<std::string>{"off", "back"}));
}

TEST_F(CredentialSequenceTest, ListParsesFiltersAndLeavesTheRadioAlone) {
    start({CredentialOperation::list, -1, 0, "", false});
    expect_written("AT%CMNG=1");
    channel.feed(
        "\r\n%CMNG: 42,0,\"2C43952EE9E000FF2ACC4E2ED0897C0A72AD5FA72C3D934E81741CBD54F05BD1\"\r\n"
        "%CMNG: 42,2,\"0000000000000000000000000000000000000000000000000000000000000000\"\r\n"
        "%CMNG: 4294967292,0,\"1111111111111111111111111111111111111111111111111111111111111111\"\r\n"
        "%CMNG: 7,0,\"ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789\"\r\n"
        "\r\nOK\r\n");
    finish();
    EXPECT_EQ(result->error, 0);
    ASSERT_EQ(result->entries.size(), 2u);
    EXPECT_EQ(result->entries[0],
              (CredentialInfo{42, 0, "2C43952EE9E000FF2ACC4E2ED0897C0A72AD5FA72C3D934E81741CBD54F05BD1"}));
    EXPECT_EQ(result->entries[1].sec_tag, 7);
    EXPECT_TRUE(events.empty());
}

TEST_F(CredentialSequenceTest, NativeTlsUsesXcmngWithoutTheRadio) {
    hooks.native_tls = true;
    start(write(9, 1, ca_pem));
    expect_written("AT#XCMNG=0,9,1,\"" + ca_pem + "\"");
    channel.feed("\r\nOK\r\n");
    finish();
    EXPECT_EQ(result->error, 0);
    EXPECT_TRUE(events.empty());
    result.reset();
    start({CredentialOperation::list, 9, -1, "", false});
    expect_written("AT#XCMNG=1");
    channel.feed("\r\n#XCMNG: 9,1\r\n#XCMNG: 10,0\r\n\r\nOK\r\n");
    finish();
    ASSERT_EQ(result->entries.size(), 1u);
    EXPECT_EQ(result->entries[0], (CredentialInfo{9, 1, ""}));
}

TEST_F(CredentialSequenceTest, TheLogNeverShowsTheContent) {
    slmd::sys::set_log_threshold(slmd::sys::LogLevel::debug);  // "at: > …" lines included
    testing::internal::CaptureStderr();
    start(write(42, 0, ca_pem));
    expect_written("AT+CFUN=4");
    channel.feed("\r\nOK\r\n");
    expect_written("AT%CMNG=0,42,0,\"" + ca_pem + "\"");
    channel.feed("\r\nOK\r\n");
    expect_written("AT+CFUN=1");
    channel.feed("\r\nOK\r\n");
    finish();
    const auto log = testing::internal::GetCapturedStderr();
    slmd::sys::set_log_threshold(slmd::sys::LogLevel::info);
    const std::string redacted = "AT%CMNG=0,42,0,\"<" + std::to_string(ca_pem.size()) + " bytes redacted>\"";
    EXPECT_NE(log.find("at: > " + redacted), std::string::npos) << log;
    EXPECT_EQ(log.find("MIIBszCCAVmgAwIBAgIU"), std::string::npos) << log;
    EXPECT_EQ(log.find("BEGIN CERTIFICATE"), std::string::npos) << log;
}
