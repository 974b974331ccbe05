#!/usr/bin/env python3
"""The certadns-ddns benchmark suite: every table in BENCHMARKS.md, by one command.

    python3 benches/run.py [--seconds 10] [--runs 3]
                           [--sections dns,dnssec,updates,http,scale,freshness,outside,audit,import,restart,transfers] [--binary PATH]

Needs (Debian): pdns-server pdns-backend-remote pdns-backend-sqlite3 dnsutils dnsperf wrk (knot
for the transfers section); the
audit section fetches a GeoLite2 database with tests/fetch-geolite2.sh (pip, PyPI).
Everything binds to 127.0.0.1 on free ports, under a temporary directory, and is stopped at
the end. Each figure is the median of --runs runs, with min and max; every ratio compares
setups measured in the same run of this script. Results are printed as Markdown.
"""

import argparse
import fcntl
import json
import os
import random
import re
import socket
import sqlite3
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import http.client
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ZONE = "dyn.example"
API_KEY_PDNS = "bench-pdns-api-key"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build():
    """Builds the release binary and the bench programs; returns their paths."""
    out = subprocess.run(
        ["cargo", "build", "--release", "--bins", "--benches", "--message-format=json"],
        cwd=ROOT, check=True, capture_output=True, text=True).stdout
    paths = {}
    for line in out.splitlines():
        message = json.loads(line)
        if message.get("reason") == "compiler-artifact" and message.get("executable"):
            target = message["target"]
            # The real binary, not main.rs built as a test harness for --benches.
            if (target["kind"] == ["bin"] and not message["profile"]["test"]) or target["name"] in ("ceiling", "floor", "lookups", "dnsupdate"):
                paths[target["name"]] = message["executable"]
    global LOOKUPS, DNSUPDATE
    LOOKUPS = paths["lookups"]
    DNSUPDATE = paths["dnsupdate"]
    return paths["certadns-ddns"], paths["ceiling"], paths["floor"]


# benches/lookups.rs and benches/dnsupdate.rs, set by build().
LOOKUPS = None
DNSUPDATE = None


def ip_of(host):
    return f"10.{host >> 16 & 255}.{host >> 8 & 255}.{host & 255}"


STORES = {}


def make_store(binary, directory, hosts):
    """Our store with `hosts` DDNS domains host0..host{N-1} (plus plan), and an API key; made
    once per size and run."""
    if hosts in STORES:
        return STORES[hosts]
    db = directory / f"store-{hosts}.db"
    env = {**os.environ, "CERTADNS_DB": str(db)}
    run = lambda *args, stdin=None: subprocess.run(
        [binary, *args], env=env, input=stdin, check=True, capture_output=True, text=True).stdout
    # `init` makes the database (builds from before it had `init` make it on any command).
    subprocess.run([binary, "init"], env=env, capture_output=True)
    run("zone", "add", ZONE, "--ns", f"ns1.{ZONE}", "--minimum", "60")
    run("user", "add", "bench", "--email", "bench@example.net", "--plan", "plus",
        "--password-stdin", stdin="bench password")
    key = run("key", "create", "bench").strip()
    conn = sqlite3.connect(db)
    now = "2026-01-01T00:00:00.000Z"
    conn.executemany(
        "INSERT INTO domains (fqdn, user_id, zone_id, record_type, ip, created_at, updated_at)"
        " VALUES (?, 1, 1, 'A', ?, ?, ?)",
        ((f"host{h}.{ZONE}", ip_of(h), now, now) for h in range(hosts)))
    conn.commit()
    # The served-change log of that bulk insert (schema migration 3): the service would load
    # everything at start and then forget the log 5,000 rows a second; the benches measure the
    # steady state after that.
    if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'served_changes'").fetchone():
        conn.execute("DELETE FROM served_changes")
        conn.commit()
    conn.close()
    STORES[hosts] = (db, key)
    return db, key


def make_gsqlite3(directory, hosts):
    """pdns's own gsqlite3 database with the same records."""
    db = directory / f"gsqlite3-{hosts}.db"
    conn = sqlite3.connect(db)
    conn.executescript(Path("/usr/share/doc/pdns-backend-sqlite3/schema.sqlite3.sql").read_text())
    conn.execute("INSERT INTO domains (id, name, type) VALUES (1, ?, 'NATIVE')", (ZONE,))
    rows = [(ZONE, "SOA", f"ns1.{ZONE} hostmaster.{ZONE} 2026010101 10800 3600 604800 60", 3600),
            (ZONE, "NS", f"ns1.{ZONE}", 3600)]
    rows += [(f"host{h}.{ZONE}", "A", ip_of(h), 60) for h in range(hosts)]
    conn.executemany(
        "INSERT INTO records (domain_id, name, type, content, ttl, prio, disabled, auth)"
        " VALUES (1, ?, ?, ?, ?, 0, 0, 1)", rows)
    conn.commit()
    conn.close()
    return db


@contextmanager
def process(args, log, env=None, ready=None, timeout=60):
    """Runs a server; `ready()` must turn true before the body runs. Stops it afterwards."""
    with open(log, "w") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.time() + timeout
        while ready and not ready():
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"{args[0]} did not start:\n{Path(log).read_text()[-3000:]}")
            time.sleep(0.05)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def dig_status(port, name, qtype="SOA"):
    out = subprocess.run(["dig", "@127.0.0.1", "-p", str(port), "+norec", "+time=1", "+tries=1",
                          name, qtype], capture_output=True, text=True).stdout
    match = re.search(r"status: (\w+)", out)
    return match.group(1) if match else None


def dig_a(port, name):
    return subprocess.run(["dig", "@127.0.0.1", "-p", str(port), "+norec", "+short", "+time=1",
                           "+tries=1", name, "A"], capture_output=True, text=True).stdout.strip()


def pdns_config(directory, name, launch_lines, caches, base="pdns.unix.conf"):
    """A pdns.conf from pdns-conf/`base` as shipped (the unix one for unix sockets and
    gsqlite3, the HTTP one for HTTP), with the backend replaced and the caches off or at the
    shipped defaults."""
    text = (ROOT / "pdns-conf" / base).read_text()
    text = re.sub(r"^(launch|remote-connection-string)=.*$", "", text, flags=re.M)
    if "launch=remote" not in launch_lines:
        # A setting of the remote backend: pdns refuses it when that backend is not loaded.
        text = re.sub(r"^remote-dnssec=.*$", "", text, flags=re.M)
    text += "\n" + "\n".join(launch_lines) + "\n"
    if caches == "off":
        text += "cache-ttl=0\nquery-cache-ttl=0\nnegquery-cache-ttl=0\n"
    config_dir = directory / f"pdns-{name}-{caches}"
    config_dir.mkdir(exist_ok=True)
    (config_dir / "pdns.conf").write_text(text)
    return config_dir


@contextmanager
def pdns(config_dir, port, api_port):
    args = ["pdns_server", f"--config-dir={config_dir}", f"--socket-dir={config_dir}",
            "--local-address=127.0.0.1", f"--local-port={port}", "--only-notify=127.0.0.0/8",
            "--security-poll-suffix=", f"--webserver-port={api_port}", f"--api-key={API_KEY_PDNS}",
            "--webserver-address=127.0.0.1", "--webserver-allow-from=127.0.0.1,::1",
            "--daemon=no", "--guardian=no", "--disable-syslog", "--write-pid=no"]
    with process(args, config_dir / "pdns.log", ready=lambda: dig_status(port, ZONE) == "NOERROR") as proc:
        yield proc


# Builds before the config had sections (issue 14) read flat keys: set by --flat-config.
FLAT_CONFIG = False


@contextmanager
def ours(binary, directory, db, extra=""):
    """certadns-ddns serve on free ports with a unix socket; yields (http port, backend port, socket)."""
    http, backend = free_port(), free_port()
    sock = directory / f"ours-{http}.sock"
    config = directory / f"ours-{http}.toml"
    if FLAT_CONFIG:
        extra = re.sub(r"(?m)^(store|listeners|updates|limits|pdns)\.", "", extra).replace("[[pdns.api]]", "[[pdns]]")
        config.write_text(f'database = "{db}"\nlisten = "127.0.0.1:{http}"\n'
                          f'backend-listen = "127.0.0.1:{backend}"\nbackend-socket = "{sock}"\n{extra}')
    else:
        config.write_text(f'store.database = "{db}"\nlisteners.listen = "127.0.0.1:{http}"\n'
                          f'listeners.backend-listen = "127.0.0.1:{backend}"\n'
                          f'listeners.backend-socket = "{sock}"\n{extra}')
    log = directory / f"ours-{http}.log"
    with process([binary, "--config", str(config), "serve"], log,
                 ready=lambda: sock.exists()) as proc:
        yield http, backend, sock, proc


def summary(values, unit=""):
    values = sorted(values)
    return f"{statistics.median(values):,.0f}{unit} ({values[0]:,.0f}–{values[-1]:,.0f})"


def median(values):
    return statistics.median(values)


def dnsperf(port, queries, seconds):
    out = subprocess.run(["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(queries),
                          "-c", "8", "-l", str(seconds), "-q", "1000"],
                         capture_output=True, text=True).stdout
    qps = float(re.search(r"Queries per second:\s+([\d.]+)", out).group(1))
    latency = float(re.search(r"Average Latency \(s\):\s+([\d.]+)", out).group(1)) * 1e6
    return qps, latency


def query_files(directory, hosts):
    hot = directory / "hot.txt"
    hot.write_text(f"host1.{ZONE} A\n")
    rand = directory / "random.txt"
    rng = random.Random(1)
    rand.write_text("".join(f"host{rng.randrange(hosts)}.{ZONE} A\n" for _ in range(1_000_000)))
    nx = directory / "nx.txt"
    nx.write_text("".join(f"nx{i}.{ZONE} A\n" for i in range(1_000_000)))
    return {"hot": hot, "random": rand, "NX": nx}


def section_dns(binary, ceiling, directory, seconds, runs):
    hosts = 100_000
    db, _ = make_store(binary, directory, hosts)
    gdb = make_gsqlite3(directory, hosts)
    files = query_files(directory, hosts)
    lines = []
    for caches in ("off", "default"):
        results = {}  # (setup, workload) -> [qps]
        latencies = {}
        setups = ["gsqlite3", "ceiling (unix)", "ours (unix)", "ours (relay)", "ours (HTTP post_json)"]
        # Rounds: every setup once per round, so that drift over the minutes of a run (CPU
        # frequency, neighbours) falls on all setups alike, not on whichever ran last.
        for setup in [s for _ in range(runs) for s in setups]:
            port, api = free_port(), free_port()
            if setup == "gsqlite3":
                launch = ["launch=gsqlite3", f"gsqlite3-database={gdb}"]
                backend = None
            elif setup.startswith("ceiling"):
                sock = directory / f"ceiling-{port}.sock"
                launch = ["launch=remote", f"remote-connection-string=unix:path={sock},timeout=2000"]
                backend = ([ceiling, "--hosts", str(hosts), "--unix", str(sock)], sock)
            else:
                launch = None
                backend = "ours"
            tcp = free_port()
            with maybe_backend(binary, directory, db, backend, tcp) as endpoints:
                if setup == "ours (unix)":
                    launch = ["launch=remote", f"remote-connection-string=unix:path={endpoints[2]},timeout=2000"]
                elif setup == "ours (relay)":
                    launch = ["launch=remote", f"remote-connection-string=pipe:command={binary} relay "
                              f"--connect 127.0.0.1:{tcp} --wait-ms 1500,timeout=0"]
                elif setup == "ours (HTTP post_json)":
                    launch = ["launch=remote", "remote-connection-string=http:url=http://127.0.0.1:"
                              f"{endpoints[1]}/dns,post=1,post_json=1,timeout=2000"]
                base = "pdns.http.conf" if "HTTP" in setup else "pdns.relay.conf" if "relay" in setup \
                    else "pdns.unix.conf"
                config_dir = pdns_config(directory, re.sub(r"\W", "", setup), launch, caches, base)
                with pdns(config_dir, port, api):
                    for workload, queries in files.items():
                        qps, latency = dnsperf(port, queries, seconds)
                        results.setdefault((setup, workload), []).append(qps)
                        latencies.setdefault((setup, workload), []).append(latency)
        title = "caches off (cache-ttl=0 query-cache-ttl=0 negquery-cache-ttl=0)" if caches == "off" \
            else "caches at pdns's defaults (as pdns-conf/ ships)"
        lines += [f"### pdns {title}", "",
                  "| workload | " + " | ".join(f"{s} QPS" for s in setups)
                  + " | ours unix / gsqlite3 | ours unix / ceiling | ours relay / ours unix | ours HTTP / ours unix |",
                  "|---|" + "---|" * (len(setups) + 4)]
        for workload in files:
            cells = [summary(results[(s, workload)]) for s in setups]
            m = {s: median(results[(s, workload)]) for s in setups}
            lines.append(f"| {workload} | " + " | ".join(cells)
                         + f" | {m['ours (unix)'] / m['gsqlite3']:.2f} | {m['ours (unix)'] / m['ceiling (unix)']:.2f}"
                         + f" | {m['ours (relay)'] / m['ours (unix)']:.2f}"
                         + f" | {m['ours (HTTP post_json)'] / m['ours (unix)']:.2f} |")
        lines += ["", "Average latency (µs, median of runs): " + "; ".join(
            f"{s} {workload} {median(latencies[(s, workload)]):,.0f}" for s in setups for workload in files), ""]
    return lines


def dnsperf_do(port, queries, seconds):
    """dnsperf with the DO bit (-D): the answers pdns signs."""
    out = subprocess.run(["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(queries), "-D",
                          "-c", "8", "-l", str(seconds), "-q", "1000"],
                         capture_output=True, text=True).stdout
    return float(re.search(r"Queries per second:\s+([\d.]+)", out).group(1))


def section_dnssec(binary, directory, seconds, runs):
    """Signed against unsigned, ours and pdns's own gsqlite3, caches off and at the defaults;
    every query with the DO bit. Both signed zones: one ECDSA P-256 key, NSEC3 narrow."""
    hosts = 100_000
    db, _ = make_store(binary, directory, hosts)
    signed_db = directory / "store-signed.db"
    shutil.copy(db, signed_db)
    subprocess.run([binary, "zone", "secure", ZONE], env={**os.environ, "CERTADNS_DB": str(signed_db)},
                   check=True, capture_output=True)
    gdb = make_gsqlite3(directory, hosts)
    gsigned = directory / "gsqlite3-signed.db"
    shutil.copy(gdb, gsigned)
    util = directory / "pdnsutil-gsqlite3"
    util.mkdir(exist_ok=True)
    (util / "pdns.conf").write_text(f"launch=gsqlite3\ngsqlite3-database={gsigned}\ngsqlite3-dnssec=yes\n")
    for command in (["secure-zone", ZONE], ["set-nsec3", ZONE, "1 0 0 -", "narrow"], ["rectify-zone", ZONE]):
        subprocess.run(["pdnsutil", f"--config-dir={util}", *command], check=True, capture_output=True)
    files = query_files(directory, hosts)
    workloads = {"random": files["random"], "NX": files["NX"]}
    setups = ["gsqlite3", "gsqlite3 signed", "ours", "ours signed"]
    lines = []
    for caches in ("off", "default"):
        results = {}
        for setup in [s for _ in range(runs) for s in setups]:
            port, api = free_port(), free_port()
            if setup.startswith("gsqlite3"):
                path = gsigned if "signed" in setup else gdb
                launch = ["launch=gsqlite3", f"gsqlite3-database={path}", "gsqlite3-dnssec=yes"]
                backend = None
                store = db
            else:
                launch = None
                backend = "ours"
                store = signed_db if "signed" in setup else db
            with maybe_backend(binary, directory, store, backend, free_port()) as endpoints:
                if backend:
                    launch = ["launch=remote", f"remote-connection-string=unix:path={endpoints[2]},timeout=2000"]
                config_dir = pdns_config(directory, "dnssec" + re.sub(r"\W", "", setup), launch, caches)
                with pdns(config_dir, port, api):
                    for workload, queries in workloads.items():
                        results.setdefault((setup, workload), []).append(dnsperf_do(port, queries, seconds))
        title = "caches off" if caches == "off" else "caches at pdns's defaults (as pdns-conf/ ships)"
        lines += [f"### {title}", "",
                  "| workload (DO bit) | " + " | ".join(f"{s} QPS" for s in setups)
                  + " | ours signed / gsqlite3 signed | ours signed / ours unsigned |",
                  "|---|" + "---|" * (len(setups) + 2)]
        for workload in workloads:
            m = {s: median(results[(s, workload)]) for s in setups}
            lines.append(f"| {workload} | " + " | ".join(summary(results[(s, workload)]) for s in setups)
                         + f" | {m['ours signed'] / m['gsqlite3 signed']:.2f} | {m['ours signed'] / m['ours']:.2f} |")
        lines.append("")
    return lines


@contextmanager
def maybe_backend(binary, directory, db, backend, tcp):
    if backend is None:
        yield None
    elif backend == "ours":
        with ours(binary, directory, db, f'log-level = "warn"\nlisteners.backend-tcp-listen = "127.0.0.1:{tcp}"\n') as endpoints:
            yield endpoints
    else:
        args, sock = backend
        with process(args, directory / f"{sock.name}.log", ready=lambda: sock.exists()):
            yield None


# {run}: the number of this run against the same store. `good` must change the host's address
# on every request, also in a later run, whose counter starts again at 0: the second octet
# moves with the visit of the host in this run and with the run (before 30 November 2026 it
# did not, and rounds after the first were 40-60 % `nochg`).
WRK_SCRIPT = """
local hosts = {hosts}
local mode = "{mode}"
local counter = 0
wrk.headers["Authorization"] = "{auth}"
request = function()
  counter = counter + 1
  local h = counter % hosts
  local ip
  if mode == "good" then
    local visit = math.floor(counter / hosts)
    ip = string.format("172.%d.%d.%d", 16 + (4 * {run} + visit) % 16, math.floor(h / 250) % 250, h % 250 + 1)
  else
    ip = string.format("10.%d.%d.%d", math.floor(h / 65536) % 256, math.floor(h / 256) % 256, h % 256)
  end
  return wrk.format("GET", "/nic/update?hostname=host" .. h .. ".{zone}&myip=" .. ip)
end
"""


def wrk(port, seconds, script=None, directory=None, name="floor"):
    args = ["wrk", "-t1", "-c64", f"-d{seconds}s", "--latency"]
    if script:
        path = directory / f"{name}.lua"
        path.write_text(script)
        args += ["-s", str(path)]
    out = subprocess.run(args + [f"http://127.0.0.1:{port}/nic/update?hostname=host1.{ZONE}&myip=10.0.0.1"],
                         capture_output=True, text=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    def percentile(p):
        value, unit = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 1, "ms": 1e3, "s": 1e6}[unit]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return rate, percentile(50), percentile(99), int(non2xx.group(1)) if non2xx else 0


def section_updates(binary, floor, directory, seconds, runs):
    import base64
    hosts = 100_000
    db, key = make_store(binary, directory, hosts)
    basic = "Basic " + base64.b64encode(b"bench:bench password").decode()
    wrong = "Basic " + base64.b64encode(b"bench:wrong password").decode()
    fport = free_port()
    rows = {}
    with process([floor, "--listen", f"127.0.0.1:{fport}"], directory / "floor.log",
                 ready=lambda: connectable(fport)):
        # Abuse detection is off (every host here is updated far above its rate), but for (a'):
        # the guard's cost with the hosts above the rate and never flagged. (a') and (b') run on
        # copies of the store: a server seeing another's commits would reload its index.
        copies = []
        for name in ("guarded", "normal"):
            copy = directory / f"store-{hosts}-{name}.db"
            shutil.copyfile(db, copy)
            copies.append(copy)
        with ours(binary, directory, db, "limits.abuse-detection = false\n") as (http, _, _, _), \
                ours(binary, directory, copies[0], "limits.abuse-flag-after-secs = 100000000\n") as (guarded, _, _, _), \
                ours(binary, directory, copies[1], 'limits.abuse-detection = false\nstore.synchronous = "normal"\n') as (normal, _, _, _):
            cases = {
                "floor (bare hyper, fixed answer)": (fport, None),
                "(a) nochg, API key": (http, dict(hosts=1000, mode="nochg", auth=f"Bearer {key}")),
                "(a') = (a) with abuse detection on": (guarded, dict(hosts=1000, mode="nochg", auth=f"Bearer {key}")),
                "(b) good, API key, every request commits": (http, dict(hosts=hosts, mode="good", auth=f"Bearer {key}")),
                "(b') = (b) with synchronous = \"normal\"": (normal, dict(hosts=hosts, mode="good", auth=f"Bearer {key}")),
                "(c) nochg, same user's password": (http, dict(hosts=1000, mode="nochg", auth=basic)),
            }
            for run in range(runs):  # rounds, as in section_dns
                for name, (port, options) in cases.items():
                    script = options and WRK_SCRIPT.format(run=run, zone=ZONE, **options)
                    rows.setdefault(name, []).append(wrk(port, seconds, script, directory, name[:4].strip("() ")))
            # (d): a flood of wrong passwords, with (a) measured during it.
            flood_script = WRK_SCRIPT.format(hosts=1000, mode="nochg", auth=wrong, zone=ZONE, run=0)
            nochg_script = WRK_SCRIPT.format(hosts=1000, mode="nochg", auth=f"Bearer {key}", zone=ZONE, run=0)
            for _ in range(runs):
                (directory / "d.lua").write_text(flood_script)
                flood = subprocess.Popen(["wrk", "-t1", "-c64", f"-d{seconds + 2}s", "-s", str(directory / "d.lua"),
                                          f"http://127.0.0.1:{http}/nic/update"],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(1)
                rows.setdefault("(a) during (d), a wrong-password flood", []).append(
                    wrk(http, seconds, nochg_script, directory, "ad"))
                flood.wait()
    floor_rate = median([r[0] for r in rows["floor (bare hyper, fixed answer)"]])
    lines = ["| case | requests/s | p50 (µs) | p99 (µs) | ratio to floor | non-2xx |", "|---|---|---|---|---|---|"]
    for name, results in rows.items():
        rate = median([r[0] for r in results])
        lines.append(f"| {name} | {summary([r[0] for r in results])} | {summary([r[1] for r in results])}"
                     f" | {summary([r[2] for r in results])} | {rate / floor_rate:.2f} | {max(r[3] for r in results)} |")
    return lines + [""]


def dnsupdate_load(port, key, secret, hosts, seconds, run):
    """benches/dnsupdate.rs against 127.0.0.1:`port`: (NOERROR updates/s, answers by RCODE)."""
    out = subprocess.run([DNSUPDATE, "--server", f"127.0.0.1:{port}", "--zone", ZONE, "--key", key,
                          "--secret", secret, "--hosts", str(hosts), "--seconds", str(seconds),
                          "--connections", "64", "--run", str(run)],
                         capture_output=True, text=True, check=True).stdout
    result = json.loads(out)
    assert result["connections_cut"] == 0, result
    return result["updates_per_second"], result["rcodes"]


def section_rfc2136(binary, directory, seconds, runs):
    """RFC 2136 updates with TSIG against `/nic/update` `good` (case (b)) on the same server
    and store, and pdns's own `dnsupdate=yes` on gsqlite3 with the same names."""
    import base64
    import secrets
    hosts = 100_000
    db, key = make_store(binary, directory, hosts)
    env = {**os.environ, "CERTADNS_DB": str(db)}
    block = subprocess.run([binary, "tsig", "create", "bench", "--name", "bench-tsig"], env=env,
                           check=True, capture_output=True, text=True).stdout
    secret = re.search(r'secret "([^"]+)"', block).group(1)
    gdb = make_gsqlite3(directory, hosts)
    pdns_secret = base64.b64encode(secrets.token_bytes(32)).decode()
    conn = sqlite3.connect(gdb)
    conn.execute("INSERT INTO tsigkeys (name, algorithm, secret) VALUES ('bench-tsig', 'hmac-sha256', ?)",
                 (pdns_secret,))
    conn.execute("INSERT INTO domainmetadata (domain_id, kind, content) VALUES (1, 'TSIG-ALLOW-DNSUPDATE', 'bench-tsig')")
    conn.commit()
    conn.close()
    dns = free_port()
    # The pace of the listener off, as abuse detection is for the HTTP cases: one client sends
    # everything here.
    extra = (f'log-level = "warn"\nlimits.abuse-detection = false\nlisteners.update-dns-listen = "127.0.0.1:{dns}"\n'
             'listeners.update-dns-pace = 0\n')
    rows = {}
    pdns_port, api = free_port(), free_port()
    config = pdns_config(directory, "dnsupdate", [f"launch=gsqlite3", f"gsqlite3-database={gdb}", "dnsupdate=yes",
                                                  "allow-dnsupdate-from=127.0.0.0/8"], "default")
    with ours(binary, directory, db, extra) as (http, _, _, _), pdns(config, pdns_port, api):
        for run in range(runs):
            script = WRK_SCRIPT.format(hosts=hosts, mode="good", auth=f"Bearer {key}", zone=ZONE, run=2 * run)
            rows.setdefault("/nic/update `good` (case (b)), wrk -c64", []).append(
                (wrk(http, seconds, script, directory, "b")[0], {}))
            rows.setdefault("RFC 2136 + TSIG, ours, 64 TCP connections", []).append(
                dnsupdate_load(dns, "bench-tsig", secret, hosts, seconds, 2 * run + 1))
            rows.setdefault("RFC 2136 + TSIG, pdns dnsupdate=yes on gsqlite3, 64 TCP connections", []).append(
                dnsupdate_load(pdns_port, "bench-tsig", pdns_secret, hosts, seconds, run))
    base = median([rate for rate, _ in rows["/nic/update `good` (case (b)), wrk -c64"]])
    lines = ["| case | updates/s | against `good` | answers by RCODE (last run) |", "|---|---|---|---|"]
    for name, results in rows.items():
        rate = median([r for r, _ in results])
        lines.append(f"| {name} | {summary([r for r, _ in results])} | {rate / base:.2f} | {results[-1][1] or '-'} |")
    return lines + ["", "Every update changes the host's address (a new one each time); both of ours commit each "
                    "update with its audit row before answering, on the same server and store of 100,000 names."
                    " RCODE 0 is NOERROR.", ""]


def unix_lookups(sock, names, count):
    """Sends `count` lookups of random `names` over one unix connection; µs per call (client
    included: compare with the ceiling's figure from the same client)."""
    rng = random.Random(2)
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(sock))
        f = s.makefile("rwb")
        f.write(b'{"method":"initialize","parameters":{}}\n')
        f.flush()
        f.readline()
        requests = [json.dumps({"method": "lookup", "parameters": {
            "qname": f"{rng.choice(names)}.", "qtype": "ANY", "zone-id": 1}}).encode() + b"\n"
            for _ in range(count)]
        started = time.perf_counter()
        for request in requests:
            f.write(request)
            f.flush()
            f.readline()
        return (time.perf_counter() - started) / count * 1e6


def rss_mb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# The update path from public clients to public addresses, so that every lookup happens: the
# client in X-Forwarded-For (loopback is a trusted proxy by default), a new address each visit.
AUDIT_SCRIPT = """
local hosts = {hosts}
local mode = "{mode}"
local counter = 0
request = function()
  counter = counter + 1
  local h = counter % hosts
  local ip
  if mode == "good" then
    -- New on every visit of a host, and in every run ({run}): each request commits.
    local visit = math.floor(counter / hosts)
    ip = string.format("81.%d.%d.%d", 2 + {run}, visit % 250 + 1, h % 250 + 1)
  else
    ip = string.format("10.%d.%d.%d", math.floor(h / 65536) % 256, math.floor(h / 256) % 256, h % 256)
  end
  local client = string.format("193.0.%d.%d", counter % 16, counter % 250 + 1)
  -- wrk.format's headers replace wrk.headers: the credentials go here too.
  return wrk.format("GET", "/nic/update?hostname=host" .. h .. ".{zone}&myip=" .. ip,
                    {{["Authorization"] = "{auth}", ["X-Forwarded-For"] = client}})
end
"""


def tag_lists(directory, count):
    """`count` random public CIDRs (/16 to /32) in two lists, as [audit.ip-tags] config lines."""
    rng = random.Random(15)
    lists = {"tor-exit": [], "hosting": []}
    while sum(map(len, lists.values())) < count:
        first = rng.choice([5, 23, 31, 37, 46, 62, 77, 81, 85, 88, 91, 94, 109, 176, 185, 193, 212, 217])
        prefix = rng.randint(16, 32)
        address = (first << 24) | rng.getrandbits(24)
        address &= (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF
        text = ".".join(str((address >> shift) & 255) for shift in (24, 16, 8, 0))
        if prefix == 32:
            lists["tor-exit"].append(text)
        else:
            lists["hosting"].append(f"{text}/{prefix}")
    # Part of the clients (193.0.0.0/20) and of the new addresses (81.2-4.x.x) are in a list.
    lists["hosting"][:2] = ["193.0.0.0/21", "81.3.0.0/16"]
    lines = ["[audit.ip-tags]"]
    for name, entries in lists.items():
        path = directory / f"{name}.txt"
        path.write_text(f"# {len(entries)} entries made by benches/run.py\n" + "\n".join(entries) + "\n")
        lines.append(f'{name} = "{path}"')
    return "\n".join(lines) + "\n"


def section_audit(binary, directory, seconds, runs):
    """good and nochg with a GeoLite2-City database and 100,000 tag CIDRs, against without."""
    import base64
    hosts = 100_000
    geolite = subprocess.run([str(ROOT / "tests/fetch-geolite2.sh")], check=True, capture_output=True,
                             text=True).stdout.strip()
    geolite = (ROOT / geolite).resolve()
    db, key = make_store(binary, directory, hosts)
    # Each server on its own copy: a server seeing another's commits would catch up on them.
    copies = {}
    for name in ("without", "with"):
        copies[name] = directory / f"store-{hosts}-audit-{name}.db"
        shutil.copyfile(db, copies[name])
    audit = f'audit.geoip-database = "{geolite}"\n' + tag_lists(directory, 100_000)
    base = 'log-level = "warn"\nlimits.abuse-detection = false\n'
    basic = "Basic " + base64.b64encode(b"bench:bench password").decode()
    rows, cpu, rss = {}, {}, {}
    with ours(binary, directory, copies["without"], base) as (plain, _, _, plain_proc), \
            ours(binary, directory, copies["with"], base + audit) as (enriched, _, _, enriched_proc):
        servers = {"without": (plain, plain_proc), "with": (enriched, enriched_proc)}
        cases = {
            "(a) nochg, API key": dict(hosts=1000, mode="nochg", auth=f"Bearer {key}"),
            "(b) good, API key, every request commits": dict(hosts=hosts, mode="good", auth=f"Bearer {key}"),
            "(c) nochg, password": dict(hosts=1000, mode="nochg", auth=basic),
        }
        for run in range(runs):  # rounds: both servers in turn, so drift hits both alike
            for case, options in cases.items():
                script = AUDIT_SCRIPT.format(run=run, zone=ZONE, **options)
                for name, (port, proc) in servers.items():
                    before = cpu_seconds(proc.pid)
                    result = wrk(port, seconds, script, directory, "audit")
                    used = cpu_seconds(proc.pid) - before
                    rows.setdefault((case, name), []).append(result)
                    cpu.setdefault((case, name), []).append(used / (result[0] * seconds) * 1e6)
        for name, (_, proc) in servers.items():
            rss[name] = rss_mb(proc.pid)
        rows_written = {name: sqlite3.connect(path).execute(
            "SELECT count(*), count(country_code), count(source_country_code),"
            " sum(source_ip_tags <> '[]') FROM domain_updates").fetchone() for name, path in copies.items()}
    lines = ["| case | audit data | requests/s | p50 (µs) | p99 (µs) | CPU per request (µs) | ratio to without |"
             " non-2xx |", "|---|---|---|---|---|---|---|---|"]
    for case in cases:
        plain_rate = median([r[0] for r in rows[(case, "without")]])
        for name in ("without", "with"):
            results = rows[(case, name)]
            rate = median([r[0] for r in results])
            lines.append(f"| {case} | {name} | {summary([r[0] for r in results])} | {summary([r[1] for r in results])}"
                         f" | {summary([r[2] for r in results])} | {summary(cpu[(case, name)])}"
                         f" | {rate / plain_rate:.3f} | {max(r[3] for r in results)} |")
    total, countries, sources, tagged = rows_written["with"]
    config = directory / "lookups.toml"
    config.write_text(audit)
    per_lookup = [float(subprocess.run([LOOKUPS, "--config", str(config)], check=True, capture_output=True,
                                       text=True).stdout.split()[0]) for _ in range(runs)]
    lines += ["", f"One lookup (`IpIntel::facts`: special ranges, GeoLite2-City, the two lists), by"
              f" benches/lookups.rs over 65,536 addresses: {summary(per_lookup, ' ns')}. A `good` makes two"
              f" (client and new address; one when the address is auto-detected); a `nochg` none."]
    lines += ["", f"With: GeoLite2-City ({geolite.stat().st_size / 1e6:.0f} MB) and 100,000 CIDRs in two"
              f" lists; RSS {rss['with']:.0f} MB (without: {rss['without']:.0f} MB). Of its {total:,} audit rows,"
              f" {countries:,} have a country for the new address, {sources:,} for the client, and"
              f" {tagged:,} have a tag for the client."]
    return lines + [""]


def section_scale(binary, ceiling, directory, seconds, runs):
    lines = ["| domains | start-up (ms) | RSS after 20k lookups (MB) | lookup, ours (µs/call) |"
             " lookup, ceiling (µs/call) | committed updates/s, case (b) |", "|---|---|---|---|---|---|"]
    for hosts in (10_000, 100_000, 1_000_000):
        db, key = make_store(binary, directory, hosts)
        names = [f"host{random.Random(hosts).randrange(hosts)}.{ZONE}" for _ in range(1000)]
        startups, rss, ours_us, ceiling_us, rates = [], [], [], [], []
        for run in range(runs):
            started = time.perf_counter()
            with ours(binary, directory, db, 'log-level = "warn"\nlimits.abuse-detection = false\n') as (http, _, sock, proc):
                startups.append((time.perf_counter() - started) * 1000)
                ours_us.append(unix_lookups(sock, names, 20_000))
                rss.append(rss_mb(proc.pid))
                script = WRK_SCRIPT.format(hosts=hosts, mode="good", auth=f"Bearer {key}", zone=ZONE, run=run)
                rates.append(wrk(http, seconds, script, directory, f"scale{hosts}")[0])
            sock = directory / f"ceiling-scale-{hosts}.sock"
            sock.unlink(missing_ok=True)  # else the last run's file passes the readiness check
            with process([ceiling, "--hosts", str(hosts), "--unix", str(sock)], directory / "ceiling-scale.log",
                         ready=lambda: sock.exists()):
                ceiling_us.append(unix_lookups(sock, names, 20_000))
        lines.append(f"| {hosts:,} | {summary(startups)} | {summary(rss)} | {summary(ours_us)} |"
                     f" {summary(ceiling_us)} | {summary(rates)} |")
    return lines + [""]


def section_import(binary, directory, runs):
    """Bulk import of 100,000 domains (`domain import`), against adding them one CLI call at a
    time (measured on 500 and scaled), and the export."""
    lines = ["| what | domains | time (ms) | domains/s |", "|---|---|---|---|"]
    csv_file = directory / "import.csv"
    with open(csv_file, "w") as out:
        out.write("fqdn,owner,type,address\n")
        for h in range(100_000):
            out.write(f"imp{h}.{ZONE},bench,A,{ip_of(h)}\n")
    imports, exports, adds = [], [], []
    for run in range(runs):
        db = directory / f"import-{run}.db"
        env = {**os.environ, "CERTADNS_DB": str(db)}
        cli = lambda *args, stdin=None: subprocess.run(
            [binary, *args], env=env, input=stdin, check=True, capture_output=True, text=True).stdout
        subprocess.run([binary, "init"], env=env, capture_output=True)
        cli("zone", "add", ZONE, "--ns", f"ns1.{ZONE}")
        cli("user", "add", "bench", "--email", "bench@example.net", "--plan", "plus",
            "--password-stdin", stdin="bench password")
        started = time.perf_counter()
        cli("domain", "import", str(csv_file))
        imports.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        exported = cli("domain", "export")
        exports.append((time.perf_counter() - started) * 1000)
        assert exported.count("\n") == 100_001, exported[:200]
        started = time.perf_counter()
        for h in range(500):
            cli("domain", "add", f"one{h}.{ZONE}", "--owner", "bench", "--type", "A", "--ip", ip_of(h))
        adds.append((time.perf_counter() - started) / 500)
        db.unlink()
    lines.append(f"| `domain import` (CSV, with addresses and audit rows) | 100,000 | {summary(imports)} |"
                 f" {100_000_000 / median(imports):,.0f} |")
    lines.append(f"| `domain export` (CSV) | 100,000 | {summary(exports)} | {100_000_000 / median(exports):,.0f} |")
    lines.append(f"| `domain add --ip`, one process each (500 timed, scaled) | 100,000 |"
                 f" {100_000_000 * median(adds):,.0f} | {1 / median(adds):,.0f} |")
    return lines + [""]


def section_freshness(binary, directory, runs):
    """Time from the `good` answer to `dig` returning the new address, caches off and on."""
    hosts = 100
    db, key = make_store(binary, directory, hosts)
    lines = ["| pdns caches | updates | good → dig sees it: median | p99 | max | stale first answers |",
             "|---|---|---|---|---|---|"]
    for caches in ("off", "default"):
        port, api = free_port(), free_port()
        extra = (f'limits.abuse-detection = false\n[[pdns.api]]\napi-url = "http://127.0.0.1:{api}"\n'
                 f'api-key = "{API_KEY_PDNS}"\n')
        with ours(binary, directory, db, extra) as (http, _, sock, _):
            launch = ["launch=remote", f"remote-connection-string=unix:path={sock},timeout=2000"]
            with pdns(pdns_config(directory, "fresh", launch, caches), port, api):
                delays, stale = [], 0
                for i in range(100 * runs):
                    host = f"host{i % hosts}.{ZONE}"
                    dig_a(port, host)  # warm the caches with the old answer
                    second = 17 if caches == "off" else 18  # distinct per mode: always a change
                    ip = f"172.{second}.{i // 250 % 250}.{i % 250}"
                    request = urllib.request.Request(
                        f"http://127.0.0.1:{http}/nic/update?hostname={host}&myip={ip}",
                        headers={"Authorization": f"Bearer {key}"})
                    assert urllib.request.urlopen(request).read().decode().startswith("good")
                    answered = time.perf_counter()
                    first = True
                    while dig_a(port, host) != ip:
                        stale += first
                        first = False
                    delays.append((time.perf_counter() - answered) * 1e3)
                delays.sort()
                lines.append(f"| {caches} | {len(delays)} | {median(delays):.1f} ms | "
                             f"{delays[int(len(delays) * 0.99) - 1]:.1f} ms | {delays[-1]:.1f} ms | {stale} |")
    return lines + ["", "The delay includes one `dig` process (a few ms): the first query after `good` "
                    "already returns the new address when \"stale first answers\" is 0.", ""]


def unix_lookup(sock_file, name):
    """One lookup (ANY) on an open unix connection's file; the records."""
    sock_file.write(json.dumps({"method": "lookup", "parameters": {
        "qname": name, "qtype": "ANY", "zone-id": -1}}).encode() + b"\n")
    sock_file.flush()
    result = json.loads(sock_file.readline())["result"]
    return result if isinstance(result, list) else []


def section_outside(binary, directory, runs):
    """Another process (the admin CLI) adds domains while a router sends an update every
    10 ms, at 1,000,000 names: how long updates take meanwhile, against the same router with
    no outside writer (the first half of each run), and how soon each added domain is served
    (from the CLI's exit, its commit, to the first lookup that returns it)."""
    hosts = 1_000_000
    db, key = make_store(binary, directory, hosts)
    env = {**os.environ, "CERTADNS_DB": str(db)}
    quiet, during, served = [], [], []
    changes_per_run = 20
    for run in range(runs):
        with ours(binary, directory, db, 'log-level = "warn"\nlimits.abuse-detection = false\n') as (http_port, _, sock, _):
            stop = threading.Event()
            phase = [quiet]

            def router():
                conn = http.client.HTTPConnection("127.0.0.1", http_port)
                i = 0
                while not stop.is_set():
                    i += 1
                    ip = f"172.{20 + run}.{i // 250 % 250}.{i % 250 + 1}"
                    started = time.perf_counter()
                    conn.request("GET", f"/nic/update?hostname=host7.{ZONE}&myip={ip}",
                                 headers={"Authorization": f"Bearer {key}"})
                    body = conn.getresponse().read()
                    took = time.perf_counter() - started
                    assert body.startswith(b"good"), body
                    phase[0].append(took * 1e3)
                    time.sleep(max(0.0, 0.010 - took))

            thread = threading.Thread(target=router)
            thread.start()
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(str(sock))
                f = s.makefile("rwb")
                unix_lookup(f, f"{ZONE}.")  # a first request within the first-byte timeout
                time.sleep(1)
                # As long as the phase with changes takes (about 0.5 s a change).
                time.sleep(changes_per_run * 0.55)
                phase[0] = during
                for n in range(changes_per_run):
                    name = f"outside{run}x{n}.{ZONE}"
                    subprocess.run([binary, "domain", "add", name, "--owner", "bench", "--type", "A",
                                    "--ip", "198.51.100.7"], env=env, check=True, capture_output=True)
                    committed = time.perf_counter()
                    while not unix_lookup(f, name + "."):
                        pass
                    served.append((time.perf_counter() - committed) * 1e3)
                    time.sleep(0.5)
            stop.set()
            thread.join()
    pct = lambda values, p: sorted(values)[min(len(values) - 1, int(len(values) * p))]
    row = lambda label, values: (f"| {label} | {len(values):,} | {pct(values, 0.5):.2f} ms |"
                                 f" {pct(values, 0.99):.2f} ms | {max(values):.2f} ms |")
    return ["| router's updates | count | p50 | p99 | max |", "|---|---|---|---|---|",
            row("no outside writer", quiet), row(f"{len(served)} `domain add`s by the CLI", during), "",
            f"Each added domain served after: median {median(served):.2f} ms, max {max(served):.2f} ms.", ""]


def cpu_seconds(pid):
    """User + system CPU time of process `pid` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds(pid):
    """User + system CPU time so far of the live child processes of `pid` (pdns's relays)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


# The connectors compared by section_http: label -> (pdns-conf file, connection string template,
# settings added to the file). Unlabelled variations are the files as shipped.
# {backend}: our HTTP backend port, {sock}: our unix socket, {tcp}: our line-JSON TCP port,
# {bin}: our binary.
CONNECTORS = {
    "HTTP, 8 threads": ("pdns.http.conf",
                        "http:url=http://127.0.0.1:{backend}/dns,post=1,post_json=1,timeout=2000",
                        ["distributor-threads=8"]),
    "HTTP": ("pdns.http.conf",
             "http:url=http://127.0.0.1:{backend}/dns,post=1,post_json=1,timeout=2000", []),
    "relay, pdns timeout=2000": ("pdns.relay.conf",
                                 "pipe:command={bin} relay --connect 127.0.0.1:{tcp},timeout=2000", []),
    "relay": ("pdns.relay.conf", "pipe:command={bin} relay --connect 127.0.0.1:{tcp} --wait-ms 1500,timeout=0", []),
    "unix": ("pdns.unix.conf", "unix:path={sock},timeout=2000", []),
}


def section_http(binary, directory, seconds, runs):
    """How pdns reaches the backend, caches off: HTTP (kept alive, the only safe mode), the
    relay through pdns's pipe connector (for pdns on another host) and the unix socket; with
    the CPU each side spends per DNS query."""
    hosts = 100_000
    db, _ = make_store(binary, directory, hosts)
    files = query_files(directory, hosts)
    labels = list(CONNECTORS)
    results, cpu = {}, {}
    for _ in range(runs):  # rounds, as in section_dns
        for label, (base, template, settings) in CONNECTORS.items():
            tcp = free_port()
            extra = f'log-level = "warn"\nlisteners.backend-tcp-listen = "127.0.0.1:{tcp}"\n'
            with ours(binary, directory, db, extra) as (_, backend, sock, proc):
                launch = ["launch=remote", "remote-connection-string="
                          + template.format(backend=backend, sock=sock, tcp=tcp, bin=binary), *settings]
                port, api = free_port(), free_port()
                with pdns(pdns_config(directory, re.sub(r"\W", "", label), launch, "off", base), port, api) as server:
                    for workload in ("hot", "random"):
                        before = (cpu_seconds(server.pid), cpu_seconds(proc.pid), children_cpu_seconds(server.pid))
                        qps = dnsperf(port, files[workload], seconds)[0]
                        after = (cpu_seconds(server.pid), cpu_seconds(proc.pid), children_cpu_seconds(server.pid))
                        queries = qps * seconds
                        results.setdefault((label, workload), []).append(qps)
                        for side, index in (("pdns", 0), ("ours", 1), ("relay", 2)):
                            cpu.setdefault((label, side), []).append((after[index] - before[index]) / queries * 1e6)
    lines = ["| workload | " + " | ".join(f"{label} QPS" for label in labels)
             + " | " + " | ".join(f"{label} / unix" for label in labels[:-1]) + " |",
             "|---|" + "---|" * (2 * len(labels) - 1)]
    for workload in ("hot", "random"):
        m = {label: median(results[(label, workload)]) for label in labels}
        lines.append(f"| {workload} | " + " | ".join(summary(results[(label, workload)]) for label in labels)
                     + " | " + " | ".join(f"{m[label] / m['unix']:.2f}" for label in labels[:-1]) + " |")
    lines += ["", "CPU per DNS query (µs, both workloads; from /proc during the dnsperf runs; relay: all of "
              "pdns's relay processes together):", "",
              "| connector | pdns_server | certadns-ddns serve | relay | total |", "|---|---|---|---|---|"]
    for label in labels:
        total = [sum(values) for values in zip(*(cpu[(label, side)] for side in ("pdns", "ours", "relay")))]
        lines.append(f"| {label} | {summary(cpu[(label, 'pdns')])} | {summary(cpu[(label, 'ours')])}"
                     f" | {summary(cpu[(label, 'relay')])} | {summary(total)} |")
    return lines + [""]


def connectable(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class FdStore:
    """systemd's side of the fd store, as tests/it/common/service_manager.rs plays it: a notify
    socket that keeps FDSTORE=1 fds by FDNAME (FDSTOREREMOVE=1 drops them), and a start that
    passes them back at fd 3 onwards with LISTEN_FDS, LISTEN_FDNAMES and LISTEN_PID."""

    def __init__(self, directory):
        self.path = directory / "notify.sock"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.stored = {}
        self.ready = threading.Event()
        self.settled = threading.Event()
        self.stop = False
        self.thread = threading.Thread(target=self.read, daemon=True)
        self.thread.start()

    def read(self):
        self.sock.settimeout(0.05)
        while not self.stop:
            try:
                text, fds, _, _ = socket.recv_fds(self.sock, 4096, 16)
            except socket.timeout:
                continue
            fields = text.decode().splitlines()
            name = next((f[7:] for f in fields if f.startswith("FDNAME=")), "stored")
            if "FDSTORE=1" in fields:
                for fd in fds:
                    old = self.stored.pop(name, None)
                    if old is not None:
                        os.close(old)
                    self.stored[name] = fd
            elif "FDSTOREREMOVE=1" in fields:
                old = self.stored.pop(name, None)
                if old is not None:
                    os.close(old)
            elif "READY=1" in fields:
                self.ready.set()
            elif any(f.startswith("X-SETTLED=") for f in fields):
                self.settled.set()

    def settle(self):
        """Datagrams are read in order: once a marker sent now is read, so is everything the
        stopped process sent."""
        self.settled.clear()
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as out:
            out.sendto(b"X-SETTLED=1\n", str(self.path))
        assert self.settled.wait(10)

    def start(self, args, log):
        self.settle()
        names = list(self.stored)
        fds = [self.stored[name] for name in names]
        self.ready.clear()
        def place():
            # First above every target, then into place: a target may be another's source.
            high = [os.dup(fd) for fd in fds]
            moved = [fcntl.fcntl(fd, fcntl.F_DUPFD, 3 + len(fds) + 64) for fd in high]
            for index, fd in enumerate(moved):
                os.dup2(fd, 3 + index, inheritable=True)
        env = {**os.environ, "NOTIFY_SOCKET": str(self.path), "FDSTORE": "1024"}
        if fds:
            env.update(LISTEN_FDS=str(len(fds)), LISTEN_FDNAMES=":".join(names))
        out = open(log, "a")
        return subprocess.Popen(["sh", "-c", 'export LISTEN_PID=$$; exec "$0" "$@"', *args],
                                stdout=out, stderr=subprocess.STDOUT, env=env,
                                preexec_fn=place, close_fds=False)


def section_restart(binary, directory, runs):
    """The gap a restart leaves on a connection pdns holds: a client on the unix socket and one
    on the HTTP connector each send lookups one after the other (as pdns does: never two at
    once) while `serve` is restarted with its fds kept; the gap is the longest time from one
    answer to the next, at 1,000,000 names."""
    hosts = 1_000_000
    db, _ = make_store(binary, directory, hosts)
    rows = {"unix": [], "http": []}
    starts = []
    for run in range(runs):
        run_dir = directory / f"restart-{run}"
        run_dir.mkdir()
        store = FdStore(run_dir)
        updates, backend = free_port(), free_port()
        sock = run_dir / "backend.sock"
        config = run_dir / "config.toml"
        config.write_text(f'store.database = "{db}"\nlisteners.listen = "127.0.0.1:{updates}"\n'
                          f'listeners.backend-listen = "127.0.0.1:{backend}"\n'
                          f'listeners.backend-socket = "{sock}"\nlog-level = "info"\n')
        args = [binary, "--config", str(config), "serve"]
        log = run_dir / "serve.log"
        proc = store.start(args, log)
        assert store.ready.wait(60), log.read_text()
        names = [f"host{random.Random(run).randrange(hosts)}.{ZONE}." for _ in range(1000)]
        gaps = {}
        stop = threading.Event()

        def unix_client():
            conn = socket.socket(socket.AF_UNIX)
            conn.connect(str(sock))
            reader = conn.makefile("rb")
            last, worst = time.monotonic(), 0.0
            i = 0
            while not stop.is_set():
                request = {"method": "lookup", "parameters": {
                    "qname": names[i % len(names)], "qtype": "A", "zone-id": -1}}
                conn.sendall(json.dumps(request).encode() + b"\n")
                reply = json.loads(reader.readline())
                assert reply["result"], reply
                now = time.monotonic()
                worst, last, i = max(worst, now - last), now, i + 1
            gaps["unix"] = worst

        def http_client():
            conn = http.client.HTTPConnection("127.0.0.1", backend, timeout=10)
            last, worst = time.monotonic(), 0.0
            i = 0
            while not stop.is_set():
                body = json.dumps({"method": "lookup", "parameters": {
                    "qname": names[i % len(names)], "qtype": "A", "zone-id": -1}})
                conn.request("POST", "/dns", body, {"Content-Type": "application/json"})
                reply = json.loads(conn.getresponse().read())
                assert reply["result"], reply
                now = time.monotonic()
                worst, last, i = max(worst, now - last), now, i + 1
            gaps["http"] = worst

        clients = [threading.Thread(target=unix_client), threading.Thread(target=http_client)]
        for client in clients:
            client.start()
        time.sleep(1)
        began = time.monotonic()
        proc.terminate()
        proc.wait(30)
        proc = store.start(args, log)
        assert store.ready.wait(60), log.read_text()
        starts.append((time.monotonic() - began) * 1000)
        time.sleep(2)
        stop.set()
        for client in clients:
            client.join(30)
        proc.terminate()
        proc.wait(30)
        store.stop = True
        for name in rows:
            rows[name].append(gaps[name] * 1000)
    return ["| connection | longest gap between two answers across a restart (ms) |", "|---|---|",
            f"| unix socket | {summary(rows['unix'])} |",
            f"| HTTP connector | {summary(rows['http'])} |",
            "", f"SIGTERM to READY=1 of the next process: {summary(starts, ' ms')}", ""]


def xfr(port, kind="AXFR", key=None):
    """`dig` AXFR (or IXFR=serial) from `port`: (seconds, bytes, records, the zone's lines)."""
    started = time.monotonic()
    args = ["dig", "@127.0.0.1", "-p", str(port), "+tcp", "+time=60", "+nocmd", "+nocomments"]
    if key:
        args += ["-y", key]
    out = subprocess.run(args + [ZONE, kind], capture_output=True, text=True).stdout
    elapsed = time.monotonic() - started
    match = re.search(r"XFR size: (\d+) records \(messages (\d+), bytes (\d+)\)", out)
    if not match or "Transfer failed" in out:
        raise RuntimeError(f"{kind} from {port} failed:\n{out[-2000:]}")
    lines = [line for line in out.splitlines() if line and not line.startswith(";") and "\tTSIG\t" not in line]
    return elapsed, int(match.group(3)), int(match.group(1)), lines


def zone_digest(lines):
    """The zone's records, order aside (dig prints the SOA twice for AXFR: once here)."""
    return hash(tuple(sorted(set(" ".join(line.split()).lower() for line in lines))))


def a_query(name, qid):
    header = qid.to_bytes(2, "big") + b"\0\0\0\x01\0\0\0\0\0\0"
    qname = b"".join(bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\0"
    return header + qname + b"\0\x01\0\x01"


@contextmanager
def knot(directory, port, primary_port):
    """knotd, secondary of ZONE from our listener on `primary_port`; journal kept in `directory`."""
    root = directory / f"knot-{port}"
    for sub in ("db", "zones"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "knot.conf").write_text(
        f'server:\n    rundir: "{root}"\n    listen: 127.0.0.1@{port}\n'
        f'database:\n    storage: "{root}/db"\nlog:\n  - target: stderr\n    any: info\n'
        f'remote:\n  - id: primary\n    address: 127.0.0.1@{primary_port}\n'
        f'acl:\n  - id: primary\n    address: 127.0.0.1\n    action: [notify, transfer]\n'
        f'template:\n  - id: default\n    storage: "{root}/zones"\n    zonefile-sync: -1\n'
        f'    zonefile-load: none\n    journal-content: all\n'
        f'zone:\n  - domain: {ZONE}\n    master: primary\n    acl: primary\n')
    with open(root / "knot.log", "a") as log:
        proc = subprocess.Popen(["knotd", "-c", str(root / "knot.conf")], stdout=log, stderr=subprocess.STDOUT)
    try:
        yield proc, root / "knot.log"
    finally:
        proc.terminate()
        proc.wait(30)


def wait_serving(port, timeout=900):
    started = time.monotonic()
    while dig_status(port, ZONE) != "NOERROR":
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"nothing served on {port}")
        time.sleep(0.05)
    return time.monotonic() - started


def updates_reaching(http_port, key, hosts, secondaries, count, rate, prefix):
    """`count` updates at `rate` a second (each to a host of its own), each followed at every
    secondary (port) until it serves the new address: the delays from `good`, per port."""
    pending = {}  # (port, name) -> (address bytes, time of good)
    delays = {port: [] for port in secondaries}
    lock = threading.Lock()
    done = threading.Event()

    def poll():
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.settimeout(0.2)
        qid = 0
        while not (done.is_set() and not pending):
            with lock:
                waiting = list(pending.items())
            for (port, name), (address, good) in waiting:
                qid = (qid + 1) & 0xFFFF
                sock.sendto(a_query(name, qid), ("127.0.0.1", port))
                try:
                    answer = sock.recv(4096)
                except socket.timeout:
                    continue
                if address in answer[12:]:
                    with lock:
                        if (port, name) in pending:
                            delays[port].append(time.monotonic() - good)
                            del pending[(port, name)]
            time.sleep(0.005)

    poller = threading.Thread(target=poll)
    poller.start()
    conn = http.client.HTTPConnection("127.0.0.1", http_port)
    started = time.monotonic()
    for i in range(count):
        host = (i * 7919 + len(prefix)) % hosts
        name = f"host{host}.{ZONE}"
        ip = f"{prefix}.{i // 250 % 250}.{i % 250 + 1}"
        wait = started + i / rate - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        conn.request("GET", f"/nic/update?hostname={name}&myip={ip}", headers={"Authorization": f"Bearer {key}"})
        body = conn.getresponse().read().decode()
        if not body.startswith("good"):
            raise RuntimeError(f"update {name}: {body}")
        good = time.monotonic()
        with lock:
            for port in secondaries:
                pending[(port, name)] = (socket.inet_aton(ip), good)
    done.set()
    deadline = time.monotonic() + 60
    while pending and time.monotonic() < deadline:
        time.sleep(0.05)
    missing = len(pending)
    pending.clear()
    poller.join()
    return delays, missing


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100))] if values else float("nan")


def section_transfers(binary, directory, runs):
    lines = ["### AXFR: ours (the DNS listener) against pdns's own AXFR from gsqlite3, same zone", "",
             "| names | ours: time | ours: bytes | pdns gsqlite3: time | pdns gsqlite3: bytes | ours / pdns (time) |",
             "|---|---|---|---|---|---|"]
    follow = []
    for hosts in (100_000, 1_000_000):
        db, key = make_store(binary, directory, hosts)
        gdb = make_gsqlite3(directory, hosts)
        dns_port, knot_port, sec_port, api = free_port(), free_port(), free_port(), free_port()
        extra = (f'listeners.update-dns-listen = "127.0.0.1:{dns_port}"\nlimits.abuse-detection = false\n'
                 f'[transfers]\nallow-from = ["127.0.0.1/32"]\n'
                 f'notify = ["127.0.0.1:{knot_port}", "127.0.0.1:{sec_port}"]\n')
        with ours(binary, directory, db, extra) as (http_port, _, _, proc):
            wait_serving(dns_port)
            times, sizes = [], []
            for _ in range(runs):
                elapsed, size, _, _ = xfr(dns_port)
                times.append(elapsed)
                sizes.append(size)
            config_dir = pdns_config(directory, f"gsqlite3xfr{hosts}", ["launch=gsqlite3", f"gsqlite3-database={gdb}"], "default")
            pdns_times, pdns_sizes = [], []
            gport = free_port()
            with pdns(config_dir, gport, free_port()):
                for _ in range(runs):
                    elapsed, size, _, _ = xfr(gport)
                    pdns_times.append(elapsed)
                    pdns_sizes.append(size)
            lines.append(f"| {hosts:,} | {median(times):.2f} s ({min(times):.2f}–{max(times):.2f}) | {median(sizes) / 1e6:.1f} MB "
                         f"| {median(pdns_times):.2f} s ({min(pdns_times):.2f}–{max(pdns_times):.2f}) | {median(pdns_sizes) / 1e6:.1f} MB "
                         f"| {median(times) / median(pdns_times):.2f} |")

            # Secondaries, one at a time (two on two cores would measure each other): Knot,
            # then pdns with gsqlite3 (IXFR on). The first AXFR, memory, then the updates.
            sec_dir = directory / f"pdns-secondary-{hosts}"
            sec_dir.mkdir()
            sec_db = sec_dir / "pdns.sqlite3"
            conn = sqlite3.connect(sec_db)
            conn.executescript(Path("/usr/share/doc/pdns-backend-sqlite3/schema.sqlite3.sql").read_text())
            conn.close()
            (sec_dir / "pdns.conf").write_text(f"launch=gsqlite3\ngsqlite3-database={sec_db}\nsecondary=yes\n"
                                               "xfr-cycle-interval=1\nallow-notify-from=127.0.0.0/8\n")
            for args in (["create-secondary-zone", ZONE, f"127.0.0.1:{dns_port}"], ["set-meta", ZONE, "IXFR", "1"]):
                subprocess.run(["pdnsutil", f"--config-dir={sec_dir}", *args], check=True, capture_output=True)
            sec_args = ["pdns_server", f"--config-dir={sec_dir}", f"--socket-dir={sec_dir}",
                        "--local-address=127.0.0.1", f"--local-port={sec_port}", "--security-poll-suffix=",
                        "--daemon=no", "--guardian=no", "--disable-syslog", "--write-pid=no"]
            log_text = lambda: (directory / f"ours-{http_port}.log").read_text()
            results = {}
            for name, port in (("Knot", knot_port), ("pdns", sec_port)):
                server = knot(directory, knot_port, dns_port) if name == "Knot" \
                    else process(sec_args, sec_dir / "pdns.log")
                with server as started_server:
                    pid = (started_server[0] if name == "Knot" else started_server).pid
                    first = wait_serving(port)
                    rss = rss_mb(pid)
                    before = log_text().count("whole zone")
                    delays, missing = updates_reaching(http_port, key, hosts, [port], 1000, 100,
                                                       "172.16" if name == "Knot" else "172.19")
                    time.sleep(2)
                    equal = zone_digest(xfr(port)[3]) == zone_digest(xfr(dns_port)[3])
                    results[name] = (first, rss, delays[port], missing, equal, log_text().count("whole zone") - before)
            our_rss = rss_mb(proc.pid)
            # IXFR of one change: its bytes.
            serial = int(subprocess.run(["dig", "@127.0.0.1", "-p", str(dns_port), "+short", ZONE, "SOA"],
                                        capture_output=True, text=True).stdout.split()[2])
            urllib.request.urlopen(urllib.request.Request(
                f"http://127.0.0.1:{http_port}/nic/update?hostname=host1.{ZONE}&myip=172.31.0.1",
                headers={"Authorization": f"Bearer {key}"})).read()
            _, ixfr_bytes, ixfr_records, _ = xfr(dns_port, f"IXFR={serial}")
            # Knot offline during 1,000 updates, then back (its journal kept): the catch-up.
            before = log_text().count('how="IXFR"'), log_text().count("whole zone")
            updates_reaching(http_port, key, hosts, [], 1000, 100, "172.17")
            with knot(directory, knot_port, dns_port) as (knot_proc, knot_log):
                wait_serving(knot_port)
                started = time.monotonic()
                catch, _ = updates_reaching(http_port, key, hosts, [knot_port], 1, 100, "172.18")
                catch_up = time.monotonic() - started
                caught_equal = zone_digest(xfr(knot_port)[3]) == zone_digest(xfr(dns_port)[3])
            after = log_text().count('how="IXFR"'), log_text().count("whole zone")
        for name, label in (("Knot", "Knot 3.2"), ("pdns", "pdns 4.7 gsqlite3")):
            first, rss, d, missing, equal, whole = results[name]
            follow.append(f"| {hosts:,} | {label} | {first:.1f} s | {rss:,.0f} MB | {percentile(d, 50):.2f} s | {percentile(d, 99):.2f} s "
                          f"| {max(d) if d else float('nan'):.2f} s | {len(d)} of 1,000 ({missing} late), {whole} whole zone | {'yes' if equal else 'NO'} |")
        follow.append(f"| {hosts:,} | ours: RSS after both | | {our_rss:,.0f} MB | | | | IXFR of one change: {ixfr_bytes} bytes, {ixfr_records} records | |")
        follow.append(f"| {hosts:,} | Knot offline for 1,000 updates, then back | | | | | | caught up {catch_up:.2f} s after its NOTIFY: {after[0] - before[0]} IXFR, {after[1] - before[1]} whole zone | {'yes' if caught_equal else 'NO'} |")
    lines += ["", "### Secondaries at size: the first AXFR, then 1,000 dyndns2 updates at 100 a second (each to a name of its own)", "",
              "| names | secondary | first AXFR (start to serving) | secondary's RSS | `good` → served, p50 | p99 | max | updates seen | zone equal to ours at the end |",
              "|---|---|---|---|---|---|---|---|---|"] + follow
    return lines



def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sections", default="dns,updates,http,scale,freshness,outside,audit,import")
    parser.add_argument("--binary", help="a certadns-ddns binary to measure instead of this tree's")
    parser.add_argument("--flat-config", action="store_true",
                        help="write the flat config of builds before issue 14 (for --binary)")
    args = parser.parse_args()
    global FLAT_CONFIG
    FLAT_CONFIG = args.flat_config
    binary, ceiling, floor = build()
    binary = args.binary or binary
    sections = args.sections.split(",")
    with tempfile.TemporaryDirectory(prefix="certadns-bench-") as tmp:
        directory = Path(tmp)
        emit = lambda lines: print("\n".join(lines), flush=True)
        emit([f"<!-- python3 benches/run.py --seconds {args.seconds} --runs {args.runs} --sections {args.sections} -->", ""])
        if "dns" in sections:
            emit(["## DNS through pdns_server (dnsperf -c 8 -l %d, 100,000 names)" % args.seconds, ""]
                 + section_dns(binary, ceiling, directory, args.seconds, args.runs))
        if "dnssec" in sections:
            emit(["## DNSSEC: signed against unsigned, through pdns_server (dnsperf -D -c 8 -l %d, 100,000 names)"
                  % args.seconds, ""] + section_dnssec(binary, directory, args.seconds, args.runs))
        if "updates" in sections:
            emit(["## The update path (wrk -t1 -c64 -d%ds, 100,000 domains)" % args.seconds, ""]
                 + section_updates(binary, floor, directory, args.seconds, args.runs))
        if "rfc2136" in sections:
            emit(["## RFC 2136 updates with TSIG, against `/nic/update` (%d s, 100,000 names)" % args.seconds, ""]
                 + section_rfc2136(binary, directory, args.seconds, args.runs))
        if "http" in sections:
            emit(["## Connectors: HTTP, the relay and the unix socket (caches off)", ""]
                 + section_http(binary, directory, args.seconds, args.runs))
        if "scale" in sections:
            emit(["## Scale: 10k, 100k and 1M domains", ""]
                 + section_scale(binary, ceiling, directory, args.seconds, args.runs))
        if "freshness" in sections:
            emit(["## Freshness: from `good` to the new address in `dig`", ""]
                 + section_freshness(binary, directory, args.runs))
        if "outside" in sections:
            emit(["## Outside changes at 1,000,000 names: the CLI adding domains during updates", ""]
                 + section_outside(binary, directory, args.runs))
        if "import" in sections:
            emit(["## Bulk import and export: 100,000 domains", ""]
                 + section_import(binary, directory, args.runs))
        if "restart" in sections:
            emit(["## A restart under pdns, at 1,000,000 names (fds kept in the fd store)", ""]
                 + section_restart(binary, directory, args.runs))
        if "transfers" in sections:
            emit(["## Zone transfers: AXFR, IXFR and NOTIFY to real secondaries", ""]
                 + section_transfers(binary, directory, args.runs))
        if "audit" in sections:
            emit(["## The audit trail's lookups: a GeoIP database and 100,000 tag CIDRs (wrk -t1 -c64 -d%ds)"
                  % args.seconds, ""] + section_audit(binary, directory, args.seconds, args.runs))


if __name__ == "__main__":
    sys.exit(main())
