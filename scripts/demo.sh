#!/usr/bin/env bash
# The main job on a machine without a modem: builds slmd, starts the simulated nRF91 (slmsim) on a
# pseudo-terminal at 115200 baud, and lets slmd bring it up, once for each simulated SLM release.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh
cmake --preset default >/dev/null
cmake --build --preset default -j "$(nproc)" --target slmd slmsim

bin=build/default
work=$(mktemp -d /tmp/slmd-demo.XXXXXX)
sim_pid=
cleanup() {
  [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

for profile in v2.5 v2.7 v2.9; do
  printf '\n=== simulated nRF91, SLM %s, 115200 baud ===\n' "$profile"
  "$bin/tests/slmsim/slmsim" --link "$work/ttySLM" --baud 115200 --profile "$profile" >"$work/sim.out" &
  sim_pid=$!
  for _ in $(seq 100); do [ -e "$work/ttySLM" ] && break; sleep 0.05; done
  "$bin/daemon/slmd" --device "$work/ttySLM" --baud 115200 --once --register-timeout-ms 20000
  kill "$sim_pid"; wait "$sim_pid" 2>/dev/null || true; sim_pid=
done
