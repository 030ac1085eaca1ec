// slmsim tests: data mode per release — OK on entry, "+++" rules (anywhere with trailing bytes as AT
// input and held-back partials in v2.5+, trailing-at-timeout in ≤v2.4), inactivity flush, raw
// downlink, #XDATAMODE vs OK on exit, peer loss (null mode, raw "+++", URC placement), v2.9
// unconnected entry, UDP datagram per flush and overflow, modem URCs dropped.
#include "harness.hpp"

using namespace slmsim;
using namespace slmsim::test;

namespace {
void connect(Harness& h, TcpServer& srv) {
  h.boot();
  h.attach();
  ASSERT_TRUE(h.at("AT#XTCPCLI=1,\"127.0.0.1\"," + std::to_string(srv.port()),
                   "\r\n#XTCPCLI: 0,\"connected\"\r\n\r\nOK\r\n"));
  ASSERT_TRUE(h.run_until([&] { return srv.conns.size() == 1; }));
}
}  // namespace

TEST(DataMode, TerminatorAnywhereFrom25) {
  for (const char* prof : {"v2.5", "v2.7", "v2.9"}) {
    Harness h(prof);
    TcpServer srv(h.io);
    connect(h, srv);
    EXPECT_TRUE(h.at("AT#XTCPSEND", "\r\nOK\r\n")) << prof;
    EXPECT_TRUE(h.sim->in_data_mode());
    h.send("hello+++");  // no guard time needed
    EXPECT_TRUE(h.expect("\r\n#XDATAMODE: 0\r\n")) << prof;
    EXPECT_TRUE(h.run_until([&] { return srv.conns[0]->received == "hello"; })) << prof;
    // Bytes after the terminator in the same chunk are AT input.
    EXPECT_TRUE(h.at("AT#XTCPSEND", "\r\nOK\r\n"));
    h.send("abc+++AT+CFUN?\r\n");
    EXPECT_TRUE(h.expect("\r\n#XDATAMODE: 0\r\n\r\n+CFUN: 1\r\n\r\nOK\r\n")) << prof;
    EXPECT_TRUE(h.run_until([&] { return srv.conns[0]->received == "helloabc"; }));
  }
}

TEST(DataMode, InactivityFlushRawDownlinkAndHeldBackPartialTerminator) {
  Harness h;
  TcpServer srv(h.io);
  connect(h, srv);
  EXPECT_TRUE(h.at("AT#XTCPSEND", "\r\nOK\r\n"));
  h.send("ab");
  EXPECT_TRUE(h.run_until([&] { return srv.conns[0]->received == "ab"; }));  // flushed after 32 ms
  srv.send(0, "down\r\nOK\r\n");
  EXPECT_TRUE(h.expect("down\r\nOK\r\n"));  // raw in data mode: no header
  h.send("cd++");                            // partial terminator held back…
  h.send("+");                               // …and completed by the next chunk
  EXPECT_TRUE(h.expect("\r\n#XDATAMODE: 0\r\n"));
  EXPECT_TRUE(h.run_until([&] { return srv.conns[0]->received == "abcd"; }));
  EXPECT_TRUE(h.at("AT#XTCPSEND", "\r\nOK\r\n"));
  h.send("x++");  // the timer fires first: the partial is data
  EXPECT_TRUE(h.run_until([&] { return srv.conns[0]->received == "abcdx++"; }));
  h.send("+++");
  EXPECT_TRUE(h.expect("\r\n#XDATAMODE: 0\r\n"));
}

TEST(DataMode, TerminatorOnlyTrailingAtTimeoutUpTo24) {
  Harness h("v2.4");
  TcpServer srv(h.io);
  connect(h, srv);
  EXPECT_TRUE(h.at("AT#XTCPSEND", "\r\nOK\r\n"));
  h.send("a+++b");  // in the middle of a burst: payload
  EXPECT_TRUE(h.run_until([&] { return srv.conns[0]->received == "a+++b"; }));
  EXPECT_TRUE(h.sim->in_data_mode());
  h.send("hello+++");  // trailing bytes when the timer fires: exit
  EXPECT_TRUE(h.expect("\r\n#XDATAMODE: 0\r\n"));
  EXPECT_TRUE(h.run_until([&] { return srv.conns[0]->received == "a+++bhello"; }));
}

TEST(DataMode, V20NoOkOnEntryAndOkOnExit) {
  Harness h("v2.0");
  TcpServer srv(h.io);
  connect(h, srv);
  h.send("AT#XTCPSEND\r\n");
  EXPECT_TRUE(h.run_until([&] { return h.sim->in_data_mode(); }));
  EXPECT_TRUE(h.nothing_more());
  h.send("zz+++");
  EXPECT_TRUE(h.expect("\r\nOK\r\n"));
  EXPECT_TRUE(h.run_until([&] { return srv.conns[0]->received == "zz"; }));
}

TEST(DataMode, PeerLossV27PlusRawTerminatorThenNullMode) {
  Harness h("v2.9");
  TcpServer srv(h.io);
  connect(h, srv);
  EXPECT_TRUE(h.at("AT#XTCPSEND", "\r\nOK\r\n"));
  srv.close(0);
  EXPECT_TRUE(h.expect("+++"));  // raw, no CRLF, no "disconnected" URC
  EXPECT_TRUE(h.run_until([&] { return h.sim->in_null_mode(); }));
  h.send("dropped AT\r\n");
  EXPECT_TRUE(h.nothing_more());
  h.send("+++");
  EXPECT_TRUE(h.expect("\r\n#XDATAMODE: -104\r\n"));
  EXPECT_TRUE(h.at("AT#XTCPCLI?", "\r\n#XTCPCLI: -1,1\r\n\r\nOK\r\n"));
}

TEST(DataMode, PeerLossV25V26UrcThenNullMode) {
  Harness h("v2.5");
  TcpServer srv(h.io);
  connect(h, srv);
  EXPECT_TRUE(h.at("AT#XTCPSEND", "\r\nOK\r\n"));
  srv.close(0);
  EXPECT_TRUE(h.expect("\r\n#XTCPCLI: -104,\"disconnected\"\r\n"));
  h.send("junk");
  EXPECT_TRUE(h.nothing_more());
  h.send("+++");
  EXPECT_TRUE(h.expect("\r\n#XDATAMODE: -104\r\n"));
}

TEST(DataMode, PeerLossUpTo24ExitsAtOnce) {
  Harness h("v2.4");
  TcpServer srv(h.io);
  connect(h, srv);
  EXPECT_TRUE(h.at("AT#XTCPSEND", "\r\nOK\r\n"));
  srv.close(0);
  EXPECT_TRUE(h.expect("\r\n#XDATAMODE: -104\r\n\r\n#XTCPCLI: -104,\"disconnected\"\r\n"));
  EXPECT_TRUE(h.at("AT", "\r\nOK\r\n"));  // back in AT-command mode
}

TEST(DataMode, V29EntersDataModeUnconnectedEarlierReleasesRefuse) {
  {
    Harness h("v2.9");
    h.boot();
    EXPECT_TRUE(h.at("AT#XTCPSEND", "\r\nOK\r\n"));
    h.send("lost+++");
    EXPECT_TRUE(h.expect("\r\n#XDATAMODE: 0\r\n"));
  }
  {
    Harness h("v2.8");
    h.boot();
    EXPECT_TRUE(h.at("AT#XTCPSEND", "\r\nERROR\r\n"));
    EXPECT_TRUE(h.at("AT#XUDPSEND", "\r\nERROR\r\n"));
  }
}

TEST(DataMode, DataCtrlSetOnFirstEntry) {
  Harness h;
  TcpServer srv(h.io);
  connect(h, srv);
  EXPECT_TRUE(h.at("AT#XDATACTRL?", "\r\n#XDATACTRL: 0,32\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT#XTCPSEND", "\r\nOK\r\n"));
  h.send("+++");
  EXPECT_TRUE(h.expect("\r\n#XDATAMODE: 0\r\n"));
  EXPECT_TRUE(h.at("AT#XDATACTRL?", "\r\n#XDATACTRL: 32,32\r\n\r\nOK\r\n"));
}

TEST(DataMode, ModemUrcsDroppedInDataMode) {
  Harness h;
  TcpServer srv(h.io);
  h.boot();
  EXPECT_TRUE(h.at("AT+CEREG=1", "\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT+CFUN=1", "\r\nOK\r\n"));
  EXPECT_TRUE(h.expect("\r\n+CEREG: 2\r\n\r\n+CEREG: 1\r\n"));
  EXPECT_TRUE(h.at("AT#XTCPCLI=1,\"127.0.0.1\"," + std::to_string(srv.port()),
                   "\r\n#XTCPCLI: 0,\"connected\"\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT#XTCPSEND", "\r\nOK\r\n"));
  EXPECT_EQ(h.sim->control("urc +CEREG: 5"), "ok");
  EXPECT_TRUE(h.nothing_more());
  h.send("+++");
  EXPECT_TRUE(h.expect("\r\n#XDATAMODE: 0\r\n"));
  EXPECT_TRUE(h.nothing_more());  // not buffered either
}

TEST(DataMode, UdpOneDatagramPerFlushAndOverflow) {
  Harness h;
  UdpServer srv(h.io);
  h.boot();
  h.attach();
  EXPECT_TRUE(h.at("AT#XUDPCLI=1,\"127.0.0.1\"," + std::to_string(srv.port()),
                   "\r\n#XUDPCLI: 0,\"connected\"\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT#XUDPSEND", "\r\nOK\r\n"));
  h.send("one");
  h.send("-two");
  EXPECT_TRUE(h.run_until([&] { return srv.datagrams.size() == 1; }));
  EXPECT_EQ(srv.datagrams[0], "one-two");
  h.send("three");
  EXPECT_TRUE(h.run_until([&] { return srv.datagrams.size() == 2; }));
  EXPECT_EQ(srv.datagrams[1], "three");
  h.send(std::string(4097, 'x'));  // does not fit the buffer in one piece
  EXPECT_TRUE(h.expect("+++"));
  h.send("+++");
  EXPECT_TRUE(h.expect("\r\n#XDATAMODE: -139\r\n"));
  EXPECT_EQ(srv.datagrams.size(), 2u);
}
