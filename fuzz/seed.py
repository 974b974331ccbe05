#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets from the test fixtures: the captured pdns
traffic (tests/fixtures/pdns/), the client requests and records the tests use, and the example
config. Usage: python3 fuzz/seed.py [corpus directory, default fuzz/corpus]."""

import hashlib
import json
import sys
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "fuzz" / "corpus"


def write(target, data):
    directory = OUT / target
    directory.mkdir(parents=True, exist_ok=True)
    (directory / hashlib.sha1(data).hexdigest()).write_bytes(data)


def captured():
    """(file name, connection, raw request bytes) of every captured request."""
    for path in sorted((ROOT / "tests" / "fixtures" / "pdns").glob("*.jsonl")):
        for line in path.read_text().splitlines():
            event = json.loads(line)
            if "raw" in event:
                yield path.name, event.get("conn"), event["raw"].encode("latin-1")


def http_seed(raw):
    """A captured HTTP request in backend_http's form."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    method, target, _ = lines[0].split(b" ", 2)
    flags = {b"GET": 0, b"POST": 1, b"PATCH": 2, b"DELETE": 3}.get(method, 0)
    headers = [line for line in lines[1:] if line.lower().startswith(b"x-remotebackend-")]
    if any(b"x-www-form-urlencoded" in line.lower() for line in lines[1:]):
        flags |= 4
    rest = target[len(b"/dns"):] if target.startswith(b"/dns") else target
    return b"\0".join([bytes([flags]), rest, body] + headers)


connections = {}
for name, conn, raw in captured():
    if raw.startswith((b"GET ", b"POST ", b"PATCH ", b"DELETE ")):
        write("backend_http", http_seed(raw))
        body = raw.partition(b"\r\n\r\n")[2]
        if body.startswith(b"{"):
            write("backend_json", body)
    else:
        line = raw.replace(b"\\n", b"\n")
        write("backend_json", line.strip())
        connections.setdefault((name, conn), []).append(line)
for lines in connections.values():
    write("backend_lines", b"".join(lines))
write("backend_lines", b'{"method":"initialize","parameters":{}}\n\n  \n{"method":"lookup"}\n')
write("relay_lines", b'{"method":"lookup"}\n\xff\x40\n \n\xff\x41{"x"}\n{"method":"list"}')

# Update requests: what ddclient, inadyn, a FRITZ!Box, OpenWRT and the spec's cURL examples
# send (tests/clients.rs, tests/compat.rs, ../shared/docs/dyndns2-clients.md).
basic = b"Basic dGVzdHVzZXI6dGVzdHBhc3M6dy8gY29sb24mYW1w"  # testuser:testpass:w/ colon&amp
for flags, authorization, query, body, agent, forwarded in [
    (0, basic, b"system=dyndns&hostname=host1.example.com,host2.example.com&myip=1.2.3.4", b"", b"ddclient/3.10.0", []),
    (0, basic, b"hostname=host6.example.com&myip=2001:db8::6", b"", b"inadyn/2.10.0", []),
    (0, basic, b"hostname=home.dyn.example&myip=192.0.2.7", b"", b"Fritz!Box", [b"198.51.100.1"]),
    (0, basic, b"hostname=home.dyn.example&myipv6=2001%3Adb8%3A%3A7", b"", b"Fritz!Box", []),
    (0, b"Bearer ak_0123456789abcdef0123456789abcdef", b"hostname=myserver.certadns.com", b"", b"curl/8.5", []),
    (1, b"", b"hostname=myserver.certadns.com&username=user&password=pass", b"", b"", []),
    (0, b"", b"", b"hostname=home.dyn.example&myip=192.0.2.1,2001:db8::1&username=alice%40example.com&password=x", b"", [b"203.0.113.9, 10.0.0.2", b"10.0.0.1"]),
    (2, basic, b"hostname=a.example,b.example&myip=preserve&myipv6=::1", b"", b"", [b"garbage, 1.2.3.4"]),
]:
    write("update_request", b"\0".join([bytes([flags]), authorization, query, body, agent] + forwarded))

types = {"A": 0, "AAAA": 1, "CNAME": 2, "MX": 3, "TXT": 4, "NS": 5, "SRV": 6, "CAA": 7}
for record_type, content, owner in [
    ("A", "192.0.2.9", "*.wild"),
    ("AAAA", "2001:db8::1", "www"),
    ("CNAME", "target.example.net.", "alias"),
    ("MX", "10 mail.example.com.", "@"),
    ("TXT", '"v=spf1 -all" "second string"', "@"),
    ("NS", "ns1.sub.example.com.", "sub"),
    ("SRV", "10 5 5060 sip.example.com.", "_sip._udp"),
    ("CAA", '0 issue "letsencrypt.org"', "example.com."),
]:
    write("record_content", b"\0".join([bytes([types[record_type]]), content.encode(), owner.encode()]))

write("config", (ROOT / "examples" / "config.toml").read_bytes())
for snippet in [
    '[listeners]\nlisten = "0.0.0.0:80"\n[updates]\ntrusted-proxies = ["203.0.113.0/24"]\n'
    '[store]\nsynchronous = "full"\n',
    '[[pdns.api]]\napi-url = "http://127.0.0.1:8082"\napi-key = "k"\n',
    'listeners.backend-listen = "0.0.0.0:8081"\nlisteners.backend-allow-from = ["192.0.2.0/24"]\n',
    'abuse-min-interval-ms = 1000\n',
    'listen = "127.0.0.1:1"\n[[pdns]]\napi-url = "http://x"\n',
]:
    write("config", snippet.encode())
write("config", b'[audit]\ngeoip-database = "/x.mmdb"\nreload-check-secs = 5\n[audit.ip-tags]\ntor-exit = "/t"\n')

# Tag lists as they are downloaded: Tor's bulk exit list, a FireHOL netset, Spamhaus DROP.
write("tag_list", b"185.220.101.1\n185.220.101.2\n2a0b:f4c2::1\n")
write("tag_list", b"#\n# firehol_level1\n#\n0.0.0.0/8\n1.10.16.0/20\n10.0.0.0/8 # private\n2001:db8::/32\n")
write("tag_list", b"; Spamhaus DROP List 2026/11/29\r\n1.10.16.0/20 ; SBL256894\r\n1.19.0.0/16 ; SBL434604\r\n")
write("tag_list", b"10.0.0.0/16\n10.0.1.0/24\n10.0.0.0/8\n0.0.0.0/0\n::/0\nffff:ffff::/32\n255.255.255.255\n")
# A signed UPDATE exactly as the real nsupdate sent it (hmac-sha256, key alice-key, the secret
# of fuzz_targets/tsig_verify.rs), and the same unsigned.
write("tsig_verify", bytes.fromhex(
    "25ce280000010000000100010364796e076578616d706c65000006000104686f7374c00c00010001"
    "0000003c0004c000020109616c6963652d6b65790000fa00ff00000000003d0b686d61632d736861"
    "3235360000006b157c28012c00204ea8c9b304a7763d17a0fe6676f67f185fee43172866b4b296b0"
    "325660afdc1a25ce00000000"))
write("tsig_verify", bytes.fromhex(
    "25ce280000010000000100000364796e076578616d706c65000006000104686f7374c00c00010001"
    "0000003c0004c0000201"))
# dns_update: nsupdate's UPDATE above (signed and not), and one with every prerequisite form
# and every update form (fuzz_targets/dns_update.rs).
write("dns_update", bytes.fromhex(
    "25ce280000010000000100010364796e076578616d706c65000006000104686f7374c00c00010001"
    "0000003c0004c000020109616c6963652d6b65790000fa00ff00000000003d0b686d61632d736861"
    "3235360000006b157c28012c00204ea8c9b304a7763d17a0fe6676f67f185fee43172866b4b296b0"
    "325660afdc1a25ce00000000"))


def dns_name(text):
    return b"".join(bytes([len(label)]) + label.encode() for label in text.split(".")) + b"\0"


def rr(name, rtype, rclass, ttl, rdata=b""):
    return (dns_name(name) + rtype.to_bytes(2, "big") + rclass.to_bytes(2, "big")
            + ttl.to_bytes(4, "big") + len(rdata).to_bytes(2, "big") + rdata)


prerequisites = [
    rr("home.dyn.example", 255, 255, 0),                 # name in use
    rr("new.dyn.example", 255, 254, 0),                  # name not in use
    rr("home.dyn.example", 1, 255, 0),                   # RRset exists
    rr("home.dyn.example", 28, 254, 0),                  # RRset does not exist
    rr("home.dyn.example", 1, 1, 0, bytes([192, 0, 2, 7])),  # RRset is
]
updates = [
    rr("home.dyn.example", 1, 255, 0),                   # delete the RRset
    rr("home.dyn.example", 1, 1, 60, bytes([192, 0, 2, 8])),  # add
    rr("home.dyn.example", 1, 254, 0, bytes([192, 0, 2, 7])),  # delete one record
    rr("_acme-challenge.home.dyn.example", 16, 1, 60, b"\x05abcde"),  # ACME value
    rr("old.lab.dyn.example", 255, 255, 0),              # delete the name
    rr("p.lab.dyn.example", 49, 1, 60, bytes.fromhex("000201" + "ab" * 32)),  # DHCID
]
header = (0x1234).to_bytes(2, "big") + bytes([0x28, 0]) + b"".join(
    n.to_bytes(2, "big") for n in (1, len(prerequisites), len(updates), 0))
write("dns_update", header + dns_name("dyn.example") + (6).to_bytes(2, "big")
      + (1).to_bytes(2, "big") + b"".join(prerequisites) + b"".join(updates))
# dns_listener: AXFR and IXFR (serial 1, in the authority section) of example.com, an SOA
# query, and nsupdate's signed UPDATE above (fuzz_targets/dns_listener.rs).
query = lambda qtype, authority=b"": ((0x4242).to_bytes(2, "big") + bytes([0, 0])
                                      + b"".join(n.to_bytes(2, "big") for n in (1, 0, 1 if authority else 0, 0))
                                      + dns_name("example.com") + qtype.to_bytes(2, "big")
                                      + (1).to_bytes(2, "big") + authority)
write("dns_listener", query(252))
write("dns_listener", query(251, rr("example.com", 6, 1, 0, dns_name("a") + dns_name("b")
                                    + (1).to_bytes(4, "big") + bytes(16))))
write("dns_listener", query(6))
write("dns_listener", bytes.fromhex(
    "25ce280000010000000100010364796e076578616d706c65000006000104686f7374c00c00010001"
    "0000003c0004c000020109616c6963652d6b65790000fa00ff00000000003d0b686d61632d736861"
    "3235360000006b157c28012c00204ea8c9b304a7763d17a0fe6676f67f185fee43172866b4b296b0"
    "325660afdc1a25ce00000000"))
print(f"seeds written under {OUT}")
