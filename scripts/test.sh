#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine: dependencies, the warnings-as-errors build and its
# tests, the same tests under ASan+UBSan, and a bounded libFuzzer run of every fuzz target.
# Environment: SLMD_FUZZ_SECONDS (default 30) bounds each fuzzer; SLMD_SKIP_ASAN=1 skips the sanitizer pass;
# SLMD_SKIP_CPYTHON=1 skips CPython's socket suites under slm-run (about 4 minutes).
# A test that fails and then passes when ctest runs it again is reported as flaky in the summary (with the
# failing run's output above it), so a rare race shows up without costing the whole run.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh

jobs=$(nproc)
# Most tests spend their time waiting on the paced simulated line (a -j2 run kept ~1 core busy), so ctest runs
# twice as many at once as there are cores; the paced tests' time bounds are hang guards, not tight limits.
test_jobs=$((jobs * 2))
started=$SECONDS
step() { printf '\n==== [%4ds] %s\n' "$((SECONDS - started))" "$*"; }
# Tests whose first run failed and whose second passed: "Test #N: name ***Failed" followed later by a pass.
# (No failure at all is the usual case: grep's "no match" must not end the script under pipefail.)
flaky_tests() {
  { grep -E 'Test +#[0-9]+: .*\*\*\*(Failed|Timeout|Exception)' "$1" || true; } | sed -E 's/.*Test +#[0-9]+: ([^ ]+).*/\1/' |
    sort -u | while read -r name; do
      if grep -qE "Test +#[0-9]+: ${name//\//\\/} .*Passed" "$1"; then echo "$name"; fi
    done
}

step "build (default preset: RelWithDebInfo, -Werror, io_uring backend)"
cmake --preset default >/dev/null
cmake --build --preset default -j "$jobs"
ln -sf build/default/compile_commands.json compile_commands.json

step "tests (default build)"
ctest --preset default -j "$test_jobs" --timeout 300 --repeat until-pass:2 2>&1 | tee build/default/ctest.log

if [ "${SLMD_SKIP_CPYTHON:-0}" != 1 ]; then
  step "CPython's socket, selectors, socketserver and asyncio suites, plain and under slm-run"
  ./scripts/cpython-suites.sh build/default
fi

if [ "${SLMD_SKIP_ASAN:-0}" != 1 ]; then
  step "build (asan preset: AddressSanitizer + UndefinedBehaviorSanitizer)"
  cmake --preset asan >/dev/null
  cmake --build --preset asan -j "$jobs"
  # The preload tests and benchmarks are not built here (tests/CMakeLists.txt): a sanitized shim preloaded into
  # unsanitized programs (curl, python) would need the sanitizer runtime loaded before everything else in them.
  step "tests (asan build, without the preload shim tests)"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --preset asan -j "$test_jobs" --timeout 600 --repeat until-pass:2 -LE 'preload|bench' 2>&1 | tee build/asan/ctest.log
fi

step "fuzz (clang + libFuzzer, ${SLMD_FUZZ_SECONDS:-30}s per target)"
cmake --preset fuzz >/dev/null
# All the fuzzers in one build, so both cores compile until the last one is linked.
fuzz_targets=()
for corpus in tests/fuzz/corpus/*/; do fuzz_targets+=("$(basename "$corpus")_fuzz"); done
cmake --build --preset fuzz -j "$jobs" --target "${fuzz_targets[@]}"
for corpus in tests/fuzz/corpus/*/; do
  name=$(basename "$corpus")
  fuzzer=build/fuzz/tests/fuzz/${name}_fuzz
  [ -x "$fuzzer" ] || { echo "missing fuzzer $fuzzer"; exit 1; }
  work=build/fuzz/corpus-$name
  mkdir -p "$work"
  "$fuzzer" -max_total_time="${SLMD_FUZZ_SECONDS:-30}" -print_final_stats=1 "$work" "$corpus" 2>&1 | tail -n 12
done

# The default build's ctest verdict goes last, as ctest prints it and as a plain count, so the closing lines
# are the suite's verdict.
step "summary"
for log in build/default/ctest.log build/asan/ctest.log; do
  [ -f "$log" ] || continue
  flaky=$(flaky_tests "$log")
  if [ -n "$flaky" ]; then
    echo "flaky in $log (failed once, passed when run again):"
    echo "$flaky" | sed 's/^/  /'
  fi
done
verdict=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests failed out of [0-9]+' build/default/ctest.log | tail -n 1)
echo "$verdict"
total=$(echo "$verdict" | sed -E 's/.* out of ([0-9]+)/\1/')
failed=$(echo "$verdict" | sed -E 's/.*passed, ([0-9]+) tests failed.*/\1/')
echo "$((total - failed)) passed, $failed failed"
