#!/usr/bin/env bash
# The Debian packages, end to end, on this machine (ctest label "package"; CI machines are throwaway):
#   1. build them with dpkg-buildpackage from a copy of the source tree in a scratch dir (the tree stays clean),
#   2. lintian: errors and warnings fail the test (each accepted warning is overridden in debian/ with a reason),
#   3. install them with apt-get, check what the maintainer scripts did (user, groups, units enabled, /run/slmd),
#   4. with installed files only, run slmsim on a pty + slmd and download 256 KiB through the modem with
#      `slm-run curl`, asserting the sha256; slmctl status; a C program built against libslmsock-dev (pkg-config,
#      static, CMake) asks slmd for the modem's state,
#   5. upgrade to the same packages re-versioned higher: the local change to the conffile, the units and the
#      enablement survive,
#   6. purge: /etc/slmd, the slmd user, the slm group, every installed file and the enablement are gone.
# The packages are always purged at the end, so the rest of the suite (which uses the build tree) is unaffected.
# Prints "SKIPPED: <why>" (a skip for ctest) when the machine cannot do it: not root, no dpkg-buildpackage/debhelper/
# lintian/apt-get, or slmd packages installed that this test did not install. SLMD_SKIP_PACKAGE_TEST=1 skips too.
# SLMD_PACKAGE_TEST_DEBS=DIR takes the .changes and .debs already built in DIR instead of step 1 (to iterate on
# steps 2-6 without a 2-minute build).
# Usage: package_test.sh SOURCE_DIR
set -euo pipefail

src=$(cd "$1" && pwd)
packages=(slmd libslmsock1 libslmsock-dev slmsock-preload slmsim)
marker=/var/lib/slmd-package-test.installed  # "these packages were installed by this test"
started=$SECONDS

skip() { echo "SKIPPED: $*"; exit 0; }
fail() { echo "FAIL: $*" >&2; exit 1; }
step() { printf '\n== [%3ds] %s\n' "$((SECONDS - started))" "$*"; }

[ "${SLMD_SKIP_PACKAGE_TEST:-0}" != 1 ] || skip "SLMD_SKIP_PACKAGE_TEST=1"
[ "$(id -u)" -eq 0 ] || skip "not root: installing and purging packages needs root"
command -v dpkg-query >/dev/null || skip "not a dpkg-based system"
for tool in dpkg-buildpackage dh lintian apt-get scdoc curl python3 pkg-config cc flock; do
  command -v "$tool" >/dev/null || skip "$tool is not installed (scripts/install-deps.sh installs it)"
done

installed() { dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null | grep -qx installed; }

# One package test at a time on a machine (several build trees may run ctest at once).
exec 9>/run/lock/slmd-package-test.lock
flock -w 900 9 || skip "another package test has held /run/lock/slmd-package-test.lock for 15 minutes"

if [ ! -e "$marker" ]; then
  for package in "${packages[@]}"; do
    if installed "$package"; then
      skip "$package is installed on this machine and not by this test; refusing to replace and purge it"
    fi
  done
fi

script_name=package
# shellcheck source=../../scripts/common.sh
. "$src/scripts/common.sh"  # $work, $pids, cleanup on exit (on_exit below), wait_for
purge_all() {
  local present=()
  for package in "${packages[@]}"; do
    if dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null | grep -qvx not-installed; then
      present+=("$package")
    fi
  done
  if [ ${#present[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq -o DPkg::Lock::Timeout=300 "${present[@]}" >>"$work/purge.log" 2>&1
  fi
  rm -f "$marker"
}
on_exit() {
  if [ "$1" -ne 0 ] && [ -e "$marker" ]; then
    echo "package test failed: purging the test's packages" >&2
    purge_all || echo "package test: purge failed, see $work/purge.log" >&2
    for log in "$work"/*.log; do echo "---- $log (last 40 lines)" >&2; tail -n 40 "$log" >&2; done
  fi
}

# ---- 1. build ------------------------------------------------------------------------------------------------
if [ -n "${SLMD_PACKAGE_TEST_DEBS:-}" ]; then
  step "packages already built in $SLMD_PACKAGE_TEST_DEBS (SLMD_PACKAGE_TEST_DEBS)"
  mkdir -p "$work/src"
  cp "$SLMD_PACKAGE_TEST_DEBS"/*.changes "$SLMD_PACKAGE_TEST_DEBS"/*.buildinfo "$SLMD_PACKAGE_TEST_DEBS"/*.deb "$work/src/"
  version=$(sed -n 's/^Version: //p' "$work"/src/slmd_*.changes)
else
  step "copy the source tree (tracked and untracked, not ignored) to $work/src/slmd"
  mkdir -p "$work/src/slmd"
  if git -C "$src" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$src" && git ls-files -z --cached --others --exclude-standard |
       tar --null -T - --ignore-failed-read -c 2>/dev/null) | tar -x -C "$work/src/slmd"
  else
    tar -C "$src" --exclude='./build' --exclude='./build-*' --exclude=./.git -c . | tar -x -C "$work/src/slmd"
  fi
  version=$(dpkg-parsechangelog -l "$work/src/slmd/debian/changelog" -S Version)

  # The packages' layout, maintainer scripts, lintian and behaviour do not depend on the optimisation level, and
  # -O0 without debug information compiles in half the CPU time of the real -O2 -g: the suite's time budget.
  # SLMD_PACKAGE_TEST_OPTIMIZE=1 builds exactly like a real package build.
  options="nocheck noautodbgsym parallel=$(nproc)"
  flags=()
  if [ "${SLMD_PACKAGE_TEST_OPTIMIZE:-0}" != 1 ]; then
    options+=" noopt"
    flags=(DEB_CFLAGS_MAINT_APPEND=-g0 DEB_CXXFLAGS_MAINT_APPEND=-g0)
  fi
  step "dpkg-buildpackage -us -uc -b ($version; DEB_BUILD_OPTIONS=\"$options\" ${flags[*]})"
  if ! (cd "$work/src/slmd" && env DEB_BUILD_OPTIONS="$options" "${flags[@]}" \
          dpkg-buildpackage -us -uc -b >"$work/build.log" 2>&1); then
    tail -n 80 "$work/build.log" >&2
    fail "dpkg-buildpackage failed"
  fi
  if grep -q "dpkg-gensymbols: warning: some new symbols appeared" "$work/build.log"; then
    echo "NOTE: libslmsock.so.1 exports symbols that debian/libslmsock1.symbols does not list; regenerate it" \
         "(debian/README.md, 'The symbols file'):"
    grep '^+ slmsock_' "$work/build.log" | sort -u | head -n 20
  fi
fi
changes=$(ls "$work"/src/slmd_*.changes)
debs=("$work"/src/*.deb)
[ ${#debs[@]} -eq ${#packages[@]} ] || fail "expected ${#packages[@]} .deb files, got: ${debs[*]}"
for deb in "${debs[@]}"; do
  echo "   $(basename "$deb")  $(stat -c %s "$deb") bytes"
done

# ---- 2. lintian ----------------------------------------------------------------------------------------------
step "lintian $(basename "$changes")"
# Errors and warnings both fail: every accepted warning is overridden in debian/*.lintian-overrides with its reason.
lintian_rc=0
lintian --fail-on error,warning "$changes" >"$work/lintian.log" 2>&1 || lintian_rc=$?
sed 's/^/   /' "$work/lintian.log"
[ $lintian_rc -eq 0 ] || fail "lintian reports errors or warnings (exit $lintian_rc); fix them or override with a reason"
echo "   lintian: no errors, no warnings (overrides: $(cat "$src"/debian/*.lintian-overrides 2>/dev/null | grep -cv '^#'))"

# ---- 3. install ----------------------------------------------------------------------------------------------
step "apt-get install ${debs[*]##*/}"
touch "$marker"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300 "${debs[@]}" >"$work/install.log" 2>&1 ||
  fail "apt-get install failed"
for package in "${packages[@]}"; do
  installed "$package" || fail "$package is not installed"
  [ "$(dpkg-query -W -f='${Version}' "$package")" = "$version" ] || fail "$package is not at $version"
done

getent passwd slmd >/dev/null || fail "no user slmd after install (sysusers)"
getent group slm >/dev/null || fail "no group slm after install (sysusers)"
groups=" $(id -nG slmd) "
[[ $groups == *" dialout "* && $groups == *" slm "* ]] || fail "slmd is not in dialout and slm: $groups"
[ "$(stat -c '%U:%G %a' /run/slmd 2>/dev/null)" = "slmd:slm 750" ] || fail "/run/slmd is not 0750 slmd:slm (tmpfiles)"
dpkg-query -W -f='${Conffiles}' slmd | grep -q '^ */etc/slmd/slmd.conf ' || fail "/etc/slmd/slmd.conf is not a conffile"
enabled=(/etc/systemd/system/multi-user.target.wants/slmd.service /etc/systemd/system/sockets.target.wants/slmd.socket)
for link in "${enabled[@]}"; do [ -L "$link" ] || fail "$link missing: the units are not enabled"; done
grep -qx 'ExecStart=/usr/sbin/slmd' /lib/systemd/system/slmd.service || fail "slmd.service does not run /usr/sbin/slmd"
for page in man8/slmd.8 man5/slmd.conf.5 man1/slmctl.1 man1/slm-run.1 man1/slmsim.1 man3/libslmsock.3; do
  [ -f "/usr/share/man/$page.gz" ] || fail "man page /usr/share/man/$page.gz missing"
done
if command -v systemd-analyze >/dev/null; then
  # Documentation=man:... is checked too: the man pages are installed now.
  systemd-analyze verify --generators=no /lib/systemd/system/slmd.service /lib/systemd/system/slmd.socket \
    >"$work/verify.log" 2>&1 || { cat "$work/verify.log"; fail "systemd-analyze verify of the installed units"; }
fi
# The unit's ExecCondition= (start only with a configured, present device), as systemd runs it ($$ -> $).
condition=$(sed -n "s/^ExecCondition=\/bin\/sh -c '\(.*\)'$/\1/p" /lib/systemd/system/slmd.service | sed 's/\$\$/$/g')
[ -n "$condition" ] || fail "slmd.service has no ExecCondition="
if sh -c "$condition" 2>/dev/null; then fail "ExecCondition= passes with the default (device-less) slmd.conf"; fi
echo "   user slmd (groups:$groups), /run/slmd, conffile, units enabled, man pages, verify, ExecCondition: OK"

# ---- 4. run it from the installed files ----------------------------------------------------------------------
step "slmsim (pty) + slmd + slm-run curl, installed binaries only"
for program in /usr/bin/slmsim /usr/sbin/slmd /usr/bin/slm-run /usr/bin/slmctl; do
  [ -x "$program" ] || fail "$program missing"
  ldd "$program" | grep -q 'not found' && fail "$program has unresolved libraries"
done
ldd /usr/lib/*/slmd/libslmsock-preload.so | grep -q 'not found' && fail "the shim has unresolved libraries"

size=$((256 * 1024))
python3 - "$work/www/blob" "$size" <<'PY'
import os, random, sys
path, size = sys.argv[1], int(sys.argv[2])
os.makedirs(os.path.dirname(path), exist_ok=True)
rng = random.Random(11)
data = bytearray(rng.getrandbits(8) for _ in range(size))
for offset in range(0, size - 8, 4099):
    data[offset:offset + 6] = b"+++\r\nOK"[:6]
open(path, "wb").write(bytes(data))
PY
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -u -m http.server "$port" --bind 127.0.0.1 --directory "$work/www" >"$work/http.log" 2>&1 &
pids+=($!)
# The server must listen before curl connects (under load Python takes a while to start).
wait_for "$work/http.log" "Serving HTTP" 30
echo "203.0.113.10 downloads.example.test" >"$work/hosts"
/usr/bin/slmsim --link "$work/ttySLM" --baud 0 --profile v2.9 --map 203.0.113.0/24=127.0.0.1 \
  --hosts "$work/hosts" >"$work/sim.log" 2>&1 &
pids+=($!)
wait_for "$work/sim.log" ttySLM 10
/usr/sbin/slmd --device "$work/ttySLM" --api-socket "$work/slmd.sock" >"$work/slmd.log" 2>&1 &
pids+=($!)
wait_for "$work/slmd.log" "modem: ready" 30
export SLMSOCK_SOCKET="$work/slmd.sock"
/usr/bin/slm-run curl --silent --show-error --max-time 120 --output "$work/got" \
  "http://downloads.example.test:$port/blob" || fail "slm-run curl failed (slmd.log: $(tail -n 5 "$work/slmd.log"))"
sent=$(sha256sum <"$work/www/blob" | cut -d' ' -f1)
got=$(sha256sum <"$work/got" | cut -d' ' -f1)
[ "$sent" = "$got" ] || fail "sha256 mismatch: sent $sent, got $got ($(stat -c %s "$work/got") bytes)"
echo "   $size bytes through the modem, sha256 $got: match"

/usr/bin/slmctl status >"$work/slmctl.out" || fail "slmctl status failed"
grep -q '^firmware: *SLM 2.9.0' "$work/slmctl.out" || { cat "$work/slmctl.out"; fail "slmctl status: no firmware line"; }

cat >"$work/status.c" <<'C'
#include <slmsock.h>
#include <stdio.h>
int main(void) {
    struct slmsock_status st;
    int rc = slmsock_status(&st);
    if (rc < 0) { fprintf(stderr, "slmsock_status: %s\n", slmsock_strerror(rc)); return 1; }
    printf("%s %s\n", st.modem_state, st.release);
    return 0;
}
C
# shellcheck disable=SC2046
cc -o "$work/status-shared" "$work/status.c" $(pkg-config --cflags --libs slmsock) || fail "build against slmsock.pc"
ldd "$work/status-shared" | grep -q '/libslmsock.so.1 ' || fail "status-shared does not use the installed libslmsock.so.1"
cc -o "$work/status-static" "$work/status.c" /usr/lib/*/libslmsock.a -lstdc++ || fail "build against libslmsock.a"
mkdir -p "$work/cmake-user"
cat >"$work/cmake-user/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.25)
project(status C CXX)
find_package(slmsock REQUIRED)
add_executable(status-cmake ../status.c)
target_link_libraries(status-cmake PRIVATE slmsock::slmsock)
CMAKE
cmake -S "$work/cmake-user" -B "$work/cmake-user/build" >"$work/cmake-user.log" 2>&1 &&
  cmake --build "$work/cmake-user/build" >>"$work/cmake-user.log" 2>&1 || fail "find_package(slmsock) project"
for program in status-shared status-static cmake-user/build/status-cmake; do
  out=$("$work/$program") || fail "$program failed"
  [[ $out == "serving 2.9.0" ]] || fail "$program printed '$out', not 'serving 2.9.0'"
done
echo "   slmctl status, and libslmsock through pkg-config (shared), libslmsock.a and find_package(slmsock): OK"
for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
wait 2>/dev/null || true
pids=()
unset SLMSOCK_SOCKET

# ---- 5. upgrade ----------------------------------------------------------------------------------------------
newer="$version+pkgtest1"
step "upgrade $version -> $newer (the same packages re-versioned), with a local change to the conffile"
dpkg --compare-versions "$newer" gt "$version" || fail "$newer is not newer than $version"
echo "log-level = notice  # local change made by the package test" >>/etc/slmd/slmd.conf
conf_before=$(sha256sum </etc/slmd/slmd.conf)
mkdir -p "$work/newer"
for deb in "${debs[@]}"; do
  tree="$work/newer/tree"
  rm -rf "$tree"
  dpkg-deb -R "$deb" "$tree"
  sed -i -e "s/^Version: .*/Version: $newer/" -e "s/(= $version)/(= $newer)/g" "$tree/DEBIAN/control"
  dpkg-deb -b "$tree" "$work/newer/" >/dev/null
done
apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confold \
  "$work"/newer/*.deb >"$work/upgrade.log" 2>&1 || fail "apt-get install (upgrade) failed"
for package in "${packages[@]}"; do
  [ "$(dpkg-query -W -f='${Version}' "$package")" = "$newer" ] || fail "$package was not upgraded to $newer"
done
[ "$(sha256sum </etc/slmd/slmd.conf)" = "$conf_before" ] || fail "the upgrade changed the modified conffile"
for file in /lib/systemd/system/slmd.service /lib/systemd/system/slmd.socket /usr/lib/sysusers.d/slmd.conf \
            /usr/lib/tmpfiles.d/slmd.conf "${enabled[@]}"; do
  [ -e "$file" ] || fail "$file is gone after the upgrade"
done
getent passwd slmd >/dev/null || fail "user slmd gone after the upgrade"
/usr/sbin/slmd --version >/dev/null || fail "slmd --version after the upgrade"
echo "   conffile kept, units and enablement kept, user kept: OK"

# ---- 6. purge ------------------------------------------------------------------------------------------------
step "apt-get purge ${packages[*]}"
files=()
while IFS= read -r path; do
  # Files and symlinks the packages own; not directories (nor /lib, a symlink to one on merged-/usr systems).
  if [ ! -d "$path" ] && { [ -f "$path" ] || [ -L "$path" ]; }; then files+=("$path"); fi
done < <(dpkg -L "${packages[@]}")
purge_all
for package in "${packages[@]}"; do
  dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null | grep -qvx not-installed &&
    fail "$package is still known to dpkg: $(dpkg-query -W -f='${db:Status-Status}' "$package")"
done
[ ! -e /etc/slmd ] || fail "/etc/slmd is left after purge: $(ls -la /etc/slmd)"
getent passwd slmd >/dev/null && fail "user slmd is left after purge"
getent group slm >/dev/null && fail "group slm is left after purge"
getent group slmd >/dev/null && fail "group slmd is left after purge"
[ ! -e /run/slmd ] || fail "/run/slmd is left after purge"
for link in "${enabled[@]}"; do [ ! -L "$link" ] || fail "$link is left after purge"; done
left=()
for path in "${files[@]}"; do if [ -e "$path" ] || [ -L "$path" ]; then left+=("$path"); fi; done
[ ${#left[@]} -eq 0 ] || fail "files left after purge: ${left[*]}"
echo "   ${#files[@]} installed files, /etc/slmd, user slmd, groups slmd and slm, enablement: all gone"

step "package test: OK"
