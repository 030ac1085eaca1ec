#!/usr/bin/env bash
# The main job on a machine without a modem: builds slmd, starts the simulated nRF91 (slmsim, SLM v2.9) on a
# pseudo-terminal at 115200 baud, lets slmd bring it up, then runs an unmodified curl under slm-run to
# download 256 KiB of random bytes (with "+++" inside) from a local HTTP server through the modem, and
# prints bytes, time, the checksum verdict and the fraction of the UART line rate achieved.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh
cmake --preset default >/dev/null
cmake --build --preset default -j "$(nproc)" --target slmd slmsim slm-run slmsock-preload

bin=build/default
baud=115200
size=$((256 * 1024))
script_name=demo
source scripts/common.sh

# Payload: random bytes with terminator-like sequences sprinkled in.
python3 - "$work/www/blob" "$size" <<'PY'
import os, random, sys
path, size = sys.argv[1], int(sys.argv[2])
os.makedirs(os.path.dirname(path), exist_ok=True)
rng = random.Random(7)
data = bytearray(rng.getrandbits(8) for _ in range(size))
for offset in range(0, size - 8, 4099):
    data[offset:offset + 6] = b"+++\r\nOK"[:6]
open(path, "wb").write(bytes(data))
PY
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m http.server "$port" --bind 127.0.0.1 --directory "$work/www" >"$work/http.log" 2>&1 &
pids+=($!)
python3 - "$port" <<'PY'
import socket, sys, time
for _ in range(200):
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.05)
sys.exit("demo: the local HTTP server did not start")
PY
echo "203.0.113.10 downloads.example.test" >"$work/hosts"

echo "== simulated nRF91 (SLM v2.9) on a pty at $baud baud; the 'internet' 203.0.113.0/24 leads to this host"
"$bin/tests/slmsim/slmsim" --link "$work/ttySLM" --baud "$baud" --profile v2.9 \
  --map 203.0.113.0/24=127.0.0.1 --hosts "$work/hosts" >"$work/sim.log" 2>&1 &
pids+=($!)
wait_for "$work/sim.log" ttySLM 10

echo "== slmd brings the modem up"
"$bin/daemon/slmd" --device "$work/ttySLM" --baud "$baud" --api-socket "$work/slmd.sock" ${SLMD_DEMO_VERBOSE:+-v} \
  >"$work/slmd.log" 2>&1 &
pids+=($!)
wait_for "$work/slmd.log" "modem: ready" 30
grep -E "SLM release|registered|address|ready" "$work/slmd.log" | sed 's/^/   /'

echo "== slm-run curl http://downloads.example.test:$port/blob  (name resolved by the modem)"
export SLMSOCK_SOCKET="$work/slmd.sock"
start=$(date +%s.%N)
if ! "$bin/preload/slm-run" curl --silent --show-error --output "$work/got" "http://downloads.example.test:$port/blob"; then
  echo "demo: curl failed; the end of slmd's log:" >&2
  tail -n 30 "$work/slmd.log" >&2
  exit 1
fi
end=$(date +%s.%N)

python3 - "$work/www/blob" "$work/got" "$start" "$end" "$baud" <<'PY'
import hashlib, sys
sent, got, start, end, baud = open(sys.argv[1], "rb").read(), open(sys.argv[2], "rb").read(), \
    float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
seconds = end - start
line_rate = baud / 10  # bytes per second on an 8N1 UART
goodput = len(got) / seconds
same = hashlib.sha256(sent).hexdigest() == hashlib.sha256(got).hexdigest()
print(f"   bytes      {len(got)} of {len(sent)}")
print(f"   sha256     {'match' if same else 'MISMATCH'}")
print(f"   time       {seconds:.2f} s (DNS, connect and transfer)")
print(f"   goodput    {goodput:.0f} B/s = {goodput / line_rate:.2f} of the {line_rate:.0f} B/s line rate")
sys.exit(0 if same else 1)
PY
