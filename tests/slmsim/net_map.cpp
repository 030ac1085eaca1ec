// slmsim: implementation of name resolution and address mapping (see net_map.hpp).
#include "net_map.hpp"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>

namespace slmsim {

namespace ip = boost::asio::ip;

namespace {
std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}
std::optional<ip::address> parse_addr(const std::string& s) {
  boost::system::error_code ec;
  auto a = ip::make_address(s, ec);
  if (ec) return std::nullopt;
  return a;
}
}  // namespace

bool in_prefix(const ip::address& a, const ip::address& prefix, unsigned len) {
  if (a.is_v4() != prefix.is_v4()) return false;
  if (a.is_v4()) {
    if (len > 32) return false;
    std::uint32_t x = a.to_v4().to_uint(), p = prefix.to_v4().to_uint();
    std::uint32_t mask = len == 0 ? 0 : ~std::uint32_t{0} << (32 - len);
    return (x & mask) == (p & mask);
  }
  if (len > 128) return false;
  auto x = a.to_v6().to_bytes(), p = prefix.to_v6().to_bytes();
  for (unsigned bit = 0; bit < len; ++bit) {
    unsigned byte = bit / 8, shift = 7 - bit % 8;
    if (((x[byte] >> shift) & 1) != ((p[byte] >> shift) & 1)) return false;
  }
  return true;
}

bool NetMap::add_mapping(const std::string& spec) {
  auto eq = spec.find('=');
  if (eq == std::string::npos) return false;
  std::string from = spec.substr(0, eq), to = spec.substr(eq + 1);
  Rule r;
  auto slash = from.find('/');
  auto pa = parse_addr(from.substr(0, slash));
  auto ta = parse_addr(to);
  if (!pa || !ta) return false;
  r.prefix = *pa;
  r.len = pa->is_v4() ? 32 : 128;
  if (slash != std::string::npos) {
    try {
      r.len = static_cast<unsigned>(std::stoul(from.substr(slash + 1)));
    } catch (...) {
      return false;
    }
    if (r.len > (pa->is_v4() ? 32u : 128u)) return false;
  }
  r.to = *ta;
  rules_.push_back(r);
  return true;
}

bool NetMap::load_hosts_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return false;
  std::string line;
  while (std::getline(in, line)) {
    auto hash = line.find('#');
    if (hash != std::string::npos) line.resize(hash);
    std::istringstream ls(line);
    std::string addr, name;
    if (!(ls >> addr)) continue;
    auto a = parse_addr(addr);
    if (!a) continue;
    while (ls >> name) add_host(name, *a);
  }
  return true;
}

void NetMap::add_host(const std::string& name, const ip::address& a) { hosts_.push_back({lower(name), a}); }

std::vector<ip::address> NetMap::resolve(const std::string& host, int family) const {
  std::vector<ip::address> out;
  auto ok = [family](const ip::address& a) { return family == 0 || (family == 1) == a.is_v4(); };
  if (auto lit = parse_addr(host)) {
    if (ok(*lit)) out.push_back(*lit);
    return out;
  }
  std::string n = lower(host);
  for (const auto& h : hosts_)
    if (h.name == n && ok(h.addr)) out.push_back(h.addr);
  return out;
}

bool NetMap::is_documentation(const ip::address& a) {
  static const std::pair<const char*, unsigned> ranges[] = {
      {"192.0.2.0", 24}, {"198.51.100.0", 24}, {"203.0.113.0", 24}, {"2001:db8::", 32}};
  for (const auto& [p, l] : ranges)
    if (in_prefix(a, ip::make_address(p), l)) return true;
  return false;
}

NetMap::Target NetMap::route(const ip::address& a) const {
  // The most specific rule wins.
  const Rule* best = nullptr;
  for (const auto& r : rules_)
    if (in_prefix(a, r.prefix, r.len) && (!best || r.len > best->len)) best = &r;
  if (best) return {Route::Mapped, best->to};
  if (is_documentation(a)) return {Route::Blackhole, a};
  return {Route::Direct, a};
}

}  // namespace slmsim
