#!/usr/bin/env python3
"""Before and after: another build of certadns-ddns against this checkout's, in the same run.

    git worktree add /tmp/before <commit>
    (cd /tmp/before && CARGO_TARGET_DIR=/tmp/before-target cargo build --release --bins)
    python3 benches/compare.py --before /tmp/before-target/release/certadns-ddns [--rounds 3]

Throughput on a shared 2-core machine drifts by tens of percent between rounds, so the two
binaries alternate within each round (the one to go first alternating too), and besides
requests per second the script reports what each request costs the server in CPU (from /proc),
the steadier figure: update-path cases (a) `nochg` with an API key and (b) `good`, every
request a commit, of benches/run.py, a lookup over the unix socket, and one through the relay
(CPU: the relay's and the server's). Printed as Markdown.
Uses the helpers of benches/run.py; everything on 127.0.0.1, stopped at the end.
"""

import argparse
import json
import random
import subprocess
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as R  # noqa: E402


def update_case(binary, directory, db, script, seconds, extra, flat=False):
    """(requests/s, server CPU µs per request) of one wrk run against `binary`."""
    R.FLAT_CONFIG = flat
    with R.ours(binary, directory, db, f'log-level = "warn"\n{extra}') as (http, _, _, proc):
        before = R.cpu_seconds(proc.pid)
        rate = R.wrk(http, seconds, script, directory, "compare")[0]
        return rate, (R.cpu_seconds(proc.pid) - before) / (rate * seconds) * 1e6


def lookup_case(binary, directory, db, names, flat=False):
    """(µs per lookup round trip, server CPU µs per lookup) over the unix socket."""
    R.FLAT_CONFIG = flat
    with R.ours(binary, directory, db, 'log-level = "warn"\n') as (_, _, sock, proc):
        R.unix_lookups(sock, names, 5000)  # warm up
        before = R.cpu_seconds(proc.pid)
        round_trip = R.unix_lookups(sock, names, 40_000)
        return round_trip, (R.cpu_seconds(proc.pid) - before) / 40_000 * 1e6


def relay_case(binary, directory, db, names, flat=False):
    """(µs per lookup round trip, relay + server CPU µs per lookup) through `binary relay`,
    the client on its stdin and stdout as pdns's pipe connector is."""
    R.FLAT_CONFIG = flat
    tcp = R.free_port()
    extra = f'log-level = "warn"\nlisteners.backend-tcp-listen = "127.0.0.1:{tcp}"\n'
    with R.ours(binary, directory, db, extra) as (_, _, _, proc):
        relay = subprocess.Popen([binary, "relay", "--connect", f"127.0.0.1:{tcp}"],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            rng = random.Random(2)
            def lookups(count):
                requests = [json.dumps({"method": "lookup", "parameters": {
                    "qname": f"{rng.choice(names)}.", "qtype": "ANY", "zone-id": 1}}).encode() + b"\n"
                    for _ in range(count)]
                started = time.perf_counter()
                for request in requests:
                    relay.stdin.write(request)
                    relay.stdin.flush()
                    relay.stdout.readline()
                return (time.perf_counter() - started) / count * 1e6
            relay.stdin.write(b'{"method":"initialize","parameters":{"timeout":"2000"}}\n')
            relay.stdin.flush()
            relay.stdout.readline()
            lookups(5000)  # warm up
            before = R.cpu_seconds(proc.pid) + R.cpu_seconds(relay.pid)
            round_trip = lookups(40_000)
            used = R.cpu_seconds(proc.pid) + R.cpu_seconds(relay.pid) - before
            return round_trip, used / 40_000 * 1e6
        finally:
            relay.stdin.close()
            relay.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True, help="the other build's certadns-ddns binary")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--before-flat", action="store_true",
                        help="the other build reads the flat config of before issue 14")
    parser.add_argument("--before-config", default="limits.abuse-detection = false",
                        help="config lines for the update cases of the other build (its keys "
                             "may differ: before issue 12, `abuse-min-interval-ms = 0`)")
    parser.add_argument("--after-config", default="limits.abuse-detection = false",
                        help="config lines for the update cases of this build")
    args = parser.parse_args()
    after, _, _ = R.build()
    binaries = {"before": args.before, "after": after}
    flat = {"before": args.before_flat, "after": False}
    extra = {"before": args.before_config.replace("\\n", "\n") + "\n",
             "after": args.after_config.replace("\\n", "\n") + "\n"}
    with tempfile.TemporaryDirectory(prefix="certadns-compare-") as tmp:
        directory = Path(tmp)
        # Each build gets a store made by itself: a newer schema is refused by an older build.
        stores = {}
        for label, binary in binaries.items():
            (directory / label).mkdir()
            R.STORES.clear()
            stores[label] = R.make_store(binary, directory / label, 100_000)
        key = stores["after"][1]
        names = [f"host{random.Random(7).randrange(100_000)}.{R.ZONE}" for _ in range(1000)]
        cases = {
            "(a) nochg, API key": dict(hosts=1000, mode="nochg", auth=f"Bearer {key}"),
            "(b) good, every request commits": dict(hosts=100_000, mode="good", auth=f"Bearer {key}"),
        }
        results = {}
        for round_number in range(args.rounds * 2):
            order = ["before", "after"] if round_number % 2 == 0 else ["after", "before"]
            for label in order:
                db, label_key = stores[label]
                for case, options in cases.items():
                    # Each store sees one run per round: the round is the run.
                    script = R.WRK_SCRIPT.format(zone=R.ZONE, run=round_number, **options)
                    results.setdefault((case, label), []).append(
                        update_case(binaries[label], directory, db, script.replace(key, label_key),
                                    args.seconds, extra[label], flat[label]))
                results.setdefault(("lookup over the unix socket", label), []).append(
                    lookup_case(binaries[label], directory, db, names, flat[label]))
                results.setdefault(("lookup through the relay", label), []).append(
                    relay_case(binaries[label], directory, db, names, flat[label]))
    print(f"<!-- python3 benches/compare.py --before {args.before} --rounds {args.rounds} --seconds {args.seconds}"
          f"{' --before-flat' if args.before_flat else ''}"
          f" --before-config '{args.before_config}' --after-config '{args.after_config}' -->\n")
    print("| case | before: rate | after: rate | before: server CPU µs | after: server CPU µs | CPU after / before |")
    print("|---|---|---|---|---|---|")
    for case in list(cases) + ["lookup over the unix socket", "lookup through the relay"]:
        before, after_ = results[(case, "before")], results[(case, "after")]
        cpu_before = statistics.median(cpu for _, cpu in before)
        cpu_after = statistics.median(cpu for _, cpu in after_)
        unit = " µs/call" if case.startswith("lookup") else " req/s"
        print(f"| {case} | {R.summary([r for r, _ in before], unit)} | {R.summary([r for r, _ in after_], unit)}"
              f" | {cpu_before:.1f} | {cpu_after:.1f} | {cpu_after / cpu_before:.3f} |")
    print("\nFor lookups the rate column is the round trip in µs (lower is better).")


if __name__ == "__main__":
    sys.exit(main())
