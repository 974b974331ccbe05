//! pdns under load never fails because of the connection to the backend, and survives the
//! backend restarting.
//!
//! pdns's HTTP connector reuses a connection after looking for a close for 1 ms; a backend
//! that closed connections lost that race under load, and pdns answered SERVFAIL or exited
//! (`communicator thread died`). These tests run the shipped configs (only addresses, ports,
//! keys and directories changed) under `dnsperf` with updates arriving, for 20 s each, and
//! require not one SERVFAIL, not one lost query, every update answered and pdns still up.
//! The relay (pdns's pipe connector, for pdns on another host) must also ride out a restart
//! of `serve`, and keep pdns running through a longer outage.
//!
//! Needs `pdns_server`, `dig` and `dnsperf` (Debian: pdns-server, pdns-backend-remote,
//! dnsutils, dnsperf); without them each test says why and passes, unless `REQUIRE_E2E=1`.

#[path = "it/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::service_manager::ServiceManager;
use common::{Daemon, Pdns, PdnsApiEndpoint, TestEnv, dig, free_port, require_tool};

/// How long each load phase runs.
const LOAD_SECONDS: u64 = 20;

/// Hosts with an address in the zone.
const HOSTS: usize = 50;

/// The zone: `dyn.example` with `HOSTS` hosts of alice (plus plan); returns her API key.
fn seed(env: &TestEnv) -> String {
    env.cli_ok(&["zone", "add", "dyn.example", "--ns", "ns1.dyn.example"]);
    env.cli_ok(&["record", "add", "dyn.example", "ns1", "A", "192.0.2.53"]);
    env.add_user("alice", "alice@example.com", "plus");
    for host in 0..HOSTS {
        env.add_domain(
            &format!("host{host}.dyn.example"),
            "alice",
            "A",
            Some(&format!("198.51.100.{}", host + 1)),
        );
    }
    env.cli_ok(&["key", "create", "alice"]).trim().to_string()
}

/// A dnsperf query file: existing names, names that do not exist, and the apex.
fn query_file(env: &TestEnv) -> std::path::PathBuf {
    let mut queries = String::new();
    for round in 0..200 {
        for host in 0..HOSTS {
            queries.push_str(&format!("host{host}.dyn.example A\n"));
        }
        queries.push_str(&format!("nx{round}.dyn.example A\n"));
        queries.push_str(&format!("host{round}.dyn.example AAAA\n"));
        queries.push_str("dyn.example SOA\ndyn.example NS\n");
    }
    let path = env.dir.path().join("queries.txt");
    std::fs::write(&path, queries).expect("write the query file");
    path
}

/// What dnsperf reported.
#[derive(Debug)]
struct LoadResult {
    /// Queries sent.
    sent: u64,
    /// Queries that got no answer.
    lost: u64,
    /// SERVFAIL answers.
    servfail: u64,
    /// dnsperf's whole report, for failure messages.
    report: String,
}

/// Runs dnsperf against `port` for [`LOAD_SECONDS`], as fast as it can or at `max_qps`.
fn dnsperf(port: u16, queries: &std::path::Path, max_qps: Option<u32>) -> LoadResult {
    let mut command = std::process::Command::new("dnsperf");
    command
        .args(["-s", "127.0.0.1", "-p", &port.to_string(), "-d"])
        .arg(queries)
        .args(["-c", "4", "-q", "64", "-l", &LOAD_SECONDS.to_string()]);
    if let Some(qps) = max_qps {
        command.args(["-Q", &qps.to_string()]);
    }
    let output = command.output().expect("run dnsperf");
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    let number = |label: &str| -> u64 {
        report
            .lines()
            .find_map(|line| line.trim().strip_prefix(label))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|count| count.parse().ok())
            .unwrap_or_else(|| panic!("no {label:?} in dnsperf's report:\n{report}"))
    };
    let servfail = report
        .lines()
        .find_map(|line| line.trim().strip_prefix("Response codes:"))
        .and_then(|codes| {
            codes
                .split(',')
                .find_map(|code| code.trim().strip_prefix("SERVFAIL "))
        })
        .and_then(|rest| rest.split_whitespace().next())
        .map_or(0, |count| count.parse().expect("a count"));
    LoadResult {
        sent: number("Queries sent:"),
        lost: number("Queries lost:"),
        servfail,
        report,
    }
}

/// Sends updates (each a new address for the next host) until `stop`; returns how many were
/// answered `good`, failing on any other answer.
fn update_until(daemon: &Daemon, key: &str, stop: Instant) -> usize {
    update_at(daemon.addr, key, stop).0
}

/// [`update_until`] against the update endpoints at `addr`, each on a new connection (a
/// refused or reset one fails); returns how many were answered and the last host and address.
fn update_at(addr: std::net::SocketAddr, key: &str, stop: Instant) -> (usize, String, String) {
    let bearer = format!("Bearer {key}");
    let mut answered = 0;
    let mut last = (String::new(), String::new());
    while Instant::now() < stop {
        let host = answered % HOSTS;
        let ip = format!("203.0.113.{}", answered % 250 + 1);
        let response = common::send_raw(
            addr,
            format!(
                "GET /nic/update?hostname=host{host}.dyn.example&myip={ip} HTTP/1.1\r\n\
                 Host: {addr}\r\nConnection: close\r\nAuthorization: {bearer}\r\n\r\n"
            )
            .as_bytes(),
        );
        assert_eq!(
            response.status,
            200,
            "update {answered} at {:?}: {response:?}",
            std::time::SystemTime::now()
        );
        assert!(
            response.body.starts_with("good ") || response.body.starts_with("nochg "),
            "update {answered}: {response:?}"
        );
        last = (format!("host{host}.dyn.example"), ip);
        answered += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    (answered, last.0, last.1)
}

/// The shipped `pdns-conf/{conf}` with its caches as shipped, or off.
fn pdns_conf(conf: &str, caches_off: bool) -> String {
    let mut text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("pdns-conf")
            .join(conf),
    )
    .expect("read the shipped pdns.conf");
    if caches_off {
        text.push_str("\ncache-ttl=0\nquery-cache-ttl=0\nnegquery-cache-ttl=0\n");
    }
    text
}

/// One load phase: pdns from `conf` on `connection`, dnsperf and updates at once; asserts
/// that nothing failed.
fn load_phase(
    env: &TestEnv,
    daemon: &Daemon,
    key: &str,
    api: &PdnsApiEndpoint,
    (conf, connection, caches_off): (&str, &str, bool),
) {
    let mut args = vec![format!("--remote-connection-string={connection}")];
    args.extend(api.pdns_args());
    let mut pdns = Pdns::spawn_with(
        env.dir.path(),
        &pdns_conf(conf, caches_off),
        &args,
        free_port(),
        "dyn.example",
    );
    let queries = query_file(env);
    let stop = Instant::now() + Duration::from_secs(LOAD_SECONDS);
    let (load, updates) = std::thread::scope(|scope| {
        let updater = scope.spawn(|| update_until(daemon, key, stop));
        let load = dnsperf(pdns.port, &queries, None);
        (load, updater.join().expect("the updates all succeeded"))
    });
    let phase = format!("{conf}, caches {}", if caches_off { "off" } else { "on" });
    eprintln!(
        "{phase}: {} queries, {} lost, {} SERVFAIL; {updates} updates",
        load.sent, load.lost, load.servfail
    );
    assert_eq!(pdns.exited(), None, "{phase}: pdns exited:\n{}", pdns.log());
    assert!(load.sent > 10_000, "{phase}: too little load: {load:?}");
    assert_eq!(
        load.servfail,
        0,
        "{phase}: SERVFAIL:\n{}\n{}",
        load.report,
        pdns.log()
    );
    assert_eq!(load.lost, 0, "{phase}: lost queries:\n{}", load.report);
    assert!(updates > 100, "{phase}: only {updates} updates");
    assert!(
        !pdns.log().contains("Exception"),
        "{phase}: pdns met a backend error:\n{}",
        pdns.log()
    );
    // The last update is served.
    assert_eq!(dig(pdns.port, "dyn.example", "SOA", &[]).status, "NOERROR");
}

#[test]
fn pdns_never_fails_under_load_on_the_shipped_connectors() {
    if !require_tool("pdns_server") || !require_tool("dig") || !require_tool("dnsperf") {
        return;
    }
    let env = TestEnv::new();
    let key = seed(&env);
    let api = PdnsApiEndpoint::new();
    let daemon = env.spawn(&format!(
        "log-level = \"info\"\nlisteners.backend-tcp-listen = \"127.0.0.1:0\"\n{}",
        api.daemon_config()
    ));
    let http = shipped_connection("pdns.http.conf")
        .replace("127.0.0.1:8081", &daemon.backend_addr.to_string());
    let relay = shipped_connection("pdns.relay.conf")
        .replace("/usr/bin/certadns-ddns", common::BIN)
        .replace("192.0.2.10:8083", &daemon.tcp_backend_addr().to_string());
    for phase in [
        ("pdns.http.conf", http.as_str(), false),
        ("pdns.http.conf", http.as_str(), true),
        ("pdns.relay.conf", relay.as_str(), true),
    ] {
        load_phase(&env, &daemon, &key, &api, phase);
    }
}

/// The `remote-connection-string` of a shipped config.
fn shipped_connection(conf: &str) -> String {
    pdns_conf(conf, false)
        .lines()
        .find_map(|line| line.strip_prefix("remote-connection-string="))
        .expect("the shipped config sets remote-connection-string")
        .to_string()
}

#[test]
fn pdns_on_the_relay_rides_out_a_restart_and_survives_an_outage() {
    if !require_tool("pdns_server") || !require_tool("dig") {
        return;
    }
    let env = TestEnv::new();
    let key = seed(&env);
    let tcp_port = free_port();
    let config = format!("listeners.backend-tcp-listen = \"127.0.0.1:{tcp_port}\"");
    let mut daemon = env.spawn(&config);
    let connection = shipped_connection("pdns.relay.conf")
        .replace("/usr/bin/certadns-ddns", common::BIN)
        .replace("192.0.2.10:8083", &format!("127.0.0.1:{tcp_port}"));
    let mut args = vec![format!("--remote-connection-string={connection}")];
    args.extend(PdnsApiEndpoint::new().pdns_args());
    let mut pdns = Pdns::spawn_with(
        env.dir.path(),
        &pdns_conf("pdns.relay.conf", true),
        &args,
        free_port(),
        "dyn.example",
    );
    let port = pdns.port;
    assert_eq!(
        dig(port, "host1.dyn.example", "A", &[]).data("A"),
        ["198.51.100.2"]
    );

    // A restart: queries sent meanwhile wait for the new process and are answered.
    let stop = Instant::now() + Duration::from_secs(4);
    let answers = std::thread::scope(|scope| {
        let asker = scope.spawn(|| {
            let mut statuses = Vec::new();
            while Instant::now() < stop {
                statuses.push(dig(port, "host1.dyn.example", "A", &[]).status);
            }
            statuses
        });
        assert_eq!(daemon.terminate(), Some(0));
        daemon = env.spawn(&config);
        asker.join().expect("the queries ran")
    });
    assert!(answers.len() > 5, "{answers:?}");
    assert!(
        answers.iter().all(|status| status == "NOERROR"),
        "a restart shorter than the relay's wait is invisible: {answers:?}\n{}",
        pdns.log()
    );

    // An outage longer than the wait: queries get SERVFAIL (never a cacheable NXDOMAIN), the
    // communicator's calls get "nothing" and pdns keeps running.
    daemon
        .get(
            "/nic/update?hostname=host1.dyn.example&myip=203.0.113.99",
            &[("Authorization", &format!("Bearer {key}"))],
        )
        .assert(200, "good 203.0.113.99");
    assert_eq!(daemon.terminate(), Some(0));
    assert_eq!(dig(port, "host1.dyn.example", "A", &[]).status, "SERVFAIL");
    // pdns asks for zones to notify every xfr-cycle-interval (5 s as shipped).
    pdns.wait_for_log(
        "getUpdatedMasters answered with nothing",
        Duration::from_secs(15),
    );
    assert_eq!(pdns.exited(), None, "pdns exited:\n{}", pdns.log());

    // Back: served again, the update made before the outage included.
    let _daemon = env.spawn(&config);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = dig(port, "host1.dyn.example", "A", &[]);
        if answer.data("A") == ["203.0.113.99"] {
            break;
        }
        assert!(Instant::now() < deadline, "never served again: {answer:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(pdns.exited(), None, "pdns exited:\n{}", pdns.log());
    assert!(
        !pdns.log().contains("Exiting"),
        "pdns began to exit:\n{}",
        pdns.log()
    );
}

/// How often `serve` is restarted under load in
/// [`restarts_are_invisible_to_pdns_on_every_shipped_connector`].
const RESTARTS: usize = 4;

/// `serve` restarted again and again under three pdns (unix socket, HTTP, relay), as
/// `systemctl restart` does with the shipped unit: a stand-in for systemd keeps the fds the
/// daemon stores and passes them to the next process. pdns's connections must outlive each
/// process: the unix connector writes into its connection unchecked, and its communicator
/// thread (`primary=yes`, cycling every second here) ends pdns on the first failed call.
#[test]
fn restarts_are_invisible_to_pdns_on_every_shipped_connector() {
    if !require_tool("pdns_server") || !require_tool("dig") || !require_tool("dnsperf") {
        return;
    }
    let env = TestEnv::new();
    let key = seed(&env);
    let (http_port, backend_port, tcp_port) = (free_port(), free_port(), free_port());
    let socket = env.dir.path().join("backend.sock");
    env.write_config(&format!(
        "log-level = \"info\"\nlisteners.listen = \"127.0.0.1:{http_port}\"\n\
         listeners.backend-listen = \"127.0.0.1:{backend_port}\"\n\
         listeners.backend-tcp-listen = \"127.0.0.1:{tcp_port}\"\n\
         listeners.backend-socket = {socket:?}\n"
    ));
    let config = env.config_path();
    let manager = ServiceManager::new(env.dir.path());
    let start = |manager: &ServiceManager| {
        let command = manager.command(
            common::BIN,
            &["serve", "--config", config.to_str().expect("UTF-8 path")],
        );
        let daemon = Daemon::from_command(command);
        manager.wait_for("READY=1\n", Duration::from_secs(20));
        daemon
    };
    let mut daemon = start(&manager);
    let connections = [
        (
            "pdns.unix.conf",
            shipped_connection("pdns.unix.conf")
                .replace("/run/certadns-ddns/backend.sock", socket.to_str().unwrap()),
        ),
        (
            "pdns.http.conf",
            shipped_connection("pdns.http.conf")
                .replace("127.0.0.1:8081", &format!("127.0.0.1:{backend_port}")),
        ),
        (
            "pdns.relay.conf",
            shipped_connection("pdns.relay.conf")
                .replace("/usr/bin/certadns-ddns", common::BIN)
                .replace("192.0.2.10:8083", &format!("127.0.0.1:{tcp_port}")),
        ),
    ];
    let mut pdns: Vec<(&str, Pdns)> = connections
        .iter()
        .map(|(conf, connection)| {
            let mut args = vec![
                format!("--remote-connection-string={connection}"),
                "--primary=yes".into(),
                "--xfr-cycle-interval=1".into(),
            ];
            args.extend(PdnsApiEndpoint::new().pdns_args());
            let server = Pdns::spawn_with(
                env.dir.path(),
                &pdns_conf(conf, true),
                &args,
                free_port(),
                "dyn.example",
            );
            (*conf, server)
        })
        .collect();
    let queries = query_file(&env);
    let addr: std::net::SocketAddr = format!("127.0.0.1:{http_port}").parse().unwrap();
    let stop = Instant::now() + Duration::from_secs(LOAD_SECONDS - 2);
    // Every process's log, for a failure found after the restarts.
    let all_logs = std::sync::Mutex::new(String::new());
    let (loads, (updates, host, ip)) = std::thread::scope(|scope| {
        let loads: Vec<_> = pdns
            .iter()
            .map(|(_, server)| {
                let (port, queries) = (server.port, &queries);
                scope.spawn(move || dnsperf(port, queries, Some(1500)))
            })
            .collect();
        let updater = scope.spawn(|| update_at(addr, &key, stop));
        // The log of the process before, for a failure that shows only after its restart.
        let mut before = String::new();
        for restart in 0..RESTARTS {
            std::thread::sleep(Duration::from_secs(3));
            let stored = manager.stored_names();
            for kind in ["conn-unix-", "conn-http-", "conn-tcp-", "listen-updates"] {
                assert!(
                    stored.iter().any(|name| name.starts_with(kind)),
                    "restart {restart}: nothing named {kind}* in the fd store: {stored:?}\n\
                     ---- the process before ----\n{before}\n---- this process ----\n{}",
                    daemon.log()
                );
            }
            assert_eq!(daemon.terminate(), Some(0), "restart {restart}");
            before = daemon.log();
            all_logs.lock().unwrap().push_str(&before);
            daemon = start(&manager);
            let resumed: usize = daemon
                .log()
                .lines()
                .find(|line| line.contains("sockets of the previous process taken back"))
                .and_then(|line| line.split("connections=").nth(1))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|count| count.parse().ok())
                .unwrap_or_else(|| panic!("no count of resumed connections:\n{}", daemon.log()));
            assert!(resumed > 0, "restart {restart}: no connection resumed");
        }
        let loads: Vec<LoadResult> = loads
            .into_iter()
            .map(|load| load.join().expect("dnsperf ran"))
            .collect();
        (loads, updater.join().expect("every update was answered"))
    });
    assert!(updates > 100, "only {updates} updates");
    for ((conf, server), load) in pdns.iter_mut().zip(&loads) {
        eprintln!(
            "{conf}: {} queries, {} lost, {} SERVFAIL across {RESTARTS} restarts",
            load.sent, load.lost, load.servfail
        );
        assert_eq!(
            server.exited(),
            None,
            "{conf}: pdns exited:\n{}\n---- the processes before ----\n{}\n---- the last ----\n{}",
            server.log(),
            all_logs.lock().unwrap(),
            daemon.log()
        );
        assert!(load.sent > 5_000, "{conf}: too little load: {load:?}");
        assert_eq!(
            load.servfail,
            0,
            "{conf}: SERVFAIL:\n{}\n{}",
            load.report,
            server.log()
        );
        assert_eq!(load.lost, 0, "{conf}: lost queries:\n{}", load.report);
        assert!(
            !server.log().contains("Exception"),
            "{conf}: pdns met a backend error:\n{}",
            server.log()
        );
        assert_eq!(
            dig(server.port, &host, "A", &[]).data("A"),
            std::slice::from_ref(&ip),
            "{conf}: the last update is served"
        );
    }
    assert_eq!(daemon.terminate(), Some(0));
}
