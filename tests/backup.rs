//! `certadns-ddns backup PATH` against the running service, and the documented restore (stop,
//! put the copy in place, start).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use common::TestEnv;

/// Adds `count` more DDNS domains to the store (SQL: the CLI takes a process per domain), so
/// that a copy takes a while.
fn grow(env: &TestEnv, count: u32) {
    let mut conn = rusqlite::Connection::open(&env.db).unwrap();
    let tx = conn.transaction().unwrap();
    for n in 0..count {
        tx.execute(
            "INSERT INTO domains (fqdn, user_id, zone_id, record_type, ip, created_at, updated_at)
             VALUES (?1, 1, 1, 'A', ?2, 't', 't')",
            (
                format!("bulk{n}.dyn.example"),
                format!("10.{}.{}.1", n / 250, n % 250),
            ),
        )
        .unwrap();
    }
    tx.commit().unwrap();
}

#[test]
fn a_backup_taken_while_updates_run_is_consistent_and_restores() {
    let env = TestEnv::new();
    let seed = env.seed();
    grow(&env, 30_000);
    let mut daemon = env.spawn("");

    // A router updating without pause, each answer noted with the time it came.
    let stop = Arc::new(AtomicBool::new(false));
    let updater = {
        let stop = Arc::clone(&stop);
        let addr = daemon.addr;
        let key = seed.alice_key.clone();
        std::thread::spawn(move || {
            let mut answered = Vec::new();
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let ip = format!("198.51.{}.{}", (n / 250) % 250, n % 250 + 1);
                let response = common::send_raw(
                    addr,
                    format!(
                        "GET /nic/update?hostname=home.dyn.example&myip={ip} HTTP/1.1\r\n\
                         Host: x\r\nAuthorization: Bearer {key}\r\nConnection: close\r\n\r\n"
                    )
                    .as_bytes(),
                );
                answered.push((Instant::now(), response.status, response.body));
            }
            answered
        })
    };
    // The copies start once the updates do.
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    while env.stored_ip("home.dyn.example", "A").is_none() {
        assert!(Instant::now() < deadline, "no update committed");
        std::thread::yield_now();
    }
    let backups: Vec<_> = (1..=2)
        .map(|n| env.dir.path().join(format!("backup-{n}.db")))
        .collect();
    let mut windows = Vec::new();
    for path in &backups {
        let started = Instant::now();
        let out = env.cli_ok(&["backup", path.to_str().unwrap()]);
        windows.push((started, Instant::now()));
        assert!(
            out.starts_with(&format!("wrote {}", path.display())),
            "{out}"
        );
    }
    stop.store(true, Ordering::Relaxed);
    let answered = updater.join().unwrap();
    assert!(answered.len() > 10, "{}", answered.len());
    for (_, status, body) in &answered {
        assert!(
            *status == 200 && body.starts_with("good "),
            "{status} {body}"
        );
    }
    // Updates went on while each copy was written.
    for (started, ended) in &windows {
        let during = answered
            .iter()
            .filter(|(at, _, _)| at > started && at < ended)
            .count();
        assert!(during > 0, "no update answered during a backup");
    }

    for path in &backups {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let copy = rusqlite::Connection::open(path).unwrap();
        let check: String = copy
            .query_row("PRAGMA integrity_check", [], |row| row.get(0))
            .unwrap();
        assert_eq!(check, "ok");
        // One snapshot: the address and its audit row are both in the copy, or neither.
        let (ip, last_new_ip): (Option<String>, Option<String>) = copy
            .query_row(
                "SELECT d.ip, (SELECT new_ip FROM domain_updates u WHERE u.domain_id = d.id
                               ORDER BY u.id DESC LIMIT 1)
                 FROM domains d WHERE d.fqdn = 'home.dyn.example'",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .unwrap();
        assert!(ip.is_some());
        assert_eq!(ip, last_new_ip);
        let domains: i64 = copy
            .query_row("SELECT count(*) FROM domains", [], |row| row.get(0))
            .unwrap();
        assert_eq!(domains, 30_003);
    }
    // A backup never overwrites.
    let again = env.cli(&["backup", backups[0].to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));

    // Restore: stop, put the copy in place of the database and drop its -wal and -shm, start.
    let restored_ip: String = rusqlite::Connection::open(&backups[0])
        .unwrap()
        .query_row(
            "SELECT ip FROM domains WHERE fqdn = 'home.dyn.example'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(daemon.terminate(), Some(0));
    drop(daemon);
    std::fs::copy(&backups[0], &env.db).unwrap();
    for suffix in ["-wal", "-shm"] {
        let mut name = env.db.clone().into_os_string();
        name.push(suffix);
        let _ = std::fs::remove_file(name);
    }
    let daemon = env.spawn("");
    daemon
        .update_bearer(
            &seed.alice_key,
            &format!("hostname=home.dyn.example&myip={restored_ip}"),
        )
        .assert(200, &format!("nochg {restored_ip}"));
    daemon
        .update_bearer(
            &seed.alice_key,
            "hostname=home.dyn.example&myip=192.0.2.200",
        )
        .assert(200, "good 192.0.2.200");
    assert_eq!(
        env.stored_ip("home.dyn.example", "A").as_deref(),
        Some("192.0.2.200")
    );
}

#[test]
fn a_backup_of_a_missing_database_creates_nothing() {
    let env = TestEnv::new();
    let target = env.dir.path().join("copy.db");
    let out = env.cli(&["backup", target.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no database at"));
    assert!(!env.db.exists() && !target.exists());
}
