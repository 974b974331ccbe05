//! Issue 31: RFC 2136 updates signed with TSIG, sent by the real `nsupdate` to the service's
//! `update-dns-listen`, answered through a real pdns on the unix connector: what `good` is to
//! `/nic/update`, NOERROR is here (the very next query through pdns sees it), and everything
//! refused changes nothing.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::{self, Pdns, PdnsApiEndpoint, TestEnv, dig, require_tool};

/// Writes the key block `tsig create ARGS` prints to a file; its path and the key's name.
fn create_key(env: &TestEnv, args: &[&str], file: &str) -> (PathBuf, String) {
    let mut command = vec!["tsig", "create"];
    command.extend_from_slice(args);
    let block = env.cli_ok(&command);
    let (name, _) = common::tsig_block_fields(&block);
    let path = env.dir.path().join(file);
    std::fs::write(&path, block).unwrap();
    (path, name)
}

/// Runs `nsupdate` with `key` and `script`; whether it exited 0, and what it said.
fn nsupdate(key: Option<&Path>, script: &str, args: &[&str]) -> (bool, String) {
    let mut command = Command::new("nsupdate");
    command.args(["-t", "10", "-u", "3", "-r", "1"]).args(args);
    if let Some(key) = key {
        command.arg("-k").arg(key);
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

/// Sends "set `host`'s A to `ip`" signed with the key in `key_file` at now + `skew` seconds
/// to `listener` over UDP; the answer's RCODE (NOTAUTH is 9) and its TSIG error (BADTIME is
/// 18).
fn signed_at(
    key_file: &Path,
    listener: std::net::SocketAddr,
    skew: i64,
    host: &str,
    ip: &str,
) -> (u16, u16) {
    let socket = send_signed(key_file, listener, skew, host, ip);
    answer_of(&socket)
}

/// Sends the update of [`signed_at`]; the socket its answer will come to.
fn send_signed(
    key_file: &Path,
    listener: std::net::SocketAddr,
    skew: i64,
    host: &str,
    ip: &str,
) -> std::net::UdpSocket {
    use hickory_proto::dnssec::rdata::tsig::TsigAlgorithm;
    use hickory_proto::dnssec::tsig::TSigner;
    use hickory_proto::op::{Message, OpCode, Query};
    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
    let (name, secret) = key_fields(key_file);
    let secret =
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, secret).unwrap();
    let signer = TSigner::new(
        secret,
        TsigAlgorithm::HmacSha256,
        Name::from_ascii(&name).unwrap(),
        300,
    )
    .unwrap();
    let mut message = Message::new();
    message.set_id(0x5151).set_op_code(OpCode::Update);
    let mut zone = Query::query(Name::from_ascii("dyn.example.").unwrap(), RecordType::SOA);
    zone.set_query_class(DNSClass::IN);
    message.add_query(zone);
    let host = Name::from_ascii(format!("{host}.")).unwrap();
    let mut delete = Record::update0(host.clone(), 0, RecordType::A);
    delete.set_dns_class(DNSClass::ANY);
    message.add_name_server(delete);
    message.add_name_server(Record::from_rdata(
        host,
        60,
        RData::A(A(ip.parse().unwrap())),
    ));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let time = u32::try_from(now.checked_add_signed(skew).unwrap()).unwrap();
    message.finalize(&signer, time).unwrap();
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    socket
        .send_to(&message.to_vec().unwrap(), listener)
        .unwrap();
    socket
}

/// The RCODE and TSIG error of the answer that comes to `socket` (within 10 s).
fn answer_of(socket: &std::net::UdpSocket) -> (u16, u16) {
    use hickory_proto::dnssec::rdata::DNSSECRData;
    use hickory_proto::op::Message;
    use hickory_proto::rr::RData;
    let mut buffer = [0_u8; 4096];
    let length = socket.recv(&mut buffer).unwrap();
    let answer = Message::from_vec(&buffer[..length]).unwrap();
    assert!(
        answer
            .signature()
            .iter()
            .any(|record| matches!(record.data(), RData::DNSSEC(DNSSECRData::TSIG(_)))),
        "the answer carries a TSIG record"
    );
    // The TSIG RDATA ends with: error (2 bytes), other length (2), other data (0, or the
    // 6 bytes of the server's time in a BADTIME answer). hickory keeps the error private.
    let word = |end: usize| u16::from_be_bytes([buffer[end - 2], buffer[end - 1]]);
    let error = if word(length) == 0 {
        word(length - 2)
    } else {
        assert_eq!(word(length - 6), 6, "other data: the server's time");
        word(length - 8)
    };
    (u16::from(answer.response_code()), error)
}

/// The addresses pdns serves for `name` `record_type`.
fn served(pdns: &Pdns, name: &str, record_type: &str) -> Vec<String> {
    dig(pdns.port, name, record_type, &[]).data(record_type)
}

/// Items 1–5 of the issue with `nsupdate` through pdns: set an address (over UDP, and over
/// TCP), the zone found by its SOA query, prerequisites, ACME values, an admin's zone key,
/// and every refusal (another account's host, a mix of allowed and not, a wrong secret, a
/// clock 10 minutes off, an unsigned update) changing nothing.
#[test]
fn nsupdate_changes_what_pdns_serves_and_every_refusal_changes_nothing() {
    for tool in ["pdns_server", "dig", "nsupdate", "faketime"] {
        if !require_tool(tool) {
            return;
        }
    }
    let env = TestEnv::new();
    env.seed();
    env.add_domain("home2.dyn.example", "alice", "A", Some("192.0.2.200"));
    let (alice, alice_name) = create_key(&env, &["alice"], "alice.key");
    let (zone_key, zone_key_name) = create_key(
        &env,
        &[
            "--subtree",
            "lab.dyn.example",
            "--types",
            "A,TXT,CNAME",
            "--name",
            "external-dns",
        ],
        "zone.key",
    );
    let socket = env.dir.path().join("backend.sock");
    let api = PdnsApiEndpoint::new();
    let daemon = env.spawn(&format!(
        "listeners.backend-socket = {socket:?}\nlisteners.update-dns-listen = \"127.0.0.1:0\"\n\
         listeners.metrics-listen = \"127.0.0.1:0\"\n{}",
        api.daemon_config()
    ));
    let listener = daemon.logged_address("listening on rfc2136=udp+tcp://");
    let pdns = Pdns::on_socket(env.dir.path(), &socket, &api, "dyn.example");
    let server = format!("server 127.0.0.1 {}\n", listener.port());
    // Queries to the listener: the zone's SOA at its apex (answer) and beneath it
    // (authority, as a negative answer carries it), REFUSED for anything else.
    let asked = |name: &str, record_type: &str| dig(listener.port(), name, record_type, &[]);
    let apex = asked("dyn.example", "SOA");
    assert_eq!(
        (apex.status.as_str(), apex.data("SOA").len()),
        ("NOERROR", 1)
    );
    let beneath = asked("_acme-challenge.home.dyn.example", "SOA");
    assert_eq!(beneath.status, "NOERROR");
    assert!(
        beneath.answers.is_empty() && beneath.authority.len() == 1,
        "{beneath:?}"
    );
    assert_eq!(asked("home.dyn.example", "A").status, "REFUSED");
    assert_eq!(asked("other.example", "SOA").status, "REFUSED");
    // Cached by pdns: the purge after the update must reach it.
    assert!(served(&pdns, "home.dyn.example", "A").is_empty());

    // ddclient's nsupdate mode: delete the RRset, add the address. No `zone` line: nsupdate
    // finds the zone with an SOA query to the server.
    let (ok, said) = nsupdate(
        Some(&alice),
        &format!(
            "{server}update delete home.dyn.example A\n\
             update add home.dyn.example 60 A 192.0.2.44\nsend\n"
        ),
        &[],
    );
    assert!(ok, "{said}");
    assert_eq!(served(&pdns, "home.dyn.example", "A"), ["192.0.2.44"]);
    let (method, key): (String, Option<String>) = env
        .db()
        .query_row(
            "SELECT auth_method, tsig_key FROM domain_updates ORDER BY id DESC LIMIT 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        (method.as_str(), key.as_deref()),
        ("tsig", Some(alice_name.as_str()))
    );
    let history = env.cli_ok(&["history", "home.dyn.example"]);
    assert!(history.contains(&format!("tsig:{alice_name}")), "{history}");

    // Over TCP (-v), with the zone named.
    let (ok, said) = nsupdate(
        Some(&alice),
        &format!(
            "{server}zone dyn.example\nupdate delete v6.dyn.example AAAA\n\
             update add v6.dyn.example 60 AAAA 2001:db8::44\nsend\n"
        ),
        &["-v"],
    );
    assert!(ok, "{said}");
    assert_eq!(served(&pdns, "v6.dyn.example", "AAAA"), ["2001:db8::44"]);

    let audit = env.audit_count();
    let send = |key: Option<&Path>, script: &str| {
        nsupdate(
            key,
            &format!("{server}zone dyn.example\n{script}send\n"),
            &[],
        )
    };
    let refused = |key: Option<&Path>, script: &str, expect: &str| {
        let (ok, said) = send(key, script);
        assert!(!ok, "{script}: {said}");
        assert!(said.contains(expect), "{script}: wanted {expect}: {said}");
    };
    // Prerequisites: the value-dependent one fails, so does "this name must not exist".
    refused(
        Some(&alice),
        "prereq yxrrset home.dyn.example A 192.0.2.99\nupdate delete home.dyn.example A\n\
         update add home.dyn.example 60 A 192.0.2.45\n",
        "NXRRSET",
    );
    refused(
        Some(&alice),
        "prereq nxdomain home.dyn.example\nupdate add home.dyn.example 60 A 192.0.2.45\n",
        "YXDOMAIN",
    );
    // Another account's host; and a message mixing one of alice's with it (all or nothing).
    refused(
        Some(&alice),
        "update delete home.dyn.example A\nupdate add home.dyn.example 60 A 192.0.2.46\n\
         update delete bob.dyn.example A\nupdate add bob.dyn.example 60 A 192.0.2.46\n",
        "REFUSED",
    );
    // Two addresses for one host; a type an account never changes.
    refused(
        Some(&alice),
        "update add home.dyn.example 60 A 192.0.2.47\nupdate add home.dyn.example 60 A 192.0.2.48\n",
        "REFUSED",
    );
    refused(
        Some(&alice),
        "update add home.dyn.example 60 MX 10 mail.example.\n",
        "REFUSED",
    );
    // Removing a host's only address.
    refused(
        Some(&alice),
        "update delete home2.dyn.example A\n",
        "REFUSED",
    );
    assert_eq!(served(&pdns, "home2.dyn.example", "A"), ["192.0.2.200"]);
    // A wrong secret under the right name; a clock 10 minutes off; no key at all.
    let wrong = env.dir.path().join("wrong.key");
    std::fs::write(
        &wrong,
        format!(
            "key \"{alice_name}\" {{\n\talgorithm hmac-sha256;\n\tsecret \"{}\";\n}};\n",
            "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVowMTIzNDU="
        ),
    )
    .unwrap();
    refused(
        Some(&wrong),
        "update add home.dyn.example 60 A 192.0.2.49\n",
        "BADSIG",
    );
    // The same message signed 10 minutes ago (by hickory: libfaketime cannot move
    // nsupdate's clock): NOTAUTH with the TSIG error BADTIME. The real nsupdate against a
    // server 10 minutes ahead: nsupdate_signing_ten_minutes_off_the_servers_clock_gets_badtime.
    let (rcode, error) = signed_at(&alice, listener, -600, "home.dyn.example", "192.0.2.50");
    assert_eq!((rcode, error), (9, 18), "NOTAUTH, BADTIME");
    let (rcode, _) = signed_at(&alice, listener, 0, "home2.dyn.example", "192.0.2.201");
    assert_eq!(rcode, 0, "the same message on time: NOERROR");
    assert_eq!(served(&pdns, "home2.dyn.example", "A"), ["192.0.2.201"]);
    let audit = audit + 1;
    refused(
        None,
        "update delete home.dyn.example A\nupdate add home.dyn.example 60 A 192.0.2.51\n",
        "REFUSED",
    );
    assert_eq!(
        env.audit_count(),
        audit,
        "no refused message wrote anything"
    );
    assert_eq!(served(&pdns, "home.dyn.example", "A"), ["192.0.2.44"]);
    assert_eq!(served(&pdns, "bob.dyn.example", "A"), Vec::<String>::new());

    // A prerequisite that holds.
    let (ok, said) = nsupdate(
        Some(&alice),
        &format!(
            "{server}zone dyn.example\nprereq yxrrset home.dyn.example A 192.0.2.44\n\
             update delete home.dyn.example A\nupdate add home.dyn.example 60 A 192.0.2.52\nsend\n"
        ),
        &[],
    );
    assert!(ok, "{said}");
    assert_eq!(served(&pdns, "home.dyn.example", "A"), ["192.0.2.52"]);

    // ACME values, as lego and certbot set and clean them.
    let value = "LHDhK3oGRvkiefQnx7OOczTY5Tic_xZ6HcMOc_gmtoM";
    let challenge = "_acme-challenge.home.dyn.example";
    let (ok, said) = nsupdate(
        Some(&alice),
        &format!("{server}zone dyn.example\nupdate add {challenge} 60 TXT \"{value}\"\nsend\n"),
        &[],
    );
    assert!(ok, "{said}");
    assert_eq!(served(&pdns, challenge, "TXT"), [format!("\"{value}\"")]);
    let (ok, said) = nsupdate(
        Some(&alice),
        &format!("{server}zone dyn.example\nupdate delete {challenge} TXT \"{value}\"\nsend\n"),
        &[],
    );
    assert!(ok, "{said}");
    assert!(served(&pdns, challenge, "TXT").is_empty());

    // The subtree key: static records below lab.dyn.example of its types, nothing else.
    let (ok, said) = nsupdate(
        Some(&zone_key),
        &format!(
            "{server}zone dyn.example\nupdate add web.lab.dyn.example 300 A 192.0.2.80\n\
             update add www.lab.dyn.example 300 CNAME web.lab.dyn.example.\n\
             update add web.lab.dyn.example 300 TXT \"heritage=external-dns\"\nsend\n"
        ),
        &[],
    );
    assert!(ok, "{said}");
    assert_eq!(served(&pdns, "web.lab.dyn.example", "A"), ["192.0.2.80"]);
    assert_eq!(
        dig(pdns.port, "www.lab.dyn.example", "A", &[]).data("CNAME"),
        ["web.lab.dyn.example."]
    );
    refused(
        Some(&zone_key),
        "update add home.dyn.example 60 A 192.0.2.81\n",
        "REFUSED",
    );
    refused(
        Some(&zone_key),
        "update add mx.lab.dyn.example 60 MX 10 mail.example.\n",
        "REFUSED",
    );
    let (ok, said) = send(Some(&zone_key), "update delete web.lab.dyn.example\n");
    assert!(ok, "{said}");
    assert!(served(&pdns, "web.lab.dyn.example", "A").is_empty());
    assert!(!zone_key_name.is_empty());

    // The key's use is recorded (to the minute), for `tsig list` and the account pages.
    let listed: serde_json::Value =
        serde_json::from_str(&env.cli_ok(&["tsig", "list", "alice", "--json"])).unwrap();
    assert!(listed[0]["last_used_at"].is_string(), "{listed}");
    // A revoked key is unknown at once.
    env.cli_ok(&["tsig", "revoke", &alice_name]);
    refused(
        Some(&alice),
        "update delete home.dyn.example A\nupdate add home.dyn.example 60 A 192.0.2.53\n",
        "BADKEY",
    );
    assert_eq!(served(&pdns, "home.dyn.example", "A"), ["192.0.2.52"]);
    let metrics = common::send_raw(
        daemon.metrics_addr(),
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .body;
    for (opcode, rcode) in [
        ("update", "NOERROR"),
        ("update", "REFUSED"),
        ("update", "NOTAUTH"),
        ("update", "NXRRSET"),
        ("query", "NOERROR"),
    ] {
        assert!(
            metrics.contains(&format!(
                "certadns_ddns_dns_messages_total{{opcode=\"{opcode}\",rcode=\"{rcode}\"}}"
            )),
            "{opcode} {rcode}:\n{metrics}"
        );
    }
    drop(daemon);
    let _ = common::BIN;
}

/// The name and secret of the key block in `file`.
fn key_fields(file: &Path) -> (String, String) {
    common::tsig_block_fields(&std::fs::read_to_string(file).unwrap())
}

/// The daemon with the RFC 2136 listener and a pdns on its unix socket, for the clients'
/// tests: the seeded store, alice's TSIG key (its file), the daemon, the listener, pdns.
fn started(extra: &str) -> (TestEnv, PathBuf, common::Daemon, std::net::SocketAddr, Pdns) {
    let env = TestEnv::new();
    env.seed();
    let (key, _) = create_key(&env, &["alice"], "alice.key");
    let socket = env.dir.path().join("backend.sock");
    let api = PdnsApiEndpoint::new();
    let daemon = env.spawn(&format!(
        "listeners.backend-socket = {socket:?}\nlisteners.update-dns-listen = \"127.0.0.1:0\"\n\
         {extra}\n{}",
        api.daemon_config()
    ));
    let listener = daemon.logged_address("listening on rfc2136=udp+tcp://");
    let pdns = Pdns::on_socket(env.dir.path(), &socket, &api, "dyn.example");
    (env, key, daemon, listener, pdns)
}

/// Issue 31, item 6: ddclient's `nsupdate` protocol (it pipes "delete the RRset, add the
/// address" to `nsupdate -k`) sets alice's host, served by pdns at once; a host of bob's is
/// refused and ddclient says so.
#[test]
fn ddclient_sets_an_address_with_its_nsupdate_protocol() {
    for tool in ["pdns_server", "dig", "nsupdate", "ddclient"] {
        if !require_tool(tool) {
            return;
        }
    }
    let (env, key, _daemon, listener, pdns) = started("");
    let run = |host: &str| {
        let dir = tempfile::tempdir_in(env.dir.path()).unwrap();
        let config = dir.path().join("ddclient.conf");
        std::fs::write(
            &config,
            format!(
                "use=ip, ip=192.0.2.60\nprotocol=nsupdate\nserver={listener}\n\
                 login=/usr/bin/nsupdate\npassword={}\nzone=dyn.example\nttl=60\n{host}\n",
                key.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&config, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        let output = Command::new("ddclient")
            .args(["-daemon=0", "-foreground", "-noquiet", "-verbose"])
            .arg(format!("-file={}", config.display()))
            .arg(format!("-cache={}", dir.path().join("cache").display()))
            .output()
            .unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    };
    let said = run("home.dyn.example");
    assert!(
        said.contains("SUCCESS:  updating home.dyn.example"),
        "{said}"
    );
    assert_eq!(served(&pdns, "home.dyn.example", "A"), ["192.0.2.60"]);
    let said = run("bob.dyn.example");
    assert!(
        said.contains("FAILED:   updating bob.dyn.example"),
        "{said}"
    );
    assert!(served(&pdns, "bob.dyn.example", "A").is_empty());
}

/// Issue 31, item 6: certbot with `python3-certbot-dns-rfc2136` obtains a certificate for
/// alice's host from pebble: it finds the zone with signed SOA queries to the listener, sets
/// the value, pebble reads it through pdns, certbot removes it.
#[test]
fn certbot_gets_a_certificate_through_rfc2136() {
    for tool in ["pdns_server", "dig", "certbot", "pebble", "openssl"] {
        if !require_tool(tool) {
            return;
        }
    }
    let (env, key, daemon, listener, pdns) = started("");
    let (_pebble, directory, ca) = crate::acme_lego::start_pebble(env.dir.path(), pdns.port);
    let (name, secret) = key_fields(&key);
    let credentials = env.dir.path().join("rfc2136.ini");
    std::fs::write(
        &credentials,
        format!(
            "dns_rfc2136_server = {}\ndns_rfc2136_port = {}\ndns_rfc2136_name = {name}\n\
             dns_rfc2136_secret = {secret}\ndns_rfc2136_algorithm = HMAC-SHA256\n",
            listener.ip(),
            listener.port()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &credentials,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let base = env.dir.path().join("certbot");
    let output = Command::new("certbot")
        .env("REQUESTS_CA_BUNDLE", &ca)
        .args([
            "certonly",
            "--non-interactive",
            "--agree-tos",
            "--email",
            "alice@example.com",
            "--no-eff-email",
            "--server",
            &directory,
            "--dns-rfc2136",
            "--dns-rfc2136-propagation-seconds",
            "1",
            "-d",
            "home.dyn.example",
        ])
        .arg("--dns-rfc2136-credentials")
        .arg(&credentials)
        .arg("--config-dir")
        .arg(base.join("config"))
        .arg("--work-dir")
        .arg(base.join("work"))
        .arg("--logs-dir")
        .arg(base.join("logs"))
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "certbot failed:\n{said}");
    let certificate = base.join("config/live/home.dyn.example/cert.pem");
    let names = Command::new("openssl")
        .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
        .arg(&certificate)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&names.stdout).contains("DNS:home.dyn.example"),
        "{names:?}"
    );
    assert_eq!(
        daemon.log_count("RFC 2136 update applied"),
        2,
        "the value set, then removed:\n{}",
        daemon.log()
    );
    assert!(served(&pdns, "_acme-challenge.home.dyn.example", "TXT").is_empty());
}

/// Issue 31, item 6: Kea's DHCP-DDNS server (`kea-dhcp-ddns`), driven without a DHCP
/// network: NameChangeRequests sent to it directly (its UDP listener, JSON), as kea-dhcp4
/// sends them. With a subtree key of types A and DHCID, its add (RFC 4703: "the name must not
/// exist", then the A and the DHCID) is served by pdns; a second client's add for the same
/// name is refused by the name's DHCID, as RFC 4703 wants; its remove (the A whose DHCID
/// matches, then the DHCID) leaves nothing.
#[test]
fn kea_dhcp_ddns_adds_and_removes_a_lease_name() {
    for tool in ["pdns_server", "dig", "kea-dhcp-ddns"] {
        if !require_tool(tool) {
            return;
        }
    }
    let (env, _, daemon, listener, pdns) = started("");
    let (key, key_name) = create_key(
        &env,
        &[
            "--subtree",
            "lab.dyn.example",
            "--types",
            "A,AAAA,DHCID",
            "--name",
            "kea",
        ],
        "kea.key",
    );
    let (_, secret) = key_fields(&key);
    let ncr_port = common::free_port();
    let dir = env.dir.path().join("kea");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("kea-dhcp-ddns.conf");
    std::fs::write(
        &config,
        serde_json::json!({"DhcpDdns": {
            "ip-address": "127.0.0.1",
            "port": ncr_port,
            "dns-server-timeout": 2000,
            "ncr-protocol": "UDP",
            "ncr-format": "JSON",
            "tsig-keys": [{"name": key_name, "algorithm": "HMAC-SHA256", "secret": secret}],
            "forward-ddns": {"ddns-domains": [{
                "name": "dyn.example.",
                "key-name": key_name,
                "dns-servers": [{"ip-address": "127.0.0.1", "port": listener.port()}]
            }]},
            "reverse-ddns": {"ddns-domains": []},
            "loggers": [{
                "name": "kea-dhcp-ddns",
                "output_options": [{"output": dir.join("kea.log").display().to_string()}],
                "severity": "DEBUG",
                "debuglevel": 50
            }]
        }})
        .to_string(),
    )
    .unwrap();
    let mut kea = Command::new("kea-dhcp-ddns")
        .arg("-c")
        .arg(&config)
        .env("KEA_PIDFILE_DIR", &dir)
        .env("KEA_LOCKFILE_DIR", "none")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let log = || std::fs::read_to_string(dir.join("kea.log")).unwrap_or_default();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !log().contains("DHCP_DDNS_STARTED") {
        assert!(
            std::time::Instant::now() < deadline,
            "kea never started:\n{}",
            log()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let ncr = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    // What kea-dhcp4 sends: a two-byte length, then the request in JSON.
    let send = |change: u8, ip: &str, dhcid: &str| {
        let body = serde_json::json!({
            "change-type": change,
            "forward-change": true,
            "reverse-change": false,
            "fqdn": "printer.lab.dyn.example.",
            "ip-address": ip,
            "dhcid": dhcid,
            "lease-expires-on": "20301231235959",
            "lease-length": 3600,
            "use-conflict-resolution": true
        })
        .to_string();
        let mut datagram = u16::try_from(body.len()).unwrap().to_be_bytes().to_vec();
        datagram.extend_from_slice(body.as_bytes());
        ncr.send_to(&datagram, ("127.0.0.1", ncr_port)).unwrap();
    };
    // Identifier type 2 (client id), digest type 1 (SHA-256), a digest: RFC 4701's layout.
    let printer = format!("000201{}", "ab".repeat(32));
    let other = format!("000201{}", "cd".repeat(32));
    let wait_for = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !done() {
            assert!(
                std::time::Instant::now() < deadline,
                "{what}:\n{}\n{}",
                log(),
                daemon.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    send(0, "192.0.2.90", &printer);
    wait_for("kea's add", &|| {
        served(&pdns, "printer.lab.dyn.example", "A") == ["192.0.2.90"]
    });
    assert_eq!(
        dig(pdns.port, "printer.lab.dyn.example", "TYPE49", &[])
            .answers
            .len(),
        1,
        "the DHCID beside it"
    );
    // Another client, same name: its DHCID does not match; kea gives up, nothing changes.
    send(0, "192.0.2.91", &other);
    wait_for("kea's refused add", &|| {
        log().contains("DHCP_DDNS_ADD_FAILED")
    });
    assert!(
        log().contains("DHCP_DDNS_FORWARD_REPLACE_REJECTED"),
        "refused by the DHCID prerequisite:\n{}",
        log()
    );
    assert_eq!(
        served(&pdns, "printer.lab.dyn.example", "A"),
        ["192.0.2.90"]
    );
    // The lease ends.
    send(1, "192.0.2.90", &printer);
    wait_for("kea's remove", &|| {
        log().contains("DHCP_DDNS_REMOVE_SUCCEEDED")
    });
    assert_eq!(
        dig(pdns.port, "printer.lab.dyn.example", "ANY", &[]).status,
        "NXDOMAIN",
        "the A and the DHCID gone"
    );
    let _ = kea.kill();
    let _ = kea.wait();
}

/// A restart DNS clients never see: the listener's UDP socket and TCP listener go to
/// systemd's fd store (as every listener does), so an update sent while no process runs
/// waits in the socket's buffer and is answered by the next process, NOERROR and applied.
#[test]
fn an_update_sent_during_a_restart_is_answered_by_the_next_process() {
    use common::service_manager::ServiceManager;
    let env = TestEnv::new();
    env.seed();
    let (key, _) = create_key(&env, &["alice"], "alice.key");
    let port = common::free_port();
    env.write_config(&format!(
        "listeners.update-dns-listen = \"127.0.0.1:{port}\"\n"
    ));
    let manager = ServiceManager::new(env.dir.path());
    let config = env.config_path();
    let start = || manager.serve(&config);
    let listener: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut daemon = start();
    assert_eq!(
        signed_at(&key, listener, 0, "home.dyn.example", "192.0.2.31"),
        (0, 0)
    );
    manager.wait_stored(
        |names| {
            names
                .iter()
                .any(|name| name.starts_with("listen-dns-update-udp"))
                && names
                    .iter()
                    .any(|name| name.starts_with("listen-dns-update-tcp"))
        },
        std::time::Duration::from_secs(10),
    );
    assert_eq!(daemon.terminate(), Some(0));
    // No process now: the datagram waits in the stored socket.
    let waiting = send_signed(&key, listener, 0, "home.dyn.example", "192.0.2.32");
    daemon = start();
    assert_eq!(answer_of(&waiting), (0, 0), "answered by the next process");
    assert_eq!(
        env.stored_ip("home.dyn.example", "A").as_deref(),
        Some("192.0.2.32")
    );
    drop(daemon);
}

/// The listener's bounds, from a hostile client: garbage is answered FORMERR (or not at all
/// when it has no header) and the process serves on; one client's flood over UDP gets at most
/// its burst answered; a TCP connection that sends nothing, or less than the length it
/// announced, is closed after `header-read-timeout-secs`.
#[test]
fn the_listener_holds_its_bounds_against_a_hostile_client() {
    let env = TestEnv::new();
    env.seed();
    let (key, _) = create_key(&env, &["alice"], "alice.key");
    let daemon = env.spawn(
        "listeners.update-dns-listen = \"127.0.0.1:0\"\nlisteners.update-dns-pace = 5\n\
         listeners.header-read-timeout-secs = 1\n",
    );
    let listener = daemon.logged_address("listening on rfc2136=udp+tcp://");
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(std::time::Duration::from_millis(500)))
        .unwrap();
    let mut buffer = [0_u8; 4096];
    // Garbage with a header: FORMERR (1), its ID kept. Without one: no answer.
    socket
        .send_to(b"\x12\x34\x28\x00\x00\x05garbage-garbage", listener)
        .unwrap();
    let length = socket
        .recv(&mut buffer)
        .expect("an answer to a readable header");
    assert_eq!(&buffer[..2], b"\x12\x34");
    assert_eq!(buffer[3] & 0x0f, 1, "FORMERR: {:?}", &buffer[..length]);
    socket.send_to(b"\x01", listener).unwrap();
    assert!(
        socket.recv(&mut buffer).is_err(),
        "nothing to answer a byte"
    );
    // A flood: pace 5 a second, burst 10; what was left of the burst is all that is answered.
    for _ in 0..100 {
        socket
            .send_to(b"\x12\x34\x28\x00\x00\x05garbage-garbage", listener)
            .unwrap();
    }
    let mut answered = 0;
    while socket.recv(&mut buffer).is_ok() {
        answered += 1;
    }
    assert!(
        answered <= 10,
        "{answered} answers to a flood over the pace"
    );
    // TCP: silent, then short of its announced length; both closed by the server.
    for sent in [&b""[..], &b"\x01\x00abc"[..]] {
        use std::io::{Read as _, Write as _};
        let mut stream = std::net::TcpStream::connect(listener).unwrap();
        stream.write_all(sent).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let started = std::time::Instant::now();
        let mut rest = Vec::new();
        let read = stream.read_to_end(&mut rest);
        assert!(
            read.is_ok() && rest.is_empty(),
            "closed without an answer: {read:?} {rest:?}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }
    // Still serving: the two timeouts above (2 s) gave the client's pace its burst back.
    assert_eq!(
        signed_at(&key, listener, 0, "home.dyn.example", "192.0.2.77"),
        (0, 0)
    );
    assert_eq!(
        env.stored_ip("home.dyn.example", "A").as_deref(),
        Some("192.0.2.77")
    );
}

/// Issue 31, item 6, "expired time" with the real nsupdate: libfaketime cannot move
/// nsupdate's clock (it hangs in libisc's start-up), so the server's is moved instead: the
/// daemon runs 10 minutes ahead (`faketime`, the monotonic clock left alone), and nsupdate's
/// update, signed by the real clock, is answered BADTIME, which nsupdate reports; nothing
/// changes.
#[test]
fn nsupdate_signing_ten_minutes_off_the_servers_clock_gets_badtime() {
    for tool in ["nsupdate", "faketime"] {
        if !require_tool(tool) {
            return;
        }
    }
    let env = TestEnv::new();
    env.seed();
    let (key, _) = create_key(&env, &["alice"], "alice.key");
    env.write_config("listeners.update-dns-listen = \"127.0.0.1:0\"\n");
    let config = env.config_path();
    let mut command = Command::new("faketime");
    command
        .args(["-f", "+600s", common::BIN, "serve", "--config"])
        .arg(&config)
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
    let daemon = common::Daemon::from_command(command);
    let listener = daemon.logged_address("listening on rfc2136=udp+tcp://");
    let audit = env.audit_count();
    let (ok, said) = nsupdate(
        Some(&key),
        &format!(
            "server 127.0.0.1 {}\nzone dyn.example\nupdate delete home.dyn.example A\n\
             update add home.dyn.example 60 A 192.0.2.90\nsend\n",
            listener.port()
        ),
        &[],
    );
    assert!(!ok, "{said}");
    assert!(said.contains("BADTIME"), "{said}");
    assert_eq!(env.audit_count(), audit);
    assert_eq!(env.stored_ip("home.dyn.example", "A"), None);
}
