// slmsim tests: what SLM v3.0 and v3.1 change in the proxies against v2.9 — the version string, a UDP
// client's #XUDPDATA naming its real peer (v3.0+), the trailing <cid> of #XTCPCLI/#XUDPCLI and the send
// <flags> of #XTCPSEND/#XUDPSEND, with "=,<flags>" entering data mode (v3.1).
#include "harness.hpp"

using namespace slmsim;
using namespace slmsim::test;

namespace {
std::string cli(unsigned short port, const std::string& tail = "") {
  return "AT#XTCPCLI=1,\"127.0.0.1\"," + std::to_string(port) + tail;
}
std::string udpcli(unsigned short port, const std::string& tail = "") {
  return "AT#XUDPCLI=1,\"127.0.0.1\"," + std::to_string(port) + tail;
}
const std::string connected = "\r\n#XTCPCLI: 0,\"connected\"\r\n\r\nOK\r\n";
}  // namespace

TEST(V3, VersionStrings) {
  for (const char* prof : {"v3.0", "v3.1"}) {
    Harness h(prof);
    h.boot();
    const std::string release = std::string(prof).substr(1) + ".0";
    EXPECT_TRUE(h.at("AT#XSLMVER", "\r\n#XSLMVER: \"" + release + "\",\"" + release + "\"\r\n\r\nOK\r\n")) << prof;
  }
}

TEST(V3, TestFormOfTcpClientNamesCidOnlyFrom31) {
  {
    Harness h("v3.0");
    h.boot();
    EXPECT_TRUE(h.at("AT#XTCPCLI=?",
                     "\r\n#XTCPCLI: (0,1,2),<url>,<port>,<sec_tag>,<peer_verify>,<hostname_verify>\r\n\r\nOK\r\n"));
  }
  Harness h("v3.1");
  h.boot();
  EXPECT_TRUE(h.at("AT#XTCPCLI=?",
                   "\r\n#XTCPCLI: (0,1,2),<url>,<port>,<sec_tag>,<peer_verify>,<hostname_verify>,<cid>\r\n\r\nOK\r\n"));
  // The firmware's own #XUDPCLI test form leaves <cid> out, although the command takes it.
  EXPECT_TRUE(h.at("AT#XUDPCLI=?",
                   "\r\n#XUDPCLI: (0,1,2),<url>,<port>,<sec_tag>,<use_dtls_cid>,<peer_verify>,<hostname_verify>"
                   "\r\n\r\nOK\r\n"));
}

TEST(V3, TcpClientTakesATrailingCidOn31Only) {
  {
    Harness h("v3.0");
    TcpServer srv(h.io);
    h.boot();
    h.attach();
    EXPECT_TRUE(h.at(cli(srv.port(), ",-1,2,1,0"), "\r\nERROR\r\n")) << "seven parameters before v3.1";
  }
  Harness h("v3.1");
  TcpServer srv(h.io);
  h.boot();
  h.attach();
  EXPECT_TRUE(h.at(cli(srv.port(), ",-1,2,1,1"), "\r\nERROR\r\n")) << "the simulator has PDN 0 only";
  EXPECT_TRUE(h.at(cli(srv.port(), ",-1,2,1,0"), connected));
  EXPECT_TRUE(h.run_until([&] { return srv.conns.size() == 1; }));
}

TEST(V3, SendFlagsAndDataModeEntryOn31) {
  Harness h("v3.1");
  TcpServer srv(h.io);
  h.boot();
  h.attach();
  EXPECT_TRUE(h.at(cli(srv.port()), connected));
  EXPECT_TRUE(h.at("AT#XTCPSEND=\"ab\",512", "\r\n#XTCPSEND: 2\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT#XTCPSEND=\"x\",", "\r\nERROR\r\n"));
  EXPECT_TRUE(h.at("AT#XTCPSEND=,", "\r\nERROR\r\n"));
  EXPECT_TRUE(h.at("AT#XTCPSEND=,512", "\r\nOK\r\n"));
  EXPECT_TRUE(h.sim->in_data_mode());
  h.send("cd+++");
  EXPECT_TRUE(h.expect("\r\n#XDATAMODE: 0\r\n"));
  EXPECT_TRUE(h.at("AT#XTCPSEND=", "\r\nOK\r\n"));
  h.send("ef+++");
  EXPECT_TRUE(h.expect("\r\n#XDATAMODE: 0\r\n"));
  EXPECT_TRUE(h.run_until([&] { return srv.conns.size() == 1 && srv.conns[0]->received == "abcdef"; }));
}

TEST(V3, SendFlagsAreAnErrorBefore31) {
  Harness h("v3.0");
  TcpServer srv(h.io);
  h.boot();
  h.attach();
  EXPECT_TRUE(h.at(cli(srv.port()), connected));
  EXPECT_TRUE(h.at("AT#XTCPSEND=\"ab\",512", "\r\nERROR\r\n"));
  EXPECT_TRUE(h.at("AT#XTCPSEND=,512", "\r\nERROR\r\n"));
  EXPECT_FALSE(h.sim->in_data_mode());
}

TEST(V3, UdpClientNamesItsRealPeerFrom30) {
  for (const char* prof : {"v3.0", "v3.1"}) {
    Harness h(prof);
    UdpServer srv(h.io, true);
    h.boot();
    h.attach();
    EXPECT_TRUE(h.at(udpcli(srv.port()), "\r\n#XUDPCLI: 0,\"connected\"\r\n\r\nOK\r\n")) << prof;
    EXPECT_TRUE(h.at("AT#XUDPSEND=\"ping\"", "\r\n#XUDPSEND: 4\r\n\r\nOK\r\n")) << prof;
    EXPECT_TRUE(h.expect("\r\n#XUDPDATA: 4,\"127.0.0.1\"," + std::to_string(srv.port()) + "\r\nping")) << prof;
  }
}

TEST(V3, UdpClientCidAndSendFlagsOn31) {
  Harness h("v3.1");
  UdpServer srv(h.io, true);
  h.boot();
  h.attach();
  EXPECT_TRUE(h.at(udpcli(srv.port(), ",0,0,2,1,1"), "\r\nERROR\r\n")) << "PDN 1 does not exist here";
  EXPECT_TRUE(h.at(udpcli(srv.port()), "\r\n#XUDPCLI: 0,\"connected\"\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT#XUDPSEND=\"hi\",0", "\r\n#XUDPSEND: 2\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.expect("\r\n#XUDPDATA: 2,\"127.0.0.1\"," + std::to_string(srv.port()) + "\r\nhi"));
  EXPECT_TRUE(h.at("AT#XUDPSEND=,0", "\r\nOK\r\n"));
  EXPECT_TRUE(h.sim->in_data_mode());
}
