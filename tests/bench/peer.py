#!/usr/bin/env python3
# Owns: both ends of one benchmark transfer. The server side runs as a plain local program (the "internet"
# that slmsim maps 203.0.113.0/24 to); the client side runs unmodified under slm-run, so its socket goes
# through the preload shim, slmd and the simulated modem. Each prints one JSON line; run_bench.py does the maths.
#
# Times are time.monotonic() (CLOCK_MONOTONIC, shared by every process on the host), so the driver can subtract
# a client's start from the server's last byte.
import argparse
import hashlib
import json
import socket
import sys
import time


def payload(size, seed):
    # Deterministic random bytes, so the sha256 check needs no file between the two ends.
    import random
    return random.Random(seed).randbytes(size)


def serve(args):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    print(json.dumps({"port": listener.getsockname()[1]}), flush=True)
    conn, _ = listener.accept()
    result = {}
    if args.mode == "download":
        data = payload(args.bytes, args.seed)
        conn.sendall(data)
        result["sent"] = len(data)
        # FIN: the firmware reports it as the end of the connection, after every byte has been delivered.
        conn.shutdown(socket.SHUT_WR)
        while conn.recv(65536):
            pass
    elif args.mode == "upload":
        digest = hashlib.sha256()
        got = 0
        last = None
        while got < args.bytes:
            chunk = conn.recv(65536)
            if not chunk:
                break
            last = time.monotonic()
            got += len(chunk)
            digest.update(chunk)
        result.update(received=got, last=last, sha256=digest.hexdigest(),
                      ok=digest.hexdigest() == hashlib.sha256(payload(args.bytes, args.seed)).hexdigest())
        # No half-close upload on SLM: closing here is what ends the client's connection.
    elif args.mode == "echo":
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            conn.sendall(chunk)
    conn.close()
    print(json.dumps(result), flush=True)


def recv_exactly(sock, n):
    parts = []
    while n > 0:
        chunk = sock.recv(min(n, 65536))
        if not chunk:
            break
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)


def client(args):
    result = {}
    start = time.monotonic()
    sock = socket.create_connection((args.host, args.port))
    result["connected"] = time.monotonic()
    result["start"] = start
    if args.mode == "download":
        digest = hashlib.sha256()
        got = 0
        saved = open(args.save, "wb") if args.save else None  # for finding where a short transfer lost bytes
        while got < args.bytes:
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += len(chunk)
            digest.update(chunk)
            if saved:
                saved.write(chunk)
        if saved:
            saved.close()
        result.update(end=time.monotonic(), received=got,
                      ok=digest.hexdigest() == hashlib.sha256(payload(args.bytes, args.seed)).hexdigest())
    elif args.mode == "upload":
        sock.sendall(payload(args.bytes, args.seed))
        result["written"] = time.monotonic()
        # Hold the connection until the server has everything and closes (EOF or a reset both mean "done").
        try:
            while sock.recv(65536):
                pass
        except OSError:
            pass
    elif args.mode == "echo":
        # Printable, no quotes, no '+': a typical small request that slmd may send as a quoted AT#XTCPSEND.
        message = (b"GET /status?id=0123456789abcdefghijklmnopqrstuvwxyz HTTP/1.0 x-req:" * 2)[:args.size]
        rtts = []
        for _ in range(args.count):
            # Think time between requests, untimed: slmsim's pacer counts a line idle for < 50 ms as owed
            # capacity and would deliver the next request in one burst, faster than the wire could.
            time.sleep(args.gap_ms / 1000)
            t0 = time.monotonic()
            sock.sendall(message)
            echoed = recv_exactly(sock, len(message))
            rtts.append(time.monotonic() - t0)
            if echoed != message:
                result["ok"] = False
                break
        else:
            result["ok"] = True
        result["rtts"] = rtts
    sock.close()
    print(json.dumps(result), flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["serve", "client"])
    parser.add_argument("mode", choices=["download", "upload", "echo"])
    parser.add_argument("--host", default="203.0.113.10")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--bytes", type=int, default=1 << 20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--gap-ms", type=float, default=0, help="echo: idle time before each request")
    parser.add_argument("--save", help="download: also write the received bytes here")
    args = parser.parse_args()
    serve(args) if args.role == "serve" else client(args)


if __name__ == "__main__":
    sys.exit(main())
