// Owns: the shared SLM and 3GPP command builders (see slm_commands.hpp).
#include "modem/slm_commands.hpp"

namespace slmd::modem::command {

using namespace std::chrono_literals;

namespace {
// Closing or stopping a proxy waits for the firmware's socket close, which on a dead network takes a while.
constexpr std::chrono::milliseconds proxy_close_limit = 15s;
constexpr std::chrono::milliseconds send_limit = 15s;
constexpr std::chrono::milliseconds data_mode_entry_limit = 5s;
constexpr std::chrono::milliseconds read_limit = 5s;
}  // namespace

at::CommandRequest probe(std::chrono::milliseconds limit) { return {"AT", "", limit}; }
at::CommandRequest read_slm_version() { return {"AT#XSLMVER", "#XSLMVER", read_limit}; }
at::CommandRequest read_serial_modem_version() { return {"AT#XSMVER", "#XSMVER", read_limit}; }
at::CommandRequest set_registration_reports(int mode) {
    return {"AT+CEREG=" + std::to_string(mode), "", read_limit};
}
at::CommandRequest read_registration() { return {"AT+CEREG?", "+CEREG", read_limit}; }
at::CommandRequest read_address() { return {"AT+CGPADDR=0", "+CGPADDR", read_limit}; }
at::CommandRequest set_functional_mode(int mode, std::chrono::milliseconds limit) {
    return {"AT+CFUN=" + std::to_string(mode), "", limit};
}
at::CommandRequest reset_firmware() { return {"AT#XRESET", "", read_limit}; }

at::CommandRequest tcp_client_close() { return {"AT#XTCPCLI=0", "#XTCPCLI", proxy_close_limit}; }
at::CommandRequest tcp_send_data_mode() { return {"AT#XTCPSEND", "", data_mode_entry_limit}; }
at::CommandRequest tcp_send_string(const std::string& quoted) {
    return {"AT#XTCPSEND=" + quoted, "#XTCPSEND", send_limit};
}
at::CommandRequest tcp_server_stop() { return {"AT#XTCPSVR=0", "#XTCPSVR", proxy_close_limit}; }
at::CommandRequest tcp_server_read() { return {"AT#XTCPSVR?", "#XTCPSVR", read_limit}; }
at::CommandRequest tcp_hang_up(int handle) {
    return {"AT#XTCPHANGUP=" + std::to_string(handle), "#XTCPSVR", proxy_close_limit};
}
at::CommandRequest udp_send_data_mode() { return {"AT#XUDPSEND", "", data_mode_entry_limit}; }
at::CommandRequest udp_send_string(const std::string& quoted) {
    return {"AT#XUDPSEND=" + quoted, "#XUDPSEND", send_limit};
}
at::CommandRequest proxy_close(const std::string& prefix) { return {"AT" + prefix + "=0", prefix, proxy_close_limit}; }

}  // namespace slmd::modem::command
