// A serial link with a scripted SLM firmware behind it, so that modem::Modem and the drivers run in-process:
// every command line the host writes is answered with the bytes a firmware answered it with (transcripts of
// docs/reference/slm-firmware-behaviour.md, one rule per command line), bare send commands enter a data mode
// that collects the uplink until a "+++", and the test makes the firmware say things on its own (URCs, "Ready",
// #XTCPDATA), lose the link and get it back. Answers arrive from the event loop, never inside the write that
// caused them, as they would from a tty.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/post.hpp>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "at/channel.hpp"
#include "serial/link.hpp"

namespace slmd::test {

class ScriptedFirmware final : public serial::Link, public at::LinkWriter {
public:
    struct Answer {
        std::string bytes;              // what the firmware writes back, "\r\nOK\r\n" and all
        bool enters_data_mode = false;  // after these bytes, everything up to "+++" is uplink payload
        // Serial Modem's counted send (AT#XSEND=<h>,2,<flags>,<n>): data mode takes exactly this many bytes,
        // then ends by itself with data_mode_exit; a "+++" among them is payload.
        std::optional<std::size_t> counted{};
    };

    explicit ScriptedFirmware(boost::asio::any_io_executor executor) : executor_(executor) {}

    // --- the script ---
    // `line` is answered with `bytes` every time it is written (until answered otherwise).
    void answer(const std::string& line, std::string bytes, bool enters_data_mode = false) {
        answers_[line] = Answer{std::move(bytes), enters_data_mode};
    }
    // The next time `line` is written it is answered with `bytes`; later times fall back to answer().
    void answer_once(const std::string& line, std::string bytes, bool enters_data_mode = false) {
        once_[line].push_back(Answer{std::move(bytes), enters_data_mode});
    }
    // Tried before the tables, for a family of lines (quoted sends, DNS names); nullopt passes the line on.
    std::function<std::optional<Answer>(const std::string& line)> responder;
    // A line no rule answers gets "\r\nERROR\r\n" (and is recorded all the same); silent() makes it go
    // unanswered instead, like a firmware that hangs.
    void silent(const std::string& line) { silent_.push_back(line); }
    // What the firmware answers "+++" with when it leaves data mode (v2.1+: "#XDATAMODE: 0").
    std::string data_mode_exit = "\r\n#XDATAMODE: 0\r\n";
    // What ends a command line: CR+LF on SLM, CR on Serial Modem (whose line editor skips bytes before "AT").
    std::string line_end = "\r\n";

    // --- the firmware's own words ---
    void say(std::string bytes) { deliver(std::move(bytes)); }
    // The serial device goes away: bytes written meanwhile are lost, the host is told.
    void lose() {
        lost_ = true;
        in_data_mode_ = false;
        counted_left_.reset();
        pending_line_.clear();
        boost::asio::post(executor_, [this] {
            if (on_lost_) on_lost_(std::make_error_code(std::errc::io_error));
        });
    }
    void restore() {
        lost_ = false;
        boost::asio::post(executor_, [this] {
            if (on_restored_) on_restored_();
        });
    }

    // --- what the host wrote ---
    std::vector<std::string> commands;  // every command line, in order, without its CRLF
    std::string uplink;                 // bytes written in data mode, "+++" excluded
    std::size_t data_mode_entries = 0;
    std::size_t count(std::string_view line) const {
        std::size_t n = 0;
        for (const auto& command : commands) n += command == line;
        return n;
    }
    std::size_t count_prefix(std::string_view prefix) const {
        std::size_t n = 0;
        for (const auto& command : commands) n += command.rfind(prefix, 0) == 0;
        return n;
    }
    bool in_data_mode() const { return in_data_mode_; }

    // --- serial::Link ---
    void start(BytesHandler on_bytes, LinkHandler on_lost, std::function<void()> on_restored) override {
        on_bytes_ = std::move(on_bytes);
        on_lost_ = std::move(on_lost);
        on_restored_ = std::move(on_restored);
    }
    void write(std::string bytes) override {
        if (lost_) return;
        written_ += bytes.size();
        take(bytes);
        boost::asio::post(executor_, [this] {
            if (on_written_) on_written_();
        });
    }
    void pause_reading(bool paused) override {
        paused_ = paused;
        if (!paused) flush_held();
    }
    void set_write_listener(std::function<void()> listener) override { on_written_ = std::move(listener); }
    std::size_t queued_bytes() const override { return 0; }
    std::uint64_t bytes_written() const override { return written_; }

    // --- at::LinkWriter, for a channel driven without a Modem (attach() then feeds it) ---
    void write_to_modem(std::string bytes) override { write(std::move(bytes)); }
    void attach(at::Channel& channel) {
        start([&channel](std::string_view bytes) { channel.feed(bytes); }, {}, {});
    }

private:
    void take(std::string_view bytes) {
        if (in_data_mode_ && counted_left_) {
            const std::size_t n = std::min(*counted_left_, bytes.size());
            uplink += bytes.substr(0, n);
            *counted_left_ -= n;
            if (*counted_left_ > 0) return;
            in_data_mode_ = false;
            counted_left_.reset();
            deliver(data_mode_exit);
            bytes.remove_prefix(n);
            if (bytes.empty()) return;
        }
        if (in_data_mode_) {
            // The channel writes its terminator on its own, after a guard time: a write of exactly "+++".
            if (bytes == "+++") {
                in_data_mode_ = false;
                deliver(data_mode_exit);
                return;
            }
            uplink += bytes;
            return;
        }
        if (bytes == "+++") return;  // a blind terminator in command mode: the firmware takes it as noise
        pending_line_ += bytes;
        std::size_t end;
        while ((end = pending_line_.find(line_end)) != std::string::npos) {
            auto line = pending_line_.substr(0, end);
            pending_line_.erase(0, end + line_end.size());
            // Serial Modem skips whatever comes before "AT" (an LF a host sent after its CR).
            if (line_end == "\r" && line.find("AT") != std::string::npos) line.erase(0, line.find("AT"));
            commands.push_back(line);
            respond(line);
            if (in_data_mode_) {  // the rest of this write is already payload
                auto rest = std::exchange(pending_line_, {});
                if (!counted_left_) {
                    uplink += rest;
                    return;
                }
                return take(rest);
            }
        }
    }
    void respond(const std::string& line) {
        for (const auto& hanging : silent_) {
            if (hanging == line) return;
        }
        Answer answer{"\r\nERROR\r\n", false};
        if (auto custom = responder ? responder(line) : std::nullopt) {
            answer = std::move(*custom);
        } else if (auto once = once_.find(line); once != once_.end() && !once->second.empty()) {
            answer = std::move(once->second.front());
            once->second.pop_front();
        } else if (auto always = answers_.find(line); always != answers_.end()) {
            answer = always->second;
        }
        deliver(std::move(answer.bytes));
        if (answer.enters_data_mode) {
            in_data_mode_ = true;
            counted_left_ = answer.counted;
            ++data_mode_entries;
        }
    }
    void deliver(std::string bytes) {
        if (bytes.empty()) return;
        boost::asio::post(executor_, [this, bytes = std::move(bytes)]() mutable {
            if (lost_) return;
            held_ += bytes;
            if (!paused_) flush_held();
        });
    }
    void flush_held() {
        if (held_.empty() || !on_bytes_) return;
        on_bytes_(std::exchange(held_, {}));
    }

    boost::asio::any_io_executor executor_;
    std::map<std::string, Answer> answers_;
    std::map<std::string, std::deque<Answer>> once_;
    std::vector<std::string> silent_;
    std::string pending_line_;
    std::string held_;
    bool in_data_mode_ = false;
    std::optional<std::size_t> counted_left_;
    bool paused_ = false;
    bool lost_ = false;
    std::uint64_t written_ = 0;
    BytesHandler on_bytes_;
    LinkHandler on_lost_;
    std::function<void()> on_restored_;
    std::function<void()> on_written_;
};

// The answers of an SLM release to what slmd asks at bring-up and when it starts serving, as the firmware
// writes them (version "2.<minor>.0"; registered at home on cell 01234567, address 10.0.0.2).
inline void script_slm_bringup(ScriptedFirmware& firmware, int minor) {
    const std::string version = "2." + std::to_string(minor) + ".0";
    firmware.answer("AT", "\r\nOK\r\n");
    firmware.answer("AT#XSLMVER", "\r\n#XSLMVER: \"" + version + "\",\"" + version + "\"\r\n\r\nOK\r\n");
    firmware.answer("AT+CEREG=5", "\r\nOK\r\n");
    firmware.answer("AT+CFUN=1", "\r\nOK\r\n\r\n+CEREG: 1,\"0001\",\"01234567\",7,,,\"11100000\",\"11100000\"\r\n");
    firmware.answer("AT+CEREG?", "\r\n+CEREG: 5,1,\"0001\",\"01234567\",7\r\n\r\nOK\r\n");
    firmware.answer("AT+CGPADDR=0", "\r\n+CGPADDR: 0,\"10.0.0.2\"\r\n\r\nOK\r\n");
    firmware.answer("AT+CFUN=0", "\r\nOK\r\n");
    firmware.answer("AT+CFUN?", "\r\n+CFUN: 0\r\n\r\nOK\r\n");  // the channel's resync probe
    // Read forms: nothing open (-1), as after a boot.
    firmware.answer("AT#XTCPCLI?", "\r\n#XTCPCLI: -1,0\r\n\r\nOK\r\n");
    firmware.answer("AT#XTCPSVR?", "\r\n#XTCPSVR: -1,-1,0\r\n\r\nOK\r\n");
    firmware.answer("AT#XUDPCLI?", "\r\n#XUDPCLI: -1,0\r\n\r\nOK\r\n");
    firmware.answer("AT#XUDPSVR?", "\r\n#XUDPSVR: -1,0\r\n\r\nOK\r\n");
    // Test forms.
    firmware.answer("AT#XTCPCLI=?", "\r\n#XTCPCLI: (0,1,2),<url>,<port>,<sec_tag>\r\n\r\nOK\r\n");
    firmware.answer("AT#XTCPSVR=?", "\r\n#XTCPSVR: (0,1,2),<port>,<sec_tag>\r\n\r\nOK\r\n");
    firmware.answer("AT#XUDPCLI=?", "\r\n#XUDPCLI: (0,1,2),<url>,<port>,<sec_tag>\r\n\r\nOK\r\n");
    firmware.answer("AT#XUDPSVR=?", "\r\n#XUDPSVR: (0,1,2),<port>\r\n\r\nOK\r\n");
    firmware.answer("AT#XTCPHANGUP=?", "\r\n#XTCPHANGUP: <handle>\r\n\r\nOK\r\n");
    // The proxies' data-mode entries and closes.
    // Releases before v2.1 enter data mode without a word.
    const std::string entered = minor >= 1 ? "\r\nOK\r\n" : "";
    firmware.answer("AT#XTCPSEND", entered, true);
    firmware.answer("AT#XUDPSEND", entered, true);
    firmware.answer("AT#XTCPCLI=0", "\r\n#XTCPCLI: 0,\"disconnected\"\r\n\r\nOK\r\n");
    firmware.answer("AT#XUDPCLI=0", "\r\n#XUDPCLI: 0,\"disconnected\"\r\n\r\nOK\r\n");
    if (minor <= 0) firmware.data_mode_exit = "\r\nOK\r\n";
}

// How SLM 2.<minor> writes `bytes` received on its TCP proxy: header first from v2.3 on, after the bytes before.
inline std::string slm_tcp_data(int minor, const std::string& bytes) {
    const std::string header = "\r\n#XTCPDATA: " + std::to_string(bytes.size()) + "\r\n";
    return minor >= 3 ? header + bytes : bytes + header;
}

}  // namespace slmd::test
