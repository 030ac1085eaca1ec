// slmsim tests: byte-exact framing transcripts — Ready, OK/ERROR, pass-through framing, grammar,
// case rules per release, junk skipping, line editing, quotes, the line limit, CFUN/CEREG/CGPADDR,
// #XSLMVER, #XRESET, #XMODEMRESET and #XDATACTRL.
#include "harness.hpp"

using namespace slmsim;
using namespace slmsim::test;

TEST(Framing, ReadyAtBootWithoutLeadingCrLf) {
  Harness h;
  EXPECT_EQ(h.sink.out, "Ready\r\n");
}

TEST(Framing, BootDelay) {
  auto c = test_config();
  c.boot_delay_ms = 50;
  Harness h(c);
  EXPECT_EQ(h.sink.out, "");
  EXPECT_TRUE(h.expect("Ready\r\n"));
}

TEST(Framing, PlainAtNoEcho) {
  Harness h;
  h.boot();
  EXPECT_TRUE(h.at("AT", "\r\nOK\r\n"));
  EXPECT_TRUE(h.nothing_more());
}

TEST(Framing, GrammarErrors) {
  Harness h;
  h.boot();
  for (const char* c : {"ATE0", "ATZ", "ATI", "AT+", "AT&F"}) EXPECT_TRUE(h.at(c, "\r\nERROR\r\n")) << c;
}

TEST(Framing, OnlyCrLfTerminates) {
  Harness h;
  h.boot();
  h.send("AT\r");
  EXPECT_TRUE(h.nothing_more());
  h.send("\n");
  EXPECT_TRUE(h.expect("\r\nOK\r\n"));
  h.send("AT\n");  // a lone LF is an ordinary character
  EXPECT_TRUE(h.nothing_more());
  h.send("\r\n");
  EXPECT_TRUE(h.expect("\r\nERROR\r\n"));  // "AT\n" fails the grammar check
  h.send("\r\n\r\n");                       // empty lines are ignored
  EXPECT_TRUE(h.nothing_more());
}

TEST(Framing, LineEditing) {
  Harness h;
  h.boot();
  EXPECT_TRUE(h.at("ATQ\b+CFUN?", "\r\n+CFUN: 0\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT#XSLMVERR\x7f", "\r\n#XSLMVER: \"2.9.0\",\"2.9.0\"\r\n\r\nOK\r\n"));
}

TEST(Framing, ModemPassThroughFraming) {
  Harness h;
  h.boot();
  EXPECT_TRUE(h.at("AT+CFUN?", "\r\n+CFUN: 0\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT+CMEE=1", "\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT+CGMI", "\r\nNordic Semiconductor ASA\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT+NOSUCH", "\r\nERROR\r\n"));
  EXPECT_TRUE(h.at("AT+CFUN=7", "\r\nERROR\r\n"));
  EXPECT_TRUE(h.at("at+cfun?", "\r\n+CFUN: 0\r\n\r\nOK\r\n"));  // the modem accepts lower case
}

TEST(Framing, SlmCommandsCaseSensitivityPerRelease) {
  {
    Harness h("v2.9");
    h.boot();
    EXPECT_TRUE(h.at("at#xslmver", "\r\nERROR\r\n"));  // not intercepted: the modem says ERROR
    EXPECT_TRUE(h.at("AT#xslmver", "\r\nERROR\r\n"));
  }
  {
    Harness h("v2.7");
    h.boot();
    EXPECT_TRUE(h.at("at#xslmver", "\r\nERROR\r\n"));
  }
  {
    Harness h("v2.6");
    h.boot();
    EXPECT_TRUE(h.at("at#xslmver", "\r\n#XSLMVER: \"2.6.0\",\"2.6.0\"\r\n\r\nOK\r\n"));
  }
  {
    Harness h("v2.5");
    h.boot();
    EXPECT_TRUE(h.at("at#XsLmVeR", "\r\n#XSLMVER: \"2.5.0\",\"2.5.0\"\r\n\r\nOK\r\n"));
  }
}

TEST(Framing, JunkBeforeAtSkippedFrom25) {
  {
    Harness h("v2.5");
    h.boot();
    EXPECT_TRUE(h.at("\xff\x01zzAT+CFUN?", "\r\n+CFUN: 0\r\n\r\nOK\r\n"));
    EXPECT_TRUE(h.at("garbage", "\r\nERROR\r\n"));
  }
  {
    Harness h("v2.4");
    h.boot();
    EXPECT_TRUE(h.at("zzAT+CFUN?", "\r\nERROR\r\n"));
  }
}

TEST(Framing, LineLimit4096From26And4095Before) {
  std::string base = "AT+CMEE=";  // 8 characters
  {
    Harness h("v2.9");
    h.boot();
    EXPECT_TRUE(h.at("AT%XBANDLOCK=\"" + std::string(4096 - 15, '1') + "\"", "\r\nOK\r\n"));
    h.send("AT%XBANDLOCK=\"" + std::string(4096 - 14, '1') + "\"\r\n");
    EXPECT_TRUE(h.expect("\r\nERROR\r\n"));
    EXPECT_TRUE(h.nothing_more());
    EXPECT_TRUE(h.at("AT", "\r\nOK\r\n"));
  }
  {
    Harness h("v2.5");
    h.boot();
    EXPECT_TRUE(h.at("AT%XBANDLOCK=\"" + std::string(4095 - 15, '1') + "\"", "\r\nOK\r\n"));
    EXPECT_TRUE(h.at("AT%XBANDLOCK=\"" + std::string(4096 - 15, '1') + "\"", "\r\nERROR\r\n"));
  }
}

TEST(Framing, QuotedCrLfDoesNotTerminate) {
  Harness h;
  h.boot();
  h.send("AT%CMNG=0,1000,0,\"-----BEGIN\r\n");
  EXPECT_TRUE(h.nothing_more());
  h.send("MIIB\r\n-----END\"\r\n");
  EXPECT_TRUE(h.expect("\r\nOK\r\n"));
}

TEST(Modem, CfunCeregCgpaddr) {
  Harness h;
  h.boot();
  EXPECT_TRUE(h.at("AT+CGPADDR=0", "\r\nERROR\r\n"));  // no PDN yet
  EXPECT_TRUE(h.at("AT+CGPADDR", "\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT+CEREG?", "\r\n+CEREG: 0,0\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT+CEREG=1", "\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT+CFUN=1", "\r\nOK\r\n"));
  EXPECT_TRUE(h.expect("\r\n+CEREG: 2\r\n"));
  EXPECT_TRUE(h.expect("\r\n+CEREG: 1\r\n"));
  EXPECT_TRUE(h.at("AT+CFUN?", "\r\n+CFUN: 1\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT+CEREG?", "\r\n+CEREG: 1,1\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT+CGPADDR=0", "\r\n+CGPADDR: 0,\"10.0.0.2\"\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT+CGPADDR", "\r\n+CGPADDR: 0,\"10.0.0.2\"\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT+CEREG=5", "\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT+CEREG?", "\r\n+CEREG: 5,1,\"0001\",\"01A2B3C4\",7,,,\"11100000\",\"11100000\"\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT+CEREG=2", "\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT+CFUN=4", "\r\nOK\r\n"));
  EXPECT_TRUE(h.expect("\r\n+CEREG: 0\r\n"));
  EXPECT_TRUE(h.at("AT+CFUN?", "\r\n+CFUN: 4\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT+CFUN=0", "\r\nOK\r\n"));
  EXPECT_TRUE(h.nothing_more());
}

TEST(Modem, CgpaddrWithIpv6AndCustomAddress) {
  auto c = test_config();
  c.ipv4_address = "10.1.2.3";
  c.ipv6_address = "2001:db8::2";
  Harness h(c);
  h.boot();
  h.attach();
  EXPECT_TRUE(h.at("AT+CGPADDR=0", "\r\n+CGPADDR: 0,\"10.1.2.3\",\"2001:db8::2\"\r\n\r\nOK\r\n"));
}

TEST(Slm, SlmverPerProfile) {
  for (int m = 0; m <= 9; ++m) {
    std::string v = "2." + std::to_string(m);
    Harness h("v" + v);
    h.boot();
    EXPECT_TRUE(h.at("AT#XSLMVER", "\r\n#XSLMVER: \"" + v + ".0\",\"" + v + ".0\"\r\n\r\nOK\r\n")) << v;
  }
}

TEST(Slm, ResetRebootsAndClosesEverything) {
  Harness h;
  h.boot();
  h.attach();
  EXPECT_TRUE(h.at("AT#XRESET", "\r\nOK\r\n"));
  h.send("AT\r\n");  // lost: the firmware is rebooting
  EXPECT_TRUE(h.expect("Ready\r\n"));
  EXPECT_TRUE(h.at("AT+CFUN?", "\r\n+CFUN: 0\r\n\r\nOK\r\n"));
}

TEST(Slm, ModemResetFrom25) {
  {
    Harness h("v2.5");
    h.boot();
    h.attach();
    EXPECT_TRUE(h.at("AT#XMODEMRESET", "\r\n#XMODEMRESET: 0\r\n\r\nOK\r\n"));
    EXPECT_TRUE(h.at("AT+CFUN?", "\r\n+CFUN: 0\r\n\r\nOK\r\n"));
  }
  {
    Harness h("v2.4");
    h.boot();
    EXPECT_TRUE(h.at("AT#XMODEMRESET", "\r\nERROR\r\n"));
  }
}

TEST(Slm, DataCtrl) {
  Harness h;  // nominal 115200: minimum 256*10*1000/115200+10 = 32
  h.boot();
  EXPECT_TRUE(h.at("AT#XDATACTRL?", "\r\n#XDATACTRL: 0,32\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT#XDATACTRL=31", "\r\nERROR\r\n"));
  EXPECT_TRUE(h.at("AT#XDATACTRL=0", "\r\nERROR\r\n"));
  EXPECT_TRUE(h.at("AT#XDATACTRL=100", "\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT#XDATACTRL?", "\r\n#XDATACTRL: 100,32\r\n\r\nOK\r\n"));
  EXPECT_TRUE(h.at("AT#XDATACTRL=?", "\r\n#XDATACTRL=<time_limit>\r\n\r\nOK\r\n"));
  auto c = test_config();
  c.baud = 9600;
  Harness slow(c);
  slow.boot();
  EXPECT_TRUE(slow.at("AT#XDATACTRL?", "\r\n#XDATACTRL: 0,276\r\n\r\nOK\r\n"));
}
