//! What real routers and clients send, as integration tests: several hosts per request, dual
//! stack and its address forms, tolerant parsing, always-200, and the abuse limits.
//! (`clients.rs` runs the real ddclient and inadyn.)

mod common;

use std::time::{Duration, Instant};

use common::{Daemon, PASSWORD, TestEnv, basic, send_raw};

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
    update(
        &daemon,
        "hostname=home.dyn.example&myip=192.0.2.1,2001:db8::1",
    )
    .assert(400, "IPv4 required for an A record");
    assert_eq!(
        env.stored_ip("home.dyn.example", "A"),
        None,
        "all or nothing for the host"
    );
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
    let (_env, daemon) = started("always-200 = true");
    update(&daemon, "hostname=bob.dyn.example&myip=192.0.2.1").assert(200, "nohost");
    daemon
        .update_basic("alice", "wrong", "hostname=home.dyn.example")
        .assert(200, "badauth");
    update(&daemon, "hostname=home.dyn.example&myip=bogus").assert(200, "invalid IP address");
    update(&daemon, "myip=192.0.2.1").assert(200, "notfqdn");
    update(&daemon, "hostname=home.dyn.example&myip=192.0.2.1").assert(200, "good 192.0.2.1");
}

#[test]
fn updates_faster_than_allowed_get_abuse_and_change_nothing() {
    let (env, daemon) = started("abuse-min-interval-ms = 60000\nabuse-cooldown-secs = 60");
    update(&daemon, "hostname=home.dyn.example&myip=192.0.2.1").assert(200, "good 192.0.2.1");
    update(&daemon, "hostname=home.dyn.example&myip=192.0.2.2").assert(429, "abuse");
    update(&daemon, "hostname=home.dyn.example&myip=192.0.2.3").assert(429, "abuse");
    assert_eq!(
        env.stored_ip("home.dyn.example", "A").as_deref(),
        Some("192.0.2.1")
    );
    assert_eq!(env.audit_count(), 1, "the audit trail is left as it is");
    // Other hosts, and the same name for another user, are not affected.
    update(
        &daemon,
        "hostname=dual.dyn.example,home.dyn.example&myip=192.0.2.4",
    )
    .assert(200, "good 192.0.2.4\nabuse");
    daemon
        .update_basic("bob", PASSWORD, "hostname=bob.dyn.example&myip=192.0.2.5")
        .assert(200, "good 192.0.2.5");
    let log = daemon.log();
    assert_eq!(
        log.matches("faster than one per").count(),
        1,
        "logged once per episode:\n{log}"
    );
}

#[test]
fn the_default_pace_lets_a_router_dummy_then_real_update_through() {
    let (env, daemon) = started("abuse-min-interval-ms = 200");
    update(&daemon, "hostname=home.dyn.example&myip=127.0.0.1").assert(200, "good 127.0.0.1");
    // pfSense and OpenWRT send the real update about 10 s later; scaled down here to a
    // 0.2 s minimum interval. Time passing is the behaviour under test, so this sleep stays.
    std::thread::sleep(Duration::from_millis(250));
    update(&daemon, "hostname=home.dyn.example&myip=192.0.2.1").assert(200, "good 192.0.2.1");
    assert_eq!(env.audit_count(), 2);
}

#[test]
fn repeated_failures_are_refused_without_checking_passwords() {
    let (_env, daemon) = started("auth-failure-limit = 3\nauth-failure-cooldown-secs = 60");
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
