//! Zones reaching a secondary the standard way: a real primary pdns_server on our backend
//! NOTIFYs a real secondary pdns_server (its own gsqlite3 database), which transfers the zone
//! (AXFR). After a `good` update on the primary the secondary serves the new address within
//! seconds.
//!
//! Needs `pdns_server`, `pdnsutil`, the gsqlite3 backend (pdns-backend-sqlite3), `sqlite3` and
//! `dig`: without them the test prints why and passes, unless `REQUIRE_E2E=1`, as in CI.

#![allow(
    clippy::print_stdout,
    reason = "the test reports a skip and the delays it measured"
)]

use crate::common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{PASSWORD, Pdns, PdnsApiEndpoint, TestEnv, dig, free_port, require_tool};

/// The schema Debian ships for the gsqlite3 backend.
const GSQLITE3_SCHEMA: &str = "/usr/share/doc/pdns-backend-sqlite3/schema.sqlite3.sql";

/// Creates the secondary's database and registers `zone` as a secondary zone of `primary`.
pub(crate) fn prepare_secondary(config_dir: &Path, zone: &str, primary: &str) -> String {
    std::fs::create_dir_all(config_dir).unwrap();
    let database = config_dir.join("pdns.sqlite3");
    let schema = std::fs::read_to_string(GSQLITE3_SCHEMA).expect("the gsqlite3 schema");
    let status = Command::new("sqlite3")
        .arg(&database)
        .arg(schema)
        .status()
        .expect("run sqlite3");
    assert!(status.success());
    let config = format!(
        "launch=gsqlite3\ngsqlite3-database={}\nsecondary=yes\nxfr-cycle-interval=1\nallow-notify-from=127.0.0.0/8\n",
        database.display()
    );
    std::fs::write(config_dir.join("pdns.conf"), &config).unwrap();
    let output = Command::new("pdnsutil")
        .arg(format!("--config-dir={}", config_dir.display()))
        .args(["create-secondary-zone", zone, primary])
        .output()
        .expect("run pdnsutil");
    assert!(output.status.success(), "{output:?}");
    config
}

#[test]
fn an_update_reaches_a_secondary_by_notify_and_axfr_within_seconds() {
    for tool in ["pdns_server", "pdnsutil", "sqlite3", "dig"] {
        if !require_tool(tool) {
            return;
        }
    }
    if !Path::new(GSQLITE3_SCHEMA).exists() {
        common::skip(&format!(
            "{GSQLITE3_SCHEMA} not found (install pdns-backend-sqlite3)"
        ));
        return;
    }
    let (primary_port, secondary_port) = (free_port(), free_port());
    let env = TestEnv::new();
    env.cli_ok(&[
        "zone",
        "add",
        "dyn.example",
        "--ns",
        "ns1.dyn.example",
        "--also-notify",
        &format!("127.0.0.1:{secondary_port}"),
    ]);
    env.cli_ok(&["record", "add", "dyn.example", "ns1", "A", "192.0.2.53"]);
    env.add_user("alice", "alice@example.com", "plus");
    env.add_domain("home.dyn.example", "alice", "A", Some("192.0.2.1"));
    let socket = env.dir.path().join("backend.sock");
    let api = PdnsApiEndpoint::new();
    let daemon = env.spawn(&format!(
        "listeners.backend-socket = {socket:?}\n{}",
        api.daemon_config()
    ));

    // The primary: pdns-conf/pdns.unix.conf as shipped (primary=yes), checking for changes every
    // second, and allowing AXFR by the zone's ALLOW-AXFR-FROM only: no allow-axfr-ips match.
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("pdns-conf/pdns.unix.conf"),
    )
    .unwrap();
    let primary = Pdns::spawn_with(
        env.dir.path(),
        &shipped,
        &[
            vec![
                format!("--remote-connection-string=unix:path={}", socket.display()),
                "--xfr-cycle-interval=1".into(),
                "--allow-axfr-ips=192.0.2.255/32".into(),
            ],
            api.pdns_args(),
        ]
        .concat(),
        primary_port,
        "dyn.example",
    );

    // The secondary, on its own database; it transfers the zone when it starts.
    let secondary_dir = env.dir.path().join("secondary");
    let secondary_config = prepare_secondary(
        &secondary_dir,
        "dyn.example",
        &format!("127.0.0.1:{primary_port}"),
    );
    let secondary = Pdns::spawn_with(
        &secondary_dir,
        &secondary_config,
        &[],
        secondary_port,
        "dyn.example",
    );
    assert_eq!(
        dig(secondary.port, "home.dyn.example", "A", &[]).data("A"),
        ["192.0.2.1"]
    );

    let mut delays = Vec::new();
    for round in 2..7 {
        let ip = format!("192.0.2.{round}");
        daemon
            .update_basic(
                "alice",
                PASSWORD,
                &format!("hostname=home.dyn.example&myip={ip}"),
            )
            .assert(200, &format!("good {ip}"));
        let started = Instant::now();
        // The primary answers at once; the secondary once NOTIFY and AXFR are through.
        assert_eq!(
            dig(primary.port, "home.dyn.example", "A", &[]).data("A"),
            std::slice::from_ref(&ip)
        );
        while dig(secondary.port, "home.dyn.example", "A", &[]).data("A")
            != std::slice::from_ref(&ip)
        {
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "the secondary never got {ip}:\nprimary:\n{}\nsecondary:\n{}",
                primary.log(),
                secondary.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        delays.push(started.elapsed());
    }
    delays.sort();
    println!(
        "update to secondary: min {:?}, median {:?}, max {:?} over {} updates (xfr-cycle-interval=1)",
        delays[0],
        delays[delays.len() / 2],
        delays[delays.len() - 1],
        delays.len()
    );
    // The zone's SOA refresh is 3 hours: changes arriving in about a second came by NOTIFY.
    let stored: u32 = env
        .db()
        .query_row("SELECT serial FROM zones", [], |r| r.get(0))
        .unwrap();
    let served = dig(secondary.port, "dyn.example", "SOA", &[]).data("SOA")[0]
        .split(' ')
        .nth(2)
        .unwrap()
        .parse::<u32>()
        .unwrap();
    assert_eq!(served, stored, "the secondary serves the primary's serial");
}
