// The firmware's newlib errno numbers become the Linux values apps expect.
#include "modem/firmware_errno.hpp"

#include <gtest/gtest.h>

#include <cerrno>

using namespace slmd::modem;

TEST(FirmwareErrno, ConnectFailuresFromTheReference) {
    struct Case {
        int firmware;
        int linux_value;
    };
    const Case cases[] = {
        {-111, ECONNREFUSED}, {-116, ETIMEDOUT}, {-118, EHOSTUNREACH}, {-115, ENETDOWN}, {-104, ECONNRESET},
        {-128, ENOTCONN},     {-139, EOVERFLOW}, {-134, ENOTSUP},      {-5, EIO},        {-114, ENETUNREACH},
        {111, ECONNREFUSED},  {-9999, EIO},      {0, EIO},
    };
    for (const auto& c : cases) EXPECT_EQ(linux_errno_from_firmware(c.firmware), c.linux_value) << c.firmware;
}

TEST(FirmwareErrno, DnsCodesOnlyForNames) {
    EXPECT_EQ(linux_errno_from_connect_failure(-2, true), EHOSTUNREACH);
    EXPECT_EQ(linux_errno_from_connect_failure(-3, true), EHOSTUNREACH);
    EXPECT_EQ(linux_errno_from_connect_failure(-111, true), ECONNREFUSED);
    EXPECT_EQ(linux_errno_from_connect_failure(-5, false), EIO);
}
