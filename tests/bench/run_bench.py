#!/usr/bin/env python3
# Owns: the benchmark driver behind scripts/bench.sh (docs/performance.md). Starts slmsim+slmd pairs, runs
# programs through slm-run against them, reads slmd's /proc counters, runs the Google Benchmark programs, and
# writes results.json, results.md and the gnuplot plot. Every figure is a ratio measured in this one run; nothing
# here passes or fails on a number (the exit status only says whether the measurements could be taken).
import argparse
import concurrent.futures
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PEER = HERE / "peer.py"
MIB = 1 << 20
# SLM v2.0-v2.9, and Nordic's Serial Modem add-on (v1.0): the two firmware families slmd drives.
ALL_PROFILES = [f"v2.{i}" for i in range(10)] + ["sm-v1.0"]
QUICK_PROFILES = ["v2.0", "v2.5", "v2.9", "sm-v1.0"]
MAP = "203.0.113.0/24=127.0.0.1"
REMOTE = "203.0.113.10"
# slmsim has no response delay of its own for #XTCPSEND or #XTCPDATA (its only timers are boot, attach, reset,
# connect timeout and the data-mode flush, none on this path), so the echo bound is the wire time alone. Bulk data
# moves in batches about 1 ms apart (tests/slmsim/pty_link.cpp kMinGap); a short burst such as an echo's command or
# answer is delivered when its last byte is due, as on a real UART.
SIM_FIXED_DELAY_S = 0.0
# Idle time before each echo request. slmsim's pacer (tests/slmsim/pacer.cpp, kIdleSlack) treats a line idle for
# less than 50 ms as a backlog it may catch up on, and then delivers a whole request in one burst, faster than
# the wire; 60 ms of think time makes every request start from an idle line, as on a real UART.
ECHO_GAP_MS = 60
SIM_BATCH_GAP_S = 0.001

TARGETS = {
    ("download", 115200): 0.97,
    ("download", 921600): 0.95,
    ("upload", 115200): 0.95,
    ("upload", 921600): 0.90,
}
PPP_CEILING = 0.95
PPP_CMUX_CEILING = 0.91


T0 = time.monotonic()


def log(*parts):
    print(f"bench: [{time.monotonic() - T0:6.1f} s]", *parts, file=sys.stderr, flush=True)


def serial_modem(profile):
    return profile.startswith("sm-")


def chunk_size(profile):
    # Largest #XTCPDATA payload of the release (reference: 1272 before v2.3, then 2048); the Serial Modem's
    # automatic reception reads up to 2048 a time.
    if serial_modem(profile):
        return 2048
    minor = int(profile.split(".")[1])
    return 1272 if minor < 3 else 2048


def download_ideal(profile):
    # Each chunk costs "\r\n#XTCPDATA: <n>\r\n" on the wire besides its n payload bytes; on the Serial Modem
    # "\r\n#XRECV: <h>,0,<n>\r\n" before and "\r\n" after.
    n = chunk_size(profile)
    overhead = len(f"\r\n#XRECV: 0,0,{n}\r\n\r\n") if serial_modem(profile) else len(f"\r\n#XTCPDATA: {n}\r\n")
    return n / (n + overhead)


def upload_ideal(size):
    # Data mode: the payload goes raw; AT#XTCPSEND + OK to enter, "+++" + #XDATAMODE to leave are per transfer.
    return size / (size + len("AT#XTCPSEND\r\n") + len("+++"))


class Pair:
    """One slmsim + slmd pair on a private pty and API socket."""

    def __init__(self, bins, profile, baud, slmd_bin=None, tag="", sim_args=(), slmd_args=()):
        self.bins = bins
        self.profile = profile
        self.baud = baud
        self.dir = Path(tempfile.mkdtemp(prefix=f"slmd-bench-{profile}-{baud}{tag}-"))
        self.socket = self.dir / "slmd.sock"
        # "TRACE" in sim_args stands for this pair's own trace file (the directory only exists from here on).
        sim_args = [str(self.dir / "trace.txt") if a == "TRACE" else a for a in sim_args]
        self.sim_log = open(self.dir / "sim.log", "w")
        self.slmd_log_path = self.dir / "slmd.log"
        self.slmd_log = open(self.slmd_log_path, "w")
        self.sim = subprocess.Popen(
            [bins["slmsim"], "--link", self.dir / "tty", "--profile", profile, "--baud", str(baud), "--map", MAP,
             *sim_args],
            stdout=self.sim_log, stderr=subprocess.STDOUT)
        wait_until(lambda: (self.dir / "tty").exists(), 10, "slmsim's pty")
        # slmd needs a real rate for its own timers even when slmsim is unpaced.
        self.slmd = subprocess.Popen(
            [slmd_bin or bins["slmd"], "--device", self.dir / "tty", "--baud", str(baud or 115200),
             "--api-socket", self.socket, *slmd_args],
            stdout=self.slmd_log, stderr=subprocess.STDOUT)
        wait_until(lambda: "modem: ready" in self.slmd_log_path.read_text(errors="replace"), 30,
                   f"slmd ready ({profile} @ {baud})")
        self.env = dict(os.environ, SLMSOCK_SOCKET=str(self.socket))
        self.keep = False  # a failed transfer keeps the logs for a look

    def close(self):
        for proc in (self.slmd, self.sim):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in (self.slmd, self.sim):
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.sim_log.close()
        self.slmd_log.close()
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)

    def run_client(self, mode, port, extra=(), timeout=900):
        cmd = [self.bins["slm-run"], sys.executable, PEER, "client", mode, "--host", REMOTE, "--port", str(port),
               *extra]
        out = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=timeout)
        if out.returncode != 0:
            raise RuntimeError(f"client {mode} failed ({out.returncode}): {out.stderr.strip()[-800:]}\n"
                               + self.slmd_log_path.read_text(errors="replace")[-1500:])
        return json.loads(out.stdout.strip().splitlines()[-1])

    def slmctl(self, *args):
        return subprocess.run([self.bins["slmctl"], "--socket", self.socket, *args], capture_output=True,
                              text=True, timeout=30)


def wait_until(predicate, seconds, what):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


def start_server(mode, size, extra=()):
    proc = subprocess.Popen([sys.executable, PEER, "serve", mode, "--bytes", str(size), *extra],
                            stdout=subprocess.PIPE, text=True)
    port = json.loads(proc.stdout.readline())["port"]
    return proc, port


def finish_server(proc, timeout=60):
    out, _ = proc.communicate(timeout=timeout)
    lines = out.strip().splitlines()
    return json.loads(lines[-1]) if lines else {}


def transfer(pair, direction, size):
    """One bulk transfer through slm-run; goodput from the client's connect() call to the last byte."""
    server, port = start_server(direction, size)
    try:
        client = pair.run_client(direction, port, ["--bytes", str(size)])
        result = finish_server(server)
    finally:
        if server.poll() is None:
            server.kill()
    if direction == "download":
        received, sha_ok = client.get("received"), client.get("ok")
        seconds = client["end"] - client["start"]
    else:
        received, sha_ok = result.get("received"), result.get("ok")
        seconds = (result["last"] - client["start"]) if result.get("last") else float("nan")
    ok = sha_ok and received == size
    if not ok:
        log(f"{pair.profile} @ {pair.baud} {direction}: {received} of {size} bytes, sha256 "
            f"{'match' if sha_ok else 'MISMATCH'}; slmd log {pair.slmd_log_path}")
        pair.keep = True
    return {"ok": bool(ok), "seconds": seconds, "bytes": size, "received": received, "sha256_match": bool(sha_ok),
            "bps": size / seconds if ok else 0.0,
            "fraction": (size / seconds) / (pair.baud / 10) if ok and pair.baud else None,
            # A short or corrupted transfer still says how fast the bytes that did arrive came.
            "fraction_received": (received or 0) / seconds / (pair.baud / 10) if pair.baud and seconds == seconds
            else None}


# ---------------------------------------------------------------------------------------------- /proc readers

def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime (fields 14 and 15 of stat)


def status_kib(pid, key):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return None


def vm_rss_kib(pid):
    return status_kib(pid, "VmRSS")


def rss_parts(pid):
    # VmRSS = RssAnon (heap, stacks, io_uring rings) + RssFile (mapped binary and shared libraries) + RssShmem.
    parts = {key: status_kib(pid, key) for key in ("RssAnon", "RssFile", "RssShmem", "Threads")}
    # Pss shares each library page among the processes that map it; the io_uring rings (1024 entries since
    # compat/liburing.h, Asio's own 16384 before; an anon_inode mapping counted in RssFile) are private to slmd.
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            parts["Pss"] = int(line.split()[1])
    ring = 0
    current = ""
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        fields = line.split()
        if fields and "-" in fields[0] and not fields[0].endswith(":"):
            current = fields[5] if len(fields) > 5 else ""
        elif fields and fields[0] == "Rss:" and "io_uring" in current:
            ring += int(fields[1])
    parts["io_uring_rings"] = ring
    return parts


class SyscallCounter:
    """Counts a process's syscalls (all threads) with perf's raw_syscalls:sys_enter, or strace -c as fallback."""

    def __init__(self, pid, workdir):
        self.out = Path(workdir) / f"syscalls-{pid}.txt"
        self.tool = "perf" if shutil.which("perf") else "strace"
        if self.tool == "perf":
            cmd = ["perf", "stat", "-x,", "-e", "raw_syscalls:sys_enter", "-p", str(pid), "-o", str(self.out)]
        else:
            cmd = ["strace", "-f", "-c", "-p", str(pid), "-o", str(self.out)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)  # attached before the transfer starts

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(30)
        text = self.out.read_text() if self.out.exists() else ""
        if self.tool == "perf":
            for line in text.splitlines():
                if "raw_syscalls:sys_enter" in line:
                    value = line.split(",")[0]
                    return int(value) if value.isdigit() else None
            return None
        for line in text.splitlines():
            if line.strip().endswith("total"):
                return int(line.split()[2])
        return None


# ---------------------------------------------------------------------------------------------- measurements

def bulk_matrix(bins, profiles, bauds, size, concurrency):
    """Download then upload on every profile, each profile on its own pair, `concurrency[baud]` at a time."""
    results = {}
    lock = threading.Lock()

    def one(profile, baud):
        pair = Pair(bins, profile, baud)
        try:
            row = {}
            for direction in ("download", "upload"):
                try:
                    row[direction] = transfer(pair, direction, size)
                except Exception as error:  # noqa: BLE001 — one failed profile must not end the run
                    log(f"{profile} @ {baud} {direction}: {error}")
                    row[direction] = {"ok": False, "error": str(error)[:400]}
                log(f"{profile} @ {baud} {direction}: {row[direction].get('fraction')}")
            with lock:
                results[(profile, baud)] = row
        finally:
            pair.close()

    for baud in bauds:
        with concurrent.futures.ThreadPoolExecutor(concurrency[baud]) as pool:
            futures = [pool.submit(one, profile, baud) for profile in profiles]
            for future in futures:
                future.result()
    return results


def trace_records(path):
    """slmsim --trace lines: (seconds, direction, byte count, escaped text)."""
    records = []
    for line in Path(path).read_text(errors="replace").splitlines():
        parts = line.split(" ", 3)
        if len(parts) == 4 and parts[1] in ("H>M", "M>H") and parts[2].isdigit():
            records.append((float(parts[0]), parts[1], int(parts[2]), parts[3]))
    return records


def echo_wire_bytes(path):
    """Bytes both ways while the echo connection was up, from "connected" to slmd's first step to close it: the
    framing slmd really chose (quoted AT#XTCPSEND + #XTCPDATA in command mode, or raw bytes in data mode)."""
    records = trace_records(path)
    start = next(i for i, r in enumerate(records) if r[1] == "M>H" and '\\"connected\\"' in r[3]) + 1
    end = next((i for i in range(start, len(records))
                if records[i][1] == "H>M" and ("+++" in records[i][3] or "XTCPCLI=0" in records[i][3])
                or records[i][1] == "M>H" and "disconnected" in records[i][3]), len(records))
    window = records[start:end]
    data_mode = any(r[1] == "H>M" and r[3].startswith('"AT#XTCPSEND\\r') or r[3].startswith('"#XTCPSEND\\r')
                    for r in window)
    return sum(r[2] for r in window), data_mode


def echo_round_trips(pair, count):
    """64-byte echoes through `pair` against a local echo server: the client's report (its "rtts")."""
    server, port = start_server("echo", 0)
    try:
        return pair.run_client("echo", port, ["--count", str(count), "--size", "64", "--gap-ms", str(ECHO_GAP_MS)])
    finally:
        server.kill()
        server.wait()


def echo_path(bins, count):
    """The same 64-byte echo with slmsim unpaced: everything on the round trip but the line (the Python client
    and echo server, the shim, slmd, slmsim's processing, loopback hops). Reported next to the wire bound."""
    pair = Pair(bins, "v2.9", 0)
    try:
        client = echo_round_trips(pair, count)
    finally:
        pair.close()
    rtts = client["rtts"][3:] or client["rtts"]
    return {"ok": client.get("ok"), "rtt_p50_ms": statistics.median(rtts) * 1e3, "rtt_min_ms": min(rtts) * 1e3}


def echo(bins, baud, count):
    """64-byte request/response round trips vs the wire time of the bytes slmd put on the line for them."""
    pair = Pair(bins, "v2.9", baud, sim_args=["--trace", "TRACE"])
    try:
        client = echo_round_trips(pair, count)
        time.sleep(0.2)  # slmsim writes its trace as it goes; let the last lines land
        wire_bytes, data_mode = echo_wire_bytes(pair.dir / "trace.txt")
    finally:
        pair.close()
    rtts = client["rtts"][3:] or client["rtts"]  # the first ones include slmd's route/flow warm-up
    payload = 64
    # Command-mode framing for comparison: quoted send + its answer, then the #XTCPDATA header and payload.
    command_mode_bytes = (len('AT#XTCPSEND=""\r\n') + payload + len(f"\r\n#XTCPSEND: {payload}\r\n")
                          + len("\r\nOK\r\n") + len(f"\r\n#XTCPDATA: {payload}\r\n") + payload)
    per_rtt = wire_bytes / len(client["rtts"])
    wire = per_rtt * 10 / baud
    bound = wire + SIM_FIXED_DELAY_S
    p50 = statistics.median(rtts)
    return {"baud": baud, "ok": client.get("ok"), "samples": len(rtts), "rtt_p50_ms": p50 * 1e3,
            "rtt_min_ms": min(rtts) * 1e3, "rtt_max_ms": max(rtts) * 1e3, "wire_bytes": round(per_rtt, 1),
            "data_mode": data_mode, "command_mode_bytes": command_mode_bytes,
            "wire_ms": wire * 1e3, "bound_ms": bound * 1e3, "ratio": p50 / bound, "min_ratio": min(rtts) / bound,
            "sim_batch_gap_ms": SIM_BATCH_GAP_S * 1e3}


# ----------------------------------------------------------------------------- several connections (issue 16)

def jain(values):
    """Jain's fairness index: 1.0 when every flow got the same rate, 1/n when one got everything."""
    return sum(values) ** 2 / (len(values) * sum(v * v for v in values)) if values and any(values) else 0.0


def client_command(bins, mode, port, extra=()):
    return [bins["slm-run"], sys.executable, PEER, "client", mode, "--host", REMOTE, "--port", str(port), *extra]


def concurrent_downloads(bins, profile, baud, size, flows=4, slmd_args=()):
    """`flows` downloads at once through one slmd (on SLM the first on the TCP proxy, the others on generic
    sockets, unless slmd_args say otherwise): aggregate goodput from the first connect to the last byte, and
    Jain's index of the per-flow rates."""
    pair = Pair(bins, profile, baud, slmd_args=slmd_args)
    servers = []
    try:
        servers = [start_server("download", size) for _ in range(flows)]
        procs = [subprocess.Popen(client_command(bins, "download", port, ["--bytes", str(size)]), env=pair.env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _, port in servers]
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=1800)
            lines = out.strip().splitlines()
            results.append(json.loads(lines[-1]) if proc.returncode == 0 and lines else {"ok": False,
                                                                                          "error": err[-400:]})
    finally:
        for server, _ in servers:
            server.kill()
            server.wait()
        pair.close()
    ok = all(r.get("ok") for r in results)
    if not ok:
        return {"ok": False, "profile": profile, "baud": baud, "flows": flows, "results": results}
    rates = [size / (r["end"] - r["start"]) for r in results]
    span = max(r["end"] for r in results) - min(r["start"] for r in results)
    return {"ok": True, "profile": profile, "baud": baud, "flows": flows, "bytes_each": size,
            "aggregate_fraction": flows * size / span / (baud / 10), "jain": jain(rates),
            "per_flow_fraction": [r / (baud / 10) for r in rates]}


def echo_beside_bulk(bins, profile, baud, count, size, slmd_args=()):
    """64-byte echo p50 on one connection, idle and then while another connection downloads in bulk."""
    pair = Pair(bins, profile, baud, slmd_args=slmd_args)
    server = None
    try:
        idle = echo_round_trips(pair, count)
        server, port = start_server("download", size)
        bulk = subprocess.Popen(client_command(bins, "download", port, ["--bytes", str(size)]), env=pair.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        busy = echo_round_trips(pair, count)
        still_running = bulk.poll() is None
        bulk.communicate(timeout=1800)
    finally:
        if server:
            server.kill()
            server.wait()
        pair.close()
    idle_rtts, busy_rtts = idle["rtts"][3:] or idle["rtts"], busy["rtts"][3:] or busy["rtts"]
    p50_idle, p50_busy = statistics.median(idle_rtts), statistics.median(busy_rtts)
    return {"ok": bool(idle.get("ok") and busy.get("ok")), "profile": profile, "baud": baud,
            "idle_p50_ms": p50_idle * 1e3, "busy_p50_ms": p50_busy * 1e3, "ratio": p50_busy / p50_idle,
            "bulk_outlasted_echo": still_running}


HOLD_SCRIPT = """
import socket, sys, time
held = [socket.create_connection((sys.argv[1], int(port))) for port in sys.argv[3].split(",")]
print("held", len(held), flush=True)
time.sleep(float(sys.argv[2]))
"""


def idle_poll_cost(bins, profile, baud, connections, seconds):
    """Wire bytes per second with `connections` open and idle (polling, nothing else), from slmsim's trace: a
    window that starts 3 s after the last connect (the poll interval has grown to its idle value)."""
    pair = Pair(bins, profile, baud, sim_args=["--trace", "TRACE"])
    servers = []  # one echo server per connection (peer.py serves one)
    try:
        servers = [start_server("echo", 0) for _ in range(connections)]
        ports = ",".join(str(port) for _, port in servers)
        out = subprocess.run([bins["slm-run"], sys.executable, "-c", HOLD_SCRIPT, REMOTE, str(seconds + 4), ports],
                             env=pair.env, capture_output=True, text=True, timeout=seconds + 120)
        time.sleep(0.2)
        records = trace_records(pair.dir / "trace.txt")
    finally:
        for server, _ in servers:
            server.kill()
            server.wait()
        pair.close()
    connects = [r[0] for r in records
                if r[1] == "M>H" and (re.search(r"#XCONNECT: (\d+,)?1", r[3]) or '\\"connected\\"' in r[3])]
    if out.returncode != 0 or not connects:
        return {"ok": False, "error": out.stderr[-400:]}
    start = max(connects) + 3
    window = [r for r in records if start <= r[0] < start + seconds]
    up = sum(r[2] for r in window if r[1] == "H>M")
    down = sum(r[2] for r in window if r[1] == "M>H")
    polls = sum(1 for r in window if r[1] == "H>M" and "XPOLL" in r[3])
    return {"ok": True, "profile": profile, "baud": baud, "connections": connections, "seconds": seconds,
            "polls_per_s": polls / seconds, "up_bytes_per_s": up / seconds, "down_bytes_per_s": down / seconds,
            "up_fraction": up / seconds / (baud / 10), "down_fraction": down / seconds / (baud / 10)}


def socket_limit(profile):
    """Connections the firmware holds at once: 8, but 7 on SLM v3.1 and Serial Modem v1.0.x (each keeps one)."""
    return 7 if profile in ("v3.1", "sm-v1.0") else 8


def many_connections(bins, profile, size, count, smoke, slmd_args=(), idle=True):
    baud = 115200
    out = {"downloads": concurrent_downloads(bins, profile, baud, size // 4 if smoke else size, slmd_args=slmd_args),
           "echo_beside_bulk": echo_beside_bulk(bins, profile, baud, count, 4 * size, slmd_args=slmd_args)}
    if idle:
        out["idle_poll"] = idle_poll_cost(bins, profile, baud, socket_limit(profile), 3 if smoke else 10)
    return out


def daemon_stats(pair):
    out = pair.slmctl("stats", "--json")
    if out.returncode != 0:
        return {"missing": True, "why": (out.stderr or out.stdout).strip()[:200]}
    try:
        stats = json.loads(out.stdout)
    except json.JSONDecodeError:
        return {"missing": True, "why": "slmctl stats --json did not print JSON"}
    if "latency" not in stats:
        return {"missing": True, "why": "no latency block", "raw": stats}
    return {"missing": False, "latency": stats["latency"], "bytes_downlink": stats.get("bytes_downlink"),
            "bytes_uplink": stats.get("bytes_uplink")}


def backend_cost(bins, slmd_bin, label, size, workdir):
    """CPU seconds and syscalls of slmd for one download + one upload at 921600 (nothing else running)."""
    pair = Pair(bins, "v2.9", 921600, slmd_bin=slmd_bin, tag=label)
    try:
        pid = pair.slmd.pid
        time.sleep(0.5)
        counter = SyscallCounter(pid, workdir)
        cpu0 = cpu_seconds(pid)
        wall0 = time.monotonic()
        down = transfer(pair, "download", size)
        cpu_mid, wall_mid = cpu_seconds(pid), time.monotonic()
        up = transfer(pair, "upload", size)
        wall = time.monotonic() - wall0
        cpu = cpu_seconds(pid) - cpu0
        # Per direction too: the download is where the line's cadence sets slmd's wake-ups.
        down_percent = 100 * (cpu_mid - cpu0) / (wall_mid - wall0)
        up_percent = 100 * (cpu0 + cpu - cpu_mid) / (wall0 + wall - wall_mid)
        syscalls = counter.stop()
        moved = (size * 2) / MIB
        stats = daemon_stats(pair)
        return {"build": label, "ok": down["ok"] and up["ok"], "download": down, "upload": up,
                "cpu_seconds": cpu, "wall_seconds": wall, "cpu_percent": 100 * cpu / wall,
                "download_cpu_percent": down_percent, "upload_cpu_percent": up_percent,
                "cpu_seconds_per_mib": cpu / moved, "syscalls": syscalls, "syscall_tool": counter.tool,
                "syscalls_per_mib": syscalls / moved if syscalls is not None else None, "stats": stats}
    finally:
        pair.close()


def rss(bins, slmd_bin, label, clients, settle=1.0):
    pair = Pair(bins, "v2.9", 115200, slmd_bin=slmd_bin, tag=label)
    held = []
    try:
        pid = pair.slmd.pid
        time.sleep(settle)
        idle = vm_rss_kib(pid)
        idle_parts = rss_parts(pid)
        fds_before = len(os.listdir(f"/proc/{pid}/fd"))
        # A "connected client" is an open control connection (SOCK_SEQPACKET on the API socket) that slmd has
        # accepted and is reading from: the only API state that scales with clients. Data flows cannot: the
        # firmware has one TCP proxy and slmd queues at most 8 connects (docs/data-path.md).
        for _ in range(clients):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            s.connect(str(pair.socket))
            held.append(s)
        wait_until(lambda: len(os.listdir(f"/proc/{pid}/fd")) >= fds_before + clients, 10, "slmd to accept")
        time.sleep(settle / 2)
        loaded = vm_rss_kib(pid)
        return {"build": label, "idle_kib": idle, "idle_parts_kib": idle_parts, "clients": clients,
                "with_clients_kib": loaded, "with_clients_parts_kib": rss_parts(pid),
                "accepted": len(os.listdir(f"/proc/{pid}/fd")) - fds_before}
    finally:
        for s in held:
            s.close()
        pair.close()


def gbench(binary, env=None, extra=()):
    out = subprocess.run([binary, "--benchmark_format=json", *extra], capture_output=True, text=True,
                         env=env, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"{binary}: {out.stderr[-500:]}")
    return json.loads(out.stdout)["benchmarks"]


def shim_overhead(bins, bench_dir, socket_path, min_time, rounds):
    """Plain vs LD_PRELOAD runs of shim_bench, alternated so drift in the machine's load hits both alike; the
    fastest repetition of each counts (on a shared machine noise only ever adds time)."""
    binary = bench_dir / "shim_bench"
    args = [f"--benchmark_min_time={min_time}", "--benchmark_repetitions=3"]
    env = dict(os.environ, SLMSOCK_SOCKET=str(socket_path))
    best = {"plain": {}, "preload": {}}
    for _ in range(rounds):
        for mode, run_env in (("plain", env), ("preload", dict(env, LD_PRELOAD=str(bins["preload"])))):
            for row in gbench(binary, run_env, args):
                if row.get("run_type") == "aggregate":
                    continue
                name = row["run_name"]
                best[mode][name] = min(best[mode].get(name, float("inf")), row["real_time"])
    a, b = best["plain"], best["preload"]
    return {name: {"plain_ns": a[name], "preload_ns": b[name], "ratio": b[name] / a[name]} for name in a if name in b}


def framer_rate(bench_dir, min_time):
    rows = gbench(bench_dir / "framer_bench", None, [f"--benchmark_min_time={min_time}"])
    return {r["name"] + (f" ({r['label']})" if r.get("label") else ""): r["bytes_per_second"] for r in rows}


def unpaced(bins, size):
    pair = Pair(bins, "v2.9", 0)
    try:
        return {"download": transfer(pair, "download", size), "upload": transfer(pair, "upload", size)}
    finally:
        pair.close()


# ---------------------------------------------------------------------------------------------- reporting

def lossy_fraction(cell, baud):
    if cell.get("fraction_received") is not None:
        return cell["fraction_received"]
    if cell.get("received") and cell.get("seconds"):
        return cell["received"] / cell["seconds"] / (baud / 10)
    return None


def cell_text(cell, baud):
    if not cell:
        return "–"
    if cell.get("ok"):
        return f"{cell['fraction']:.3f}"
    lossy = lossy_fraction(cell, baud)
    if lossy is None or not cell.get("received"):
        return "failed"
    return f"{lossy:.3f} ✗ {cell['bytes'] - cell['received']} B lost"


def status(met):
    return "n/a" if met is None else ("met" if met else "**not met**")


def many_rows(many, carriers, aggregate_target):
    rows = []
    d = many.get("downloads")
    if d:
        rows.append((f"{d.get('flows')} downloads at once @ {d.get('baud')} ({d.get('profile')}: {carriers}), "
                     "aggregate goodput / Jain index",
                     f"{d['aggregate_fraction']:.3f} of baud/10, Jain {d['jain']:.3f}" if d.get("ok") else "failed",
                     f"≥ {aggregate_target:.2f}, Jain ≥ 0.95",
                     d.get("ok") and d["aggregate_fraction"] >= aggregate_target and d["jain"] >= 0.95))
    e = many.get("echo_beside_bulk")
    if e:
        rows.append((f"64-byte echo p50 beside a bulk download @ {e.get('baud')} ({e.get('profile')})",
                     f"{e['busy_p50_ms']:.1f} ms vs {e['idle_p50_ms']:.1f} ms idle = {e['ratio']:.2f} ×"
                     + ("" if e.get("bulk_outlasted_echo") else " (the download ended before the echoes)")
                     if e.get("ok") else "failed", "≤ 2 ×", e.get("ok") and e["ratio"] <= 2.0))
    i = many.get("idle_poll")
    if i:
        rows.append((f"idle line, {i.get('connections')} connections open @ {i.get('baud')}: wire spent polling",
                     f"{i['polls_per_s']:.1f} polls/s, {i['up_bytes_per_s']:.1f} B/s up "
                     f"({i['up_fraction'] * 100:.2f} %), {i['down_bytes_per_s']:.1f} B/s down "
                     f"({i['down_fraction'] * 100:.2f} %)" if i.get("ok") else "failed",
                     "≤ 2 %", i.get("ok") and max(i["up_fraction"], i["down_fraction"]) <= 0.02))
    return rows


def write_reports(out_dir, data):
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(data, indent=2, default=str) + "\n")
    rows = []  # (measurement, value, target, met)
    bulk = data["bulk"]
    for (direction, baud), target in TARGETS.items():
        if baud not in data["bauds"]:
            continue
        cells = [(p, bulk.get(f"{p}@{baud}", {}).get(direction, {})) for p in data["profiles"]]
        fractions = [(c.get("fraction"), p) for p, c in cells if c.get("ok")]
        failed = [f"{p} ({cell_text(c, baud)})" for p, c in cells if not c.get("ok")]
        if not fractions:
            rows.append((f"{direction} goodput @ {baud}", "no data", f"≥ {target:.2f}", None))
            continue
        worst, worst_profile = min(fractions)
        best, _ = max(fractions)
        value = f"{worst:.3f}–{best:.3f} of baud/10 (worst {worst_profile})"
        if failed:
            value += f"; data lost: {', '.join(failed)}"
        rows.append((f"{direction} goodput @ {baud}, {len(fractions)} profiles", value, f"≥ {target:.2f}",
                     worst >= target and not failed))
    for e in data.get("echo", []):
        rows.append((f"64-byte echo RTT @ {e['baud']} (v2.9, p50)",
                     f"{e['rtt_p50_ms']:.2f} ms = {e['ratio']:.2f} × bound {e['bound_ms']:.2f} ms "
                     f"({e['wire_bytes']:.0f} B/round trip on the wire, "
                     f"{'data mode' if e['data_mode'] else 'command mode'}; slmsim adds no delay; "
                     f"min {e['min_ratio']:.2f} ×"
                     + (f"; {e['ratio_with_path']:.2f} × the bound plus the unpaced round trip "
                        f"{data['echo_path']['rtt_p50_ms']:.2f} ms" if 'ratio_with_path' in e else "") + ")",
                     "≤ 1.2 × bound", e["ratio"] <= 1.2))
    for key, carriers, aggregate_target in (("many", "proxy + generic sockets", 0.80),
                                            ("many_sm", "Serial Modem sockets", 0.90),
                                            ("many_generic", "generic sockets only, tcp-proxy = tls-only", 0.80),
                                            ("many_reports", "SLM v3.1 generic sockets, #XAPOLL reports, tls-only",
                                             0.80)):
        rows += many_rows(data.get(key, {}), carriers, aggregate_target)
    cost = data.get("backend", {})
    uring, epoll = cost.get("io_uring"), cost.get("epoll")
    if uring:
        rows.append(("slmd CPU during bulk @ 921600 (io_uring)",
                     f"{uring['cpu_percent']:.2f} % of a core ({uring['cpu_seconds']:.2f} s CPU / "
                     f"{uring['wall_seconds']:.1f} s; download {uring.get('download_cpu_percent', 0):.2f} %, "
                     f"upload {uring.get('upload_cpu_percent', 0):.2f} %)", "≤ 1 %", uring["cpu_percent"] <= 1.0))
    if epoll:
        rows.append(("slmd CPU during bulk @ 921600 (epoll)",
                     f"{epoll['cpu_percent']:.2f} % of a core (download {epoll.get('download_cpu_percent', 0):.2f} %, "
                     f"upload {epoll.get('upload_cpu_percent', 0):.2f} %)", "≤ 1 %",
                     epoll["cpu_percent"] <= 1.0))
    if uring and epoll:
        cpu_ratio = uring["cpu_seconds"] / epoll["cpu_seconds"] if epoll["cpu_seconds"] else float("nan")
        rows.append(("CPU s/MiB io_uring vs epoll",
                     f"{uring['cpu_seconds_per_mib']:.3f} vs {epoll['cpu_seconds_per_mib']:.3f} "
                     f"(ratio {cpu_ratio:.2f})", "(informative)", None))
        if uring["syscalls_per_mib"] is not None and epoll["syscalls_per_mib"] is not None:
            ratio = uring["syscalls_per_mib"] / epoll["syscalls_per_mib"]
            rows.append(("syscalls/MiB io_uring vs epoll",
                         f"{uring['syscalls_per_mib']:.0f} vs {epoll['syscalls_per_mib']:.0f} (ratio {ratio:.2f}, "
                         f"{uring['syscall_tool']})", "io_uring < epoll", ratio < 1.0))
    elif uring and uring["syscalls_per_mib"] is not None:
        rows.append(("syscalls/MiB (io_uring only)", f"{uring['syscalls_per_mib']:.0f} ({uring['syscall_tool']})",
                     "io_uring < epoll", None))
    stats = (uring or {}).get("stats")
    if stats is not None:
        if stats.get("missing"):
            rows.append(("slmd added latency p50/p99", "n/a (slmctl stats missing)", "(informative)", None))
        else:
            lat = stats["latency"]
            rows.append(("slmd added latency p50/p99 (downlink / uplink)",
                         f"{lat.get('downlink_p50_us')}/{lat.get('downlink_p99_us')} µs / "
                         f"{lat.get('uplink_p50_us')}/{lat.get('uplink_p99_us')} µs "
                         f"({lat.get('samples_downlink')}/{lat.get('samples_uplink')} samples; "
                         f"bytes {stats.get('bytes_downlink')}/{stats.get('bytes_uplink')})",
                         "(informative)", None))
    for r in data.get("rss", []):
        p = r["idle_parts_kib"]
        rows.append((f"slmd VmRSS idle ({r['build']})",
                     f"{r['idle_kib'] / 1024:.2f} MiB (anon {p['RssAnon'] / 1024:.2f}, io_uring rings "
                     f"{p['io_uring_rings'] / 1024:.2f}, other file {(p['RssFile'] - p['io_uring_rings']) / 1024:.2f}; "
                     f"Pss {p.get('Pss', 0) / 1024:.2f})",
                     "≤ 8 MiB",
                     r["idle_kib"] <= 8 * 1024))
        rows.append((f"slmd VmRSS, {r['clients']} API clients held ({r['build']})",
                     f"{r['with_clients_kib'] / 1024:.2f} MiB ({r['accepted']} accepted)", "≤ 16 MiB",
                     r["with_clients_kib"] <= 16 * 1024))
    for name, s in data.get("shim", {}).items():
        rows.append((f"shim overhead: {name}", f"{s['plain_ns']:.0f} → {s['preload_ns']:.0f} ns, best of 9 "
                     f"(×{s['ratio']:.3f})", "≤ 1.10 ×", s["ratio"] <= 1.10))
    un = data.get("unpaced")
    if un:
        for direction in ("download", "upload"):
            t = un[direction]
            rows.append((f"unpaced (--baud 0) {direction}, v2.9",
                         f"{t['bps'] / 1e6:.2f} MB/s = {t['bps'] / 92160:.1f} × the 921600 line rate"
                         + ("" if t["ok"] else " (FAILED)"), "(headroom)", None))
    for name, bps in data.get("framer", {}).items():
        rows.append((f"AT framer parse rate: {name}", f"{bps / 1e6:.0f} MB/s = {bps / 92160:.0f} × 921600 line rate",
                     "(headroom)", None))

    load = data["host"]
    lines = [f"Run {data['started']} ({data['mode']}, {data['size'] // 1024} KiB transfers, "
             f"profiles {', '.join(data['profiles'])}, {load['cpus']} CPUs, load average "
             f"{load['loadavg_start'][0]:.1f} → {load.get('loadavg_end', [0])[0]:.1f}). "
             "Ratios measured in this one run.", "",
             "| measurement | value | target | status |", "|---|---|---|---|"]
    lines += [f"| {m} | {v} | {t} | {status(ok)} |" for m, v, t, ok in rows]
    lines += ["", "Goodput per profile (fraction of baud/10 B/s; connect included; sha256 checked):", "",
              "| profile | download ideal | " + " | ".join(f"{d} @ {b}" for b in data["bauds"] for d in ("down", "up"))
              + " |", "|---|---|" + "---|" * (2 * len(data["bauds"]))]
    for p in data["profiles"]:
        cells = []
        for baud in data["bauds"]:
            for direction in ("download", "upload"):
                cells.append(cell_text(bulk.get(f"{p}@{baud}", {}).get(direction, {}), baud))
        lines.append(f"| {p} | {download_ideal(p):.4f} | " + " | ".join(cells) + " |")
    (out_dir / "results.md").write_text("\n".join(lines) + "\n")
    return rows


def plot(out_dir, data):
    if not shutil.which("gnuplot"):
        log("gnuplot not found: no plot (scripts/install-deps.sh installs gnuplot-nox)")
        return None
    dat = out_dir / "goodput.dat"
    png = out_dir / "goodput.png"
    ideal_new = download_ideal("v2.9")
    ideal_old = download_ideal("v2.0")
    n = len(data["profiles"])
    script = f"""
set terminal pngcairo size 1200,560 font ",10"
set output '{png}'
set multiplot layout 1,2 title "slmd goodput through slmsim vs line rate ({data['size'] // 1024} KiB, {data['started']})"
set logscale x 2
set xrange [90000:1200000]
set xtics ("115200" 115200, "921600" 921600)
set yrange [0.75:1.01]
set ylabel "goodput / (baud/10 B/s)"
set xlabel "baud"
set key bottom left font ",8" maxrows 8
set grid ytics
do for [dir=2:3] {{
  set title (dir == 2 ? "download (#XTCPDATA, command mode)" : "upload (data mode)")
  ideal_hi = (dir == 2 ? {ideal_new} : 1.0)
  plot for [i=0:{n - 1}] '{dat}' index i using 1:dir with linespoints title columnheader(1) noenhanced, \\
       ideal_hi with lines dt 2 lw 2 lc rgb "black" title (dir == 2 ? "framing ideal (2048 B chunks)" : "framing ideal"), \\
       (dir == 2 ? {ideal_old} : 1/0) with lines dt 3 lw 2 lc rgb "gray40" title (dir == 2 ? "framing ideal (1272 B, ≤v2.2)" : ""), \\
       {PPP_CEILING} with lines dt 4 lw 2 lc rgb "red" title "PPP ceiling 95 %", \\
       {PPP_CMUX_CEILING} with lines dt 5 lw 2 lc rgb "orange" title "PPP+CMUX ceiling 91 %"
}}
unset multiplot
"""
    # One gnuplot block per profile; its first line names the profile (columnheader).
    with open(dat, "w") as f:
        for p in data["profiles"]:
            f.write(f'"{p}" "{p}" "{p}"\n')
            for baud in data["bauds"]:
                row = data["bulk"].get(f"{p}@{baud}", {})
                d = row.get("download", {})
                u = row.get("upload", {})
                dv = d.get("fraction") or lossy_fraction(d, baud) or "NaN"
                uv = u.get("fraction") or lossy_fraction(u, baud) or "NaN"
                f.write(f"{baud} {dv} {uv}\n")
            f.write("\n\n")
    (out_dir / "goodput.gp").write_text(script)
    out = subprocess.run(["gnuplot", out_dir / "goodput.gp"], capture_output=True, text=True)
    if out.returncode != 0:
        log("gnuplot failed:", out.stderr[-500:])
        return None
    return png


# ---------------------------------------------------------------------------------------------- main

def binaries(build):
    build = Path(build)
    return {"slmd": build / "daemon" / "slmd", "slmsim": build / "tests" / "slmsim" / "slmsim",
            "slm-run": build / "preload" / "slm-run", "preload": build / "preload" / "libslmsock-preload.so",
            "slmctl": build / "slmctl" / "slmctl", "bench": build / "tests" / "bench"}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--build", default="build/release", help="io_uring (release preset) build dir")
    parser.add_argument("--epoll-build", default="build/epoll", help="epoll preset build dir, for comparison")
    parser.add_argument("--out", default="bench-results")
    parser.add_argument("--quick", action="store_true", help="256 KiB transfers, three profiles")
    parser.add_argument("--smoke", action="store_true", help="seconds-long run of every step (ctest)")
    parser.add_argument("--report-only", action="store_true", help="rewrite results.md and the plot from results.json")
    args = parser.parse_args()
    if args.report_only:
        out_dir = Path(args.out)
        data = json.loads((out_dir / "results.json").read_text())
        write_reports(out_dir, data)
        plot(out_dir, data)
        print((out_dir / "results.md").read_text())
        return 0

    bins = binaries(args.build)
    for key in ("slmd", "slmsim", "slm-run", "preload", "slmctl"):
        if not Path(bins[key]).exists():
            sys.exit(f"bench: {bins[key]} missing; build first (scripts/bench.sh does)")
    epoll_slmd = binaries(args.epoll_build)["slmd"]
    if args.smoke:
        mode, size, profiles, bauds, count = "smoke", 16 * 1024, ["v2.9"], [921600], 5
    elif args.quick:
        mode, size, profiles, bauds, count = "quick", 256 * 1024, QUICK_PROFILES, [115200, 921600], 20
    else:
        mode, size, profiles, bauds, count = "full", MIB, ALL_PROFILES, [115200, 921600], 50
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = {"started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "mode": mode, "size": size,
            "profiles": profiles, "bauds": bauds,
            # Wall-clock figures depend on what else the machine does; the load average says how busy it was.
            "host": {"cpus": os.cpu_count(), "kernel": os.uname().release, "loadavg_start": os.getloadavg()}}
    t0 = time.monotonic()

    # Bulk: line-rate bound, little CPU, so profiles run side by side (one pair each). 921600 is closer to CPU
    # work per second, so fewer at once there.
    log(f"bulk transfers: {len(profiles)} profiles × {bauds}, {size} bytes each way")
    bulk = bulk_matrix(bins, profiles, bauds, size, {115200: len(profiles), 921600: min(3, len(profiles))})
    data["bulk"] = {f"{p}@{b}": row for (p, b), row in bulk.items()}

    # Everything below measures time or CPU: one thing at a time.
    log("echo round trips")
    data["echo"] = [echo(bins, baud, count) for baud in bauds]
    data["echo_path"] = echo_path(bins, count)
    for e in data["echo"]:
        e["ratio_with_path"] = e["rtt_p50_ms"] / (e["bound_ms"] + data["echo_path"]["rtt_p50_ms"])

    log("CPU and syscalls: io_uring vs epoll at 921600")
    cost_size = size if not args.smoke else size
    data["backend"] = {"io_uring": backend_cost(bins, bins["slmd"], "io_uring", cost_size, out_dir)}
    if Path(epoll_slmd).exists() and not args.smoke:
        data["backend"]["epoll"] = backend_cost(bins, epoll_slmd, "epoll", cost_size, out_dir)
    else:
        log(f"no epoll build at {epoll_slmd}: io_uring only")

    log("RSS idle and with 100 clients")
    data["rss"] = [rss(bins, bins["slmd"], "io_uring", 100, 0.2 if args.smoke else 1.0)]
    if Path(epoll_slmd).exists() and not args.smoke:
        data["rss"].append(rss(bins, epoll_slmd, "epoll", 100))

    bench_dir = Path(bins["bench"])
    min_time = 0.05 if args.smoke else 0.5
    if (bench_dir / "shim_bench").exists():
        log("shim overhead")
        if args.smoke:  # the calls measured never reach slmd; the full run still has one answering, as in use
            data["shim"] = shim_overhead(bins, bench_dir, out_dir / "no-slmd.sock", min_time, 1)
        else:
            pair = Pair(bins, "v2.9", 115200)
            try:
                data["shim"] = shim_overhead(bins, bench_dir, pair.socket, min_time, 3)
            finally:
                pair.close()
    if (bench_dir / "framer_bench").exists():
        log("framer parse rate")
        data["framer"] = framer_rate(bench_dir, min_time)

    log("several connections at once (SLM v2.9: the TCP proxy and generic sockets) @ 115200")
    data["many"] = many_connections(bins, "v2.9", size if args.smoke else 256 * 1024, count, args.smoke)
    log("several connections at once (Serial Modem v1.0: its sockets, automatic reception) @ 115200")
    data["many_sm"] = many_connections(bins, "sm-v1.0", size if args.smoke else 256 * 1024, count, args.smoke)
    log("several connections at once (SLM v2.9, tcp-proxy = tls-only: generic sockets only) @ 115200")
    data["many_generic"] = many_connections(bins, "v2.9", size if args.smoke else 256 * 1024, count, args.smoke,
                                            slmd_args=["--tcp-proxy", "tls-only"], idle=False)
    log("several connections at once (SLM v3.1, tcp-proxy = tls-only: generic sockets, #XAPOLL reports) @ 115200")
    data["many_reports"] = many_connections(bins, "v3.1", size if args.smoke else 256 * 1024, count, args.smoke,
                                            slmd_args=["--tcp-proxy", "tls-only"])

    if not args.smoke:  # the same transfer code as the bulk step, which the smoke run already exercised
        log("unpaced throughput")
        data["unpaced"] = unpaced(bins, 4 * MIB)

    data["elapsed_s"] = time.monotonic() - t0
    data["host"]["loadavg_end"] = os.getloadavg()
    rows = write_reports(out_dir, data)
    png = plot(out_dir, data)
    print((out_dir / "results.md").read_text())
    log(f"done in {data['elapsed_s']:.0f} s: {out_dir}/results.json, results.md" + (f", {png}" if png else ""))
    # Exit status: could everything be measured (not: were targets met).
    broken = [m for m, v, _, _ in rows if "failed" in v or "lost" in v or v == "no data"]
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
