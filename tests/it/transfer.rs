//! Bulk import and export through the real binary: `domain import`, `domain export`,
//! `user import`. Every bad row named by its line, nothing imported unless `--skip-invalid`,
//! round trips, and imports served at once by a running service.

use crate::common;

use crate::common::{PASSWORD, TestEnv};

fn write(env: &TestEnv, name: &str, text: &str) -> String {
    let path = env.dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

fn failure(output: &std::process::Output) -> String {
    assert!(!output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stderr).to_string()
}

fn count(env: &TestEnv, sql: &str) -> i64 {
    env.db().query_row(sql, [], |row| row.get(0)).unwrap()
}

#[test]
fn every_bad_row_is_named_by_its_line_and_nothing_is_imported() {
    let env = TestEnv::new();
    env.seed();
    env.cli_ok(&["zone", "add", "other.example", "--ns", "ns1.other.example"]);
    let before = count(&env, "SELECT count(*) FROM domains");
    let file = write(
        &env,
        "domains.csv",
        "fqdn,owner,type,address\n\
         good1.dyn.example,alice,A,192.0.2.1\n\
         not a name,alice,A,\n\
         good2.dyn.example,nobody,A,\n\
         outside.example.org,alice,A,\n\
         v4only.dyn.example,alice,A,2001:db8::1\n\
         good1.dyn.example,alice,A,192.0.2.2\n\
         bob.dyn.example,alice,AAAA,\n\
         home.dyn.example,alice,A,\n\
         mx.dyn.example,alice,MX,\n\
         zero.dyn.example,alice,A,0.0.0.0\n\
         short.dyn.example,alice\n\
         \"quoted, name\".dyn.example,alice,A,\n\
         good3.other.example,ALICE,AAAA,2001:db8::3\n",
    );
    let errors = failure(&env.cli(&["domain", "import", &file]));
    for expected in [
        "line 3: fqdn \"not a name\"",
        "line 4: owner \"nobody\": no such user",
        "line 5: outside.example.org is not inside any zone",
        "line 6: address \"2001:db8::1\"",
        "line 7: good1.dyn.example A exists already",
        "line 8: bob.dyn.example belongs to \"bob\" already",
        "line 9: home.dyn.example A exists already",
        "line 10: type \"MX\"",
        "line 11: address \"0.0.0.0\"",
        "line 12: 2 fields where the header has 4",
        "line 13: fqdn \"quoted, name.dyn.example\"",
        "11 of 13 rows are invalid; nothing was imported",
    ] {
        assert!(errors.contains(expected), "{expected:?} in:\n{errors}");
    }
    assert_eq!(count(&env, "SELECT count(*) FROM domains"), before);

    let out = env.cli_ok(&["domain", "import", &file, "--skip-invalid"]);
    assert!(
        out.starts_with("imported 2 domains (11 invalid rows skipped)"),
        "{out}"
    );
    assert_eq!(count(&env, "SELECT count(*) FROM domains"), before + 2);
    assert_eq!(
        env.stored_ip("good1.dyn.example", "A").as_deref(),
        Some("192.0.2.1")
    );
    assert_eq!(
        env.stored_ip("good3.other.example", "AAAA").as_deref(),
        Some("2001:db8::3")
    );
    // The first addresses have their audit rows, as with `domain add --ip`.
    assert_eq!(
        count(
            &env,
            "SELECT count(*) FROM domain_updates WHERE fqdn LIKE 'good%' AND auth_method = 'admin'"
        ),
        2
    );
    // A file whose format cannot be told, and a header that does not fit.
    let odd = write(&env, "domains.txt", "fqdn,owner,type,address\n");
    assert!(failure(&env.cli(&["domain", "import", &odd])).contains("--format csv"));
    let wrong = write(&env, "wrong.csv", "name,user\nx.dyn.example,alice\n");
    assert!(
        failure(&env.cli(&["domain", "import", &wrong])).contains("line 2: unknown field `name`")
    );
}

#[test]
fn exports_import_again_unchanged_in_both_formats() {
    let env = TestEnv::new();
    env.seed();
    env.add_domain("both.dyn.example", "alice", "A", Some("192.0.2.7"));
    env.add_domain("both.dyn.example", "alice", "AAAA", Some("2001:db8::7"));
    // A network (issue 29, item 7): interface ids, a subnet, and who follows whom; the printer
    // comes before the name it follows.
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
        "0x1f",
        "--prefix-length",
        "64",
        "--follows",
        "v6.dyn.example",
    ]);
    env.cli_ok(&[
        "domain",
        "add",
        "a-printer.dyn.example",
        "--owner",
        "alice",
        "--type",
        "AAAA",
        "--interface-id",
        "::a:b:c:d",
        "--follows",
        "v6.dyn.example",
    ]);
    let csv = env.cli_ok(&["domain", "export"]);
    let jsonl = env.cli_ok(&["domain", "export", "--format", "jsonl"]);
    assert!(
        csv.starts_with("fqdn,owner,type,address,interface_id,prefix_length,subnet_id,follows\n"),
        "{csv}"
    );
    assert!(
        csv.contains("both.dyn.example,alice,AAAA,2001:db8::7,,,,\n"),
        "{csv}"
    );
    assert!(
        csv.contains("nas.dyn.example,alice,AAAA,,::1:2:3:4,64,31,v6.dyn.example\n"),
        "{csv}"
    );
    assert!(csv.contains("bob.dyn.example,bob,A,,,,,\n"), "{csv}");
    assert_eq!(csv.lines().count(), 8);
    let last: serde_json::Value = serde_json::from_str(jsonl.lines().last().unwrap()).unwrap();
    assert_eq!(
        last,
        serde_json::json!({"fqdn": "v6.dyn.example", "owner": "alice", "type": "AAAA",
            "address": null, "interface_id": null, "prefix_length": null, "subnet_id": null,
            "follows": null})
    );
    assert_eq!(jsonl.lines().count(), 7);

    for (name, text) in [("domains.csv", &csv), ("domains.jsonl", &jsonl)] {
        let other = TestEnv::new();
        other.cli_ok(&["zone", "add", "dyn.example", "--ns", "ns1.dyn.example"]);
        other.add_user("alice", "alice@example.com", "plus");
        other.add_user("bob", "bob@example.com", "free");
        // Windows line ends and a byte-order mark, as spreadsheets write them.
        let text = if name.ends_with(".csv") {
            format!("\u{feff}{}", text.replace('\n', "\r\n"))
        } else {
            text.to_string()
        };
        let file = write(&other, name, &text);
        let out = other.cli_ok(&["domain", "import", &file]);
        assert!(out.starts_with("imported 7 domains"), "{out}");
        assert_eq!(other.cli_ok(&["domain", "export"]), csv, "{name}");
        assert_eq!(
            other.cli_ok(&["domain", "export", "--format", "jsonl"]),
            jsonl,
            "{name}"
        );
    }
    // A file of an earlier version (four columns) still imports; bad prefix cells are named.
    let other = TestEnv::new();
    other.cli_ok(&["zone", "add", "dyn.example", "--ns", "ns1.dyn.example"]);
    other.add_user("alice", "alice@example.com", "plus");
    let old = write(
        &other,
        "old.csv",
        "fqdn,owner,type,address\nx.dyn.example,alice,A,192.0.2.1\n",
    );
    other.cli_ok(&["domain", "import", &old]);
    let bad = write(
        &other,
        "bad.csv",
        "fqdn,owner,type,address,interface_id,prefix_length,subnet_id,follows\n\
         y.dyn.example,alice,A,,::1,,,\n\
         z.dyn.example,alice,AAAA,,::1,64,,nowhere.dyn.example\n\
         w.dyn.example,alice,AAAA,,,,5,\n",
    );
    let errors = failure(&other.cli(&["domain", "import", &bad]));
    for expected in [
        "line 2: an interface_id is for AAAA domains",
        "line 3: follows nowhere.dyn.example, which is not a domain of the same owner",
        "line 4: prefix_length and subnet_id need an interface_id",
    ] {
        assert!(errors.contains(expected), "{expected:?} in:\n{errors}");
    }
}

#[test]
fn imported_domains_are_served_at_once_by_the_running_service() {
    let env = TestEnv::new();
    let seed = env.seed();
    let daemon = env.spawn("");
    let mut text = String::from("fqdn,owner,type,address\n");
    for n in 0..3000 {
        text.push_str(&format!(
            "bulk{n}.dyn.example,alice,A,10.1.{}.{}\n",
            n / 250,
            n % 250
        ));
    }
    let file = write(&env, "bulk.csv", &text);
    let out = env.cli_ok(&["domain", "import", &file]);
    assert!(out.starts_with("imported 3000 domains"), "{out}");
    daemon
        .update_bearer(
            &seed.alice_key,
            "hostname=bulk2999.dyn.example&myip=10.1.11.249",
        )
        .assert(200, "nochg 10.1.11.249");
    // The backend serves them: pdns's lookup over the remote-backend protocol (post_json).
    let lookup = common::backend_call(
        daemon.backend_addr,
        &serde_json::json!({"method": "lookup", "parameters": {
            "qname": "bulk7.dyn.example.", "qtype": "A", "zone-id": -1,
            "remote": "127.0.0.1", "local": "127.0.0.1", "real-remote": "127.0.0.1/32"}}),
    );
    assert!(lookup.body.contains("10.1.0.7"), "{lookup:?}");
}

#[test]
fn users_come_in_with_their_argon2_hashes_and_other_schemes_are_named() {
    let env = TestEnv::new();
    env.seed();
    let hash = certadns_ddns::auth::hash_password("carol's old password").unwrap();
    let file = write(
        &env,
        "users.csv",
        &format!(
            "username,email,plan,password_hash\n\
             carol,Carol@Example.com,pro,\"{hash}\"\n\
             dave,dave@example.com,,\n\
             erin,erin@example.com,plus,$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW\n\
             alice,new@example.com,free,\n\
             frank,bob@example.com,free,\n\
             gina,gina@example.com,gold,\n"
        ),
    );
    let errors = failure(&env.cli(&["user", "import", &file]));
    for expected in [
        "line 4: password_hash: bcrypt hashes cannot be checked here",
        "line 5: alice exists already",
        "line 6: bob@example.com exists already",
        "line 7: plan \"gold\"",
    ] {
        assert!(errors.contains(expected), "{expected:?} in:\n{errors}");
    }
    assert_eq!(count(&env, "SELECT count(*) FROM users"), 2);
    let out = env.cli_ok(&["user", "import", &file, "--skip-invalid"]);
    assert!(
        out.contains("imported 2 users, 1 without a password"),
        "{out}"
    );
    // carol signs in with the password of the system she came from; dave has none yet.
    env.add_domain("carol.dyn.example", "carol", "A", None);
    let daemon = env.spawn("");
    daemon
        .update_basic(
            "carol@example.com",
            "carol's old password",
            "hostname=carol.dyn.example&myip=192.0.2.3",
        )
        .assert(200, "good 192.0.2.3");
    daemon
        .update_basic("dave", PASSWORD, "hostname=carol.dyn.example")
        .assert(401, "badauth");
    let plans: Vec<(String, String)> = env
        .db()
        .prepare("SELECT username, plan FROM users WHERE username IN ('carol', 'dave') ORDER BY username")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        plans,
        [
            ("carol".into(), "pro".into()),
            ("dave".into(), "free".into())
        ]
    );
}

/// Issue 28, item 9: error messages are bounded. Values of megabytes in an import file are
/// quoted cut to 100 characters with their length, escaped: the report stays a few hundred
/// bytes (it was the whole values again, twice for a type: 2.1 MB for these three lines).
#[test]
fn an_import_of_huge_values_gets_a_short_report() {
    let env = TestEnv::new();
    env.seed();
    let file = write(
        &env,
        "huge.csv",
        &format!(
            "fqdn,owner,type,address\n{}.dyn.example,alice,A,\nx.dyn.example,{},A,\n\
             y.dyn.example,alice,{}\u{1b}[2J,\n",
            "a".repeat(1_000_000),
            "b".repeat(500_000),
            "T".repeat(300_000)
        ),
    );
    let report = failure(&env.cli(&["domain", "import", &file]));
    assert!(report.len() < 2_000, "{} bytes of errors", report.len());
    assert!(report.contains("line 2: fqdn \""), "{report}");
    assert!(
        report.contains("… (1000012 bytes): name longer than 253 characters"),
        "{report}"
    );
    assert!(report.contains("line 3: owner \""), "{report}");
    assert!(report.contains("line 4: type \""), "{report}");
    assert!(
        !report.contains('\u{1b}'),
        "control characters are escaped: {report:?}"
    );
    assert_eq!(
        count(&env, "SELECT count(*) FROM domains WHERE fqdn LIKE 'x.%'"),
        0
    );
}

/// Issue 28, item 10: emails are checked for the syntax of an address, and a CSV export never
/// hands a spreadsheet a formula, yet imports back as it was.
#[test]
fn emails_are_addresses_and_exports_carry_no_formulas() {
    let env = TestEnv::new();
    env.seed();
    for bad in [
        "carol@example",
        "<script>@example.com",
        "Carol <carol@example.com>",
        "carol@[192.0.2.1]",
        "carol@example..com",
    ] {
        let output = env.cli_with_stdin(
            &["user", "add", "carol", "--email", bad, "--password-stdin"],
            PASSWORD,
        );
        let error = failure(&output);
        assert!(error.contains("email must be an address"), "{bad}: {error}");
    }
    let file = write(
        &env,
        "users.csv",
        "username,email,plan,password_hash\n\
         carol,carol@example,free,\n\
         dave,\"dave <x@example.com>\",free,\n\
         erin,=HYPERLINK(\"http://x\")@example.com,free,\n",
    );
    let errors = failure(&env.cli(&["user", "import", &file]));
    for expected in [
        "line 2: email must be an address like local@example.net, not \"carol@example\"",
        "line 3: email must be an address",
        "line 4: email must be an address",
    ] {
        assert!(errors.contains(expected), "{expected:?} in:\n{errors}");
    }
    assert_eq!(count(&env, "SELECT count(*) FROM users"), 2);

    // Valid addresses may start like a formula: `=`, `+`, `-` are letters of an address.
    env.add_user("frank", "=1+1@example.com", "free");
    env.add_user("gina", "+gina@example.com", "plus");
    let csv = env.cli_ok(&["user", "export"]);
    assert!(
        csv.starts_with("username,email,plan,password_hash\n"),
        "{csv}"
    );
    for line in csv.lines().skip(1) {
        for cell in line.split(',') {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "a formula cell {cell:?} in {line:?}"
            );
        }
    }
    assert!(csv.contains("frank,'=1+1@example.com,free,"), "{csv}");
    let jsonl = env.cli_ok(&["user", "export", "--format", "jsonl"]);
    assert!(jsonl.contains("\"email\":\"=1+1@example.com\""), "{jsonl}");
    // Both import back as they were, hashes included: the users sign in where they went.
    let other = TestEnv::new();
    other.cli_ok(&["zone", "add", "dyn.example", "--ns", "ns1.dyn.example"]);
    let exported = write(&other, "users.csv", &csv);
    other.cli_ok(&["user", "import", &exported]);
    let emails: Vec<String> = other
        .db()
        .prepare("SELECT email FROM users ORDER BY username")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        emails,
        [
            "Alice@Example.com",
            "bob@example.com",
            "=1+1@example.com",
            "+gina@example.com"
        ]
    );
    other.add_domain("frank.dyn.example", "frank", "A", None);
    let daemon = other.spawn("");
    daemon
        .update_basic(
            "=1+1@example.com",
            PASSWORD,
            "hostname=frank.dyn.example&myip=192.0.2.4",
        )
        .assert(200, "good 192.0.2.4");
    // A domain export goes through the same cells.
    let domains = env.cli_ok(&["domain", "export"]);
    assert!(
        domains.starts_with("fqdn,owner,type,address,interface_id,"),
        "{domains}"
    );
}

/// Issue 29, item 11: a long import or export shows its progress on a terminal, and nothing in
/// a pipe.
#[test]
fn an_import_shows_progress_on_a_terminal_only() {
    let env = TestEnv::new();
    env.seed();
    let mut text = String::from("fqdn,owner,type,address\n");
    for n in 0..12_000 {
        text.push_str(&format!(
            "p{n}.dyn.example,alice,A,10.2.{}.{}\n",
            n / 250,
            n % 250
        ));
    }
    let file = write(&env, "many.csv", &text);
    let piped = env.cli(&["domain", "import", &file]);
    assert!(piped.status.success());
    assert!(
        piped.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&piped.stderr)
    );
    if !common::require_tool("script") {
        return;
    }
    let more = write(
        &env,
        "more.csv",
        &text
            .replace(",alice,A,10.2.", ",alice,A,10.3.")
            .replace("\np", "\nq"),
    );
    let command = format!(
        "{} --db {} domain import {more}",
        common::BIN,
        env.db.display()
    );
    let terminal = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&terminal.stdout);
    assert!(
        shown.contains("importing") && shown.contains("/12000 rows"),
        "{shown}"
    );
    assert!(shown.contains("imported 12000 domains"), "{shown}");
    // An export too (its rows go to the same terminal here).
    let command = format!("{} --db {} domain export", common::BIN, env.db.display());
    let terminal = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&terminal.stdout);
    assert!(
        shown.contains("exporting"),
        "{}",
        &shown[..shown.len().min(2000)]
    );
    let piped = env.cli(&["domain", "export"]);
    assert!(
        piped.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&piped.stderr)
    );
}
