//! DNSSEC end to end: zones signed by a real pdns (`remote-dnssec=yes`, as shipped) with the keys
//! the store keeps, every answer checked by `delv` against the zone's own DNSKEY as its trust
//! anchor, right after the change that made it: dyndns2 updates, ACME values, NXDOMAIN, NODATA,
//! an empty non-terminal. Keys are made by `certadns-ddns zone secure` and by `pdnsutil`
//! against the backend, and rolled as README's "DNSSEC" says.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{Daemon, Pdns, PdnsApiEndpoint, TestEnv, dig, require_tool};

/// A 43-character ACME DNS-01 value.
const CHALLENGE: &str = "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0";

/// What `delv` said of one name and type.
#[derive(Debug)]
struct Validated {
    /// The records it printed (data only, RRSIGs left out).
    data: Vec<String>,
    /// Its whole output, for messages.
    text: String,
}

/// Asks pdns at `port` through `delv`, validating from the trust anchor in `anchors` (a
/// DNSKEY of `zone`); panics unless the answer is fully validated. NXDOMAIN and NODATA come
/// back with no data.
fn delv(port: u16, anchors: &Path, zone: &str, name: &str, record_type: &str) -> Validated {
    let output = Command::new("delv")
        .args(["@127.0.0.1", "-p", &port.to_string()])
        .arg("-a")
        .arg(anchors)
        .arg(format!("+root={zone}"))
        .args(["+nosplit", "+norrcomments"])
        .args([name, record_type])
        .output()
        .expect("run delv");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        text.contains("; fully validated") || text.contains("; negative response, fully validated"),
        "delv {name} {record_type} did not validate:\n{text}"
    );
    let data = text
        .lines()
        .filter(|line| !line.starts_with(';') && !line.trim().is_empty())
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.len() >= 5 && fields[3] == record_type).then(|| fields[4..].join(" "))
        })
        .collect();
    Validated { data, text }
}

/// Writes a delv trust-anchor file for `zone` with every `DNSKEY` line of `zone ds` output
/// whose flags are 257.
fn anchors(dir: &Path, zone: &str, ds_output: &str) -> PathBuf {
    let keys: Vec<String> = ds_output
        .lines()
        .filter_map(|line| line.split_once(" IN DNSKEY "))
        .map(|(_, key)| key.split_whitespace().collect::<Vec<_>>())
        .filter(|fields| fields[0] == "257")
        .map(|fields| {
            format!(
                "  \"{zone}.\" static-key {} {} {} \"{}\";\n",
                fields[0],
                fields[1],
                fields[2],
                fields[3..].concat()
            )
        })
        .collect();
    assert!(!keys.is_empty(), "no KSK in:\n{ds_output}");
    static FILES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let number = FILES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = dir.join(format!("anchors-{zone}-{number}.conf"));
    std::fs::write(&path, format!("trust-anchors {{\n{}}};\n", keys.concat())).unwrap();
    path
}

/// The zone of these tests: a static record, a name two labels down (so that `deep` is an
/// empty non-terminal), alice's host.
fn seed(env: &TestEnv) -> String {
    env.cli_ok(&["zone", "add", "dyn.example", "--ns", "ns1.dyn.example"]);
    env.cli_ok(&["record", "add", "dyn.example", "ns1", "A", "192.0.2.53"]);
    env.cli_ok(&["record", "add", "dyn.example", "x.deep", "TXT", "below"]);
    env.add_user("alice", "alice@example.com", "plus");
    env.add_domain("home.dyn.example", "alice", "A", Some("192.0.2.1"));
    env.cli_ok(&["key", "create", "alice"]).trim().to_string()
}

/// A daemon with the unix socket and the TCP backend (for the relay), and pdns's API.
fn serve(env: &TestEnv, api: &PdnsApiEndpoint) -> (Daemon, PathBuf) {
    let socket = env.dir.path().join("backend.sock");
    let daemon = env.spawn(&format!(
        "listeners.backend-socket = {socket:?}\nlisteners.backend-tcp-listen = \"127.0.0.1:0\"\n{}",
        api.daemon_config()
    ));
    (daemon, socket)
}

/// Every kind of answer of a signed zone validates, each right after the change behind it;
/// denials carry `denial` records (NSEC3 or NSEC).
fn signed_answers_validate(pdns: &Pdns, daemon: &Daemon, key: &str, anchors: &Path, denial: &str) {
    let port = pdns.port;
    let zone = "dyn.example";
    assert_eq!(
        delv(port, anchors, zone, "home.dyn.example", "A")
            .data
            .len(),
        1
    );
    let bearer = format!("Bearer {key}");
    for round in 2..5 {
        let ip = format!("192.0.2.{round}");
        daemon
            .get(
                &format!("/nic/update?hostname=home.dyn.example&myip={ip}"),
                &[("Authorization", &bearer)],
            )
            .assert(200, &format!("good {ip}"));
        assert_eq!(
            delv(port, anchors, zone, "home.dyn.example", "A").data,
            [ip],
            "the answer right after `good` is signed and new"
        );
    }
    daemon
        .get(
            &format!("/nic/update?hostname=home.dyn.example&txt={CHALLENGE}"),
            &[("Authorization", &bearer)],
        )
        .assert(200, "good");
    assert_eq!(
        delv(
            port,
            anchors,
            zone,
            "_acme-challenge.home.dyn.example",
            "TXT"
        )
        .data,
        [format!("\"{CHALLENGE}\"")]
    );
    daemon
        .get(
            "/nic/update?hostname=home.dyn.example&txt=x&clear=true",
            &[("Authorization", &bearer)],
        )
        .assert(200, "good");
    let gone = delv(
        port,
        anchors,
        zone,
        "_acme-challenge.home.dyn.example",
        "TXT",
    );
    assert!(gone.data.is_empty(), "{}", gone.text);
    // NXDOMAIN, NODATA, and the empty non-terminal: NODATA (not NXDOMAIN), validated.
    for (name, record_type, status) in [
        ("nope.dyn.example", "A", "NXDOMAIN"),
        ("home.dyn.example", "MX", "NOERROR"),
        ("deep.dyn.example", "A", "NOERROR"),
    ] {
        let validated = delv(port, anchors, zone, name, record_type);
        assert!(validated.data.is_empty(), "{}", validated.text);
        let plain = dig(port, name, record_type, &["+dnssec"]);
        assert_eq!(plain.status, status, "{name} {record_type}: {plain:?}");
        assert!(
            plain.authority.iter().any(|r| r.record_type == denial),
            "{name}: {denial} denial: {plain:?}"
        );
    }
    assert_eq!(
        delv(port, anchors, zone, "x.deep.dyn.example", "TXT").data,
        ["\"below\""]
    );
    assert_eq!(
        delv(port, anchors, zone, "ns1.dyn.example", "A").data,
        ["192.0.2.53"]
    );
}

/// `zone secure`, `zone ds`, then pdns (caches on, as shipped; the unix connector or the
/// relay) signs everything; with `--nsec`, a secondary's AXFR is a whole signed zone.
fn secured_by_the_cli(relay: bool, nsec: bool) {
    if !require_tool("pdns_server")
        || !require_tool("delv")
        || !require_tool("dig")
        || !require_tool("ldns-verify-zone")
    {
        return;
    }
    let env = TestEnv::new();
    let key = seed(&env);
    let mut secure = vec!["zone", "secure", "dyn.example"];
    if nsec {
        secure.push("--nsec");
    }
    let secured = env.cli_ok(&secure);
    assert!(secured.contains("dyn.example. IN DS "), "{secured}");
    let refused = env.cli(&["zone", "secure", "dyn.example"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("has DNSSEC keys already"),
        "{refused:?}"
    );
    let ds = env.cli_ok(&["zone", "ds", "dyn.example"]);
    let anchors = anchors(env.dir.path(), "dyn.example", &ds);
    let api = PdnsApiEndpoint::new();
    let (daemon, socket) = serve(&env, &api);
    let pdns = if relay {
        let connection = format!(
            "pipe:command={} relay --connect {} --wait-ms 1500,timeout=0",
            crate::common::BIN,
            daemon.tcp_backend_addr()
        );
        Pdns::spawn(
            env.dir.path(),
            "pdns.relay.conf",
            &connection,
            &api,
            "dyn.example",
        )
    } else {
        Pdns::on_socket(env.dir.path(), &socket, &api, "dyn.example")
    };
    // The DS that `zone secure` printed is the one of the DNSKEY pdns serves.
    let served = dig(pdns.port, "dyn.example", "DNSKEY", &["+dnssec"]);
    assert_eq!(served.data("DNSKEY").len(), 1, "{served:?}");
    assert_eq!(served.data("RRSIG").len(), 1, "{served:?}");
    let denial = if nsec { "NSEC" } else { "NSEC3" };
    signed_answers_validate(&pdns, &daemon, &key, &anchors, denial);
    let listed = env.cli_ok(&["zone", "keys", "dyn.example"]);
    assert!(listed.contains("KSK/CSK"), "{listed}");
    if nsec {
        // What a secondary transfers: the zone with its signatures and a whole NSEC chain,
        // every one of them checked by ldns against the zone's DNSKEY.
        let axfr = Command::new("dig")
            .args([
                "@127.0.0.1",
                "-p",
                &pdns.port.to_string(),
                "+onesoa",
                "+nocmd",
            ])
            .args(["+nostats", "+nocomments", "dyn.example", "AXFR"])
            .output()
            .unwrap();
        let zone_file = env.dir.path().join("dyn.example.zone");
        std::fs::write(&zone_file, &axfr.stdout).unwrap();
        let text = String::from_utf8_lossy(&axfr.stdout);
        for (name, record_type) in [
            ("x.deep.dyn.example.", "NSEC"),
            ("home.dyn.example.", "RRSIG"),
            ("dyn.example.", "DNSKEY"),
        ] {
            assert!(
                text.lines().any(|line| line.starts_with(name)
                    && line.split_whitespace().nth(3) == Some(record_type)),
                "{name} {record_type} in the AXFR:\n{text}"
            );
        }
        let verified = Command::new("ldns-verify-zone")
            .arg(&zone_file)
            .output()
            .unwrap();
        assert!(
            verified.status.success(),
            "ldns-verify-zone:\n{}{}\n{text}",
            String::from_utf8_lossy(&verified.stdout),
            String::from_utf8_lossy(&verified.stderr)
        );
    }
}

#[test]
fn a_zone_secured_by_the_cli_validates_after_every_change_on_the_unix_connector() {
    secured_by_the_cli(false, false);
}

#[test]
fn a_zone_secured_by_the_cli_validates_after_every_change_through_the_relay() {
    secured_by_the_cli(true, false);
}

#[test]
fn a_zone_signed_with_nsec_validates_and_transfers_whole_and_signed() {
    secured_by_the_cli(false, true);
}

/// `pdnsutil` with its own config pointing at the backend, as an operator runs it.
struct PdnsUtil {
    config_dir: PathBuf,
}

impl PdnsUtil {
    fn new(dir: &Path, connection: &str) -> Self {
        let config_dir = dir.join("pdnsutil");
        std::fs::create_dir_all(&config_dir).unwrap();
        std::fs::write(
            config_dir.join("pdns.conf"),
            format!("launch=remote\nremote-connection-string={connection}\nremote-dnssec=yes\n"),
        )
        .unwrap();
        Self { config_dir }
    }

    fn run(&self, args: &[&str]) -> String {
        let output = Command::new("pdnsutil")
            .arg(format!("--config-dir={}", self.config_dir.display()))
            .args(args)
            .output()
            .expect("run pdnsutil");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.status.success(), "pdnsutil {args:?}:\n{text}");
        text
    }
}

/// The key ids `zone keys --json` lists, with their flags and active state.
fn keys(env: &TestEnv) -> Vec<(i64, String, bool)> {
    let listed: serde_json::Value =
        serde_json::from_str(&env.cli_ok(&["zone", "keys", "dyn.example", "--json"])).unwrap();
    listed
        .as_array()
        .unwrap()
        .iter()
        .map(|key| {
            (
                key["id"].as_i64().unwrap(),
                key["role"].as_str().unwrap().to_string(),
                key["active"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// `pdnsutil secure-zone`, `add-zone-key`, `set-nsec3 narrow`, `show-zone` and
/// `export-zone-ds` against our backend over HTTP (REST: the key calls' form bodies), then a ZSK
/// roll and a KSK roll, every step validated.
#[test]
fn pdnsutil_secures_and_rolls_keys_through_the_backend() {
    if !require_tool("pdns_server") || !require_tool("delv") || !require_tool("pdnsutil") {
        return;
    }
    let env = TestEnv::new();
    let key = seed(&env);
    // A second zone, signed by `pdnsutil secure-zone` itself (a CSK, NSEC at first).
    env.cli_ok(&["zone", "add", "other.example", "--ns", "ns1.dyn.example"]);
    env.cli_ok(&["record", "add", "other.example", "www", "A", "192.0.2.80"]);
    let api = PdnsApiEndpoint::new();
    let (daemon, socket) = serve(&env, &api);
    let rest = format!("http:url=http://{}/dns", daemon.backend_addr);
    let pdnsutil = PdnsUtil::new(env.dir.path(), &rest);
    let secured = pdnsutil.run(&["secure-zone", "other.example"]);
    assert!(secured.contains("Zone other.example secured"), "{secured}");
    let again = Command::new("pdnsutil")
        .arg(format!("--config-dir={}", pdnsutil.config_dir.display()))
        .args(["secure-zone", "other.example"])
        .output()
        .unwrap();
    assert!(!again.status.success(), "already secure: {again:?}");
    let other_ds = env.cli_ok(&["zone", "ds", "other.example"]);
    let other_anchors = anchors(env.dir.path(), "other.example", &other_ds);
    // A KSK and a ZSK (pdnsutil's default is one CSK; the roll below needs both kinds).
    pdnsutil.run(&["add-zone-key", "dyn.example", "ksk", "active", "ecdsa256"]);
    pdnsutil.run(&["add-zone-key", "dyn.example", "zsk", "active", "ecdsa256"]);
    pdnsutil.run(&["set-nsec3", "dyn.example", "1 0 0 -", "narrow"]);
    let shown = pdnsutil.run(&["show-zone", "dyn.example"]);
    assert!(shown.contains("NARROW hashed NSEC3"), "{shown}");
    let exported = pdnsutil.run(&["export-zone-ds", "dyn.example"]);
    let ds = env.cli_ok(&["zone", "ds", "dyn.example"]);
    let ours = ds
        .lines()
        .find(|line| line.contains(" IN DS ") && line.contains(" 13 2 "))
        .unwrap();
    let digest = ours.rsplit(' ').next().unwrap();
    assert!(
        exported.to_uppercase().contains(digest),
        "pdnsutil and `zone ds` agree:\n{exported}\n{ds}"
    );
    // Key changes reach answers at once here: no key or metadata cache, a purge per step.
    let mut args = vec![
        format!(
            "--remote-connection-string=unix:path={},timeout=2000",
            socket.display()
        ),
        "--dnssec-key-cache-ttl=0".into(),
        "--zone-metadata-cache-ttl=0".into(),
    ];
    args.extend(api.pdns_args());
    let pdns = Pdns::spawn_with(
        env.dir.path(),
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("pdns-conf/pdns.unix.conf"),
        )
        .unwrap(),
        &args,
        crate::common::free_port(),
        "dyn.example",
    );
    let step = |anchors: &Path| {
        pdns.control(&["purge", "dyn.example$"]);
        signed_answers_validate(&pdns, &daemon, &key, anchors, "NSEC3");
    };
    let anchors_old = anchors(env.dir.path(), "dyn.example", &ds);
    step(&anchors_old);
    // The zone pdnsutil secured validates with NSEC, and after `set-nsec3 narrow` with NSEC3.
    for denial in ["NSEC", "NSEC3"] {
        if denial == "NSEC3" {
            pdnsutil.run(&["set-nsec3", "other.example", "1 0 0 -", "narrow"]);
            pdns.control(&["purge", "other.example$"]);
        }
        let zone = "other.example";
        assert_eq!(
            delv(pdns.port, &other_anchors, zone, "www.other.example", "A").data,
            ["192.0.2.80"]
        );
        let nx = delv(pdns.port, &other_anchors, zone, "nope.other.example", "A");
        assert!(nx.data.is_empty(), "{}", nx.text);
        let plain = dig(pdns.port, "nope.other.example", "A", &["+dnssec"]);
        assert!(
            plain.authority.iter().any(|r| r.record_type == denial),
            "{denial}: {plain:?}"
        );
    }

    // ZSK roll (pre-publish): publish the new one, sign with it, retire the old one.
    let before = keys(&env);
    let old_zsk = before.iter().find(|k| k.1 == "ZSK").unwrap().0;
    pdnsutil.run(&[
        "add-zone-key",
        "dyn.example",
        "zsk",
        "inactive",
        "published",
        "ecdsa256",
    ]);
    let new_zsk = keys(&env).iter().map(|k| k.0).max().unwrap();
    step(&anchors_old);
    pdnsutil.run(&["activate-zone-key", "dyn.example", &new_zsk.to_string()]);
    pdnsutil.run(&["deactivate-zone-key", "dyn.example", &old_zsk.to_string()]);
    step(&anchors_old);
    pdnsutil.run(&["remove-zone-key", "dyn.example", &old_zsk.to_string()]);
    step(&anchors_old);

    // KSK roll (double signature): a second KSK, the parent's DS (here the anchor) moves to
    // it, the old one goes.
    let old_ksk = keys(&env).iter().find(|k| k.1 == "KSK/CSK").unwrap().0;
    pdnsutil.run(&["add-zone-key", "dyn.example", "ksk", "active", "ecdsa256"]);
    step(&anchors_old);
    let both = env.cli_ok(&["zone", "ds", "dyn.example"]);
    pdnsutil.run(&["remove-zone-key", "dyn.example", &old_ksk.to_string()]);
    let ds_new = env.cli_ok(&["zone", "ds", "dyn.example"]);
    assert_ne!(ds_new, both);
    let anchors_new = anchors(env.dir.path(), "dyn.example", &ds_new);
    step(&anchors_new);
    let remaining = keys(&env);
    assert_eq!(remaining.len(), 2, "{remaining:?}");
    assert!(remaining.iter().all(|k| k.2), "{remaining:?}");

    // What the backend refuses, with a reason pdnsutil shows: PRESIGNED, ALSO-NOTIFY, TSIG keys.
    let refused = Command::new("pdnsutil")
        .arg(format!("--config-dir={}", pdnsutil.config_dir.display()))
        .args(["set-meta", "dyn.example", "PRESIGNED", "1"])
        .output()
        .unwrap();
    assert!(!refused.status.success(), "{refused:?}");
    step(&anchors_new);
}
