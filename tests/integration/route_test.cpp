// Owns: the bypass decision following the kernel's routing table live, end to end: slmsim and slmd run in a
// network namespace of the test's own, routes and links change there while slmd serves, and the next
// CONNECT's reply (slmsock_connect_fd: 1 = "a local route reaches it, connect yourself", else the modem's
// answer) flips.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "gateway.hpp"
#include "slmsock.h"

using namespace slmd::test;
using namespace std::chrono_literals;

namespace {

// Moves the calling thread (and the processes it starts from now on) into a fresh network namespace with `lo`
// up, and back into the original one on destruction, so the other tests of this process are unaffected.
class NetNamespace {
  public:
    NetNamespace() {
        original_ = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
        if (original_ < 0) {
            problem_ = std::string("/proc/self/ns/net: ") + std::strerror(errno);
            return;
        }
        if (unshare(CLONE_NEWNET) != 0) {
            problem_ = std::string("unshare(CLONE_NEWNET): ") + std::strerror(errno);
            return;
        }
        entered_ = true;
        if (std::system("ip link set lo up") != 0)
            problem_ = "'ip link set lo up' failed (is iproute2 installed?)";
    }
    ~NetNamespace() {
        if (entered_ && setns(original_, CLONE_NEWNET) != 0)
            std::abort();  // the rest of the run would be wrong
        if (original_ >= 0) close(original_);
    }
    NetNamespace(const NetNamespace&) = delete;
    NetNamespace& operator=(const NetNamespace&) = delete;
    const std::string& problem() const { return problem_; }

  private:
    int original_ = -1;
    bool entered_ = false;
    std::string problem_;
};

bool ip(const std::string& arguments) {
    return std::system(("ip " + arguments).c_str()) == 0;
}

// slmd's answer to a CONNECT for ip:9: 1 when it says "bypass" (nothing is connected: the caller would
// connect by itself), otherwise what the modem said.
int decision(const char* text) {
    sockaddr_storage address{};
    socklen_t length = 0;
    if (std::strchr(text, ':')) {
        auto* a = reinterpret_cast<sockaddr_in6*>(&address);
        a->sin6_family = AF_INET6;
        a->sin6_port = htons(9);
        inet_pton(AF_INET6, text, &a->sin6_addr);
        length = sizeof *a;
    } else {
        auto* a = reinterpret_cast<sockaddr_in*>(&address);
        a->sin_family = AF_INET;
        a->sin_port = htons(9);
        inet_pton(AF_INET, text, &a->sin_addr);
        length = sizeof *a;
    }
    const int fd = socket(address.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int answer = slmsock_connect_fd(fd, reinterpret_cast<sockaddr*>(&address), length, nullptr);
    close(fd);
    return answer;
}

constexpr int bypass = 1;

}  // namespace

TEST(RouteRefresh, RoutesAndLinksChangedWhileServingChangeTheNextDecision) {
    NetNamespace netns;
    if (!netns.problem().empty())
        GTEST_SKIP() << "needs a network namespace of its own (root, CLONE_NEWNET, iproute2): "
                     << netns.problem();
    // Unmapped documentation addresses fail at once through the modem: -EHOSTUNREACH means "went to the
    // modem".
    Gateway gateway(GatewayOptions().sim({"--unmapped", "unreachable"}).daemon({"--log-level", "debug"}));
    ASSERT_TRUE(gateway.ready) << gateway.log();
    ASSERT_NE(gateway.log().find("route: following the kernel's routes"), std::string::npos) << gateway.log();

    // Only lo's routes exist: a documentation address goes through the modem.
    EXPECT_EQ(decision("198.51.100.7"), -EHOSTUNREACH) << gateway.log();
    EXPECT_TRUE(gateway.sent("AT#XTCPCLI=1,\"198.51.100.7\",9\r\n"));

    // A route added after slmd started serving is used by the next decision...
    ASSERT_TRUE(ip("route add 198.51.100.0/24 dev lo"));
    EXPECT_TRUE(eventually([] { return decision("198.51.100.7") == bypass; })) << gateway.log();
    EXPECT_TRUE(gateway.slmd->wait_for_output("route: 198.51.100.7 -> bypass (local route)", 5s))
        << gateway.log();
    // ...and so is its removal.
    ASSERT_TRUE(ip("route del 198.51.100.0/24 dev lo"));
    EXPECT_TRUE(eventually([] { return decision("198.51.100.7") == -EHOSTUNREACH; })) << gateway.log();

    // A link going down takes its routes out of the decision (IPv4 and IPv6).
    ASSERT_TRUE(ip("link add slmt0 type veth peer name slmt1"));
    ASSERT_TRUE(ip("link set slmt0 up"));
    ASSERT_TRUE(ip("route add 192.0.2.0/24 dev slmt0"));
    ASSERT_TRUE(ip("-6 route add 2001:db8:5::/48 dev slmt0"));
    EXPECT_TRUE(eventually([] { return decision("192.0.2.9") == bypass; })) << gateway.log();
    EXPECT_TRUE(eventually([] { return decision("2001:db8:5::9") == bypass; })) << gateway.log();
    ASSERT_TRUE(ip("link set slmt0 down"));
    EXPECT_TRUE(eventually([] { return decision("192.0.2.9") == -EHOSTUNREACH; })) << gateway.log();
    // The simulator maps 2001:db8::/32 to ::1, where nothing listens on port 9: the modem's answer is a
    // refusal.
    EXPECT_TRUE(eventually([] { return decision("2001:db8:5::9") != bypass; })) << gateway.log();
    EXPECT_EQ(gateway.state(), "serving");
}
