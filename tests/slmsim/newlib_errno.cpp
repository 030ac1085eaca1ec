// slmsim: Linux errno → newlib errno mapping (see newlib_errno.hpp).
#include "newlib_errno.hpp"

#include <cerrno>

namespace slmsim::nerr {

int from_linux(int e) {
  switch (e) {
    case ECONNREFUSED: return ECONNREFUSED_;
    case ETIMEDOUT: return ETIMEDOUT_;
    case EHOSTUNREACH: return EHOSTUNREACH_;
    case ENETUNREACH: return ENETUNREACH_;
    case ENETDOWN: return ENETDOWN_;
    case ECONNRESET: return ECONNRESET_;
    case ECONNABORTED: return ECONNABORTED_;
    case EPIPE: return ECONNRESET_;
    case ENOTCONN: return ENOTCONN_;
    case EADDRINUSE: return EADDRINUSE_;
    case EADDRNOTAVAIL: return EADDRINUSE_;
    case ENOBUFS: return ENOBUFS_;
    case EOVERFLOW: return EOVERFLOW_;
    case EOPNOTSUPP: return ENOTSUP_;
    case EINVAL: return EINVAL_;
    case EBADF: return EBADF_;
    case EAGAIN: return EAGAIN_;
    default: return EIO_;
  }
}

}  // namespace slmsim::nerr
