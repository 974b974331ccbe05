//! SIGHUP reads the configuration file again, against the real binary: what can change live
//! changes (limits, trusted proxies, log level, allow list, pdns front-ends, `[audit]` files),
//! what cannot is named and keeps its running value, a broken file is refused whole, and
//! updates go on through reloads without a lost or wrong answer.

use crate::common;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::common::{Daemon, PASSWORD, Pdns, PdnsApiEndpoint, TestEnv, dig, require_tool};
use nix::sys::signal::Signal;

/// The line logged when a reload is applied.
const APPLIED: &str = "configuration reloaded";

/// The line logged when a file is refused.
const REFUSED: &str = "configuration not reloaded, the running one stays";

/// Writes `extra` as the new config, sends SIGHUP and waits for the reload's outcome line
/// (`outcome`: [`APPLIED`] or [`REFUSED`]).
fn reload(env: &TestEnv, daemon: &Daemon, extra: &str, outcome: &str) {
    env.write_config(extra);
    let seen = daemon.log_count(outcome);
    daemon.signal(Signal::SIGHUP);
    daemon.wait_for_log_after(outcome, seen);
}

/// The address `/domains/my-ip` sees for a request from loopback with `X-Forwarded-For`.
fn seen_address(daemon: &Daemon, forwarded_for: &str) -> String {
    let answer = daemon.get("/domains/my-ip", &[("X-Forwarded-For", forwarded_for)]);
    assert_eq!(answer.status, 200, "{answer:?}");
    let json: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    json["ip"].as_str().unwrap().to_string()
}

/// The value of the metric sample `name_and_labels`.
fn metric(addr: SocketAddr, name_and_labels: &str) -> Option<f64> {
    let answer = common::send_raw(
        addr,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    common::metric_sample(&answer.body, name_and_labels)
}

#[test]
fn limits_proxies_and_log_level_change_live() {
    let env = TestEnv::new();
    let seed = env.seed();
    let before = "log-level = \"info\"\nlimits.auth-failure-limit = 0\n\
                  updates.trusted-proxies = [\"127.0.0.1/32\"]";
    let daemon = env.spawn(before);
    let update = |ip: &str| {
        daemon.update_bearer(
            &seed.alice_key,
            &format!("hostname=home.dyn.example&myip={ip}"),
        )
    };

    // Before: the proxy is trusted, failures are not throttled, `nochg` is not logged.
    assert_eq!(seen_address(&daemon, "192.0.2.7"), "192.0.2.7");
    for _ in 0..3 {
        daemon
            .update_basic("alice", "wrong password", "hostname=home.dyn.example")
            .assert(401, "badauth");
    }
    update("192.0.2.1").assert(200, "good 192.0.2.1");
    update("192.0.2.1").assert(200, "nochg 192.0.2.1");
    let goods = daemon.log_count("outcome=good");
    update("192.0.2.2").assert(200, "good 192.0.2.2");
    daemon.wait_for_log_after("outcome=good", goods);
    assert!(!daemon.log().contains("outcome=nochg"), "{}", daemon.log());

    reload(
        &env,
        &daemon,
        "log-level = \"debug\"\nlimits.auth-failure-limit = 2\nupdates.trusted-proxies = []",
        APPLIED,
    );
    let log = daemon.log();
    let line = log.lines().rfind(|line| line.contains(APPLIED)).unwrap();
    assert!(
        line.contains("log-level") && line.contains("limits") && line.contains("updates"),
        "{line}"
    );
    // And which keys changed, by name.
    assert!(
        line.contains("changed=limits.auth-failure-limit, log-level, updates.trusted-proxies "),
        "{line}"
    );

    // After: the header is not believed, two failures throttle the login (the right password
    // is then refused without a check), and `nochg` is logged at debug.
    assert_eq!(seen_address(&daemon, "192.0.2.7"), "127.0.0.1");
    for _ in 0..2 {
        daemon
            .update_basic("alice", "wrong password", "hostname=home.dyn.example")
            .assert(401, "badauth");
    }
    daemon.wait_for_log("repeated authentication failures");
    daemon
        .update_basic(
            "alice",
            PASSWORD,
            "hostname=home.dyn.example&myip=192.0.2.3",
        )
        .assert(401, "badauth");
    assert_eq!(
        env.stored_ip("home.dyn.example", "A").as_deref(),
        Some("192.0.2.2")
    );
    update("192.0.2.2").assert(200, "nochg 192.0.2.2");
    daemon.wait_for_log("outcome=nochg");
}

#[test]
fn a_broken_file_is_refused_whole_and_the_running_configuration_stays() {
    let env = TestEnv::new();
    let seed = env.seed();
    let base = "listeners.metrics-listen = \"127.0.0.1:0\"\n\
                updates.trusted-proxies = [\"127.0.0.1/32\"]";
    let daemon = env.spawn(base);
    let metrics = daemon.metrics_addr();
    assert_eq!(
        metric(metrics, "certadns_ddns_config_last_reload_successful"),
        Some(1.0)
    );
    let tags = env.dir.path().join("tor.txt");
    std::fs::write(&tags, "192.0.2.0/24\n").unwrap();
    let broken = [
        // Not TOML: the line is named.
        (
            format!("{base}\nupdates.trusted-proxies = [\"127.0.0.1/32\""),
            "invalid config at line",
        ),
        // An unknown key.
        (format!("{base}\nlimits.abuse-brust = 3"), "abuse-brust"),
        // A value out of range, beside a change that must not apply either.
        (
            "listeners.metrics-listen = \"127.0.0.1:0\"\nupdates.trusted-proxies = []\n\
             limits.abuse-burst = 0"
                .to_string(),
            "abuse-burst",
        ),
        // A log filter that does not parse.
        (format!("{base}\nlog-level = \"info,[\""), "log-level"),
        // An [audit] file that cannot be read, beside a good one.
        (
            format!(
                "{base}\n[audit]\ngeoip-database = {:?}\n[audit.ip-tags]\ntor-exit = {tags:?}",
                env.dir.path().join("missing.mmdb")
            ),
            "missing.mmdb",
        ),
        // The backend moved beyond loopback without an allow list: refused as at start.
        (
            format!("{base}\nlisteners.backend-listen = \"0.0.0.0:0\""),
            "backend-allow-from is not set",
        ),
    ];
    for (round, (text, reason)) in broken.iter().enumerate() {
        reload(&env, &daemon, text, REFUSED);
        let log = daemon.log();
        let line = log.lines().rfind(|line| line.contains(REFUSED)).unwrap();
        assert!(line.contains(reason), "round {round}: {line}");
        // Nothing of the file applied: the proxy is still trusted; the service serves.
        assert_eq!(seen_address(&daemon, "192.0.2.7"), "192.0.2.7");
        daemon
            .update_bearer(
                &seed.alice_key,
                &format!("hostname=home.dyn.example&myip=192.0.2.{}", round + 1),
            )
            .assert(200, &format!("good 192.0.2.{}", round + 1));
        assert_eq!(
            metric(metrics, "certadns_ddns_config_last_reload_successful"),
            Some(0.0)
        );
    }
    assert_eq!(
        metric(
            metrics,
            "certadns_ddns_config_reloads_total{outcome=\"refused\"}"
        ),
        Some(broken.len() as f64)
    );

    // Fixed: applied, and the metric says so.
    reload(
        &env,
        &daemon,
        "listeners.metrics-listen = \"127.0.0.1:0\"\nupdates.trusted-proxies = []",
        APPLIED,
    );
    assert_eq!(seen_address(&daemon, "192.0.2.7"), "127.0.0.1");
    assert_eq!(
        metric(metrics, "certadns_ddns_config_last_reload_successful"),
        Some(1.0)
    );
    assert_eq!(
        metric(
            metrics,
            "certadns_ddns_config_reloads_total{outcome=\"applied\"}"
        ),
        Some(1.0)
    );
}

#[test]
fn restart_only_settings_are_named_and_keep_their_running_values() {
    let env = TestEnv::new();
    let seed = env.seed();
    let daemon = env.spawn("");
    let other_db = env.dir.path().join("other.db");
    let moved = format!(
        "listeners.listen = \"127.0.0.1:{}\"\nstore.database = {other_db:?}\n\
         log-format = \"json\"\nlimits.abuse-detection = true",
        common::free_port()
    );
    for _ in 0..2 {
        reload(&env, &daemon, &moved, APPLIED);
        let log = daemon.log();
        let line = log
            .lines()
            .rfind(|line| line.contains("only a restart applies them"))
            .unwrap_or_else(|| panic!("no restart warning in:\n{log}"));
        for key in ["listeners.listen", "store.database", "log-format"] {
            assert!(line.contains(key), "{key} not named: {line}");
        }
        assert!(!line.contains("limits"), "{line}");
    }
    // Still on the old socket, the old database, the text log.
    daemon
        .update_bearer(&seed.alice_key, "hostname=home.dyn.example&myip=192.0.2.9")
        .assert(200, "good 192.0.2.9");
    assert_eq!(
        env.stored_ip("home.dyn.example", "A").as_deref(),
        Some("192.0.2.9")
    );
    assert!(!other_db.exists());
    assert!(!daemon.log().lines().any(|line| line.starts_with('{')));
}

/// Sends a remote-backend `initialize` call on a new connection from loopback; None when the
/// connection is closed unanswered (refused by the allow list).
fn backend_answers(addr: SocketAddr) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let body = r#"{"method":"initialize","parameters":{}}"#;
    let _ = stream.write_all(
        format!(
            "POST /dns HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes);
    (!bytes.is_empty()).then(|| common::parse_response(&bytes).status)
}

#[test]
fn the_backend_allow_list_changes_live() {
    let env = TestEnv::new();
    env.seed();
    let daemon = env.spawn("");
    assert_eq!(backend_answers(daemon.backend_addr), Some(200));
    reload(
        &env,
        &daemon,
        "listeners.backend-allow-from = [\"192.0.2.0/24\"]",
        APPLIED,
    );
    assert_eq!(backend_answers(daemon.backend_addr), None);
    daemon.wait_for_log("the peer is not in backend-allow-from");
    reload(
        &env,
        &daemon,
        "listeners.backend-allow-from = [\"192.0.2.0/24\", \"127.0.0.0/8\"]",
        APPLIED,
    );
    assert_eq!(backend_answers(daemon.backend_addr), Some(200));
}

#[test]
fn new_audit_files_apply_to_the_next_change() {
    let env = TestEnv::new();
    let seed = env.seed();
    let daemon = env.spawn("");
    let tags_of_change = |ip: &str| -> String {
        daemon
            .update_bearer(
                &seed.alice_key,
                &format!("hostname=home.dyn.example&myip={ip}"),
            )
            .assert(200, &format!("good {ip}"));
        env.db()
            .query_row(
                "SELECT ip_tags FROM domain_updates ORDER BY id DESC LIMIT 1",
                [],
                |row| row.get(0),
            )
            .unwrap()
    };
    assert_eq!(tags_of_change("192.0.2.43"), "[\"documentation\"]");
    let list = env.dir.path().join("office.txt");
    std::fs::write(&list, "192.0.2.0/24\n").unwrap();
    reload(
        &env,
        &daemon,
        &format!("[audit.ip-tags]\noffice = {list:?}"),
        APPLIED,
    );
    assert_eq!(
        tags_of_change("192.0.2.44"),
        "[\"documentation\",\"office\"]"
    );
}

#[test]
fn updates_go_on_through_reloads() {
    // A router updating without pause while the file is reloaded 30 times, each time with
    // other limits: every answer is right, and the store holds every change.
    let env = TestEnv::new();
    let seed = env.seed();
    let daemon = env.spawn("");
    let done = std::sync::atomic::AtomicBool::new(false);
    let answered = std::thread::scope(|scope| {
        let updates = scope.spawn(|| {
            let mut answered = 0u32;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let ip = format!("10.0.{}.{}", answered / 250 % 250, answered % 250 + 1);
                daemon
                    .update_bearer(
                        &seed.alice_key,
                        &format!("hostname=home.dyn.example&myip={ip}"),
                    )
                    .assert(200, &format!("good {ip}"));
                answered += 1;
            }
            answered
        });
        for round in 0..30 {
            reload(
                &env,
                &daemon,
                &format!(
                    "limits.password-check-concurrency = {}\nlimits.password-cache-size = {}\n\
                     limits.auth-failure-window-secs = {}",
                    round % 3 + 1,
                    round * 10,
                    round + 30
                ),
                APPLIED,
            );
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        updates.join().unwrap()
    });
    assert!(answered > 0);
    assert_eq!(
        env.audit_count(),
        i64::from(answered),
        "one audit row per good"
    );
}

#[test]
fn pdns_front_ends_added_by_a_reload_are_purged() {
    if !require_tool("pdns_server") || !require_tool("dig") {
        return;
    }
    let env = TestEnv::new();
    env.cli_ok(&["zone", "add", "dyn.example", "--ns", "ns1.dyn.example"]);
    env.add_user("alice", "alice@example.com", "plus");
    env.add_domain("home.dyn.example", "alice", "A", Some("192.0.2.1"));
    let key = env.cli_ok(&["key", "create", "alice"]).trim().to_string();
    let socket = env.dir.path().join("backend.sock");
    let api = PdnsApiEndpoint::new();
    let without_api = format!("listeners.backend-socket = {socket:?}");
    let daemon = env.spawn(&without_api);
    let pdns = Pdns::on_socket(env.dir.path(), &socket, &api, "dyn.example");
    let served = || dig(pdns.port, "home.dyn.example", "A", &[]).data("A");
    let update = |ip: &str| {
        daemon
            .update_bearer(&key, &format!("hostname=home.dyn.example&myip={ip}"))
            .assert(200, &format!("good {ip}"));
    };
    // No front-end configured: pdns's packet cache keeps the old answer after a change.
    assert_eq!(served(), ["192.0.2.1"]);
    update("192.0.2.2");
    assert_eq!(served(), ["192.0.2.1"], "pdns's cache should still hold it");

    // Added by a reload: the next change is purged, and so answered at once.
    reload(
        &env,
        &daemon,
        &format!("{without_api}\n{}", api.daemon_config()),
        APPLIED,
    );
    update("192.0.2.3");
    assert_eq!(served(), ["192.0.2.3"]);
    update("192.0.2.4");
    assert_eq!(served(), ["192.0.2.4"]);
}

#[test]
fn wide_trusted_proxies_and_endless_sessions_are_refused_unless_meant() {
    let env = TestEnv::new();
    env.seed();
    let wide = "updates.trusted-proxies = [\"0.0.0.0/0\", \"::/0\"]";
    // At start: refused, saying why and what to do.
    env.write_config(wide);
    let config = env.config_path();
    let mut serve = std::process::Command::new(env!("CARGO_BIN_EXE_certadns-ddns"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A refused start exits at once; one that serves is stopped and fails the test.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while serve.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            serve.kill().unwrap();
            serve.wait().unwrap();
            panic!("serve started with trusted-proxies 0.0.0.0/0");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = serve.wait_with_output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("trusted-proxies 0.0.0.0/0, ::/0: wider than /8 (IPv4) or /32 (IPv6)")
            && stderr.contains("trusted-proxies-allow-wide = true"),
        "{stderr}"
    );
    // A /8 and a /32 are the widest taken without it.
    let daemon = env.spawn("updates.trusted-proxies = [\"10.0.0.0/8\", \"2001:db8::/32\"]");
    assert!(!daemon.log().contains("trusted-proxies-allow-wide"));
    // By a reload: refused whole, and the running list stays (the header is not believed from
    // a peer outside it... loopback is not in it now, so the peer's own address is seen).
    reload(&env, &daemon, wide, REFUSED);
    assert!(daemon.log().contains("wider than /8"), "{}", daemon.log());
    assert_eq!(seen_address(&daemon, "192.0.2.7"), "127.0.0.1");
    // Meant: taken, and named at warn on the reload (and at every start).
    let meant = format!("{wide}\nupdates.trusted-proxies-allow-wide = true");
    reload(&env, &daemon, &meant, APPLIED);
    let log = daemon.log();
    let reloaded = log.lines().rfind(|line| line.contains(APPLIED)).unwrap();
    assert!(
        reloaded.contains("changed=updates.trusted-proxies, updates.trusted-proxies-allow-wide"),
        "{reloaded}"
    );
    assert!(
        log.lines()
            .any(|line| line.contains("WARN")
                && line.contains("allowed by trusted-proxies-allow-wide")),
        "{log}"
    );
    assert_eq!(seen_address(&daemon, "192.0.2.7"), "192.0.2.7");
    drop(daemon);
    let daemon = env.spawn(&meant);
    daemon.wait_for_log("allowed by trusted-proxies-allow-wide");
    // A sign-in that lasts more than 30 days is refused.
    reload(
        &env,
        &daemon,
        &format!("{meant}\ndashboard.session-lifetime-secs = 2592001"),
        REFUSED,
    );
    assert!(
        daemon
            .log()
            .contains("session-lifetime-secs must be 1 to 2592000 (30 days)"),
        "{}",
        daemon.log()
    );
}
