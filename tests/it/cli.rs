//! The admin CLI through the real binary: output, exit codes, what lands in the store.

use crate::common;

use crate::common::{BIN, PASSWORD, TestEnv};

/// stderr of a failed command, asserting it failed with one line.
#[track_caller]
fn failure(output: std::process::Output) -> String {
    assert!(!output.status.success(), "expected failure, got {output:?}");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "one line on stderr: {stderr:?}"
    );
    assert!(stderr.starts_with("error: "), "{stderr:?}");
    stderr
}

/// Every CLI command leaves the database file complete: its WAL checkpointed into it and
/// removed, so that a copy of the file alone (a backup taken between commands) has every
/// change. (The pool once opened a spare connection in the background, which a process exiting
/// at that moment left unclosed, and with it the WAL: 6 runs in 24. Then the thread that opened
/// the one connection could still hold the pool when the command ended, so the pool and its
/// connection were to be closed on that thread, which the exiting process cut short: 13 runs
/// of this file in 30 with a fuzzer busy on one core, none since `Store::close` waits for it.)
#[test]
fn each_command_leaves_the_file_complete_and_no_wal() {
    let env = TestEnv::new();
    let wal = {
        let mut path = env.db.as_os_str().to_owned();
        path.push("-wal");
        std::path::PathBuf::from(path)
    };
    for round in 0..5 {
        let zone = format!("z{round}.example");
        env.cli_ok(&["zone", "add", &zone, "--ns", &format!("ns1.{zone}")]);
        assert!(!wal.exists(), "zone add, round {round}");
        let user = format!("user{round}");
        env.add_user(&user, &format!("{user}@example.net"), "plus");
        assert!(!wal.exists(), "user add, round {round}");
        env.cli_ok(&[
            "domain",
            "add",
            &format!("h.{zone}"),
            "--owner",
            &user,
            "--type",
            "A",
        ]);
        assert!(!wal.exists(), "domain add, round {round}");
        env.cli_ok(&["key", "create", &user]);
        assert!(!wal.exists(), "key create, round {round}");
    }
}

#[test]
fn init_creates_the_database_from_the_schema_and_nothing_else_does() {
    let env = TestEnv::without_database();
    // Issue 29, item 1: a command on a missing file fails, naming it, and creates nothing.
    for args in [
        &["zone", "list"][..],
        &["domain", "list"],
        &["key", "create", "alice"],
        &["user", "list"],
        &["history", "home.dyn.example"],
    ] {
        let output = env.cli(args);
        assert!(!output.status.success(), "{args:?}: {output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&format!("no database at {}", env.db.display()))
                && stderr.contains("certadns-ddns init"),
            "{args:?}: {stderr}"
        );
        assert!(!env.db.exists(), "{args:?} made a database");
    }
    let created = env.cli_ok(&["init"]);
    assert_eq!(
        created.trim(),
        format!("created database {}", env.db.display())
    );
    let again = env.cli_ok(&["init"]);
    assert!(
        again.contains("exists; its schema is up to date"),
        "{again}"
    );
    env.cli_ok(&["zone", "list"]);
    let conn = env.db();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    let migrations = include_str!("../../schema.sql")
        .lines()
        .filter(|line| line.starts_with("-- migration "))
        .count()
        + 1;
    assert_eq!(
        version,
        i64::try_from(migrations).unwrap(),
        "every migration in schema.sql"
    );
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn the_database_path_comes_from_the_environment_too() {
    let env = TestEnv::new();
    let path = env.dir.path().join("from-env.db");
    let run = |args: &[&str]| {
        std::process::Command::new(BIN)
            .args(args)
            .env("CERTADNS_DB", &path)
            .output()
            .unwrap()
    };
    assert!(!run(&["zone", "list"]).status.success());
    assert!(!path.exists());
    assert!(run(&["init"]).status.success());
    let output = run(&["zone", "add", "dyn.example", "--ns", "ns1.example"]);
    assert!(output.status.success(), "{output:?}");
    assert!(path.exists());
}

/// Issue 29, item 1: a relative `database` in a config file is relative to the file's folder,
/// so the packaged config means one database from every working directory.
#[test]
fn a_config_files_relative_database_is_beside_the_file_wherever_the_cli_runs() {
    let env = TestEnv::new();
    let etc = env.dir.path().join("etc");
    std::fs::create_dir(&etc).unwrap();
    let config = etc.join("config.toml");
    std::fs::write(&config, "[store]\ndatabase = \"data.db\"\n").unwrap();
    let elsewhere = env.dir.path().join("home");
    std::fs::create_dir(&elsewhere).unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .args(args)
            .current_dir(&elsewhere)
            .output()
            .unwrap()
    };
    let output = run(&["init"]);
    assert!(output.status.success(), "{output:?}");
    assert!(etc.join("data.db").exists());
    let output = run(&["zone", "add", "dyn.example", "--ns", "ns1.example"]);
    assert!(output.status.success(), "{output:?}");
    assert!(
        !elsewhere.join("data.db").exists(),
        "nothing in the working directory"
    );
    let listed = run(&["zone", "list"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains("dyn.example"));
}

#[test]
fn zones_are_added_listed_and_unique() {
    let env = TestEnv::new();
    assert!(
        env.cli_ok(&[
            "zone",
            "add",
            "Dyn.Example.",
            "--ns",
            "ns1.example",
            "--ns",
            "ns2.example",
            "--hostmaster",
            "dns@example.org"
        ])
        .starts_with("added zone dyn.example;")
    );
    let list = env.cli_ok(&["zone", "list"]);
    let mut lines = list.lines();
    assert!(lines.next().unwrap().starts_with("ZONE"));
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(row[0], "dyn.example");
    assert!(
        row[1].ends_with("01") && row[1].len() == 10,
        "serial YYYYMMDD01: {row:?}"
    );
    assert_eq!(row[2], "ns1.example,ns2.example");
    assert_eq!(row[3], "dns.example.org");

    assert!(
        failure(env.cli(&["zone", "add", "DYN.example", "--ns", "ns1.example"]))
            .contains("exists already")
    );
    failure(env.cli(&["zone", "add", "bad..zone", "--ns", "ns1.example"]));
    let no_ns = env.cli(&["zone", "add", "other.example"]);
    assert!(!no_ns.status.success());
}

#[test]
fn users_get_argon2id_hashes_and_unique_names() {
    let env = TestEnv::new();
    env.cli_ok_with_stdin(
        &[
            "user",
            "add",
            "Alice",
            "--email",
            "alice@example.com",
            "--plan",
            "pro",
            "--password-stdin",
        ],
        &format!("{PASSWORD}\n"),
    );
    let (name, hash, plan): (String, String, String) = env
        .db()
        .query_row("SELECT username, password_hash, plan FROM users", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!((name.as_str(), plan.as_str()), ("alice", "pro"));
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains(PASSWORD));

    let duplicate = env.cli_with_stdin(
        &[
            "user",
            "add",
            "alice2",
            "--email",
            "ALICE@example.com",
            "--password-stdin",
        ],
        PASSWORD,
    );
    assert!(failure(duplicate).contains("exists already"));
    let no_stdin_flag = env.cli_with_stdin(
        &["user", "add", "carol", "--email", "carol@example.com"],
        PASSWORD,
    );
    assert!(!no_stdin_flag.status.success());
    let short = env.cli_with_stdin(
        &[
            "user",
            "add",
            "carol",
            "--email",
            "carol@example.com",
            "--password-stdin",
        ],
        "short",
    );
    assert!(failure(short).contains("at least 8"));
    failure(env.cli_with_stdin(
        &[
            "user",
            "add",
            "c@rol",
            "--email",
            "carol@example.com",
            "--password-stdin",
        ],
        PASSWORD,
    ));
    failure(env.cli_with_stdin(
        &[
            "user",
            "add",
            "carol",
            "--email",
            "carol",
            "--password-stdin",
        ],
        PASSWORD,
    ));

    env.cli_ok(&["user", "plan", "alice", "elite"]);
    failure(env.cli(&["user", "plan", "nobody", "elite"]));
    assert!(!env.cli(&["user", "plan", "alice", "gold"]).status.success());
    let list = env.cli_ok(&["user", "list"]);
    let row: Vec<&str> = list.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[..4], ["alice", "alice@example.com", "elite", "yes"]);
}

#[test]
fn keys_are_printed_once_and_stored_only_as_hashes() {
    let env = TestEnv::new();
    env.add_user("alice", "alice@example.com", "plus");
    env.add_user("bob", "bob@example.com", "free");

    let output = env.cli_ok(&["key", "create", "alice"]);
    let key = output.trim();
    assert_eq!(output, format!("{key}\n"), "the key alone on stdout");
    assert!(key.starts_with("ak_") && key.len() >= 40, "{key}");

    let stored: (String, String, String) = env
        .db()
        .query_row("SELECT prefix, key_hash, scopes FROM api_keys", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!(stored.0, &key[..11]);
    assert_eq!(stored.1.len(), 64);
    assert_eq!(stored.2, r#"["domains:update"]"#);
    let file = std::fs::read(&env.db).unwrap();
    let wal = std::fs::read(env.db.with_extension("db-wal")).unwrap_or_default();
    let secret = &key.as_bytes()[11..];
    for bytes in [&file, &wal] {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret),
            "the key is not in the database"
        );
    }

    let list = env.cli_ok(&["key", "list", "alice"]);
    assert!(list.contains(&key[..11]) && !list.contains(key));

    let refused = failure(env.cli(&["key", "create", "bob"]));
    assert!(refused.contains("free plan"), "{refused}");
    failure(env.cli(&["key", "create", "alice", "--scope", "not a scope"]));

    assert_eq!(
        env.cli_ok(&["key", "revoke", &key[..11]]),
        format!("revoked {}\n", &key[..11])
    );
    let active: bool = env
        .db()
        .query_row("SELECT is_active FROM api_keys", [], |r| r.get(0))
        .unwrap();
    assert!(!active);
    failure(env.cli(&["key", "revoke", "ak_nosuchkey"]));
}

#[test]
fn keys_can_be_revoked_by_the_whole_key() {
    let env = TestEnv::new();
    env.add_user("alice", "alice@example.com", "plus");
    let key = env.cli_ok(&["key", "create", "alice"]).trim().to_string();
    env.cli_ok(&["key", "revoke", &key]);
    let list = env.cli_ok(&["key", "list"]);
    assert!(list.lines().nth(1).unwrap().contains(" no "), "{list}");
}

#[test]
fn domains_live_inside_zones_and_belong_to_one_owner() {
    let env = TestEnv::new();
    env.seed();
    failure(env.cli(&[
        "domain",
        "add",
        "x.elsewhere.example",
        "--owner",
        "alice",
        "--type",
        "A",
    ]));
    failure(env.cli(&[
        "domain",
        "add",
        "x.dyn.example",
        "--owner",
        "nobody",
        "--type",
        "A",
    ]));
    assert!(
        failure(env.cli(&[
            "domain",
            "add",
            "home.dyn.example",
            "--owner",
            "alice",
            "--type",
            "A"
        ]))
        .contains("already")
    );
    assert!(
        failure(env.cli(&[
            "domain",
            "add",
            "home.dyn.example",
            "--owner",
            "bob",
            "--type",
            "AAAA"
        ]))
        .contains("belongs to")
    );
    failure(env.cli(&[
        "domain",
        "add",
        "x.dyn.example",
        "--owner",
        "alice",
        "--type",
        "A",
        "--ip",
        "2001:db8::1",
    ]));
    assert!(
        !env.cli(&[
            "domain",
            "add",
            "x.dyn.example",
            "--owner",
            "alice",
            "--type",
            "MX"
        ])
        .status
        .success()
    );

    env.add_domain("home.dyn.example", "alice", "AAAA", Some("2001:DB8::7"));
    assert_eq!(
        env.stored_ip("home.dyn.example", "AAAA").as_deref(),
        Some("2001:db8::7")
    );
    let history = env.cli_ok(&["history", "home.dyn.example", "--json"]);
    let rows: serde_json::Value = serde_json::from_str(&history).unwrap();
    assert_eq!(rows[0]["auth_method"], "admin");

    let mine = env.cli_ok(&["domain", "list", "--owner", "alice"]);
    assert_eq!(mine.lines().count(), 1 + 3, "{mine}");
    assert!(!mine.contains("bob.dyn.example"));

    env.cli_ok(&["domain", "remove", "home.dyn.example", "--type", "AAAA"]);
    env.cli_ok(&["domain", "remove", "home.dyn.example"]);
    failure(env.cli(&["domain", "remove", "home.dyn.example"]));
    // The history outlives the domain.
    let history = env.cli_ok(&["history", "home.dyn.example"]);
    assert!(history.contains("2001:db8::7"), "{history}");
}

#[test]
fn zone_secondaries_are_set_validated_and_cleared() {
    let env = TestEnv::new();
    env.cli_ok(&[
        "zone",
        "add",
        "dyn.example",
        "--ns",
        "ns1.example",
        "--also-notify",
        "192.0.2.53",
    ]);
    env.cli_ok(&[
        "zone",
        "set",
        "dyn.example",
        "--also-notify",
        "2001:DB8::53",
        "--also-notify",
        "[2001:db8::54]:5300",
    ]);
    let stored: String = env
        .db()
        .query_row("SELECT also_notify FROM zones", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        stored, r#"["2001:db8::53","[2001:db8::54]:5300"]"#,
        "replaced, in canonical form"
    );
    assert!(
        failure(env.cli(&["zone", "set", "dyn.example", "--also-notify", "ns2.example"]))
            .contains("not an address")
    );
    assert!(
        failure(env.cli(&["zone", "set", "nope.example", "--also-notify", "192.0.2.1"]))
            .contains("no zone named")
    );
    assert!(
        !env.cli(&["zone", "set", "dyn.example"]).status.success(),
        "something to set is required"
    );
    env.cli_ok(&["zone", "set", "dyn.example", "--clear-also-notify"]);
    let stored: String = env
        .db()
        .query_row("SELECT also_notify FROM zones", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored, "[]");
    assert!(
        env.cli_ok(&["zone", "list"])
            .lines()
            .nth(1)
            .unwrap()
            .ends_with('-')
    );
}

#[test]
fn changes_bump_the_zone_serial() {
    let env = TestEnv::new();
    env.seed();
    let serial = || -> i64 {
        env.db()
            .query_row("SELECT serial FROM zones", [], |r| r.get(0))
            .unwrap()
    };
    let before = serial();
    env.add_domain("new.dyn.example", "alice", "A", Some("192.0.2.1"));
    assert_eq!(serial(), before + 1);
    env.cli_ok(&["domain", "remove", "new.dyn.example"]);
    assert_eq!(serial(), before + 2);
}

#[test]
fn history_has_a_limit_and_a_json_form() {
    let env = TestEnv::new();
    env.seed();
    for ip in ["192.0.2.1", "192.0.2.2", "192.0.2.3"] {
        env.cli_ok(&["domain", "remove", "home.dyn.example"]);
        env.add_domain("home.dyn.example", "alice", "A", Some(ip));
    }
    let rows: serde_json::Value = serde_json::from_str(&env.cli_ok(&[
        "history",
        "home.dyn.example",
        "--json",
        "--limit",
        "2",
    ]))
    .unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["new_ip"], "192.0.2.3");
    for column in [
        "domain_id",
        "old_ip",
        "new_ip",
        "created_at",
        "source_ip",
        "peer_ip",
        "country_code",
        "ip_tags",
        "user_agent",
        "auth_method",
    ] {
        assert!(
            rows[0].get(column).is_some(),
            "column {column} in {}",
            rows[0]
        );
    }
    let text = env.cli_ok(&["history", "home.dyn.example"]);
    assert!(text.starts_with("TIME"));
    assert_eq!(text.lines().count(), 1 + 3);
    // A name with no domain and no history is a typo: an error naming it (issue 29, item 11).
    let typo = env.cli(&["history", "nothing.dyn.example", "--json"]);
    assert!(!typo.status.success());
    assert!(
        String::from_utf8_lossy(&typo.stderr)
            .contains("no domain named nothing.dyn.example, and no history for that name")
    );
    // A domain with no change yet has an empty history.
    assert_eq!(
        env.cli_ok(&["history", "bob.dyn.example", "--json"]).trim(),
        "[]"
    );
}

#[test]
fn serve_fails_loudly_on_a_bad_config_or_a_busy_port() {
    let env = TestEnv::new();
    let config = env.dir.path().join("bad.toml");
    std::fs::write(&config, "lisen = \"127.0.0.1:0\"\n").unwrap();
    let output = env.cli(&["serve", "--config", config.to_str().unwrap()]);
    let stderr = failure(output);
    assert!(stderr.contains("unknown field"), "{stderr}");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    let output = env.cli(&["serve", "--listen", &port]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot listen on"));
}

#[test]
fn help_prints_commands_and_router_settings_for_a_domain() {
    let env = TestEnv::new();
    env.seed();
    let config = env.dir.path().join("help.toml");
    std::fs::write(
        &config,
        "updates.public-url = \"https://ddns.example.net/\"\n",
    )
    .unwrap();
    let text = env.cli_ok(&[
        "update-help",
        "home.dyn.example",
        "--config",
        config.to_str().unwrap(),
    ]);
    assert!(text.contains("curl -H \"Authorization: Bearer ak_YOUR_API_KEY\" \"https://ddns.example.net/nic/update?hostname=home.dyn.example&myip=203.0.113.7\""), "{text}");
    assert!(
        text.contains("Server / Hostname    ddns.example.net"),
        "{text}"
    );
    assert!(
        text.contains("Update URL / Path    /nic/update?hostname=%h&myip=%i"),
        "{text}"
    );

    let free = env.cli_ok(&["update-help", "bob.dyn.example"]);
    assert!(
        free.contains("free plan") && free.contains("http://127.0.0.1:8080/nic/update"),
        "{free}"
    );
    assert!(failure(env.cli(&["update-help", "nothing.dyn.example"])).contains("no domain named"));
    // `--help` and `help COMMAND` work for every command (issue 29, item 3).
    assert!(env.cli_ok(&["zone", "--help"]).contains("Usage"));
    let zone = env.cli_ok(&["help", "zone"]);
    assert!(zone.contains("Usage: certadns-ddns zone"), "{zone}");
    assert!(
        env.cli_ok(&["help", "domain", "add"])
            .contains("Usage: certadns-ddns domain add")
    );
}

/// Issue 29, item 3: each noun's summary in `--help` lists every subcommand it has.
#[test]
fn the_command_summaries_list_every_subcommand() {
    let env = TestEnv::new();
    let top = env.cli_ok(&["--help"]);
    for noun in ["zone", "user", "key", "domain", "record"] {
        let help = env.cli_ok(&[noun, "--help"]);
        let subcommands: Vec<&str> = help
            .split("Commands:\n")
            .nth(1)
            .unwrap()
            .lines()
            .take_while(|line| !line.trim().is_empty())
            .filter_map(|line| line.split_whitespace().next())
            .filter(|name| *name != "help")
            .collect();
        let summary = top
            .lines()
            .find(|line| line.trim_start().starts_with(&format!("{noun} ")))
            .unwrap();
        let listed = summary
            .split('(')
            .nth(1)
            .and_then(|rest| rest.split(')').next())
            .unwrap_or_default();
        let listed: Vec<&str> = listed.split(", ").collect();
        assert_eq!(listed, subcommands, "{summary}");
    }
}

#[test]
fn record_commands_refuse_bad_input_with_one_line() {
    let env = TestEnv::new();
    env.cli_ok(&["zone", "add", "dyn.example", "--ns", "ns1.dyn.example"]);
    assert!(
        failure(env.cli(&["record", "add", "nope.example", "www", "A", "192.0.2.1"]))
            .contains("no zone named")
    );
    assert!(
        failure(env.cli(&["record", "add", "dyn.example", "www", "A", "2001:db8::1"]))
            .contains("IPv4")
    );
    assert!(
        failure(env.cli(&[
            "record",
            "add",
            "dyn.example",
            "www.other.example.",
            "A",
            "192.0.2.1"
        ]))
        .contains("not inside zone")
    );
    assert!(
        !env.cli(&["record", "add", "dyn.example", "www", "HINFO", "x86 linux"])
            .status
            .success()
    );
    env.cli_ok(&["record", "add", "dyn.example", "www", "TXT", "hello"]);
    assert!(
        failure(env.cli(&["record", "add", "dyn.example", "www", "TXT", "\"hello\""]))
            .contains("exists already")
    );
    assert!(
        failure(env.cli(&["record", "remove", "dyn.example", "www", "A"])).contains("no A record")
    );
    env.cli_ok(&["record", "remove", "dyn.example", "www", "TXT", "hello"]);
    let listed = env.cli_ok(&["record", "list", "dyn.example"]);
    assert!(!listed.contains("www"), "{listed}");
}

/// Issue 29, items 5 and 7: every list has `--json`; `domain list --json` has the keys of
/// `domain export`, the prefix settings among them.
#[test]
fn every_list_prints_json_too() {
    let env = TestEnv::new();
    env.seed();
    env.cli_ok(&[
        "domain",
        "add",
        "nas.dyn.example",
        "--owner",
        "alice",
        "--type",
        "AAAA",
        "--interface-id",
        "::1:2:3:4",
        "--subnet-id",
        "2",
        "--follows",
        "v6.dyn.example",
    ]);
    let json = |args: &[&str]| -> Vec<serde_json::Value> {
        let mut args = args.to_vec();
        args.push("--json");
        serde_json::from_str(&env.cli_ok(&args)).unwrap()
    };
    let zones = json(&["zone", "list"]);
    assert_eq!(zones[0]["zone"], "dyn.example");
    assert!(zones[0]["serial"].is_u64());
    assert_eq!(
        zones[0]["nameservers"],
        serde_json::json!(["ns1.dyn.example"])
    );
    let users = json(&["user", "list"]);
    assert_eq!(users.len(), 2);
    assert_eq!(users[0]["active"], true);
    let keys = json(&["key", "list"]);
    assert_eq!(keys[0]["user"], "alice");
    assert_eq!(keys[0]["last_used_at"], serde_json::Value::Null);
    let records = json(&["record", "list", "dyn.example"]);
    assert!(records.iter().any(|record| record["type"] == "SOA"));
    let domains = json(&["domain", "list"]);
    let nas = domains
        .iter()
        .find(|domain| domain["fqdn"] == "nas.dyn.example")
        .unwrap();
    let export = env.cli_ok(&["domain", "export", "--format", "jsonl"]);
    let exported: serde_json::Value = serde_json::from_str(
        export
            .lines()
            .find(|line| line.contains("nas.dyn.example"))
            .unwrap(),
    )
    .unwrap();
    for (key, value) in exported.as_object().unwrap() {
        let listed = &nas[key.as_str()];
        // The export writes every cell as text (CSV's view); the listing types numbers.
        let same = listed == value
            || value
                .as_str()
                .and_then(|text| text.parse::<u64>().ok())
                .is_some_and(|number| listed.as_u64() == Some(number));
        assert!(same, "{key}: listed {listed}, exported {value}");
    }
    assert_eq!(nas["follows"], "v6.dyn.example");
    assert_eq!(nas["subnet_id"], 2);
    // The table shows them too.
    let table = env.cli_ok(&["domain", "list"]);
    assert!(
        table.lines().next().unwrap().contains("INTERFACE_ID"),
        "{table}"
    );
    assert!(table.contains("::1:2:3:4"), "{table}");
}

/// Reads `from` until `needle` has come (or the stream ends); what came.
fn read_until(from: &mut impl std::io::Read, needle: &str) -> String {
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !String::from_utf8_lossy(&seen).contains(needle) {
        match from.read(&mut byte) {
            Ok(1) => seen.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}

/// Waits (bounded) until the terminal of `master` no longer echoes: the program reads a
/// secret now (its prompt shows a moment before it turns echo off).
fn wait_for_no_echo(master: &std::fs::File) {
    use nix::sys::termios::{LocalFlags, tcgetattr};
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while tcgetattr(master)
        .unwrap()
        .local_flags
        .contains(LocalFlags::ECHO)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "echo never turned off"
        );
        std::thread::yield_now();
    }
}

/// Issue 29, item 11: `--password-stdin` on a terminal prompts without echo, twice. The
/// binary runs on a pseudo-terminal of its own (its controlling terminal, as rpassword reads
/// /dev/tty); each answer is typed once the prompt is shown and echo is off.
#[test]
fn a_password_typed_on_a_terminal_is_not_echoed_and_asked_twice() {
    use std::io::Write as _;
    use std::os::unix::process::CommandExt as _;
    let env = TestEnv::new();
    for (user, second, expected) in [
        ("carol", "a long password", "added user carol"),
        ("dave", "another password", "the two passwords differ"),
    ] {
        let pty = nix::pty::openpty(None, None).unwrap();
        let slave = std::fs::File::from(pty.slave);
        let mut command = std::process::Command::new(common::BIN);
        command
            .arg("--db")
            .arg(&env.db)
            .args([
                "user",
                "add",
                user,
                "--email",
                &format!("{user}@example.com"),
            ])
            .arg("--password-stdin")
            .stdin(slave.try_clone().unwrap())
            .stdout(slave.try_clone().unwrap())
            .stderr(slave);
        // SAFETY: only async-signal-safe calls between fork and exec (setsid, ioctl).
        unsafe {
            command.pre_exec(|| {
                nix::unistd::setsid()?;
                if nix::libc::ioctl(0, nix::libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command.spawn().unwrap();
        drop(command);
        let mut master = std::fs::File::from(pty.master);
        let mut shown = read_until(&mut master, "Password: ");
        wait_for_no_echo(&master);
        master.write_all(b"a long password\n").unwrap();
        shown.push_str(&read_until(&mut master, "Again: "));
        wait_for_no_echo(&master);
        master.write_all(format!("{second}\n").as_bytes()).unwrap();
        // To the end (reading the master fails once the program has exited).
        shown.push_str(&read_until(&mut master, "\u{0}"));
        child.wait().unwrap();
        assert!(shown.contains(expected), "{shown}");
        assert!(!shown.contains("a long password"), "echoed: {shown}");
    }
    let users = env.cli_ok(&["user", "list"]);
    assert!(
        users.contains("carol") && !users.contains("dave"),
        "{users}"
    );
}

/// Issue 29, item 11: the man page and the completions the Debian package installs are what
/// the binary makes of its own command line now (regenerate with `certadns-ddns man >
/// dist/man/certadns-ddns.1` and `completions bash|zsh|fish`).
#[test]
fn the_packaged_man_page_and_completions_are_current() {
    let env = TestEnv::new();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dist");
    for (args, file) in [
        (&["man"][..], "man/certadns-ddns.1"),
        (&["completions", "bash"], "completions/certadns-ddns.bash"),
        (&["completions", "zsh"], "completions/_certadns-ddns"),
        (&["completions", "fish"], "completions/certadns-ddns.fish"),
    ] {
        let made = env.cli_ok(args);
        let kept = std::fs::read_to_string(root.join(file)).unwrap();
        assert!(
            made == kept,
            "dist/{file} is stale: run certadns-ddns {}",
            args.join(" ")
        );
    }
    let bash = env.cli_ok(&["completions", "bash"]);
    assert!(bash.contains("update-help") && bash.contains("--with-domains"));
}

/// Issue 30, item 4: one rule for a new API key, whoever asks. `key create` keeps the cap of
/// active keys the pages keep (an admin is not held to the pages' hourly pace), and a free
/// plan's refusal says what to do.
#[test]
fn key_create_keeps_the_same_caps_as_the_pages() {
    let env = TestEnv::new();
    env.seed();
    // The seed made one; nineteen more in a row: no pace for an admin.
    for _ in 0..19 {
        env.cli_ok(&["key", "create", "alice"]);
    }
    let refused = env.cli(&["key", "create", "alice"]);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("user alice holds 20 active keys, the most allowed; revoke one first"),
        "{said}"
    );
    let active: i64 = env
        .db()
        .query_row("SELECT count(*) FROM api_keys WHERE is_active", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert_eq!(active, 20, "the refused key was not stored");
    let free = env.cli(&["key", "create", "bob"]);
    assert!(String::from_utf8_lossy(&free.stderr).contains("user plan bob plus"));
}

/// Issue 31, item 2 (the keys): `tsig create` prints the key once, as the block
/// `nsupdate -k FILE` reads (checked with the real nsupdate); account keys follow the plan as
/// API keys do; admin keys belong to a zone or a subtree, for the types given; `tsig list`
/// never shows a secret; a revoked key's name is not given to another secret.
#[test]
fn tsig_keys_are_created_once_listed_without_secrets_and_revoked() {
    let env = TestEnv::new();
    env.seed();
    let created = env.cli(&["tsig", "create", "alice"]);
    assert!(created.status.success(), "{created:?}");
    let told = String::from_utf8_lossy(&created.stderr).to_string();
    assert!(told.contains("shown this once"), "{told}");
    let block = String::from_utf8(created.stdout).unwrap();
    let name = block
        .strip_prefix("key \"")
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("{block}"))
        .to_string();
    assert!(name.starts_with("alice-"), "{name}");
    assert!(block.contains("algorithm hmac-sha256;"), "{block}");
    let secret = block
        .split("secret \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_string();
    let stored: String = env
        .db()
        .query_row(
            "SELECT secret FROM tsig_keys WHERE name = ?1",
            [&name],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(stored, secret);
    if common::require_tool("nsupdate") {
        let file = env.dir.path().join("alice.key");
        std::fs::write(&file, &block).unwrap();
        let mut nsupdate = std::process::Command::new("nsupdate")
            .arg("-k")
            .arg(&file)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        nsupdate.stdin.take().unwrap().write_all(b"quit\n").unwrap();
        let read = nsupdate.wait_with_output().unwrap();
        assert!(
            read.stderr.is_empty(),
            "nsupdate refused the key block: {}",
            String::from_utf8_lossy(&read.stderr)
        );
    }

    let free = env.cli(&["tsig", "create", "bob"]);
    assert!(!free.status.success());
    assert!(String::from_utf8_lossy(&free.stderr).contains("free plan"));
    let zone_key = env.cli_ok(&[
        "tsig",
        "create",
        "--zone",
        "dyn.example",
        "--types",
        "a,TXT",
        "--name",
        "External-DNS.",
        "--algorithm",
        "HMAC-SHA512",
    ]);
    assert!(zone_key.starts_with("key \"external-dns\" {"), "{zone_key}");
    assert!(zone_key.contains("algorithm hmac-sha512;"), "{zone_key}");
    env.cli_ok(&[
        "tsig",
        "create",
        "--subtree",
        "lab.dyn.example",
        "--name",
        "kea",
    ]);
    for (args, why) in [
        (
            &["tsig", "create", "--zone", "nosuch.example"][..],
            "no zone nosuch.example",
        ),
        (
            &["tsig", "create", "alice", "--zone", "dyn.example"],
            "cannot be used with",
        ),
        (&["tsig", "create", "alice", "--types", "A"], "--zone"),
        (
            &["tsig", "create", "alice", "--algorithm", "hmac-md5"],
            "hmac-sha256",
        ),
        (
            &["tsig", "create", "--zone", "dyn.example", "--types", "PTRX"],
            "record type",
        ),
        (
            &["tsig", "create", "alice", "--name", "kea"],
            "exists already",
        ),
        (
            &["tsig", "create", "--subtree", "elsewhere.example"],
            "not inside any zone",
        ),
    ] {
        let refused = env.cli(args);
        assert!(!refused.status.success(), "{args:?}");
        let said = String::from_utf8_lossy(&refused.stderr);
        assert!(said.contains(why), "{args:?}: {said}");
    }

    let listed = env.cli_ok(&["tsig", "list", "--json"]);
    assert!(!listed.contains(&secret), "no secret in the list");
    let keys: Vec<serde_json::Value> = serde_json::from_str(&listed).unwrap();
    assert_eq!(keys.len(), 3, "{listed}");
    assert_eq!(keys[0]["user"], "alice");
    let kea = keys.iter().find(|key| key["name"] == "kea").unwrap();
    assert_eq!(kea["subtree"], "lab.dyn.example");
    assert_eq!(kea["types"], "A,AAAA,TXT");
    assert_eq!(kea["zone"], "dyn.example");

    env.cli_ok(&["tsig", "revoke", "external-dns"]);
    let again = env.cli(&["tsig", "revoke", "external-dns"]);
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("no active TSIG key named external-dns")
    );
    let reused = env.cli(&["tsig", "create", "alice", "--name", "external-dns"]);
    assert!(String::from_utf8_lossy(&reused.stderr).contains("exists already"));
}
