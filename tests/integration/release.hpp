// Where an slmsim profile name ("v2.0" … "v2.9", "v3.0", "v3.1") stands among the releases, as one number the
// tests compare with "from v2.x on": v2.<n> is n, v3.<n> is 10 + n, so every v2 feature test holds for v3.
#pragma once

#include <string>

namespace slmd::test {

inline int release_rank(const std::string& profile) {
    const auto dot = profile.find('.');
    const int major = std::stoi(profile.substr(profile.find_first_of("0123456789"), dot));
    const int minor = std::stoi(profile.substr(dot + 1));
    return (major - 2) * 10 + minor;
}

}  // namespace slmd::test
