//! Fresh answers with pdns's caches on: a real pdns_server with pdns-conf as shipped (packet,
//! query and negative caches at their defaults), kept warm by a steady query load, must answer
//! every query issued after a `good` with the new address; so must a brand-new name that was
//! just answered NXDOMAIN (and so cached as negative).
//!
//! Needs `pdns_server`, `pdns_control` and `dig`: without them the test prints why and passes,
//! unless `REQUIRE_E2E=1`, as in CI.

#![allow(clippy::print_stdout, reason = "the test reports what it measured")]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::{Pdns, PdnsApiEndpoint, TestEnv, dig, require_tool};

/// Hosts updated in turn.
const HOSTS: usize = 10;

/// Updates in all.
const UPDATES: usize = 300;

/// The zone with [`HOSTS`] hosts `h0..` of alice at 192.0.2.1; returns her API key.
fn seed(env: &TestEnv) -> String {
    env.cli_ok(&["zone", "add", "dyn.example", "--ns", "ns1.dyn.example"]);
    env.add_user("alice", "alice@example.com", "plus");
    for host in 0..HOSTS {
        env.add_domain(
            &format!("h{host}.dyn.example"),
            "alice",
            "A",
            Some("192.0.2.1"),
        );
    }
    env.cli_ok(&["key", "create", "alice"]).trim().to_string()
}

#[test]
fn every_query_after_good_sees_the_update_with_caches_on() {
    if !require_tool("pdns_server") || !require_tool("dig") || !require_tool("pdns_control") {
        return;
    }
    let env = TestEnv::new();
    let key = seed(&env);
    let socket = env.dir.path().join("backend.sock");
    let api = PdnsApiEndpoint::new();
    let daemon = env.spawn(&format!(
        "listeners.backend-socket = {socket:?}\n{}",
        api.daemon_config()
    ));
    let pdns = Pdns::on_socket(env.dir.path(), &socket, &api, "dyn.example");
    let port = pdns.port;

    // A steady load on every host keeps pdns's caches warm throughout.
    let stop = Arc::new(AtomicBool::new(false));
    let background_queries = Arc::new(AtomicUsize::new(0));
    let load: Vec<_> = (0..2)
        .map(|worker| {
            let (stop, count) = (Arc::clone(&stop), Arc::clone(&background_queries));
            std::thread::spawn(move || {
                let mut host = worker;
                while !stop.load(Ordering::Relaxed) {
                    dig(port, &format!("h{}.dyn.example", host % HOSTS), "A", &[]);
                    count.fetch_add(1, Ordering::Relaxed);
                    host += 1;
                }
            })
        })
        .collect();

    let bearer = format!("Bearer {key}");
    let mut stale = Vec::new();
    for round in 0..UPDATES {
        let host = format!("h{}.dyn.example", round % HOSTS);
        let ip = format!(
            "10.{}.{}.{}",
            round / 65536 % 256,
            round / 256 % 256,
            round % 256
        );
        daemon
            .get(
                &format!("/nic/update?hostname={host}&myip={ip}"),
                &[("Authorization", &bearer)],
            )
            .assert(200, &format!("good {ip}"));
        let served = dig(port, &host, "A", &[]).data("A");
        if served != [ip.clone()] {
            stale.push(format!("{host}: served {served:?} after good {ip}"));
        }
    }

    // Brand-new names, queried (and so cached as NXDOMAIN) just before they are created.
    assert_eq!(dig(port, "fresh1.dyn.example", "A", &[]).status, "NXDOMAIN");
    env.add_domain("fresh1.dyn.example", "alice", "A", Some("192.0.2.201"));
    assert_eq!(
        dig(port, "fresh1.dyn.example", "A", &[]).data("A"),
        ["192.0.2.201"]
    );
    env.add_domain("fresh2.dyn.example", "alice", "A", None);
    assert_eq!(dig(port, "fresh2.dyn.example", "A", &[]).status, "NXDOMAIN");
    daemon
        .get(
            "/nic/update?hostname=fresh2.dyn.example&myip=192.0.2.202",
            &[("Authorization", &bearer)],
        )
        .assert(200, "good 192.0.2.202");
    assert_eq!(
        dig(port, "fresh2.dyn.example", "A", &[]).data("A"),
        ["192.0.2.202"]
    );

    stop.store(true, Ordering::Relaxed);
    for worker in load {
        worker.join().unwrap();
    }
    assert!(
        stale.is_empty(),
        "{} stale answers of {UPDATES}:\n{}",
        stale.len(),
        stale.join("\n")
    );
    // The caches were really on, and really used.
    let hits: u64 = pdns
        .control(&["show", "packetcache-hit"])
        .trim()
        .parse()
        .unwrap();
    let queries = background_queries.load(Ordering::Relaxed);
    assert!(queries > 100, "the background load ran ({queries} queries)");
    assert!(
        hits > 50,
        "pdns answered from its packet cache ({hits} hits of {queries} background queries)"
    );
    println!(
        "{UPDATES} updates, 0 stale answers; {queries} background queries, {hits} packet-cache hits"
    );
}

/// Rounds of [`no_stale_answer_after_good_over_a_slow_relay_link`].
const SLOW_LINK_ROUNDS: usize = 100;

/// Issue 27, provoked on purpose: pdns on the relay (caches and API as shipped) whose link to
/// `serve` delays each answer by 0–60 ms, so that answers on pdns's connections overtake each
/// other; a steady query load on the same names; each host changed twice back to back, then
/// asked at once and 300 ms later. An answer read before a commit but delivered after its purge
/// is cached by pdns: stale for the cache TTL.
#[test]
#[ignore = "issue 27: answers delayed on a slow link are cached after the purge; \
            `cargo test --test e2e_cache -- --ignored` shows how many"]
fn no_stale_answer_after_good_over_a_slow_relay_link() {
    if !require_tool("pdns_server") || !require_tool("dig") || !require_tool("dnsperf") {
        return;
    }
    let env = TestEnv::new();
    let key = seed(&env);
    let api = PdnsApiEndpoint::new();
    let tcp_port = common::free_port();
    let daemon = env.spawn(&format!(
        "listeners.backend-tcp-listen = \"127.0.0.1:{tcp_port}\"\n{}",
        api.daemon_config()
    ));
    let link = common::delay_proxy::DelayProxy::start(
        format!("127.0.0.1:{tcp_port}").parse().unwrap(),
        std::time::Duration::from_millis(60),
    );
    let shipped = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pdns-conf/pdns.relay.conf"),
    )
    .unwrap();
    let connection = shipped
        .lines()
        .find_map(|line| line.strip_prefix("remote-connection-string="))
        .unwrap()
        .replace("/usr/bin/certadns-ddns", common::BIN)
        .replace("192.0.2.10:8083", &link.addr.to_string());
    let pdns = Pdns::spawn(
        env.dir.path(),
        "pdns.relay.conf",
        &connection,
        &api,
        "dyn.example",
    );
    let port = pdns.port;
    // dnsperf on the same names keeps lookups in flight on every pdns connection.
    let queries = env.dir.path().join("queries.txt");
    std::fs::write(
        &queries,
        (0..HOSTS)
            .map(|host| format!("h{host}.dyn.example A\n"))
            .collect::<String>(),
    )
    .unwrap();
    let mut load = std::process::Command::new("dnsperf")
        .args(["-s", "127.0.0.1", "-p", &port.to_string(), "-d"])
        .arg(&queries)
        .args(["-c", "4", "-Q", "2000", "-l", "600"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start dnsperf");
    let bearer = format!("Bearer {key}");
    let (mut stale_first, mut stale_later) = (Vec::new(), Vec::new());
    for round in 0..SLOW_LINK_ROUNDS {
        let host = format!("h{}.dyn.example", round % HOSTS);
        let mut ip = String::new();
        for step in 0..2 {
            ip = format!("10.{}.{}.{step}", round / 256 % 256, round % 256);
            daemon
                .get(
                    &format!("/nic/update?hostname={host}&myip={ip}"),
                    &[("Authorization", &bearer)],
                )
                .assert(200, &format!("good {ip}"));
        }
        let first = dig(port, &host, "A", &[]).data("A");
        if first != [ip.clone()] {
            stale_first.push(format!("{host}: {first:?} after good {ip}"));
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
        let later = dig(port, &host, "A", &[]).data("A");
        if later != [ip.clone()] {
            stale_later.push(format!("{host}: {later:?} 300 ms after good {ip}"));
        }
    }
    let _ = load.kill();
    let _ = load.wait();
    println!(
        "{SLOW_LINK_ROUNDS} double changes over a 0-60 ms link: {} stale first answers, {} stale 300 ms later",
        stale_first.len(),
        stale_later.len()
    );
    assert!(
        stale_first.is_empty() && stale_later.is_empty(),
        "first:\n{}\nlater:\n{}",
        stale_first.join("\n"),
        stale_later.join("\n")
    );
}
