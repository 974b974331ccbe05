//! `certadns-ddns backup PATH` against the running service, and the documented restore (stop,
//! put the copy in place, start).

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::common::TestEnv;

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
    let env = TestEnv::without_database();
    let target = env.dir.path().join("copy.db");
    let out = env.cli(&["backup", target.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no database at"));
    assert!(!env.db.exists() && !target.exists());
}

/// The restore that keeps DNS up: the copy is staged as `<database>.restore` and the service
/// restarted (under systemd, or here its stand-in): the next process puts the copy in place
/// before it opens anything, and carries on with the connections pdns holds. A connection
/// held across the restart (as pdns's are) answers from the restored data; updates go on.
#[test]
fn a_staged_restore_is_a_restart_that_keeps_pdns_connected() {
    use std::io::{BufRead as _, BufReader, Write as _};
    let env = TestEnv::new();
    let seed = env.seed();
    let socket = env.dir.path().join("backend.sock");
    let http_port = common::free_port();
    env.write_config(&format!(
        "listeners.listen = \"127.0.0.1:{http_port}\"\nlisteners.backend-socket = {socket:?}\n"
    ));
    let manager = common::service_manager::ServiceManager::new(env.dir.path());
    let config = env.config_path();
    let start = || manager.serve(&config);
    let mut daemon = start();
    daemon
        .update_bearer(&seed.alice_key, "hostname=home.dyn.example&myip=192.0.2.10")
        .assert(200, "good 192.0.2.10");
    let copy = env.dir.path().join("copy.db");
    env.cli_ok(&["backup", copy.to_str().unwrap()]);
    daemon
        .update_bearer(&seed.alice_key, "hostname=home.dyn.example&myip=192.0.2.20")
        .assert(200, "good 192.0.2.20");

    // pdns's connection, held throughout.
    let pdns = std::os::unix::net::UnixStream::connect(&socket).unwrap();
    let mut answers = BufReader::new(pdns.try_clone().unwrap());
    let mut lookup = || -> String {
        (&pdns)
            .write_all(
                b"{\"method\":\"lookup\",\"parameters\":{\"qname\":\"home.dyn.example.\",\"qtype\":\"A\",\"zone-id\":-1}}\n",
            )
            .unwrap();
        let mut line = String::new();
        answers.read_line(&mut line).unwrap();
        let reply: serde_json::Value = serde_json::from_str(&line).expect("an answer");
        reply["result"][0]["content"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(lookup(), "192.0.2.20");

    // A damaged copy staged: the restart refuses it, says so and what to do, puts it aside,
    // and serves the database as it was.
    let mut staged = env.db.clone().into_os_string();
    staged.push(".restore");
    let staged = std::path::PathBuf::from(staged);
    std::fs::write(&staged, b"not a database").unwrap();
    assert_eq!(daemon.terminate(), Some(0));
    daemon = start();
    let log = daemon.log();
    assert!(
        log.contains("restore refused") && log.contains("stage a good copy"),
        "{log}"
    );
    assert!(!staged.exists());
    assert_eq!(
        lookup(),
        "192.0.2.20",
        "the same connection, the data as it was"
    );
    std::fs::copy(&copy, &staged).unwrap();
    assert_eq!(daemon.terminate(), Some(0));

    // The restart that restores.
    daemon = start();
    assert!(!staged.exists());
    assert!(
        daemon
            .log()
            .contains("restored the database from the staged copy")
    );
    assert_eq!(
        lookup(),
        "192.0.2.10",
        "the same connection, the restored data"
    );
    daemon
        .update_bearer(&seed.alice_key, "hostname=home.dyn.example&myip=192.0.2.30")
        .assert(200, "good 192.0.2.30");
    assert_eq!(lookup(), "192.0.2.30");
}
