//! The real clients: Debian's ddclient (3.10) and inadyn (2.10) updating our server, with the
//! configurations captured in `tests/fixtures/clients/` (from `../shared/fixtures/clients/`) and
//! the ones shipped in `examples/`. Each test checks the stored addresses and the client's own
//! report (exit status and its success or failure lines).
//!
//! Needs `ddclient` and `inadyn`: without them each test prints why and passes, unless
//! `REQUIRE_E2E=1`, as in CI.

use std::path::Path;
use std::process::Command;

use crate::common::{Daemon, TestEnv, require_tool};

/// The password of `testuser`, as in the captured ddclient configuration: `:` and `&` inside.
const CLIENT_PASSWORD: &str = "testpass:w/ colon&amp";

/// Seeds what the captured configurations update: zone `example.com`, `testuser` (plus plan)
/// owning host1..3 (A) and host6 (AAAA); returns an API key of testuser.
fn seed(env: &TestEnv) -> String {
    env.cli_ok(&["zone", "add", "example.com", "--ns", "ns1.example.com"]);
    env.add_user_with_password("testuser", "testuser@example.net", "plus", CLIENT_PASSWORD);
    for host in ["host1", "host2", "host3"] {
        env.add_domain(&format!("{host}.example.com"), "testuser", "A", None);
    }
    env.add_domain("host6.example.com", "testuser", "AAAA", None);
    env.cli_ok(&["key", "create", "testuser"])
        .trim()
        .to_string()
}

/// A fixture or example file's text.
fn read(relative: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)).expect(relative)
}

/// A captured client configuration pointed at `daemon`, with `password` for testuser.
fn fixture(name: &str, daemon: &Daemon, password: &str) -> String {
    read(&format!("tests/fixtures/clients/{name}"))
        .replace("@PORT@", &daemon.addr.port().to_string())
        .replace(
            "password='testpass:w/ colon&amp'",
            &format!("password='{password}'"),
        )
        .replace("password=testpass", &format!("password='{password}'"))
        .replace("password = testpass", &format!("password = \"{password}\""))
}

/// What a client run printed and how it exited.
struct Run {
    /// Exit status.
    code: Option<i32>,
    /// stdout and stderr together.
    output: String,
}

/// Writes `config` (mode 0600, as the clients want) and runs ddclient once in the foreground.
fn ddclient(env: &TestEnv, config: &str) -> Run {
    let dir = tempfile::tempdir_in(env.dir.path()).unwrap();
    let file = dir.path().join("ddclient.conf");
    write_private(&file, config);
    let output = Command::new("ddclient")
        .args(["-daemon=0", "-foreground", "-noquiet", "-verbose"])
        .arg(format!("-file={}", file.display()))
        .arg(format!(
            "-cache={}",
            dir.path().join("ddclient.cache").display()
        ))
        .output()
        .expect("run ddclient");
    Run {
        code: output.status.code(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

/// Writes `config` and runs inadyn once (`-1`), in the foreground, with a time limit (inadyn
/// waits and retries on 5xx answers).
fn inadyn(env: &TestEnv, config: &str) -> Run {
    let dir = tempfile::tempdir_in(env.dir.path()).unwrap();
    let file = dir.path().join("inadyn.conf");
    write_private(&file, config);
    let output = Command::new("timeout")
        .args(["30", "inadyn", "-1", "-n", "-l", "info"])
        .arg(format!("--config={}", file.display()))
        .arg(format!("--cache-dir={}", dir.path().display()))
        .arg(format!(
            "--pidfile={}",
            dir.path().join("inadyn.pid").display()
        ))
        .output()
        .expect("run inadyn");
    Run {
        code: output.status.code(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

/// Writes a file readable by its owner only.
fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Starts a seeded environment if both clients are installed.
fn started() -> Option<(TestEnv, String, Daemon)> {
    if !require_tool("ddclient") || !require_tool("inadyn") {
        return None;
    }
    let env = TestEnv::new();
    let key = seed(&env);
    let daemon = env.spawn("");
    Some((env, key, daemon))
}

#[test]
fn ddclient_updates_one_host_with_a_password_holding_colon_and_ampersand() {
    let Some((env, _, daemon)) = started() else {
        return;
    };
    let run = ddclient(
        &env,
        &fixture("ddclient-single.conf", &daemon, CLIENT_PASSWORD),
    );
    assert_eq!(run.code, Some(0), "{}", run.output);
    assert!(
        run.output
            .contains("SUCCESS:  updating host1.example.com: good: IP address set to 1.2.3.4"),
        "{}",
        run.output
    );
    assert_eq!(
        env.stored_ip("host1.example.com", "A").as_deref(),
        Some("1.2.3.4")
    );
    let history: serde_json::Value =
        serde_json::from_str(&env.cli_ok(&["history", "host1.example.com", "--json"])).unwrap();
    assert_eq!(history[0]["user_agent"], "ddclient/3.10.0");
    assert_eq!(history[0]["auth_method"], "basic");
}

#[test]
fn ddclient_updates_several_hosts_in_one_request() {
    let Some((env, _, daemon)) = started() else {
        return;
    };
    let run = ddclient(
        &env,
        &fixture("ddclient-multi.conf", &daemon, CLIENT_PASSWORD),
    );
    assert_eq!(run.code, Some(0), "{}", run.output);
    for host in ["host1", "host2", "host3"] {
        let line =
            format!("SUCCESS:  updating {host}.example.com: good: IP address set to 1.2.3.4");
        assert!(run.output.contains(&line), "{line}\n{}", run.output);
        assert_eq!(
            env.stored_ip(&format!("{host}.example.com"), "A")
                .as_deref(),
            Some("1.2.3.4")
        );
    }
    assert_eq!(
        daemon.log().matches("update answered").count(),
        1,
        "one batched request"
    );
}

#[test]
fn ddclient_updates_ipv6_and_takes_an_api_key_as_password() {
    let Some((env, key, daemon)) = started() else {
        return;
    };
    let run = ddclient(&env, &fixture("ddclient-usev6ip.conf", &daemon, &key));
    assert_eq!(run.code, Some(0), "{}", run.output);
    assert!(
        run.output
            .contains("SUCCESS:  updating host6.example.com: good: IP address set to 2001:db8::1"),
        "{}",
        run.output
    );
    assert_eq!(
        env.stored_ip("host6.example.com", "AAAA").as_deref(),
        Some("2001:db8::1")
    );
    let last_used: Option<String> = env
        .db()
        .query_row("SELECT last_used_at FROM api_keys", [], |r| r.get(0))
        .unwrap();
    assert!(last_used.is_some());
}

#[test]
fn ddclient_with_legacy_options_and_several_groups_succeeds_where_it_may() {
    let Some((env, _, daemon)) = started() else {
        return;
    };
    let run = ddclient(
        &env,
        &fixture("ddclient-opts.conf", &daemon, CLIENT_PASSWORD),
    );
    assert_eq!(
        run.code,
        Some(0),
        "wildcard/mx/backmx/static are ignored: {}",
        run.output
    );
    assert_eq!(
        env.stored_ip("host1.example.com", "A").as_deref(),
        Some("1.2.3.4")
    );
    // Three groups, three requests; the third logs in as a user that does not exist.
    let run = ddclient(
        &env,
        &fixture("ddclient-groups.conf", &daemon, CLIENT_PASSWORD).replace("1.2.3.4", "1.2.3.5"),
    );
    assert_eq!(run.code, Some(1), "{}", run.output);
    assert!(
        run.output
            .contains("updating host2.example.com: good: IP address set to 1.2.3.5"),
        "{}",
        run.output
    );
    assert!(
        run.output.contains("FAILED:   updating host3.example.com"),
        "{}",
        run.output
    );
    assert_eq!(env.stored_ip("host3.example.com", "A"), None);
}

#[test]
fn ddclient_reports_a_wrong_password_and_nothing_changes() {
    let Some((env, _, daemon)) = started() else {
        return;
    };
    let run = ddclient(
        &env,
        &fixture("ddclient-multi.conf", &daemon, "wrong password"),
    );
    assert_eq!(run.code, Some(1), "{}", run.output);
    assert!(
        run.output.contains("FAILED:") && run.output.contains("badauth"),
        "{}",
        run.output
    );
    assert_eq!(env.stored_ip("host1.example.com", "A"), None);
    assert_eq!(env.audit_count(), 0);
}

#[test]
fn the_shipped_ddclient_example_works() {
    let Some((env, key, daemon)) = started() else {
        return;
    };
    let address = daemon.addr.to_string();
    let config = read("examples/ddclient.conf")
        .replace("ssl=yes", "ssl=no")
        .replace("https://ddns.example.net", &format!("http://{address}"))
        .replace("server=ddns.example.net", &format!("server={address}"))
        .replace("login=alice", "login=testuser")
        .replace("ak_YOUR_API_KEY", &key)
        .replace("home.dyn.example.net", "host2.example.com");
    let run = ddclient(&env, &config);
    assert_eq!(run.code, Some(0), "{}", run.output);
    // The address came from our /domains/my-ip.
    assert_eq!(
        env.stored_ip("host2.example.com", "A").as_deref(),
        Some("127.0.0.1"),
        "{}",
        run.output
    );
}

#[test]
fn inadyn_updates_two_hosts_one_request_each() {
    let Some((env, _, daemon)) = started() else {
        return;
    };
    let run = inadyn(
        &env,
        &fixture("inadyn-custom.conf", &daemon, CLIENT_PASSWORD),
    );
    assert_eq!(run.code, Some(0), "{}", run.output);
    for host in ["host1", "host2"] {
        let line =
            format!("Successful alias table update for {host}.example.com => new IP# 1.2.3.4");
        assert!(run.output.contains(&line), "{line}\n{}", run.output);
        assert_eq!(
            env.stored_ip(&format!("{host}.example.com"), "A")
                .as_deref(),
            Some("1.2.3.4")
        );
    }
    assert_eq!(daemon.log().matches("update answered").count(), 2);
}

#[test]
fn inadyn_updates_ipv6_sent_percent_encoded() {
    let Some((env, key, daemon)) = started() else {
        return;
    };
    let run = inadyn(&env, &fixture("inadyn-custom-v6.conf", &daemon, &key));
    assert_eq!(run.code, Some(0), "{}", run.output);
    assert!(
        run.output
            .contains("Successful alias table update for host6.example.com"),
        "{}",
        run.output
    );
    assert_eq!(
        env.stored_ip("host6.example.com", "AAAA").as_deref(),
        Some("2001:db8::1")
    );
}

#[test]
fn inadyn_legacy_paths_work_detected_address_and_credentials_in_the_url() {
    let Some((env, _, daemon)) = started() else {
        return;
    };
    // No myip in the path: the address the request came from is used.
    let run = inadyn(
        &env,
        &fixture("inadyn-custom-append.conf", &daemon, CLIENT_PASSWORD),
    );
    assert_eq!(run.code, Some(0), "{}", run.output);
    assert_eq!(
        env.stored_ip("host1.example.com", "A").as_deref(),
        Some("127.0.0.1")
    );
    // user=/password= in the URL are not our parameter names; the Basic header inadyn always
    // sends authenticates.
    let run = inadyn(
        &env,
        &fixture("inadyn-custom-upath.conf", &daemon, CLIENT_PASSWORD),
    );
    assert_eq!(run.code, Some(0), "{}", run.output);
    assert_eq!(
        env.stored_ip("host1.example.com", "A").as_deref(),
        Some("1.2.3.4")
    );
}

#[test]
fn inadyn_reports_a_wrong_password_and_nothing_changes() {
    let Some((env, _, daemon)) = started() else {
        return;
    };
    let run = inadyn(
        &env,
        &fixture("inadyn-custom.conf", &daemon, "wrong password"),
    );
    assert_eq!(run.code, Some(50), "{}", run.output);
    assert!(
        run.output.contains("Authentication failure"),
        "{}",
        run.output
    );
    assert_eq!(env.stored_ip("host1.example.com", "A"), None);
}

#[test]
fn the_shipped_inadyn_example_works() {
    let Some((env, key, daemon)) = started() else {
        return;
    };
    let address = daemon.addr.to_string();
    let config = read("examples/inadyn.conf")
        .replace("ssl = true", "ssl = false")
        .replace("checkip-ssl = true", "checkip-ssl = false")
        .replace("\"ddns.example.net\"", &format!("\"{address}\""))
        .replace("username = alice", "username = testuser")
        .replace("ak_YOUR_API_KEY", &key)
        .replace("home.dyn.example.net", "host3.example.com");
    let run = inadyn(&env, &config);
    assert_eq!(run.code, Some(0), "{}", run.output);
    assert_eq!(
        env.stored_ip("host3.example.com", "A").as_deref(),
        Some("127.0.0.1"),
        "{}",
        run.output
    );
}

#[test]
fn ddclient_twice_then_inadyn_on_the_same_hosts_all_succeed_with_abuse_detection_on() {
    if !require_tool("ddclient") || !require_tool("inadyn") {
        return;
    }
    let env = TestEnv::new();
    seed(&env);
    // The service's defaults: abuse detection on (the other tests run without it).
    let daemon = env.spawn("limits.abuse-detection = true");
    let config = fixture("ddclient-multi.conf", &daemon, CLIENT_PASSWORD);
    let first = ddclient(&env, &config);
    assert_eq!(first.code, Some(0), "{}", first.output);
    // The same run again at once (a new cache, so it sends again): the addresses are there.
    let second = ddclient(&env, &config);
    assert_eq!(second.code, Some(0), "{}", second.output);
    for host in ["host1", "host2", "host3"] {
        let good =
            format!("SUCCESS:  updating {host}.example.com: good: IP address set to 1.2.3.4");
        assert!(first.output.contains(&good), "{good}\n{}", first.output);
        // ddclient reports `nochg` as a warning, and counts it a success.
        let nochg = format!("updating {host}.example.com: nochg: No update required");
        assert!(second.output.contains(&nochg), "{nochg}\n{}", second.output);
    }
    assert!(!second.output.contains("abuse\n") && !second.output.contains("FAILED"));
    // Then inadyn moves two of them to a new address, right after.
    let run = inadyn(
        &env,
        &fixture("inadyn-custom.conf", &daemon, CLIENT_PASSWORD)
            .replace("echo 1.2.3.4", "echo 1.2.3.5"),
    );
    assert_eq!(run.code, Some(0), "{}", run.output);
    for host in ["host1", "host2"] {
        let line =
            format!("Successful alias table update for {host}.example.com => new IP# 1.2.3.5");
        assert!(run.output.contains(&line), "{line}\n{}", run.output);
    }
    for (host, ip) in [
        ("host1", "1.2.3.5"),
        ("host2", "1.2.3.5"),
        ("host3", "1.2.3.4"),
    ] {
        assert_eq!(
            env.stored_ip(&format!("{host}.example.com"), "A")
                .as_deref(),
            Some(ip)
        );
    }
    assert!(!daemon.log().contains("answering abuse"));
}
