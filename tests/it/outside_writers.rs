//! The served index against everyone who writes the database: a property test driving random
//! interleavings of this service's own updates, admin CLI changes (domains and static
//! records), a second process writing with `sqlite3`, and the `-shm` file truncated or
//! deleted under the running service. After every step, every lookup through the backend must
//! equal what SQLite says, at once: no waiting for a reload.
//!
//! Needs `sqlite3` (Debian's package): without it the test prints why and passes, unless
//! `REQUIRE_E2E=1`, as in CI.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::{Daemon, PASSWORD, TestEnv, require_tool, unix_call};
use proptest::prelude::*;
use serde_json::json;

/// DDNS hosts `h0..` of alice (A), and names `s0..` for static records.
const HOSTS: u8 = 4;

/// One thing that happens to the database.
#[derive(Debug, Clone)]
enum Step {
    /// alice updates `h{host}` through the service.
    Update { host: u8, ip: [u8; 3] },
    /// The admin CLI removes `h{host}`.
    CliRemoveDomain { host: u8 },
    /// The admin CLI adds `h{host}` back, with an address.
    CliAddDomain { host: u8, ip: [u8; 3] },
    /// The admin CLI adds an A record at `s{host}`.
    CliAddRecord { host: u8, ip: [u8; 3] },
    /// The admin CLI removes the A records at `s{host}`.
    CliRemoveRecords { host: u8 },
    /// `sqlite3` sets `h{host}`'s address directly.
    SqliteSetIp { host: u8, ip: [u8; 3] },
    /// `sqlite3` moves the zone's serial on.
    SqliteBumpSerial,
    /// The `-shm` file is truncated to nothing.
    TruncateShm,
    /// The `-shm` file is deleted: the service stops and is started again.
    DeleteShm,
}

fn ip(parts: [u8; 3]) -> String {
    format!("10.{}.{}.{}", parts[0], parts[1], parts[2].max(1))
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let host = 0..HOSTS;
    let address = any::<[u8; 3]>();
    let step = prop_oneof![
        6 => (host.clone(), address).prop_map(|(host, ip)| Step::Update { host, ip }),
        2 => host.clone().prop_map(|host| Step::CliRemoveDomain { host }),
        2 => (host.clone(), address).prop_map(|(host, ip)| Step::CliAddDomain { host, ip }),
        2 => (host.clone(), address).prop_map(|(host, ip)| Step::CliAddRecord { host, ip }),
        1 => host.clone().prop_map(|host| Step::CliRemoveRecords { host }),
        4 => (host, address).prop_map(|(host, ip)| Step::SqliteSetIp { host, ip }),
        1 => Just(Step::SqliteBumpSerial),
        1 => Just(Step::TruncateShm),
        1 => Just(Step::DeleteShm),
    ];
    prop::collection::vec(step, 1..24)
}

/// The environment of one case.
struct Case {
    env: TestEnv,
    daemon: Daemon,
    socket: PathBuf,
}

impl Case {
    fn new() -> Self {
        let env = TestEnv::new();
        env.seed();
        for host in 0..HOSTS {
            env.add_domain(&format!("h{host}.dyn.example"), "alice", "A", None);
        }
        let (daemon, socket) = spawn(&env);
        Self {
            env,
            daemon,
            socket,
        }
    }

    fn shm(&self) -> PathBuf {
        let mut shm = self.env.db.as_os_str().to_owned();
        shm.push("-shm");
        PathBuf::from(shm)
    }

    fn sqlite3(&self, sql: &str) {
        let output = std::process::Command::new("sqlite3")
            .arg(&self.env.db)
            .arg(format!(".timeout 5000\n{sql}"))
            .output()
            .expect("run sqlite3");
        assert!(
            output.status.success(),
            "sqlite3 {sql}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn run(&mut self, step: &Step) {
        let cli = |args: &[&str]| {
            // Conflicts (a name taken, nothing to remove) are refusals, not failures here.
            let _ = self.env.cli(args);
        };
        match step {
            Step::Update { host, ip: parts } => {
                let ip = ip(*parts);
                let response = self.daemon.update_basic(
                    "alice",
                    PASSWORD,
                    &format!("hostname=h{host}.dyn.example&myip={ip}"),
                );
                assert!(
                    response.status == 200 || response.body == "nohost",
                    "{response:?}"
                );
            }
            Step::CliRemoveDomain { host } => cli(&["domain", "remove", &format!("h{host}.dyn.example")]),
            Step::CliAddDomain { host, ip: parts } => cli(&[
                "domain",
                "add",
                &format!("h{host}.dyn.example"),
                "--owner",
                "alice",
                "--type",
                "A",
                "--ip",
                &ip(*parts),
            ]),
            Step::CliAddRecord { host, ip: parts } => cli(&[
                "record",
                "add",
                "dyn.example",
                &format!("s{host}"),
                "A",
                &ip(*parts),
            ]),
            Step::CliRemoveRecords { host } => cli(&[
                "record",
                "remove",
                "dyn.example",
                &format!("s{host}"),
                "A",
            ]),
            Step::SqliteSetIp { host, ip: parts } => self.sqlite3(&format!(
                "UPDATE domains SET ip = '{}' WHERE fqdn = 'h{host}.dyn.example' AND record_type = 'A';",
                ip(*parts)
            )),
            Step::SqliteBumpSerial => {
                self.sqlite3("UPDATE zones SET serial = serial + 1 WHERE name = 'dyn.example';");
            }
            Step::TruncateShm => {
                let truncated = std::fs::OpenOptions::new()
                    .write(true)
                    .open(self.shm())
                    .and_then(|file| file.set_len(0))
                    .is_ok();
                if truncated {
                    self.survive_truncation();
                }
            }
            Step::DeleteShm => {
                if std::fs::remove_file(self.shm()).is_ok() {
                    assert_eq!(self.daemon.wait_exit(Duration::from_secs(10)), Some(1));
                    let (daemon, socket) = spawn(&self.env);
                    self.daemon = daemon;
                    self.socket = socket;
                }
            }
        }
    }

    /// After the `-shm` file was truncated: SQLite maps that file, so the first touch of the
    /// mapping ends the process with SIGBUS. The service puts the length back before its own
    /// next use of SQLite (every lookup and write reads the commit counter first), which is
    /// what an idle service does; but a transaction already under way at the moment of the
    /// truncation (the once-a-second write-behind, a catch-up) touches it first, and then the
    /// process dies, as it must rather than read a WAL index of zeros mid-transaction, and
    /// systemd (`Restart=on-failure`) starts it again. Either outcome is allowed here; the
    /// checks after it are the same: what is served equals SQLite.
    fn survive_truncation(&mut self) {
        let answered = |socket: &Path| {
            std::panic::catch_unwind(|| lookup(socket, "dyn.example", "SOA")).is_ok()
        };
        // Two calls: a process dying of an earlier touch shows by the second at the latest.
        if answered(&self.socket) && answered(&self.socket) {
            let length = std::fs::metadata(self.shm()).map_or(0, |shm| shm.len());
            assert!(length > 0, "the -shm file's length was not put back");
            return;
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = self.daemon.exit_status() {
                break status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "a lookup failed but the daemon still runs:\n{}",
                self.daemon.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        use std::os::unix::process::ExitStatusExt as _;
        assert_eq!(
            status.signal(),
            Some(nix::sys::signal::Signal::SIGBUS as i32),
            "{status:?}"
        );
        let (daemon, socket) = spawn(&self.env);
        self.daemon = daemon;
        self.socket = socket;
    }

    /// What SQLite says name `name` has, as (type, content), SOA aside; and the serial.
    fn in_sqlite(&self, conn: &rusqlite::Connection, name: &str) -> BTreeSet<(String, String)> {
        conn.prepare(
            "SELECT record_type, ip FROM domains WHERE fqdn = ?1 AND ip IS NOT NULL
             UNION ALL SELECT type, content FROM records WHERE name = ?1",
        )
        .unwrap()
        .query_map([name], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    }

    /// Every name through the backend equals SQLite, and so does the zone's serial.
    fn check(&self, after: &Step) {
        // Read-write, as a later process would open it: it may have to rebuild the WAL index.
        let conn = rusqlite::Connection::open(&self.env.db).unwrap();
        conn.busy_timeout(Duration::from_secs(5)).unwrap();
        for host in 0..HOSTS {
            for name in [
                format!("h{host}.dyn.example"),
                format!("s{host}.dyn.example"),
            ] {
                let served = lookup(&self.socket, &name, "ANY")
                    .into_iter()
                    .filter(|(record_type, _)| record_type != "SOA")
                    .collect::<BTreeSet<_>>();
                assert_eq!(
                    served,
                    self.in_sqlite(&conn, &name),
                    "{name} after {after:?}"
                );
            }
        }
        let serial: i64 = conn
            .query_row(
                "SELECT serial FROM zones WHERE name = 'dyn.example'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        let soa = lookup(&self.socket, "dyn.example", "SOA");
        let served_serial = soa[0].1.split_whitespace().nth(2).unwrap().to_string();
        assert_eq!(served_serial, serial.to_string(), "serial after {after:?}");
    }
}

/// Starts the daemon with a unix backend socket.
fn spawn(env: &TestEnv) -> (Daemon, PathBuf) {
    let socket = env.dir.path().join("backend.sock");
    let _ = std::fs::remove_file(&socket);
    let daemon = env.spawn(&format!("listeners.backend-socket = {socket:?}"));
    (daemon, socket)
}

/// A lookup through the backend: (type, content) of each record.
fn lookup(socket: &Path, name: &str, qtype: &str) -> Vec<(String, String)> {
    let answer = unix_call(
        socket,
        &json!({"method": "lookup", "parameters": {"qname": format!("{name}."), "qtype": qtype,
                "zone-id": -1, "remote": "127.0.0.1", "local": "127.0.0.1",
                "real-remote": "127.0.0.1/32"}}),
    );
    assert!(
        !answer["result"].is_null(),
        "the backend failed on {name}: {answer}"
    );
    answer["result"]
        .as_array()
        .map(|records| {
            records
                .iter()
                .map(|record| {
                    (
                        record["qtype"].as_str().unwrap().to_string(),
                        record["content"].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 12,
        max_shrink_iters: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_lookup_equals_sqlite_after_every_write_by_anyone(steps in steps()) {
        if !require_tool("sqlite3") {
            return Ok(());
        }
        let mut case = Case::new();
        for step in &steps {
            case.run(step);
            case.check(step);
        }
    }
}
