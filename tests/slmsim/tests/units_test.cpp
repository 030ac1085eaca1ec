// slmsim tests: pure units — line assembly, grammar check, parameter parsing, address mapping, the
// pacer's absolute schedule and the profile table.
#include <gtest/gtest.h>

#include "at_params.hpp"
#include "command_line.hpp"
#include "net_map.hpp"
#include "pacer.hpp"
#include "profile.hpp"

using namespace slmsim;

namespace {
std::vector<std::string> feed(LineAssembler& a, const std::string& bytes, int* overflows = nullptr) {
  std::vector<std::string> lines;
  for (char c : bytes) {
    auto e = a.feed(c);
    if (e == LineAssembler::Event::Line) lines.push_back(a.line());
    if (e == LineAssembler::Event::Overflow && overflows) ++*overflows;
  }
  return lines;
}
}  // namespace

TEST(LineAssembler, OnlyCrLfTerminates) {
  LineAssembler a(4096);
  EXPECT_TRUE(feed(a, "AT\r").empty());
  EXPECT_TRUE(feed(a, "X\n").empty());  // lone CR and LF are ordinary characters
  EXPECT_EQ(feed(a, "\r\n"), std::vector<std::string>{"AT\rX\n"});
  EXPECT_TRUE(feed(a, "\r\n").empty());  // empty line ignored
}

TEST(LineAssembler, CrLfInsideQuotesIsData) {
  LineAssembler a(4096);
  EXPECT_EQ(feed(a, "AT%CMNG=0,1,0,\"-----\r\nABC\r\n-----\"\r\n"),
            std::vector<std::string>{"AT%CMNG=0,1,0,\"-----\r\nABC\r\n-----\""});
}

TEST(LineAssembler, BackspaceAndDeleteEditEvenInsideQuotes) {
  LineAssembler a(4096);
  EXPECT_EQ(feed(a, "ATX\bE\x7f+CFUN?\r\n"), std::vector<std::string>{"AT+CFUN?"});
  EXPECT_EQ(feed(a, "AT#XTCPSEND=\"abc\x08\x08Z\"\r\n"), std::vector<std::string>{"AT#XTCPSEND=\"aZ\""});
  // Deleting the closing quote reopens the string: the CR LF is then data.
  EXPECT_TRUE(feed(a, "AT+X=\"a\"\x08\r\n").empty());
  EXPECT_EQ(feed(a, "\"\r\n"), std::vector<std::string>{"AT+X=\"a\r\n\""});
}

TEST(LineAssembler, LengthLimit) {
  LineAssembler a(4096);
  int ov = 0;
  EXPECT_EQ(feed(a, "AT+X=" + std::string(4091, 'a') + "\r\n", &ov).size(), 1u);
  EXPECT_EQ(ov, 0);
  EXPECT_TRUE(feed(a, "AT+X=" + std::string(4092, 'a') + "\r\n", &ov).empty());
  EXPECT_EQ(ov, 1);
  EXPECT_EQ(feed(a, "AT\r\n"), std::vector<std::string>{"AT"});  // recovers on the next line
}

TEST(Grammar, AcceptedAndRejectedForms) {
  for (const char* ok : {"AT", "at", "AT+CFUN=1", "AT+CFUN?", "AT+CFUN=?", "AT%XSYSTEMMODE=1,0,0,0", "AT#XSLMVER",
                         "AT#XTCPCLI=", "AT+CGPADDR"})
    EXPECT_TRUE(grammar_ok(ok)) << ok;
  for (const char* bad : {"ATE0", "ATZ", "ATI", "A", "AT+", "AT#", "AT+CFUN?1", "AT+C FUN", "XAT", "AT&F"})
    EXPECT_FALSE(grammar_ok(bad)) << bad;
}

TEST(Grammar, SkipJunk) {
  const std::string junk("\xff\x00zzAT+CFUN?", 12);
  EXPECT_EQ(*skip_junk(junk), "AT+CFUN?");
  EXPECT_EQ(*skip_junk("xxat#xslmver"), "at#xslmver");
  EXPECT_FALSE(skip_junk("garbage").has_value());
}

TEST(Params, IntegersAndStrings) {
  auto p = parse_params("1,\"host,\r\nname\",8080", true, true);
  ASSERT_TRUE(p);
  ASSERT_EQ(p->size(), 3u);
  EXPECT_EQ((*p)[0].i, 1);
  EXPECT_EQ((*p)[1].s, "host,\r\nname");
  EXPECT_EQ((*p)[2].i, 8080);
  EXPECT_FALSE(parse_params("01", true, true));  // at_parser: no leading zeros
  EXPECT_TRUE(parse_params("01", false, false));
  EXPECT_FALSE(parse_params("host", true, true));  // strings must be quoted
  EXPECT_FALSE(parse_params("\"open", true, true));
  EXPECT_TRUE(parse_params("1, 2", true, true));
  EXPECT_FALSE(parse_params("1, 2", false, false));
}

TEST(NetMap, MappingAndDocumentationRanges) {
  NetMap m;
  ASSERT_TRUE(m.add_mapping("203.0.113.0/24=127.0.0.1"));
  ASSERT_TRUE(m.add_mapping("203.0.113.99=127.0.0.2"));
  auto a = [](const char* s) { return boost::asio::ip::make_address(s); };
  EXPECT_EQ(m.route(a("203.0.113.10")).route, NetMap::Route::Mapped);
  EXPECT_EQ(m.route(a("203.0.113.10")).address, a("127.0.0.1"));
  EXPECT_EQ(m.route(a("203.0.113.99")).address, a("127.0.0.2"));  // most specific wins
  EXPECT_EQ(m.route(a("198.51.100.1")).route, NetMap::Route::Blackhole);
  EXPECT_EQ(m.route(a("2001:db8::1")).route, NetMap::Route::Blackhole);
  EXPECT_EQ(m.route(a("127.0.0.1")).route, NetMap::Route::Direct);
  EXPECT_FALSE(m.add_mapping("nonsense"));
  m.add_host("Example.COM", a("192.0.2.1"));
  m.add_host("example.com", a("2001:db8::5"));
  EXPECT_EQ(m.resolve("example.com", 0).size(), 2u);
  EXPECT_EQ(m.resolve("example.com", 1).size(), 1u);
  EXPECT_EQ(m.resolve("example.com", 2).front(), a("2001:db8::5"));
  EXPECT_TRUE(m.resolve("nowhere", 0).empty());
  EXPECT_EQ(m.resolve("10.1.2.3", 0).size(), 1u);
}

TEST(Pacer, AbsoluteScheduleCatchesUpAfterLateWakeups) {
  Pacer p(1000.0);  // 1000 bytes/s: byte k due at t0 + k ms
  auto t0 = Pacer::clock::now();
  EXPECT_EQ(p.allowance(t0), 1u);
  p.consume(1);
  EXPECT_EQ(p.next_due(), t0 + std::chrono::milliseconds(1));
  EXPECT_EQ(p.allowance(t0 + std::chrono::microseconds(500)), 0u);
  // A wake-up 10 ms late is made up by a bigger batch.
  EXPECT_EQ(p.allowance(t0 + std::chrono::milliseconds(10)), 10u);
  p.consume(10);
  // After idling, the schedule restarts instead of granting a burst.
  p.mark_idle();
  EXPECT_EQ(p.allowance(t0 + std::chrono::seconds(5)), 1u);
  Pacer unpaced(0);
  EXPECT_GT(unpaced.allowance(t0), 1000000u);
}

TEST(Pacer, ABurstCountsFromItsFirstByteAndEndsWithItsLast) {
  Pacer p(1000.0);
  const auto armed = Pacer::clock::now();
  EXPECT_TRUE(p.starts_burst(armed));
  EXPECT_EQ(p.allowance(armed), 1u);  // a read armed on an idle line waits for one byte
  const auto arrival = armed + std::chrono::seconds(5);
  p.begin_burst(arrival);
  p.consume(1);
  EXPECT_FALSE(p.starts_burst(arrival + std::chrono::milliseconds(2)));
  EXPECT_EQ(p.next_due(), arrival + std::chrono::milliseconds(1));
  EXPECT_EQ(p.last_due(3), arrival + std::chrono::milliseconds(3));  // bytes 1, 2, 3 of the burst
  EXPECT_EQ(p.allowance(arrival + std::chrono::milliseconds(3)), 3u);
}

TEST(Profiles, QuirkTable) {
  EXPECT_EQ(profile_names().size(), 12u);
  auto p25 = *find_profile("v2.5"), p26 = *find_profile("2.6"), p27 = *find_profile("v2.7.0"),
       p29 = *find_profile("v2.9"), p22 = *find_profile("v2.2");
  EXPECT_FALSE(find_profile("v3.2")) << "SLM ended with 3.1; 3.2 is the Serial Modem";
  EXPECT_FALSE(find_profile("v1.9"));
  auto p30 = *find_profile("v3.0"), p31 = *find_profile("3.1.0");
  EXPECT_EQ(p30.ncs_version, "3.0.0");
  EXPECT_TRUE(p30.udpdata_client_peer);
  EXPECT_FALSE(p29.udpdata_client_peer);
  EXPECT_FALSE(p30.proxy_client_cid);
  EXPECT_TRUE(p31.proxy_client_cid);
  EXPECT_TRUE(p31.send_flags);
  EXPECT_FALSE(p30.send_flags);
  EXPECT_TRUE(p31.tcpsend_datamode_unconnected) << "v3.x keeps every v2.9 behaviour";
  EXPECT_TRUE(p31.at_least(2, 9));
  EXPECT_EQ(p25.case_rule, CaseRule::Insensitive);
  EXPECT_EQ(p26.case_rule, CaseRule::UpperCase);
  EXPECT_EQ(p27.case_rule, CaseRule::Sensitive);
  EXPECT_EQ(p25.max_line, 4095u);
  EXPECT_EQ(p26.max_line, 4096u);
  EXPECT_FALSE(p22.header_first);
  EXPECT_EQ(p22.rx_chunk, 1272u);
  EXPECT_FALSE(p27.udpdata_with_peer);
  EXPECT_TRUE(p29.udpdata_with_peer);
  EXPECT_EQ(p25.peer_loss, PeerLossRule::NullModeUrc);
  EXPECT_EQ(p27.peer_loss, PeerLossRule::NullModeRawTerminator);
  EXPECT_TRUE(p29.tcpsend_datamode_unconnected);
  EXPECT_EQ(p29.ncs_version, "2.9.0");
}
