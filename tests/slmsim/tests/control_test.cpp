// slmsim tests: fault injection through Simulator::control() — reset, peer-reset, detach/attach,
// noise, interleave (URCs between a response line and OK, and between a receive header and its
// payload), stats, hang/unhang.
#include "harness.hpp"

using namespace slmsim;
using namespace slmsim::test;

namespace {
void connect(Harness& h, TcpServer& srv) {
  ASSERT_TRUE(h.at("AT#XTCPCLI=1,\"127.0.0.1\"," + std::to_string(srv.port()),
                   "\r\n#XTCPCLI: 0,\"connected\"\r\n\r\nOK\r\n"));
  ASSERT_TRUE(h.run_until([&] { return srv.conns.size() == 1; }));
}
}  // namespace

TEST(Control, ResetLikeReboot) {
  Harness h;
  TcpServer srv(h.io);
  h.boot();
  h.attach();
  connect(h, srv);
  EXPECT_EQ(h.sim->control("reset"), "ok");
  EXPECT_TRUE(h.expect("Ready\r\n"));
  EXPECT_TRUE(h.run_until([&] { return srv.conns[0]->eof || srv.conns[0]->reset; }));
  EXPECT_TRUE(h.at("AT+CFUN?", "\r\n+CFUN: 0\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT#XTCPCLI?", "\r\n#XTCPCLI: -1,0\r\n\r\nOK\r\n"));
  EXPECT_NE(h.sim->control("stats").find("resets=1"), std::string::npos);
}

TEST(Control, PeerResetSendsRstAndReportsLoss) {
  Harness h;
  TcpServer srv(h.io);
  h.boot();
  h.attach();
  connect(h, srv);
  EXPECT_EQ(h.sim->control("peer-reset"), "ok");
  EXPECT_TRUE(h.expect("\r\n#XTCPCLI: -104,\"disconnected\"\r\n"));
  EXPECT_TRUE(h.run_until([&] { return srv.conns[0]->reset || srv.conns[0]->eof; }));
  EXPECT_TRUE(srv.conns[0]->reset) << "eof=" << srv.conns[0]->eof;
  EXPECT_EQ(h.sim->control("peer-reset"), "error no tcp connection");
}

TEST(Control, DetachAttach) {
  Harness h;
  TcpServer srv(h.io);
  h.boot();
  EXPECT_TRUE(h.at("AT+CEREG=1", "\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT+CFUN=1", "\r\nOK\r\n"));
  EXPECT_TRUE(h.expect("\r\n+CEREG: 2\r\n\r\n+CEREG: 1\r\n"));
  connect(h, srv);
  EXPECT_EQ(h.sim->control("detach"), "ok");
  EXPECT_TRUE(h.expect("\r\n+CEREG: 0\r\n\r\n#XTCPCLI: -104,\"disconnected\"\r\n"));
  EXPECT_TRUE(h.at("AT#XTCPCLI=1,\"127.0.0.1\"," + std::to_string(srv.port()),
                   "\r\n#XTCPCLI: -115,\"not connected\"\r\n\r\nERROR\r\n"));
  EXPECT_TRUE(h.at("AT+CGPADDR=0", "\r\nERROR\r\n"));
  EXPECT_EQ(h.sim->control("attach"), "ok");
  EXPECT_TRUE(h.expect("\r\n+CEREG: 1\r\n"));
  EXPECT_TRUE(h.at("AT#XTCPCLI=1,\"127.0.0.1\"," + std::to_string(srv.port()),
                   "\r\n#XTCPCLI: 0,\"connected\"\r\n\r\nOK\r\n"));
}

TEST(Control, NoiseStatsHangAndUnknown) {
  Harness h;
  h.boot();
  EXPECT_EQ(h.sim->control("noise 41 42 0d0a ff"), "ok");
  EXPECT_TRUE(h.expect("AB\r\n\xff"));
  EXPECT_EQ(h.sim->control("noise zz"), "error bad hex");
  EXPECT_TRUE(h.at("AT", "\r\nOK\r\n"));
  auto st = h.sim->control("stats");
  EXPECT_EQ(st.rfind("ok bytes_rx=4 bytes_tx=", 0), 0u) << st;
  EXPECT_NE(st.find(" commands=1 oks=1 errors=0"), std::string::npos) << st;
  EXPECT_NE(st.find(" noise_bytes=5"), std::string::npos) << st;
  EXPECT_EQ(h.sim->control("hang"), "ok");
  h.send("AT\r\n");
  EXPECT_TRUE(h.nothing_more());
  EXPECT_EQ(h.sim->control("unhang"), "ok");
  EXPECT_TRUE(h.at("AT", "\r\nOK\r\n"));
  EXPECT_EQ(h.sim->control("frobnicate"), "error unknown command");
}

TEST(Control, InterleaveBetweenInfoLineAndOk) {
  Harness h;
  TcpServer srv(h.io);
  h.boot();
  h.attach();
  connect(h, srv);
  EXPECT_EQ(h.sim->control("interleave on"), "ok");
  srv.send(0, "data");
  ASSERT_TRUE(h.run_until([&] { return h.sim->stats().tcp_down_bytes == 4; }));
  EXPECT_TRUE(h.at("AT#XTCPSEND=\"x\"", "\r\n#XTCPSEND: 1\r\n\r\n#XTCPDATA: 4\r\ndata\r\nOK\r\n"));
  // With no response to hide in, the URC goes out after the hold time.
  srv.send(0, "late");
  EXPECT_TRUE(h.expect("\r\n#XTCPDATA: 4\r\nlate"));
  EXPECT_EQ(h.sim->control("interleave off"), "ok");
}

TEST(Control, InterleaveBetweenHeaderAndPayload) {
  Harness h;
  TcpServer srv(h.io);
  UdpServer usrv(h.io, true);
  h.boot();
  h.attach();
  connect(h, srv);
  EXPECT_TRUE(h.at("AT#XUDPCLI=1,\"127.0.0.1\"," + std::to_string(usrv.port()),
                   "\r\n#XUDPCLI: 1,\"connected\"\r\n\r\nOK\r\n"));
  EXPECT_EQ(h.sim->control("interleave on"), "ok");
  srv.send(0, "TCP");
  ASSERT_TRUE(h.run_until([&] { return h.sim->stats().tcp_down_bytes == 3; }));
  h.send("AT#XUDPSEND=\"udp\"\r\n");
  EXPECT_TRUE(h.expect("\r\n#XUDPSEND: 3\r\n"));
  EXPECT_TRUE(h.expect("\r\n#XTCPDATA: 3\r\nTCP\r\nOK\r\n"));
  // The UDP echo lands between a later TCP header and its payload.
  srv.send(0, "abc");
  ASSERT_TRUE(h.run_until([&] { return h.sim->stats().tcp_down_bytes == 6 && h.sim->stats().udp_down_datagrams == 1; }));
  EXPECT_TRUE(h.at("AT#XSLMVER", "\r\n#XSLMVER: \"2.9.0\",\"2.9.0\"\r\n"));
  std::string a = "\r\n#XTCPDATA: 3\r\n\r\n#XUDPDATA: 3,\"::\",0\r\nudpabc\r\nOK\r\n";
  std::string b = "\r\n#XUDPDATA: 3,\"::\",0\r\n\r\n#XTCPDATA: 3\r\nabcudp\r\nOK\r\n";
  ASSERT_TRUE(h.run_until([&] { return h.pending().size() >= a.size(); }));
  // Whichever arrived first is the one split around the other.
  EXPECT_TRUE(h.pending() == a || h.pending() == b) << Harness::esc(h.pending());
}
