//! The DynDNS update endpoints, driven over HTTP against the real binary.

use crate::common;

use std::time::{Duration, Instant};

use crate::common::{Daemon, PASSWORD, TestEnv, basic, send_raw};

/// Alice's password, percent-encoded for query strings.
const PASSWORD_QUERY: &str = "s3cr%3Aet%26pass%20word";

fn started() -> (TestEnv, common::Seed, Daemon) {
    let env = TestEnv::new();
    let seed = env.seed();
    let daemon = env.spawn("");
    (env, seed, daemon)
}

#[test]
fn good_then_nochg_with_basic_password() {
    let (env, _, mut daemon) = started();
    let response = daemon.update_basic(
        "alice",
        PASSWORD,
        "hostname=home.dyn.example&myip=192.0.2.1",
    );
    response.assert(200, "good 192.0.2.1");
    assert!(
        response
            .header("content-type")
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(
        env.stored_ip("home.dyn.example", "A").as_deref(),
        Some("192.0.2.1")
    );
    assert_eq!(env.audit_count(), 1);

    let again = daemon.update_basic(
        "alice",
        PASSWORD,
        "hostname=home.dyn.example&myip=192.0.2.1",
    );
    again.assert(200, "nochg 192.0.2.1");
    assert_eq!(env.audit_count(), 1, "nochg writes no audit row");
    // The check time of a nochg is written behind (within a second), not before the answer.
    let checked = || -> String {
        env.db()
            .query_row(
                "SELECT last_checked_at FROM domains WHERE fqdn = 'home.dyn.example'",
                [],
                |r| r.get(0),
            )
            .unwrap()
    };
    let after_good = checked();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while checked() <= after_good {
        assert!(
            std::time::Instant::now() < deadline,
            "nochg never touched last_checked_at"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // Stopping the daemon writes what is still pending: a nochg right before SIGTERM (2 ms
    // on, so that its time differs from the last one written at millisecond precision).
    let before_stop = checked();
    std::thread::sleep(std::time::Duration::from_millis(2));
    daemon
        .update_basic(
            "alice",
            PASSWORD,
            "hostname=home.dyn.example&myip=192.0.2.1",
        )
        .assert(200, "nochg 192.0.2.1");
    daemon.terminate();
    assert!(checked() > before_stop, "flushed at shutdown");
}

#[test]
fn every_update_path_takes_get_and_post() {
    let (env, seed, daemon) = started();
    let paths = [
        "/nic/update",
        "/domains/nic/update",
        "/domains/v2/update",
        "/domains/dyndns/update",
        "/domains/update",
    ];
    for (index, path) in paths.iter().enumerate() {
        let ip = format!("192.0.2.{}", index + 10);
        let auth = basic("alice", PASSWORD);
        daemon
            .get(
                &format!("{path}?hostname=home.dyn.example&myip={ip}"),
                &[("Authorization", &auth)],
            )
            .assert(200, &format!("good {ip}"));
        let ip = format!("198.51.100.{}", index + 10);
        daemon
            .post_form(
                path,
                &[("Authorization", &auth)],
                &format!("hostname=home.dyn.example&myip={ip}"),
            )
            .assert(200, &format!("good {ip}"));
        assert_eq!(env.stored_ip("home.dyn.example", "A"), Some(ip));
    }
    // A trailing slash is tolerated; parameters may be split between query and body.
    daemon
        .post_form(
            "/nic/update/?hostname=home.dyn.example",
            &[("Authorization", &format!("Bearer {}", seed.alice_key))],
            "myip=203.0.113.1",
        )
        .assert(200, "good 203.0.113.1");
}

#[test]
fn bearer_keys_work_except_on_domains_update() {
    let (env, seed, daemon) = started();
    let bearer = format!("Bearer {}", seed.alice_key);
    for path in [
        "/nic/update",
        "/domains/nic/update",
        "/domains/v2/update",
        "/domains/dyndns/update",
    ] {
        let response = daemon.get(
            &format!("{path}?hostname=home.dyn.example&myip=192.0.2.7"),
            &[("Authorization", &bearer)],
        );
        assert_eq!(response.status, 200, "{path}: {response:?}");
    }
    let response = daemon.get(
        "/domains/update?hostname=home.dyn.example&myip=192.0.2.8",
        &[("Authorization", &bearer)],
    );
    response.assert(401, "badauth");
    assert!(
        response
            .header("www-authenticate")
            .unwrap()
            .starts_with("Basic")
    );
    assert_eq!(
        env.stored_ip("home.dyn.example", "A").as_deref(),
        Some("192.0.2.7")
    );

    let used: Option<String> = env
        .db()
        .query_row("SELECT last_used_at FROM api_keys", [], |r| r.get(0))
        .unwrap();
    assert!(used.is_some(), "last_used_at is set on use");
}

#[test]
fn basic_accepts_email_any_case_and_an_api_key_as_password() {
    let (_env, seed, daemon) = started();
    daemon
        .update_basic(
            "ALICE@example.COM",
            PASSWORD,
            "hostname=home.dyn.example&myip=192.0.2.1",
        )
        .assert(200, "good 192.0.2.1");
    daemon
        .update_basic(
            "Alice",
            PASSWORD,
            "hostname=HOME.Dyn.Example.&myip=192.0.2.2",
        )
        .assert(200, "good 192.0.2.2");
    daemon
        .update_basic(
            "alice",
            &seed.alice_key,
            "hostname=home.dyn.example&myip=192.0.2.3",
        )
        .assert(200, "good 192.0.2.3");
}

#[test]
fn query_parameters_authenticate_last() {
    let (env, _, daemon) = started();
    daemon
        .get(&format!("/nic/update?hostname=home.dyn.example&myip=192.0.2.1&username=alice&password={PASSWORD_QUERY}"), &[])
        .assert(200, "good 192.0.2.1");
    // A Basic header present decides, even when it is wrong and the parameters are right.
    daemon
        .get(
            &format!("/nic/update?hostname=home.dyn.example&myip=192.0.2.2&username=alice&password={PASSWORD_QUERY}"),
            &[("Authorization", &basic("alice", "wrong"))],
        )
        .assert(401, "badauth");
    assert_eq!(
        env.stored_ip("home.dyn.example", "A").as_deref(),
        Some("192.0.2.1")
    );
    let method: String = env
        .db()
        .query_row("SELECT auth_method FROM domain_updates", [], |r| r.get(0))
        .unwrap();
    assert_eq!(method, "query");
}

#[test]
fn wrong_password_unknown_user_and_no_credentials_are_badauth() {
    let (env, _, daemon) = started();
    for response in [
        daemon.update_basic(
            "alice",
            "wrong password",
            "hostname=home.dyn.example&myip=192.0.2.1",
        ),
        daemon.update_basic(
            "nobody",
            PASSWORD,
            "hostname=home.dyn.example&myip=192.0.2.1",
        ),
        daemon.update_basic(
            "nobody@example.com",
            PASSWORD,
            "hostname=home.dyn.example&myip=192.0.2.1",
        ),
        daemon.get("/nic/update?hostname=home.dyn.example&myip=192.0.2.1", &[]),
        daemon.get("/nic/update?hostname=home.dyn.example&username=alice", &[]),
        daemon.get(
            "/nic/update?hostname=home.dyn.example",
            &[("Authorization", "Basic %%%")],
        ),
        daemon.get(
            "/nic/update?hostname=home.dyn.example",
            &[(
                "Authorization",
                "Bearer ak_not_a_real_key_at_all_0000000000",
            )],
        ),
    ] {
        response.assert(401, "badauth");
    }
    assert_eq!(env.stored_ip("home.dyn.example", "A"), None);
    assert_eq!(env.audit_count(), 0);
}

#[test]
fn revoked_keys_are_refused() {
    let (env, seed, daemon) = started();
    let prefix = &seed.alice_key[..11];
    env.cli_ok(&["key", "revoke", prefix]);
    daemon
        .get(
            "/nic/update?hostname=home.dyn.example&myip=192.0.2.1",
            &[("Authorization", &format!("Bearer {}", seed.alice_key))],
        )
        .assert(401, "badauth");
    daemon
        .update_basic(
            "alice",
            &seed.alice_key,
            "hostname=home.dyn.example&myip=192.0.2.1",
        )
        .assert(401, "badauth");
    // The password still works.
    daemon
        .update_basic(
            "alice",
            PASSWORD,
            "hostname=home.dyn.example&myip=192.0.2.1",
        )
        .assert(200, "good 192.0.2.1");
}

#[test]
fn keys_of_a_free_plan_user_are_refused_until_they_upgrade() {
    let (env, seed, daemon) = started();
    let bearer = format!("Bearer {}", seed.alice_key);
    env.cli_ok(&["user", "plan", "alice", "free"]);
    daemon
        .get(
            "/nic/update?hostname=home.dyn.example&myip=192.0.2.1",
            &[("Authorization", &bearer)],
        )
        .assert(401, "badauth");
    daemon
        .update_basic(
            "alice",
            &seed.alice_key,
            "hostname=home.dyn.example&myip=192.0.2.1",
        )
        .assert(401, "badauth");
    daemon
        .update_basic(
            "alice",
            PASSWORD,
            "hostname=home.dyn.example&myip=192.0.2.1",
        )
        .assert(200, "good 192.0.2.1");
    env.cli_ok(&["user", "plan", "alice", "pro"]);
    daemon
        .get(
            "/nic/update?hostname=home.dyn.example&myip=192.0.2.2",
            &[("Authorization", &bearer)],
        )
        .assert(200, "good 192.0.2.2");
}

#[test]
fn keys_without_the_update_scope_are_refused() {
    let (env, _, daemon) = started();
    let read_only = env
        .cli_ok(&["key", "create", "alice", "--scope", "domains:read"])
        .trim()
        .to_string();
    daemon
        .get(
            "/nic/update?hostname=home.dyn.example&myip=192.0.2.1",
            &[("Authorization", &format!("Bearer {read_only}"))],
        )
        .assert(401, "badauth");
    let both = env
        .cli_ok(&[
            "key",
            "create",
            "alice",
            "--scope",
            "domains:read",
            "--scope",
            "domains:update",
        ])
        .trim()
        .to_string();
    daemon
        .get(
            "/nic/update?hostname=home.dyn.example&myip=192.0.2.1",
            &[("Authorization", &format!("Bearer {both}"))],
        )
        .assert(200, "good 192.0.2.1");
}

#[test]
fn disabled_users_and_changed_passwords_are_refused_at_once() {
    let (env, _, daemon) = started();
    let update = |ip: &str| {
        daemon.update_basic(
            "alice",
            PASSWORD,
            &format!("hostname=home.dyn.example&myip={ip}"),
        )
    };
    update("192.0.2.1").assert(200, "good 192.0.2.1");
    update("192.0.2.2").assert(200, "good 192.0.2.2"); // served from the password cache
    env.cli_ok(&["user", "disable", "alice"]);
    update("192.0.2.3").assert(401, "badauth");
    env.cli_ok(&["user", "enable", "alice"]);
    update("192.0.2.3").assert(200, "good 192.0.2.3");
    env.cli_ok_with_stdin(
        &["user", "password", "alice", "--password-stdin"],
        "a brand new password",
    );
    update("192.0.2.4").assert(401, "badauth");
    daemon
        .update_basic(
            "alice",
            "a brand new password",
            "hostname=home.dyn.example&myip=192.0.2.4",
        )
        .assert(200, "good 192.0.2.4");
}

#[test]
fn another_users_domain_and_unknown_names_are_nohost() {
    let (env, seed, daemon) = started();
    daemon
        .update_basic("alice", PASSWORD, "hostname=bob.dyn.example&myip=192.0.2.1")
        .assert(404, "nohost");
    daemon
        .get(
            "/nic/update?hostname=bob.dyn.example&myip=192.0.2.1",
            &[("Authorization", &format!("Bearer {}", seed.alice_key))],
        )
        .assert(404, "nohost");
    daemon
        .update_basic(
            "alice",
            PASSWORD,
            "hostname=nothere.dyn.example&myip=192.0.2.1",
        )
        .assert(404, "nohost");
    daemon
        .update_basic(
            "alice",
            PASSWORD,
            "hostname=home.dyn.example.evil&myip=192.0.2.1",
        )
        .assert(404, "nohost");
    assert_eq!(env.stored_ip("bob.dyn.example", "A"), None);
    // bob, on the free plan, updates his own with his password.
    daemon
        .update_basic(
            "bob@example.com",
            PASSWORD,
            "hostname=bob.dyn.example&myip=192.0.2.9",
        )
        .assert(200, "good 192.0.2.9");
}

#[test]
fn missing_or_malformed_hostnames_are_notfqdn() {
    let (_env, _, daemon) = started();
    let long = format!("{}.dyn.example", "a.".repeat(124));
    assert!(long.len() > 253);
    for query in [
        "myip=192.0.2.1".to_string(),
        "hostname=&myip=192.0.2.1".to_string(),
        "hostname=bad..name&myip=192.0.2.1".to_string(),
        "hostname=bad%20name.dyn.example&myip=192.0.2.1".to_string(),
        format!("hostname={long}&myip=192.0.2.1"),
    ] {
        daemon
            .update_basic("alice", PASSWORD, &query)
            .assert(400, "notfqdn");
    }
}

#[test]
fn bad_addresses_get_400_with_a_reason_and_change_nothing() {
    let (env, _, daemon) = started();
    daemon
        .update_basic(
            "alice",
            PASSWORD,
            "hostname=home.dyn.example&myip=192.0.2.1",
        )
        .assert(200, "good 192.0.2.1");
    for bad in [
        "1.2.3",
        "01.2.3.4",
        "1.2.3.4%20",
        "%201.2.3.4",
        "fe80::1%25eth0",
        "999.1.1.1",
        "example.com",
        "1.2.3.4,5.6.7.8x",
    ] {
        daemon
            .update_basic(
                "alice",
                PASSWORD,
                &format!("hostname=home.dyn.example&myip={bad}"),
            )
            .assert(400, "invalid IP address");
    }
    daemon
        .update_basic(
            "alice",
            PASSWORD,
            "hostname=home.dyn.example&myip=2001:db8::1",
        )
        .assert(400, "IPv4 required for an A record");
    daemon
        .update_basic("alice", PASSWORD, "hostname=v6.dyn.example&myip=192.0.2.5")
        .assert(400, "IPv6 required for an AAAA record");
    assert_eq!(
        env.stored_ip("home.dyn.example", "A").as_deref(),
        Some("192.0.2.1")
    );
    assert_eq!(env.stored_ip("v6.dyn.example", "AAAA"), None);
    assert_eq!(env.audit_count(), 1);
}

#[test]
fn ipv6_is_stored_and_compared_canonically() {
    let (env, _, daemon) = started();
    daemon
        .update_basic(
            "alice",
            PASSWORD,
            "hostname=v6.dyn.example&myip=2001:DB8:0::1",
        )
        .assert(200, "good 2001:db8::1");
    daemon
        .update_basic(
            "alice",
            PASSWORD,
            "hostname=v6.dyn.example&myip=2001%3adb8%3a0%3a0%3a0%3a0%3a0%3a1",
        )
        .assert(200, "nochg 2001:db8::1");
    assert_eq!(
        env.stored_ip("v6.dyn.example", "AAAA").as_deref(),
        Some("2001:db8::1")
    );
}

#[test]
fn the_address_is_detected_when_myip_is_absent() {
    let (env, _, daemon) = started();
    daemon
        .update_basic("alice", PASSWORD, "hostname=home.dyn.example")
        .assert(200, "good 127.0.0.1");
    daemon
        .update_basic("alice", PASSWORD, "hostname=home.dyn.example&myip=")
        .assert(200, "nochg 127.0.0.1");
    // From a trusted proxy (loopback is trusted by default) X-Forwarded-For wins: with an
    // appending proxy, the rightmost untrusted entry, never the client's own claim.
    let auth = basic("alice", PASSWORD);
    let response = daemon.get(
        "/nic/update?hostname=home.dyn.example",
        &[
            ("Authorization", &auth),
            ("X-Forwarded-For", "6.6.6.6, 203.0.113.50"),
        ],
    );
    response.assert(200, "good 203.0.113.50");
    let (source, peer): (String, String) = env
        .db()
        .query_row(
            "SELECT source_ip, peer_ip FROM domain_updates ORDER BY id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        (source.as_str(), peer.as_str()),
        ("203.0.113.50", "127.0.0.1")
    );
    // The detected address must fit the record type too.
    daemon
        .get(
            "/nic/update?hostname=v6.dyn.example",
            &[("Authorization", &auth)],
        )
        .assert(400, "IPv6 required for an AAAA record");
    daemon
        .get("/domains/my-ip", &[("X-Forwarded-For", "2001:db8::5")])
        .assert(200, r#"{"ip":"2001:db8::5"}"#);
    daemon
        .get(
            "/domains/my-ip",
            &[
                ("X-Forwarded-For", "6.6.6.6"),
                ("X-Forwarded-For", "2001:db8::6"),
            ],
        )
        .assert(200, r#"{"ip":"2001:db8::6"}"#);
}

#[test]
fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    let env = TestEnv::new();
    env.seed();
    let daemon = env.spawn("updates.trusted-proxies = []");
    daemon
        .get(
            "/nic/update?hostname=home.dyn.example",
            &[
                ("Authorization", &basic("alice", PASSWORD)),
                ("X-Forwarded-For", "203.0.113.50"),
            ],
        )
        .assert(200, "good 127.0.0.1");
    daemon
        .get("/domains/my-ip", &[("X-Forwarded-For", "203.0.113.50")])
        .assert(200, r#"{"ip":"127.0.0.1"}"#);
}

#[test]
fn my_ip_needs_no_authentication() {
    let (_env, _, daemon) = started();
    let response = daemon.get("/domains/my-ip", &[]);
    response.assert(200, r#"{"ip":"127.0.0.1"}"#);
    assert_eq!(response.header("content-type"), Some("application/json"));
}

#[test]
fn the_audit_row_records_who_what_when_and_from_where() {
    let (env, seed, daemon) = started();
    daemon
        .get(
            "/nic/update?hostname=home.dyn.example&myip=10.1.2.3",
            &[
                ("Authorization", &format!("Bearer {}", seed.alice_key)),
                ("User-Agent", "ddclient/3.10.0"),
            ],
        )
        .assert(200, "good 10.1.2.3");
    daemon
        .get(
            "/nic/update?hostname=home.dyn.example&myip=203.0.113.9",
            &[
                ("Authorization", &basic("alice", PASSWORD)),
                ("User-Agent", "inadyn/2.10"),
            ],
        )
        .assert(200, "good 203.0.113.9");
    let history = env.cli_ok(&["history", "home.dyn.example", "--json"]);
    let rows: serde_json::Value = serde_json::from_str(&history).unwrap();
    let newest = &rows[0];
    assert_eq!(newest["old_ip"], "10.1.2.3");
    assert_eq!(newest["new_ip"], "203.0.113.9");
    assert_eq!(newest["source_ip"], "127.0.0.1");
    assert_eq!(newest["peer_ip"], "127.0.0.1");
    assert_eq!(newest["user_agent"], "inadyn/2.10");
    assert_eq!(newest["auth_method"], "basic");
    assert_eq!(newest["ip_tags"], serde_json::json!(["documentation"]));
    assert_eq!(newest["country_code"], serde_json::Value::Null);
    let oldest = &rows[1];
    assert_eq!(oldest["old_ip"], serde_json::Value::Null);
    assert_eq!(oldest["auth_method"], "bearer");
    assert_eq!(oldest["ip_tags"], serde_json::json!(["private"]));
    assert_eq!(oldest["user_agent"], "ddclient/3.10.0");
    let created = oldest["created_at"].as_str().unwrap();
    assert!(created.ends_with('Z') && created.contains('T'), "{created}");
}

#[test]
fn a_locked_database_gives_dnserr_changes_nothing_and_the_next_update_succeeds() {
    let env = TestEnv::new();
    env.seed();
    let daemon = env.spawn("store.busy-timeout-ms = 300");
    daemon
        .update_basic(
            "alice",
            PASSWORD,
            "hostname=home.dyn.example&myip=192.0.2.1",
        )
        .assert(200, "good 192.0.2.1");

    // Another process (here: this test) holds the write lock.
    let locker = rusqlite::Connection::open(&env.db).unwrap();
    locker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let started = Instant::now();
    let response = daemon.update_basic(
        "alice",
        PASSWORD,
        "hostname=home.dyn.example&myip=192.0.2.2",
    );
    response.assert(500, "dnserr");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered within a few seconds"
    );
    locker.execute_batch("ROLLBACK").unwrap();
    drop(locker);

    assert_eq!(
        env.stored_ip("home.dyn.example", "A").as_deref(),
        Some("192.0.2.1")
    );
    assert_eq!(env.audit_count(), 1);
    assert!(
        daemon.log().contains("database is locked"),
        "the cause is logged"
    );
    daemon
        .update_basic(
            "alice",
            PASSWORD,
            "hostname=home.dyn.example&myip=192.0.2.2",
        )
        .assert(200, "good 192.0.2.2");
}

#[test]
fn oversized_and_malformed_requests_are_refused_and_the_server_goes_on() {
    let (env, _, daemon) = started();
    let huge_header = format!(
        "GET /nic/update?hostname=home.dyn.example HTTP/1.1\r\nHost: x\r\nX-Junk: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let response = send_raw(daemon.addr, huge_header.as_bytes());
    assert_eq!(response.status, 431, "{response:?}");

    let huge_body = format!(
        "hostname=home.dyn.example&myip=192.0.2.1&pad={}",
        "a".repeat(64 * 1024)
    );
    let response = daemon.post_form(
        "/nic/update",
        &[("Authorization", &basic("alice", PASSWORD))],
        &huge_body,
    );
    response.assert(413, "request body too large");

    let response = send_raw(daemon.addr, b"THIS IS NOT HTTP\r\n\r\n");
    assert_eq!(response.status, 400, "{response:?}");

    daemon.get("/nope", &[]).assert(404, "not found");
    let response = daemon.request("PUT", "/nic/update?hostname=home.dyn.example", &[], None);
    response.assert(405, "method not allowed");
    assert_eq!(response.header("allow"), Some("GET, POST"));

    assert_eq!(env.audit_count(), 0);
    daemon
        .update_basic(
            "alice",
            PASSWORD,
            "hostname=home.dyn.example&myip=192.0.2.1",
        )
        .assert(200, "good 192.0.2.1");
}

#[test]
fn a_client_that_sends_no_headers_is_cut_off() {
    let env = TestEnv::new();
    env.seed();
    let daemon = env.spawn("listeners.header-read-timeout-secs = 1");
    let mut stream = std::net::TcpStream::connect(daemon.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    std::io::Write::write_all(&mut stream, b"GET /nic/update HTTP/1.1\r\n").unwrap();
    let started = Instant::now();
    let mut buffer = Vec::new();
    let _ = std::io::Read::read_to_end(&mut stream, &mut buffer);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the connection is closed after the header timeout"
    );
    daemon
        .get("/domains/my-ip", &[])
        .assert(200, r#"{"ip":"127.0.0.1"}"#);
}

#[test]
fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let env = TestEnv::new();
    env.seed();
    let daemon = env.spawn("listeners.max-connections = 1\nlisteners.header-read-timeout-secs = 2");
    // The one slot is taken by a client that says nothing until the header timeout ends it.
    let idle = std::net::TcpStream::connect(daemon.addr).unwrap();
    daemon.wait_for_log(&format!(
        "connection accepted peer={}",
        idle.local_addr().unwrap()
    ));
    let started = Instant::now();
    daemon
        .get("/domains/my-ip", &[])
        .assert(200, r#"{"ip":"127.0.0.1"}"#);
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "the second connection was served only once the first freed its slot ({:?})",
        started.elapsed()
    );
    drop(idle);
}

#[test]
fn http_1_0_clients_get_an_answer_and_a_close() {
    let (_env, _, daemon) = started();
    let raw = format!(
        "GET /nic/update?hostname=home.dyn.example&myip=192.0.2.1 HTTP/1.0\r\nHost: localhost\r\nAuthorization: {}\r\n\r\n",
        basic("alice", PASSWORD)
    );
    send_raw(daemon.addr, raw.as_bytes()).assert(200, "good 192.0.2.1");
}

#[test]
fn credentials_and_query_strings_never_reach_the_log() {
    let (_env, seed, daemon) = started();
    daemon.update_basic(
        "alice",
        PASSWORD,
        "hostname=home.dyn.example&myip=192.0.2.1",
    );
    daemon.get(
        &format!("/nic/update?hostname=home.dyn.example&myip=192.0.2.2&username=alice&password={PASSWORD_QUERY}"),
        &[],
    );
    daemon.get(
        "/nic/update?hostname=home.dyn.example&myip=192.0.2.3",
        &[("Authorization", &format!("Bearer {}", seed.alice_key))],
    );
    daemon.update_basic(
        "alice",
        "wrong-secret-xyz",
        "hostname=home.dyn.example&myip=192.0.2.4",
    );
    let log = daemon.log();
    assert!(
        log.contains("update answered"),
        "requests are logged:\n{log}"
    );
    for secret in [
        PASSWORD,
        PASSWORD_QUERY,
        "s3cr",
        &seed.alice_key,
        "wrong-secret-xyz",
        "password=",
        "Basic ",
    ] {
        assert!(!log.contains(secret), "log leaks {secret:?}:\n{log}");
    }
}

#[test]
fn sigterm_stops_the_service_cleanly() {
    let (_env, _, mut daemon) = started();
    daemon
        .get("/domains/my-ip", &[])
        .assert(200, r#"{"ip":"127.0.0.1"}"#);
    assert_eq!(daemon.terminate(), Some(0));
    assert!(daemon.log().contains("stopped"));
    assert!(
        std::net::TcpStream::connect(daemon.addr).is_err(),
        "the port is closed"
    );
}

#[test]
fn a_dead_pdns_api_never_turns_good_into_an_error() {
    let env = TestEnv::new();
    env.seed();
    // Nobody listens on this port: every purge fails at once.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let daemon = env.spawn(&format!(
        "pdns.purge-wait-ms = 1000\n[[pdns.api]]\napi-url = \"http://{dead}\"\napi-key = \"k\"\n"
    ));
    let started = Instant::now();
    daemon
        .update_basic(
            "alice",
            PASSWORD,
            "hostname=home.dyn.example&myip=192.0.2.1",
        )
        .assert(200, "good 192.0.2.1");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the answer waited at most purge-wait-ms"
    );
    assert_eq!(
        env.stored_ip("home.dyn.example", "A").as_deref(),
        Some("192.0.2.1")
    );
    daemon.wait_for_log("pdns cache purge failed after retries");

    // The admin CLI (which reads the same config) commits, warns, and succeeds.
    let output = env.cli(&[
        "domain",
        "add",
        "new.dyn.example",
        "--owner",
        "alice",
        "--type",
        "A",
    ]);
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("pdns cache purge failed"));
    assert!(env.stored_ip("new.dyn.example", "A").is_none());
}

/// In `serve`, the reads behind an unchanged update (the key, the host's domains) are
/// memoised while nothing else changes. Every change must show at the next request: the
/// daemon's own updates, and the admin CLI's changes from another process, both while the
/// daemon has yet to notice them and after it has reloaded.
#[test]
fn memoised_reads_follow_every_change() {
    let (env, seed, daemon) = started();
    let bearer = format!("Bearer {}", seed.alice_key);
    let update = |ip: &str| {
        daemon.get(
            &format!("/nic/update?hostname=home.dyn.example&myip={ip}"),
            &[("Authorization", &bearer)],
        )
    };
    let reloads = || daemon.log().matches("served index caught up").count();
    // After a change by the CLI: the first request finds the daemon's index stale (and reads
    // SQLite); once the reload is done, requests use the memos again. Both must be right.
    let after_cli_change = |expected: (u16, &str)| {
        let before = reloads();
        update("192.0.2.1").assert(expected.0, expected.1);
        let deadline = Instant::now() + Duration::from_secs(10);
        while reloads() == before {
            assert!(Instant::now() < deadline, "the daemon never reloaded");
            std::thread::sleep(Duration::from_millis(5));
        }
        update("192.0.2.1").assert(expected.0, expected.1);
    };
    update("192.0.2.1").assert(200, "good 192.0.2.1");

    env.cli_ok(&["user", "disable", "alice"]);
    after_cli_change((401, "badauth"));
    env.cli_ok(&["user", "enable", "alice"]);
    after_cli_change((200, "nochg 192.0.2.1"));

    // The daemon's own changes.
    update("192.0.2.2").assert(200, "good 192.0.2.2");
    update("192.0.2.1").assert(200, "good 192.0.2.1");
    update("192.0.2.1").assert(200, "nochg 192.0.2.1");
    assert_eq!(
        env.audit_count(),
        3,
        "one audit row per change, none per nochg"
    );

    env.cli_ok(&["domain", "remove", "home.dyn.example"]);
    after_cli_change((404, "nohost"));
    env.cli_ok(&["key", "revoke", &seed.alice_key[..11]]);
    after_cli_change((401, "badauth"));
}

#[test]
fn json_logs_are_one_object_per_line_with_the_update_span() {
    let env = TestEnv::new();
    let seed = env.seed();
    let daemon = env.spawn("log-format = \"json\"\nlog-level = \"info\"");
    daemon
        .update_bearer(&seed.alice_key, "hostname=home.dyn.example&myip=192.0.2.9")
        .assert(200, "good 192.0.2.9");
    // A forged line in a hostname stays inside its string.
    daemon
        .update_bearer(
            &seed.alice_key,
            "hostname=x%0A%7B%22level%22%3A%22ERROR%22%7D.dyn.example",
        )
        .assert(400, "notfqdn");
    daemon.wait_for_log("update answered");
    let log = daemon.log();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert!(
        lines
            .iter()
            .all(|line| line["timestamp"].is_string() && line["level"].is_string())
    );
    assert!(lines.iter().all(|line| line["level"] != "ERROR"), "{log}");
    let update = lines
        .iter()
        .find(|line| line["message"] == "update answered" && line["outcome"] == "good")
        .unwrap_or_else(|| panic!("{log}"));
    assert_eq!(update["span"]["name"], "update");
    assert_eq!(update["span"]["hostname"], "home.dyn.example");
    assert_eq!(update["span"]["client"], "127.0.0.1");
    assert!(!log.contains(&seed.alice_key));
}
