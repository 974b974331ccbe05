//! The service under attack: every limit tried the way an attacker would, on the real binary,
//! with a legitimate client checked to still get through.
//!
//! Distinct clients come from distinct loopback addresses (127.0.0.2, 127.0.0.3, ...), with
//! `trusted-proxies` narrowed to 127.0.0.1 so that they count as ordinary clients. Memory is
//! read from `/proc/PID/status`; times are generous bounds that fail clearly when a protection
//! is missing, not benchmarks.

use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use crate::common::{
    Daemon, HttpResponse, TestEnv, basic, connect_from, parse_response, unix_call,
};

/// Config for tests with several clients: only 127.0.0.1 is a proxy.
const CLIENTS: &str = "updates.trusted-proxies = [\"127.0.0.1/32\"]";

/// Sends `raw` from `source` and reads the answer until the server closes.
fn request_from(source: [u8; 4], target: SocketAddr, raw: &str) -> Option<HttpResponse> {
    let mut stream = connect_from(source, target).ok()?;
    stream.write_all(raw.as_bytes()).ok()?;
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).ok()?;
    (!bytes.is_empty()).then(|| parse_response(&bytes))
}

/// A GET of `target` with `headers`, closing the connection after the answer.
fn get(target: &str, headers: &[(&str, &str)]) -> String {
    let mut raw = format!("GET {target} HTTP/1.1\r\nHost: ddns.test\r\nConnection: close\r\n");
    for (name, value) in headers {
        raw.push_str(&format!("{name}: {value}\r\n"));
    }
    raw.push_str("\r\n");
    raw
}

/// A `/proc/PID/status` field, in kB.
fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("read /proc status")
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kb| kb.parse().ok())
        .unwrap_or_else(|| panic!("no {field} for {pid}"))
}

/// Seeds alice (plus) with `home.dyn.example` and an API key; returns the key.
fn seed(env: &TestEnv) -> String {
    env.seed().alice_key
}

/// An update with alice's key must still be answered quickly.
fn timed_key_update(daemon: &Daemon, key: &str, ip: &str) -> Duration {
    let started = Instant::now();
    daemon
        .update_bearer(key, &format!("hostname=home.dyn.example&myip={ip}"))
        .assert(200, &format!("good {ip}"));
    started.elapsed()
}

#[test]
fn a_burst_of_wrong_passwords_is_bounded_in_memory_and_never_blocks_api_keys() {
    let env = TestEnv::new();
    let key = seed(&env);
    let daemon = env.spawn(&format!(
        "{CLIENTS}\nlimits.auth-failure-limit = 10\nlog-level = \"info\""
    ));
    let pid = daemon.pid();
    let before = status_kb(pid, "VmHWM:");
    let addr = daemon.addr;
    let burst = 1000;
    let started = Instant::now();
    let answers: Vec<Option<u16>> = std::thread::scope(|scope| {
        let attackers: Vec<_> = (0..burst)
            .map(|n| {
                scope.spawn(move || {
                    let source = [127, 0, 1, (n % 50) as u8 + 2];
                    let raw = get(
                        "/nic/update?hostname=home.dyn.example&myip=192.0.2.9",
                        &[(
                            "Authorization",
                            &basic(&format!("guess{n}"), "wrong password"),
                        )],
                    );
                    request_from(source, addr, &raw).map(|response| response.status)
                })
            })
            .collect();
        // Meanwhile, the owner's router with its API key.
        std::thread::sleep(Duration::from_millis(200));
        let during = timed_key_update(&daemon, &key, "192.0.2.77");
        assert!(
            during < Duration::from_secs(1),
            "API-key update took {during:?}"
        );
        attackers
            .into_iter()
            .map(|attacker| attacker.join().expect("attacker thread"))
            .collect()
    });
    let peak = status_kb(pid, "VmHWM:");
    assert!(
        answers
            .iter()
            .all(|status| matches!(status, Some(401 | 503))),
        "every request gets badauth or 911, none a reset: {:?}",
        answers
            .iter()
            .filter(|s| !matches!(s, Some(401 | 503)))
            .count()
    );
    assert!(
        answers.contains(&Some(503))
            || answers.iter().filter(|s| **s == Some(401)).count() == burst,
        "the queue refused some, or the throttle answered all cheaply"
    );
    assert!(
        peak < 300 * 1024,
        "peak RSS {peak} kB (was {before} kB before the burst)"
    );
    eprintln!(
        "{burst} wrong passwords in {:?}: peak RSS {} MB (before {} MB); 401: {}, 503: {}",
        started.elapsed(),
        peak / 1024,
        before / 1024,
        answers.iter().filter(|s| **s == Some(401)).count(),
        answers.iter().filter(|s| **s == Some(503)).count()
    );
    // The service goes on: the right password still works.
    daemon
        .update_basic(
            "alice",
            common::PASSWORD,
            "hostname=home.dyn.example&myip=192.0.2.78",
        )
        .assert(200, "good 192.0.2.78");
}

#[test]
fn huge_backend_names_cost_nothing_and_stall_nobody() {
    let env = TestEnv::new();
    seed(&env);
    let socket = env.dir.path().join("backend.sock");
    let daemon = env.spawn(&format!("listeners.backend-socket = {socket:?}"));
    // Under the 64 KB body cap, so the name check itself must refuse them.
    let qname = "a.".repeat(30_000);
    let lookup = serde_json::json!({"method": "lookup",
        "parameters": {"qname": qname, "qtype": "ANY", "zone-id": -1}})
    .to_string();
    let huge = format!(
        "{{\"method\":\"lookup\",\"parameters\":{{\"qname\":\"{}\"}}}}",
        "a.".repeat(100_000)
    );
    let started = Instant::now();
    let backend = daemon.backend_addr;
    let my_ip = std::thread::scope(|scope| {
        let attackers: Vec<_> = (0..4)
            .map(|n| {
                let (lookup, huge) = (&lookup, &huge);
                scope.spawn(move || {
                    let body = if n % 2 == 0 { lookup } else { huge };
                    let raw = format!(
                        "POST /dns HTTP/1.1\r\nHost: x\r\nContent-Type: text/javascript\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    let response = common::send_raw(backend, raw.as_bytes());
                    assert!(
                        response.body.contains("\"result\":false") || response.status >= 400,
                        "{response:?}"
                    );
                })
            })
            .collect();
        let asked = Instant::now();
        daemon.get("/domains/my-ip", &[]);
        let my_ip = asked.elapsed();
        for attacker in attackers {
            attacker.join().expect("attacker");
        }
        my_ip
    });
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    assert!(my_ip < Duration::from_millis(200), "{my_ip:?}");
    // The unix socket refuses the same name, and the connection goes on.
    let stream = UnixStream::connect(&socket).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    writeln!(writer, "{lookup}").unwrap();
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(
        line.contains("\"result\":false") && line.contains("not a DNS name"),
        "{line}"
    );
    writeln!(
        writer,
        "{}",
        serde_json::json!({"method": "lookup", "parameters": {"qname": "dyn.example.", "qtype": "SOA", "zone-id": -1}})
    )
    .unwrap();
    line.clear();
    reader.read_line(&mut line).unwrap();
    assert!(line.contains("SOA"), "{line}");
}

#[test]
fn one_client_cannot_hold_every_connection() {
    let env = TestEnv::new();
    seed(&env);
    let daemon = env.spawn(CLIENTS);
    let addr = daemon.addr;
    // 1,100 half-sent requests from one address.
    let held: Vec<TcpStream> = (0..1100)
        .filter_map(|_| {
            let mut stream = connect_from([127, 0, 0, 2], addr).ok()?;
            stream
                .write_all(b"GET /nic/update HTTP/1.1\r\nHost: x\r\n")
                .ok()?;
            Some(stream)
        })
        .collect();
    let started = Instant::now();
    let response = request_from([127, 0, 0, 3], addr, &get("/domains/my-ip", &[]))
        .expect("another client is answered");
    assert_eq!(response.status, 200);
    assert!(response.body.contains("127.0.0.3"), "{response:?}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    // The cap closed all but 64 of them at once.
    let closed = held
        .iter()
        .filter(|stream| {
            stream
                .set_read_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            let mut byte = [0; 1];
            match (&**stream).read(&mut byte) {
                Ok(read) => read == 0,
                Err(error) => !matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ),
            }
        })
        .count();
    assert!(closed >= 1100 - 64, "only {closed} closed");
    drop(held);

    // A trusted proxy carries many clients: never capped at 64.
    let proxied: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect(addr).expect("connect from the proxy"))
        .collect();
    for mut stream in proxied {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
            .write_all(get("/domains/my-ip", &[("X-Forwarded-For", "198.51.100.7")]).as_bytes())
            .unwrap();
        let mut bytes = Vec::new();
        stream.read_to_end(&mut bytes).unwrap();
        let response = parse_response(&bytes);
        assert!(response.body.contains("198.51.100.7"), "{response:?}");
    }

    // A connection that says nothing is closed after the first-byte timeout.
    let silent = connect_from([127, 0, 0, 4], addr).unwrap();
    let started = Instant::now();
    let mut byte = [0; 1];
    assert_eq!((&silent).read(&mut byte).unwrap_or(0), 0);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn client_strings_cannot_forge_log_lines_and_logins_are_never_logged() {
    let env = TestEnv::new();
    let key = seed(&env);
    let daemon = env.spawn("log-level = \"info\"\nlimits.auth-failure-limit = 10");
    let forged = "FORGED-LINE INFO update answered outcome=good";
    let response = daemon.get(
        &format!(
            "/nic/update?hostname=home.dyn.example%0A{}&myip=192.0.2.3",
            forged.replace(' ', "%20")
        ),
        &[("Authorization", &format!("Bearer {key}"))],
    );
    assert_eq!(response.status, 400, "{response:?}");
    let long = "h".repeat(5000);
    daemon.get(
        &format!("/nic/update?hostname={long}.dyn.example"),
        &[("Authorization", &format!("Bearer {key}"))],
    );
    let typed = "hunter2-my-password-in-the-login-field";
    for _ in 0..12 {
        daemon.update_basic(typed, "x", "hostname=home.dyn.example");
    }
    daemon.wait_for_log("repeated authentication failures");
    let log = daemon.log();
    assert!(
        !log.lines().any(|line| line.starts_with("FORGED-LINE")),
        "a line was forged:\n{log}"
    );
    assert!(
        log.contains("\\nFORGED-LINE"),
        "the attempt is logged, escaped:\n{log}"
    );
    assert!(!log.contains(&long), "long client strings are cut");
    assert!(
        !log.contains(typed),
        "a typed login never reaches the log:\n{log}"
    );
}

#[test]
fn junk_logins_take_bounded_memory() {
    let env = TestEnv::new();
    seed(&env);
    let daemon = env.spawn(&format!("{CLIENTS}\nlimits.auth-failure-limit = 10"));
    let pid = daemon.pid();
    let addr = daemon.addr;
    // Warm up, then measure.
    let send = |range: std::ops::Range<usize>, source: u8| {
        let mut stream = connect_from([127, 0, 2, source], addr).unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        for n in range {
            let login = format!("{n:0>200}");
            let raw = format!(
                "GET /nic/update?hostname=home.dyn.example HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\n\r\n",
                basic(&login, "x")
            );
            stream.write_all(raw.as_bytes()).unwrap();
            let mut status = String::new();
            reader.read_line(&mut status).unwrap();
            assert!(status.contains(" 401 "), "{status}");
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap();
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
        }
    };
    send(0..2000, 2);
    let before = status_kb(pid, "VmRSS:");
    std::thread::scope(|scope| {
        for thread in 0..4 {
            let send = &send;
            scope.spawn(move || send(thread * 25_000..(thread + 1) * 25_000, 3 + thread as u8));
        }
    });
    let after = status_kb(pid, "VmRSS:");
    eprintln!(
        "100,000 junk logins: RSS {} -> {} MB",
        before / 1024,
        after / 1024
    );
    assert!(
        after < before + 50 * 1024,
        "RSS grew from {before} to {after} kB"
    );
    // Logins beyond 254 bytes are badauth before any lookup.
    daemon
        .update_basic(&"x".repeat(300), "x", "hostname=home.dyn.example")
        .assert(401, "badauth");
}

#[test]
fn impossible_addresses_are_refused_and_change_nothing() {
    let env = TestEnv::new();
    let key = seed(&env);
    let daemon = env.spawn("");
    let bearer = format!("Bearer {key}");
    daemon
        .get(
            "/nic/update?hostname=home.dyn.example&myip=192.0.2.1",
            &[("Authorization", &bearer)],
        )
        .assert(200, "good 192.0.2.1");
    let audits = env.audit_count();
    for bad in [
        "0.0.0.0",
        "::",
        "255.255.255.255",
        "224.0.0.1",
        "239.255.255.250",
        "ff02::1",
        "::ffff:224.0.0.251",
        "192.0.2.5,::",
    ] {
        daemon
            .get(
                &format!("/nic/update?hostname=home.dyn.example&myip={bad}"),
                &[("Authorization", &bearer)],
            )
            .assert(400, "invalid IP address");
    }
    assert_eq!(
        env.stored_ip("home.dyn.example", "A").as_deref(),
        Some("192.0.2.1")
    );
    assert_eq!(env.audit_count(), audits);
    // LAN addresses stay allowed, and tagged.
    daemon
        .get(
            "/nic/update?hostname=home.dyn.example&myip=192.168.1.20",
            &[("Authorization", &bearer)],
        )
        .assert(200, "good 192.168.1.20");
    let tags: String = env
        .db()
        .query_row(
            "SELECT ip_tags FROM domain_updates ORDER BY id DESC LIMIT 1",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert!(tags.contains("private"), "{tags}");
}

/// Sends one lookup over the unix socket; returns the reply.
fn unix_lookup(socket: &std::path::Path, name: &str) -> serde_json::Value {
    unix_call(
        socket,
        &serde_json::json!({"method": "lookup", "parameters": {"qname": name, "qtype": "ANY", "zone-id": 1}}),
    )
}

#[test]
fn a_truncated_or_deleted_shm_file_never_crashes_or_goes_stale() {
    let env = TestEnv::new();
    let key = seed(&env);
    let socket = env.dir.path().join("backend.sock");
    let mut daemon = env.spawn(&format!("listeners.backend-socket = {socket:?}"));
    let bearer = format!("Bearer {key}");
    let update = |daemon: &Daemon, ip: &str| {
        daemon
            .get(
                &format!("/nic/update?hostname=home.dyn.example&myip={ip}"),
                &[("Authorization", &bearer)],
            )
            .assert(200, &format!("good {ip}"));
    };
    update(&daemon, "192.0.2.10");
    let content = |reply: &serde_json::Value| reply["result"][0]["content"].clone();
    assert_eq!(
        content(&unix_lookup(&socket, "home.dyn.example.")),
        "192.0.2.10"
    );

    let mut shm = env.db.as_os_str().to_owned();
    shm.push("-shm");
    let shm = std::path::PathBuf::from(shm);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&shm)
        .unwrap()
        .set_len(0)
        .unwrap();
    // pdns's other calls read SQLite outside a lookup (the zone list, every
    // xfr-cycle-interval): the -shm file is put back before SQLite touches it, or the process
    // dies of SIGBUS. (Once the race of a background read, now provoked on purpose.)
    let zones = crate::common::unix_call(
        &socket,
        &serde_json::json!({"method": "getAllDomains", "parameters": {"include_disabled": true}}),
    );
    assert_eq!(zones["result"][0]["zone"], "dyn.example.", "{zones}");
    // Lookups go on (from SQLite), and the process lives.
    assert_eq!(
        content(&unix_lookup(&socket, "home.dyn.example.")),
        "192.0.2.10"
    );
    update(&daemon, "192.0.2.11");
    assert_eq!(
        env.stored_ip("home.dyn.example", "A").as_deref(),
        Some("192.0.2.11")
    );
    assert_eq!(
        content(&unix_lookup(&socket, "home.dyn.example.")),
        "192.0.2.11"
    );
    // Another writer, then deletion of the file.
    env.add_domain("new.dyn.example", "alice", "A", Some("192.0.2.12"));
    assert_eq!(
        content(&unix_lookup(&socket, "new.dyn.example.")),
        "192.0.2.12"
    );
    std::fs::remove_file(&shm).unwrap();
    // A deleted -shm file splits SQLite itself: a process opening the database now makes a
    // new one, which this process's connections never see. Lookups go on until the service
    // notices (the path is compared at most once a second) and stops, for a restart.
    let exited = std::thread::scope(|scope| {
        let looking = scope.spawn(|| {
            while let Ok(reply) =
                std::panic::catch_unwind(|| unix_lookup(&socket, "home.dyn.example."))
            {
                assert_eq!(content(&reply), "192.0.2.11");
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        let exited = daemon.wait_exit(Duration::from_secs(10));
        let _ = looking.join();
        exited
    });
    assert_eq!(exited, Some(1), "{}", daemon.log());
    // A writer meanwhile, then a restart: everything is served.
    env.add_domain("newer.dyn.example", "alice", "A", Some("192.0.2.14"));
    let _daemon = env.spawn(&format!("listeners.backend-socket = {socket:?}"));
    assert_eq!(
        content(&unix_lookup(&socket, "newer.dyn.example.")),
        "192.0.2.14"
    );
    assert_eq!(
        content(&unix_lookup(&socket, "home.dyn.example.")),
        "192.0.2.11"
    );
}

#[test]
fn the_unix_socket_never_waits_for_a_silent_peer_forever() {
    let env = TestEnv::new();
    seed(&env);
    let socket = env.dir.path().join("backend.sock");
    let _daemon = env.spawn(&format!(
        "listeners.backend-socket = {socket:?}\nlisteners.header-read-timeout-secs = 1"
    ));
    let mut silent = UnixStream::connect(&socket).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    let mut byte = [0; 1];
    assert_eq!(silent.read(&mut byte).unwrap_or(99), 0, "closed");
    assert!(started.elapsed() < Duration::from_secs(5));
    // A connection that spoke stays open however long it then idles.
    let talking = UnixStream::connect(&socket).unwrap();
    talking
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut writer = talking.try_clone().unwrap();
    let mut reader = BufReader::new(talking);
    for _ in 0..2 {
        writeln!(
            writer,
            "{}",
            serde_json::json!({"method": "initialize", "parameters": {}})
        )
        .unwrap();
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert!(line.contains("true"), "{line}");
        std::thread::sleep(Duration::from_millis(1500));
    }
}

#[test]
fn a_black_holed_pdns_api_holds_no_answer_and_no_resources() {
    let env = TestEnv::new();
    let key = seed(&env);
    for n in 0..40 {
        env.add_domain(&format!("h{n}.dyn.example"), "alice", "A", None);
    }
    // Accepts connections, never answers.
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hole_addr = hole.local_addr().unwrap();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&accepted);
    let _keeper = std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in hole.incoming().flatten() {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(stream);
        }
    });
    let daemon = env.spawn(&format!(
        "pdns.purge-wait-ms = 300\n[[pdns.api]]\napi-url = \"http://{hole_addr}\"\napi-key = \"k\"\n"
    ));
    let pid = daemon.pid();
    // Sockets, not all descriptors: the SQLite pool opens connections as load comes.
    let sockets = || {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .flatten()
            .filter(|fd| {
                std::fs::read_link(fd.path())
                    .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"))
            })
            .count()
    };
    let threads = || status_kb(pid, "Threads:");
    let (sockets_before, threads_before) = (sockets(), threads());
    let bearer = format!("Bearer {key}");
    let flood_started = Instant::now();
    std::thread::scope(|scope| {
        for worker in 0..8 {
            let (daemon, bearer) = (&daemon, &bearer);
            scope.spawn(move || {
                for round in 0..25 {
                    let n = (worker * 5 + round) % 40;
                    let ip = format!("198.51.100.{}", worker * 25 + round + 1);
                    let started = Instant::now();
                    daemon
                        .get(
                            &format!("/nic/update?hostname=h{n}.dyn.example&myip={ip}"),
                            &[("Authorization", bearer)],
                        )
                        .assert(200, &format!("good {ip}"));
                    assert!(
                        started.elapsed() < Duration::from_secs(2),
                        "{:?}",
                        started.elapsed()
                    );
                }
            });
        }
    });
    eprintln!(
        "sockets {sockets_before} -> {}, threads {threads_before} -> {}, API connections {}",
        sockets(),
        threads(),
        accepted.load(std::sync::atomic::Ordering::SeqCst)
    );
    assert!(
        sockets() <= sockets_before + 2,
        "sockets {sockets_before} -> {}",
        sockets()
    );
    assert!(
        threads() <= threads_before + 2,
        "threads {threads_before} -> {}",
        threads()
    );
    // One call at a time, each given up after 2 s: at most one new connection per 2 s.
    let allowed = flood_started.elapsed().as_secs() as usize / 2 + 2;
    assert!(
        accepted.load(std::sync::atomic::Ordering::SeqCst) <= allowed,
        "one connection at a time to the API"
    );
    let _ = timed_key_update(&daemon, &key, "192.0.2.200");
}

#[test]
fn a_burst_with_the_right_password_is_one_check_and_every_request_passes() {
    let env = TestEnv::new();
    seed(&env);
    let daemon = env.spawn(&format!("{CLIENTS}\nlimits.auth-failure-limit = 10"));
    let addr = daemon.addr;
    let raw = get(
        "/nic/update?hostname=home.dyn.example&myip=192.0.2.1",
        &[("Authorization", &basic("alice", common::PASSWORD))],
    );
    let statuses: Vec<Option<u16>> = std::thread::scope(|scope| {
        let requests: Vec<_> = (0..64)
            .map(|_| scope.spawn(|| request_from([127, 0, 3, 1], addr, &raw).map(|r| r.status)))
            .collect();
        requests.into_iter().map(|r| r.join().unwrap()).collect()
    });
    assert!(
        statuses.iter().all(|status| *status == Some(200)),
        "a cold cache and 64 identical requests at once: {statuses:?}"
    );
    assert!(!daemon.log().contains("repeated authentication failures"));
}

#[test]
fn guessing_a_password_from_elsewhere_never_locks_the_owners_router_out() {
    let env = TestEnv::new();
    env.seed();
    let daemon = env.spawn(&format!("{CLIENTS}\nlimits.auth-failure-limit = 10"));
    let addr = daemon.addr;
    let update = |source: [u8; 4], password: &str, ip: &str| {
        let raw = get(
            &format!("/nic/update?hostname=bob.dyn.example&myip={ip}"),
            &[("Authorization", &basic("bob", password))],
        );
        request_from(source, addr, &raw).expect("an answer")
    };
    let router = [127, 0, 5, 1];
    update(router, common::PASSWORD, "192.0.2.1").assert(200, "good 192.0.2.1");
    // Someone guesses bob's password from other addresses until the login is throttled.
    for attempt in 0..12 {
        update([127, 0, 6, attempt + 1], "guess", "192.0.2.66");
    }
    daemon.wait_for_log("repeated authentication failures");
    // The owner changes the password (no cached check left). An unknown client, even with
    // the right password, waits out the login's throttle (no argon2 runs for it)...
    env.cli_ok_with_stdin(
        &["user", "password", "bob", "--password-stdin"],
        "a new long password",
    );
    update([127, 0, 7, 1], "a new long password", "192.0.2.3").assert(401, "badauth");
    // ...while the router, from the address it always uses, gets through at once.
    update(router, "a new long password", "192.0.2.2").assert(200, "good 192.0.2.2");
    assert_eq!(
        env.stored_ip("bob.dyn.example", "A").as_deref(),
        Some("192.0.2.2")
    );
}

/// Issue 28, item 4: one guessing budget per account, whichever of its logins is typed.
/// Guesses split between bob's username and his email (6 each, under the limit of 10 for
/// either) throttle the account: an unknown client with the right password then waits, as
/// after 12 guesses at one login.
#[test]
fn guesses_at_an_accounts_username_and_email_share_one_budget() {
    let env = TestEnv::new();
    env.seed();
    let daemon = env.spawn(&format!("{CLIENTS}\nlimits.auth-failure-limit = 10"));
    let addr = daemon.addr;
    let update = |source: [u8; 4], login: &str, password: &str| {
        let raw = get(
            "/nic/update?hostname=bob.dyn.example&myip=192.0.2.9",
            &[("Authorization", &basic(login, password))],
        );
        request_from(source, addr, &raw).expect("an answer")
    };
    for attempt in 0..6 {
        update([127, 0, 8, attempt + 1], "bob", "guess").assert(401, "badauth");
        update([127, 0, 9, attempt + 1], "Bob@Example.com", "guess").assert(401, "badauth");
    }
    daemon.wait_for_log("repeated authentication failures");
    update([127, 0, 10, 1], "bob@example.com", common::PASSWORD).assert(401, "badauth");
    assert_eq!(env.stored_ip("bob.dyn.example", "A"), None);
}

/// Issue 29, item 11: an admin sees the login blocks under way (`user blocked`) and lifts one
/// (`user unlock`) without a restart; a restart starts with none listed.
#[test]
fn an_admin_sees_and_lifts_login_blocks() {
    let env = TestEnv::new();
    env.seed();
    let config = format!(
        "{CLIENTS}\nlimits.auth-failure-limit = 3\nlimits.auth-failure-cooldown-secs = 600\n\
         log-level = \"info\""
    );
    let mut daemon = env.spawn(&config);
    let addr = daemon.addr;
    let update = |source: [u8; 4], login: &str, password: &str, ip: &str| {
        let raw = get(
            &format!("/nic/update?hostname=bob.dyn.example&myip={ip}"),
            &[("Authorization", &basic(login, password))],
        );
        request_from(source, addr, &raw).expect("an answer")
    };
    let blocked = || -> Vec<serde_json::Value> {
        serde_json::from_str(&env.cli_ok(&["user", "blocked", "--json"])).expect("JSON")
    };
    assert!(blocked().is_empty());
    assert!(
        env.cli_ok(&["user", "unlock", "bob"])
            .contains("user bob is not blocked")
    );

    // bob's account, guessed from three addresses; and one address guessing unknown logins.
    for n in 1..=3 {
        update([127, 0, 8, n], "bob", "guess", "192.0.2.66").assert(401, "badauth");
        update(
            [127, 0, 11, 1],
            &format!("nobody{n}"),
            "guess",
            "192.0.2.66",
        )
        .assert(401, "badauth");
    }
    // Noted within a second: polled, as an admin would.
    let deadline = Instant::now() + Duration::from_secs(10);
    let listed = loop {
        let listed = blocked();
        if listed.len() == 2 || Instant::now() > deadline {
            break listed;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(listed[0]["username"], "bob", "{listed:?}");
    assert_eq!(listed[0]["failures"], 3, "{listed:?}");
    assert_eq!(listed[1]["client"], "127.0.11.1", "{listed:?}");
    let columns = env.cli_ok(&["user", "blocked"]);
    assert!(
        columns.contains("ACCOUNT") && columns.contains("127.0.11.1"),
        "{columns}"
    );

    // Blocked: the right password from a new address gets the cheap badauth...
    update([127, 0, 12, 1], "bob", common::PASSWORD, "192.0.2.3").assert(401, "badauth");
    // ...until an admin lifts it, at once.
    let said = env.cli_ok(&["user", "unlock", "Bob"]);
    assert!(
        said.starts_with("unlocked user bob (blocked since ") && said.contains("after 3 failures"),
        "{said}"
    );
    update([127, 0, 12, 1], "bob", common::PASSWORD, "192.0.2.3").assert(200, "good 192.0.2.3");
    assert!(daemon.log().contains("login block lifted on request"));
    // The address is still blocked for every login (alice's password, never checked yet, is
    // not even tried), until lifted too.
    let alice = || {
        let raw = get(
            "/nic/update?hostname=home.dyn.example&myip=192.0.2.4",
            &[("Authorization", &basic("alice", common::PASSWORD))],
        );
        request_from([127, 0, 11, 1], addr, &raw).expect("an answer")
    };
    alice().assert(401, "badauth");
    let said = env.cli_ok(&["user", "unlock", "--client", "127.0.11.1"]);
    assert!(said.starts_with("unlocked client 127.0.11.1"), "{said}");
    alice().assert(200, "good 192.0.2.4");
    assert!(blocked().is_empty());
    assert!(
        env.cli_ok(&["user", "unlock", "bob"])
            .contains("user bob is not blocked")
    );
    let unknown = env.cli(&["user", "unlock", "nosuch"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("nosuch"));

    // A block left at a stop is neither listed nor kept by the next start.
    for n in 1..=3 {
        update([127, 0, 8, n], "bob", "guess", "192.0.2.66").assert(401, "badauth");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while blocked().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(blocked().len(), 1);
    assert_eq!(daemon.terminate(), Some(0));
    let stopped = env.cli(&["user", "blocked"]);
    assert!(
        String::from_utf8_lossy(&stopped.stderr).contains("no `certadns-ddns serve` runs"),
        "{stopped:?}"
    );
    assert!(
        env.cli_ok(&["user", "unlock", "bob"])
            .contains("not blocked: no `certadns-ddns serve` runs")
    );
    let daemon = env.spawn(&config);
    assert!(blocked().is_empty());
    let rows: i64 = env
        .db()
        .query_row("SELECT count(*) FROM login_blocks", [], |row| row.get(0))
        .unwrap();
    assert_eq!(rows, 0);
    let addr = daemon.addr;
    let raw = get(
        "/nic/update?hostname=bob.dyn.example&myip=192.0.2.5",
        &[("Authorization", &basic("bob", common::PASSWORD))],
    );
    request_from([127, 0, 12, 2], addr, &raw)
        .expect("an answer")
        .assert(200, "good 192.0.2.5");
}

/// A row the running process does not hold a block for (one the process before a restart
/// noted in its last second) is still answered: `user unlock` says it is lifted at once, and
/// the row goes, rather than waiting on a process that would never read it.
#[test]
fn an_unlock_for_a_block_this_process_does_not_hold_is_answered() {
    let env = TestEnv::new();
    env.seed();
    let daemon = env.spawn(&format!("{CLIENTS}\nlimits.auth-failure-limit = 3"));
    daemon.wait_for_log("listening on");
    // Written from outside, as the process before a restart would have.
    let writer = rusqlite::Connection::open(&env.db).unwrap();
    writer.busy_timeout(Duration::from_secs(5)).unwrap();
    writer
        .execute(
            "INSERT INTO login_blocks (user_id, failures, blocked_at, blocked_until)
             SELECT id, 3, '2026-01-01T00:00:00.000Z', '2999-01-01T00:00:00.000Z'
             FROM users WHERE username = 'bob'",
            [],
        )
        .unwrap();
    assert!(env.cli_ok(&["user", "blocked"]).contains("bob"));
    let started = Instant::now();
    let said = env.cli_ok(&["user", "unlock", "bob"]);
    assert!(said.starts_with("unlocked user bob"), "{said}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "answered within the sync tick"
    );
    let rows: i64 = env
        .db()
        .query_row("SELECT count(*) FROM login_blocks", [], |row| row.get(0))
        .unwrap();
    assert_eq!(rows, 0);
}
