//! What real routers and clients send, as integration tests: several hosts per request, dual
//! stack and its address forms, tolerant parsing, always-200, and the abuse limits.
//! (`clients.rs` runs the real ddclient and inadyn.)

use crate::common;

use std::time::{Duration, Instant};

use crate::common::{Daemon, PASSWORD, TestEnv, basic, send_raw};

/// A seeded environment with `dual.dyn.example` (A and AAAA of alice) and a running daemon.
fn started(extra_config: &str) -> (TestEnv, Daemon) {
    let env = TestEnv::new();
    env.seed();
    env.add_domain("dual.dyn.example", "alice", "A", None);
    env.add_domain("dual.dyn.example", "alice", "AAAA", None);
    let daemon = env.spawn(extra_config);
    (env, daemon)
}

/// alice's update with `query`.
fn update(daemon: &Daemon, query: &str) -> common::HttpResponse {
    daemon.update_basic("alice", PASSWORD, query)
}

#[test]
fn several_hosts_get_one_line_each_in_request_order() {
    let (env, daemon) = started("");
    let response = update(
        &daemon,
        "hostname=home.dyn.example,bob.dyn.example,bad..name,dual.dyn.example&myip=192.0.2.1",
    );
    response.assert(200, "good 192.0.2.1\nnohost\nnotfqdn\ngood 192.0.2.1");
    assert_eq!(
        env.stored_ip("home.dyn.example", "A").as_deref(),
        Some("192.0.2.1")
    );
    assert_eq!(
        env.stored_ip("dual.dyn.example", "A").as_deref(),
        Some("192.0.2.1")
    );
    assert_eq!(env.stored_ip("bob.dyn.example", "A"), None);

    let response = update(
        &daemon,
        "hostname=home.dyn.example,dual.dyn.example&myip=192.0.2.1",
    );
    response.assert(200, "nochg 192.0.2.1\nnochg 192.0.2.1");
    assert!(!response.body.ends_with('\n') && !response.body.contains("\n\n"));
}

#[test]
fn several_hosts_failing_alike_take_that_status_and_auth_fails_once() {
    let (_env, daemon) = started("");
    update(
        &daemon,
        "hostname=bob.dyn.example,nothere.dyn.example&myip=192.0.2.1",
    )
    .assert(404, "nohost\nnohost");
    daemon
        .update_basic(
            "alice",
            "wrong password",
            "hostname=home.dyn.example,dual.dyn.example&myip=192.0.2.1",
        )
        .assert(401, "badauth");
    update(
        &daemon,
        "hostname=home.dyn.example,dual.dyn.example&myip=1.2.3",
    )
    .assert(400, "invalid IP address");
}

#[test]
fn more_than_twenty_hosts_is_numhost() {
    let (env, daemon) = started("");
    let hosts: Vec<String> = (0..21).map(|i| format!("h{i}.dyn.example")).collect();
    update(
        &daemon,
        &format!("hostname={}&myip=192.0.2.1", hosts.join(",")),
    )
    .assert(400, "numhost");
    let twenty = format!("home.dyn.example{}", ",dual.dyn.example".repeat(19));
    let response = update(&daemon, &format!("hostname={twenty}&myip=192.0.2.1"));
    assert_eq!(response.status, 200);
    assert_eq!(response.body.lines().count(), 20);
    assert_eq!(
        env.audit_count(),
        2,
        "one change per record, repeats are nochg"
    );
}

#[test]
fn dual_stack_in_one_request_answers_both_in_the_order_given() {
    let (env, daemon) = started("");
    update(
        &daemon,
        "hostname=dual.dyn.example&myip=192.0.2.1,2001:db8::1",
    )
    .assert(200, "good 192.0.2.1,2001:db8::1");
    assert_eq!(
        env.stored_ip("dual.dyn.example", "A").as_deref(),
        Some("192.0.2.1")
    );
    assert_eq!(
        env.stored_ip("dual.dyn.example", "AAAA").as_deref(),
        Some("2001:db8::1")
    );
    update(
        &daemon,
        "hostname=dual.dyn.example&myip=2001:DB8::1,192.0.2.1",
    )
    .assert(200, "nochg 2001:db8::1,192.0.2.1");
    // One of the two changes: good, with both.
    update(
        &daemon,
        "hostname=dual.dyn.example&myipv4=192.0.2.2&myipv6=2001:db8::1",
    )
    .assert(200, "good 192.0.2.2,2001:db8::1");
    assert_eq!(env.audit_count(), 3);
}

#[test]
fn every_address_form_clients_send_is_accepted() {
    let (env, daemon) = started("");
    for (query, answer, v4, v6) in [
        ("myip=192.0.2.10", "good 192.0.2.10", "192.0.2.10", None),
        (
            "myip=2001:db8::10",
            "good 2001:db8::10",
            "192.0.2.10",
            Some("2001:db8::10"),
        ),
        (
            "myip=2001%3adb8%3a%3a11",
            "good 2001:db8::11",
            "192.0.2.10",
            Some("2001:db8::11"),
        ),
        (
            "myipv4=192.0.2.12",
            "good 192.0.2.12",
            "192.0.2.12",
            Some("2001:db8::11"),
        ),
        (
            "myipv6=2001:db8::12",
            "good 2001:db8::12",
            "192.0.2.12",
            Some("2001:db8::12"),
        ),
        (
            "ipv4=192.0.2.13&ipv6=2001:db8::13",
            "good 192.0.2.13,2001:db8::13",
            "192.0.2.13",
            Some("2001:db8::13"),
        ),
        (
            "ip=192.0.2.14",
            "good 192.0.2.14",
            "192.0.2.14",
            Some("2001:db8::13"),
        ),
    ] {
        update(&daemon, &format!("hostname=dual.dyn.example&{query}")).assert(200, answer);
        assert_eq!(
            env.stored_ip("dual.dyn.example", "A").as_deref(),
            Some(v4),
            "{query}"
        );
        assert_eq!(
            env.stored_ip("dual.dyn.example", "AAAA").as_deref(),
            v6,
            "{query}"
        );
    }
}

#[test]
fn preserve_or_a_family_not_sent_leaves_that_record_alone() {
    let (env, daemon) = started("");
    update(
        &daemon,
        "hostname=dual.dyn.example&myip=192.0.2.1,2001:db8::1",
    )
    .assert(200, "good 192.0.2.1,2001:db8::1");
    update(
        &daemon,
        "hostname=dual.dyn.example&myipv4=preserve&myipv6=2001:db8::2",
    )
    .assert(200, "good 2001:db8::2");
    assert_eq!(
        env.stored_ip("dual.dyn.example", "A").as_deref(),
        Some("192.0.2.1"),
        "never deleted"
    );
    update(&daemon, "hostname=dual.dyn.example&myip=192.0.2.3").assert(200, "good 192.0.2.3");
    assert_eq!(
        env.stored_ip("dual.dyn.example", "AAAA").as_deref(),
        Some("2001:db8::2"),
        "never deleted"
    );
    // Both preserved: nothing changes; the answer shows what the host has.
    update(
        &daemon,
        "hostname=dual.dyn.example&myipv4=preserve&myipv6=preserve",
    )
    .assert(200, "nochg 192.0.2.3,2001:db8::2");
    // The detected address (IPv4 here) is used unless its family is preserved.
    update(&daemon, "hostname=dual.dyn.example&myipv6=preserve").assert(200, "good 127.0.0.1");
    update(&daemon, "hostname=dual.dyn.example&myipv4=preserve")
        .assert(200, "nochg 127.0.0.1,2001:db8::2");
}

#[test]
fn an_address_of_a_family_the_host_lacks_is_400_and_changes_nothing() {
    let (env, daemon) = started("");
    update(&daemon, "hostname=home.dyn.example&myip=2001:db8::1")
        .assert(400, "IPv4 required for an A record");
    update(&daemon, "hostname=v6.dyn.example&myipv4=192.0.2.1")
        .assert(400, "IPv6 required for an AAAA record");
    update(&daemon, "hostname=dual.dyn.example&myipv4=2001:db8::1")
        .assert(400, "IPv4 required for an A record");
    update(
        &daemon,
        "hostname=dual.dyn.example&myip=192.0.2.1,192.0.2.2",
    )
    .assert(400, "invalid IP address");
    assert_eq!(env.audit_count(), 0);
    assert_eq!(env.stored_ip("home.dyn.example", "A"), None);
    // A dual-stack router's request (FRITZ!Box: `myip=<ipaddr>,<ip6addr>`) for an IPv4-only
    // name: the IPv4 address is set, the family the name lacks left aside (as deSEC and Dyn
    // do), rather than every update of the router failing.
    update(
        &daemon,
        "hostname=home.dyn.example&myip=192.0.2.1,2001:db8::1",
    )
    .assert(200, "good 192.0.2.1");
    assert_eq!(
        env.stored_ip("home.dyn.example", "A").as_deref(),
        Some("192.0.2.1")
    );
    assert_eq!(env.audit_count(), 1);
}

#[test]
fn legacy_parameters_are_ignored_and_the_host_header_may_lack_a_port() {
    let (env, daemon) = started("");
    let raw = format!(
        "GET /nic/update?system=statdns&hostname=home.dyn.example&myip=192.0.2.1&wildcard=ON&mx=mx.example.net&backmx=YES&offline=NO HTTP/1.0\r\n\
         Host: 127.0.0.1\r\nAuthorization: {}\r\nUser-Agent: inadyn/2.10.0 https://github.com/troglobit/inadyn/issues\r\n\r\n",
        basic("alice", PASSWORD)
    );
    send_raw(daemon.addr, raw.as_bytes()).assert(200, "good 192.0.2.1");
    // No Host header at all (HTTP/1.0 allows it).
    let raw = format!(
        "GET /nic/update?hostname=home.dyn.example&myip=192.0.2.2 HTTP/1.0\r\nAuthorization: {}\r\n\r\n",
        basic("alice", PASSWORD)
    );
    send_raw(daemon.addr, raw.as_bytes()).assert(200, "good 192.0.2.2");
    assert_eq!(
        env.stored_ip("home.dyn.example", "A").as_deref(),
        Some("192.0.2.2")
    );
}

#[test]
fn connection_close_is_honoured_after_the_answer() {
    let (_env, daemon) = started("");
    // send_raw reads to EOF, as ddclient does: it returns only because the server closes.
    let started = Instant::now();
    let raw = format!(
        "GET /nic/update?hostname=home.dyn.example&myip=192.0.2.1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: {}\r\n\r\n",
        basic("alice", PASSWORD)
    );
    send_raw(daemon.addr, raw.as_bytes()).assert(200, "good 192.0.2.1");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn always_200_keeps_the_codes_but_answers_200() {
    let (_env, daemon) = started("updates.always-200 = true");
    update(&daemon, "hostname=bob.dyn.example&myip=192.0.2.1").assert(200, "nohost");
    daemon
        .update_basic("alice", "wrong", "hostname=home.dyn.example")
        .assert(200, "badauth");
    update(&daemon, "hostname=home.dyn.example&myip=bogus").assert(200, "invalid IP address");
    update(&daemon, "myip=192.0.2.1").assert(200, "notfqdn");
    update(&daemon, "hostname=home.dyn.example&myip=192.0.2.1").assert(200, "good 192.0.2.1");
}

/// Abuse detection on, with the defaults (the tests' daemons run without it).
const ABUSE_DEFAULTS: &str = "limits.abuse-detection = true";

/// `domain list`'s FLAG cell for `fqdn` (the first of its types): `abuse` or `-`.
fn listed(env: &TestEnv, fqdn: &str) -> String {
    let listing = env.cli_ok(&["domain", "list"]);
    let column = listing
        .lines()
        .next()
        .and_then(|header| header.split_whitespace().position(|name| name == "FLAG"))
        .expect("a FLAG column");
    let line = listing
        .lines()
        .find(|line| line.starts_with(&format!("{fqdn} ")))
        .unwrap_or_else(|| panic!("{fqdn} is listed"));
    line.split_whitespace()
        .nth(column)
        .unwrap_or_default()
        .to_string()
}

/// Waits (bounded) until `done` holds; the service writes episodes behind, within a second.
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends alice's updates of home.dyn.example at `per_second` for `duration` (each to a new
/// address, one after another on the wall clock), until `stop` says so; the answers, each with
/// its address and when it was sent (from the start).
fn flood(
    daemon: &Daemon,
    per_second: u32,
    duration: Duration,
    stop: impl Fn(&common::HttpResponse) -> bool,
) -> Vec<(String, common::HttpResponse, Duration)> {
    let start = Instant::now();
    let mut answers = Vec::new();
    let mut n: u32 = 0;
    while start.elapsed() < duration {
        // Pacing is the behaviour under test: the requests must come at this rate.
        let due = start + Duration::from_secs(1) * n / per_second;
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let ip = format!("198.51.{}.{}", 100 + n / 250, 1 + n % 250);
        let sent = start.elapsed();
        let response = update(daemon, &format!("hostname=home.dyn.example&myip={ip}"));
        let done = stop(&response);
        answers.push((ip, response, sent));
        if done {
            break;
        }
        n += 1;
    }
    answers
}

#[test]
fn a_sustained_flood_is_flagged_shown_to_admins_and_changes_nothing_while_flagged() {
    let (env, daemon) = started(ABUSE_DEFAULTS);
    // 20 requests a second for 6 s: the spec's "more than once per second", sustained.
    let answers = flood(&daemon, 20, Duration::from_secs(6), |_| false);
    let first_refused = answers
        .iter()
        .position(|(_, response, _)| response.status == 429)
        .expect("the flood is flagged");
    // Served while above the rate for less than 5 s (a burst is not abuse), however fast this
    // machine sends...
    let flagged_at = answers[first_refused].2;
    assert!(
        flagged_at >= Duration::from_secs(5),
        "flagged after {flagged_at:?}, {first_refused} requests"
    );
    for (ip, response, _) in &answers[..first_refused] {
        response.assert(200, &format!("good {ip}"));
    }
    // ...then refused to the end, leaving the record and the audit trail as they were.
    let refused = &answers[first_refused..];
    for (_, response, _) in refused {
        response.assert(429, "abuse");
    }
    let (last_good, _, _) = &answers[first_refused - 1];
    assert_eq!(
        env.stored_ip("home.dyn.example", "A").as_deref(),
        Some(last_good.as_str())
    );
    assert_eq!(
        env.audit_count(),
        i64::try_from(first_refused).unwrap(),
        "one audit row per change, none for refused requests"
    );

    // Other hosts of the same user, and other users, go on.
    update(&daemon, "hostname=dual.dyn.example&myip=192.0.2.4").assert(200, "good 192.0.2.4");
    daemon
        .update_basic("bob", PASSWORD, "hostname=bob.dyn.example&myip=192.0.2.5")
        .assert(200, "good 192.0.2.5");
    update(&daemon, "hostname=home.dyn.example&myip=192.0.2.6").assert(429, "abuse");

    // Admins see it: a FLAG column in `domain list`, the episode in `history`.
    eventually("domain list flags the host", || {
        listed(&env, "home.dyn.example").ends_with("abuse")
    });
    assert!(listed(&env, "dual.dyn.example").ends_with('-'));
    let total_refused = refused.len() + 1;
    eventually("history counts every refused request", || {
        let json = env.cli_ok(&["history", "home.dyn.example", "--json"]);
        let events: serde_json::Value = serde_json::from_str(&json).unwrap();
        events.as_array().unwrap().iter().any(|event| {
            event["event"] == "abuse"
                && event["refused"] == total_refused
                && event["username"] == "alice"
        })
    });
    let text = env.cli_ok(&["history", "home.dyn.example"]);
    assert!(text.contains("ABUSE_FROM"), "{text}");
    assert!(text.contains(&format!("  {total_refused}  ")), "{text}");
    // Logged once per episode, not once per refused request.
    let log = daemon.log();
    assert_eq!(log.matches("flagged, answering abuse").count(), 1, "{log}");
    // Flags live in the service's memory: after a restart the host is not flagged, and the
    // store says so too.
    drop(daemon);
    let daemon = env.spawn(ABUSE_DEFAULTS);
    assert!(listed(&env, "home.dyn.example").ends_with('-'));
    update(&daemon, "hostname=home.dyn.example&myip=192.0.2.6").assert(200, "good 192.0.2.6");
}

#[test]
fn a_flag_lifts_after_a_quiet_cool_down() {
    let (env, daemon) = started(
        "limits.abuse-detection = true\nlimits.abuse-flag-after-secs = 1\nlimits.abuse-cooldown-secs = 1",
    );
    let answers = flood(&daemon, 20, Duration::from_secs(5), |response| {
        response.status == 429
    });
    let (_, last, sent) = answers.last().unwrap();
    assert_eq!(last.status, 429, "flagged within 5 s");
    assert!(
        *sent >= Duration::from_secs(1),
        "not before 1 s above the rate"
    );
    eventually("domain list flags the host", || {
        listed(&env, "home.dyn.example").ends_with("abuse")
    });
    // Quiet for the cool-down (time passing is the behaviour under test).
    std::thread::sleep(Duration::from_millis(1100));
    update(&daemon, "hostname=home.dyn.example&myip=192.0.2.9").assert(200, "good 192.0.2.9");
    assert!(listed(&env, "home.dyn.example").ends_with('-'));
}

#[test]
fn ordinary_clients_back_to_back_are_never_refused_under_the_defaults() {
    let (env, daemon) = started(ABUSE_DEFAULTS);
    let key = env.cli_ok(&["key", "create", "alice"]).trim().to_string();
    let host = "dual.dyn.example";
    let path = |query: &str| format!("/domains/nic/update?hostname={host}{query}");
    // The product spec's cURL examples, one after another: a given address with the API key
    // as password, then the client's own address, then Bearer, then query credentials.
    daemon
        .get(
            &path("&myip=1.2.3.4"),
            &[("Authorization", &basic("alice", &key))],
        )
        .assert(200, "good 1.2.3.4");
    daemon
        .get(&path(""), &[("Authorization", &basic("alice", &key))])
        .assert(200, "good 127.0.0.1");
    daemon
        .get(&path(""), &[("Authorization", &format!("Bearer {key}"))])
        .assert(200, "nochg 127.0.0.1");
    daemon
        .get(&path(&format!("&username=alice&password={key}")), &[])
        .assert(200, "nochg 127.0.0.1");
    // A FRITZ!Box: one URL per family, requested at the same moment.
    let barrier = std::sync::Barrier::new(2);
    let (v4, v6) = std::thread::scope(|scope| {
        let send = |query: String| {
            let barrier = &barrier;
            let daemon = &daemon;
            scope.spawn(move || {
                barrier.wait();
                daemon.update_basic("alice", PASSWORD, &query)
            })
        };
        let v4 = send(format!("hostname={host}&myip=192.0.2.7"));
        let v6 = send(format!("hostname={host}&myipv6=2001:db8::7"));
        (v4.join().unwrap(), v6.join().unwrap())
    });
    v4.assert(200, "good 192.0.2.7");
    v6.assert(200, "good 2001:db8::7");
    // A router's dummy-then-real update (pfSense, OpenWRT), here right away.
    update(&daemon, &format!("hostname={host}&myip=127.0.0.1")).assert(200, "good 127.0.0.1");
    update(&daemon, &format!("hostname={host}&myip=192.0.2.8")).assert(200, "good 192.0.2.8");
    assert_eq!(env.stored_ip(host, "A").as_deref(), Some("192.0.2.8"));
    assert_eq!(env.stored_ip(host, "AAAA").as_deref(), Some("2001:db8::7"));
    assert!(listed(&env, host).ends_with('-'));
    assert!(!daemon.log().contains("flagged"));
}

#[test]
fn repeated_failures_are_refused_without_checking_passwords() {
    let (_env, daemon) =
        started("limits.auth-failure-limit = 3\nlimits.auth-failure-cooldown-secs = 60");
    // A router with the right password, checked once, keeps working throughout.
    update(&daemon, "hostname=home.dyn.example&myip=192.0.2.1").assert(200, "good 192.0.2.1");
    for _ in 0..3 {
        daemon
            .update_basic("alice", "guess", "hostname=home.dyn.example")
            .assert(401, "badauth");
    }
    // Over the limit: passwords from this client are no longer checked at all, so even bob's
    // right (and never cached) password is refused...
    daemon
        .update_basic("bob", PASSWORD, "hostname=bob.dyn.example&myip=192.0.2.9")
        .assert(401, "badauth");
    // ...while alice's router, whose password was checked recently, goes on working.
    update(&daemon, "hostname=home.dyn.example&myip=192.0.2.2").assert(200, "good 192.0.2.2");
    let log = daemon.log();
    assert_eq!(
        log.matches("repeated authentication failures").count(),
        2,
        "client and login, once each:\n{log}"
    );
}
