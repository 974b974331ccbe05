//! A certificate for a DDNS host and its wildcard, with real programs from Debian: `lego`
//! (its `httpreq` DNS provider pointed at our `/acme` endpoint) asks `pebble` (a test ACME
//! server) for `home.dyn.example` and `*.home.dyn.example` together; pebble checks the two
//! TXT values at `_acme-challenge.home.dyn.example` through a real `pdns_server` running on
//! our backend, with its caches on as shipped. Everything on loopback, stopped at the end.
//!
//! Needs `pebble`, `lego`, `pdns_server` and `openssl`: without them the test prints why and
//! passes, unless `REQUIRE_E2E=1`, as in CI.

#![allow(clippy::print_stdout, reason = "the test reports how long lego took")]

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Pdns, PdnsApiEndpoint, TestEnv, backend_call, free_port, require_tool};
use serde_json::json;

/// A process stopped when dropped.
pub(crate) struct Stopped(Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts pebble on free loopback ports with a certificate made here, resolving challenge
/// names through `dns_port`; returns it once its directory answers, with the directory URL
/// and the certificate lego must trust.
pub(crate) fn start_pebble(
    dir: &std::path::Path,
    dns_port: u16,
) -> (Stopped, String, std::path::PathBuf) {
    let (cert, key) = (dir.join("pebble-cert.pem"), dir.join("pebble-key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let port = free_port();
    let config = dir.join("pebble.json");
    std::fs::write(
        &config,
        json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{port}"),
            "managementListenAddress": format!("127.0.0.1:{}", free_port()),
            "certificate": cert,
            "privateKey": key,
            "httpPort": free_port(),
            "tlsPort": free_port(),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false
        }})
        .to_string(),
    )
    .unwrap();
    let mut child = Command::new("pebble")
        .arg("-config")
        .arg(&config)
        .arg("-dnsserver")
        .arg(format!("127.0.0.1:{dns_port}"))
        // No random waits before validations, no nonces refused on purpose: the test is
        // about our side.
        .env("PEBBLE_VA_NOSLEEP", "1")
        .env("PEBBLE_WFE_NONCEREJECT", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let pebble = Stopped(child);
    let (ready, listening) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("ACME directory available at") {
                let _ = ready.send(());
            }
        }
    });
    listening
        .recv_timeout(Duration::from_secs(30))
        .expect("pebble never listened");
    (pebble, format!("https://127.0.0.1:{port}/dir"), cert)
}

/// How lego sets its values.
enum Provider {
    /// `httpreq` at `/acme`, with an API key of scope `acme:update`.
    HttpReq,
    /// `rfc2136` at `update-dns-listen`, with a TSIG key of the account.
    Rfc2136,
}

#[test]
fn lego_gets_a_certificate_for_a_host_and_its_wildcard() {
    lego_gets_a_certificate(Provider::HttpReq);
}

/// Issue 31, item 6: the same through lego's `rfc2136` provider, signed with alice's TSIG key;
/// lego finds the zone with an SOA query to pdns, and sends its updates to our listener.
#[test]
fn lego_gets_a_certificate_through_rfc2136() {
    lego_gets_a_certificate(Provider::Rfc2136);
}

/// lego asks pebble for `home.dyn.example` and its wildcard, setting the values through
/// `provider`; pebble checks them through pdns.
fn lego_gets_a_certificate(provider: Provider) {
    for tool in ["pebble", "lego", "pdns_server", "openssl"] {
        if !require_tool(tool) {
            return;
        }
    }
    let env = TestEnv::new();
    env.seed();
    let socket = env.dir.path().join("backend.sock");
    let api = PdnsApiEndpoint::new();
    // The abuse guard on, as shipped (the harness turns it off): lego's calls pass under it.
    let daemon = env.spawn(&format!(
        "limits.abuse-detection = true\nlisteners.backend-socket = {socket:?}\n\
         listeners.update-dns-listen = \"127.0.0.1:0\"\n{}",
        api.daemon_config()
    ));
    let pdns = Pdns::on_socket(env.dir.path(), &socket, &api, "dyn.example");
    let (_pebble, directory, ca) = start_pebble(env.dir.path(), pdns.port);

    let store = env.dir.path().join("lego");
    let started = Instant::now();
    let mut lego = Command::new("lego");
    lego.env("LEGO_CA_CERTIFICATES", &ca);
    match provider {
        Provider::HttpReq => {
            let key = env
                .cli_ok(&["key", "create", "alice", "--scope", "acme:update"])
                .trim()
                .to_string();
            lego.env("HTTPREQ_ENDPOINT", format!("http://{}/acme", daemon.addr))
                .env("HTTPREQ_USERNAME", "alice")
                .env("HTTPREQ_PASSWORD", &key)
                .args(["--dns", "httpreq"]);
        }
        Provider::Rfc2136 => {
            let (name, secret) =
                crate::common::tsig_block_fields(&env.cli_ok(&["tsig", "create", "alice"]));
            let listener = daemon.logged_address("listening on rfc2136=udp+tcp://");
            lego.env("RFC2136_NAMESERVER", listener.to_string())
                .env("RFC2136_TSIG_KEY", name)
                .env("RFC2136_TSIG_SECRET", secret)
                .env("RFC2136_TSIG_ALGORITHM", "hmac-sha256.")
                // lego sets the values of one name one after the other, 60 s apart by
                // default (for servers slow to propagate): this one serves them at once.
                .env("RFC2136_SEQUENCE_INTERVAL", "1")
                .args(["--dns", "rfc2136"]);
        }
    }
    let lego = lego
        .args([
            "--server",
            &directory,
            "--email",
            "alice@example.com",
            "--accept-tos",
        ])
        // Where lego checks that the values are served: our pdns (there is no other), and no
        // wait for every authoritative server of the zone (ns1.dyn.example does not exist).
        .args([
            "--dns.resolvers",
            &format!("127.0.0.1:{}", pdns.port),
            "--dns.disable-cp",
        ])
        .args([
            "--domains",
            "home.dyn.example",
            "--domains",
            "*.home.dyn.example",
        ])
        .arg("--path")
        .arg(&store)
        .arg("run")
        .output()
        .unwrap();
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&lego.stdout),
        String::from_utf8_lossy(&lego.stderr)
    );
    assert!(lego.status.success(), "lego failed:\n{output}");
    println!("lego obtained the certificate in {:?}", started.elapsed());

    let certificate = store.join("certificates/home.dyn.example.crt");
    let names = Command::new("openssl")
        .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
        .arg(&certificate)
        .output()
        .unwrap();
    let names = String::from_utf8_lossy(&names.stdout);
    assert!(
        names.contains("DNS:home.dyn.example") && names.contains("DNS:*.home.dyn.example"),
        "{names}"
    );
    // Both values were set and both cleaned up by lego; none is left to serve.
    if let Provider::HttpReq = provider {
        assert_eq!(
            daemon.log_count("ACME challenge value set"),
            2,
            "{}",
            daemon.log()
        );
        assert_eq!(daemon.log_count("ACME challenge value removed"), 2);
    } else {
        assert_eq!(
            daemon.log_count("RFC 2136 update applied"),
            4,
            "two values set, two removed:\n{}",
            daemon.log()
        );
    }
    let left = backend_call(
        daemon.backend_addr,
        &json!({"method": "lookup", "parameters": {
            "qname": "_acme-challenge.home.dyn.example.", "qtype": "TXT", "zone-id": -1}}),
    );
    assert!(left.body.contains("\"result\":false"), "{}", left.body);
}
