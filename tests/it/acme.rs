//! ACME DNS-01 challenge values against the real binary: lego's `httpreq` calls, acme-dns's
//! `/update`, `txt=` on `/nic/update`; who may set what, where; served through the backend at
//! once; removed on cleanup and on expiry. The whole path with real programs (pebble, lego,
//! pdns_server) is `tests/it/acme_lego.rs`.

use crate::common;

use crate::common::{Daemon, PASSWORD, TestEnv, backend_call, backend_contents, basic};
use serde_json::json;

/// A value as ACME makes them: base64url of a SHA-256, 43 characters.
const APEX: &str = "LHDhK3oGRvkiefQnx7OOczTY5Tic_xZ6HcMOc_gmtoM";
const WILDCARD: &str = "aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789-_abcde";

/// The TXT values served at `name`, as pdns would get them, sorted.
fn served_txt(daemon: &Daemon, name: &str) -> Vec<String> {
    backend_contents(daemon.backend_addr, name, "TXT")
}

/// A lego `httpreq` call: POST /acme/{action} with Basic `login:secret`.
fn httpreq(
    daemon: &Daemon,
    action: &str,
    login: &str,
    secret: &str,
    fqdn: &str,
    value: &str,
) -> common::HttpResponse {
    let body = json!({"fqdn": fqdn, "value": value}).to_string();
    daemon.request(
        "POST",
        &format!("/acme/{action}"),
        &[
            ("Authorization", &basic(login, secret)),
            ("Content-Type", "application/json"),
        ],
        Some(&body),
    )
}

/// An acme-dns `/update` call.
fn acme_dns(
    daemon: &Daemon,
    user: &str,
    key: &str,
    subdomain: &str,
    txt: &str,
) -> common::HttpResponse {
    let body = json!({"subdomain": subdomain, "txt": txt}).to_string();
    daemon.request(
        "POST",
        "/update",
        &[("X-Api-User", user), ("X-Api-Key", key)],
        Some(&body),
    )
}

/// A key of alice with only `acme:update`.
fn acme_key(env: &TestEnv) -> String {
    env.cli_ok(&["key", "create", "alice", "--scope", "acme:update"])
        .trim()
        .to_string()
}

#[test]
fn lego_httpreq_sets_apex_and_wildcard_values_and_cleans_them_up() {
    let env = TestEnv::new();
    env.seed();
    let key = acme_key(&env);
    let daemon = env.spawn("");
    let name = "_acme-challenge.home.dyn.example";
    assert!(served_txt(&daemon, name).is_empty());
    for value in [APEX, WILDCARD] {
        httpreq(
            &daemon,
            "present",
            "alice",
            &key,
            &format!("{name}."),
            value,
        )
        .assert(200, "ok");
    }
    assert_eq!(
        served_txt(&daemon, name),
        [format!("\"{APEX}\""), format!("\"{WILDCARD}\"")]
    );
    // Served with a short TTL, so that a retried validation soon sees a new value.
    let reply = backend_call(
        daemon.backend_addr,
        &json!({"method": "lookup", "parameters": {"qname": format!("{name}."), "qtype": "TXT",
                "zone-id": -1}}),
    );
    assert!(reply.body.contains("\"ttl\":60"), "{}", reply.body);
    // Presented again (a retried validation): still two.
    httpreq(&daemon, "present", "alice", &key, &format!("{name}."), APEX).assert(200, "ok");
    assert_eq!(served_txt(&daemon, name).len(), 2);
    // Each change moves the zone's serial: secondaries see it.
    let serial = || -> i64 {
        env.db()
            .query_row("SELECT serial FROM zones", [], |row| row.get(0))
            .unwrap()
    };
    let before = serial();
    httpreq(&daemon, "cleanup", "alice", &key, &format!("{name}."), APEX).assert(200, "ok");
    assert!(serial() > before);
    assert_eq!(served_txt(&daemon, name), [format!("\"{WILDCARD}\"")]);
    httpreq(
        &daemon,
        "cleanup",
        "alice",
        &key,
        &format!("{name}."),
        WILDCARD,
    )
    .assert(200, "ok");
    assert!(served_txt(&daemon, name).is_empty());
    // The account password works too; nothing else in the log says the value or the key.
    httpreq(&daemon, "present", "alice", PASSWORD, name, APEX).assert(200, "ok");
    let log = daemon.log();
    assert!(!log.contains(&key) && !log.contains(PASSWORD), "{log}");
    assert!(log.contains("ACME challenge value set"), "{log}");
}

#[test]
fn values_go_only_under_the_users_own_hosts_and_acme_keys_move_nothing_else() {
    let env = TestEnv::new();
    let seed = env.seed();
    let key = acme_key(&env);
    let daemon = env.spawn("");
    // Bob's host, a name that is no host, a name without the label, the label twice.
    for (fqdn, status) in [
        ("_acme-challenge.bob.dyn.example.", 404),
        ("_acme-challenge.sub.home.dyn.example.", 404),
        ("home.dyn.example.", 400),
        ("_acme-challenge._acme-challenge.home.dyn.example.", 404),
        ("www.home.dyn.example.", 400),
    ] {
        let answer = httpreq(&daemon, "present", "alice", &key, fqdn, APEX);
        assert_eq!(answer.status, status, "{fqdn}: {answer:?}");
    }
    // Values that could be anything else in a TXT record.
    for value in ["", "v=spf1 -all", "\"quoted\"", &"a".repeat(256)] {
        let answer = httpreq(
            &daemon,
            "present",
            "alice",
            &key,
            "_acme-challenge.home.dyn.example.",
            value,
        );
        assert_eq!(answer.status, 400, "{value:?}: {answer:?}");
    }
    // Wrong credentials: 401 with a challenge, as Basic wants.
    let answer = httpreq(
        &daemon,
        "present",
        "alice",
        "ak_wrongwrongwrongwrongwrongwrongwrongwrongwro",
        "_acme-challenge.home.dyn.example.",
        APEX,
    );
    assert_eq!(answer.status, 401);
    assert!(answer.header("www-authenticate").is_some());
    assert!(served_txt(&daemon, "_acme-challenge.bob.dyn.example").is_empty());
    assert!(served_txt(&daemon, "_acme-challenge.home.dyn.example").is_empty());
    // The acme:update key cannot move the host's address; the update key can set values.
    daemon
        .update_bearer(&key, "hostname=home.dyn.example&myip=192.0.2.1")
        .assert(401, "badauth");
    httpreq(
        &daemon,
        "present",
        "alice",
        &seed.alice_key,
        "_acme-challenge.home.dyn.example.",
        APEX,
    )
    .assert(200, "ok");
    // A body that is not the JSON asked for, and one too large.
    let junk = daemon.request(
        "POST",
        "/acme/present",
        &[("Authorization", &basic("alice", &key))],
        Some("fqdn=x"),
    );
    assert_eq!(junk.status, 400);
    let huge = format!("{{\"fqdn\":\"{}\",\"value\":\"x\"}}", "a".repeat(100_000));
    let answer = daemon.request(
        "POST",
        "/acme/present",
        &[("Authorization", &basic("alice", &key))],
        Some(&huge),
    );
    assert_eq!(answer.status, 413);
    assert_eq!(daemon.get("/acme/present", &[]).status, 405);
}

#[test]
fn acme_dns_clients_and_scripts_set_values_too() {
    let env = TestEnv::new();
    env.seed();
    let key = acme_key(&env);
    let daemon = env.spawn("");
    let answer = acme_dns(&daemon, "alice", &key, "home.dyn.example", APEX);
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body, format!("{{\"txt\":\"{APEX}\"}}"));
    assert_eq!(
        served_txt(&daemon, "_acme-challenge.home.dyn.example"),
        [format!("\"{APEX}\"")]
    );
    for (user, secret, subdomain, txt, status, error) in [
        (
            "alice",
            key.as_str(),
            "bob.dyn.example",
            APEX,
            401,
            "forbidden",
        ),
        ("alice", "wrong", "home.dyn.example", APEX, 401, "forbidden"),
        (
            "alice",
            key.as_str(),
            "home.dyn.example",
            "bad txt",
            400,
            "bad_txt",
        ),
        (
            "alice",
            key.as_str(),
            "not a name",
            APEX,
            400,
            "bad_subdomain",
        ),
    ] {
        let answer = acme_dns(&daemon, user, secret, subdomain, txt);
        assert_eq!(answer.status, status, "{answer:?}");
        assert_eq!(answer.body, format!("{{\"error\":\"{error}\"}}"));
    }
    // Duck DNS style, on the update endpoint: a value, then clear.
    daemon
        .get(
            &format!("/nic/update?hostname=home.dyn.example,bob.dyn.example&txt={WILDCARD}"),
            &[("Authorization", &basic("alice", &key))],
        )
        .assert(200, "good\nnohost");
    daemon
        .get(
            &format!("/nic/update?hostname=home.dyn.example&txt={WILDCARD}"),
            &[("Authorization", &basic("alice", &key))],
        )
        .assert(200, "nochg");
    assert_eq!(
        served_txt(&daemon, "_acme-challenge.home.dyn.example").len(),
        2
    );
    daemon
        .get(
            "/nic/update?hostname=home.dyn.example&txt=x&clear=true",
            &[("Authorization", &basic("alice", &key))],
        )
        .assert(200, "good");
    assert!(served_txt(&daemon, "_acme-challenge.home.dyn.example").is_empty());
    // The host's address never moved through any of this.
    assert_eq!(env.stored_ip("home.dyn.example", "A"), None);
    daemon
        .get(
            "/nic/update?hostname=home.dyn.example&txt=no%20spaces",
            &[("Authorization", &basic("alice", &key))],
        )
        .assert(
            400,
            "invalid txt: an ACME challenge value is 1 to 255 base64url characters",
        );
}

#[test]
fn values_expire_and_leave_with_their_host() {
    let env = TestEnv::new();
    env.seed();
    let key = acme_key(&env);
    let daemon = env.spawn("");
    let name = "_acme-challenge.home.dyn.example";
    for value in [APEX, WILDCARD] {
        httpreq(&daemon, "present", "alice", &key, name, value).assert(200, "ok");
    }
    // One value's time is up (as if an hour had passed): the sweep removes it.
    let conn = rusqlite::Connection::open(&env.db).unwrap();
    conn.execute(
        "UPDATE acme_challenges SET expires_at = '2000-01-01T00:00:00.000Z' WHERE value = ?1",
        [APEX],
    )
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while served_txt(&daemon, name).len() == 2 {
        assert!(std::time::Instant::now() < deadline, "never expired");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(served_txt(&daemon, name), [format!("\"{WILDCARD}\"")]);
    // The host removed: its values go at once.
    env.cli_ok(&["domain", "remove", "home.dyn.example"]);
    assert!(served_txt(&daemon, name).is_empty());
}

#[test]
fn acme_can_be_turned_off() {
    let env = TestEnv::new();
    env.seed();
    let key = acme_key(&env);
    let daemon = env.spawn("acme.enabled = false");
    assert_eq!(
        httpreq(
            &daemon,
            "present",
            "alice",
            &key,
            "_acme-challenge.home.dyn.example.",
            APEX
        )
        .status,
        404
    );
    assert_eq!(
        acme_dns(&daemon, "alice", &key, "home.dyn.example", APEX).status,
        404
    );
    assert_eq!(
        daemon
            .get(
                &format!("/nic/update?hostname=home.dyn.example&txt={APEX}"),
                &[("Authorization", &basic("alice", &key))]
            )
            .status,
        400
    );
}

#[test]
fn a_flood_of_challenge_calls_is_held_to_the_update_pace() {
    let env = TestEnv::new();
    let seed = env.seed();
    let key = acme_key(&env);
    let daemon = env.spawn(
        "limits.abuse-detection = true\nlimits.abuse-burst = 2\nlimits.abuse-refill-ms = 60000\n\
         limits.abuse-flag-after-secs = 1",
    );
    let name = "_acme-challenge.home.dyn.example.";
    let started = std::time::Instant::now();
    let mut accepted = 0;
    let refused = loop {
        let answer = httpreq(&daemon, "present", "alice", &key, name, APEX);
        if answer.status == 429 {
            break answer;
        }
        answer.assert(200, "ok");
        accepted += 1;
        assert!(
            started.elapsed() < std::time::Duration::from_secs(15),
            "never held back"
        );
    };
    assert_eq!(refused.body, "abuse");
    assert!(accepted >= 2, "the burst goes through");
    // The host's own updates are another pace: they go on.
    daemon
        .update_bearer(&seed.alice_key, "hostname=home.dyn.example&myip=192.0.2.1")
        .assert(200, "good 192.0.2.1");
}

#[test]
fn a_store_failure_answers_dnserr_and_serves_nothing() {
    let env = TestEnv::new();
    env.seed();
    let key = acme_key(&env);
    let daemon = env.spawn("");
    // The insert fails inside the transaction, as a full disk would fail it.
    let conn = rusqlite::Connection::open(&env.db).unwrap();
    conn.execute_batch(
        "CREATE TRIGGER fail_challenge BEFORE INSERT ON acme_challenges
         BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
    )
    .unwrap();
    let name = "_acme-challenge.home.dyn.example.";
    httpreq(&daemon, "present", "alice", &key, name, APEX).assert(500, "dnserr");
    let answer = acme_dns(&daemon, "alice", &key, "home.dyn.example", APEX);
    assert_eq!((answer.status, answer.body.as_str()), (500, "dnserr"));
    daemon
        .get(
            &format!("/nic/update?hostname=home.dyn.example&txt={APEX}"),
            &[("Authorization", &basic("alice", &key))],
        )
        .assert(500, "dnserr");
    assert!(served_txt(&daemon, "_acme-challenge.home.dyn.example").is_empty());
    // Repaired: the same call goes through.
    conn.execute_batch("DROP TRIGGER fail_challenge").unwrap();
    httpreq(&daemon, "present", "alice", &key, name, APEX).assert(200, "ok");
    assert_eq!(
        served_txt(&daemon, "_acme-challenge.home.dyn.example"),
        [format!("\"{APEX}\"")]
    );
}

/// What the CLI wrote to stderr, for a command that must fail.
fn refused(env: &TestEnv, args: &[&str]) -> String {
    let output = env.cli(args);
    assert!(!output.status.success(), "{args:?} must fail: {output:?}");
    String::from_utf8_lossy(&output.stderr).to_string()
}

#[test]
fn no_account_gets_a_name_at_above_or_beneath_anothers() {
    let env = TestEnv::new();
    env.seed();
    env.add_user("carol", "carol@example.com", "free");
    env.add_domain("deep.lab.dyn.example", "bob", "A", None);
    let before: i64 = env
        .db()
        .query_row("SELECT count(*) FROM domains", [], |row| row.get(0))
        .unwrap();
    // The apex (a wildcard there covers every customer), beneath alice's host, above bob's.
    for (args, why) in [
        (
            [
                "domain",
                "add",
                "dyn.example",
                "--owner",
                "carol",
                "--type",
                "A",
            ],
            "dyn.example is the apex of its zone",
        ),
        (
            [
                "domain",
                "add",
                "DYN.example.",
                "--owner",
                "carol",
                "--type",
                "AAAA",
            ],
            "dyn.example is the apex of its zone",
        ),
        (
            [
                "domain",
                "add",
                "x.home.dyn.example",
                "--owner",
                "bob",
                "--type",
                "A",
            ],
            "x.home.dyn.example is beneath home.dyn.example, which belongs to \"alice\"",
        ),
        (
            [
                "domain",
                "add",
                "lab.dyn.example",
                "--owner",
                "alice",
                "--type",
                "A",
            ],
            "lab.dyn.example is above deep.lab.dyn.example, which belongs to \"bob\"",
        ),
    ] {
        let error = refused(&env, &args);
        assert!(error.contains(why), "{args:?}: {error}");
    }
    // The same in an import, each row named; an account may nest its own names.
    let file = env.dir.path().join("names.csv");
    std::fs::write(
        &file,
        "fqdn,owner,type,address\n\
         dyn.example,carol,A,\n\
         y.home.dyn.example,carol,A,\n\
         lab.dyn.example,carol,AAAA,\n\
         mine.home.dyn.example,alice,A,\n\
         top.dyn.example,carol,A,\n\
         under.top.dyn.example,bob,A,\n",
    )
    .unwrap();
    let error = refused(&env, &["domain", "import", file.to_str().unwrap()]);
    for expected in [
        "line 2: dyn.example is the apex of its zone",
        "line 3: y.home.dyn.example is beneath home.dyn.example",
        "line 4: lab.dyn.example is above deep.lab.dyn.example",
        "line 7: under.top.dyn.example is beneath top.dyn.example, which belongs to \"carol\"",
        "4 of 6 rows are invalid; nothing was imported",
    ] {
        assert!(error.contains(expected), "{expected:?} in:\n{error}");
    }
    let after: i64 = env
        .db()
        .query_row("SELECT count(*) FROM domains", [], |row| row.get(0))
        .unwrap();
    assert_eq!(after, before);
    env.add_domain("mine.home.dyn.example", "alice", "A", None);
}

/// The refusal of ACME values for a name that breaks one name, one owner: whose names it
/// collides with is not told.
const DISPUTED: &str = "disputed: this host is a zone apex, or another account holds a name at, \
                        above or beneath it; ACME values are refused until an admin resolves it";

#[test]
fn a_store_from_before_the_rule_is_named_at_start_and_its_acme_values_refused() {
    let env = TestEnv::new();
    let seed = env.seed();
    env.add_user("carol", "carol@example.com", "plus");
    env.add_domain("lab.dyn.example", "carol", "A", None);
    let carol_key = env
        .cli_ok(&["key", "create", "carol", "--scope", "acme:update"])
        .trim()
        .to_string();
    // Rows as an older version let them be made: carol at the apex, bob beneath alice.
    let db = rusqlite::Connection::open(&env.db).unwrap();
    for (name, owner) in [("dyn.example", "carol"), ("x.home.dyn.example", "bob")] {
        db.execute(
            "INSERT INTO domains (fqdn, user_id, zone_id, record_type, created_at, updated_at)
             SELECT ?1, u.id, z.id, 'A', 't', 't' FROM users u, zones z
             WHERE u.username = ?2 AND z.name = 'dyn.example'",
            [name, owner],
        )
        .unwrap();
    }
    drop(db);
    let daemon = env.spawn("");
    daemon.wait_for_log("a name breaks one name, one owner");
    // Carol cannot validate the apex (a wildcard would cover every host).
    for fqdn in [
        "_acme-challenge.dyn.example.",
        "_acme-challenge.lab.dyn.example.",
    ] {
        let answer = httpreq(&daemon, "present", "carol", &carol_key, fqdn, APEX);
        if fqdn.contains("lab") {
            // Carol's own name beneath her own (apex) name: nobody else's is covered.
            answer.assert(200, "ok");
        } else {
            assert_eq!(answer.status, 403, "{fqdn}: {answer:?}");
            assert!(answer.body.contains("disputed"), "{answer:?}");
            assert!(
                !answer.body.contains("alice"),
                "names no other account: {answer:?}"
            );
        }
    }
    assert!(served_txt(&daemon, "_acme-challenge.dyn.example").is_empty());
    // Alice's host holds bob's name beneath it: no values for it, by any endpoint.
    httpreq(
        &daemon,
        "present",
        "alice",
        &seed.alice_key,
        "_acme-challenge.home.dyn.example.",
        APEX,
    )
    .assert(403, DISPUTED);
    daemon
        .update_basic(
            "alice",
            &seed.alice_key,
            &format!("hostname=home.dyn.example&txt={WILDCARD}"),
        )
        .assert(403, DISPUTED);
    assert!(served_txt(&daemon, "_acme-challenge.home.dyn.example").is_empty());
    // Each offending name is logged once, and why.
    let log = daemon.log();
    for name in [
        "dyn.example",
        "home.dyn.example",
        "v6.dyn.example",
        "bob.dyn.example",
        "x.home.dyn.example",
    ] {
        let lines = log
            .lines()
            .filter(|line| {
                line.contains("a name breaks one name, one owner")
                    && line.contains(&format!("name={name} "))
            })
            .count();
        assert_eq!(lines, 1, "{name} logged once:\n{log}");
    }
    assert!(
        !log.contains("name=lab.dyn.example"),
        "carol's own nesting: {log}"
    );
    // Once an admin resolves it, the values go through.
    env.cli_ok(&["domain", "remove", "x.home.dyn.example"]);
    env.cli_ok(&["domain", "remove", "dyn.example"]);
    httpreq(
        &daemon,
        "present",
        "alice",
        &seed.alice_key,
        "_acme-challenge.home.dyn.example.",
        APEX,
    )
    .assert(200, "ok");
}

#[test]
fn a_value_and_an_address_in_one_request_are_refused_whole() {
    let env = TestEnv::new();
    let seed = env.seed();
    let daemon = env.spawn("");
    daemon
        .update_bearer(&seed.alice_key, "hostname=home.dyn.example&myip=192.0.2.1")
        .assert(200, "good 192.0.2.1");
    for (query, reason) in [
        (
            format!("hostname=home.dyn.example&myip=192.0.2.9&txt={APEX}"),
            "change ACME values, not addresses",
        ),
        (
            "hostname=home.dyn.example&clear=true&myipv6=2001:db8::9".to_string(),
            "change ACME values, not addresses",
        ),
        (
            format!("hostname=home.dyn.example&txt={APEX}&ip6lanprefix=2001:db8::/56"),
            "change ACME values, not addresses",
        ),
    ] {
        let answer = daemon.update_bearer(&seed.alice_key, &query);
        assert_eq!(answer.status, 400, "{query}: {answer:?}");
        assert!(answer.body.contains(reason), "{query}: {}", answer.body);
    }
    assert_eq!(
        env.stored_ip("home.dyn.example", "A").as_deref(),
        Some("192.0.2.1")
    );
    assert!(served_txt(&daemon, "_acme-challenge.home.dyn.example").is_empty());
    // An empty address parameter (a template with nothing filled in) is no address.
    daemon
        .update_bearer(
            &seed.alice_key,
            &format!("hostname=home.dyn.example&myip=&txt={APEX}"),
        )
        .assert(200, "good");
    assert_eq!(
        served_txt(&daemon, "_acme-challenge.home.dyn.example"),
        [format!("\"{APEX}\"")]
    );
}

/// Issue 29, item 10: a key's last use is every successful use, whatever its scope.
#[test]
fn an_acme_keys_use_is_recorded_as_an_update_keys_is() {
    let env = TestEnv::new();
    env.seed();
    let key = acme_key(&env);
    let last_used = |env: &TestEnv| -> Option<String> {
        env.db()
            .query_row(
                "SELECT last_used_at FROM api_keys WHERE scopes LIKE '%acme:update%'",
                [],
                |row| row.get(0),
            )
            .unwrap()
    };
    let daemon = env.spawn("");
    assert_eq!(last_used(&env), None);
    // A refused call is no use.
    httpreq(
        &daemon,
        "present",
        "alice",
        "ak_wrongwrongwrongwrongwrongwrongwrongwrongwro",
        "_acme-challenge.home.dyn.example.",
        APEX,
    )
    .assert(401, "badauth");
    httpreq(
        &daemon,
        "present",
        "alice",
        &key,
        "_acme-challenge.home.dyn.example.",
        APEX,
    )
    .assert(200, "ok");
    // Written behind (within a second), as the update path's.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while last_used(&env).is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "last_used_at never set"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let listed = env.cli_ok(&["key", "list"]);
    let line = listed
        .lines()
        .find(|line| line.contains("acme:update"))
        .unwrap();
    assert!(!line.contains(" - "), "{listed}");
}
