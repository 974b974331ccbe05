//! `metrics-listen`: the Prometheus metrics after real traffic, and the health checks, against
//! the real binary.

use crate::common;

use std::net::SocketAddr;

use crate::common::{TestEnv, metric_sample};

fn get(addr: SocketAddr, path: &str) -> common::HttpResponse {
    common::send_raw(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

#[test]
fn the_metrics_count_what_happened() {
    let env = TestEnv::new();
    let seed = env.seed();
    let daemon = env.spawn("listeners.metrics-listen = \"127.0.0.1:0\"");
    let addr = daemon.metrics_addr();
    daemon
        .update_bearer(&seed.alice_key, "hostname=home.dyn.example&myip=192.0.2.1")
        .assert(200, "good 192.0.2.1");
    daemon
        .update_bearer(&seed.alice_key, "hostname=home.dyn.example&myip=192.0.2.1")
        .assert(200, "nochg 192.0.2.1");
    daemon
        .update_bearer("ak_wrong", "hostname=home.dyn.example")
        .assert(401, "badauth");
    daemon
        .update_basic(
            "alice",
            common::PASSWORD,
            "hostname=bob.dyn.example&myip=192.0.2.2",
        )
        .assert(404, "nohost");
    let listing = common::backend_call(
        daemon.backend_addr,
        &serde_json::json!({"method": "getAllDomains", "parameters": {}}),
    );
    assert!(listing.body.contains("dyn.example"), "{listing:?}");

    let scrape = get(addr, "/metrics");
    assert_eq!(scrape.status, 200);
    assert!(
        scrape
            .header("content-type")
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = &scrape.body;
    for (sample_name, value) in [
        (
            "certadns_ddns_updates_total{result=\"good\",auth=\"bearer\"}",
            1.0,
        ),
        (
            "certadns_ddns_updates_total{result=\"nochg\",auth=\"bearer\"}",
            1.0,
        ),
        (
            "certadns_ddns_updates_total{result=\"badauth\",auth=\"bearer\"}",
            1.0,
        ),
        (
            "certadns_ddns_updates_total{result=\"nohost\",auth=\"basic\"}",
            1.0,
        ),
        ("certadns_ddns_update_duration_seconds_count", 4.0),
        (
            "certadns_ddns_backend_calls_total{method=\"getAllDomains\",connector=\"http\"}",
            1.0,
        ),
        ("certadns_ddns_open_connections{name=\"metrics\"}", 1.0),
        ("certadns_ddns_password_checks_waiting", 0.0),
    ] {
        assert_eq!(
            metric_sample(text, sample_name),
            Some(value),
            "{sample_name} in:\n{text}"
        );
    }
    assert!(metric_sample(text, "certadns_ddns_commit_batch_size_count").unwrap() >= 1.0);
    assert!(metric_sample(text, "certadns_ddns_index_loads_total").unwrap() >= 1.0);
    // The build, as --version names it (issue 29, item 11).
    let version = env.cli_ok(&["--version"]);
    let commit = version
        .split("(commit ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap();
    assert!(
        commit == "unknown"
            || (commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "{version}"
    );
    assert_eq!(
        metric_sample(
            text,
            &format!(
                "certadns_ddns_build_info{{version=\"{}\",commit=\"{commit}\"}}",
                env!("CARGO_PKG_VERSION")
            )
        ),
        Some(1.0),
        "{text}"
    );
    // The process's own, under their standard names (issue 29, item 11).
    assert!(
        metric_sample(text, "process_cpu_seconds_total").unwrap() > 0.0,
        "{text}"
    );
    assert!(metric_sample(text, "process_resident_memory_bytes").unwrap() > 1e6);
    assert!(metric_sample(text, "process_open_fds").unwrap() >= 3.0);
    assert!(metric_sample(text, "process_max_fds").unwrap() >= 1024.0);
    let started = metric_sample(text, "process_start_time_seconds").unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        (now - 600.0..=now + 1.0).contains(&started),
        "{started} vs {now}"
    );
    assert!(text.ends_with("# EOF\n"));
    assert_eq!(get(addr, "/nothing").status, 404);
}

#[test]
fn readiness_names_the_part_that_is_not_ready() {
    let env = TestEnv::new();
    env.seed();
    let daemon =
        env.spawn("listeners.metrics-listen = \"127.0.0.1:0\"\nstore.busy-timeout-ms = 200");
    let addr = daemon.metrics_addr();
    get(addr, "/health/live").assert(200, "live\n");
    get(addr, "/health/ready").assert(200, "ready\n");
    // Another process holds the write lock: the store cannot take a write.
    let blocker = rusqlite::Connection::open(&env.db).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let blocked = get(addr, "/health/ready");
    assert_eq!(blocked.status, 503, "{blocked:?}");
    assert!(
        blocked.body.starts_with("store: cannot write"),
        "{}",
        blocked.body
    );
    get(addr, "/health/live").assert(200, "live\n");
    blocker.execute_batch("ROLLBACK").unwrap();
    get(addr, "/health/ready").assert(200, "ready\n");
}

#[test]
fn there_is_no_metrics_listener_unless_configured() {
    let env = TestEnv::new();
    env.seed();
    let daemon = env.spawn("");
    assert!(!daemon.log().contains("listening on metrics"));
    // The update listener does not serve them either.
    daemon.get("/metrics", &[]).assert(404, "not found");
}
