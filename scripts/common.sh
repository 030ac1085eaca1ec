# Sourced by the scripts that start slmsim and slmd by hand (demo.sh, cpython-suites.sh): a work directory that
# goes away on exit with every process started into `pids`, and a bounded wait for a line in a log.
work=$(mktemp -d "/tmp/slmd-${script_name:-script}.XXXXXX")
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

wait_for() {  # wait_for FILE PATTERN SECONDS
  for _ in $(seq $(($3 * 20))); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "${script_name:-script}: timed out waiting for '$2' in $1" >&2
  cat "$1" >&2
  return 1
}
