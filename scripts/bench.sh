#!/usr/bin/env bash
# Owns: the one command for slmd's benchmark suite (docs/performance.md). Builds the release (io_uring) and
# epoll presets, then runs tests/bench/run_bench.py against slmsim: bulk goodput per firmware release and line
# rate, echo round trips, CPU and syscalls per backend, RSS, shim overhead, framer rate, unpaced headroom.
# Writes bench-results/results.{json,md} and goodput.png. Numbers are ratios from this one run; no pass/fail.
#
# Usage: scripts/bench.sh [--quick] [--no-build] [--out DIR]
#   --quick     256 KiB transfers on three releases (v2.0, v2.5, v2.9): about 2 minutes
#   --no-build  use what build/release and build/epoll already hold
set -euo pipefail
cd "$(dirname "$0")/.."

mode=()
build=1
out=bench-results
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) mode=(--quick) ;;
    --no-build) build=0 ;;
    --out) out=$2; shift ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "bench: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

if [ "$build" = 1 ]; then
  ./scripts/install-deps.sh
  # -j2 at most: benchmarks are usually run on a shared machine, and the builds are incremental.
  jobs=$(( $(nproc) < 2 ? $(nproc) : 2 ))
  targets=(slmd slmsim slm-run slmsock-preload slmctl shim_bench framer_bench)
  for preset in release epoll; do
    # GCC 12 at -O3 reports a false -Wrestrict inside std::string's operator+ (daemon/modem/
    # slm_proxy_reconcile.cpp), which -Werror turns into a failed release build: that one stays a warning, every other is an error.
    cmake --preset "$preset" -DCMAKE_CXX_FLAGS=-Wno-error=restrict >/dev/null
    if [ "$preset" = epoll ]; then targets=(slmd); fi  # only the daemon differs between the two
    cmake --build --preset "$preset" -j "$jobs" --target "${targets[@]}"
  done
fi

exec python3 tests/bench/run_bench.py --build build/release --epoll-build build/epoll --out "$out" "${mode[@]}"
