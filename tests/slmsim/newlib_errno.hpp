// slmsim: errno numbers as the firmware prints them (newlib/picolibc numbering), and the mapping
// from the host's (Linux) errno values to them.
#pragma once

#include <boost/system/error_code.hpp>

namespace slmsim::nerr {

inline constexpr int EIO_ = 5;
inline constexpr int EBADF_ = 9;
inline constexpr int EAGAIN_ = 11;
inline constexpr int EINVAL_ = 22;
inline constexpr int ECONNRESET_ = 104;
inline constexpr int ENOBUFS_ = 105;
inline constexpr int EADDRINUSE_ = 112;
inline constexpr int ECONNABORTED_ = 113;  // TLS/DTLS handshake failure
inline constexpr int ECONNREFUSED_ = 111;
inline constexpr int ENETUNREACH_ = 114;
inline constexpr int ENETDOWN_ = 115;
inline constexpr int ETIMEDOUT_ = 116;
inline constexpr int EHOSTUNREACH_ = 118;
inline constexpr int ENOTCONN_ = 128;
inline constexpr int ENOTSUP_ = 134;
inline constexpr int EOVERFLOW_ = 139;

// Zephyr DNS_EAI_* values.
inline constexpr int DNS_EAI_NONAME_ = -2;
inline constexpr int DNS_EAI_AGAIN_ = -3;

// Linux errno → newlib errno (positive). Unknown values map to EIO.
int from_linux(int linux_errno);
inline int from(const boost::system::error_code& ec) { return from_linux(ec.value()); }

}  // namespace slmsim::nerr
