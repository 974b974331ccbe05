//! Test harness: a throw-away database, the real binary, and a raw HTTP/1.1 client.
//!
//! [`TestEnv`] owns a temporary directory with the database and config. [`Daemon`] runs
//! `certadns-ddns serve` on a free loopback port (port 0), learns the port from its
//! `listening on http=` log line, and on drop stops it and, when the test failed, prints its
//! log. The HTTP client is hand-rolled on purpose: tests check the bytes on the wire
//! (`Content-Length`, no chunking) and send requests no well-behaved client library would.

#![allow(dead_code, unreachable_pub, clippy::print_stdout)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;

pub mod delay_proxy;
pub mod service_manager;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_certadns-ddns");

/// The password every seeded user has: with a colon and an ampersand, as real ones do.
pub const PASSWORD: &str = "s3cr:et&pass word";

/// A temporary directory holding a database.
pub struct TestEnv {
    /// Removed on drop.
    pub dir: tempfile::TempDir,
    /// The database file.
    pub db: PathBuf,
}

impl TestEnv {
    /// A new environment with an empty database (`certadns-ddns init`, as an operator's first
    /// step; the other admin commands never create one).
    pub fn new() -> Self {
        let env = Self::without_database();
        env.cli_ok(&["init"]);
        env
    }

    /// A new environment with no database file yet.
    pub fn without_database() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let db = dir.path().join("certadns.db");
        Self { dir, db }
    }

    /// The config file [`TestEnv::spawn`] writes for the daemon.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    /// Runs the CLI with `--db` set (and, once the daemon's config exists, `--config`, so
    /// changes purge pdns's caches as an admin's would), and `stdin` as standard input.
    pub fn cli_with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        let mut command = Command::new(BIN);
        if self.config_path().exists() {
            command.arg("--config").arg(self.config_path());
        }
        let mut child = command
            .arg("--db")
            .arg(&self.db)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the CLI");
        let written = child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(stdin.as_bytes());
        // A CLI that refuses its arguments exits without reading its input: a broken pipe
        // here is that refusal, which the caller checks in the output.
        if let Err(error) = written {
            assert_eq!(
                error.kind(),
                std::io::ErrorKind::BrokenPipe,
                "write stdin: {error}"
            );
        }
        child.wait_with_output().expect("CLI runs")
    }

    /// Runs the CLI with `--db` set and empty standard input.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_with_stdin(args, "")
    }

    /// Runs the CLI with `--db` only (no config: no pdns purges), and returns its stdout.
    pub fn cli_ok_without_config(&self, args: &[&str]) -> String {
        let output = Command::new(BIN)
            .arg("--db")
            .arg(&self.db)
            .args(args)
            .output()
            .expect("CLI runs");
        output_ok(args, output)
    }

    /// Runs the CLI and returns its stdout; panics with its stderr if it failed.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        output_ok(args, self.cli(args))
    }

    /// Like [`TestEnv::cli_ok`] with standard input.
    pub fn cli_ok_with_stdin(&self, args: &[&str], stdin: &str) -> String {
        output_ok(args, self.cli_with_stdin(args, stdin))
    }

    /// Adds a user with the shared test [`PASSWORD`] on `plan`.
    pub fn add_user(&self, name: &str, email: &str, plan: &str) {
        self.add_user_with_password(name, email, plan, PASSWORD);
    }

    /// Adds a user with `password` on `plan`.
    pub fn add_user_with_password(&self, name: &str, email: &str, plan: &str, password: &str) {
        self.cli_ok_with_stdin(
            &[
                "user",
                "add",
                name,
                "--email",
                email,
                "--plan",
                plan,
                "--password-stdin",
            ],
            password,
        );
    }

    /// Adds a DDNS domain of `owner`, of `record_type`, with a first address if given.
    pub fn add_domain(&self, fqdn: &str, owner: &str, record_type: &str, ip: Option<&str>) {
        let mut args = vec![
            "domain",
            "add",
            fqdn,
            "--owner",
            owner,
            "--type",
            record_type,
        ];
        if let Some(ip) = ip {
            args.extend(["--ip", ip]);
        }
        self.cli_ok(&args);
    }

    /// Seeds the common fixture:
    /// * zone `dyn.example` served by `ns1.dyn.example`;
    /// * `alice` (plus plan) owning `home.dyn.example` A and `v6.dyn.example` AAAA;
    /// * `bob` (free plan) owning `bob.dyn.example` A;
    /// * an API key of alice with scope `domains:update`.
    pub fn seed(&self) -> Seed {
        // A database moved or removed since `new` is made again (init changes nothing else).
        self.cli_ok(&["init"]);
        self.cli_ok(&["zone", "add", "dyn.example", "--ns", "ns1.dyn.example"]);
        self.add_user("alice", "Alice@Example.com", "plus");
        self.add_user("bob", "bob@example.com", "free");
        self.add_domain("home.dyn.example", "alice", "A", None);
        self.add_domain("v6.dyn.example", "alice", "AAAA", None);
        self.add_domain("bob.dyn.example", "bob", "A", None);
        let alice_key = self.cli_ok(&["key", "create", "alice"]).trim().to_string();
        Seed { alice_key }
    }

    /// Starts the daemon with this database, on a free loopback port, with `extra_config`
    /// appended to its config file.
    ///
    /// Tests update the same host many times a second on purpose, so the abuse guards are off
    /// unless `extra_config` sets their keys.
    pub fn spawn(&self, extra_config: &str) -> Daemon {
        self.spawn_with_env(extra_config, &[])
    }

    /// [`TestEnv::spawn`] with extra environment variables for the daemon.
    pub fn spawn_with_env(&self, extra_config: &str, envs: &[(&str, &std::ffi::OsStr)]) -> Daemon {
        self.write_config(extra_config);
        let config = self.config_path();
        Daemon::spawn_with_env(
            &["serve", "--config", config.to_str().expect("UTF-8 path")],
            envs,
        )
    }

    /// Writes the config file [`TestEnv::spawn`] runs the daemon with: loopback listeners on
    /// free ports, debug logs, the guards off, then `extra_config` (whose keys win). Written
    /// again while the daemon runs, it is what SIGHUP reads.
    pub fn write_config(&self, extra_config: &str) {
        let config = self.config_path();
        let mut text = String::new();
        let database = format!("{:?}", self.db);
        for (key, value) in [
            ("store.database", database.as_str()),
            ("listeners.listen", "\"127.0.0.1:0\""),
            ("listeners.backend-listen", "\"127.0.0.1:0\""),
            ("log-level", "\"debug\""),
            ("limits.abuse-detection", "false"),
            ("limits.auth-failure-limit", "0"),
        ] {
            let overridden = extra_config
                .lines()
                .any(|line| line.trim_start().starts_with(&format!("{key} ")));
            if !overridden {
                text.push_str(&format!("{key} = {value}\n"));
            }
        }
        // Last, as it may end with tables ([[pdns.api]]) that top-level keys cannot follow.
        text.push_str(extra_config);
        text.push('\n');
        // Whole or not at all, as an operator's editor or config management writes it.
        let next = config.with_extension("toml.new");
        std::fs::write(&next, text).expect("write config");
        std::fs::rename(&next, &config).expect("put the config in place");
    }

    /// A read-only connection to the database, for assertions.
    pub fn db(&self) -> rusqlite::Connection {
        let conn = rusqlite::Connection::open_with_flags(
            &self.db,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("open the database");
        conn.busy_timeout(Duration::from_secs(5))
            .expect("busy timeout");
        conn
    }

    /// The current address of the `record_type` domain `fqdn`.
    pub fn stored_ip(&self, fqdn: &str, record_type: &str) -> Option<String> {
        self.db()
            .query_row(
                "SELECT ip FROM domains WHERE fqdn = ?1 AND record_type = ?2",
                [fqdn, record_type],
                |row| row.get(0),
            )
            .expect("domain exists")
    }

    /// How many audit rows there are.
    pub fn audit_count(&self) -> i64 {
        self.db()
            .query_row("SELECT count(*) FROM domain_updates", [], |row| row.get(0))
            .expect("count")
    }
}

/// What [`TestEnv::seed`] made that tests need.
pub struct Seed {
    /// alice's API key.
    pub alice_key: String,
}

/// Stdout of a successful command; panics with the command's stderr otherwise.
fn output_ok(args: &[&str], output: Output) -> String {
    assert!(
        output.status.success(),
        "`certadns-ddns {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

/// A running `certadns-ddns serve`.
pub struct Daemon {
    /// The process.
    child: Child,
    /// Address of the update endpoints.
    pub addr: SocketAddr,
    /// Address of the PowerDNS backend's HTTP connector.
    pub backend_addr: SocketAddr,
    /// Everything the daemon logged so far.
    log: Arc<Mutex<String>>,
}

impl Daemon {
    /// Starts the binary with `args` and waits for its `listening on http=` and
    /// `listening on backend=` lines.
    pub fn spawn(args: &[&str]) -> Self {
        Self::spawn_with_env(args, &[])
    }

    /// [`Daemon::spawn`] with extra environment variables (a fault-injection shim's).
    pub fn spawn_with_env(args: &[&str], envs: &[(&str, &std::ffi::OsStr)]) -> Self {
        let mut command = Command::new(BIN);
        command.args(args).envs(envs.iter().copied());
        Self::from_command(command)
    }

    /// Starts `command` (the binary, or a wrapper that execs it) as [`Daemon::spawn`] does.
    pub fn from_command(mut command: Command) -> Self {
        let mut child = command
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the daemon");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (found, addr) = std::sync::mpsc::channel();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                for marker in ["listening on http=", "listening on backend=http://"] {
                    if let Some(rest) = line.split(marker).nth(1) {
                        // Text lines end the address with a space, JSON ones with a quote.
                        let addr = rest
                            .split(|c: char| c.is_whitespace() || c == '"')
                            .next()
                            .unwrap_or_default();
                        let _ = found.send(addr.trim_end_matches("/dns").to_string());
                    }
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let mut addresses = Vec::new();
        while addresses.len() < 2 {
            match addr.recv_timeout(Duration::from_secs(20)) {
                Ok(addr) => addresses.push(
                    addr.parse::<SocketAddr>()
                        .expect("a socket address in the log"),
                ),
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    std::thread::sleep(Duration::from_millis(100));
                    panic!("daemon did not start:\n{}", log.lock().unwrap());
                }
            }
        }
        Self {
            child,
            addr: addresses[0],
            backend_addr: addresses[1],
            log,
        }
    }

    /// What the daemon logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits (bounded) until the log contains `needle`.
    pub fn wait_for_log(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.log().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "the daemon never logged {needle:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// How many times the log contains `needle` so far.
    pub fn log_count(&self, needle: &str) -> usize {
        self.log().matches(needle).count()
    }

    /// Waits (bounded) until the log contains `needle` more than `seen` times.
    pub fn wait_for_log_after(&self, needle: &str, seen: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.log_count(needle) <= seen {
            assert!(
                Instant::now() < deadline,
                "the daemon never logged {needle:?} again (seen {seen} times)"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends `signal` to the daemon.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("pid fits i32"));
        nix::sys::signal::kill(pid, signal).expect("send the signal");
    }

    /// The address the daemon logged after `marker` (e.g. `listening on backend=tcp://`),
    /// waiting (bounded) for the line.
    pub fn logged_address(&self, marker: &str) -> SocketAddr {
        self.wait_for_log(marker);
        let log = self.log();
        let rest = log.split(marker).nth(1).expect("the marker is logged");
        rest.split_whitespace()
            .next()
            .and_then(|address| address.parse().ok())
            .unwrap_or_else(|| panic!("no address after {marker:?} in:\n{log}"))
    }

    /// The metrics listener (`metrics-listen`), once logged.
    pub fn metrics_addr(&self) -> SocketAddr {
        let marker = "listening on metrics=http://";
        self.wait_for_log(marker);
        let log = self.log();
        let rest = log.split(marker).nth(1).expect("the marker is logged");
        rest.split('/')
            .next()
            .and_then(|address| address.parse().ok())
            .unwrap_or_else(|| panic!("no metrics address in:\n{log}"))
    }

    /// The line-JSON TCP listener for relays (`backend-tcp-listen`), once logged.
    pub fn tcp_backend_addr(&self) -> SocketAddr {
        self.logged_address("listening on backend=tcp://")
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits (bounded) for the exit; returns the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("pid fits i32"));
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("send SIGTERM");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "daemon did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// How the process ended, if it has.
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().expect("wait")
    }

    /// Waits (bounded) for the process to exit by itself; its exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code();
            }
            assert!(Instant::now() < deadline, "the daemon did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// GET `target` (path and query) with extra `headers`.
    pub fn get(&self, target: &str, headers: &[(&str, &str)]) -> HttpResponse {
        self.request("GET", target, headers, None)
    }

    /// POST a form `body` to `target`.
    pub fn post_form(&self, target: &str, headers: &[(&str, &str)], body: &str) -> HttpResponse {
        self.request("POST", target, headers, Some(body))
    }

    /// Sends one HTTP/1.1 request with `Connection: close` and reads the answer.
    pub fn request(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> HttpResponse {
        let mut raw = format!(
            "{method} {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.addr
        );
        for (name, value) in headers {
            raw.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some(body) = body {
            raw.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
            raw.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        } else {
            raw.push_str("\r\n");
        }
        send_raw(self.addr, raw.as_bytes())
    }

    /// `GET /nic/update?{query}` with `Authorization: Bearer {key}`.
    pub fn update_bearer(&self, key: &str, query: &str) -> HttpResponse {
        self.get(
            &format!("/nic/update?{query}"),
            &[("Authorization", &format!("Bearer {key}"))],
        )
    }

    /// `GET /nic/update?{query}` with Basic credentials.
    pub fn update_basic(&self, login: &str, password: &str, query: &str) -> HttpResponse {
        self.get(
            &format!("/nic/update?{query}"),
            &[("Authorization", &basic(login, password))],
        )
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            println!("---- daemon log ----\n{}", self.log());
        }
    }
}

/// An `Authorization: Basic` value.
pub fn basic(login: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{login}:{password}"))
    )
}

/// An HTTP response as read off the wire.
#[derive(Debug)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Header names (lower case) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: String,
}

impl HttpResponse {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Asserts status and body together, showing both on failure.
    #[track_caller]
    pub fn assert(&self, status: u16, body: &str) {
        assert_eq!(
            (self.status, self.body.as_str()),
            (status, body),
            "response: {self:?}"
        );
    }
}

/// A TCP connection to `target` from the loopback address `source` (127.0.0.2, ...): a
/// distinct client, as the service counts clients. Reads time out after 30 s.
pub fn connect_from(source: [u8; 4], target: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.bind(&SocketAddr::from((source, 0)).into())?;
    socket.connect(&target.into())?;
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    Ok(stream)
}

/// Sends one remote-backend request object over a fresh unix connection; returns the reply.
pub fn unix_call(socket: &std::path::Path, request: &serde_json::Value) -> serde_json::Value {
    let stream = std::os::unix::net::UnixStream::connect(socket).expect("connect the socket");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut writer = stream.try_clone().expect("clone the socket");
    writeln!(writer, "{request}").expect("send the request");
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .expect("read the reply");
    serde_json::from_str(&line).expect("a JSON reply")
}

/// Writes `raw` to a new connection and reads the whole answer (until the server closes).
pub fn send_raw(addr: SocketAddr, raw: &[u8]) -> HttpResponse {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    // The server may answer and close before reading everything (e.g. an oversized head).
    let _ = stream.write_all(raw);
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes);
    parse_response(&bytes)
}

/// Parses one HTTP/1.1 response framed by `Content-Length`, checking the framing.
pub fn parse_response(bytes: &[u8]) -> HttpResponse {
    let text = String::from_utf8_lossy(bytes);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete response head in {text:?}"));
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    let response = HttpResponse {
        status,
        headers,
        body: body.to_string(),
    };
    assert_eq!(response.header("transfer-encoding"), None, "never chunked");
    let length: usize = response
        .header("content-length")
        .expect("Content-Length always set")
        .parse()
        .expect("numeric Content-Length");
    assert_eq!(
        length,
        response.body.len(),
        "Content-Length frames the body exactly"
    );
    response
}

/// One remote-backend call over the HTTP connector, as pdns sends it (`post_json`), on a new
/// connection.
pub fn backend_call(backend: SocketAddr, request: &serde_json::Value) -> HttpResponse {
    let body = request.to_string();
    send_raw(
        backend,
        format!(
            "POST /dns HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: text/javascript\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
}

/// The value of the metric sample that starts with `name_and_labels` in the text format.
pub fn metric_sample(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name_and_labels)?.strip_prefix(' '))
        .and_then(|value| value.parse().ok())
}

/// The contents of the `qtype` records served at `name`, as pdns's HTTP connector gets them
/// from `backend` (a `lookup` call), sorted.
pub fn backend_contents(backend: SocketAddr, name: &str, qtype: &str) -> Vec<String> {
    let answer = backend_call(
        backend,
        &serde_json::json!({"method": "lookup", "parameters": {
            "qname": format!("{name}."), "qtype": qtype, "zone-id": -1}}),
    );
    let reply: serde_json::Value = serde_json::from_str(&answer.body).expect("a JSON reply");
    let mut contents: Vec<String> = reply["result"]
        .as_array()
        .map(|records| {
            records
                .iter()
                .map(|record| record["content"].as_str().expect("content").to_string())
                .collect()
        })
        .unwrap_or_default();
    contents.sort();
    contents
}

/// Whether an external tool needed by end-to-end tests is on PATH. When it is missing the test
/// is skipped with a message, unless `REQUIRE_E2E=1` (CI sets it), which makes it a failure.
pub fn require_tool(name: &str) -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(name).is_file()));
    if !found {
        skip(&format!("{name} not found (.ci/run lists the packages)"));
    }
    found
}

/// Says why a test passes without running: a failure instead with `REQUIRE_E2E=1` (CI).
pub fn skip(why: &str) {
    assert!(
        std::env::var("REQUIRE_E2E").as_deref() != Ok("1"),
        "{why}, and REQUIRE_E2E=1"
    );
    println!("skipping: {why}");
}

/// A loopback port that is free for both UDP and TCP right now.
pub fn free_port() -> u16 {
    loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind UDP");
        let port = udp.local_addr().expect("local address").port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// One resource record from dig's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigRecord {
    /// Owner name as printed (with the final dot).
    pub name: String,
    /// TTL.
    pub ttl: u32,
    /// Type.
    pub record_type: String,
    /// Data as printed.
    pub data: String,
}

/// What dig saw.
#[derive(Debug, Clone)]
pub struct DigAnswer {
    /// Response code: NOERROR, NXDOMAIN, REFUSED, SERVFAIL...
    pub status: String,
    /// Answer section.
    pub answers: Vec<DigRecord>,
    /// Authority section.
    pub authority: Vec<DigRecord>,
}

impl DigAnswer {
    /// The data of the answers of `record_type`.
    pub fn data(&self, record_type: &str) -> Vec<String> {
        self.answers
            .iter()
            .filter(|record| record.record_type == record_type)
            .map(|record| record.data.clone())
            .collect()
    }
}

/// Runs `dig @127.0.0.1 -p PORT +norec NAME TYPE` (plus `extra` options) and parses it.
pub fn dig(port: u16, name: &str, record_type: &str, extra: &[&str]) -> DigAnswer {
    let output = Command::new("dig")
        .args([
            "@127.0.0.1",
            "-p",
            &port.to_string(),
            "+norec",
            "+time=3",
            "+tries=1",
        ])
        .args(["+noall", "+comments", "+answer", "+authority"])
        .args(extra)
        .args([name, record_type])
        .output()
        .expect("run dig");
    let text = String::from_utf8_lossy(&output.stdout);
    let status = text
        .split("status: ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or("NO-ANSWER")
        .to_string();
    let mut answer = DigAnswer {
        status,
        answers: Vec::new(),
        authority: Vec::new(),
    };
    let mut section = "";
    for line in text.lines() {
        if line.starts_with(";; ANSWER SECTION") {
            section = "answer";
        } else if line.starts_with(";; AUTHORITY SECTION") {
            section = "authority";
        } else if line.starts_with(';') || line.trim().is_empty() {
            if line.starts_with(";;") && !line.contains("SECTION") {
                section = "";
            }
        } else {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() >= 5 && fields[2] == "IN" {
                let record = DigRecord {
                    name: fields[0].to_string(),
                    ttl: fields[1].parse().unwrap_or(0),
                    record_type: fields[3].to_string(),
                    data: fields[4..].join(" "),
                };
                match section {
                    "authority" => answer.authority.push(record),
                    _ => answer.answers.push(record),
                }
            }
        }
    }
    answer
}

/// A running `pdns_server` on a free loopback port, configured from a `pdns-conf/` file.
pub struct Pdns {
    /// The process.
    child: Child,
    /// The DNS port (UDP and TCP) on 127.0.0.1.
    pub port: u16,
    /// Its socket directory (for pdns_control).
    socket_dir: PathBuf,
    /// Its log file.
    log: PathBuf,
}

impl Pdns {
    /// Starts pdns with `pdns-conf/{conf}` as shipped, overriding only the listen address and
    /// port, the socket directory and `remote-connection-string`; waits until it answers a SOA
    /// query for `zone`.
    pub fn spawn(
        dir: &std::path::Path,
        conf: &str,
        connection_string: &str,
        api: &PdnsApiEndpoint,
        zone: &str,
    ) -> Self {
        let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("pdns-conf")
            .join(conf);
        let text = std::fs::read_to_string(&shipped).expect("read the shipped pdns.conf");
        let mut args = vec![format!("--remote-connection-string={connection_string}")];
        args.extend(api.pdns_args());
        Self::spawn_with(dir, &text, &args, free_port(), zone)
    }

    /// Starts pdns with `pdns-conf/pdns.unix.conf` as shipped, talking to the backend's unix
    /// socket at `socket` (timeout 2 s), its API at `api`; waits until it answers for `zone`.
    pub fn on_socket(
        dir: &std::path::Path,
        socket: &std::path::Path,
        api: &PdnsApiEndpoint,
        zone: &str,
    ) -> Self {
        Self::spawn(
            dir,
            "pdns.unix.conf",
            &format!("unix:path={},timeout=2000", socket.display()),
            api,
            zone,
        )
    }

    /// Starts pdns with `conf_text` as its pdns.conf and `args` on top, on 127.0.0.1:`port`;
    /// waits until it answers a SOA query for `zone`.
    ///
    /// Whatever the config says, pdns here talks to loopback only: NOTIFY goes only to
    /// 127.0.0.0/8 (NS addresses in test zones are documentation addresses), and the security
    /// poll (a DNS query to the outside) is off.
    pub fn spawn_with(
        dir: &std::path::Path,
        conf_text: &str,
        args: &[String],
        port: u16,
        zone: &str,
    ) -> Self {
        let config_dir = dir.join(format!("pdns-{port}"));
        std::fs::create_dir_all(&config_dir).expect("pdns config dir");
        std::fs::write(config_dir.join("pdns.conf"), conf_text).expect("write pdns.conf");
        let log = config_dir.join("pdns.log");
        let child = Command::new("pdns_server")
            .arg(format!("--config-dir={}", config_dir.display()))
            .arg(format!("--socket-dir={}", config_dir.display()))
            .arg("--local-address=127.0.0.1")
            .arg(format!("--local-port={port}"))
            .args(["--only-notify=127.0.0.0/8", "--security-poll-suffix="])
            .args(args)
            .args([
                "--daemon=no",
                "--guardian=no",
                "--disable-syslog",
                "--write-pid=no",
            ])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).expect("pdns log"))
            .stderr(Stdio::from(
                std::fs::File::options()
                    .append(true)
                    .open(&log)
                    .expect("pdns log"),
            ))
            .spawn()
            .expect("start pdns_server");
        let pdns = Self {
            child,
            port,
            socket_dir: config_dir,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while dig(port, zone, "SOA", &[]).status != "NOERROR" {
            assert!(
                Instant::now() < deadline,
                "pdns never answered:\n{}",
                pdns.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        pdns
    }

    /// Runs `pdns_control` against this instance; returns its output.
    pub fn control(&self, args: &[&str]) -> String {
        let output = Command::new("pdns_control")
            .arg(format!("--socket-dir={}", self.socket_dir.display()))
            .args(args)
            .output()
            .expect("run pdns_control");
        assert!(output.status.success(), "pdns_control {args:?}: {output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// pdns's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// How pdns exited, if it has.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().expect("ask for pdns's status")
    }

    /// Waits (bounded) until pdns's log contains `needle`.
    pub fn wait_for_log(&self, needle: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.log().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "pdns never logged {needle:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Pdns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            println!("---- pdns log ----\n{}", self.log());
        }
    }
}

/// Where a test pdns serves its HTTP API (for cache purges), chosen before either pdns or the
/// daemon starts, since each needs it in its config.
pub struct PdnsApiEndpoint {
    /// The webserver port on 127.0.0.1.
    pub port: u16,
    /// The api-key.
    pub key: String,
}

impl PdnsApiEndpoint {
    /// A free port and a fresh key.
    pub fn new() -> Self {
        let port = free_port();
        Self {
            port,
            key: format!("test-key-{port}-{}", std::process::id()),
        }
    }

    /// The daemon's `[[pdns]]` table for it.
    pub fn daemon_config(&self) -> String {
        format!(
            "[[pdns.api]]\napi-url = \"http://127.0.0.1:{}\"\napi-key = \"{}\"\n",
            self.port, self.key
        )
    }

    /// The pdns_server arguments that put its API there.
    pub fn pdns_args(&self) -> Vec<String> {
        vec![
            "--webserver-address=127.0.0.1".into(),
            "--webserver-allow-from=127.0.0.1,::1".into(),
            format!("--webserver-port={}", self.port),
            format!("--api-key={}", self.key),
        ]
    }
}
