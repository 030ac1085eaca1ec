// slmsim tests: UDP client/server per release (#XUDPDATA forms, "::",0 client quirk, #UDPSVR typo,
// sec_tag parameter, server replying to the last peer) and #XGETADDRINFO (first-address repeat
// quirk, family parameter from v2.8, failures).
#include "harness.hpp"

using namespace slmsim;
using namespace slmsim::test;

namespace {
std::string udpcli(unsigned short port) { return "AT#XUDPCLI=1,\"127.0.0.1\"," + std::to_string(port); }
}  // namespace

TEST(Udp, ClientV29ReportsZeroPeer) {
  Harness h("v2.9");
  UdpServer srv(h.io, true);
  h.boot();
  h.attach();
  EXPECT_TRUE(h.at("AT#XUDPCLI?", "\r\n#XUDPCLI: -1,0\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.at(udpcli(srv.port()), "\r\n#XUDPCLI: 0,\"connected\"\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT#XUDPCLI?", "\r\n#XUDPCLI: 0,1\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.at(udpcli(srv.port()), "\r\nERROR\r\n"));  // in use
  EXPECT_TRUE(h.at("AT#XUDPSEND=\"Test UDP\"", "\r\n#XUDPSEND: 8\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.expect("\r\n#XUDPDATA: 8,\"::\",0\r\nTest UDP"));
  EXPECT_TRUE(h.at("AT#XUDPCLI=0", "\r\n#XUDPCLI: 0,\"disconnected\"\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT#XUDPSEND=\"x\"", "\r\nERROR\r\n"));
}

TEST(Udp, ClientV27HasNoPeerInHeader) {
  Harness h("v2.7");
  UdpServer srv(h.io, true);
  h.boot();
  h.attach();
  EXPECT_TRUE(h.at(udpcli(srv.port()), "\r\n#XUDPCLI: 0,\"connected\"\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT#XUDPSEND=\"hey\"", "\r\n#XUDPSEND: 3\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.expect("\r\n#XUDPDATA: 3\r\nhey"));
}

TEST(Udp, ServerV29ReportsPeerAndRepliesToLastPeer) {
  Harness h("v2.9");
  h.boot();
  h.attach();
  unsigned short port = free_port(h.io);
  EXPECT_TRUE(h.at("AT#XUDPSVR=?", "\r\n#XUDPSVR: (0,1,2),<port>,<sec_tag>\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT#XUDPSVR=1," + std::to_string(port), "\r\n#XUDPSVR: 0,\"started\"\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT#XUDPSEND=\"early\"", "\r\nERROR\r\n"));  // no peer yet
  UdpServer peer(h.io);
  peer.send_to("ping", {asio::ip::make_address("127.0.0.1"), port});
  EXPECT_TRUE(h.expect("\r\n#XUDPDATA: 4,\"127.0.0.1\"," + std::to_string(peer.port()) + "\r\nping"));
  EXPECT_TRUE(h.at("AT#XUDPSEND=\"pong\"", "\r\n#XUDPSEND: 4\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.run_until([&] { return peer.datagrams.size() == 1; }));
  EXPECT_EQ(peer.datagrams[0], "pong");
  EXPECT_TRUE(h.at("AT#XUDPSVR?", "\r\n#XUDPSVR: 0,1\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT#XUDPSVR=0", "\r\n#XUDPSVR: 0,\"stopped\"\r\n\r\nOK\r\n"));
}

TEST(Udp, ServerFailureLineTypoAndSecTagPerRelease) {
  {
    Harness h("v2.9");
    h.boot();
    EXPECT_TRUE(h.at("AT#XUDPSVR=1,5000", "\r\n#UDPSVR: -115,\"not started\"\r\n\r\nERROR\r\n"));
    h.attach();
    EXPECT_TRUE(h.at("AT#XUDPSVR=1,5000,7", "\r\n#UDPSVR: -134,\"not started\"\r\n\r\nERROR\r\n"));
  }
  {
    Harness h("v2.7");
    h.boot();
    EXPECT_TRUE(h.at("AT#XUDPSVR=1,5000", "\r\nERROR\r\n"));  // no failure line before v2.8
    h.attach();
    EXPECT_TRUE(h.at("AT#XUDPSVR=1,5000,7", "\r\nERROR\r\n"));  // no sec_tag parameter
    EXPECT_TRUE(h.at("AT#XUDPSVR=?", "\r\n#XUDPSVR: (0,1,2),<port>\r\n\r\nOK\r\n"));
  }
}

TEST(Udp, StaleServerPeerShownByLaterClientV29) {
  Harness h("v2.9");
  UdpServer echo(h.io, true);
  h.boot();
  h.attach();
  unsigned short port = free_port(h.io);
  EXPECT_TRUE(h.at("AT#XUDPSVR=1," + std::to_string(port), "\r\n#XUDPSVR: 0,\"started\"\r\n\r\nOK\r\n"));
  UdpServer peer(h.io);
  peer.send_to("a", {asio::ip::make_address("127.0.0.1"), port});
  std::string from = "\"127.0.0.1\"," + std::to_string(peer.port());
  EXPECT_TRUE(h.expect("\r\n#XUDPDATA: 1," + from + "\r\na"));
  EXPECT_TRUE(h.at("AT#XUDPSVR=0", "\r\n#XUDPSVR: 0,\"stopped\"\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.at(udpcli(echo.port()), "\r\n#XUDPCLI: 0,\"connected\"\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT#XUDPSEND=\"b\"", "\r\n#XUDPSEND: 1\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.run_until([&] { return echo.datagrams.size() == 1; }));
  EXPECT_TRUE(h.expect("\r\n#XUDPDATA: 1," + from + "\r\nb")) << echo.datagrams.size();
}

TEST(Dns, RepeatsFirstAddressAndFamilyFrom28) {
  auto c = test_config("v2.9");
  c.net.add_host("multi.example", asio::ip::make_address("192.0.2.1"));
  c.net.add_host("multi.example", asio::ip::make_address("192.0.2.2"));
  c.net.add_host("multi.example", asio::ip::make_address("2001:db8::3"));
  Harness h(c);
  h.boot();
  EXPECT_TRUE(h.at("AT#XGETADDRINFO=\"multi.example\"", "\r\n#XGETADDRINFO: \"EAI_AGAIN\"\r\n\r\nERROR\r\n"));
  h.attach();
  EXPECT_TRUE(h.at("AT#XGETADDRINFO=\"multi.example\"",
                   "\r\n#XGETADDRINFO: \"192.0.2.1 192.0.2.1 192.0.2.1\"\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT#XGETADDRINFO=\"multi.example\",2", "\r\n#XGETADDRINFO: \"2001:db8::3\"\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT#XGETADDRINFO=\"multi.example\",1",
                   "\r\n#XGETADDRINFO: \"192.0.2.1 192.0.2.1\"\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT#XGETADDRINFO=\"10.9.8.7\"", "\r\n#XGETADDRINFO: \"10.9.8.7\"\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT#XGETADDRINFO=\"nowhere.example\"", "\r\n#XGETADDRINFO: \"EAI_NONAME\"\r\n\r\nERROR\r\n"));
  Harness old("v2.7");
  old.boot();
  old.attach();
  EXPECT_TRUE(old.at("AT#XGETADDRINFO=\"10.9.8.7\",1", "\r\nERROR\r\n"));
}
