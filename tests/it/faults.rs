//! Faults, as integration tests on the real binary: the process killed mid-load, the disk full,
//! the database read-only, missing or not a database. The promise under test is the store's:
//! an answer `good` means the change is committed with its audit row; a failed write answers
//! `dnserr` with nothing changed; and the process goes on serving.

use crate::common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{Daemon, TestEnv, unix_call};
use serde_json::json;

/// Hosts written by the crash test; each by one writer only, one request at a time.
const HOSTS: usize = 48;

/// Concurrent writers (one connection each at a time, a new connection per request).
const WRITERS: usize = 16;

/// What one host was sent: every address in order, each with whether it was acknowledged
/// `good` (requests to one host go one at a time: an unacknowledged one was cut off by a kill,
/// and may or may not have been committed).
#[derive(Debug, Default, Clone)]
struct Sent {
    addresses: Vec<(String, bool)>,
}

/// A seeded store with [`HOSTS`] A domains of `alice`; returns alice's API key.
fn seed(env: &TestEnv) -> String {
    let key = env.seed().alice_key;
    for host in 0..HOSTS {
        env.add_domain(&format!("c{host}.dyn.example"), "alice", "A", None);
    }
    key
}

/// Starts the daemon with a unix backend socket; returns it with the socket's path.
fn spawn(env: &TestEnv) -> (Daemon, std::path::PathBuf) {
    spawn_with(env, "", &[])
}

/// [`spawn`] with more config and environment variables.
fn spawn_with(
    env: &TestEnv,
    config: &str,
    envs: &[(&str, &std::ffi::OsStr)],
) -> (Daemon, std::path::PathBuf) {
    let socket = env.dir.path().join("backend.sock");
    let _ = std::fs::remove_file(&socket);
    // The socket is bound before the daemon reports it is listening.
    let daemon = env.spawn_with_env(
        &format!("listeners.backend-socket = {socket:?}\n{config}"),
        envs,
    );
    (daemon, socket)
}

/// The n-th address of writer `writer` in `round`: unique across the test.
fn address(writer: usize, round: usize, n: usize) -> String {
    let n = round * 20_000 + n;
    format!("10.{writer}.{}.{}", n / 250, 1 + n % 250)
}

/// Runs [`WRITERS`] writers against `daemon` until it goes away, recording what they sent;
/// `counter` counts the acknowledged updates.
fn load(
    daemon: &Daemon,
    key: &str,
    round: usize,
    sent: &Arc<Mutex<Vec<Sent>>>,
    counter: &Arc<AtomicUsize>,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..WRITERS)
        .map(|writer| {
            let addr = daemon.addr;
            let key = key.to_string();
            let sent = Arc::clone(sent);
            let counter = Arc::clone(counter);
            std::thread::spawn(move || {
                for n in 0.. {
                    // Writer w owns hosts w, w + WRITERS, ...: one request per host at a time.
                    let host = writer + WRITERS * (n % (HOSTS / WRITERS));
                    let ip = address(writer, round, n);
                    sent.lock().unwrap()[host]
                        .addresses
                        .push((ip.clone(), false));
                    let request = format!(
                        "GET /nic/update?hostname=c{host}.dyn.example&myip={ip} HTTP/1.1\r\n\
                         Host: x\r\nAuthorization: Bearer {key}\r\nConnection: close\r\n\r\n"
                    );
                    let Some((status, body)) = try_send(addr, request.as_bytes()) else {
                        // The daemon is gone: this request's fate is unknown.
                        return;
                    };
                    assert_eq!(
                        (status, body.as_str()),
                        (200, format!("good {ip}").as_str())
                    );
                    sent.lock().unwrap()[host]
                        .addresses
                        .last_mut()
                        .expect("pushed above")
                        .1 = true;
                    counter.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect()
}

/// Runs the writers against `daemon` until `acknowledged` updates were answered `good`, then
/// kills it with SIGKILL at that point, which the writers do not know; waits for them. Returns
/// how many updates were acknowledged in all.
fn kill_mid_load(
    daemon: &Daemon,
    key: &str,
    round: usize,
    sent: &Arc<Mutex<Vec<Sent>>>,
    acknowledged: usize,
) -> usize {
    let counter = Arc::new(AtomicUsize::new(0));
    let writers = load(daemon, key, round, sent, &counter);
    let deadline = Instant::now() + Duration::from_secs(60);
    while counter.load(Ordering::SeqCst) < acknowledged {
        assert!(Instant::now() < deadline, "the load never got going");
        std::thread::sleep(Duration::from_millis(5));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(daemon.pid()).unwrap()),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    for writer in writers {
        writer.join().expect("no writer saw a wrong answer");
    }
    counter.load(Ordering::SeqCst)
}

/// One HTTP exchange on a new connection: the status and body, or None if the connection
/// fails or ends before a whole answer.
fn try_send(addr: std::net::SocketAddr, request: &[u8]) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    stream.write_all(request).ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let length: usize = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse().ok())?
    })?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    (body.len() == length).then(|| (status, body.to_string()))
}

/// Checks the store against what was sent and acknowledged, and the served index against the
/// store, through the backend's unix socket.
fn check(env: &TestEnv, socket: &std::path::Path, sent: &[Sent]) {
    check_whole(env, socket, sent);
    check_acknowledged(env, sent);
}

/// Checks that what the store holds is whole, whatever was lost: the file's integrity, every
/// stored address one that was sent, with its audit row, and served as stored.
fn check_whole(env: &TestEnv, socket: &std::path::Path, sent: &[Sent]) {
    let conn = env.db();
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    let audited = audited(env);
    for (host, host_sent) in sent.iter().enumerate() {
        let fqdn = format!("c{host}.dyn.example");
        let stored = env.stored_ip(&fqdn, "A");
        if let Some(ip) = &stored {
            assert!(
                host_sent.addresses.iter().any(|(sent, _)| sent == ip),
                "{fqdn}: {ip} never sent"
            );
            assert_eq!(
                audited.get(ip),
                Some(&fqdn),
                "{fqdn}: {ip} stored without audit row"
            );
        }
        assert_eq!(
            served_a(socket, &fqdn),
            stored.clone().into_iter().collect::<Vec<_>>(),
            "{fqdn} served"
        );
    }
}

/// The audit rows: new address to name (every address sent is unique).
fn audited(env: &TestEnv) -> HashMap<String, String> {
    env.db()
        .prepare("SELECT new_ip, fqdn FROM domain_updates")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Checks that every acknowledged update is there: its audit row, and the stored address the
/// last acknowledged one or one sent after it to the same host.
fn check_acknowledged(env: &TestEnv, sent: &[Sent]) {
    let audited = audited(env);
    for (host, host_sent) in sent.iter().enumerate() {
        let fqdn = format!("c{host}.dyn.example");
        let stored = env.stored_ip(&fqdn, "A");
        for (ip, _) in host_sent.addresses.iter().filter(|(_, acked)| *acked) {
            assert_eq!(
                audited.get(ip),
                Some(&fqdn),
                "acknowledged {ip} of {fqdn} has no audit row"
            );
        }
        // The stored address is the last acknowledged one, or one sent after it to the same
        // host (committed, the answer lost with the process).
        let last_acknowledged = host_sent.addresses.iter().rposition(|(_, acked)| *acked);
        let allowed: Vec<&String> = host_sent.addresses[last_acknowledged.unwrap_or(0)..]
            .iter()
            .map(|(ip, _)| ip)
            .collect();
        match &stored {
            Some(ip) => assert!(
                allowed.contains(&ip),
                "{fqdn} holds {ip}, neither acknowledged last nor sent after: {allowed:?}"
            ),
            None => assert!(last_acknowledged.is_none(), "{fqdn} lost its address"),
        }
    }
}

#[test]
fn acknowledged_updates_survive_sigkill_mid_load_with_their_audit_rows() {
    let env = TestEnv::new();
    let key = seed(&env);
    let sent = Arc::new(Mutex::new(vec![Sent::default(); HOSTS]));
    let mut acknowledged_in_all = 0;
    for round in 0..3 {
        let (daemon, socket) = spawn(&env);
        if round > 0 {
            // After the previous kill: what the restarted service has and serves.
            check(&env, &socket, &sent.lock().unwrap());
        }
        acknowledged_in_all += kill_mid_load(&daemon, &key, round, &sent, 1500 + round * 250);
        drop(daemon);
    }
    let (_daemon, socket) = spawn(&env);
    check(&env, &socket, &sent.lock().unwrap());
    assert!(acknowledged_in_all >= 4500, "{acknowledged_in_all}");
}

/// Runs `serve` with `config` appended to a loopback config, expecting it to refuse to start:
/// its exit code and what it printed.
fn refused_start(env: &TestEnv, config: &str) -> (Option<i32>, String) {
    refused_start_as(env, config, &[])
}

/// [`refused_start`], run through `wrapper` (e.g. `setpriv` to another user).
fn refused_start_as(env: &TestEnv, config: &str, wrapper: &[&str]) -> (Option<i32>, String) {
    let path = env.config_path();
    std::fs::write(
        &path,
        format!(
            "store.database = {:?}\nlisteners.listen = \"127.0.0.1:0\"\nlisteners.backend-listen = \"127.0.0.1:0\"\n{config}",
            env.db
        ),
    )
    .unwrap();
    let mut command = match wrapper.split_first() {
        Some((program, args)) => {
            let mut command = std::process::Command::new(program);
            command.args(args).arg(common::BIN);
            command
        }
        None => std::process::Command::new(common::BIN),
    };
    let mut child = command
        .args(["serve", "--config", path.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve started on a database it should refuse");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let output = child.wait_with_output().unwrap();
    (
        output.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

#[test]
fn a_file_that_is_not_a_database_or_is_damaged_is_refused_at_start_and_left_as_it_is() {
    let env = TestEnv::new();
    let mut junk = vec![0u8; 64 * 1024];
    for (index, byte) in junk.iter_mut().enumerate() {
        *byte = u8::try_from(index * 7919 % 251).unwrap();
    }
    // A random file, a text file (a config given as the database), an empty-looking header.
    for content in [junk.clone(), b"[store]\ndatabase = \"x\"\n".to_vec()] {
        std::fs::write(&env.db, &content).unwrap();
        let (code, output) = refused_start(&env, "");
        assert_eq!(code, Some(1), "{output}");
        assert!(
            output.contains(&env.db.display().to_string())
                && output.contains("not a usable SQLite database"),
            "{output}"
        );
        assert!(std::fs::read(&env.db).unwrap() == content, "left as it is");
        let cli = env.cli(&["zone", "list"]);
        assert!(!cli.status.success());
        assert!(std::fs::read(&env.db).unwrap() == content, "left as it is");
    }
    // A real database with pages overwritten: SQLite's header is intact, its tables are not.
    std::fs::remove_file(&env.db).unwrap();
    env.seed();
    {
        // A -wal holding a commit the file has not had yet, as a crash leaves it.
        let conn = rusqlite::Connection::open(&env.db).unwrap();
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        )
        .unwrap();
        conn.execute_batch("UPDATE zones SET serial = serial + 1")
            .unwrap();
    }
    let mut damaged = std::fs::read(&env.db).unwrap();
    assert!(damaged.len() > 8 * 4096);
    damaged[3 * 4096..7 * 4096].fill(0x55);
    std::fs::write(&env.db, &damaged).unwrap();
    let (code, output) = refused_start(&env, "");
    assert_eq!(code, Some(1), "{output}");
    assert!(output.contains("quick_check"), "{output}");
    assert_eq!(
        output.trim_end().lines().count(),
        1,
        "one line says it all: {output}"
    );
    // Compared by digest: a failure must not print the whole file.
    let digest = |bytes: &[u8]| {
        use std::hash::{Hash as _, Hasher as _};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        bytes.hash(&mut hasher);
        (bytes.len(), hasher.finish())
    };
    // Also when a -wal holds commits the file has not had yet (the last CLI may leave one):
    // they are not checkpointed into a file that is refused.
    assert_eq!(
        digest(&std::fs::read(&env.db).unwrap()),
        digest(&damaged),
        "left as it is"
    );
}

#[test]
fn a_database_or_directory_this_user_cannot_write_is_refused_naming_which() {
    use std::os::unix::fs::PermissionsExt as _;
    if !nix::unistd::geteuid().is_root() {
        common::skip("needs root to run serve as another user");
        return;
    }
    let (env, data) = env_in_data_dir();
    env.seed();
    // Checkpointed and closed: no -wal or -shm left beside it.
    drop(rusqlite::Connection::open(&env.db).unwrap());
    let mode = |path: &std::path::Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    mode(env.dir.path(), 0o755);
    mode(&data, 0o755);
    let nobody = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--",
    ];
    // The file is root's, read-only for others.
    mode(&env.db, 0o644);
    std::fs::write(env.config_path(), "").unwrap();
    mode(&env.config_path(), 0o644);
    let (code, output) = refused_start_as(&env, "", &nobody);
    assert_eq!(code, Some(1), "{output}");
    assert!(
        output.contains(&format!("{} cannot be written", env.db.display()))
            && output.contains("Permission denied"),
        "{output}"
    );
    // The file is writable by all, but its directory is not: no -wal could be created.
    mode(&env.db, 0o666);
    let (code, output) = refused_start_as(&env, "", &nobody);
    assert_eq!(code, Some(1), "{output}");
    assert!(
        output.contains(&format!("{} cannot be written", data.display()))
            && output.contains("Permission denied"),
        "{output}"
    );
    mode(&data, 0o777);
    mode(&env.db, 0o600);
}

/// A small tmpfs the test mounts (as root) for the database; unmounted when dropped.
struct Mount {
    dir: std::path::PathBuf,
}

impl Mount {
    /// Mounts a tmpfs of `size` (e.g. `2m`) on `dir`; None (the test then passes, saying
    /// why) when mounting is not permitted here, unless `REQUIRE_E2E=1` as in CI.
    fn tmpfs(dir: &std::path::Path, size: &str) -> Option<Self> {
        std::fs::create_dir_all(dir).unwrap();
        let output = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .output();
        match output {
            Ok(output) if output.status.success() => Some(Self {
                dir: dir.to_path_buf(),
            }),
            other => {
                common::skip(&format!("cannot mount a tmpfs (needs root): {other:?}"));
                None
            }
        }
    }

    /// Remounts read-only (`ro`) or writable (`rw`).
    fn remount(&self, mode: &str) {
        let status = std::process::Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(&self.dir)
            .status()
            .unwrap();
        assert!(status.success(), "remount {mode}");
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.dir)
            .status();
    }
}

/// An environment whose database lives in a directory of its own (`data/`, returned), for
/// what the tests do to that directory; not seeded yet.
fn env_in_data_dir() -> (TestEnv, std::path::PathBuf) {
    let mut env = TestEnv::new();
    let data = env.dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    env.db = data.join("certadns.db");
    (env, data)
}

/// A seeded environment whose database lives on a tmpfs of `size` of its own (None: mounting
/// is not permitted here, see [`Mount::tmpfs`]).
fn seeded_on_tmpfs(size: &str) -> Option<(TestEnv, Mount)> {
    let (env, data) = env_in_data_dir();
    let mount = Mount::tmpfs(&data, size)?;
    env.seed();
    Some((env, mount))
}

/// alice's update of home.dyn.example to `ip`.
fn update_home(daemon: &Daemon, ip: &str) -> common::HttpResponse {
    daemon.update_basic(
        "alice",
        common::PASSWORD,
        &format!("hostname=home.dyn.example&myip={ip}"),
    )
}

/// A real pdns in front of the daemon's unix `socket`, from the shipped `pdns.unix.conf`
/// (caches on, purged through `api`).
fn pdns_on_unix(
    env: &TestEnv,
    socket: &std::path::Path,
    api: &common::PdnsApiEndpoint,
) -> common::Pdns {
    let shipped = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pdns-conf/pdns.unix.conf"),
    )
    .unwrap();
    let connection = shipped
        .lines()
        .find_map(|line| line.strip_prefix("remote-connection-string="))
        .unwrap()
        .replace("/run/certadns-ddns/backend.sock", socket.to_str().unwrap());
    common::Pdns::spawn(
        env.dir.path(),
        "pdns.unix.conf",
        &connection,
        api,
        "dyn.example",
    )
}

/// A lookup of `fqdn`'s A records through the backend's unix socket.
fn served_a(socket: &std::path::Path, fqdn: &str) -> Vec<String> {
    let answer = unix_call(
        socket,
        &json!({"method": "lookup", "parameters": {"qname": format!("{fqdn}."), "qtype": "A",
                "zone-id": -1, "remote": "127.0.0.1", "local": "127.0.0.1",
                "real-remote": "127.0.0.1/32"}}),
    );
    answer["result"]
        .as_array()
        .map(|records| {
            records
                .iter()
                .map(|record| record["content"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The zone's serial, the stored address and the audit rows of home.dyn.example.
fn state(env: &TestEnv) -> (i64, Option<String>, i64) {
    let conn = env.db();
    let serial: i64 = conn
        .query_row(
            "SELECT serial FROM zones WHERE name = 'dyn.example'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    let audit: i64 = conn
        .query_row(
            "SELECT count(*) FROM domain_updates WHERE fqdn = 'home.dyn.example'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    (serial, env.stored_ip("home.dyn.example", "A"), audit)
}

#[test]
fn a_read_only_database_is_refused_at_start_naming_the_file_and_why() {
    let Some((env, mount)) = seeded_on_tmpfs("8m") else {
        return;
    };
    // Read-only for root too: a read-only file system (as after an ext4 error, or a
    // read-only bind mount of the state directory).
    mount.remount("ro");
    let (code, output) = refused_start(&env, "");
    assert_eq!(code, Some(1), "{output}");
    assert!(
        output.contains(&env.db.display().to_string()) && output.contains("Read-only file system"),
        "{output}"
    );
    // Writable again: it starts, and updates are served at once.
    mount.remount("rw");
    let (daemon, socket) = spawn(&env);
    update_home(&daemon, "192.0.2.1").assert(200, "good 192.0.2.1");
    assert_eq!(served_a(&socket, "home.dyn.example"), ["192.0.2.1"]);
}

#[test]
fn a_full_disk_answers_dnserr_keeps_serving_and_recovers_when_space_is_freed() {
    if !common::require_tool("pdns_server") || !common::require_tool("dig") {
        return;
    }
    let Some((env, mount)) = seeded_on_tmpfs("4m") else {
        return;
    };
    // A real pdns in front, on the unix socket, its caches on and purged as shipped; and the
    // RFC 2136 listener, whose write is the same (SERVFAIL is its dnserr).
    let api = common::PdnsApiEndpoint::new();
    let key = env.dir.path().join("alice.key");
    std::fs::write(&key, env.cli_ok(&["tsig", "create", "alice"])).unwrap();
    let (daemon, socket) = spawn_with(
        &env,
        &format!(
            "listeners.update-dns-listen = \"127.0.0.1:0\"\n{}",
            api.daemon_config()
        ),
        &[],
    );
    let listener = daemon.logged_address("listening on rfc2136=udp+tcp://");
    let nsupdate = |ip: &str| {
        let mut child = std::process::Command::new("nsupdate")
            .args(["-t", "10", "-u", "3", "-r", "1", "-k"])
            .arg(&key)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        write!(
            child.stdin.take().unwrap(),
            "server 127.0.0.1 {}\nzone dyn.example\nupdate delete home.dyn.example A\n\
             update add home.dyn.example 60 A {ip}\nsend\n",
            listener.port()
        )
        .unwrap();
        let output = child.wait_with_output().unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stderr).to_string(),
        )
    };
    let pdns = pdns_on_unix(&env, &socket, &api);
    let dig_home = || common::dig(pdns.port, "home.dyn.example", "A", &[]).data("A");
    let update = |ip: &str| update_home(&daemon, ip);
    update("192.0.2.1").assert(200, "good 192.0.2.1");
    assert_eq!(dig_home(), ["192.0.2.1"]);
    // Fill the file system to the last byte.
    let filler = mount.dir.join("filler");
    {
        use std::io::Write as _;
        let mut file = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 4096];
        while file.write_all(&block).is_ok() {}
        let _ = file.write_all(&[0u8; 1]);
    }
    // Updates go on until the WAL needs space it cannot have: then `dnserr`, and each
    // answered `good` before that is really there.
    let mut failed_at = None;
    for n in 0..5000 {
        let ip = format!("10.0.{}.{}", n / 250, 1 + n % 250);
        let before = state(&env);
        let response = update(&ip);
        if response.status == 500 {
            assert_eq!(response.body, "dnserr");
            assert_eq!(
                state(&env),
                before,
                "nothing half-written by the failed update"
            );
            failed_at = Some(ip);
            break;
        }
        response.assert(200, &format!("good {ip}"));
        assert_eq!(served_a(&socket, "home.dyn.example"), [ip.as_str()]);
    }
    let failed = failed_at.expect("a full disk makes some update fail");
    let (_, stored, _) = state(&env);
    let stored = stored.unwrap();
    assert_ne!(stored, failed);
    // Still serving DNS and `nochg` for the address it has.
    assert_eq!(served_a(&socket, "home.dyn.example"), [stored.as_str()]);
    assert_eq!(dig_home(), [stored.as_str()]);
    update(&stored).assert(200, &format!("nochg {stored}"));
    update(&failed).assert(500, "dnserr");
    if common::require_tool("nsupdate") {
        let before = state(&env);
        let (ok, said) = nsupdate(&failed);
        assert!(!ok && said.contains("SERVFAIL"), "{said}");
        assert_eq!(
            state(&env),
            before,
            "nothing half-written through RFC 2136 either"
        );
    }
    std::fs::remove_file(&filler).unwrap();
    update(&failed).assert(200, &format!("good {failed}"));
    assert_eq!(served_a(&socket, "home.dyn.example"), [failed.as_str()]);
    assert_eq!(dig_home(), [failed.as_str()]);
    if common::require_tool("nsupdate") {
        let (ok, said) = nsupdate("192.0.2.250");
        assert!(ok, "{said}");
        assert_eq!(dig_home(), ["192.0.2.250"]);
    }
    let integrity: String = env
        .db()
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
}

/// `tests/faultshim/faultshim.c`, compiled once for this test run.
fn faultshim() -> &'static std::path::Path {
    static SHIM: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    SHIM.get_or_init(|| {
        let source =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/faultshim/faultshim.c");
        let output = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("faultshim.so");
        let status = std::process::Command::new("cc")
            .args(["-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-o"])
            .arg(&output)
            .arg(&source)
            .arg("-ldl")
            .status()
            .expect("a C compiler (cc) for the fault shim");
        assert!(status.success(), "compile {}", source.display());
        output
    })
}

/// The shim's environment: watching `watched`, faults from `control`, undo logs in `undo`.
fn shim_env<'a>(
    watched: &'a std::path::Path,
    control: &'a std::path::Path,
    undo: Option<&'a std::path::Path>,
) -> Vec<(&'static str, &'a std::ffi::OsStr)> {
    let mut envs = vec![
        ("LD_PRELOAD", faultshim().as_os_str()),
        ("FAULTSHIM_DIR", watched.as_os_str()),
        ("FAULTSHIM_CONTROL", control.as_os_str()),
    ];
    if let Some(undo) = undo {
        envs.push(("FAULTSHIM_UNDO", undo.as_os_str()));
    }
    envs
}

#[test]
fn write_errors_while_running_answer_dnserr_keep_serving_and_recover() {
    if !common::require_tool("pdns_server") || !common::require_tool("dig") {
        return;
    }
    let (env, data) = env_in_data_dir();
    env.seed();
    let control = env.dir.path().join("fault");
    let api = common::PdnsApiEndpoint::new();
    let (daemon, socket) = spawn_with(&env, &api.daemon_config(), &shim_env(&data, &control, None));
    let pdns = pdns_on_unix(&env, &socket, &api);
    let dig_home = || common::dig(pdns.port, "home.dyn.example", "A", &[]).data("A");
    let update = |ip: &str| update_home(&daemon, ip);
    update("192.0.2.1").assert(200, "good 192.0.2.1");
    assert_eq!(dig_home(), ["192.0.2.1"]);
    // The file system goes read-only under the running service (as ext4 does after an I/O
    // error), then fails outright, then fills up: each write is refused by the kernel.
    for (fault, ip) in [
        ("erofs", "192.0.2.2"),
        ("eio", "192.0.2.3"),
        ("enospc", "192.0.2.4"),
    ] {
        let before = state(&env);
        std::fs::write(&control, fault).unwrap();
        update(ip).assert(500, "dnserr");
        update(ip).assert(500, "dnserr");
        // Still serving: DNS, and a router repeating the address it has.
        update("192.0.2.1").assert(200, "nochg 192.0.2.1");
        assert_eq!(served_a(&socket, "home.dyn.example"), ["192.0.2.1"]);
        assert_eq!(dig_home(), ["192.0.2.1"]);
        std::fs::remove_file(&control).unwrap();
        assert_eq!(state(&env), before, "{fault}: nothing half-written");
    }
    update("192.0.2.5").assert(200, "good 192.0.2.5");
    assert_eq!(served_a(&socket, "home.dyn.example"), ["192.0.2.5"]);
    assert_eq!(dig_home(), ["192.0.2.5"]);
    assert!(
        daemon.log().contains("store failure"),
        "the cause is logged"
    );
}

/// Puts every file in `dir` back as it was at its last fsync, from the shim's undo logs in
/// `undo` (newest change undone first), and removes the `-shm` (memory, rebuilt by SQLite):
/// what a power cut leaves.
fn power_cut(dir: &std::path::Path, undo: &std::path::Path) -> usize {
    use std::os::unix::fs::{FileExt as _, MetadataExt as _};
    let mut undone = 0;
    let files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    for log in std::fs::read_dir(undo).unwrap() {
        let log = log.unwrap().path();
        let inode: u64 = log.file_stem().unwrap().to_str().unwrap().parse().unwrap();
        let Some(path) = files
            .iter()
            .find(|path| std::fs::metadata(path).is_ok_and(|meta| meta.ino() == inode))
        else {
            continue;
        };
        let bytes = std::fs::read(&log).unwrap();
        let mut records = Vec::new();
        let mut at = 0;
        while at + 24 <= bytes.len() {
            let word = |i: usize| {
                u64::from_ne_bytes(bytes[at + i * 8..at + i * 8 + 8].try_into().unwrap())
            };
            let (offset, length, size) = (word(0), word(1), word(2));
            let start = at + 24;
            let end = start + usize::try_from(length).unwrap();
            if end > bytes.len() {
                break;
            }
            records.push((offset, &bytes[start..end], size));
            at = end;
        }
        let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        for (offset, old, size) in records.into_iter().rev() {
            file.write_all_at(old, offset).unwrap();
            file.set_len(size).unwrap();
            undone += 1;
        }
    }
    for path in files {
        if path.to_string_lossy().ends_with("-shm") {
            std::fs::remove_file(path).unwrap();
        }
    }
    undone
}

/// Runs the writers under the shim, cuts the power mid-load, restarts on what is left and
/// checks it against what was acknowledged; returns the acknowledged updates that were lost.
fn load_then_power_cut(synchronous: Option<&str>) -> usize {
    let (env, data) = env_in_data_dir();
    let key = seed(&env);
    let undo = env.dir.path().join("undo");
    std::fs::create_dir(&undo).unwrap();
    let control = env.dir.path().join("no-fault");
    let sent = Arc::new(Mutex::new(vec![Sent::default(); HOSTS]));
    let acknowledged;
    {
        let (daemon, _) = spawn_with(
            &env,
            &synchronous.map_or_else(String::new, |level| {
                format!("store.synchronous = \"{level}\"")
            }),
            &shim_env(&data, &control, Some(&undo)),
        );
        acknowledged = kill_mid_load(&daemon, &key, 0, &sent, 1000);
    }
    let undone = power_cut(&data, &undo);
    let (_daemon, socket) = spawn(&env);
    let sent = sent.lock().unwrap();
    // Whatever was lost, what is there is whole: integrity, audit rows, the served index.
    check_whole(&env, &socket, &sent);
    let lost = sent
        .iter()
        .enumerate()
        .filter(|(host, host_sent)| {
            let stored = env.stored_ip(&format!("c{host}.dyn.example"), "A");
            let last = host_sent.addresses.iter().rposition(|(_, acked)| *acked);
            last.is_some_and(|last| {
                !host_sent.addresses[last..]
                    .iter()
                    .any(|(ip, _)| Some(ip) == stored.as_ref())
            })
        })
        .count();
    if lost == 0 {
        check_acknowledged(&env, &sent);
    }
    eprintln!(
        "synchronous = {synchronous:?}: {acknowledged} updates acknowledged, {undone} writes \
         undone by the power cut, {lost} of {HOSTS} hosts lost their acknowledged address"
    );
    lost
}

#[test]
fn with_the_default_synchronous_full_acknowledged_updates_survive_a_power_cut() {
    assert_eq!(
        load_then_power_cut(None),
        0,
        "hosts whose acknowledged address was lost"
    );
}

#[test]
fn with_synchronous_normal_a_power_cut_loses_acknowledged_updates_but_nothing_is_half_written() {
    // What `normal` promises less of, shown by the same simulation (and proof that it does
    // drop what was not synced): acknowledged updates since the last checkpoint are gone.
    let lost = load_then_power_cut(Some("normal"));
    assert!(
        lost > 0,
        "the simulated power cut lost nothing: is the shim loaded?"
    );
}

/// A stand-in for pdns's HTTP API: answers every request with 500 while `failing`, else 200,
/// recording each request's target; keep-alive, as hyper's client uses it.
struct FakeApi {
    addr: std::net::SocketAddr,
    failing: Arc<std::sync::atomic::AtomicBool>,
    seen: Arc<Mutex<Vec<String>>>,
    connections: Arc<AtomicUsize>,
}

impl FakeApi {
    fn start() -> Self {
        use std::io::{BufRead as _, Write as _};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let api = Self {
            addr: listener.local_addr().unwrap(),
            failing: Arc::default(),
            seen: Arc::default(),
            connections: Arc::default(),
        };
        let (failing, seen, connections) = (
            Arc::clone(&api.failing),
            Arc::clone(&api.seen),
            Arc::clone(&api.connections),
        );
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                connections.fetch_add(1, Ordering::SeqCst);
                let (failing, seen) = (Arc::clone(&failing), Arc::clone(&seen));
                std::thread::spawn(move || {
                    let mut writer = stream.try_clone().unwrap();
                    let mut reader = std::io::BufReader::new(stream);
                    loop {
                        let mut request_line = String::new();
                        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                            return;
                        }
                        loop {
                            let mut header = String::new();
                            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                                return;
                            }
                            if header == "\r\n" {
                                break;
                            }
                        }
                        let target = request_line.split(' ').nth(1).unwrap_or_default();
                        seen.lock().unwrap().push(target.to_string());
                        let answer = if failing.load(Ordering::SeqCst) {
                            "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\n\r\nbroke"
                                .to_string()
                        } else {
                            let body = r#"{"count": 1, "result": "Flushed cache."}"#;
                            format!(
                                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                                body.len()
                            )
                        };
                        if writer.write_all(answer.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        api
    }

    /// The flushes asked for since the last call, as `domain` values.
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.seen.lock().unwrap())
            .into_iter()
            .map(|target| {
                let domain = target.split("domain=").nth(1).unwrap_or_default();
                domain.replace("%2E", ".").replace("%2e", ".")
            })
            .collect()
    }
}

#[test]
fn a_failing_pdns_api_delays_no_update_and_its_cache_is_flushed_when_it_answers_again() {
    let env = TestEnv::new();
    let key = seed(&env);
    let api = FakeApi::start();
    let daemon = env.spawn(&format!(
        "pdns.purge-wait-ms = 300\n[[pdns.api]]\napi-url = \"http://{}\"\napi-key = \"k\"\n",
        api.addr
    ));
    let update = |host: usize, ip: &str| {
        let started = Instant::now();
        daemon
            .update_bearer(&key, &format!("hostname=c{host}.dyn.example&myip={ip}"))
            .assert(200, &format!("good {ip}"));
        started.elapsed()
    };
    // A first address purges the zone (the name may be cached as nonexistent), a change the
    // name.
    update(0, "192.0.2.1");
    update(0, "192.0.2.2");
    assert_eq!(api.take(), ["dyn.example.", "c0.dyn.example."]);

    // The API fails while updates flood in (8 clients, 4 s): each is answered within the
    // purge wait, and the API sees one connection, not one per update.
    api.failing.store(true, Ordering::SeqCst);
    let connections_before = api.connections.load(Ordering::SeqCst);
    let slowest = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..8)
            .map(|worker| {
                let update = &update;
                scope.spawn(move || {
                    let started = Instant::now();
                    let mut slowest = Duration::ZERO;
                    let mut n = 0;
                    while started.elapsed() < Duration::from_secs(4) {
                        n += 1;
                        let ip = format!("10.{worker}.{}.{}", n / 250, 1 + n % 250);
                        slowest = slowest.max(update(worker, &ip));
                    }
                    slowest
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| worker.join().unwrap())
            .max()
            .unwrap()
    });
    eprintln!("slowest answer while the API failed: {slowest:?}");
    assert!(
        slowest < Duration::from_millis(1500),
        "slowest answer {slowest:?}"
    );
    assert!(
        api.connections.load(Ordering::SeqCst) <= connections_before + 1,
        "one kept-alive connection to the API"
    );
    assert!(
        daemon
            .log()
            .contains("pdns cache purge failed after retries"),
        "the lost purges are logged"
    );
    api.take();

    // The API answers again: the whole cache is flushed (what was cached meanwhile may be
    // stale), then purges go by name as before.
    api.failing.store(false, Ordering::SeqCst);
    update(0, "192.0.2.9");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !api.take().iter().any(|domain| domain == ".") {
        assert!(
            Instant::now() < deadline,
            "no whole-cache flush after the API came back"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    daemon.wait_for_log("pdns API answers again");
    update(0, "192.0.2.10");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let flushed = api.take();
        if flushed.iter().any(|domain| domain == "c0.dyn.example.") {
            assert!(!flushed.iter().any(|domain| domain == "."), "{flushed:?}");
            break;
        }
        assert!(Instant::now() < deadline, "purges by name did not resume");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_deleted_shm_file_stops_the_service_for_a_restart_instead_of_splitting_the_database() {
    let env = TestEnv::new();
    env.seed();
    let (mut daemon, _) = spawn(&env);
    daemon
        .update_basic(
            "alice",
            common::PASSWORD,
            "hostname=home.dyn.example&myip=192.0.2.1",
        )
        .assert(200, "good 192.0.2.1");
    // Deleted by hand or by a tool: the next process (the CLI, sqlite3) would make a new one
    // that this one's connections never see, and writers would no longer exclude each other.
    let mut shm = env.db.as_os_str().to_owned();
    shm.push("-shm");
    std::fs::remove_file(&shm).unwrap();
    assert_eq!(daemon.wait_exit(Duration::from_secs(10)), Some(1));
    let log = daemon.log();
    assert!(log.contains("-shm file of"), "{log}");
    // A restart joins the others again: the change is there, and updates go on.
    let (daemon, socket) = spawn(&env);
    assert_eq!(served_a(&socket, "home.dyn.example"), ["192.0.2.1"]);
    daemon
        .update_basic(
            "alice",
            common::PASSWORD,
            "hostname=home.dyn.example&myip=192.0.2.2",
        )
        .assert(200, "good 192.0.2.2");
}

/// Issue 29, item 2: a second `serve` on the same database (other ports: nothing else stops it)
/// is refused, naming the database and the process serving it; the first keeps serving, and
/// once it stops the lock is free again.
#[test]
fn a_second_serve_on_the_same_database_is_refused_naming_the_first() {
    let env = TestEnv::new();
    let seed = env.seed();
    let first = env.spawn("");
    let (code, output) = refused_start(&env, "");
    assert_eq!(code, Some(1), "{output}");
    assert!(
        output.contains(&format!(
            "{} is served already, by process {}",
            env.db.display(),
            first.pid()
        )),
        "{output}"
    );
    first
        .update_bearer(&seed.alice_key, "hostname=home.dyn.example&myip=192.0.2.8")
        .assert(200, "good 192.0.2.8");
    drop(first);
    let second = env.spawn("");
    second
        .update_bearer(&seed.alice_key, "hostname=home.dyn.example&myip=192.0.2.9")
        .assert(200, "good 192.0.2.9");
}
