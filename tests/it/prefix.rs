//! IPv6 prefix updates against the real binary: a router sends its network's new prefix once,
//! as a FRITZ!Box (`ip6lanprefix`), dynv6 (`ipv6prefix`) or deSEC (`myipv6=…/56`) client
//! does, and every host with an interface identifier, named or following a named one, gets
//! prefix + subnet id + interface identifier, in one transaction with one audit row each.

use crate::common::{Daemon, TestEnv, backend_contents};

/// alice's network: `home` (A, and AAAA without an interface id: the router itself), `printer`
/// (AAAA ::a:b:c:d, following home) and `nas` (AAAA ::1:2:3:4 in subnet 1, following home),
/// plus `laptop` (AAAA ::5, not following anyone).
fn network(env: &TestEnv) -> String {
    let seed = env.seed();
    env.add_domain("home.dyn.example", "alice", "AAAA", None);
    for (name, iid, extra) in [
        ("printer", "::a:b:c:d", vec![]),
        ("nas", "::1:2:3:4", vec!["--subnet-id", "1"]),
        ("laptop", "::5", vec![]),
    ] {
        let fqdn = format!("{name}.dyn.example");
        let mut args = vec![
            "domain",
            "add",
            &fqdn,
            "--owner",
            "alice",
            "--type",
            "AAAA",
            "--interface-id",
            iid,
        ];
        args.extend(extra);
        if name != "laptop" {
            args.extend(["--follows", "home.dyn.example"]);
        }
        env.cli_ok(&args);
    }
    seed.alice_key
}

/// The AAAA addresses served for `name`, through the backend as pdns asks.
fn served_aaaa(daemon: &Daemon, name: &str) -> Vec<String> {
    backend_contents(daemon.backend_addr, name, "AAAA")
}

/// (fqdn, new_ip, prefix, prefix_parameter) of the audit rows after row `after`.
fn audit_since(env: &TestEnv, after: i64) -> Vec<(String, String, Option<String>, Option<String>)> {
    env.db()
        .prepare(
            "SELECT fqdn, new_ip, prefix, prefix_parameter FROM domain_updates WHERE id > ?1
             ORDER BY id",
        )
        .unwrap()
        .query_map([after], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn last_audit_id(env: &TestEnv) -> i64 {
    env.db()
        .query_row(
            "SELECT coalesce(max(id), 0) FROM domain_updates",
            [],
            |row| row.get(0),
        )
        .unwrap()
}

#[test]
fn a_fritzbox_request_moves_the_router_and_every_host_following_it() {
    let env = TestEnv::new();
    let key = network(&env);
    let daemon = env.spawn("");
    let before = last_audit_id(&env);
    // The FRITZ!Box's URL: <ipaddr>, <ip6addr> (its own WAN address), <ip6lanprefix>.
    let fritz = "hostname=home.dyn.example&myip=192.0.2.1&myipv6=2001:db8:ffff::1\
                 &ip6lanprefix=2001:db8:1234:5600::/56";
    daemon
        .update_bearer(&key, fritz)
        .assert(200, "good 2001:db8:ffff::1,192.0.2.1");
    // The router took its own addresses; the hosts behind it, the prefix.
    assert_eq!(
        served_aaaa(&daemon, "home.dyn.example"),
        ["2001:db8:ffff::1"]
    );
    assert_eq!(
        served_aaaa(&daemon, "printer.dyn.example"),
        ["2001:db8:1234:5600:a:b:c:d"]
    );
    assert_eq!(
        served_aaaa(&daemon, "nas.dyn.example"),
        ["2001:db8:1234:5601:1:2:3:4"]
    );
    assert_eq!(
        served_aaaa(&daemon, "laptop.dyn.example"),
        Vec::<String>::new()
    );
    let prefix = Some("2001:db8:1234:5600::/56".to_string());
    let parameter = Some("ip6lanprefix".to_string());
    let mut rows = audit_since(&env, before);
    rows.sort();
    assert_eq!(
        rows,
        [
            ("home.dyn.example".into(), "192.0.2.1".into(), None, None),
            (
                "home.dyn.example".into(),
                "2001:db8:ffff::1".into(),
                None,
                None
            ),
            (
                "nas.dyn.example".into(),
                "2001:db8:1234:5601:1:2:3:4".into(),
                prefix.clone(),
                parameter.clone()
            ),
            (
                "printer.dyn.example".into(),
                "2001:db8:1234:5600:a:b:c:d".into(),
                prefix,
                parameter
            ),
        ]
    );
    // The same again: nothing changes, no row.
    let before = last_audit_id(&env);
    daemon
        .update_bearer(&key, fritz)
        .assert(200, "nochg 2001:db8:ffff::1,192.0.2.1");
    assert!(audit_since(&env, before).is_empty());
}

#[test]
fn every_form_of_prefix_is_taken_and_a_bare_prefix_is_never_an_address() {
    let env = TestEnv::new();
    let key = network(&env);
    let daemon = env.spawn("");
    // deSEC's form, alone: the router's AAAA (no interface id) is not set to the prefix; the
    // detected address (IPv4 here) goes to its A record.
    daemon
        .update_bearer(&key, "hostname=home.dyn.example&myipv6=2001:db8:aa::/48")
        .assert(200, "good 127.0.0.1");
    assert_eq!(
        served_aaaa(&daemon, "home.dyn.example"),
        Vec::<String>::new()
    );
    assert_eq!(
        served_aaaa(&daemon, "printer.dyn.example"),
        ["2001:db8:aa:0:a:b:c:d"]
    );
    assert_eq!(
        served_aaaa(&daemon, "nas.dyn.example"),
        ["2001:db8:aa:1:1:2:3:4"]
    );
    let rows = audit_since(&env, 0);
    assert!(
        rows.iter()
            .any(|row| row.0 == "printer.dyn.example" && row.3.as_deref() == Some("myipv6")),
        "{rows:?}"
    );
    // dynv6's `ipv6prefix` for a host named itself, which has no A record: the detected IPv4
    // address is left aside, the host takes the prefix.
    daemon
        .update_bearer(
            &key,
            "hostname=laptop.dyn.example&ipv6prefix=2001:db8:bb:1::/64",
        )
        .assert(200, "good 2001:db8:bb:1::5");
    // Several hosts named at once, each its line.
    daemon
        .update_bearer(
            &key,
            "hostname=laptop.dyn.example,printer.dyn.example&ipv6=2001:db8:cc::/56",
        )
        .assert(200, "good 2001:db8:cc::5\ngood 2001:db8:cc:0:a:b:c:d");
}

#[test]
fn a_prefix_that_does_not_fit_every_host_changes_nothing() {
    let env = TestEnv::new();
    let key = network(&env);
    let daemon = env.spawn("");
    daemon
        .update_bearer(
            &key,
            "hostname=home.dyn.example&myip=192.0.2.1&ip6lanprefix=2001:db8:1234:5600::/56",
        )
        .assert(200, "good 192.0.2.1");
    let before = last_audit_id(&env);
    for (query, reason) in [
        // No length: an address is not a prefix.
        (
            "hostname=home.dyn.example&myip=192.0.2.2&ip6lanprefix=2001:db8:1234:5700::",
            "IPv6 prefix without a length",
        ),
        // The WAN /64 sent as the LAN prefix: nas's subnet 1 does not fit in it.
        (
            "hostname=home.dyn.example&myip=192.0.2.2&ip6lanprefix=2001:db8:1234:5700::/64",
            "subnet id does not fit",
        ),
        // Longer than the hosts' /64.
        (
            "hostname=home.dyn.example&myip=192.0.2.2&ipv6prefix=2001:db8:1:2:3::/80",
            "longer than a host's /64",
        ),
        (
            "hostname=home.dyn.example&ipv6prefix=banana/56",
            "invalid IPv6 prefix",
        ),
        // Bits past the length: the LAN's /64 with the /56's length, or a typo? Not guessed.
        (
            "hostname=home.dyn.example&myip=192.0.2.2&ip6lanprefix=2001:db8:1234:5701::/56",
            "IPv6 prefix has bits set past its /56",
        ),
        // Two prefixes that differ: neither silently wins.
        (
            "hostname=home.dyn.example&myip=192.0.2.2&ip6lanprefix=2001:db8:1234:5700::/56\
             &ipv6prefix=2001:db8:1234:5800::/56",
            "different IPv6 prefixes",
        ),
    ] {
        let answer = daemon.update_bearer(&key, query);
        assert_eq!(answer.status, 400, "{query}: {answer:?}");
        assert!(answer.body.contains(reason), "{query}: {}", answer.body);
    }
    // Not even the router's IPv4 address moved.
    assert_eq!(
        env.stored_ip("home.dyn.example", "A").as_deref(),
        Some("192.0.2.1")
    );
    assert_eq!(
        env.stored_ip("printer.dyn.example", "AAAA").as_deref(),
        Some("2001:db8:1234:5600:a:b:c:d")
    );
    assert!(audit_since(&env, before).is_empty());
    // The same prefix twice (one client's two parameters) is one prefix.
    daemon
        .update_bearer(
            &key,
            "hostname=printer.dyn.example&ip6lanprefix=2001:db8:1234:5700::/56\
             &myipv6=2001:db8:1234:5700::/56",
        )
        .assert(200, "good 2001:db8:1234:5700:a:b:c:d");
}

#[test]
fn a_store_failure_mid_request_changes_none_of_the_hosts() {
    let env = TestEnv::new();
    let key = network(&env);
    let daemon = env.spawn("");
    // The write of the last host fails inside the transaction (a trigger raising an error,
    // as a full disk or an I/O error would fail it).
    let conn = rusqlite::Connection::open(&env.db).unwrap();
    conn.execute_batch(
        "CREATE TRIGGER fail_nas BEFORE UPDATE OF ip ON domains WHEN new.fqdn = 'nas.dyn.example'
         BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
    )
    .unwrap();
    let answer = daemon.update_bearer(
        &key,
        "hostname=home.dyn.example&myip=192.0.2.9&ip6lanprefix=2001:db8:77::/56",
    );
    assert_eq!((answer.status, answer.body.as_str()), (500, "dnserr"));
    for (name, record_type) in [
        ("home.dyn.example", "A"),
        ("printer.dyn.example", "AAAA"),
        ("nas.dyn.example", "AAAA"),
    ] {
        assert_eq!(env.stored_ip(name, record_type), None, "{name}");
    }
    assert_eq!(
        served_aaaa(&daemon, "printer.dyn.example"),
        Vec::<String>::new()
    );
    assert_eq!(last_audit_id(&env), 0);
    // Repaired: the same request goes through whole.
    conn.execute_batch("DROP TRIGGER fail_nas").unwrap();
    daemon
        .update_bearer(
            &key,
            "hostname=home.dyn.example&myip=192.0.2.9&ip6lanprefix=2001:db8:77::/56",
        )
        .assert(200, "good 192.0.2.9");
    assert_eq!(
        served_aaaa(&daemon, "nas.dyn.example"),
        ["2001:db8:77:1:1:2:3:4"]
    );
}

#[test]
fn the_cli_keeps_interface_ids_checked() {
    let env = TestEnv::new();
    network(&env);
    // Zero, an address, an A domain, a stranger's name to follow: refused.
    for (args, reason) in [
        (
            vec![
                "domain",
                "add",
                "z.dyn.example",
                "--owner",
                "alice",
                "--type",
                "AAAA",
                "--interface-id",
                "::",
            ],
            "must not be zero",
        ),
        (
            vec![
                "domain",
                "add",
                "z.dyn.example",
                "--owner",
                "alice",
                "--type",
                "AAAA",
                "--interface-id",
                "2001:db8::1",
            ],
            "bits within the /64",
        ),
        (
            vec![
                "domain",
                "add",
                "z.dyn.example",
                "--owner",
                "alice",
                "--type",
                "A",
                "--interface-id",
                "::1",
            ],
            "for AAAA domains",
        ),
        (
            vec![
                "domain",
                "set",
                "printer.dyn.example",
                "--follows",
                "bob.dyn.example",
            ],
            "not a domain of",
        ),
        (
            vec![
                "domain",
                "set",
                "printer.dyn.example",
                "--follows",
                "printer.dyn.example",
            ],
            "cannot follow itself",
        ),
    ] {
        let output = env.cli(&args);
        assert!(!output.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(reason), "{args:?}: {stderr}");
    }
    let set = env.cli_ok(&[
        "domain",
        "set",
        "printer.dyn.example",
        "--subnet-id",
        "0x2",
        "--prefix-length",
        "64",
    ]);
    assert_eq!(
        set.trim(),
        "printer.dyn.example: interface id ::a:b:c:d at /64, subnet 0x2; follows home.dyn.example"
    );
    let cleared = env.cli_ok(&[
        "domain",
        "set",
        "printer.dyn.example",
        "--no-interface-id",
        "--no-follows",
    ]);
    assert_eq!(cleared.trim(), "printer.dyn.example: whole addresses only");
}

/// The README's block under "### IPv6 networks", as written: its commands (continuation lines
/// joined) and the answer and address its comments promise.
fn readme_ipv6_example() -> (Vec<String>, String, String, String) {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme.split("### IPv6 networks").nth(1).unwrap();
    let block = section
        .split("```sh\n")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    let joined = block.replace("\\\n", "");
    let mut commands = Vec::new();
    let (mut answer, mut printer) = (String::new(), String::new());
    for line in joined.lines() {
        if let Some(comment) = line.strip_prefix("# ") {
            if let Some(good) = comment.strip_prefix("good ") {
                answer = format!("good {}", good.split_whitespace().next().unwrap());
            } else if let Some(address) = comment.strip_prefix("printer is now ") {
                printer = address.trim().to_string();
            }
        } else if !line.trim().is_empty() {
            commands.push(line.trim().to_string());
        }
    }
    let add = commands
        .iter()
        .find(|line| line.starts_with("certadns-ddns "))
        .unwrap();
    let curl = commands
        .iter()
        .find(|line| line.starts_with("curl "))
        .unwrap();
    let url = curl.split('"').nth(1).unwrap();
    let query = url.split_once('?').unwrap().1.to_string();
    let args = add.split_whitespace().skip(1).map(str::to_string).collect();
    (args, query, answer, printer)
}

/// Issue 29, item 6: the README's example works as written: the router's A-only name takes
/// its IPv4 address, the IPv6 address sent beside it is left aside, and the printer following
/// it moves to the new prefix.
#[test]
fn the_readmes_ipv6_example_works_as_written() {
    let (add, query, answer, printer) = readme_ipv6_example();
    assert_eq!(answer, "good 192.0.2.1", "the README promises");
    let env = TestEnv::new();
    // The quick start's zone, user and A-only name.
    env.cli_ok(&[
        "zone",
        "add",
        "dyn.example.net",
        "--ns",
        "ns1.dyn.example.net",
    ]);
    env.add_user("alice", "alice@example.net", "plus");
    env.add_domain("home.dyn.example.net", "alice", "A", None);
    let key = env.cli_ok(&["key", "create", "alice"]).trim().to_string();
    let add: Vec<&str> = add.iter().map(String::as_str).collect();
    env.cli_ok(&add);
    let daemon = env.spawn("");
    daemon.update_bearer(&key, &query).assert(200, &answer);
    assert_eq!(
        env.stored_ip("printer.home.dyn.example.net", "AAAA")
            .as_deref(),
        Some(printer.as_str())
    );
    // Nothing for the name at all: 400, and its follower stays where it is.
    daemon
        .update_bearer(&key, "hostname=home.dyn.example.net&myip=2001:db8:ffff::2")
        .assert(400, "IPv4 required for an A record");
    assert_eq!(
        env.stored_ip("printer.home.dyn.example.net", "AAAA")
            .as_deref(),
        Some(printer.as_str())
    );
}
