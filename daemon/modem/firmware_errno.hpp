// Owns: translating the error numbers the SLM firmware prints (newlib/picolibc errno values, Zephyr DNS_EAI_*
// codes) into Linux errno values that apps understand. Pure table, tested in firmware_errno_test.cpp.
#pragma once

namespace slmd::modem {

// `firmware_value` is the number as printed (e.g. -111 in `#XTCPCLI: -111,"not connected"`); sign ignored.
// Unknown values map to EIO.
int linux_errno_from_firmware(int firmware_value);

// A connect failure code: small negative values there are Zephyr DNS_EAI_* codes when the destination was
// a name; they mean "this host cannot be reached" to an app.
int linux_errno_from_connect_failure(int firmware_value, bool destination_was_name);

}  // namespace slmd::modem
