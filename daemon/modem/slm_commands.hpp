// Owns: the AT commands slmd sends more than once or from more than one place, each built in one function
// named after the command and its form: the line, the prefix of the information lines that answer it, and its
// time limit. Composite commands with client-given parts (connects, DNS, sends, TLS tails) are built next to
// the validation of those parts (slm_proxy_driver.cpp, tls_command.cpp, at_string.hpp).
#pragma once

#include <chrono>
#include <string>

#include "at/channel.hpp"

namespace slmd::modem::command {

// "AT": is anything there? Answered OK by every release; the limit is the caller's probe interval.
at::CommandRequest probe(std::chrono::milliseconds limit);
// "AT#XSLMVER": the SLM release and the modem library's.
at::CommandRequest read_slm_version();
// "AT#XSMVER": the Serial Modem add-on's release and the NCS it was built on (it answers #XSLMVER with ERROR).
at::CommandRequest read_serial_modem_version();
// "AT+CEREG=<mode>": registration URCs (5: with cell and PSM details).
at::CommandRequest set_registration_reports(int mode);
// "AT+CEREG?": the registration now.
at::CommandRequest read_registration();
// "AT+CGPADDR=0": the default PDN's addresses.
at::CommandRequest read_address();
// "AT+CFUN=<mode>": 0 radio off and settings saved, 1 on, 4 off (flight mode). The limit is the caller's: the
// modem answers AT+CFUN=0 only once it has detached, which may take seconds.
at::CommandRequest set_functional_mode(int mode, std::chrono::milliseconds limit);
// "AT#XRESET": the SLM application restarts (then prints "Ready").
at::CommandRequest reset_firmware();

// "AT#XTCPCLI=0": close the TCP client proxy.
at::CommandRequest tcp_client_close();
// "AT#XTCPSEND" (bare): enter data mode for the TCP proxy.
at::CommandRequest tcp_send_data_mode();
// "AT#XTCPSEND=<quoted>": send a string the caller has quoted (at_string.hpp).
at::CommandRequest tcp_send_string(const std::string& quoted);
// "AT#XTCPSVR=0": stop the TCP server proxy.
at::CommandRequest tcp_server_stop();
// "AT#XTCPSVR?": the server's listening handle and its peer's.
at::CommandRequest tcp_server_read();
// "AT#XTCPHANGUP=<handle>": hang up the server's peer (v2.x answers with a #XTCPSVR line).
at::CommandRequest tcp_hang_up(int handle);
// "AT#XUDPSEND" (bare): enter data mode for the UDP proxy.
at::CommandRequest udp_send_data_mode();
// "AT#XUDPSEND=<quoted>": send a string the caller has quoted.
at::CommandRequest udp_send_string(const std::string& quoted);
// "AT<prefix>=0" for a proxy's prefix ("#XTCPCLI", "#XTCPSVR", "#XUDPCLI", "#XUDPSVR"): close it.
at::CommandRequest proxy_close(const std::string& prefix);

}  // namespace slmd::modem::command
