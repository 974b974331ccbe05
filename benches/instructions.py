#!/usr/bin/env python3
"""Instructions per update request, before and after: the repeatable figure behind a 5 % guard.

    python3 benches/instructions.py --before OTHER-BUILD/certadns-ddns [--requests 2000]

Throughput and CPU time on this shared 2-core machine move by several percent between runs
(BENCHMARKS.md shows the same build 5 % apart), too much to tell a 3 % change from noise.
callgrind counts instructions instead: the same binary, store and requests give the same count
whatever else the machine does. Each build serves, under `valgrind --tool=callgrind`, its own
store of 1,000 hosts (made by itself, as benches/run.py makes them); one keep-alive client sends
case (a) of the update benchmarks (`nochg` with an API key) and case (c) (`nochg` with the
account password, remembered after the first check) sequentially. Each case runs twice, with
N and 3N requests; the difference of the two totals over 2N is what one request costs, start-up
and shutdown cancelled out. Printed as Markdown. Needs valgrind.
"""

import argparse
import base64
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as R  # noqa: E402


def lookup_instructions(binary, directory, db, requests, label, fd_store):
    """Instructions the server ran to start, answer `requests` lookups over one unix-socket
    connection (one in flight, as pdns sends them) and stop; with `fd_store`, under a stand-in
    for systemd's fd store (benches/run.py's FdStore), so the connection is stored and its
    thread waits for the next request or the handover."""
    http_port, backend = R.free_port(), R.free_port()
    tag = f"{label}-lookups-{requests}-{int(fd_store)}"
    sock = directory / f"{tag}.sock"
    config = directory / f"{tag}.toml"
    config.write_text(f'store.database = "{db}"\nlisteners.listen = "127.0.0.1:{http_port}"\n'
                      f'listeners.backend-listen = "127.0.0.1:{backend}"\n'
                      f'listeners.backend-socket = "{sock}"\nlog-level = "warn"\n')
    out = directory / f"{tag}.callgrind"
    env = dict(os.environ)
    if fd_store:
        (directory / tag).mkdir()
        store = R.FdStore(directory / tag)
        env.update(NOTIFY_SOCKET=str(store.path), FDSTORE="1024")
    args = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
            binary, "--config", str(config), "serve"]
    with open(directory / f"{tag}.log", "w") as sink:
        proc = subprocess.Popen(args, stdout=sink, stderr=subprocess.STDOUT, env=env)
    deadline = time.time() + 300
    while not sock.exists():
        if proc.poll() is not None or time.time() > deadline:
            raise RuntimeError("did not start")
        time.sleep(0.1)
    conn = socket.socket(socket.AF_UNIX)
    conn.connect(str(sock))
    reader = conn.makefile("rb")
    for n in range(requests):
        request = {"method": "lookup", "parameters": {
            "qname": f"host{n % 1000}.{R.ZONE}.", "qtype": "A", "zone-id": -1}}
        conn.sendall(json.dumps(request).encode() + b"\n")
        assert json.loads(reader.readline())["result"]
    conn.close()
    proc.terminate()
    proc.wait(120)
    if fd_store:
        store.stop = True
    for line in out.read_text().splitlines():
        if line.startswith("totals:") or line.startswith("summary:"):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {out}")


def total_instructions(binary, directory, db, auth, requests, label):
    """Instructions the server ran (all threads) to start, answer `requests` requests and stop."""
    http_port, backend = R.free_port(), R.free_port()
    sock = directory / f"{label}-{requests}.sock"
    config = directory / f"{label}-{requests}.toml"
    config.write_text(f'store.database = "{db}"\nlisteners.listen = "127.0.0.1:{http_port}"\n'
                      f'listeners.backend-listen = "127.0.0.1:{backend}"\n'
                      f'listeners.backend-socket = "{sock}"\nlog-level = "warn"\n'
                      'limits.abuse-detection = false\n')
    out = directory / f"{label}-{requests}.callgrind"
    log = directory / f"{label}-{requests}.log"
    args = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
            binary, "--config", str(config), "serve"]
    with open(log, "w") as sink:
        proc = subprocess.Popen(args, stdout=sink, stderr=subprocess.STDOUT)
    deadline = time.time() + 300
    while not sock.exists():
        if proc.poll() is not None or time.time() > deadline:
            raise RuntimeError(f"did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)
    conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=120)
    for n in range(requests):
        host = n % 1000
        conn.request("GET", f"/nic/update?hostname=host{host}.{R.ZONE}&myip={R.ip_of(host)}",
                     headers={"Authorization": auth})
        answer = conn.getresponse().read()
        assert answer.startswith(b"nochg"), answer
    conn.close()
    proc.terminate()
    proc.wait(120)
    for line in out.read_text().splitlines():
        if line.startswith("totals:") or line.startswith("summary:"):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {out}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True, help="the other build's certadns-ddns binary")
    parser.add_argument("--requests", type=int, default=2000, help="N (the runs send N and 3N)")
    parser.add_argument("--no-fd-store-before", action="store_true",
                        help="the --before build predates the fd store (issue 26)")
    args = parser.parse_args()
    after = R.build()[0]
    binaries = {"before": args.before, "after": after}
    results = {}
    with tempfile.TemporaryDirectory(prefix="certadns-instructions-") as tmp:
        directory = Path(tmp)
        for label, binary in binaries.items():
            (directory / label).mkdir()
            R.STORES.clear()
            db, key = R.make_store(binary, directory / label, 1000)
            password = "Basic " + base64.b64encode(b"bench:bench password").decode()
            for case, auth in [("(a) nochg, API key", f"Bearer {key}"),
                               ("(c) nochg, password", password)]:
                small = total_instructions(binary, directory / label, db, auth, args.requests, label)
                large = total_instructions(binary, directory / label, db, auth, 3 * args.requests, label)
                results[(case, label)] = (large - small) / (2 * args.requests)
            for case, fd_store in [("(d) lookup, unix socket", False),
                                   ("(e) lookup, unix socket, fd store on", True)]:
                # Builds before the fd store (issue 26) had no such mode: with one of those as
                # --before, (e)'s "before" column runs without the store (`--no-fd-store-before`).
                stored = fd_store and (label == "after" or not args.no_fd_store_before)
                small = lookup_instructions(binary, directory / label, db, args.requests, label, stored)
                large = lookup_instructions(binary, directory / label, db, 3 * args.requests, label, stored)
                results[(case, label)] = (large - small) / (2 * args.requests)
    print(f"<!-- python3 benches/instructions.py --before {args.before} --requests {args.requests} -->\n")
    print("| case | before: instructions per request | after | after / before |")
    print("|---|---|---|---|")
    for case in ["(a) nochg, API key", "(c) nochg, password", "(d) lookup, unix socket",
                 "(e) lookup, unix socket, fd store on"]:
        before, after_ = results[(case, "before")], results[(case, "after")]
        print(f"| {case} | {before:,.0f} | {after_:,.0f} | {after_ / before:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
