// slmsim tests: the TCP proxy against real local sockets — connect/echo/disconnect transcripts,
// errno values, busy proxy, address mapping, peer loss, server role, hang-up ordering per release,
// extra peers, data-first receive (≤v2.2) and chunking.
#include "harness.hpp"

using namespace slmsim;
using namespace slmsim::test;

namespace {
std::string cli(unsigned short port, const std::string& host = "127.0.0.1") {
  return "AT#XTCPCLI=1,\"" + host + "\"," + std::to_string(port);
}
}  // namespace

TEST(TcpClient, ConnectEchoDisconnect) {
  Harness h;
  TcpServer srv(h.io, /*echo=*/true);
  h.boot();
  h.attach();
  EXPECT_TRUE(h.at("AT#XTCPCLI?", "\r\n#XTCPCLI: -1,0\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.at(cli(srv.port()), "\r\n#XTCPCLI: 0,\"connected\"\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT#XTCPCLI?", "\r\n#XTCPCLI: 0,1\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT#XTCPSEND=\"Test TCP\"", "\r\n#XTCPSEND: 8\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.expect("\r\n#XTCPDATA: 8\r\nTest TCP"));  // header first, no trailing CRLF
  EXPECT_TRUE(h.at("AT#XTCPSEND=\"\"", "\r\n#XTCPSEND: 0\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT#XTCPCLI=0", "\r\n#XTCPCLI: 0,\"disconnected\"\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT#XTCPCLI?", "\r\n#XTCPCLI: -1,1\r\n\r\nOK\r\n"));  // family is not reset
  EXPECT_TRUE(h.at("AT#XTCPCLI=0", "\r\nOK\r\n"));                       // not connected: just OK
  EXPECT_TRUE(h.run_until([&] { return srv.conns.size() == 1 && srv.conns[0]->eof; }));
  EXPECT_EQ(srv.conns[0]->received, "Test TCP");
}

TEST(TcpClient, SendWhileUnconnectedIsPlainError) {
  Harness h;
  h.boot();
  h.attach();
  EXPECT_TRUE(h.at("AT#XTCPSEND=\"x\"", "\r\nERROR\r\n"));
}

TEST(TcpClient, RefusedIsMinus111) {
  Harness h;
  unsigned short port = free_port(h.io);
  h.boot();
  h.attach();
  EXPECT_TRUE(h.at(cli(port), "\r\n#XTCPCLI: -111,\"not connected\"\r\n\r\nERROR\r\n"));
  EXPECT_TRUE(h.at("AT#XTCPCLI?", "\r\n#XTCPCLI: -1,1\r\n\r\nOK\r\n"));
}

TEST(TcpClient, BusyProxyIsPlainError) {
  Harness h;
  TcpServer srv(h.io);
  h.boot();
  h.attach();
  EXPECT_TRUE(h.at(cli(srv.port()), "\r\n#XTCPCLI: 0,\"connected\"\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.at(cli(srv.port()), "\r\nERROR\r\n"));
  EXPECT_TRUE(h.at("AT#XTCPSVR=1,0", "\r\nERROR\r\n"));
}

TEST(TcpClient, MappedDocumentationAddressReachesLocalServer) {
  auto c = test_config();
  ASSERT_TRUE(c.net.add_mapping("203.0.113.0/24=127.0.0.1"));
  c.net.add_host("server.example", boost::asio::ip::make_address("203.0.113.10"));
  Harness h(c);
  TcpServer srv(h.io, true);
  h.boot();
  h.attach();
  EXPECT_TRUE(h.at(cli(srv.port(), "203.0.113.10"), "\r\n#XTCPCLI: 0,\"connected\"\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT#XTCPCLI=0", "\r\n#XTCPCLI: 0,\"disconnected\"\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.at(cli(srv.port(), "server.example"), "\r\n#XTCPCLI: 0,\"connected\"\r\n\r\nOK\r\n"));
}

TEST(TcpClient, UnmappedDocumentationAddressTimesOutOrIsUnreachable) {
  {
    Harness h;  // connect_timeout_ms 300
    h.boot();
    h.attach();
    EXPECT_TRUE(h.at(cli(80, "198.51.100.7"), "\r\n#XTCPCLI: -116,\"not connected\"\r\n\r\nERROR\r\n"));
  }
  {
    auto c = test_config();
    c.unmapped_unreachable = true;
    Harness h(c);
    h.boot();
    h.attach();
    EXPECT_TRUE(h.at(cli(80, "192.0.2.1"), "\r\n#XTCPCLI: -118,\"not connected\"\r\n\r\nERROR\r\n"));
  }
}

TEST(TcpClient, UnknownHostAndDetachedErrors) {
  Harness h;
  h.boot();
  EXPECT_TRUE(h.at(cli(80), "\r\n#XTCPCLI: -115,\"not connected\"\r\n\r\nERROR\r\n"));       // no network
  EXPECT_TRUE(h.at(cli(80, "a.example"), "\r\n#XTCPCLI: -3,\"not connected\"\r\n\r\nERROR\r\n"));
  h.attach();
  EXPECT_TRUE(h.at(cli(80, "a.example"), "\r\n#XTCPCLI: -2,\"not connected\"\r\n\r\nERROR\r\n"));
}

TEST(TcpClient, PeerCloseGivesMinus104Urc) {
  Harness h;
  TcpServer srv(h.io);
  h.boot();
  h.attach();
  EXPECT_TRUE(h.at(cli(srv.port()), "\r\n#XTCPCLI: 0,\"connected\"\r\n\r\nOK\r\n"));
  ASSERT_TRUE(h.run_until([&] { return srv.conns.size() == 1; }));
  srv.send(0, "bye");
  EXPECT_TRUE(h.expect("\r\n#XTCPDATA: 3\r\nbye"));
  srv.close(0);
  EXPECT_TRUE(h.expect("\r\n#XTCPCLI: -104,\"disconnected\"\r\n"));
  EXPECT_TRUE(h.at("AT#XTCPCLI?", "\r\n#XTCPCLI: -1,1\r\n\r\nOK\r\n"));
}

TEST(TcpClient, ReceiveIsChunkedAt2048AndDataFirstBefore23) {
  {
    Harness h;
    TcpServer srv(h.io);
    h.boot();
    h.attach();
    EXPECT_TRUE(h.at(cli(srv.port()), "\r\n#XTCPCLI: 0,\"connected\"\r\n\r\nOK\r\n"));
    ASSERT_TRUE(h.run_until([&] { return srv.conns.size() == 1; }));
    std::string big(5000, 'x');
    srv.send(0, big);
    // Every notification carries ≤2048 bytes; together they carry all 5000.
    std::size_t total = 0;
    while (total < big.size()) {
      ASSERT_TRUE(h.run_until([&] { return h.pending().find("\r\n", 2) != std::string::npos; }));
      std::string p = h.pending();
      ASSERT_EQ(p.rfind("\r\n#XTCPDATA: ", 0), 0u) << Harness::esc(p.substr(0, 40));
      auto end = p.find("\r\n", 2);
      std::size_t n = std::stoul(p.substr(13, end - 13));
      EXPECT_LE(n, 2048u);
      h.consumed += end + 2;
      ASSERT_TRUE(h.expect(std::string(n, 'x')));
      total += n;
    }
    EXPECT_EQ(total, big.size());
  }
  {
    Harness h("v2.2");
    TcpServer srv(h.io);
    h.boot();
    h.attach();
    EXPECT_TRUE(h.at(cli(srv.port()), "\r\n#XTCPCLI: 0,\"connected\"\r\n\r\nOK\r\n"));
    ASSERT_TRUE(h.run_until([&] { return srv.conns.size() == 1; }));
    srv.send(0, "abc");
    EXPECT_TRUE(h.expect("abc\r\n#XTCPDATA: 3\r\n"));  // data first before v2.3
  }
}

TEST(TcpClient, PayloadLimit) {
  Harness h;
  TcpServer srv(h.io);
  h.boot();
  h.attach();
  EXPECT_TRUE(h.at(cli(srv.port()), "\r\n#XTCPCLI: 0,\"connected\"\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT#XTCPSEND=\"" + std::string(1024, 'a') + "\"", "\r\n#XTCPSEND: 1024\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT#XTCPSEND=\"" + std::string(1025, 'a') + "\"", "\r\nERROR\r\n"));
}

TEST(TcpServer, StartAcceptHangupStop) {
  Harness h;
  h.boot();
  h.attach();
  unsigned short port = free_port(h.io);
  EXPECT_TRUE(h.at("AT#XTCPSVR?", "\r\n#XTCPSVR: -1,-1,0\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT#XTCPSVR=1," + std::to_string(port), "\r\n#XTCPSVR: 0,\"started\"\r\n\r\nOK\r\n"));
  asio::ip::tcp::socket c1(h.io), c2(h.io);
  c1.connect({asio::ip::make_address("127.0.0.1"), port});
  EXPECT_TRUE(h.expect("\r\n#XTCPSVR: \"127.0.0.1\",\"connected\"\r\n"));
  EXPECT_TRUE(h.at("AT#XTCPSVR?", "\r\n#XTCPSVR: 0,1,1\r\n\r\nOK\r\n"));
  // A second peer is accepted and closed at once, without a URC.
  c2.connect({asio::ip::make_address("127.0.0.1"), port});
  bool c2_closed = false;
  char b;
  c2.async_read_some(asio::buffer(&b, 1), [&](boost::system::error_code ec, std::size_t) { c2_closed = !!ec; });
  EXPECT_TRUE(h.run_until([&] { return c2_closed; }));
  EXPECT_TRUE(h.nothing_more());
  asio::write(c1, asio::buffer(std::string("hi")));
  EXPECT_TRUE(h.expect("\r\n#XTCPDATA: 2\r\nhi"));
  EXPECT_TRUE(h.at("AT#XTCPSEND=\"yo\"", "\r\n#XTCPSEND: 2\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT#XTCPHANGUP=0", "\r\nERROR\r\n"));  // wrong handle
  EXPECT_TRUE(h.at("AT#XTCPHANGUP=?", "\r\n#XTCPHANGUP: <handle>\r\n\r\nOK\r\n"));
  // v2.7+: OK first, then the URC.
  EXPECT_TRUE(h.at("AT#XTCPHANGUP=1", "\r\nOK\r\n\r\n#XTCPSVR: 0,\"disconnected\"\r\n"));
  EXPECT_TRUE(h.at("AT#XTCPSVR=0", "\r\n#XTCPSVR: 0,\"stopped\"\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT#XTCPSVR=0", "\r\nERROR\r\n"));
}

TEST(TcpServer, HangupUrcBeforeOkUpTo26AndPeerCloseAndStopWithPeer) {
  Harness h("v2.6");
  h.boot();
  h.attach();
  unsigned short port = free_port(h.io);
  EXPECT_TRUE(h.at("AT#XTCPSVR=1," + std::to_string(port), "\r\n#XTCPSVR: 0,\"started\"\r\n\r\nOK\r\n"));
  {
    asio::ip::tcp::socket c(h.io);
    c.connect({asio::ip::make_address("127.0.0.1"), port});
    EXPECT_TRUE(h.expect("\r\n#XTCPSVR: \"127.0.0.1\",\"connected\"\r\n"));
    EXPECT_TRUE(h.at("AT#XTCPHANGUP=1", "\r\n#XTCPSVR: 0,\"disconnected\"\r\n\r\nOK\r\n"));
  }
  {
    asio::ip::tcp::socket c(h.io);
    c.connect({asio::ip::make_address("127.0.0.1"), port});
    EXPECT_TRUE(h.expect("\r\n#XTCPSVR: \"127.0.0.1\",\"connected\"\r\n"));
    c.close();  // orderly close: cause 0
    EXPECT_TRUE(h.expect("\r\n#XTCPSVR: 0,\"disconnected\"\r\n"));
  }
  asio::ip::tcp::socket c(h.io);
  c.connect({asio::ip::make_address("127.0.0.1"), port});
  EXPECT_TRUE(h.expect("\r\n#XTCPSVR: \"127.0.0.1\",\"connected\"\r\n"));
  EXPECT_TRUE(h.at("AT#XTCPSVR=0",
                   "\r\n#XTCPSVR: 0,\"disconnected\"\r\n\r\n#XTCPSVR: 0,\"stopped\"\r\n\r\nOK\r\n"));
}

TEST(TcpServer, NotAttachedAndV29SecTagWedge) {
  Harness h;
  h.boot();
  EXPECT_TRUE(h.at("AT#XTCPSVR=1,1234", "\r\n#XTCPSVR: -115,\"not started\"\r\n\r\nERROR\r\n"));
  h.attach();
  EXPECT_TRUE(h.at("AT#XTCPSVR=1,1234,42", "\r\nERROR\r\n"));
  // The TCP proxy stays busy until a reboot.
  EXPECT_TRUE(h.at("AT#XTCPSVR=1,1234", "\r\nERROR\r\n"));
  EXPECT_TRUE(h.at("AT#XTCPCLI=1,\"127.0.0.1\",1", "\r\nERROR\r\n"));
}
