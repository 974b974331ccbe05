//! Secondaries that transfer our zones from the DNS listener (`[transfers]`), not through
//! pdns: a real pdns_server (`secondary=yes`, gsqlite3, IXFR on) and a real Knot DNS
//! (`knotd`), both transferring with a TSIG key and notified (signed) of every change. They
//! must follow each `good` by IXFR within seconds, catch up by IXFR after being offline, start over by a whole
//! zone when our history is gone (a restart), and end with exactly the zone we serve. And every
//! refusal: an address outside `allow-from`, an unsigned request under `require-tsig`, a key
//! that is not the zone's, a signed zone, AXFR over UDP, IXFR without its SOA.
//!
//! Needs `pdns_server`, `pdnsutil`, `sqlite3` (pdns-backend-sqlite3), `knotd` (knot) and `dig`:
//! without them the tests print why and pass, unless `REQUIRE_E2E=1`, as in CI. The size here
//! (a few thousand names) keeps CI short; `benches/run.py --sections transfers` runs the same
//! at 1,000,000 names (BENCHMARKS.md).

#![allow(
    clippy::print_stdout,
    reason = "the tests report a skip and the delays they measured"
)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{self, PASSWORD, Pdns, TestEnv, dig, free_port, require_tool};

/// DDNS names in the zone besides the test's own.
const NAMES: usize = 3_000;

/// Every record of a zone as `dig AXFR` prints it: owner, TTL, type, data (SOA included).
type ZoneRecords = BTreeSet<(String, u32, String, String)>;

/// `dig AXFR` of `zone` from `port` (with `extra` options, such as `-y` for TSIG): the records,
/// or dig's complaint.
fn axfr(port: u16, zone: &str, extra: &[&str]) -> Result<ZoneRecords, String> {
    let output = Command::new("dig")
        .args(["@127.0.0.1", "-p", &port.to_string(), "+tcp", "+time=10"])
        .args(["+nocomments", "+nostats", "+nocmd"])
        .args(extra)
        .args([zone, "AXFR"])
        .output()
        .expect("run dig");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    if text.contains("Transfer failed") || text.contains("failure") || !output.status.success() {
        return Err(text);
    }
    let records: ZoneRecords = text
        .lines()
        .filter(|line| !line.starts_with(';') && !line.trim().is_empty())
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (name, ttl, _class, record_type) = (
                fields.next()?,
                fields.next()?,
                fields.next()?,
                fields.next()?,
            );
            // TSIG records belong to the messages, not the zone.
            (record_type != "TSIG").then(|| {
                (
                    name.to_ascii_lowercase(),
                    ttl.parse().unwrap_or(0),
                    record_type.to_string(),
                    fields.collect::<Vec<_>>().join(" "),
                )
            })
        })
        .collect();
    Ok(records)
}

/// The first word of the answer to `name` `record_type` at `port`, or "".
fn first_answer(port: u16, name: &str, record_type: &str) -> String {
    dig(port, name, record_type, &[])
        .data(record_type)
        .first()
        .cloned()
        .unwrap_or_default()
}

/// A Knot DNS secondary of one zone, transferring from our listener with a TSIG key; killed
/// on drop. Its zone and journal live in `dir`, so that a restart finds its serial again.
struct Knot {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Knot {
    /// Starts knotd on `port` for `zone`, primary `primary_port`, key `key_name`/`secret`;
    /// returns once it serves the zone.
    fn spawn(dir: &Path, port: u16, zone: &str, primary_port: u16, key: &(String, String)) -> Self {
        for sub in ["db", "zones"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let config = format!(
            "server:\n    rundir: \"{dir}\"\n    listen: 127.0.0.1@{port}\n\
             database:\n    storage: \"{dir}/db\"\n\
             log:\n  - target: stderr\n    any: info\n\
             key:\n  - id: {key_name}\n    algorithm: hmac-sha256\n    secret: {secret}\n\
             remote:\n  - id: primary\n    address: 127.0.0.1@{primary_port}\n    key: {key_name}\n\
             acl:\n  - id: primary\n    address: 127.0.0.1\n    key: {key_name}\n    action: [notify, transfer]\n\
             template:\n  - id: default\n    storage: \"{dir}/zones\"\n    zonefile-sync: -1\n\
             \x20   zonefile-load: none\n    journal-content: all\n\
             zone:\n  - domain: {zone}\n    master: primary\n    acl: primary\n",
            dir = dir.display(),
            key_name = key.0,
            secret = key.1,
        );
        std::fs::write(dir.join("knot.conf"), config).unwrap();
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(dir.join("knot.log"))
            .unwrap();
        let child = Command::new("knotd")
            .arg("-c")
            .arg(dir.join("knot.conf"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start knotd");
        let knot = Self {
            child,
            port,
            dir: dir.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while dig(port, zone, "SOA", &[]).status != "NOERROR" {
            assert!(
                Instant::now() < deadline,
                "knotd never served {zone}:\n{}",
                knot.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        knot
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("knot.log")).unwrap_or_default()
    }
}

impl Drop for Knot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Adds `count` DDNS names `bulkN.dyn.example` of user 1 to the zone, as a bulk import
/// would, before the service starts.
fn add_bulk_names(env: &TestEnv, count: usize) {
    let mut conn = rusqlite::Connection::open(&env.db).unwrap();
    let tx = conn.transaction().unwrap();
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO domains (fqdn, user_id, zone_id, record_type, ip, created_at, \
                 updated_at) VALUES (?1, 1, 1, 'A', ?2, 't', 't')",
            )
            .unwrap();
        for n in 0..count {
            insert
                .execute(rusqlite::params![
                    format!("bulk{n}.dyn.example"),
                    format!("10.0.{}.{}", n / 250, n % 250 + 1)
                ])
                .unwrap();
        }
    }
    tx.execute("UPDATE zones SET serial = serial + 1", [])
        .unwrap();
    tx.commit().unwrap();
}

/// Waits until `port` answers `ip` for `name`; how long that took.
fn until_served(port: u16, name: &str, ip: &str, who: &str, log: impl Fn() -> String) -> Duration {
    let started = Instant::now();
    while first_answer(port, name, "A") != ip {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{who} never served {ip} for {name}:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    started.elapsed()
}

#[test]
fn pdns_and_knot_follow_every_change_by_ixfr_catch_up_and_end_equal() {
    for tool in ["pdns_server", "pdnsutil", "sqlite3", "dig", "knotd"] {
        if !require_tool(tool) {
            return;
        }
    }
    let env = TestEnv::new();
    env.cli_ok(&["zone", "add", "dyn.example", "--ns", "ns1.dyn.example"]);
    env.add_user("alice", "alice@example.com", "plus");
    for host in ["a", "b", "c"] {
        env.add_domain(
            &format!("{host}.dyn.example"),
            "alice",
            "A",
            Some("192.0.2.1"),
        );
    }
    env.cli_ok(&[
        "record",
        "add",
        "dyn.example",
        "mx",
        "MX",
        "10 mail.example.net.",
    ]);
    add_bulk_names(&env, NAMES);
    let block = env.cli_ok(&[
        "tsig",
        "create",
        "--zone",
        "dyn.example",
        "--types",
        "A",
        "--name",
        "xfr.dyn.example",
    ]);
    let key = common::tsig_block_fields(&block);
    let (dns_port, pdns_port, knot_port) = (free_port(), free_port(), free_port());
    let config = format!(
        "listeners.update-dns-listen = \"127.0.0.1:{dns_port}\"\n\
         [transfers]\nallow-from = [\"127.0.0.1/32\"]\nrequire-tsig = true\n\
         notify-key = \"xfr.dyn.example\"\nnotify = [\"127.0.0.1:{pdns_port}\"]\n\
         notify-interval-ms = 200\n\
         [transfers.zone-notify]\n\"dyn.example\" = [\"127.0.0.1:{knot_port}\"]\n"
    );
    let mut daemon = env.spawn(&config);
    daemon.wait_for_log("listening on rfc2136=udp+tcp://");
    let signed = format!("hmac-sha256:{}:{}", key.0, key.1);
    let ours = || axfr(dns_port, "dyn.example", &["-y", &signed]).unwrap();
    assert_eq!(
        ours().len(),
        NAMES + 6,
        "the SOA (twice, one in a set), NS, MX, a, b, c and the bulk"
    );

    // pdns: the zone as a secondary zone of our listener, with IXFR on.
    let pdns_dir = env.dir.path().join("pdns-secondary");
    let pdns_config = crate::e2e_secondary::prepare_secondary(
        &pdns_dir,
        "dyn.example",
        &format!("127.0.0.1:{dns_port}"),
    );
    // As README "Secondaries" says: IXFR on, transfers signed with the zone's key.
    for args in [
        vec!["set-meta", "dyn.example", "IXFR", "1"],
        vec!["import-tsig-key", &key.0, "hmac-sha256", &key.1],
        vec!["set-meta", "dyn.example", "AXFR-MASTER-TSIG", &key.0],
    ] {
        let output = Command::new("pdnsutil")
            .arg(format!("--config-dir={}", pdns_dir.display()))
            .args(&args)
            .output()
            .unwrap();
        assert!(output.status.success(), "{args:?}: {output:?}");
    }
    let pdns = Pdns::spawn_with(&pdns_dir, &pdns_config, &[], pdns_port, "dyn.example");
    let knot_dir = env.dir.path().join("knot");
    let mut knot = Knot::spawn(&knot_dir, knot_port, "dyn.example", dns_port, &key);

    let pdns_zone = || axfr(pdns.port, "dyn.example", &[]).unwrap();
    let knot_zone = || axfr(knot_port, "dyn.example", &["-y", &signed]).unwrap();
    assert_eq!(pdns_zone(), ours(), "pdns's first AXFR");
    assert_eq!(knot_zone(), ours(), "knot's first AXFR");
    // Theirs, and this test's own.
    let axfrs = daemon.log_count("how=\"AXFR\"");

    // Each `good` reaches both, by NOTIFY and IXFR.
    let update = |host: &str, ip: &str| {
        daemon
            .update_basic(
                "alice",
                PASSWORD,
                &format!("hostname={host}.dyn.example&myip={ip}"),
            )
            .assert(200, &format!("good {ip}"));
    };
    let mut delays = Vec::new();
    for round in 0..20 {
        let (host, ip) = (
            ["a", "b", "c"][round % 3],
            format!("192.0.2.{}", round + 10),
        );
        update(host, &ip);
        let name = format!("{host}.dyn.example");
        delays.push(until_served(pdns.port, &name, &ip, "pdns", || pdns.log()));
        delays.push(until_served(knot.port, &name, &ip, "knot", || knot.log()));
    }
    delays.sort();
    println!(
        "update to both secondaries: median {:?}, max {:?} (notify-interval 200 ms)",
        delays[delays.len() / 2],
        delays[delays.len() - 1]
    );
    assert!(
        pdns.log().contains("IXFR-in zone: 'dyn.example'"),
        "pdns took the changes by IXFR:\n{}",
        pdns.log()
    );
    assert!(knot.log().contains("IXFR, incoming"), "{}", knot.log());
    assert_eq!(
        daemon.log_count("how=\"AXFR\""),
        axfrs,
        "after the first AXFR, only IXFR:\n{}",
        daemon.log()
    );

    // Knot offline while names change; back, it catches up by IXFR from where it was.
    drop(knot);
    for (round, host) in ["a", "b", "c", "a"].iter().enumerate() {
        update(host, &format!("198.51.100.{}", round + 1));
    }
    let before = daemon.log_count("how=\"IXFR\"");
    knot = Knot::spawn(&knot_dir, knot_port, "dyn.example", dns_port, &key);
    // Its next NOTIFY (or its own retry) brings it up to date.
    update("b", "198.51.100.9");
    until_served(knot.port, "a.dyn.example", "198.51.100.4", "knot", || {
        knot.log()
    });
    until_served(knot.port, "b.dyn.example", "198.51.100.9", "knot", || {
        knot.log()
    });
    until_served(knot.port, "c.dyn.example", "198.51.100.3", "knot", || {
        knot.log()
    });
    assert!(daemon.log_count("how=\"IXFR\"") > before);
    assert_eq!(daemon.log_count("how=\"AXFR\""), axfrs, "{}", daemon.log());
    assert_eq!(
        daemon.log_count("whole zone"),
        0,
        "every step since knot went offline was still in the history:\n{}",
        daemon.log()
    );

    // A restart: our history is gone, so the next change reaches them as a whole zone, and
    // the one after by IXFR again.
    assert_eq!(daemon.terminate(), Some(0));
    let daemon = env.spawn(&config);
    daemon.wait_for_log("listening on rfc2136=udp+tcp://");
    let follow = |host: &str, ip: &str| {
        daemon
            .update_basic("alice", PASSWORD, &format!("hostname={host}&myip={ip}"))
            .assert(200, &format!("good {ip}"));
        until_served(pdns.port, host, ip, "pdns", || pdns.log());
        until_served(knot.port, host, ip, "knot", || knot.log());
    };
    follow("c.dyn.example", "203.0.113.1");
    assert!(
        daemon.log_count("how=\"IXFR (whole zone)\"") >= 1,
        "{}",
        daemon.log()
    );
    follow("a.dyn.example", "203.0.113.2");
    assert!(daemon.log_count("how=\"IXFR\"") >= 1, "{}", daemon.log());

    // At the end, every record of the zone, the SOA serial included, is ours on both.
    let ours = ours();
    assert_eq!(pdns_zone(), ours, "pdns serves exactly our zone");
    assert_eq!(knot_zone(), ours, "knot serves exactly our zone");
}

/// How a transfer request is sent.
struct Ask<'a> {
    port: u16,
    tcp: bool,
    record_type: hickory_proto::rr::RecordType,
    zone: &'a str,
    /// IXFR's serial, in the authority section.
    serial: Option<u32>,
    /// TSIG key (name, base64 secret).
    key: Option<&'a (String, String)>,
}

/// The RCODE and the answer count of the first message answering `ask`.
fn ask(ask: &Ask<'_>) -> (hickory_proto::op::ResponseCode, usize) {
    use std::io::{Read as _, Write as _};

    use hickory_proto::dnssec::rdata::tsig::TsigAlgorithm;
    use hickory_proto::dnssec::tsig::TSigner;
    use hickory_proto::op::{Message, Query};
    use hickory_proto::rr::rdata::SOA;
    use hickory_proto::rr::{Name, RData, Record};
    let zone = Name::from_ascii(format!("{}.", ask.zone)).unwrap();
    let mut message = Message::new();
    message.set_id(0x7a7a);
    message.add_query(Query::query(zone.clone(), ask.record_type));
    if let Some(serial) = ask.serial {
        let soa = SOA::new(zone.clone(), zone.clone(), serial, 0, 0, 0, 0);
        message.add_name_server(Record::from_rdata(zone, 0, RData::SOA(soa)));
    }
    if let Some((name, secret)) = ask.key {
        let secret =
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, secret).unwrap();
        let signer = TSigner::new(
            secret,
            TsigAlgorithm::HmacSha256,
            Name::from_ascii(name).unwrap(),
            300,
        )
        .unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        message
            .finalize(&signer, u32::try_from(now).unwrap())
            .unwrap();
    }
    let bytes = message.to_vec().unwrap();
    let answer = if ask.tcp {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", ask.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let length = u16::try_from(bytes.len()).unwrap().to_be_bytes();
        stream.write_all(&[&length[..], &bytes].concat()).unwrap();
        let mut length = [0_u8; 2];
        stream.read_exact(&mut length).unwrap();
        let mut answer = vec![0_u8; usize::from(u16::from_be_bytes(length))];
        stream.read_exact(&mut answer).unwrap();
        answer
    } else {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        socket.send_to(&bytes, ("127.0.0.1", ask.port)).unwrap();
        let mut answer = vec![0_u8; 65_535];
        let length = socket.recv(&mut answer).unwrap();
        answer.truncate(length);
        answer
    };
    let answer = Message::from_vec(&answer).unwrap();
    (answer.response_code(), answer.answers().len())
}

#[test]
fn transfers_are_refused_to_whoever_may_not_have_them_and_the_listener_keeps_serving() {
    use hickory_proto::op::ResponseCode;
    use hickory_proto::rr::RecordType;
    if !require_tool("dig") {
        return;
    }
    let env = TestEnv::new();
    env.seed();
    env.cli_ok(&["zone", "add", "other.example", "--ns", "ns1.other.example"]);
    env.cli_ok(&[
        "zone",
        "add",
        "signed.example",
        "--ns",
        "ns1.signed.example",
    ]);
    env.cli_ok(&["zone", "secure", "signed.example"]);
    let zone_key = common::tsig_block_fields(&env.cli_ok(&[
        "tsig",
        "create",
        "--zone",
        "dyn.example",
        "--name",
        "xfr.dyn.example",
    ]));
    let other_key = common::tsig_block_fields(&env.cli_ok(&[
        "tsig",
        "create",
        "--zone",
        "other.example",
        "--name",
        "xfr.other.example",
    ]));
    let subtree_key = common::tsig_block_fields(&env.cli_ok(&[
        "tsig",
        "create",
        "--subtree",
        "lab.dyn.example",
        "--name",
        "lab.dyn.example",
    ]));
    let account_key = common::tsig_block_fields(&env.cli_ok(&["tsig", "create", "alice"]));
    let signed_zone_key = common::tsig_block_fields(&env.cli_ok(&[
        "tsig",
        "create",
        "--zone",
        "signed.example",
        "--name",
        "xfr.signed.example",
    ]));
    let port = free_port();
    let config = |allow: &str, require_tsig: bool| {
        format!(
            "listeners.update-dns-listen = \"127.0.0.1:{port}\"\n\
             [transfers]\nallow-from = [\"{allow}\"]\nrequire-tsig = {require_tsig}\n"
        )
    };
    let daemon = env.spawn(&config("192.0.2.0/24", false));
    daemon.wait_for_log("listening on rfc2136=udp+tcp://");
    let axfr = |zone, key| Ask {
        port,
        tcp: true,
        record_type: RecordType::AXFR,
        zone,
        serial: None,
        key,
    };
    // Not from allow-from: refused, signed or not.
    assert_eq!(ask(&axfr("dyn.example", None)).0, ResponseCode::Refused);
    assert_eq!(
        ask(&axfr("dyn.example", Some(&zone_key))).0,
        ResponseCode::Refused
    );

    // Loopback allowed, a key required (a reload applies both).
    let reloads = daemon.log_count("configuration reloaded");
    env.write_config(&config("127.0.0.1/32", true));
    daemon.signal(nix::sys::signal::Signal::SIGHUP);
    daemon.wait_for_log_after("configuration reloaded", reloads);
    assert_eq!(
        ask(&axfr("dyn.example", None)).0,
        ResponseCode::Refused,
        "unsigned"
    );
    for (key, why) in [
        (&other_key, "another zone's key"),
        (&subtree_key, "a subtree key"),
        (&account_key, "an account's key"),
    ] {
        assert_eq!(
            ask(&axfr("dyn.example", Some(key))).0,
            ResponseCode::Refused,
            "{why}"
        );
    }
    assert_eq!(
        ask(&axfr("signed.example", Some(&signed_zone_key))).0,
        ResponseCode::Refused,
        "a signed zone: its secondaries transfer it from pdns"
    );
    assert!(
        daemon.log().contains("the zone is signed"),
        "{}",
        daemon.log()
    );
    assert_eq!(
        ask(&axfr("nothing.example", Some(&zone_key))).0,
        ResponseCode::NotAuth,
        "not a zone of ours"
    );
    assert_eq!(
        ask(&axfr("home.dyn.example", Some(&zone_key))).0,
        ResponseCode::NotAuth,
        "a name in the zone is not a zone"
    );
    assert_eq!(
        ask(&Ask {
            tcp: false,
            ..axfr("dyn.example", Some(&zone_key))
        })
        .0,
        ResponseCode::FormErr,
        "AXFR over UDP"
    );
    let ixfr = Ask {
        record_type: RecordType::IXFR,
        ..axfr("dyn.example", Some(&zone_key))
    };
    assert_eq!(ask(&ixfr).0, ResponseCode::FormErr, "IXFR without the SOA");
    // IXFR over UDP: the current SOA alone, for the secondary to ask over TCP (RFC 1995 §4).
    assert_eq!(
        ask(&Ask {
            tcp: false,
            serial: Some(1),
            ..ixfr
        }),
        (ResponseCode::NoError, 1)
    );

    // The right key, from the right address: the whole zone, signed message by message (dig
    // checks each).
    let signed = format!("hmac-sha256:{}:{}", zone_key.0, zone_key.1);
    let zone = axfr_of(port, &signed);
    assert!(
        zone.iter().any(|(name, ..)| name == "dyn.example."),
        "{zone:?}"
    );
    // Refusals wrote nothing, and the listener still answers updates' SOA queries.
    assert_eq!(dig(port, "dyn.example", "SOA", &[]).status, "NOERROR");
}

/// `dig AXFR dyn.example` signed with `key` (`hmac-sha256:NAME:SECRET`).
fn axfr_of(port: u16, key: &str) -> ZoneRecords {
    axfr(port, "dyn.example", &["-y", key]).unwrap()
}
