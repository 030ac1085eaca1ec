#!/usr/bin/env bash
# On-demand soak run (not part of CI): builds the default preset, then runs tests/soak/soak.py — slmsim + slmd
# for --minutes (default 30) with curl downloads and UDP echoes through the modem and a fault injected every
# --fault-every seconds — and prints a JSON summary. Exit status 1 on silent loss, a dead slmd or a fault slmd
# did not recover from. Any argument is passed to soak.py (--minutes, --profile, --baud, --fault-every, --json).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cmake --preset default >/dev/null
cmake --build --preset default -j "$(nproc)" --target slmd slmsim slm-run slmsock-preload slmctl
exec python3 tests/soak/soak.py --bin build/default "$@"
