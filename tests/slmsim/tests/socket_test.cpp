// slmsim tests: SLM's generic socket commands for TCP clients (reference serial-modem-and-generic-sockets.md
// §3): open and close with the active-socket rule, select, connect, quoted and data-mode sends, #XRECV framing
// (header, exactly n bytes, OK; end of stream = OK alone; DONTWAIT = ERROR), #XPOLL reports, the descriptor
// pool shared with the proxies, and the v2.0 / v3.1 differences.
#include "harness.hpp"

using namespace slmsim;
using namespace slmsim::test;

namespace {
std::string connect_to(unsigned short port) { return "AT#XCONNECT=\"127.0.0.1\"," + std::to_string(port); }
const std::string ok = "\r\nOK\r\n";
const std::string error = "\r\nERROR\r\n";

// Opens socket 0 and connects it to `srv`; returns once the server has the connection.
void open_connected(Harness& h, TcpServer& srv) {
  ASSERT_TRUE(h.at("AT#XSOCKET=1,1,0", "\r\n#XSOCKET: 0,1,6\r\n" + ok));
  ASSERT_TRUE(h.at(connect_to(srv.port()), "\r\n#XCONNECT: 1\r\n" + ok));
  ASSERT_TRUE(h.run_until([&] { return srv.conns.size() == 1; }));
}

// Polls with AT#XPOLL=0 (each answer read whole) until one answer is `expected`; bounded.
::testing::AssertionResult poll_until(Harness& h, const std::string& expected) {
  std::string last;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (std::chrono::steady_clock::now() < deadline) {
    h.send("AT#XPOLL=0\r\n");
    if (!h.run_until([&] {
          const auto p = h.pending();
          return p.ends_with("\r\nOK\r\n") || p.ends_with("\r\nERROR\r\n");
        }))
      break;
    last = h.pending();
    h.consumed += last.size();
    if (last == expected) return ::testing::AssertionSuccess();
    h.run_until([] { return false; }, std::chrono::milliseconds(5));
  }
  return ::testing::AssertionFailure() << "last answer [" << Harness::esc(last) << "]";
}
}  // namespace

TEST(Socket, OpenConnectSendReceiveClose) {
  Harness h;
  TcpServer srv(h.io, /*echo=*/true);
  h.boot();
  h.attach();
  EXPECT_TRUE(h.at("AT#XSOCKET=1,1,0", "\r\n#XSOCKET: 0,1,6\r\n" + ok));
  EXPECT_TRUE(h.at(connect_to(srv.port()), "\r\n#XCONNECT: 1\r\n" + ok));
  EXPECT_TRUE(h.at("AT#XSEND=\"hello\"", "\r\n#XSEND: 5\r\n" + ok));
  ASSERT_TRUE(h.run_until([&] { return srv.conns.size() == 1 && srv.conns[0]->received == "hello"; }));
  // No URC announces the echo: the host polls, then reads exactly n bytes framed by the header.
  EXPECT_TRUE(poll_until(h, "\r\n#XPOLL: 0,\"0x0001\"\r\n" + ok));
  EXPECT_TRUE(h.at("AT#XRECV=0,64", "\r\n#XRECV: 5\r\nhello" + ok));
  EXPECT_TRUE(h.at("AT#XRECV=0,64", error)) << "nothing left: EAGAIN";
  EXPECT_TRUE(h.at("AT#XPOLL=0", ok)) << "nothing pending: OK alone";
  EXPECT_TRUE(h.at("AT#XSOCKET=0", "\r\n#XSOCKET: 0,\"closed\"\r\n" + ok));
  EXPECT_TRUE(h.at("AT#XSOCKET=0", error)) << "no socket left to close";
  EXPECT_TRUE(h.run_until([&] { return srv.conns[0]->eof; }));
}

TEST(Socket, BinaryBytesComeBackExactlyAndTheEndOfTheStreamIsOkAlone) {
  Harness h;
  TcpServer srv(h.io);
  h.boot();
  h.attach();
  open_connected(h, srv);
  const std::string binary("\r\nOK\r\n\0+++\"", 11);
  srv.send(0, binary);
  EXPECT_TRUE(poll_until(h, "\r\n#XPOLL: 0,\"0x0001\"\r\n" + ok));
  srv.close(0);
  EXPECT_TRUE(poll_until(h, "\r\n#XPOLL: 0,\"0x0011\"\r\n" + ok))
      << "bytes and the peer's close at once: POLLIN | POLLHUP";
  EXPECT_TRUE(h.at("AT#XRECV=0,64", "\r\n#XRECV: 11\r\n" + binary + ok));
  EXPECT_TRUE(h.at("AT#XRECV=0,64", ok)) << "end of stream: OK without #XRECV";
  EXPECT_TRUE(h.at("AT#XPOLL=0", "\r\n#XPOLL: 0,\"0x0010\"\r\n" + ok));
}

TEST(Socket, TheNewestSocketIsActiveAndClosingFallsBackToTheNewestLeft) {
  Harness h;
  TcpServer a(h.io), b(h.io);
  h.boot();
  h.attach();
  EXPECT_TRUE(h.at("AT#XSOCKET=1,1,0", "\r\n#XSOCKET: 0,1,6\r\n" + ok));
  EXPECT_TRUE(h.at(connect_to(a.port()), "\r\n#XCONNECT: 1\r\n" + ok));
  EXPECT_TRUE(h.at("AT#XSOCKET=1,1,0", "\r\n#XSOCKET: 1,1,6\r\n" + ok));
  EXPECT_TRUE(h.at(connect_to(b.port()), "\r\n#XCONNECT: 1\r\n" + ok));
  EXPECT_TRUE(h.at("AT#XSEND=\"to b\"", "\r\n#XSEND: 4\r\n" + ok));
  EXPECT_TRUE(h.at("AT#XSOCKETSELECT=0", "\r\n#XSOCKETSELECT: 0\r\n" + ok));
  EXPECT_TRUE(h.at("AT#XSEND=\"to a\"", "\r\n#XSEND: 4\r\n" + ok));
  EXPECT_TRUE(h.at("AT#XSOCKETSELECT=5", error));
  ASSERT_TRUE(h.run_until([&] {
    return a.conns.size() == 1 && b.conns.size() == 1 && a.conns[0]->received == "to a" &&
           b.conns[0]->received == "to b";
  }));
  // Closing the active socket (0) leaves 1 active.
  EXPECT_TRUE(h.at("AT#XSOCKET=0", "\r\n#XSOCKET: 0,\"closed\"\r\n" + ok));
  EXPECT_TRUE(h.at("AT#XSEND=\"b again\"", "\r\n#XSEND: 7\r\n" + ok));
  EXPECT_TRUE(h.run_until([&] { return b.conns[0]->received == "to bb again" && a.conns[0]->eof; }));
}

TEST(Socket, PollNamesOnlyTheSocketsWithDataAndCanBeLimitedToSome) {
  Harness h;
  TcpServer a(h.io), b(h.io);
  h.boot();
  h.attach();
  for (auto* srv : {&a, &b}) {
    EXPECT_TRUE(h.at("AT#XSOCKET=1,1,0", "\r\n#XSOCKET: " + std::string(srv == &a ? "0" : "1") + ",1,6\r\n" + ok));
    EXPECT_TRUE(h.at(connect_to(srv->port()), "\r\n#XCONNECT: 1\r\n" + ok));
  }
  ASSERT_TRUE(h.run_until([&] { return a.conns.size() == 1 && b.conns.size() == 1; }));
  b.send(0, "x");
  EXPECT_TRUE(poll_until(h, "\r\n#XPOLL: 1,\"0x0001\"\r\n" + ok));
  EXPECT_TRUE(h.at("AT#XPOLL=0,0", ok)) << "socket 0 has nothing";
  EXPECT_TRUE(h.at("AT#XPOLL=0,1", "\r\n#XPOLL: 1,\"0x0001\"\r\n" + ok));
  EXPECT_TRUE(h.at("AT#XPOLL=0,7", error)) << "not a socket";
  // The read acts on the active socket (1, the newest).
  EXPECT_TRUE(h.at("AT#XRECV=0,64", "\r\n#XRECV: 1\r\nx" + ok));
}

TEST(Socket, APollWithATimeoutAnswersWhenDataArrives) {
  Harness h;
  TcpServer srv(h.io);
  h.boot();
  h.attach();
  open_connected(h, srv);
  h.send("AT#XPOLL=10000\r\n");
  EXPECT_TRUE(h.nothing_more(std::chrono::milliseconds(50))) << "blocks while nothing happens";
  srv.send(0, "late");
  EXPECT_TRUE(h.expect("\r\n#XPOLL: 0,\"0x0001\"\r\n" + ok));
}

TEST(Socket, ABlockingReceiveAnswersWhenBytesComeAndATimeoutIsAnError) {
  Harness h;
  TcpServer srv(h.io);
  h.boot();
  h.attach();
  open_connected(h, srv);
  h.send("AT#XRECV=0\r\n");  // timeout 0 without DONTWAIT: waits without limit
  EXPECT_TRUE(h.nothing_more(std::chrono::milliseconds(50)));
  srv.send(0, "abc");
  EXPECT_TRUE(h.expect("\r\n#XRECV: 3\r\nabc" + ok));
  EXPECT_TRUE(h.at("AT#XRECV=1", error)) << "one second without bytes";
}

TEST(Socket, DataModeSendsToTheActiveSocketAndLeavesItsDownlinkForXrecv) {
  Harness h;
  TcpServer srv(h.io);
  h.boot();
  h.attach();
  open_connected(h, srv);
  EXPECT_TRUE(h.at("AT#XSEND", ok));
  EXPECT_TRUE(h.sim->in_data_mode());
  srv.send(0, "reply");
  h.send(std::string("a,\"b\0c", 6));
  ASSERT_TRUE(h.run_until([&] { return srv.conns[0]->received == std::string("a,\"b\0c", 6); }));
  h.send("+++");
  EXPECT_TRUE(h.expect("\r\n#XDATAMODE: 0\r\n"));
  EXPECT_TRUE(h.at("AT#XRECV=0,64", "\r\n#XRECV: 5\r\nreply" + ok)) << "no raw downlink in data mode";
}

TEST(Socket, TheDescriptorPoolIsSharedWithTheProxies) {
  Harness h;
  TcpServer srv(h.io);
  h.boot();
  h.attach();
  EXPECT_TRUE(h.at("AT#XTCPCLI=1,\"127.0.0.1\"," + std::to_string(srv.port()),
                   "\r\n#XTCPCLI: 0,\"connected\"\r\n" + ok));
  for (int fd = 1; fd < 8; ++fd)
    EXPECT_TRUE(h.at("AT#XSOCKET=1,1,0", "\r\n#XSOCKET: " + std::to_string(fd) + ",1,6\r\n" + ok)) << fd;
  EXPECT_TRUE(h.at("AT#XSOCKET=1,1,0", error)) << "eight descriptors in all";
}

TEST(Socket, Version31KeepsOneDescriptorAndTakesSendFlags) {
  Harness h("v3.1");
  TcpServer srv(h.io);
  h.boot();
  h.attach();
  for (int fd = 0; fd < 7; ++fd)
    EXPECT_TRUE(h.at("AT#XSOCKET=1,1,0", "\r\n#XSOCKET: " + std::to_string(fd) + ",1,6\r\n" + ok)) << fd;
  EXPECT_TRUE(h.at("AT#XSOCKET=1,1,0", error)) << "seven sockets on v3.1";
  EXPECT_TRUE(h.at(connect_to(srv.port()), "\r\n#XCONNECT: 1\r\n" + ok));
  EXPECT_TRUE(h.at("AT#XSEND=\"ab\",512", "\r\n#XSEND: 2\r\n" + ok));
  EXPECT_TRUE(h.at("AT#XSEND=,512", ok));
  EXPECT_TRUE(h.sim->in_data_mode());
}

TEST(Socket, Version20AnswersSelectWithFamilyAndRoleAndPollWithEightDigits) {
  Harness h("v2.0");
  TcpServer srv(h.io);
  h.boot();
  h.attach();
  EXPECT_TRUE(h.at("AT#XSOCKET=1,1,0,0", error)) << "<cid> arrived in v2.1";
  EXPECT_TRUE(h.at("AT#XSOCKET=1,1,0", "\r\n#XSOCKET: 0,1,6\r\n" + ok));
  EXPECT_TRUE(h.at("AT#XSOCKETSELECT=0", "\r\n#XSOCKETSELECT: 0,1,0\r\n" + ok));
  EXPECT_TRUE(h.at(connect_to(srv.port()), "\r\n#XCONNECT: 1\r\n" + ok));
  ASSERT_TRUE(h.run_until([&] { return srv.conns.size() == 1; }));
  srv.send(0, "z");
  EXPECT_TRUE(poll_until(h, "\r\n#XPOLL: 0,\"0x00000001\"\r\n" + ok));
  EXPECT_TRUE(h.at("AT#XRECV=0,64", error)) << "no flags before v2.1";
  EXPECT_TRUE(h.at("AT#XRECV=1", "\r\n#XRECV: 1\r\nz" + ok));
}

TEST(Socket, ConnectFailuresArePlainErrors) {
  Harness h;
  unsigned short port = free_port(h.io);
  h.boot();
  EXPECT_TRUE(h.at("AT#XSOCKET=1,1,0", "\r\n#XSOCKET: 0,1,6\r\n" + ok));
  EXPECT_TRUE(h.at(connect_to(port), error)) << "not attached";
  h.attach();
  EXPECT_TRUE(h.at(connect_to(port), error)) << "refused";
  EXPECT_TRUE(h.at("AT#XSEND=\"x\"", "\r\n#XSEND: 0\r\n" + error)) << "#XSEND is printed even when it failed";
  EXPECT_TRUE(h.at("AT#XSOCKET=1,1,1", error)) << "server sockets are not simulated yet";
}

TEST(Socket, UdpSendToAndReceiveFromNameThePeer) {
  Harness h;
  UdpServer srv(h.io, /*echo=*/true);
  h.boot();
  h.attach();
  EXPECT_TRUE(h.at("AT#XSOCKET=1,2,0", "\r\n#XSOCKET: 0,2,17\r\n" + ok));
  EXPECT_TRUE(h.at("AT#XSEND=\"x\"", error)) << "unconnected: no destination";
  const std::string to = "\"127.0.0.1\"," + std::to_string(srv.port());
  EXPECT_TRUE(h.at("AT#XSENDTO=" + to + ",\"ping\"", "\r\n#XSENDTO: 4\r\n" + ok));
  EXPECT_TRUE(h.at("AT#XSENDTO=" + to + ",\"pong!\"", "\r\n#XSENDTO: 5\r\n" + ok));
  EXPECT_TRUE(poll_until(h, "\r\n#XPOLL: 0,\"0x0001\"\r\n" + ok));
  EXPECT_TRUE(h.at("AT#XRECVFROM=0,64", "\r\n#XRECVFROM: 4," + to + "\r\nping" + ok)) << "one datagram a read";
  EXPECT_TRUE(poll_until(h, "\r\n#XPOLL: 0,\"0x0001\"\r\n" + ok));
  EXPECT_TRUE(h.at("AT#XRECV=0,64", "\r\n#XRECV: 5\r\npong!" + ok));
  EXPECT_TRUE(h.at("AT#XRECVFROM=0,64", error));
  EXPECT_EQ(srv.datagrams, (std::vector<std::string>{"ping", "pong!"}));
}

TEST(Socket, AConnectedUdpSocketSendsAndDataModeFlushesOneDatagram) {
  Harness h;
  UdpServer srv(h.io, /*echo=*/true);
  h.boot();
  h.attach();
  EXPECT_TRUE(h.at("AT#XSOCKET=1,2,0", "\r\n#XSOCKET: 0,2,17\r\n" + ok));
  EXPECT_TRUE(h.at(connect_to(srv.port()), "\r\n#XCONNECT: 1\r\n" + ok));
  EXPECT_TRUE(h.at("AT#XSEND=\"one\"", "\r\n#XSEND: 3\r\n" + ok));
  EXPECT_TRUE(h.at("AT#XSEND", ok));
  h.send(std::string("t\0o,\"", 5));
  ASSERT_TRUE(h.run_until([&] { return srv.datagrams.size() == 2; }));
  h.send("+++");
  EXPECT_TRUE(h.expect("\r\n#XDATAMODE: 0\r\n"));
  EXPECT_EQ(srv.datagrams, (std::vector<std::string>{"one", std::string("t\0o,\"", 5)}));
  EXPECT_TRUE(poll_until(h, "\r\n#XPOLL: 0,\"0x0001\"\r\n" + ok));
  EXPECT_TRUE(h.at("AT#XRECV=0,64", "\r\n#XRECV: 3\r\none" + ok));
}

TEST(Socket, SendToDataModeAndTheV24ReceiveFromWithoutPort) {
  Harness h("v2.4");
  UdpServer srv(h.io, /*echo=*/true);
  h.boot();
  h.attach();
  EXPECT_TRUE(h.at("AT#XSOCKET=1,2,0", "\r\n#XSOCKET: 0,2,17\r\n" + ok));
  const std::string to = "\"127.0.0.1\"," + std::to_string(srv.port());
  EXPECT_TRUE(h.at("AT#XSENDTO=" + to, ok)) << "no data: data mode";
  h.send("dgram");
  ASSERT_TRUE(h.run_until([&] { return srv.datagrams.size() == 1; }));
  h.send("+++");
  EXPECT_TRUE(h.expect("\r\n#XDATAMODE: 0\r\n"));
  EXPECT_TRUE(poll_until(h, "\r\n#XPOLL: 0,\"0x0001\"\r\n" + ok));
  EXPECT_TRUE(h.at("AT#XRECVFROM=1", "\r\n#XRECVFROM: 5,\"127.0.0.1\"\r\ndgram" + ok)) << "v2.4: no port";
}

// #XSSOCKET on SLM: `<op>,<type>,<role>,<sec_tag>[,<peer_verify>[,<cid>]]`, answered `#XSSOCKET: <h>,1,258`
// (IPPROTO_TLS_1_2) or `<h>,2,273` (DTLS); #XSSOCKETOPT acts on the active socket and only on a TLS/DTLS one
// ("Not secure socket"); a TLS socket closes with either #XSOCKET=0 or #XSSOCKET=0, both answered as #XSOCKET.
TEST(Socket, TlsSocketOpensWithItsSecTagAndTakesAHostNameOnTheActiveSocket) {
  Harness h("v2.9");
  h.boot();
  EXPECT_TRUE(h.at("AT#XSSOCKET=1,1,0,42", "\r\n#XSSOCKET: 0,1,258\r\n" + ok));
  EXPECT_TRUE(h.at("AT#XSSOCKETOPT=1,2,\"tls.test\"", ok));
  EXPECT_TRUE(h.at("AT#XSSOCKETOPT=1,5,1", ok));
  EXPECT_TRUE(h.at("AT#XSSOCKETOPT=1,5,3", error)) << "peer_verify is 0, 1 or 2";
  EXPECT_TRUE(h.at("AT#XSSOCKET=1,1,0,42,3", error)) << "peer_verify is 0, 1 or 2";
  EXPECT_TRUE(h.at("AT#XSSOCKET=1,1,0", error)) << "sec_tag is not optional";
  EXPECT_TRUE(h.at("AT#XSSOCKET=1,1,1,42", error)) << "TLS servers are not simulated";
  EXPECT_TRUE(h.at("AT#XSSOCKET=1,2,0,42", "\r\n#XSSOCKET: 1,2,273\r\n" + ok)) << "DTLS: IPPROTO_DTLS_1_2";
  EXPECT_TRUE(h.at("AT#XSSOCKETOPT=1,14,2", ok)) << "DTLS_CID on the active DTLS socket";
  EXPECT_TRUE(h.at("AT#XSSOCKETOPT=1,14,3", error)) << "DTLS_CID is 0, 1 or 2";
  EXPECT_TRUE(h.at("AT#XSOCKET=1,1,0", "\r\n#XSOCKET: 2,1,6\r\n" + ok));
  EXPECT_TRUE(h.at("AT#XSSOCKETOPT=1,2,\"tls.test\"", error)) << "the active socket is not a secure one";
  EXPECT_TRUE(h.at("AT#XSSOCKET=2,1,0,42,0,0", "\r\n#XSSOCKET: 3,1,258\r\n" + ok)) << "IPv6, peer_verify, cid 0";
  EXPECT_TRUE(h.at("AT#XSSOCKETOPT=1,14,2", error)) << "DTLS_CID is not a TLS option";
  EXPECT_TRUE(h.at("AT#XSSOCKET=0", "\r\n#XSOCKET: 0,\"closed\"\r\n" + ok));
  EXPECT_TRUE(h.at("AT#XSOCKETSELECT=0", "\r\n#XSOCKETSELECT: 0\r\n" + ok));
  EXPECT_TRUE(h.at("AT#XSSOCKETOPT=1,2,\"NULL\"", ok)) << "NULL turns the name check off";
  EXPECT_TRUE(h.at("AT#XSOCKET=0", "\r\n#XSOCKET: 0,\"closed\"\r\n" + ok));
}

// v3.1's #XAPOLL: one URC per event, POLLIN armed again only by a read, POLLHUP once, #XPOLL refused while the
// poll runs, sockets opened later covered when no handle was listed; earlier releases have no such command.
TEST(Socket, Version31AsyncPollReportsEachEventOnceUntilTheReadArmsItAgain) {
  Harness h("v3.1");
  TcpServer srv(h.io, /*echo=*/true);
  h.boot();
  h.attach();
  EXPECT_TRUE(h.at("AT#XAPOLL=1,2", error)) << "POLLIN (1) and POLLOUT (4) only";
  EXPECT_TRUE(h.at("AT#XAPOLL=1,1,5", error)) << "no socket 5";
  EXPECT_TRUE(h.at("AT#XAPOLL=1,1", ok));
  EXPECT_TRUE(h.at("AT#XPOLL=0", error)) << "#XPOLL cannot be used with #XAPOLL";
  open_connected(h, srv);
  EXPECT_TRUE(h.at("AT#XSEND=\"hello\"", "\r\n#XSEND: 5\r\n" + ok));
  EXPECT_TRUE(h.expect("\r\n#XAPOLL: 0,1\r\n")) << "the echo: POLLIN on a socket opened after the start";
  srv.send(0, "more");
  EXPECT_TRUE(h.nothing_more()) << "POLLIN fires once until the socket is read";
  ASSERT_TRUE(h.run_until([&] { return srv.conns[0]->received == "hello"; }));
  EXPECT_TRUE(h.at("AT#XRECV=0,64", "\r\n#XRECV: 9\r\nhellomore" + ok));
  EXPECT_TRUE(h.nothing_more()) << "armed again by the read, but nothing is left";
  EXPECT_TRUE(h.at("AT#XAPOLL?", "\r\n#XAPOLL: 1,1,0\r\n" + ok));
  srv.close(0);
  EXPECT_TRUE(h.expect("\r\n#XAPOLL: 0,16\r\n")) << "the peer closed: POLLHUP";
  EXPECT_TRUE(h.at("AT#XAPOLL=0", ok));
  EXPECT_TRUE(h.at("AT#XAPOLL?", "\r\n#XAPOLL: 0,0,0\r\n" + ok)) << "the handle list stays as the firmware keeps it";
  EXPECT_TRUE(h.at("AT#XPOLL=0,0", "\r\n#XPOLL: 0,\"0x0010\"\r\n" + ok)) << "#XPOLL again once it stopped";

  Harness older("v3.0");
  older.boot();
  EXPECT_TRUE(older.at("AT#XAPOLL=1,1", error)) << "no #XAPOLL before v3.1";
}
