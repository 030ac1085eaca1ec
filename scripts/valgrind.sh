#!/usr/bin/env bash
# On-demand memory check of slmd (not part of CI: valgrind makes slmd ~20x slower): builds the default
# preset, runs slmd under valgrind (memcheck, definite leaks are errors) in front of slmsim, moves data
# through it with unmodified programs (a curl download, a UDP echo, a refused connect, a modem reset in the
# middle of a download, the serial device vanishing and returning), stops slmd with SIGTERM and fails if
# valgrind reported any error. Usage: scripts/valgrind.sh [--profile v2.9]
set -euo pipefail
cd "$(dirname "$0")/.."
profile=v2.9
[ "${1:-}" = "--profile" ] && profile=$2
./scripts/install-deps.sh
command -v valgrind >/dev/null || { apt-get install -y -qq valgrind >/dev/null; }
cmake --preset default >/dev/null
cmake --build --preset default -j "$(nproc)" --target slmd slmsim slm-run slmsock-preload slmctl

bin=build/default
work=$(mktemp -d /tmp/slmd-valgrind.XXXXXX)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
wait_for() {  # wait_for FILE PATTERN SECONDS
  for _ in $(seq $(($3 * 20))); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
  echo "valgrind.sh: timed out waiting for '$2' in $1" >&2; tail -n 30 "$1" >&2; return 1
}
head -c 65536 /dev/urandom >"$work/blob"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m http.server "$port" --bind 127.0.0.1 --directory "$work" >"$work/http.log" 2>&1 &
pids+=($!)
udp_port=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -c "
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('127.0.0.1', $udp_port))
while True:
    d, a = s.recvfrom(65536); s.sendto(d, a)" &
pids+=($!)
"$bin/tests/slmsim/slmsim" --link "$work/tty" --baud 921600 --profile "$profile" --control "$work/control" \
  --map 203.0.113.0/24=127.0.0.1 >"$work/sim.log" 2>&1 &
pids+=($!)
wait_for "$work/sim.log" tty 10
valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --track-fds=no \
  "$bin/daemon/slmd" --device "$work/tty" --baud 921600 --api-socket "$work/slmd.sock" >"$work/slmd.log" 2>&1 &
slmd_pid=$!
wait_for "$work/slmd.log" "modem: ready" 120
export SLMSOCK_SOCKET="$work/slmd.sock"
control() { python3 -c "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall((sys.argv[2]+'\n').encode()); print(s.recv(200).decode().strip())" "$work/control" "$1"; }
run() { echo "== $*"; "$@" || echo "   (exit $?)"; }
run "$bin/preload/slm-run" curl -s -o "$work/got" "http://203.0.113.10:$port/blob"
cmp -s "$work/blob" "$work/got" && echo "   download intact" || echo "   download differs"
run "$bin/preload/slm-run" python3 -c "
import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(20)
s.sendto(b'x'*512, ('203.0.113.10', $udp_port)); print('   udp echo', len(s.recvfrom(2048)[0]))"
run "$bin/preload/slm-run" curl -s -o /dev/null "http://203.0.113.10:1/"
"$bin/preload/slm-run" curl -s -o /dev/null --max-time 60 "http://203.0.113.10:$port/blob" &
sleep 1; echo "== modem reset mid-download: $(control reset)"; wait $! || true
wait_for "$work/slmd.log" "recovery 1 (" 60; wait_for "$work/slmd.log" "modem: ready.*" 120
echo "== serial loss: $(control close-link)"; sleep 1; echo "   $(control reopen)"
wait_for "$work/slmd.log" "is back" 60
"$bin/slmctl/slmctl" stats >/dev/null
kill -TERM "$slmd_pid"
rc=0; wait "$slmd_pid" || rc=$?
grep -E "ERROR SUMMARY|definitely lost" "$work/slmd.log" | sed 's/^/   /'
if [ "$rc" = 99 ]; then echo "valgrind.sh: valgrind found errors; see $work/slmd.log"; exit 1; fi
echo "valgrind.sh: clean (slmd exit status $rc); logs in $work"
