//! A real `pdns_server` on free loopback ports, and the pdns API endpoint the service purges.

use super::*;

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
