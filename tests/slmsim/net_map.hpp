// slmsim: the simulated "internet": host names from a hosts file (/etc/hosts format) plus IP
// literals, and the mapping of test addresses (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24,
// 2001:db8::/32 or any other) onto local addresses. Unmapped documentation-range addresses are
// unreachable (they time out or fail, as configured).
#pragma once

#include <boost/asio/ip/address.hpp>
#include <optional>
#include <string>
#include <vector>

namespace slmsim {

class NetMap {
 public:
  // "A=B" (single address) or "P/len=B" (whole prefix). Returns false on a syntax error.
  bool add_mapping(const std::string& spec);
  // Adds "address name [alias…]" lines; '#' starts a comment. Returns false if unreadable.
  bool load_hosts_file(const std::string& path);
  void add_host(const std::string& name, const boost::asio::ip::address& a);

  // IP literal or host name → addresses (hosts-file order). family 0 any, 1 IPv4, 2 IPv6.
  std::vector<boost::asio::ip::address> resolve(const std::string& host, int family) const;

  enum class Route { Direct, Mapped, Blackhole };
  struct Target {
    Route route = Route::Direct;
    boost::asio::ip::address address;  // where to really connect (Direct/Mapped)
  };
  Target route(const boost::asio::ip::address& a) const;

  static bool is_documentation(const boost::asio::ip::address& a);

 private:
  struct Rule {
    boost::asio::ip::address prefix;
    unsigned len = 0;
    boost::asio::ip::address to;
  };
  struct Host {
    std::string name;
    boost::asio::ip::address addr;
  };
  std::vector<Rule> rules_;
  std::vector<Host> hosts_;
};

bool in_prefix(const boost::asio::ip::address& a, const boost::asio::ip::address& prefix, unsigned len);

}  // namespace slmsim
