//! The audit trail says where an update came from (`[audit]`): the country and tags of the new
//! address and of the client, from a real GeoLite2 database and from databases and lists made
//! here; files replaced under the running service; files that cannot be used at start.

use crate::common;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::common::{BIN, Daemon, TestEnv};
use nix::sys::signal::Signal;

/// The GeoLite2-City database of tests/fetch-geolite2.sh (fetched on first use, once per test
/// run), or None when it cannot be had (offline): then the test is skipped, or fails under
/// `REQUIRE_E2E=1`.
fn geolite2() -> Option<PathBuf> {
    static PATH: OnceLock<Option<PathBuf>> = OnceLock::new();
    let path = PATH.get_or_init(|| {
        if let Some(path) = std::env::var_os("CERTADNS_GEOLITE2") {
            return Some(PathBuf::from(path));
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let output = Command::new(root.join("tests/fetch-geolite2.sh"))
            .stderr(Stdio::inherit())
            .output()
            .ok()?;
        let printed = String::from_utf8(output.stdout).ok()?;
        output.status.success().then(|| root.join(printed.trim()))
    });
    if path.is_none() {
        common::skip("no GeoLite2 database (tests/fetch-geolite2.sh failed: offline?)");
    }
    path.clone()
}

/// A MaxMind-format database of `database_type` holding `records` (network, value).
fn database<T: serde::Serialize>(database_type: &str, records: &[(&str, T)]) -> Vec<u8> {
    let mut writer = mmdb_writer::Writer::builder(database_type)
        .description(&[("en", "made by tests/it/audit.rs")])
        .build();
    for (network, value) in records {
        writer
            .insert(network.parse::<ipnet::IpNet>().unwrap(), value)
            .unwrap();
    }
    writer.to_bytes().unwrap()
}

/// A database mapping each network to `{"country": {"iso_code": code}}`, as GeoLite2-Country
/// has it.
fn country_database(records: &[(&str, &str)]) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Iso<'a> {
        iso_code: &'a str,
    }
    #[derive(serde::Serialize)]
    struct Record<'a> {
        country: Iso<'a>,
    }
    let records: Vec<(&str, Record<'_>)> = records
        .iter()
        .map(|(network, code)| {
            (
                *network,
                Record {
                    country: Iso { iso_code: code },
                },
            )
        })
        .collect();
    database("GeoLite2-Country", &records)
}

/// A database mapping each network to its AS number, as GeoLite2-ASN has it.
fn asn_database(records: &[(&str, u32)]) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Record {
        autonomous_system_number: u32,
        autonomous_system_organization: &'static str,
    }
    let records: Vec<(&str, Record)> = records
        .iter()
        .map(|(network, number)| {
            let record = Record {
                autonomous_system_number: *number,
                autonomous_system_organization: "Example AS",
            };
            (*network, record)
        })
        .collect();
    database("GeoLite2-ASN", &records)
}

/// Replaces `path` the way geoipupdate does: a new file renamed over the old one.
fn replace(path: &Path, bytes: &[u8]) {
    let next = path.with_extension("next");
    std::fs::write(&next, bytes).unwrap();
    std::fs::rename(&next, path).unwrap();
}

/// One audit row as the admin reads it: new address, its country and tags, the client, its
/// country and tags.
#[derive(Debug, PartialEq, Eq)]
struct Row {
    new_ip: String,
    country: Option<String>,
    tags: String,
    source_ip: Option<String>,
    source_country: Option<String>,
    source_tags: String,
}

/// The single number `sql` selects.
fn count(env: &TestEnv, sql: &str) -> i64 {
    env.db().query_row(sql, [], |row| row.get(0)).unwrap()
}

/// The newest audit row of `fqdn`.
fn newest(env: &TestEnv, fqdn: &str) -> Row {
    env.db()
        .query_row(
            "SELECT new_ip, country_code, ip_tags, source_ip, source_country_code, source_ip_tags
             FROM domain_updates WHERE fqdn = ?1 ORDER BY id DESC LIMIT 1",
            [fqdn],
            |row| {
                Ok(Row {
                    new_ip: row.get(0)?,
                    country: row.get(1)?,
                    tags: row.get(2)?,
                    source_ip: row.get(3)?,
                    source_country: row.get(4)?,
                    source_tags: row.get(5)?,
                })
            },
        )
        .unwrap()
}

fn row(
    new_ip: &str,
    country: Option<&str>,
    tags: &str,
    source_ip: &str,
    source_country: Option<&str>,
    source_tags: &str,
) -> Row {
    Row {
        new_ip: new_ip.into(),
        country: country.map(Into::into),
        tags: tags.into(),
        source_ip: Some(source_ip.into()),
        source_country: source_country.map(Into::into),
        source_tags: source_tags.into(),
    }
}

/// Sends the update of one host in `query` from `client` with `key`, checks that it is answered
/// `answer` (200), and returns the audit row it wrote.
fn change(
    env: &TestEnv,
    daemon: &Daemon,
    key: &str,
    client: &str,
    query: &str,
    answer: &str,
) -> Row {
    update_from(daemon, key, client, query).assert(200, answer);
    let fqdn = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("hostname="))
        .expect("one host");
    newest(env, fqdn)
}

/// An update of `query` with alice's key, from `client` (X-Forwarded-For: loopback is a
/// trusted proxy by default).
fn update_from(daemon: &Daemon, key: &str, client: &str, query: &str) -> common::HttpResponse {
    daemon.get(
        &format!("/nic/update?{query}"),
        &[
            ("Authorization", &format!("Bearer {key}")),
            ("X-Forwarded-For", client),
        ],
    )
}

#[test]
fn a_real_geolite2_database_places_the_new_address_and_the_client() {
    let Some(geolite) = geolite2() else { return };
    // What the database itself says of the addresses asserted below (RIPE NCC's web server and
    // network, Google's public resolver, an address of MaxMind's own test data): checked first,
    // so a failure below is ours, not a different database's.
    let reader = maxminddb::Reader::open_readfile(&geolite).unwrap();
    for (address, expected) in [
        ("193.0.6.139", "NL"),
        ("2001:67c:2e8::2", "NL"),
        ("8.8.8.8", "US"),
        ("2001:4860:4860::8888", "US"),
        ("81.2.69.160", "GB"),
    ] {
        let ip: IpAddr = address.parse().unwrap();
        let code: Option<&str> = reader
            .lookup(ip)
            .unwrap()
            .decode_path(&maxminddb::path!["country", "iso_code"])
            .unwrap();
        assert_eq!(code, Some(expected), "{address} in {}", geolite.display());
    }

    let env = TestEnv::new();
    let seed = env.seed();
    let daemon = env.spawn(&format!("audit.geoip-database = {geolite:?}"));
    // A router in the Netherlands points its name at a US address; over IPv6 the same.
    assert_eq!(
        change(
            &env,
            &daemon,
            &seed.alice_key,
            "193.0.6.139",
            "hostname=home.dyn.example&myip=8.8.8.8",
            "good 8.8.8.8"
        ),
        row("8.8.8.8", Some("US"), "[]", "193.0.6.139", Some("NL"), "[]")
    );
    assert_eq!(
        change(
            &env,
            &daemon,
            &seed.alice_key,
            "2001:67c:2e8::2",
            "hostname=v6.dyn.example&myipv6=2001:4860:4860::8888",
            "good 2001:4860:4860::8888"
        ),
        row(
            "2001:4860:4860::8888",
            Some("US"),
            "[]",
            "2001:67c:2e8::2",
            Some("NL"),
            "[]"
        )
    );
    // Auto-detected: the client is the new address.
    daemon
        .get(
            "/nic/update?hostname=bob.dyn.example",
            &[
                ("Authorization", &common::basic("bob", common::PASSWORD)),
                ("X-Forwarded-For", "81.2.69.160"),
            ],
        )
        .assert(200, "good 81.2.69.160");
    assert_eq!(
        newest(&env, "bob.dyn.example"),
        row(
            "81.2.69.160",
            Some("GB"),
            "[]",
            "81.2.69.160",
            Some("GB"),
            "[]"
        )
    );
    // A LAN address has no country, whatever the database: its tag says what it is.
    assert_eq!(
        change(
            &env,
            &daemon,
            &seed.alice_key,
            "193.0.6.139",
            "hostname=home.dyn.example&myip=10.0.0.1",
            "good 10.0.0.1"
        ),
        row(
            "10.0.0.1",
            None,
            "[\"private\"]",
            "193.0.6.139",
            Some("NL"),
            "[]"
        )
    );

    // Where admins look: the history, as text and as JSON.
    let text = env.cli_ok(&["history", "home.dyn.example"]);
    let header = text.lines().next().unwrap();
    for column in [
        "NEW_IP",
        "CC",
        "TAGS",
        "SOURCE_IP",
        "SOURCE_CC",
        "SOURCE_TAGS",
    ] {
        assert!(header.split_whitespace().any(|c| c == column), "{header}");
    }
    let newest_line: Vec<&str> = text.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        newest_line[3..9],
        ["10.0.0.1", "-", "private", "193.0.6.139", "NL", "-"],
        "{text}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&env.cli_ok(&["history", "home.dyn.example", "--json"])).unwrap();
    let first = &json[1];
    assert_eq!(first["new_ip"], "8.8.8.8", "{json:#}");
    assert_eq!(first["country_code"], "US");
    assert_eq!(first["source_country_code"], "NL");
    assert_eq!(first["ip_tags"], serde_json::json!([]));
    assert_eq!(json[0]["ip_tags"], serde_json::json!(["private"]));
    assert_eq!(json[0]["country_code"], serde_json::Value::Null);
}

#[test]
fn tags_come_from_the_asn_database_and_the_operators_lists() {
    let env = TestEnv::new();
    let seed = env.seed();
    let dir = env.dir.path();
    let (country, asn, tor, hosting) = (
        dir.join("country.mmdb"),
        dir.join("asn.mmdb"),
        dir.join("tor-exits.txt"),
        dir.join("hosting.txt"),
    );
    std::fs::write(
        &country,
        country_database(&[("81.2.69.0/24", "GB"), ("2a02:2770::/32", "NL")]),
    )
    .unwrap();
    std::fs::write(
        &asn,
        asn_database(&[("81.2.69.0/24", 20712), ("2a02:2770::/32", 196752)]),
    )
    .unwrap();
    // As Tor's bulk exit list and a FireHOL netset are downloaded: bare addresses, comments.
    std::fs::write(&tor, "# exits\n81.2.69.160\n2a02:2770::66\n").unwrap();
    std::fs::write(
        &hosting,
        "# hosting.netset\n2a02:2770::/32\n10.0.0.0/8 ; lab\n",
    )
    .unwrap();
    let audit = format!(
        "[audit]\ngeoip-database = {country:?}\nasn-database = {asn:?}\n\
         [audit.ip-tags]\ntor-exit = {tor:?}\nhosting = {hosting:?}\n"
    );
    let daemon = env.spawn(&audit);
    daemon.wait_for_log("audit data loaded: [audit.ip-tags] list \"tor-exit\": 2 entries");

    // From a Tor exit, a name pointed at a hosting network's address.
    assert_eq!(
        change(
            &env,
            &daemon,
            &seed.alice_key,
            "81.2.69.160",
            "hostname=v6.dyn.example&myip=2a02:2770::1",
            "good 2a02:2770::1"
        ),
        row(
            "2a02:2770::1",
            Some("NL"),
            "[\"asn:196752\",\"hosting\"]",
            "81.2.69.160",
            Some("GB"),
            "[\"asn:20712\",\"tor-exit\"]"
        )
    );
    // Special ranges keep their tags and get the lists' too, never a country or an AS.
    assert_eq!(
        change(
            &env,
            &daemon,
            &seed.alice_key,
            "2a02:2770::66",
            "hostname=home.dyn.example&myip=10.1.1.1",
            "good 10.1.1.1"
        ),
        row(
            "10.1.1.1",
            None,
            "[\"private\",\"hosting\"]",
            "2a02:2770::66",
            Some("NL"),
            "[\"asn:196752\",\"hosting\",\"tor-exit\"]"
        )
    );
    // A repeat writes no row and needs no lookup: still one row per change.
    let rows = env.audit_count();
    update_from(
        &daemon,
        &seed.alice_key,
        "81.2.69.160",
        "hostname=home.dyn.example&myip=10.1.1.1",
    )
    .assert(200, "nochg 10.1.1.1");
    assert_eq!(env.audit_count(), rows);

    // The admin CLI's rows, with the config: the new address is looked up; there is no client.
    env.add_user("carol", "carol@example.com", "plus");
    env.add_domain("carol.dyn.example", "carol", "A", Some("81.2.69.161"));
    let row = newest(&env, "carol.dyn.example");
    assert_eq!(
        (
            row.country.as_deref(),
            row.tags.as_str(),
            row.source_ip,
            row.source_tags.as_str()
        ),
        (Some("GB"), "[\"asn:20712\"]", None, "[]")
    );

    // The README's queries by country and by tag.
    let conn = env.db();
    let from_tor: Vec<String> = conn
        .prepare(
            "SELECT d.fqdn FROM domain_updates d, json_each(d.source_ip_tags) t
             WHERE t.value = 'tor-exit' ORDER BY d.id",
        )
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(from_tor, ["v6.dyn.example", "home.dyn.example"]);
    let abroad = count(
        &env,
        "SELECT count(*) FROM domain_updates
         WHERE source_country_code IS NOT NULL AND source_country_code <> 'NL'",
    );
    assert_eq!(abroad, 1);
}

#[test]
fn replaced_files_are_read_again_without_a_restart() {
    let env = TestEnv::new();
    let seed = env.seed();
    let dir = env.dir.path();
    let (country, tor) = (dir.join("country.mmdb"), dir.join("tor-exits.txt"));
    std::fs::write(&country, country_database(&[("81.2.69.0/24", "GB")])).unwrap();
    std::fs::write(&tor, "").unwrap();
    // Checked every second here (60 by default); SIGHUP below needs no check at all.
    let daemon = env.spawn(&format!(
        "[audit]\ngeoip-database = {country:?}\nreload-check-secs = 1\n\
         [audit.ip-tags]\ntor-exit = {tor:?}\n"
    ));
    let mut address = 0;
    let mut update = |client: &str| {
        address += 1;
        change(
            &env,
            &daemon,
            &seed.alice_key,
            client,
            &format!("hostname=home.dyn.example&myip=81.2.69.{address}"),
            &format!("good 81.2.69.{address}"),
        )
    };
    let before = update("81.2.69.200");
    assert_eq!(
        (before.country.as_deref(), before.source_tags.as_str()),
        (Some("GB"), "[]")
    );

    // geoipupdate's weekly replacement, and the exit list's hourly one: noticed by the check.
    let reloaded = "audit data reloaded: geoip-database";
    let seen = daemon.log_count(reloaded);
    replace(&country, &country_database(&[("81.2.69.0/24", "IE")]));
    replace(&tor, b"81.2.69.200\n");
    daemon.wait_for_log_after(reloaded, seen);
    daemon.wait_for_log("audit data reloaded: [audit.ip-tags] list \"tor-exit\": 1 entries");
    let after = update("81.2.69.200");
    assert_eq!(
        (after.country.as_deref(), after.source_tags.as_str()),
        (Some("IE"), "[\"tor-exit\"]")
    );

    // A broken replacement (a download cut short) is refused and the data before stays, once
    // logged; the service goes on answering.
    let refused = "audit data not reloaded";
    replace(&country, b"<html>502 Bad Gateway</html>");
    daemon.wait_for_log(refused);
    let kept = update("81.2.69.200");
    assert_eq!(kept.country.as_deref(), Some("IE"));

    // SIGHUP reads every file at once; here after a good replacement.
    replace(&country, &country_database(&[("81.2.69.0/24", "FR")]));
    let seen = daemon.log_count(reloaded);
    daemon.signal(Signal::SIGHUP);
    daemon.wait_for_log_after(reloaded, seen);
    assert_eq!(update("81.2.69.200").country.as_deref(), Some("FR"));
    assert_eq!(daemon.log_count(refused), 1, "{}", daemon.log());
}

#[test]
fn updates_go_on_while_a_large_database_is_read_again() {
    let Some(geolite) = geolite2() else { return };
    let env = TestEnv::new();
    let seed = env.seed();
    let daemon = env.spawn(&format!("audit.geoip-database = {geolite:?}"));
    let reloaded = "audit data reloaded: geoip-database";
    // A router updating without pause while the 57 MB database is read again, ten times over:
    // every answer is `good`, and every row has its country.
    std::thread::scope(|scope| {
        let updates = scope.spawn(|| {
            let mut answered = 0;
            while daemon.log_count(reloaded) < 10 {
                let address = format!("8.8.{}.{}", answered / 250 % 250, answered % 250 + 1);
                update_from(
                    &daemon,
                    &seed.alice_key,
                    "193.0.6.139",
                    &format!("hostname=home.dyn.example&myip={address}"),
                )
                .assert(200, &format!("good {address}"));
                answered += 1;
            }
            answered
        });
        for round in 0..10 {
            daemon.signal(Signal::SIGHUP);
            daemon.wait_for_log_after(reloaded, round);
        }
        assert!(updates.join().unwrap() > 0);
    });
    let missing = count(
        &env,
        "SELECT count(*) FROM domain_updates
         WHERE country_code IS NOT 'US' OR source_country_code IS NOT 'NL'",
    );
    assert_eq!(missing, 0);
}

#[test]
fn sighup_without_audit_files_keeps_the_service_running() {
    let env = TestEnv::new();
    let seed = env.seed();
    let daemon = env.spawn("");
    daemon.wait_for_log("no geoip-database configured ([audit]): audit rows get no country");
    // SIGHUP's default action ends a process: the service handles it instead.
    daemon.signal(Signal::SIGHUP);
    daemon.wait_for_log("SIGHUP received");
    assert_eq!(
        change(
            &env,
            &daemon,
            &seed.alice_key,
            "81.2.69.160",
            "hostname=home.dyn.example&myip=81.2.69.161",
            "good 81.2.69.161"
        ),
        row("81.2.69.161", None, "[]", "81.2.69.160", None, "[]")
    );
}

/// Runs `serve` with `config` appended to a loopback config and returns its stderr once it
/// has exited; fails if it is still running after 20 s (it should never start).
fn failed_start(env: &TestEnv, config: &str) -> String {
    let path = env.dir.path().join("failing.toml");
    std::fs::write(
        &path,
        format!(
            "store.database = {:?}\nlisteners.listen = \"127.0.0.1:0\"\n\
             listeners.backend-listen = \"127.0.0.1:0\"\n{config}\n",
            env.db
        ),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--config", path.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve started with {config:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    assert!(!output.status.success());
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_file_that_cannot_be_used_stops_the_start_naming_it() {
    let env = TestEnv::new();
    env.seed();
    let dir = env.dir.path();
    let missing = dir.join("GeoLite2-Country.mmdb");
    let stderr = failed_start(&env, &format!("audit.geoip-database = {missing:?}"));
    assert!(
        stderr.contains(&format!("cannot read geoip-database {}", missing.display()))
            && stderr.contains("No such file"),
        "{stderr}"
    );
    let text = dir.join("not-a-database.mmdb");
    std::fs::write(&text, "GeoLite2 is being downloaded").unwrap();
    let stderr = failed_start(&env, &format!("audit.asn-database = {text:?}"));
    assert!(
        stderr.contains(&format!(
            "asn-database {} is not a MaxMind-format",
            text.display()
        )),
        "{stderr}"
    );
    let list = dir.join("hosting.txt");
    std::fs::write(&list, "192.0.2.0/24\n198.51.100.0/24 AS64500 hosting\n").unwrap();
    let stderr = failed_start(&env, &format!("[audit.ip-tags]\nhosting = {list:?}"));
    assert!(
        stderr.contains(&format!("list \"hosting\" {}, line 2", list.display())),
        "{stderr}"
    );
    let stderr = failed_start(&env, &format!("[audit.ip-tags]\nprivate = {list:?}"));
    assert!(stderr.contains("special-purpose range"), "{stderr}");
    // The admin CLI with the same config: `domain add --ip` refuses before writing anything.
    std::fs::write(
        env.config_path(),
        format!("audit.geoip-database = {missing:?}\n"),
    )
    .unwrap();
    let output = env.cli(&[
        "domain",
        "add",
        "late.dyn.example",
        "--owner",
        "alice",
        "--type",
        "A",
        "--ip",
        "81.2.69.160",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains(&missing.display().to_string()),
        "{stderr}"
    );
    // Nothing was written: the store is as it was.
    assert_eq!(env.audit_count(), 0);
    let domains = count(
        &env,
        "SELECT count(*) FROM domains WHERE fqdn = 'late.dyn.example'",
    );
    assert_eq!(domains, 0);
}
