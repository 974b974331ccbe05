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

#[test]
fn every_query_after_good_sees_the_update_with_caches_on() {
    if !require_tool("pdns_server") || !require_tool("dig") || !require_tool("pdns_control") {
        return;
    }
    let env = TestEnv::new();
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
    let key = env.cli_ok(&["key", "create", "alice"]).trim().to_string();
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
