// Owns: the newlib → Linux errno table (see firmware_errno.hpp).
#include "modem/firmware_errno.hpp"

#include <cerrno>
#include <cstdlib>

namespace slmd::modem {

int linux_errno_from_firmware(int firmware_value) {
    struct Entry {
        int newlib;
        int linux_value;
    };
    // newlib's sys/errno.h numbering (picolibc keeps it), which the nRF91 libmodem uses.
    static constexpr Entry table[] = {
        {1, EPERM},          {2, ENOENT},        {4, EINTR},           {5, EIO},
        {9, EBADF},          {11, EAGAIN},       {12, ENOMEM},         {13, EACCES},
        {14, EFAULT},        {16, EBUSY},        {22, EINVAL},         {23, ENFILE},
        {24, EMFILE},        {28, ENOSPC},       {32, EPIPE},          {88, ENOSYS},
        {91, ENAMETOOLONG},  {95, EOPNOTSUPP},   {104, ECONNRESET},    {105, ENOBUFS},
        {106, EAFNOSUPPORT}, {107, EPROTOTYPE},  {108, ENOTSOCK},      {109, ENOPROTOOPT},
        {111, ECONNREFUSED}, {112, EADDRINUSE},  {113, ECONNABORTED},  {114, ENETUNREACH},
        {115, ENETDOWN},     {116, ETIMEDOUT},   {117, EHOSTDOWN},     {118, EHOSTUNREACH},
        {119, EINPROGRESS},  {120, EALREADY},    {121, EDESTADDRREQ},  {122, EMSGSIZE},
        {123, EPROTONOSUPPORT}, {125, EADDRNOTAVAIL}, {126, ENETRESET}, {127, EISCONN},
        {128, ENOTCONN},     {134, ENOTSUP},     {138, EILSEQ},        {139, EOVERFLOW},
        {140, ECANCELED},
    };
    const int value = std::abs(firmware_value);
    for (const auto& entry : table) {
        if (entry.newlib == value) return entry.linux_value;
    }
    return EIO;
}

int linux_errno_from_connect_failure(int firmware_value, bool destination_was_name) {
    // Zephyr DNS_EAI_* run from -1 to -12; with a name as destination they come from getaddrinfo.
    if (destination_was_name && firmware_value < 0 && firmware_value >= -12) return EHOSTUNREACH;
    return linux_errno_from_firmware(firmware_value);
}

}  // namespace slmd::modem
