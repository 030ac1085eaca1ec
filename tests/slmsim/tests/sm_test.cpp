// slmsim tests: the Serial Modem profiles (sm-v1.0, sm-v2.0-preview1; reference
// serial-modem-and-generic-sockets.md §1–2 and ncs-serial-modem's sm_at_host.c / sm_at_socket.c): CR termination,
// #XSMVER, the SLM commands gone, handle-based sockets (open, connect, close, the table limit, options), string,
// hex and data-mode sends (with <data_len>: "+++" is data), #XRECV framing, automatic reception URCs, #XAPOLL
// one-shot events and hang-up, UDP #XSENDTO/#XRECVFROM, the data-mode error path, URCs held back during data
// mode, #XGETADDRINFO's repeated address, resets, fault injection and preview1's #XLISTEN/#XACCEPT. Every
// expected byte string is written out; waits are deadline-bounded.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <array>
#include <cstdio>

#include "harness.hpp"

using namespace slmsim;
using namespace slmsim::test;

namespace {

const std::string ok = "\r\nOK\r\n";
const std::string error = "\r\nERROR\r\n";

struct SmCase {
  const char* profile;
  const char* smver;  // the #XSMVER line
  std::size_t max_sockets;
  bool preview;
};

const SmCase kCases[] = {
    {"sm-v1.0", "#XSMVER: \"v1.0.1\",\"3.2.4\"", 7, false},
    {"sm-v2.0-preview1", "#XSMVER: \"v2.0.0-preview1\",\"3.3.0-rc1\"", 8, true},
};

void PrintTo(const SmCase& c, std::ostream* os) { *os << c.profile; }

std::string case_name(const ::testing::TestParamInfo<SmCase>& i) {
  std::string n = i.param.profile;
  for (auto& c : n)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return n;
}

std::string to(unsigned short port) { return "\"127.0.0.1\"," + std::to_string(port); }

// Sends a command line ended by CR alone (the Serial Modem's terminator) and expects the exact answer.
::testing::AssertionResult cr(Harness& h, const std::string& line, const std::string& expected) {
  h.send(line + "\r");
  return h.expect(expected);
}

// Opens TCP socket 3 and connects it to `srv`; returns once the server has the connection.
void open_connected(Harness& h, TcpServer& srv, int handle = 3) {
  const std::string hs = std::to_string(handle);
  const auto n = srv.conns.size();
  ASSERT_TRUE(cr(h, "AT#XSOCKET=1,1,0", "\r\n#XSOCKET: " + hs + ",1,6\r\n" + ok));
  ASSERT_TRUE(cr(h, "AT#XCONNECT=" + hs + "," + to(srv.port()), "\r\n#XCONNECT: " + hs + ",1\r\n" + ok));
  ASSERT_TRUE(h.run_until([&] { return srv.conns.size() == n + 1; }));
}

// Reads automatic-reception URCs for socket `handle` ("\r\n#XRECV: <h>,0,<n>\r\n" + n bytes + "\r\n") until
// `total` payload bytes arrived; checks each URC's framing and that none carries more than 2048 bytes.
::testing::AssertionResult read_urcs(Harness& h, int handle, std::size_t total, std::string& payload) {
  const std::string head = "\r\n#XRECV: " + std::to_string(handle) + ",0,";
  while (payload.size() < total) {
    if (!h.run_until([&] { return h.pending().find("\r\n", head.size()) != std::string::npos; }))
      return ::testing::AssertionFailure() << "no URC header in [" << Harness::esc(h.pending().substr(0, 80)) << "]";
    const std::string p = h.pending();
    if (p.compare(0, head.size(), head) != 0)
      return ::testing::AssertionFailure() << "not a URC: [" << Harness::esc(p.substr(0, 80)) << "]";
    const auto eol = p.find("\r\n", head.size());
    const std::size_t n = std::stoul(p.substr(head.size(), eol - head.size()));
    if (n == 0 || n > 2048) return ::testing::AssertionFailure() << "URC of " << n << " bytes";
    const std::size_t whole = eol + 2 + n + 2;
    if (!h.run_until([&] { return h.pending().size() >= whole; }))
      return ::testing::AssertionFailure() << "URC payload incomplete";
    const std::string u = h.pending().substr(0, whole);
    if (u.compare(whole - 2, 2, "\r\n") != 0) return ::testing::AssertionFailure() << "no CRLF after the payload";
    payload += u.substr(eol + 2, n);
    h.consumed += whole;
  }
  return ::testing::AssertionSuccess();
}

class Sm : public ::testing::TestWithParam<SmCase> {};
INSTANTIATE_TEST_SUITE_P(Profiles, Sm, ::testing::ValuesIn(kCases), case_name);

}  // namespace

TEST_P(Sm, BootVersionAndTheSlmCommandsAreGone) {
  Harness h(GetParam().profile);
  EXPECT_EQ(h.sink.out, "Ready\r\n") << "no leading CRLF";
  h.consumed = 7;
  EXPECT_TRUE(cr(h, "AT#XSMVER", "\r\n" + std::string(GetParam().smver) + "\r\n" + ok));
  EXPECT_TRUE(cr(h, "AT#XSMVER?", error));
  EXPECT_TRUE(cr(h, "AT+CGMM", "\r\nnRF9151-LACA\r\n" + ok));
  std::vector<std::string> gone = {"AT#XSLMVER", "AT#XTCPCLI=1,\"127.0.0.1\",80", "AT#XUDPCLI=1,\"127.0.0.1\",80",
                                   "AT#XTCPSVR=1,8080", "AT#XUDPSVR=1,8080", "AT#XTCPSEND=\"x\"",
                                   "AT#XUDPSEND=\"x\"", "AT#XSOCKETSELECT=3", "AT#XPOLL=0", "AT#XTCPHANGUP=1"};
  if (!GetParam().preview) {
    gone.push_back("AT#XLISTEN=3");
    gone.push_back("AT#XACCEPT=3");
  }
  for (const auto& c : gone) EXPECT_TRUE(cr(h, c, error)) << c;
  EXPECT_TRUE(cr(h, "at#xsmver", error)) << "SM's commands are matched by their exact name";
}

// #XSSOCKET: a TLS 1.2 client socket (protocol 258) with its sec_tag; the host name to verify and the peer
// verification are set with #XSSOCKETOPT (names 2 and 5) on secure sockets only. TLS servers do not exist in
// the firmware; DTLS sockets are not simulated. The handshake itself runs in #XCONNECT (tests/integration).
TEST_P(Sm, TlsSocketOpensWithItsSecTagAndTakesAHostName) {
  Harness h(GetParam().profile);
  h.boot();
  EXPECT_TRUE(cr(h, "AT#XSSOCKET=1,1,0,42", "\r\n#XSSOCKET: 3,1,258\r\n" + ok));
  EXPECT_TRUE(cr(h, "AT#XSSOCKETOPT=3,1,2,\"tls.test\"", ok));
  EXPECT_TRUE(cr(h, "AT#XSSOCKETOPT=3,1,5,1", ok));
  EXPECT_TRUE(cr(h, "AT#XSSOCKETOPT=3,1,5,3", error)) << "peer_verify is 0, 1 or 2";
  EXPECT_TRUE(cr(h, "AT#XSSOCKET=1,1,0,42,3", error)) << "peer_verify is 0, 1 or 2";
  EXPECT_TRUE(cr(h, "AT#XSSOCKET=1,1,1,42", error)) << "TLS servers are not supported";
  EXPECT_TRUE(cr(h, "AT#XSSOCKET=1,2,0,42", "\r\n#XSSOCKET: 4,2,273\r\n" + ok)) << "DTLS: IPPROTO_DTLS_1_2";
  EXPECT_TRUE(cr(h, "AT#XSSOCKETOPT=4,1,14,2", ok)) << "DTLS_CID on a DTLS socket";
  EXPECT_TRUE(cr(h, "AT#XSSOCKETOPT=3,1,14,2", error)) << "DTLS_CID is not a TLS option";
  EXPECT_TRUE(cr(h, "AT#XSSOCKETOPT=4,1,14,3", error)) << "DTLS_CID is 0, 1 or 2";
  EXPECT_TRUE(cr(h, "AT#XSOCKET=1,1,0", "\r\n#XSOCKET: 5,1,6\r\n" + ok));
  EXPECT_TRUE(cr(h, "AT#XSSOCKETOPT=5,1,2,\"tls.test\"", error)) << "not a secure socket";
  EXPECT_TRUE(cr(h, "AT#XCLOSE=3", "\r\n#XCLOSE: 3,0\r\n" + ok));
  EXPECT_TRUE(cr(h, "AT#XCLOSE=4", "\r\n#XCLOSE: 4,0\r\n" + ok));
}

TEST_P(Sm, CrEndsACommandAndAnythingBeforeAtIsSkipped) {
  Harness h(GetParam().profile);
  h.boot();
  EXPECT_TRUE(cr(h, "AT", ok));
  h.send("AT\r\n");  // a CR LF host: the LF is skipped before the next "AT"
  EXPECT_TRUE(h.expect(ok));
  h.send("\n\n\rAT+CFUN?\r");
  EXPECT_TRUE(h.expect("\r\n+CFUN: 0\r\n" + ok));
  h.send("junk\r\nAT\r");
  EXPECT_TRUE(h.expect(ok));
  h.send("AT+CFUN?\n");  // LF is an ordinary character: stored, and the grammar check fails at the CR
  EXPECT_TRUE(h.nothing_more());
  h.send("\r");
  EXPECT_TRUE(h.expect(error));
  h.send("AT#XSMVER=\"a\rb\"\r");  // CR inside quotes is not a terminator
  EXPECT_TRUE(h.expect("\r\n" + std::string(GetParam().smver) + "\r\n" + ok));
  h.send("AAT\r");  // an "A" not followed by "T" is dropped together with the byte that broke it
  EXPECT_TRUE(h.nothing_more());
  EXPECT_TRUE(cr(h, "AT", ok));
}

TEST_P(Sm, EchoWithAte1EchoesEveryConsumedByte) {
  Harness h(GetParam().profile);
  h.boot();
  EXPECT_TRUE(cr(h, "ATE1", ok)) << "off while ATE1 itself is read";
  EXPECT_TRUE(cr(h, "AT", "AT\r" + ok));
  h.send("AT\r\n");
  EXPECT_TRUE(h.expect("AT\r" + ok + "\n")) << "the skipped LF is echoed after the answer";
  EXPECT_TRUE(cr(h, "ATE0", "ATE0\r" + ok));
  EXPECT_TRUE(cr(h, "AT", ok));
}

TEST_P(Sm, BackspaceAndTheLineLimitPerRelease) {
  Harness h(GetParam().profile);
  h.boot();
  if (GetParam().preview) {
    // preview1 stores the BS in place of the character it deleted: the grammar check fails.
    EXPECT_TRUE(cr(h, "AT+CFUNX\b?", error));
    const std::string fits = "AT#XSMVER=\"" + std::string(8189 - 12, 'x') + "\"";
    ASSERT_EQ(fits.size(), 8189u);
    EXPECT_TRUE(cr(h, fits, "\r\n" + std::string(GetParam().smver) + "\r\n" + ok));
    EXPECT_TRUE(cr(h, fits + "y", error)) << "8190 characters: the buffer cannot grow past 8192";
  } else {
    EXPECT_TRUE(cr(h, "AT+CFUNX\b?", "\r\n+CFUN: 0\r\n" + ok));
    const std::string fits = "AT#XSMVER=\"" + std::string(4096 - 12, 'x') + "\"";
    ASSERT_EQ(fits.size(), 4096u);
    EXPECT_TRUE(cr(h, fits, "\r\n" + std::string(GetParam().smver) + "\r\n" + ok));
    EXPECT_TRUE(cr(h, fits + "y", error)) << "4097 characters: CONFIG_SM_AT_BUF_SIZE";
  }
  EXPECT_TRUE(cr(h, "AT", ok));
}

TEST_P(Sm, OpenConnectListAndCloseWithHandlesFromThree) {
  Harness h(GetParam().profile);
  TcpServer srv(h.io);
  h.boot();
  EXPECT_TRUE(cr(h, "AT#XSOCKET=1,1,0", "\r\n#XSOCKET: 3,1,6\r\n" + ok));
  EXPECT_TRUE(cr(h, "AT#XCONNECT=3," + to(srv.port()), error)) << "not attached";
  h.attach();
  EXPECT_TRUE(cr(h, "AT#XCONNECT=3," + to(srv.port()), "\r\n#XCONNECT: 3,1\r\n" + ok));
  EXPECT_TRUE(cr(h, "AT#XCONNECT=3," + to(srv.port()), error)) << "connected already";
  EXPECT_TRUE(cr(h, "AT#XSOCKET=1,2,0", "\r\n#XSOCKET: 4,2,17\r\n" + ok));
  EXPECT_TRUE(cr(h, "AT#XSOCKET?", "\r\n#XSOCKET: 3,1,0,1,0\r\n\r\n#XSOCKET: 4,1,0,2,0\r\n" + ok));
  EXPECT_TRUE(cr(h, "AT#XSOCKET=?", "\r\n#XSOCKET: <handle>,(1,2,3),(1,2,3),(0,1),<cid>\r\n" + ok));
  EXPECT_TRUE(cr(h, "AT#XSOCKET=1,1,0,1", error)) << "only the default PDN is active";
  EXPECT_TRUE(cr(h, "AT#XSOCKET=1,3,0", error)) << "raw needs family 3";
  EXPECT_TRUE(cr(h, "AT#XCLOSE=3", "\r\n#XCLOSE: 3,0\r\n" + ok));
  EXPECT_TRUE(cr(h, "AT#XCLOSE=3", error));
  EXPECT_TRUE(h.run_until([&] { return srv.conns.size() == 1 && srv.conns[0]->eof; }));
  EXPECT_TRUE(cr(h, "AT#XSOCKET=1,1,0", "\r\n#XSOCKET: 3,1,6\r\n" + ok)) << "the lowest free handle";
  EXPECT_TRUE(cr(h, "AT#XCLOSE", "\r\n#XCLOSE: 3,0\r\n\r\n#XCLOSE: 4,0\r\n" + ok)) << "one line per socket";
  EXPECT_TRUE(cr(h, "AT#XCLOSE", ok)) << "nothing to close";
}

TEST_P(Sm, TheSocketTableIsFullAfterItsLastSlot) {
  Harness h(GetParam().profile);
  h.boot();
  const auto max = GetParam().max_sockets;  // v1.0.x: 7 (POSIX_OPEN_MAX - 1); preview1: 8
  for (std::size_t i = 0; i < max; ++i)
    EXPECT_TRUE(cr(h, "AT#XSOCKET=1,1,0", "\r\n#XSOCKET: " + std::to_string(3 + i) + ",1,6\r\n" + ok)) << i;
  EXPECT_TRUE(cr(h, "AT#XSOCKET=1,2,0", error)) << "socket " << max + 1;
  EXPECT_TRUE(cr(h, "AT#XCLOSE=5", "\r\n#XCLOSE: 5,0\r\n" + ok));
  EXPECT_TRUE(cr(h, "AT#XSOCKET=1,2,0", "\r\n#XSOCKET: 5,2,17\r\n" + ok));
}

TEST_P(Sm, StringAndHexSendsAndSolicitedReceive) {
  Harness h(GetParam().profile);
  TcpServer srv(h.io, /*echo=*/true);
  h.boot();
  h.attach();
  EXPECT_TRUE(cr(h, "AT#XSOCKET=1,1,0", "\r\n#XSOCKET: 3,1,6\r\n" + ok));
  EXPECT_TRUE(cr(h, "AT#XSEND=3,0,0,\"x\"", "\r\n#XSEND: 3,0,0\r\n" + error)) << "unconnected: printed anyway";
  EXPECT_TRUE(cr(h, "AT#XCONNECT=3," + to(srv.port()), "\r\n#XCONNECT: 3,1\r\n" + ok));
  EXPECT_TRUE(cr(h, "AT#XSEND=3,0,0,\"hello\"", "\r\n#XSEND: 3,0,5\r\n" + ok));
  // timeout 0: blocks until the echo is there.
  EXPECT_TRUE(cr(h, "AT#XRECV=3,0,0,0", "\r\n#XRECV: 3,0,5\r\nhello" + ok));
  EXPECT_TRUE(cr(h, "AT#XRECV=3,0,64,0", error)) << "MSG_DONTWAIT with nothing there";
  EXPECT_TRUE(cr(h, "AT#XSEND=3,1,0,\"48690a\"", "\r\n#XSEND: 3,0,3\r\n" + ok));
  EXPECT_TRUE(cr(h, "AT#XRECV=3,0,2,0,2", "\r\n#XRECV: 3,0,2\r\nHi" + ok)) << "MSG_PEEK, <data_len> 2";
  EXPECT_TRUE(cr(h, "AT#XRECV=3,1,0,0", "\r\n#XRECV: 3,1,3\r\n48690a" + ok)) << "hex: the count is of bytes";
  EXPECT_TRUE(cr(h, "AT#XSEND=3,1,0,\"4g\"", error)) << "not hex";
  EXPECT_TRUE(cr(h, "AT#XSEND=3,0,0", error)) << "no data";
  EXPECT_TRUE(cr(h, "AT#XRECV=3,0,0,0,2049", error)) << "more than SM_MAX_MESSAGE_SIZE";
  EXPECT_TRUE(cr(h, "AT#XRECV=3,2,0,0", error)) << "mode 2 is for sends";
  EXPECT_TRUE(cr(h, "AT#XSOCKETOPT=3,0,20", "\r\n#XSOCKETOPT: 3,0\r\n" + ok)) << "the last #XRECV's timeout";
  EXPECT_TRUE(cr(h, "AT#XSOCKETOPT=3,0,21", "\r\n#XSOCKETOPT: 3,30\r\n" + ok));
  EXPECT_TRUE(cr(h, "AT#XSOCKETOPT=3,1,20,7", ok));
  EXPECT_TRUE(cr(h, "AT#XSOCKETOPT=3,0,20", "\r\n#XSOCKETOPT: 3,7\r\n" + ok));
  EXPECT_TRUE(cr(h, "AT#XSOCKETOPT=3,1,2,1", ok));
  EXPECT_TRUE(cr(h, "AT#XSOCKETOPT=3,0,2", error)) << "REUSEADDR is set-only";
  EXPECT_TRUE(cr(h, "AT#XSOCKETOPT=3,1,99,1", error));
  EXPECT_EQ(srv.conns[0]->received, "helloHi\n");
}

TEST_P(Sm, EndOfStreamIsOkAloneAndHangUpIsApoll16) {
  Harness h(GetParam().profile);
  TcpServer srv(h.io);
  h.boot();
  h.attach();
  EXPECT_TRUE(cr(h, "AT#XAPOLL=,1,1", ok));
  open_connected(h, srv);
  srv.send(0, "bye");
  EXPECT_TRUE(h.expect("\r\n#XAPOLL: 3,1\r\n"));
  srv.close(0);
  EXPECT_TRUE(h.expect("\r\n#XAPOLL: 3,16\r\n")) << "POLLIN waits for a #XRECV: the hang-up alone";
  EXPECT_TRUE(cr(h, "AT#XRECV=3,0,64,0", "\r\n#XRECV: 3,0,3\r\nbye" + ok));
  EXPECT_TRUE(cr(h, "AT#XRECV=3,0,0,0", ok)) << "end of stream: OK without #XRECV";
  EXPECT_TRUE(cr(h, "AT#XAPOLL?", "\r\n#XAPOLL: 3,1\r\n" + ok)) << "the requested events, without ERR/HUP/NVAL";
  // Events 0: POLLERR/POLLHUP/POLLNVAL only, for this and later sockets.
  EXPECT_TRUE(cr(h, "AT#XAPOLL=,1,0", ok));
  open_connected(h, srv, 4);
  srv.close(1);
  EXPECT_TRUE(h.expect("\r\n#XAPOLL: 4,16\r\n"));
  EXPECT_TRUE(cr(h, "AT#XAPOLL?", "\r\n#XAPOLL: 3,0\r\n\r\n#XAPOLL: 4,0\r\n" + ok));
  EXPECT_TRUE(h.nothing_more()) << "POLLHUP is reported once";
}

TEST_P(Sm, ApollEventsAreOneShotUntilASendOrARecv) {
  Harness h(GetParam().profile);
  TcpServer srv(h.io, /*echo=*/true);
  h.boot();
  h.attach();
  EXPECT_TRUE(cr(h, "AT#XAPOLL=,1,5", ok));
  EXPECT_TRUE(cr(h, "AT#XSOCKET=1,1,0", "\r\n#XSOCKET: 3,1,6\r\n" + ok)) << "no POLLOUT before the connect";
  EXPECT_TRUE(cr(h, "AT#XCONNECT=3," + to(srv.port()), "\r\n#XCONNECT: 3,1\r\n" + ok + "\r\n#XAPOLL: 3,4\r\n"));
  EXPECT_TRUE(cr(h, "AT#XSEND=3,0,0,\"echo\"", "\r\n#XSEND: 3,0,4\r\n" + ok + "\r\n#XAPOLL: 3,4\r\n"));
  EXPECT_TRUE(h.expect("\r\n#XAPOLL: 3,1\r\n")) << "the echo";
  EXPECT_TRUE(cr(h, "AT#XAPOLL?", "\r\n#XAPOLL: 3,5\r\n" + ok));
  EXPECT_TRUE(cr(h, "AT#XAPOLL=?", "\r\n#XAPOLL: <handle>,(0,1),(0,1,4,5)\r\n" + ok));
  EXPECT_TRUE(cr(h, "AT#XRECV=3,0,0,1", "\r\n#XRECV: 3,0,4\r\necho" + ok));
  EXPECT_TRUE(cr(h, "AT#XCLOSE=3", "\r\n#XCLOSE: 3,0\r\n" + ok)) << "no event for a close";
  EXPECT_TRUE(cr(h, "AT#XSOCKET=1,2,0", "\r\n#XSOCKET: 3,2,17\r\n" + ok + "\r\n#XAPOLL: 3,4\r\n"))
      << "UDP is writable at once";
  EXPECT_TRUE(cr(h, "AT#XAPOLL=,0", ok));
  EXPECT_TRUE(cr(h, "AT#XAPOLL?", ok));
  EXPECT_TRUE(cr(h, "AT#XAPOLL=9,1,1", error)) << "no such socket";
  EXPECT_TRUE(cr(h, "AT#XAPOLL=,1,2", error)) << "POLLIN and POLLOUT only";
}

TEST_P(Sm, AutomaticReceptionUrcCarriesTheBytesExactly) {
  Harness h(GetParam().profile);
  TcpServer srv(h.io);
  h.boot();
  h.attach();
  EXPECT_TRUE(cr(h, "AT#XRECVCFG=,1", ok)) << "all current and future sockets";
  open_connected(h, srv);
  const std::string binary("a\r\nOK\r\n\0\"+++\r\n#XRECV: 9,0,1\r\n", 29);
  srv.send(0, binary);
  EXPECT_TRUE(h.expect("\r\n#XRECV: 3,0,29\r\n" + binary + "\r\n"));
  EXPECT_TRUE(cr(h, "AT#XRECVCFG?", "\r\n#XRECVCFG: 3,1,0\r\n" + ok));
  // More than one read: URCs of at most 2048 bytes until the socket is empty.
  std::string big;
  for (int i = 0; i < 5000; ++i) big.push_back(static_cast<char>(i * 7));
  srv.send(0, big);
  std::string got;
  EXPECT_TRUE(read_urcs(h, 3, big.size(), got));
  EXPECT_EQ(got, big);
  EXPECT_TRUE(cr(h, "AT#XRECVCFG=3,1,1", ok)) << "hex";
  srv.send(0, "Hi");
  EXPECT_TRUE(h.expect("\r\n#XRECV: 3,1,2\r\n4869\r\n"));
  EXPECT_TRUE(cr(h, "AT#XRECVCFG=3,2,1", error)) << "hex only in AT mode";
}

TEST_P(Sm, DataThenCloseWithAutomaticReceptionAndApoll) {
  for (bool eof_pollin : {false, true}) {
    SCOPED_TRACE(eof_pollin ? "--sm-eof-pollin" : "POLLIN only with bytes");
    auto cfg = test_config(GetParam().profile);
    cfg.sm_eof_pollin = eof_pollin;
    Harness h(cfg);
    TcpServer srv(h.io);
    h.boot();
    h.attach();
    EXPECT_TRUE(cr(h, "AT#XRECVCFG=,1", ok));
    EXPECT_TRUE(cr(h, "AT#XAPOLL=,1,1", ok));
    open_connected(h, srv);
    srv.send(0, "bye");
    EXPECT_TRUE(h.expect("\r\n#XAPOLL: 3,1\r\n\r\n#XRECV: 3,0,3\r\nbye\r\n")) << "the URC, then the bytes";
    srv.close(0);
    // The automatic read armed POLLIN (and its #XAPOLL) again. At the end of the stream: POLLHUP alone, or with
    // --sm-eof-pollin POLLIN too, and then the read returns 0 and auto_reception() sends its stray CRLF.
    EXPECT_TRUE(h.expect(eof_pollin ? "\r\n#XAPOLL: 3,17\r\n\r\n" : "\r\n#XAPOLL: 3,16\r\n"));
    EXPECT_TRUE(h.nothing_more());
    EXPECT_TRUE(cr(h, "AT#XRECV=3,0,64,0", ok)) << "end of stream";
  }
}

TEST_P(Sm, DataModeWithLengthTakesTerminatorsAsData) {
  Harness h(GetParam().profile);
  TcpServer srv(h.io);
  h.boot();
  h.attach();
  open_connected(h, srv);
  const std::string payload("+++\0\r\n\"x,\r+++\n++", 16);
  EXPECT_TRUE(cr(h, "AT#XSEND=3,2,0,16", ok));
  EXPECT_TRUE(h.sim->in_data_mode());
  h.send(payload.substr(0, 5));
  h.send(payload.substr(5) + "AT\r");  // what follows the 16 bytes is AT input again
  EXPECT_TRUE(h.expect("\r\n#XDATAMODE: 0\r\n" + ok));
  EXPECT_TRUE(h.run_until([&] { return srv.conns[0]->received == payload; }));
  // More than the 4096-byte buffer over TCP: sent in parts, all of it.
  std::string big;
  for (int i = 0; i < 10000; ++i) big.push_back(i % 97 == 0 ? '+' : static_cast<char>(i));
  EXPECT_TRUE(cr(h, "AT#XSEND=3,2,0,10000", ok));
  h.send(big);
  EXPECT_TRUE(h.expect("\r\n#XDATAMODE: 0\r\n"));
  EXPECT_TRUE(h.run_until([&] { return srv.conns[0]->received == payload + big; }));
  // Without <data_len>: "+++" ends it, anywhere.
  EXPECT_TRUE(cr(h, "AT#XSEND=3,2,0", ok));
  h.send("tail+++");
  EXPECT_TRUE(h.expect("\r\n#XDATAMODE: 0\r\n"));
  EXPECT_TRUE(h.run_until([&] { return srv.conns[0]->received == payload + big + "tail"; }));
  EXPECT_TRUE(cr(h, "AT", ok));
}

TEST_P(Sm, DataModeErrorSendsTheTerminatorAndDropsInputUntilTheHosts) {
  Harness h(GetParam().profile);
  TcpServer srv(h.io);
  h.boot();
  h.attach();
  open_connected(h, srv);
  EXPECT_TRUE(cr(h, "AT#XSEND=3,2,0", ok));
  h.send("abc");
  EXPECT_TRUE(h.run_until([&] { return srv.conns[0]->received == "abc"; }));
  EXPECT_EQ(h.sim->control("peer-reset"), "ok");
  EXPECT_TRUE(h.expect("+++")) << "POLLHUP on the data-mode socket";
  h.send("dropped AT\r");
  EXPECT_TRUE(h.nothing_more());
  h.send("+++AT\r");
  EXPECT_TRUE(h.expect("\r\n#XDATAMODE: -1\r\n" + ok));
  EXPECT_TRUE(cr(h, "AT#XSEND=3,0,0,\"x\"", "\r\n#XSEND: 3,0,0\r\n" + error)) << "the connection is gone";
  EXPECT_EQ(srv.conns[0]->received, "abc");
}

TEST_P(Sm, UdpOverflowInDataModeWithLength) {
  Harness h(GetParam().profile);
  UdpServer srv(h.io);
  h.boot();
  h.attach();
  EXPECT_TRUE(cr(h, "AT#XSOCKET=1,2,0", "\r\n#XSOCKET: 3,2,17\r\n" + ok));
  EXPECT_TRUE(cr(h, "AT#XCONNECT=3," + to(srv.port()), "\r\n#XCONNECT: 3,1\r\n" + ok));
  EXPECT_TRUE(cr(h, "AT#XSEND=3,2,0,4096", ok));
  h.send(std::string(4096, 'u'));
  EXPECT_TRUE(h.expect("\r\n#XDATAMODE: 0\r\n")) << "a whole buffer is one datagram";
  EXPECT_TRUE(cr(h, "AT#XSEND=3,2,0,5000", ok));
  h.send(std::string(5000, 'v'));
  EXPECT_TRUE(h.expect("+++")) << "more than one buffer for a datagram: -EOVERFLOW";
  h.send("+++");
  EXPECT_TRUE(h.expect("\r\n#XDATAMODE: -1\r\n"));
  EXPECT_TRUE(h.run_until([&] { return srv.datagrams.size() == 1; }));
  EXPECT_EQ(srv.datagrams[0], std::string(4096, 'u'));
  EXPECT_TRUE(cr(h, "AT", ok));
}

TEST_P(Sm, UdpSendToAndAutomaticReceiveFrom) {
  Harness h(GetParam().profile);
  UdpServer srv(h.io, /*echo=*/true);
  h.boot();
  h.attach();
  EXPECT_TRUE(cr(h, "AT#XRECVCFG=,1", ok));
  EXPECT_TRUE(cr(h, "AT#XSOCKET=1,2,0", "\r\n#XSOCKET: 3,2,17\r\n" + ok));
  const std::string peer = to(srv.port());
  EXPECT_TRUE(cr(h, "AT#XSENDTO=3,0,0," + peer + ",\"ping\"", "\r\n#XSENDTO: 3,0,4\r\n" + ok));
  EXPECT_TRUE(h.expect("\r\n#XRECVFROM: 3,0,4," + peer + "\r\nping\r\n")) << "unconnected: #XRECVFROM";
  EXPECT_TRUE(cr(h, "AT#XSENDTO=3,2,0," + peer + ",5", ok));
  h.send("dgram");
  EXPECT_TRUE(h.expect("\r\n#XDATAMODE: 0\r\n"));
  EXPECT_TRUE(h.expect("\r\n#XRECVFROM: 3,0,5," + peer + "\r\ndgram\r\n"));
  EXPECT_TRUE(cr(h, "AT#XSENDTO=3,1,0," + peer + ",\"00ff\"", "\r\n#XSENDTO: 3,0,2\r\n" + ok));
  EXPECT_TRUE(h.expect("\r\n#XRECVFROM: 3,0,2," + peer + "\r\n" + std::string("\0\xff", 2) + "\r\n"));
  EXPECT_TRUE(cr(h, "AT#XSENDTO=3,0,0,\"nowhere.test\",7,\"x\"", error)) << "no name: no #XSENDTO line";
  EXPECT_TRUE(cr(h, "AT#XCONNECT=3," + peer, "\r\n#XCONNECT: 3,1\r\n" + ok));
  EXPECT_TRUE(cr(h, "AT#XSEND=3,0,0,\"pong\"", "\r\n#XSEND: 3,0,4\r\n" + ok));
  EXPECT_TRUE(h.expect("\r\n#XRECV: 3,0,4\r\npong\r\n")) << "connected: #XRECV";
  EXPECT_EQ(srv.datagrams, (std::vector<std::string>{"ping", "dgram", std::string("\0\xff", 2), "pong"}));
}

TEST_P(Sm, DataModeHoldsUrcsAndOtherSocketsEventsUntilItEnds) {
  Harness h(GetParam().profile);
  TcpServer a(h.io), b(h.io);
  h.boot();
  h.attach();
  EXPECT_TRUE(cr(h, "AT#XRECVCFG=,1", ok));
  open_connected(h, a, 3);
  open_connected(h, b, 4);
  EXPECT_TRUE(cr(h, "AT#XSEND=3,2,0", ok));
  b.send(0, "late");
  EXPECT_EQ(h.sim->control("urc +CEREG: 5"), "ok");
  EXPECT_TRUE(h.nothing_more()) << "nothing but the data-mode socket's bytes in data mode";
  h.send("+++");
  EXPECT_TRUE(h.expect("\r\n#XDATAMODE: 0\r\n\r\n+CEREG: 5\r\n\r\n#XRECV: 4,0,4\r\nlate\r\n"));
  // Automatic reception in data mode (flag 2): the data-mode socket's bytes come raw.
  EXPECT_TRUE(cr(h, "AT#XRECVCFG=3,2", ok));
  EXPECT_TRUE(cr(h, "AT#XSEND=3,2,0", ok));
  a.send(0, "raw\r\n");
  EXPECT_TRUE(h.expect("raw\r\n"));
  h.send("+++");
  EXPECT_TRUE(h.expect("\r\n#XDATAMODE: 0\r\n"));
}

TEST_P(Sm, GetAddrInfoRepeatsTheFirstAddressAsTheFirmwareDoes) {
  auto cfg = test_config(GetParam().profile);
  cfg.net.add_host("two.test", boost::asio::ip::make_address("192.0.2.1"));
  cfg.net.add_host("two.test", boost::asio::ip::make_address("192.0.2.2"));
  Harness h(cfg);
  h.boot();
  EXPECT_TRUE(cr(h, "AT#XGETADDRINFO=\"two.test\"", "\r\n#XGETADDRINFO: \"EAI_AGAIN\"\r\n" + error));
  h.attach();
  EXPECT_TRUE(cr(h, "AT#XGETADDRINFO=\"two.test\"", "\r\n#XGETADDRINFO: \"192.0.2.1 192.0.2.1\"\r\n" + ok));
  EXPECT_TRUE(cr(h, "AT#XGETADDRINFO=\"two.test\",1", "\r\n#XGETADDRINFO: \"192.0.2.1 192.0.2.1\"\r\n" + ok));
  EXPECT_TRUE(cr(h, "AT#XGETADDRINFO=\"none.test\"", "\r\n#XGETADDRINFO: \"EAI_NONAME\"\r\n" + error));
}

TEST_P(Sm, AResetLosesEverySocket) {
  Harness h(GetParam().profile);
  TcpServer srv(h.io);
  h.boot();
  h.attach();
  EXPECT_TRUE(cr(h, "AT#XRECVCFG=,1", ok));
  open_connected(h, srv);
  EXPECT_EQ(h.sim->control("reset"), "ok");
  EXPECT_TRUE(h.expect("Ready\r\n"));
  EXPECT_TRUE(h.run_until([&] { return srv.conns[0]->eof; }));
  EXPECT_TRUE(cr(h, "AT#XCLOSE=3", error)) << "no such handle any more";
  EXPECT_TRUE(cr(h, "AT#XSOCKET?", ok));
  EXPECT_TRUE(cr(h, "AT#XRECVCFG?", ok));
  EXPECT_TRUE(cr(h, "AT#XSOCKET=1,1,0", "\r\n#XSOCKET: 3,1,6\r\n" + ok));
  EXPECT_TRUE(cr(h, "AT#XRESET", ok));
  EXPECT_TRUE(h.expect("Ready\r\n"));
  EXPECT_TRUE(cr(h, "AT#XSOCKET?", ok));
}

TEST_P(Sm, ModemResetLeavesStaleHandles) {
  Harness h(GetParam().profile);
  h.boot();
  h.attach();
  EXPECT_TRUE(cr(h, "AT#XSOCKET=1,2,0", "\r\n#XSOCKET: 3,2,17\r\n" + ok));
  EXPECT_TRUE(cr(h, "AT#XMODEMRESET", "\r\n#XMODEMRESET: 0\r\n" + ok));
  EXPECT_TRUE(cr(h, "AT+CFUN?", "\r\n+CFUN: 0\r\n" + ok));
  EXPECT_TRUE(cr(h, "AT#XCLOSE=3", "\r\n#XCLOSE: 3,-9\r\n" + error)) << "nrf_close() of a stale descriptor";
  EXPECT_TRUE(cr(h, "AT#XDATACTRL?", "\r\n#XDATACTRL: 0,32\r\n" + ok));
}

TEST_P(Sm, PayloadFaultsStrikeAutomaticReception) {
  Harness h(GetParam().profile);
  TcpServer srv(h.io);
  h.boot();
  h.attach();
  EXPECT_TRUE(cr(h, "AT#XRECVCFG=,1", ok));
  open_connected(h, srv);
  EXPECT_EQ(h.sim->control("payload-fault drop 2 3"), "ok");
  srv.send(0, "abcdefgh");
  EXPECT_TRUE(h.expect("\r\n#XRECV: 3,0,8\r\nabfgh\r\n")) << "the count still says 8";
  EXPECT_EQ(h.sim->control("payload-fault reset 1"), "ok");
  srv.send(0, "xyz");
  EXPECT_TRUE(h.expect("\r\n#XRECV: 3,0,3\r\nx"));
  EXPECT_TRUE(h.expect("Ready\r\n", std::chrono::milliseconds(3000)));
  EXPECT_TRUE(cr(h, "AT#XSOCKET?", ok));
}

TEST(SmPreview, ListenAndAcceptComeBack) {
  Harness h("sm-v2.0-preview1");
  h.boot();
  h.attach();
  const unsigned short port = free_port(h.io);
  EXPECT_TRUE(cr(h, "AT#XSOCKET=1,1,1", "\r\n#XSOCKET: 3,1,6\r\n" + ok));
  EXPECT_TRUE(cr(h, "AT#XLISTEN=3", error)) << "not bound";
  EXPECT_TRUE(cr(h, "AT#XBIND=3," + std::to_string(port), ok));
  EXPECT_TRUE(cr(h, "AT#XBIND=3," + std::to_string(port), error)) << "bound already";
  EXPECT_TRUE(cr(h, "AT#XLISTEN=3", ok));
  EXPECT_TRUE(cr(h, "AT#XLISTEN?", "\r\n#XLISTEN: 3,0," + std::to_string(port) + "\r\n" + ok));
  EXPECT_TRUE(cr(h, "AT#XACCEPT=3", error)) << "non-blocking: nobody waits";
  EXPECT_TRUE(cr(h, "AT#XAPOLL=3,1,1", ok));
  boost::asio::ip::tcp::socket client(h.io);
  bool connected = false;
  client.async_connect({boost::asio::ip::make_address("127.0.0.1"), port},
                       [&](const boost::system::error_code& ec) { connected = !ec; });
  EXPECT_TRUE(h.expect("\r\n#XAPOLL: 3,1\r\n")) << "POLLIN on the listening socket";
  ASSERT_TRUE(h.run_until([&] { return connected; }));
  const auto cport = std::to_string(client.local_endpoint().port());
  EXPECT_TRUE(cr(h, "AT#XACCEPT=3", "\r\n#XACCEPT: 4,0,\"127.0.0.1\"," + cport + "\r\n" + ok));
  EXPECT_TRUE(cr(h, "AT#XSEND=4,0,0,\"hi\"", "\r\n#XSEND: 4,0,2\r\n" + ok));
  std::array<char, 2> buf{};
  std::size_t got = 0;
  boost::asio::async_read(client, boost::asio::buffer(buf),
                          [&](const boost::system::error_code&, std::size_t n) { got = n; });
  ASSERT_TRUE(h.run_until([&] { return got == 2; }));
  EXPECT_EQ(std::string(buf.data(), 2), "hi");
  boost::system::error_code ec;
  client.close(ec);
  EXPECT_TRUE(cr(h, "AT#XRECV=4,0,0,0", ok)) << "the client closed";
}

namespace {
// Reads from `fd` until `want` bytes came or the deadline passed.
std::string read_fd(int fd, std::size_t want, std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
  std::string out;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (out.size() < want) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    pollfd p{fd, POLLIN, 0};
    if (left <= 0 || ::poll(&p, 1, static_cast<int>(left)) <= 0) break;
    char buf[256];
    const auto n = ::read(fd, buf, std::min(sizeof buf, want - out.size()));
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}
}  // namespace

TEST(SmBinary, ListsTheProfilesAndServesOverAPty) {
  std::string out;
  {
    FILE* p = ::popen((std::string(SLMSIM_BINARY) + " --list-profiles").c_str(), "r");
    ASSERT_NE(p, nullptr);
    char buf[256];
    while (std::fgets(buf, sizeof buf, p)) out += buf;
    ::pclose(p);
  }
  EXPECT_NE(out.find("\nv3.1\nsm-v1.0\nsm-v2.0-preview1\n"), std::string::npos) << out;
  EXPECT_EQ(out.rfind("v2.0\n", 0), 0u);

  char dir_template[] = "/tmp/slmsim-sm-XXXXXX";
  const std::string dir = ::mkdtemp(dir_template);
  const std::string link = dir + "/tty";
  int pipefd[2];
  ASSERT_EQ(::pipe(pipefd), 0);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(pipefd[1], 1);
    ::close(pipefd[0]);
    ::execl(SLMSIM_BINARY, SLMSIM_BINARY, "--link", link.c_str(), "--baud", "0", "--profile", "sm-v1.0",
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(pipefd[1]);
  std::string first;
  for (std::string ch; (ch = read_fd(pipefd[0], 1)) != "\n" && !ch.empty();) first += ch;
  ASSERT_EQ(first, link);
  const int fd = ::open(link.c_str(), O_RDWR | O_NOCTTY);
  ASSERT_GE(fd, 0);
  termios t{};
  ::tcgetattr(fd, &t);
  ::cfmakeraw(&t);
  ::tcsetattr(fd, TCSANOW, &t);
  EXPECT_EQ(read_fd(fd, 7), "Ready\r\n");
  const std::string cmd = "AT#XSMVER\r";
  ASSERT_EQ(::write(fd, cmd.data(), cmd.size()), static_cast<ssize_t>(cmd.size()));
  const std::string want = "\r\n#XSMVER: \"v1.0.1\",\"3.2.4\"\r\n\r\nOK\r\n";
  EXPECT_EQ(read_fd(fd, want.size()), want);
  ::close(fd);
  ::kill(pid, SIGTERM);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ::close(pipefd[0]);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ::rmdir(dir.c_str());
}
