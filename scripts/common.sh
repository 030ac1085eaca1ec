# Sourced by the scripts that start slmsim and slmd by hand (demo.sh, cpython-suites.sh, the package test): a work
# directory that goes away on exit with every process started into `pids`, and a bounded wait for a line in a
# log. A script that must do more on exit defines on_exit(), which runs with the exit status before the work
# directory goes.
work=$(mktemp -d "/tmp/slmd-${script_name:-script}.XXXXXX")
pids=()
cleanup() {
  local rc=$?
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if declare -F on_exit >/dev/null; then on_exit "$rc"; fi
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
