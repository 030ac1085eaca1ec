// slmsim: credential store implementation (see cred_store.hpp).
#include "cred_store.hpp"

#include <openssl/evp.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace slmsim {

namespace fs = std::filesystem;

namespace {
std::optional<std::string> read_all(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) return std::nullopt;
  std::ostringstream o;
  o << f.rdbuf();
  return o.str();
}
void write_all(const fs::path& p, const std::string& s) {
  fs::path tmp = p;
  tmp += ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f << s;
  }
  std::error_code ec;
  fs::rename(tmp, p, ec);
}
}  // namespace

CredStore::CredStore(std::string dir) : dir_(std::move(dir)) {
  if (dir_.empty()) return;
  std::error_code ec;
  fs::create_directories(dir_, ec);
  for (const auto& de : fs::directory_iterator(dir_, ec)) {
    std::string name = de.path().filename().string();
    long long tag;
    int type;
    char rest;
    if (std::sscanf(name.c_str(), "%lld.%d%c", &tag, &type, &rest) != 2) continue;
    if (!valid_tag(tag) || !valid_type(type) || name != std::to_string(tag) + "." + std::to_string(type)) continue;
    auto content = read_all(de.path());
    if (!content) continue;
    fs::path pass = de.path();
    pass += ".pass";
    m_[{tag, type}] = Entry{*content, read_all(pass).value_or("")};
  }
}

void CredStore::save(const Key& k) const {
  if (dir_.empty()) return;
  fs::path p = fs::path(dir_) / (std::to_string(k.first) + "." + std::to_string(k.second));
  fs::path pass = p;
  pass += ".pass";
  std::error_code ec;
  auto it = m_.find(k);
  if (it == m_.end()) {
    fs::remove(p, ec);
    fs::remove(pass, ec);
    return;
  }
  write_all(p, it->second.content);
  if (it->second.passphrase.empty()) fs::remove(pass, ec);
  else write_all(pass, it->second.passphrase);
}

void CredStore::put(std::int64_t tag, int type, std::string content, std::string passphrase) {
  Key k{tag, type};
  m_[k] = Entry{std::move(content), std::move(passphrase)};
  save(k);
}

const CredStore::Entry* CredStore::get(std::int64_t tag, int type) const {
  auto it = m_.find({tag, type});
  return it == m_.end() ? nullptr : &it->second;
}

bool CredStore::erase(std::int64_t tag, int type) {
  Key k{tag, type};
  if (!m_.erase(k)) return false;
  save(k);
  return true;
}

std::vector<CredStore::Key> CredStore::list(std::optional<std::int64_t> tag, std::optional<int> type) const {
  std::vector<Key> out;
  for (const auto& [k, e] : m_) {
    if (tag && k.first != *tag) continue;
    if (type && k.second != *type) continue;
    out.push_back(k);
  }
  return out;
}

std::string CredStore::sha256_hex(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(data.data(), data.size(), md, &n, EVP_sha256(), nullptr);
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned i = 0; i < n; ++i) {
    out += hex[md[i] >> 4];
    out += hex[md[i] & 15];
  }
  return out;
}

}  // namespace slmsim
