#!/usr/bin/env python3
# Owns: the on-demand soak run of the reliability issue (not in CI): slmsim + slmd for N minutes with unmodified
# programs moving data through the modem (curl downloads with sha256, python3 UDP echoes) while a fault is
# injected every so often (modem reset, peer reset, detach/attach, noise, serial loss and return), then a summary:
# transfers done / failed with an error / silently wrong (must be 0), bytes moved, faults and their recovery
# times, and slmd's descriptors and resident memory at the start and the end. Exit status 1 on any silent
# loss, on slmd dying or on a fault slmd did not recover from. Usage: scripts/soak.sh [--minutes 30] (see
# docs/reliability.md).
import argparse
import hashlib
import http.server
import json
import os
import random
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def descriptors(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def control(path, line):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(path)
        s.sendall((line + "\n").encode())
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
    return reply.decode().strip()


def wait_until(predicate, seconds, step=0.05):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


class UdpEcho(socketserver.BaseRequestHandler):
    def handle(self):
        data, sock = self.request
        sock.sendto(data, self.client_address)


def main():
    parser = argparse.ArgumentParser(description="slmd soak run against slmsim")
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--bin", default="build/default")
    parser.add_argument("--profile", default="v2.9")
    parser.add_argument("--baud", default="921600")
    parser.add_argument("--fault-every", type=float, default=45, help="seconds between injected faults")
    parser.add_argument("--size", type=int, default=64 * 1024, help="bytes per download")
    parser.add_argument("--json", help="also write the summary here")
    parser.add_argument("--faults", default="reset,peer-reset,detach,noise,close-link,payload-reset,payload-drop",
                        help="comma-separated cycle of faults: reset, peer-reset, detach, noise, close-link, "
                             "payload-reset (the modem reboots part-way through a #XTCPDATA payload), "
                             "payload-drop (1-300 bytes vanish inside the downlink)")
    args = parser.parse_args()
    binaries = os.path.abspath(args.bin)
    work = tempfile.mkdtemp(prefix="slmd-soak.")
    rng = random.Random(1121)

    # The far end: an HTTP server with a random blob and a UDP echo server, on loopback.
    blob = bytes(rng.getrandbits(8) for _ in range(args.size))
    os.makedirs(f"{work}/www")
    open(f"{work}/www/blob", "wb").write(blob)
    blob_sha = hashlib.sha256(blob).hexdigest()
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=f"{work}/www", **k)
    http.server.SimpleHTTPRequestHandler.log_message = lambda *a: None
    web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    udp = socketserver.ThreadingUDPServer(("127.0.0.1", 0), UdpEcho)
    threading.Thread(target=udp.serve_forever, daemon=True).start()

    sim_log = open(f"{work}/sim.log", "w")
    slmd_log = open(f"{work}/slmd.log", "w")
    sim = subprocess.Popen([f"{binaries}/tests/slmsim/slmsim", "--link", f"{work}/tty", "--profile", args.profile,
                            "--baud", args.baud, "--control", f"{work}/control", "--trace", f"{work}/trace", "--map",
                            "203.0.113.0/24=127.0.0.1"], stdout=sim_log, stderr=subprocess.STDOUT)
    wait_until(lambda: os.path.exists(f"{work}/control") and os.path.exists(f"{work}/tty"), 10)
    slmd = subprocess.Popen([f"{binaries}/daemon/slmd", "--device", f"{work}/tty", "--baud",
                             args.baud if args.baud != "0" else "115200", "--api-socket", f"{work}/slmd.sock",
                             "--log-level", os.environ.get("SOAK_SLMD_LOG", "notice"), "--recovery-max", "1000"],
                            stdout=slmd_log, stderr=subprocess.STDOUT)
    env = dict(os.environ, SLMSOCK_SOCKET=f"{work}/slmd.sock")

    def state():
        try:
            out = subprocess.run([f"{binaries}/slmctl/slmctl", "status", "--json"], env=env, capture_output=True,
                                 timeout=10, text=True)
            return json.loads(out.stdout).get("modem_state", "?") if out.returncode == 0 else "?"
        except (subprocess.TimeoutExpired, json.JSONDecodeError):
            return "?"

    def sim_counters():
        return dict(kv.split("=", 1) for kv in control(f"{work}/control", "stats").split()[1:] if "=" in kv)

    def faults_in_data_mode():
        return int(sim_counters().get("payload_faults_in_data_mode", 0))

    if not wait_until(lambda: state() == "serving", 60, 0.2):
        sys.exit("soak: slmd did not bring the simulated modem up; see " + work)
    start_rss, start_fds = rss_kib(slmd.pid), descriptors(slmd.pid)

    counts = {"longest_error_streak": 0, "tcp_ok": 0, "tcp_error": 0, "tcp_hang": 0, "tcp_silent_loss": 0, "tcp_wrong_before_error": 0, "udp_ok": 0, "udp_error": 0,
              "udp_silent_loss": 0, "bytes_down": 0, "bytes_udp": 0, "waits_for_recovery": 0,
              "seconds_waiting_for_recovery": 0.0}
    # What the programs said when they failed: curl's exit status and python's last stderr line, counted, so an
    # error streak can be told apart (a refused connect, a reset, a timeout) without rerunning.
    error_kinds = {"tcp": {}, "udp": {}}
    wrong_downloads = []  # a failed download whose bytes before the error were not the blob's: which, and where

    def count_error(family, kind):
        error_kinds[family][kind] = error_kinds[family].get(kind, 0) + 1
    faults = []
    commands = {"reset": "reset", "peer-reset": "peer-reset", "detach": "detach",
                "noise": "noise 00 ff 0d 0a 2b 2b 2b 0d 0a 4f 4b", "close-link": "close-link",
                # At a random offset of the downlink still to come: mostly inside a payload, never on purpose
                # on a boundary.
                "payload-reset": lambda: f"payload-fault reset {rng.randrange(1, 16 * 1024)}",
                "payload-drop": lambda: f"payload-fault drop {rng.randrange(1, 16 * 1024)} {rng.randrange(1, 300)}"}
    fault_cycle = [commands[name] for name in args.faults.split(",") if name]
    udp_client = (
        "import os,socket,sys\n"
        "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.settimeout(5)\n"
        "d=os.urandom(int(sys.argv[2])); s.sendto(d,('203.0.113.10',int(sys.argv[1])))\n"
        "b,_=s.recvfrom(65536); sys.exit(0 if b==d else 3)\n")
    deadline = time.monotonic() + args.minutes * 60
    next_fault = time.monotonic() + args.fault_every
    fault_index = 0
    def start_download():
        return subprocess.Popen([f"{binaries}/preload/slm-run", "curl", "--silent", "--max-time", "60", "--output",
                                 "-", f"http://203.0.113.10:{web.server_address[1]}/blob"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    streak = {"now": 0}

    def count_download(proc):
        out, err = proc.communicate()
        ok = proc.returncode == 0 and hashlib.sha256(out).hexdigest() == blob_sha
        # "Serving" after a fault is slmd's word; a download that works after it is the proof.
        if ok and faults and "served_after" not in faults[-1]:
            faults[-1]["served_after"] = True
        streak["now"] = 0 if ok else streak["now"] + 1
        counts["longest_error_streak"] = max(counts["longest_error_streak"], streak["now"])
        # Exit status non-zero is an error the program saw; zero with wrong bytes is silent loss; curl's 28 is
        # its --max-time: a hang.
        if proc.returncode == 28:
            counts["tcp_hang"] += 1
        elif proc.returncode != 0:
            counts["tcp_error"] += 1
            count_error("tcp", f"curl exit {proc.returncode}")
            # curl writes what it received before the error: every byte of it must be the blob's, in order.
            if not blob.startswith(out):
                counts["tcp_wrong_before_error"] += 1
                first_wrong = next((i for i, (a, b) in enumerate(zip(out, blob)) if a != b), min(len(out), len(blob)))
                wrong_downloads.append({"fault": len(faults) - 1, "after_fault": faults[-1]["command"] if faults else None,
                                        "received": len(out), "first_wrong_byte": first_wrong,
                                        "curl_exit": proc.returncode})
        elif hashlib.sha256(out).hexdigest() != blob_sha:
            counts["tcp_silent_loss"] += 1
        else:
            counts["tcp_ok"] += 1
            counts["bytes_down"] += len(out)

    while time.monotonic() < deadline and slmd.poll() is None:
        download = start_download()
        if time.monotonic() >= next_fault:
            # The fault lands in the middle of a download: wait until the modem has the connection open.
            in_transfer = wait_until(lambda: "tcp=client" in control(f"{work}/control", "state"), 5, 0.02)
            fault = fault_cycle[fault_index % len(fault_cycle)]
            fault = fault() if callable(fault) else fault
            fault_index += 1
            began = time.monotonic()
            in_data_mode_before = faults_in_data_mode()
            reply = control(f"{work}/control", fault)
            if fault == "detach":
                time.sleep(2)  # the network stays away a while
                control(f"{work}/control", "attach")
            if fault == "close-link":
                time.sleep(1)  # the USB-serial adapter is unplugged for a second
                control(f"{work}/control", "reopen")
            recovered = wait_until(lambda: state() == "serving", 120, 0.2)
            name = "payload-" + fault.split()[1] if fault.startswith("payload-fault") else fault.split()[0]
            faults.append({"fault": name, "command": fault, "reply": reply, "mid_transfer": in_transfer,
                           "recovered": recovered, "seconds": round(time.monotonic() - began, 2)})
            next_fault = time.monotonic() + args.fault_every
            count_download(download)
            # Where it struck: inside a framed payload, or in the raw downlink of data mode (no framing to
            # catch a loss there: docs/reliability.md, "Known gaps").
            faults[-1]["in_data_mode"] = faults_in_data_mode() > in_data_mode_before
        else:
            count_download(download)
        size = rng.choice([1, 64, 512, 1024])
        echo = subprocess.run([f"{binaries}/preload/slm-run", sys.executable, "-c", udp_client,
                               str(udp.server_address[1]), str(size)], env=env, capture_output=True)
        if echo.returncode == 0:
            counts["udp_ok"] += 1
            counts["bytes_udp"] += size
        elif echo.returncode == 3:
            counts["udp_silent_loss"] += 1
        else:
            counts["udp_error"] += 1  # a timeout: UDP may lose datagrams, and the program saw it
            lines = echo.stderr.decode(errors="replace").strip().splitlines()
            count_error("udp", lines[-1][:120] if lines else f"exit {echo.returncode}")
        # A modem being brought up again refuses at once (ENETDOWN): a loop of programs would spin through
        # dozens of refusals in the seconds a recovery takes. Wait, as a program that retries would, and count
        # the wait instead of each refusal.
        if streak["now"] > 0 and state() != "serving":
            counts["waits_for_recovery"] += 1
            waited = time.monotonic()
            wait_until(lambda: state() == "serving", 120, 0.2)
            counts["seconds_waiting_for_recovery"] = round(
                counts["seconds_waiting_for_recovery"] + time.monotonic() - waited, 1)

    for wrong in wrong_downloads:
        if wrong["fault"] >= 0:
            wrong["fault_in_data_mode"] = faults[wrong["fault"]].get("in_data_mode")
    # Bytes wrong before an error, by where the fault struck: in data mode is the documented gap.
    counts["tcp_wrong_before_error_framed"] = sum(1 for w in wrong_downloads if not w.get("fault_in_data_mode"))
    alive = slmd.poll() is None
    by_kind = {}
    for f in faults:
        kind = by_kind.setdefault(f["fault"], {"injected": 0, "mid_transfer": 0, "recovered": 0, "served_after": 0,
                                               "max_seconds": 0})
        kind["injected"] += 1
        kind["served_after"] += bool(f.get("served_after"))
        kind["mid_transfer"] += bool(f.get("mid_transfer"))
        kind["recovered"] += bool(f["recovered"])
        kind["in_data_mode"] = kind.get("in_data_mode", 0) + bool(f.get("in_data_mode"))
        kind["max_seconds"] = max(kind["max_seconds"], f["seconds"])
    # How many armed payload faults struck inside the downlink (one armed at the end may not have).
    sim_stats = sim_counters()
    counts["payload_faults_struck"] = int(sim_stats.get("payload_faults", 0))
    counts["payload_bytes_dropped"] = int(sim_stats.get("payload_bytes_dropped", 0))
    summary = {"minutes": args.minutes, "profile": args.profile, "baud": args.baud, "slmd_alive": alive, **counts,
               "error_kinds": error_kinds, "wrong_downloads": wrong_downloads, "fault_summary": by_kind, "faults": faults, "rss_kib": [start_rss, rss_kib(slmd.pid) if alive else None],
               "descriptors": [start_fds, descriptors(slmd.pid) if alive else None], "work": work}
    print(json.dumps(summary, indent=2))
    if args.json:
        open(args.json, "w").write(json.dumps(summary, indent=2))
    slmd.terminate()
    sim.terminate()
    # Every fault but the last must have been followed by a download that worked (the last may have had no time).
    ok = alive and counts["tcp_silent_loss"] == 0 and counts["tcp_wrong_before_error_framed"] == 0 and counts["tcp_hang"] == 0 and counts["udp_silent_loss"] == 0 and all(
        f["recovered"] for f in faults) and all(f.get("served_after") for f in faults[:-1])
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
