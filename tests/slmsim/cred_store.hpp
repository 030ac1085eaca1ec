// slmsim: the credential store behind AT%CMNG (the modem's non-volatile store) and AT#XCMNG (native-TLS
// builds). One store in the simulator: entries keyed by (sec_tag, type), surviving #XRESET and reboots;
// optionally persisted to a directory (--cred-dir) so they also survive simulator restarts.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace slmsim {

enum CredType : int { CredCa = 0, CredClientCert = 1, CredClientKey = 2, CredPsk = 3, CredPskIdentity = 4 };

class CredStore {
 public:
  struct Entry {
    std::string content;
    std::string passphrase;  // for an encrypted private key (type 2)
  };
  using Key = std::pair<std::int64_t, int>;  // sec_tag, type

  // dir empty: memory only. Otherwise entries are loaded from and written to dir/<sec_tag>.<type>
  // (and dir/<sec_tag>.<type>.pass for a passphrase).
  explicit CredStore(std::string dir = {});

  void put(std::int64_t tag, int type, std::string content, std::string passphrase = {});
  const Entry* get(std::int64_t tag, int type) const;
  bool erase(std::int64_t tag, int type);
  // Entries in (sec_tag, type) order, optionally filtered.
  std::vector<Key> list(std::optional<std::int64_t> tag = {}, std::optional<int> type = {}) const;
  std::size_t size() const { return m_.size(); }

  static std::string sha256_hex(const std::string& data);  // upper-case hex, as %CMNG prints it
  static bool valid_type(std::int64_t t) { return t >= 0 && t <= 4; }
  static bool valid_tag(std::int64_t t) { return t >= 0 && t <= 2147483647; }

 private:
  void save(const Key& k) const;
  std::map<Key, Entry> m_;
  std::string dir_;
};

}  // namespace slmsim
