#!/usr/bin/env bash
# Installs everything slmd needs to build, test and run its demo on Debian 12. Idempotent: does nothing when
# every package is already installed. Runs apt-get as root (directly, or through sudo).
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  clang lld libclang-rt-14-dev
  libboost1.81-dev libboost-program-options1.81-dev
  liburing-dev libnl-3-dev libnl-route-3-dev libsystemd-dev libfmt-dev
  libssl-dev openssl  # slmsim's modem-side TLS/DTLS and the TLS test fixtures (tests/tls/)
  libgtest-dev libgmock-dev libbenchmark-dev
  python3 curl wget socat netcat-openbsd iproute2
  mosquitto mosquitto-clients iperf3 libcoap3-bin  # programs holding several sockets at once (preload ManyAtOnce)
  libpython3.11-testsuite  # CPython's socket suites under slm-run (scripts/cpython-suites.sh)
  gnuplot-nox strace linux-perf  # scripts/bench.sh: the goodput plot, syscall counts (docs/performance.md)
  scdoc  # man pages (docs/man/)
  debhelper dpkg-dev lintian  # Debian packages and their test (debian/, tests/package/)
)

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
as_root=()
if [ "$(id -u)" -ne 0 ]; then as_root=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
