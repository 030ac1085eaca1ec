// Owns: what core/ knows about the process behind a request and about app sockets it serves but cannot see
// close (UDP sockets, listening TCP sockets): who asked (SO_PEERCRED), the ownership rule (a request for an
// app port must come from the uid that owns the socket there, or root), and the text ↔ address helpers both
// relays use.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "net/socket_table.hpp"
#include "wire.hpp"

namespace slmd::core {

// The process that sent an API request (SO_PEERCRED of its API connection).
struct Requester {
    unsigned uid = 0;
    unsigned pid = 0;
};

// The modem's current address for a family as numeric text ("" when it has none): the modem-side local
// address of app sockets slmd serves (LookupReply.local).
using ModemAddressSource = std::function<std::string(slmsock::wire::Family family)>;

// 0 when `requester` may act for the socket at `port`, -EPERM when another uid owns it (root may act for
// anyone), -ENOENT when there is no such socket (`owner` nullopt).
int check_owner(const Requester& requester, std::optional<unsigned> owner);

// Numeric text → wire address (nullopt for anything else) and back.
std::optional<slmsock::wire::Address> parse_address(const std::string& text);
std::string address_text(const slmsock::wire::Address& address);
// The unspecified address (0.0.0.0 or ::) of a family.
slmsock::wire::Address unspecified(slmsock::wire::Family family);

}  // namespace slmd::core
